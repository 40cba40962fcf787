"""Genre of audio files, second by second: decode -> features -> model -> per-second and per-file probabilities."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Iterator

import numpy as np

from musicgenre.audio import SAMPLE_RATE, find_audio_files, load_audio, segment
from musicgenre.errors import MusicGenreError
from musicgenre.features import extract, silent_segments

READY_MODEL = Path(str(files("musicgenre") / "ready_model"))


@dataclass
class FileFeatures:
    """What decoding one file gives the model: one feature row per second, which seconds are silent."""

    path: Path
    X: np.ndarray | None = None
    silent: np.ndarray | None = None
    duration: float = 0.0
    error: str | None = None


@dataclass
class SegmentPrediction:
    start: int  # second
    genre: str | None  # None for a silent second
    probability: float


@dataclass
class FilePrediction:
    """A file's genre: mean of its non-silent seconds' probabilities; `silent` when it has none."""

    path: Path
    genre: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    duration: float = 0.0
    silent: bool = False
    segments: list[SegmentPrediction] = field(default_factory=list)
    error: str | None = None

    def to_json(self, with_segments: bool = False) -> dict:
        d = {"file": str(self.path), "genre": self.genre, "probabilities": self.probabilities,
             "duration": round(self.duration, 3), "n_segments": len(self.segments), "silent": self.silent}
        if self.error is not None:
            d = {"file": str(self.path), "error": self.error}
        elif with_segments:
            d["segments"] = [vars(s) for s in self.segments]
        return d


def file_features(path: Path, features: str) -> FileFeatures:
    """Decode and featurise one file; a bad file gives its one-line error instead of raising."""
    try:
        y = load_audio(path)
        segs = segment(y)
        return FileFeatures(path, extract(segs, features), silent_segments(segs), len(y) / SAMPLE_RATE)
    except MusicGenreError as exc:
        return FileFeatures(path, error=str(exc))


def iter_features(paths: list[Path], features: str, workers: int | None = None) -> Iterator[FileFeatures]:
    """Features of each file in order; several files are decoded in parallel worker processes."""
    workers = min(workers or os.cpu_count() or 1, len(paths))
    if workers <= 1:
        yield from (file_features(p, features) for p in paths)
        return
    ctx = multiprocessing.get_context("spawn")  # fork after torch has started threads is unsafe
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        yield from pool.map(file_features, paths, [features] * len(paths))


def classify(ff: FileFeatures, predictor) -> FilePrediction:
    """Per-second probabilities from the model, averaged over the non-silent seconds."""
    if ff.error is not None:
        return FilePrediction(ff.path, error=ff.error)
    classes = predictor.classes
    probs = predictor.predict_proba(ff.X)
    top = probs.argmax(axis=1)
    segments = [
        SegmentPrediction(i, None if ff.silent[i] else classes[top[i]], round(float(probs[i, top[i]]), 4))
        for i in range(len(probs))
    ]
    pred = FilePrediction(ff.path, duration=ff.duration, segments=segments)
    if ff.silent.all():
        pred.silent = True
        return pred
    mean = probs[~ff.silent].mean(axis=0)
    pred.genre = classes[int(mean.argmax())]
    pred.probabilities = {c: round(float(p), 4) for c, p in zip(classes, mean)}
    return pred


def predict_paths(paths: list[str | os.PathLike], model: str | None = None, workers: int | None = None) -> Iterator[FilePrediction]:
    """Predict every audio file under `paths` (files or folders, recursively) with a run directory,
    an `ensemble:RUN1,RUN2` spec, or the ready model that ships in the package."""
    from musicgenre.ensemble import load_predictor

    predictor = load_predictor(model or str(READY_MODEL))
    files_ = find_audio_files(paths)
    for ff in iter_features(files_, predictor.features, workers):
        yield classify(ff, predictor)
