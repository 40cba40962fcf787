"""Build a dataset in the study's layout (split/{mfccs,melgrams}/{X,labels}.npy) from genre folders."""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from musicgenre.audio import SEGMENT_SAMPLES, find_audio_files, load_audio, segment
from musicgenre.errors import MusicGenreError
from musicgenre.datasets import FEATURE_DIRS, FEATURE_SHAPES
from musicgenre.features import extract, silent_segments
from musicgenre.io import atomic_save_npy, atomic_write_json

SPLITS = ("train", "val")


def build_dataset(
    audio_dir: str | Path,
    out_root: str | Path,
    split_ratio: Sequence[float] = (0.8, 0.2),
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Extract both feature sets from audio_dir/<genre>/ files into out_root; return the manifest written.

    Each genre's readable files are split by a seeded shuffle, so no song spans two splits. Unreadable
    files are skipped, not fatal: their manifest entries carry an "error" (and no split) to report.
    """
    audio_dir, out_root = Path(audio_dir), Path(out_root)
    ratios = _check_ratios(split_ratio)
    _check_out_root(out_root, overwrite)
    genre_files = _genre_files(audio_dir)
    results = _extract_all([path for files in genre_files.values() for path in files], workers, progress)

    records, kept = [], {split: [] for split in SPLITS}
    for label, files in genre_files.items():
        readable = [path for path in files if results[path].error is None]
        split_of = dict(zip(readable, _split_files(len(readable), ratios, seed, label)))
        for path in files:
            result, split = results[path], split_of.get(path)
            records.append(
                {
                    "path": path.relative_to(audio_dir).as_posix(),
                    "label": label,
                    "split": split,
                    "n_segments": result.n_segments,
                    "n_silent": result.n_silent,
                    "error": result.error,
                }
            )
            if split is not None:
                kept[split].append((result.features, label))
    for split, rows in kept.items():
        _write_split(out_root / split, rows)
    manifest = {
        "audio_dir": str(audio_dir.resolve()),
        "split_ratio": [float(r) for r in split_ratio],
        "seed": seed,
        "files": records,
    }
    atomic_write_json(out_root / "manifest.json", manifest)
    return manifest


def _write_split(split_dir: Path, rows: list[tuple[dict[str, np.ndarray], str]]) -> None:
    """Write X.npy (float32) and labels.npy per feature kind, one row per segment, in the study's layout."""
    labels = np.repeat(np.array([label for _, label in rows], dtype=np.str_), [len(f["mfcc"]) for f, _ in rows])
    for kind, folder in FEATURE_DIRS.items():
        X = np.concatenate([features[kind] for features, _ in rows] or [np.zeros((0, *FEATURE_SHAPES[kind]))])
        atomic_save_npy(split_dir / folder / "X.npy", X.astype(np.float32))
        atomic_save_npy(split_dir / folder / "labels.npy", labels)


def _check_ratios(split_ratio: Sequence[float]) -> np.ndarray:
    """Validate one non-negative share per split, summing to more than 0; return them normalised."""
    ratios = np.asarray(split_ratio, dtype=float)
    if ratios.shape != (len(SPLITS),) or (ratios < 0).any() or ratios.sum() <= 0:
        raise MusicGenreError(f"split ratio {tuple(split_ratio)}: give {len(SPLITS)} non-negative shares ({', '.join(SPLITS)})")
    return ratios / ratios.sum()


def _check_out_root(out_root: Path, overwrite: bool) -> None:
    if out_root.exists() and not out_root.is_dir():
        raise MusicGenreError(f"{out_root}: is a file, not an output folder")
    if out_root.is_dir() and any(out_root.iterdir()) and not overwrite:
        raise MusicGenreError(f"{out_root}: output folder is not empty; choose another or allow overwriting")


def _genre_files(audio_dir: Path) -> dict[str, list[Path]]:
    """Map each genre subfolder's name to its audio files."""
    if not audio_dir.is_dir():
        raise MusicGenreError(f"{audio_dir}: no such folder")
    genres = sorted(p for p in audio_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not genres:
        raise MusicGenreError(f"{audio_dir}: no genre subfolders (expected one folder of audio files per genre)")
    return {genre.name: find_audio_files([genre]) for genre in genres}


def _split_counts(n: int, ratios: np.ndarray) -> np.ndarray:
    """Files per split: proportional (largest remainder), yet at least one for each nonzero share when n allows."""
    exact = n * ratios
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact, kind="stable")[: n - counts.sum()]] += 1
    for empty in np.flatnonzero((ratios > 0) & (counts == 0)):
        donor = np.argmax(counts)
        if counts[donor] > 1:
            counts[donor] -= 1
            counts[empty] += 1
    return counts


def _split_files(n: int, ratios: np.ndarray, seed: int, label: str) -> list[str]:
    """Split name for each of a genre's n files, from a shuffle seeded by seed and the genre's name."""
    splits = np.repeat(SPLITS, _split_counts(n, ratios))
    rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
    return splits[rng.permutation(n)].tolist()


class FileFeatures(NamedTuple):
    """What extraction yields for one file: features of its sounding segments, counts, and any decoding error."""

    features: dict[str, np.ndarray]
    n_segments: int
    n_silent: int
    error: str | None


def _file_features(path: Path) -> FileFeatures:
    """Decode and segment one file and compute every feature kind, dropping silent segments."""
    try:
        segments, error = segment(load_audio(path)), None
    except MusicGenreError as e:
        segments, error = np.zeros((0, SEGMENT_SAMPLES), dtype=np.float32), str(e)
    silent = silent_segments(segments)
    sounding = segments[~silent]
    features = {kind: extract(sounding, kind) for kind in FEATURE_SHAPES}
    return FileFeatures(features, len(segments), int(silent.sum()), error)


def _extract_all(paths: list[Path], workers: int | None, progress: bool) -> dict[Path, FileFeatures]:
    """Run _file_features on every path in worker processes, with a progress bar."""
    from rich.progress import track

    workers = max(1, min(workers or os.cpu_count() or 1, len(paths)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_file_features, path): path for path in paths}
        done = track(as_completed(futures), total=len(futures), description="Extracting features", disable=not progress)
        return {futures[future]: future.result() for future in done}
