"""The software a result came from, recorded beside it (a run's config.json, a dataset's manifest.json, a sweep's
and a comparison's settings): another version of a library can compute other bits."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from musicgenre import __version__


TRAINING = ("torch", "numpy", "numba")  # what computes a trained model's bits (numba: the fused epoch)


def software_versions(*packages: str) -> dict[str, str]:
    """Python's and musicgenre's versions, and those of the installed distributions `packages` ("torch", "numba")."""
    found = {"python": platform.python_version(), "musicgenre": __version__}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:  # run from a source tree without it installed as a distribution
            found[package] = "unknown"
    return found
