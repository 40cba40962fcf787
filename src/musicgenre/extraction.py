"""Build a dataset in the study's layout (split/{mfccs,melgrams}/{X,labels}.npy) from genre folders."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from musicgenre.audio import as_path, file_key, find_audio_files
from musicgenre.config import check_seed
from musicgenre.datasets import FEATURE_DIRS, FEATURE_SHAPES, is_genre_name
from musicgenre.errors import MusicGenreError
from musicgenre.features import FileFeatures, iter_file_features
from musicgenre.io import atomic_save_npy, atomic_write_json, check_out_dir, write_dir

# The splits extract writes, in split-ratio order; the study's test split is withheld, so none is made.
EXTRACT_SPLITS = ("train", "val")


def build_dataset(
    audio_dir: str | Path,
    out_root: str | Path,
    split_ratio: Sequence[float] | str = (0.8, 0.2),
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Extract both feature sets from audio_dir/<genre>/ files into out_root; return the manifest written.

    split_ratio is one share per split (train, val), as numbers or a string like "0.8/0.2".
    Each genre's readable files with sound are split by a seeded shuffle, so no song spans two splits.
    Unreadable and all-silent files are skipped, not fatal: their manifest entries carry an "error"
    (and no split) to report.
    A split without clips is not written. The dataset is built in a temporary sibling folder and
    moved into place at the end, so out_root never mixes an old dataset with a new or partial one.
    """
    audio_dir = as_path(audio_dir)
    check_out_dir(out_root, overwrite, [audio_dir])  # before any audio is read
    check_seed(seed)
    ratios = _check_ratios(split_ratio)
    genre_files, repeats = _drop_repeats(_genre_files(audio_dir))
    manifest: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        manifest.update(_build(audio_dir, tmp, genre_files, repeats, ratios, seed, workers, progress))

    write_dir(out_root, overwrite, fill, inputs=[audio_dir])
    return manifest


def _build(
    audio_dir: Path,
    out_root: Path,
    genre_files: dict[str, list[Path]],
    repeats: dict[Path, tuple[str, Path]],
    ratios: np.ndarray,
    seed: int,
    workers: int | None,
    progress: bool,
) -> dict[str, Any]:
    """Extract, split and write every split with clips and the manifest into out_root."""
    results = _extract_all([path for files in genre_files.values() for path in files], workers, progress)
    records, kept = [], {split: [] for split in EXTRACT_SPLITS}
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
                    "n_segments": len(result.silent),
                    "n_silent": int(result.silent.sum()),
                    "error": result.error,
                }
            )
            if split is not None:
                sounding = ~result.silent
                kept[split].append(({kind: x[sounding] for kind, x in result.features.items()}, label))
    for path, (label, kept_path) in repeats.items():
        records.append({"path": path.relative_to(audio_dir).as_posix(), "label": label, "split": None, "n_segments": 0,
                        "n_silent": 0, "error": f"{path}: the same file as {kept_path}, which is extracted instead"})
    n_clips = {split: sum(len(features["mfcc"]) for features, _ in rows) for split, rows in kept.items()}
    if n_clips["train"] == 0:
        errors = [r["error"] for r in records if r["error"]]
        why = f" ({len(errors)} of {len(records)} files unreadable, the first: {errors[0]})" if errors else ""
        raise MusicGenreError(f"{audio_dir}: no readable, non-silent audio for the train split; nothing to train on{why}")
    for split, rows in kept.items():
        if n_clips[split]:
            _write_split(out_root / split, rows)
    manifest = {
        "audio_dir": str(audio_dir.resolve()),
        "split_ratio": ratios.tolist(),
        "seed": seed,
        "files": records,
    }
    atomic_write_json(out_root / "manifest.json", manifest)
    return manifest


def _write_split(split_dir: Path, rows: list[tuple[dict[str, np.ndarray], str]]) -> None:
    """Write X.npy (float32) and labels.npy per feature kind, one row per segment, in the study's layout."""
    labels = np.repeat(np.array([label for _, label in rows], dtype=np.str_), [len(f["mfcc"]) for f, _ in rows])
    for kind, folder in FEATURE_DIRS.items():
        X = np.concatenate([features[kind] for features, _ in rows])
        atomic_save_npy(split_dir / folder / "X.npy", X.astype(np.float32))
        atomic_save_npy(split_dir / folder / "labels.npy", labels)


def _check_ratios(split_ratio: Sequence[float] | str) -> np.ndarray:
    """Parse and validate one non-negative share per split, train's above 0 ("0.8/0.2" or (0.8, 0.2)); return them normalised."""
    parts = split_ratio.split("/") if isinstance(split_ratio, str) else split_ratio
    text = split_ratio if isinstance(split_ratio, str) else "/".join(map(str, split_ratio))
    try:
        ratios = np.array([float(part) for part in parts])
    except (TypeError, ValueError):
        ratios = np.array([np.nan])
    if ratios.shape != (len(EXTRACT_SPLITS),) or not np.isfinite(ratios).all() or (ratios < 0).any() or ratios[0] <= 0:
        raise MusicGenreError(
            f"split ratio {text!r}: give {len(EXTRACT_SPLITS)} non-negative shares ({'/'.join(EXTRACT_SPLITS)}), "
            "train's above 0, e.g. 0.8/0.2"
        )
    ratios /= ratios.max()  # first, so that huge shares such as 1e308/1e308 cannot overflow the sum
    return ratios / ratios.sum()


def _genre_files(audio_dir: Path) -> dict[str, list[Path]]:
    """Map each genre subfolder's name to its audio files."""
    if not audio_dir.is_dir():
        raise MusicGenreError(f"{audio_dir}: {'a file, not a' if audio_dir.exists() else 'no such'} folder "
                              "(give a folder with one subfolder of audio files per genre)")
    genres = sorted(p for p in audio_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not genres:
        raise MusicGenreError(f"{audio_dir}: no genre subfolders (expected one folder of audio files per genre)")
    for genre in genres:
        if not is_genre_name(genre.name):
            raise MusicGenreError(f"{genre}: {genre.name!r} is not a genre name (spaces at either end, control "
                                  "characters, or a name that is not UTF-8, which a genre's label must be): rename the folder")
    return {genre.name: find_audio_files([genre]) for genre in genres}


def _drop_repeats(genre_files: dict[str, list[Path]]) -> tuple[dict[str, list[Path]], dict[Path, tuple[str, Path]]]:
    """Each file once: a later path to a file already listed (a link to it, in its own genre or another) is left
    out, so that no recording can have seconds in two splits. Returns the files kept, and for each path left
    out its genre and the path that was kept."""
    key = {path: file_key(path) for files in genre_files.values() for path in files}
    chosen: dict[Path, Path] = {}  # per file, the path kept: the file itself rather than a link to it (its genre
    for path in sorted(key, key=Path.is_symlink):  # is the file's)
        chosen.setdefault(key[path], path)
    kept: dict[str, list[Path]] = {label: [] for label in genre_files}
    repeats: dict[Path, tuple[str, Path]] = {}
    for label, files in genre_files.items():
        for path in files:
            if (first := chosen[key[path]]) == path:
                kept[label].append(path)
            else:
                repeats[path] = (label, first)
    return kept, repeats


def _split_counts(n: int, ratios: np.ndarray) -> np.ndarray:
    """Files per split: proportional (largest remainder), yet at least one for train (a genre without
    training files cannot be learned) and then for each nonzero share, when n allows."""
    exact = n * ratios
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact, kind="stable")[: n - counts.sum()]] += 1
    if n and counts[0] == 0:
        counts[np.argmax(counts)] -= 1
        counts[0] += 1
    for empty in np.flatnonzero((ratios > 0) & (counts == 0)):
        donor = np.argmax(counts)
        if counts[donor] > 1:
            counts[donor] -= 1
            counts[empty] += 1
    return counts


def _split_files(n: int, ratios: np.ndarray, seed: int, label: str) -> list[str]:
    """Split name for each of a genre's n files, from a shuffle seeded by seed and the genre's name."""
    splits = np.repeat(EXTRACT_SPLITS, _split_counts(n, ratios))
    rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
    return splits[rng.permutation(n)].tolist()


def _extract_all(paths: list[Path], workers: int | None, progress: bool) -> dict[Path, FileFeatures]:
    """Every feature kind of every path, decoded in worker processes, with a progress bar;
    a file without a second of sound gets an error, so it is skipped like an unreadable one."""
    from rich.progress import track

    # closed on the way out: a stop (Ctrl-C) that lands outside the generator still ends its workers before
    # the command prints its one line, not later, at interpreter exit, when multiprocessing complains of leaks
    with closing(iter_file_features(paths, tuple(FEATURE_SHAPES), workers)) as results:
        done = track(results, total=len(paths), description="Extracting features", disable=not progress)
        return {result.path: _skip_if_silent(result) for result in done}


def _skip_if_silent(result: FileFeatures) -> FileFeatures:
    """result, with an error when it decoded but every second is silent: it would take a split's place and give no clips."""
    if result.error is None and result.silent.all():
        return dataclasses.replace(result, error=f"{result.path}: no sound: every second is silent")
    return result
