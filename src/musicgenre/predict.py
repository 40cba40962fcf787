"""Genre of audio files, second by second: decode -> features -> model -> per-second and per-file probabilities."""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from musicgenre.audio import file_key, scan_audio
from musicgenre.errors import MusicGenreError
from musicgenre.features import FileFeatures, iter_file_features
from musicgenre.io import as_path

if TYPE_CHECKING:  # imported lazily at run time: it brings torch
    from musicgenre.ensemble import Predictor

READY_MODEL = Path(str(files("musicgenre") / "ready_model"))


@dataclass
class SegmentPrediction:
    start: int  # second
    genre: str | None  # None for a silent second
    probability: float | None  # None for a silent second: it has no genre to be sure of


@dataclass
class FilePrediction:
    """A file's genre: mean of its non-silent seconds' probabilities, each weighted by the audio it holds (a last
    second of 0.3 s counts 0.3); `silent` when it has none."""

    path: Path
    genre: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    duration: float = 0.0
    silent: bool = False
    segments: list[SegmentPrediction] = field(default_factory=list)
    error: str | None = None

    def to_json(self, with_segments: bool = False) -> dict:
        """The file's line of `predict --json`: its genre and probabilities (and seconds), or its error."""
        if self.error is not None:
            return {"file": str(self.path), "error": self.error}
        d = {"file": str(self.path), "genre": self.genre, "probabilities": self.probabilities,
             "duration": round(self.duration, 3), "n_segments": len(self.segments), "silent": self.silent}
        if with_segments:
            d["segments"] = [vars(s) for s in self.segments]
        return d


def classify(ff: FileFeatures, predictor: Predictor) -> FilePrediction:
    """Per-second probabilities from the model, averaged over the non-silent seconds, each weighted by
    how much audio it holds (a last segment of 10 ms counts a hundredth of a full second)."""
    if ff.error is not None:
        return FilePrediction(ff.path, error=ff.error)
    classes = predictor.classes
    probs = predictor.predict_proba(ff.features[predictor.features])
    if not np.isfinite(probs).all():
        return FilePrediction(ff.path, error=f"{ff.path}: the model gave NaN or infinite probabilities for this file")
    top = probs.argmax(axis=1)
    segments = [
        SegmentPrediction(i, None, None) if silent else SegmentPrediction(i, classes[k], round(float(probs[i, k]), 4))
        for i, (k, silent) in enumerate(zip(top, ff.silent))
    ]
    pred = FilePrediction(ff.path, duration=ff.duration, segments=segments)
    if ff.silent.all():
        pred.silent = True
        return pred
    seconds = np.minimum(ff.duration - np.arange(len(probs)), 1.0)  # the padded last one holds less
    mean = np.average(probs[~ff.silent], axis=0, weights=seconds[~ff.silent])
    pred.genre = classes[int(mean.argmax())]
    pred.probabilities = {c: round(float(p), 4) for c, p in zip(classes, mean)}
    return pred


def predict_paths(
    paths: str | os.PathLike | Iterable[str | os.PathLike], model: str | None = None, workers: int | None = None
) -> Iterator[FilePrediction]:
    """Predict every audio file under `paths` (one path, or several: files or folders, recursively) with a run
    directory, an `ensemble:RUN1,RUN2` spec, or the ready model that ships in the package."""
    from musicgenre.ensemble import load_predictor

    predictor = load_predictor(str(READY_MODEL) if model is None else model)
    if isinstance(paths, (str, bytes, os.PathLike)):  # one path, not its characters
        paths = [paths]
    elif not isinstance(paths, Iterable):
        raise MusicGenreError(f"{paths!r}: give a path, or a list of paths")
    items = _resolve_paths(paths)
    # closed with this generator, not left to the garbage collector: its worker processes end then
    with closing(iter_file_features([path for path, error in items if error is None], (predictor.features,), workers, "repeat")) as features:
        for path, error in items:
            yield FilePrediction(path, error=error) if error is not None else classify(next(features), predictor)


def _resolve_paths(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, str | None]]:
    """Each argument's audio files, without repeats (a file named twice, by any path, is classified once);
    an argument that names none (missing path, folder without audio) and each folder that cannot be read
    become one entry carrying its error, so the others are still classified; an empty path is a usage
    error that stops the command."""
    items: list[tuple[Path, str | None]] = []
    seen: set[Hashable] = set()
    for arg in map(as_path, paths):
        try:
            found, errors = scan_audio(arg)
        except MusicGenreError as exc:
            items.append((arg, str(exc)))
            continue
        items += [(arg, error) for error in errors]
        for path in found:
            if (key := file_key(path)) not in seen:
                items.append((path, None))
                seen.add(key)
    return items
