"""Shared fixtures: the real recordings in ../shared beside the checkout (never copied into the repo)."""

from pathlib import Path

import numpy as np
import pytest

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} not found: the real recordings sit beside the checkout")
    return SHARED_DIR


@pytest.fixture(scope="session")
def audio_dir(shared_dir: Path) -> Path:
    return shared_dir / "audio"


@pytest.fixture(scope="session")
def decoded(audio_dir: Path) -> dict[str, np.ndarray]:
    """Every real recording decoded once with load_audio, by file name."""
    from musicgenre.audio import find_audio_files, load_audio

    return {path.name: load_audio(path) for path in find_audio_files([audio_dir])}
