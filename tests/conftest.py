"""Shared fixtures: the study's data and real recordings, read in place from ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musicgenre.datasets import Dataset

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
STUDY_DATA = SHARED / "data" / "music_genre_data_di"
GENRES = ("blues", "classical", "hiphop", "rock_metal_hardrock")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: the tests read the shared data beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def audio_dir(shared_dir: Path) -> Path:
    return shared_dir / "audio"


@pytest.fixture(scope="session")
def study_data(shared_dir: Path) -> Path:
    return STUDY_DATA


@pytest.fixture
def small_mfcc_root(tmp_path: Path, study_data: Path) -> Path:
    """A data root holding a seeded random slice of the real MFCC data (800 train, 400 val clips)."""
    root = tmp_path / "data"
    for split, n in [("train", 800), ("val", 400)]:
        d = study_data / split / "mfccs"
        X, labels = np.load(d / "X.npy"), np.load(d / "labels.npy")
        keep = np.random.default_rng(0).permutation(len(X))[:n]
        write_split(root, split, "mfcc", X[keep], labels[keep])
    return root


def subset(d: Dataset, n: int, seed: int = 0) -> Dataset:
    """A seeded random n clips of a split."""
    keep = np.random.default_rng(seed).permutation(len(d))[:n]
    return Dataset(d.X[keep], d.y[keep], d.classes, d.features, d.split)


def write_split(root: Path, split: str, features: str, X: np.ndarray, labels) -> None:
    """Write one split of a data root in the study's layout."""
    d = root / split / {"mfcc": "mfccs", "melgram": "melgrams"}[features]
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "X.npy", X)
    np.save(d / "labels.npy", np.asarray(labels))


def synthetic_melgrams(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 21, 128) arrays in [-80, 0] whose level depends on the genre, so a CNN can learn them."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(GENRES)
    X = rng.uniform(-80, 0, size=(n, 21, 128))
    X[:, :, :32] = np.clip(X[:, :, :32] * 0.2 - 60 + 15 * y[:, None, None], -80, 0)
    return X.astype(np.float32), np.array(GENRES)[y]


@pytest.fixture(scope="session")
def decoded(audio_dir: Path) -> dict[str, np.ndarray]:
    """Every real recording decoded once with load_audio, by file name."""
    from musicgenre.audio import load_audio, scan_audio

    return {path.name: load_audio(path) for path in scan_audio(audio_dir)[0]}


@pytest.fixture
def stop_after_rename(monkeypatch):
    """os.replace that does its work, then has Ctrl-C arrive, as a real stop can, just after the system call."""
    import os
    import signal

    real = os.replace

    def replace(src, dst):
        real(src, dst)
        stop_after_rename.at -= 1
        if stop_after_rename.at == 0:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(os, "replace", replace)
    return stop_after_rename
