"""Build a dataset in the study's layout (split/{mfccs,melgrams}/{X,labels}.npy) from genre folders."""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections.abc import Hashable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from musicgenre.audio import AUDIO_KINDS, audio_under, file_key
from musicgenre.config import check_seed
from musicgenre.datasets import FEATURE_DIRS, FEATURE_SHAPES, SPLITS, is_genre_name
from musicgenre.errors import MusicGenreError, SettingError
from musicgenre.features import FileFeatures, iter_file_features
from musicgenre.io import as_path, atomic_save_npy, atomic_write_json, check_out_dir, progress_display, write_dir
from musicgenre.tables import percent
from musicgenre.versions import software_versions


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

    split_ratio is one share per split (train, val, and optionally test), as numbers or a string like "0.8/0.2"
    or "0.7/0.15/0.15". Each genre's readable files with sound are split by a seeded shuffle, so no song spans
    two splits. Unreadable and all-silent files are skipped, not fatal: their manifest entries carry an
    "error" (and no split) to report.
    A split without clips is not written. The dataset is built in a temporary sibling folder and
    moved into place at the end, so out_root never mixes an old dataset with a new or partial one.
    """
    audio_dir = as_path(audio_dir)
    check_out_dir(out_root, overwrite, [audio_dir])  # before the folders are listed
    seed = check_seed(seed)
    ratios = _check_ratios(split_ratio)
    found, folders = _genre_files(audio_dir)
    # where the audio folder's links lead (folders walked, and every link in them: to audio or not, hidden or
    # not) would be replaced by an --out there: the user's own files
    links = [entry for folder in folders for entry in folder.iterdir() if entry.is_symlink()]
    inputs = [audio_dir, *folders, *links, *(p for files in found.values() for p in files)]
    genre_files, left_out = _drop_repeats(audio_dir, found)
    manifest: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        manifest.update(_build(audio_dir, tmp, genre_files, left_out, ratios, seed, workers, progress))

    write_dir(out_root, overwrite, fill, inputs=inputs)  # checks out_root against them before any audio is read
    return manifest


def _build(
    audio_dir: Path,
    out_root: Path,
    genre_files: dict[str, list[Path]],
    left_out: dict[Path, tuple[str, str]],
    ratios: np.ndarray,
    seed: int,
    workers: int | None,
    progress: bool,
) -> dict[str, Any]:
    """Extract, split and write every split with clips and the manifest into out_root."""
    results = _extract_all([path for files in genre_files.values() for path in files], workers, progress)
    splits = SPLITS[: len(ratios)]
    records, kept = [], {split: [] for split in splits}
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
    for path, (label, why) in left_out.items():
        records.append({"path": path.relative_to(audio_dir).as_posix(), "label": label, "split": None, "n_segments": 0,
                        "n_silent": 0, "error": why})
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
        "genres": list(genre_files),
        "split_ratio": ratios.tolist(),
        "seed": seed,
        "versions": software_versions("numpy", "numba", "librosa", "soxr", "soundfile"),  # decoding and features
        "files": records,
    }
    atomic_write_json(out_root / "manifest.json", manifest)
    return manifest


def split_sizes(manifest: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Clips and files of each split a manifest's dataset holds (splits without clips left out)."""
    sizes = {}
    for split in SPLITS:
        files = [f for f in manifest["files"] if f["split"] == split]
        if clips := sum(f["n_segments"] - f["n_silent"] for f in files):
            sizes[split] = (clips, len(files))
    return sizes


def dataset_notes(manifest: dict[str, Any]) -> list[str]:
    """What a dataset lacks that its user should hear of: genres left out for want of usable audio, a train
    split of one genre (which `train` refuses), and genres of train that another split has no clips of."""
    genres = {split: sorted({f["label"] for f in manifest["files"] if f["split"] == split and f["n_segments"] > f["n_silent"]})
              for split in SPLITS}
    notes = []
    if absent := [g for g in manifest["genres"] if not any(g in genres[split] for split in SPLITS)]:
        notes.append(f"{', '.join(absent)}: no clips (no audio, or every file unreadable, silent or left out: see the "
                     f"skipped lines), so {'that genre is' if len(absent) == 1 else 'those genres are'} not in the dataset")
    if len(genres["train"]) < 2:
        notes.append(f"the train split holds one genre only ({', '.join(genres['train'])}): `train` needs two or more")
    for split, share in zip(SPLITS[1:], manifest["split_ratio"][1:]):
        if share > 0 and not genres[split]:  # files are split, not seconds: a genre's first files go to train
            notes.append(f"the {split} split asked for ({percent(share)}) holds no clips: no genre has enough files to give "
                         f"it one (files, not seconds, are split)")
    for split in SPLITS[1:]:
        missing = [g for g in genres["train"] if g not in genres[split]]
        if genres[split] and missing:
            notes.append(f"the {split} split has no clips of {', '.join(missing)} (too few files of them): its figures "
                         f"leave {'that genre' if len(missing) == 1 else 'those genres'} out")
    return notes


def _write_split(split_dir: Path, rows: list[tuple[dict[str, np.ndarray], str]]) -> None:
    """Write X.npy (float32) and labels.npy per feature kind, one row per segment, in the study's layout."""
    labels = np.repeat(np.array([label for _, label in rows], dtype=np.str_), [len(f["mfcc"]) for f, _ in rows])
    for kind, folder in FEATURE_DIRS.items():
        X = np.concatenate([features[kind] for features, _ in rows])
        atomic_save_npy(split_dir / folder / "X.npy", X.astype(np.float32))
        atomic_save_npy(split_dir / folder / "labels.npy", labels)


def _check_ratios(split_ratio: Sequence[float] | str) -> np.ndarray:
    """Parse and validate one non-negative share per split, train's above 0, for train and val or for train, val
    and test ("0.8/0.2", (0.8, 0.2), "0.7/0.15/0.15"); return them normalised."""
    parts = split_ratio.split("/") if isinstance(split_ratio, str) else split_ratio
    text = split_ratio if isinstance(split_ratio, str) else "/".join(map(str, split_ratio))
    try:
        ratios = np.array([float(part) for part in parts])
    except (TypeError, ValueError):
        ratios = np.array([np.nan])
    if (ratios.ndim != 1 or len(ratios) not in (2, 3) or not np.isfinite(ratios).all() or (ratios < 0).any()
            or ratios[0] <= 0):
        raise SettingError(
            f"split ratio {text!r}: give 2 or 3 non-negative shares (train/val or train/val/test), "
            "train's above 0, e.g. 0.8/0.2 or 0.7/0.15/0.15"
        )
    if ratios.max() > 1e300:  # huge shares such as 1e308/1e308 scaled down first, so that the sum cannot overflow
        ratios /= ratios.max()  # (not always: 0.7/0.15/0.15 would read 0.6999999999999998/...)
    return ratios / ratios.sum()


def _genre_files(audio_dir: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """Map each genre subfolder's name to its audio files; and every folder walked, links followed."""
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
    genre_files, folders = {}, []
    for genre in genres:  # a genre folder without audio is kept, empty: extract notes the genre it leaves out
        files, errors, walked = audio_under(genre)
        if errors:
            raise MusicGenreError(errors[0])
        genre_files[genre.name] = sorted(files)
        folders += walked
    if not any(genre_files.values()):
        raise MusicGenreError(f"{audio_dir}: no audio files ({AUDIO_KINDS}) in its genre folders")
    return genre_files, folders


def _drop_repeats(
    audio_dir: Path, genre_files: dict[str, list[Path]]
) -> tuple[dict[str, list[Path]], dict[Path, tuple[str, str]]]:
    """Each recording once and under one genre, so that none can have seconds in two splits or two labels.
    Paths to one file (links, hard links) count as one. Its genre is that of its own path (no link between the
    audio folder and it), so a file linked into a playlist folder keeps its own genre; a recording that lives
    outside takes the genre of its links, which must agree (a genre folder that is a link to another genre's
    is a view of that genre, not a genre of its own). Otherwise it has no one genre: all its paths are left
    out. Returns the files kept per genre, and for each path left out its genre and why."""
    real_root = Path(os.path.realpath(audio_dir))
    genre_of_folder = {Path(os.path.realpath(audio_dir / g)): g for g in genre_files if not (audio_dir / g).is_symlink()}

    def own(path: Path) -> bool:
        return Path(os.path.realpath(path)) == real_root / path.relative_to(audio_dir)

    def claims(label: str) -> bool:  # False for a genre folder that is a link to another genre's folder
        return genre_of_folder.get(Path(os.path.realpath(audio_dir / label)), label) == label

    groups: dict[Hashable, list[tuple[str, Path]]] = {}
    for label, files in genre_files.items():
        for path in files:
            groups.setdefault(file_key(path), []).append((label, path))
    kept: dict[str, list[Path]] = {label: [] for label in genre_files}
    left_out: dict[Path, tuple[str, str]] = {}
    for paths in groups.values():
        first_kind = [(g, p) for g, p in paths if own(p)] or [(g, p) for g, p in paths if claims(g)] or paths
        genres = sorted({label for label, _ in first_kind})
        if len(genres) > 1:
            for label, p in paths:
                left_out[p] = (label, f"{p}: one recording in {len(genres)} genre folders ({', '.join(genres)}), "
                                      "so of no one genre: left out (keep it in one)")
            continue
        label, first = first_kind[0]
        kept[label].append(first)
        left_out.update({p: (g, f"{p}: the same file as {first}, which is extracted instead") for g, p in paths if p != first})
    return {label: sorted(files) for label, files in kept.items()}, left_out


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
    splits = np.repeat(SPLITS[: len(ratios)], _split_counts(n, ratios))
    rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
    return splits[rng.permutation(n)].tolist()


def _extract_all(paths: list[Path], workers: int | None, progress: bool) -> dict[Path, FileFeatures]:
    """Every feature kind of every path, decoded in worker processes, with a progress bar;
    a file without a second of sound gets an error, so it is skipped like an unreadable one."""
    from rich.progress import track

    # closed on the way out: a stop (Ctrl-C) that lands outside the generator still ends its workers before
    # the command prints its one line, not later, at interpreter exit, when multiprocessing complains of leaks
    with closing(iter_file_features(paths, tuple(FEATURE_SHAPES), workers)) as results:
        done = track(results, total=len(paths), description="Extracting features", **progress_display(progress))
        return {result.path: _skip_if_silent(result) for result in done}


def _skip_if_silent(result: FileFeatures) -> FileFeatures:
    """result, with an error when it decoded but every second is silent: it would take a split's place and give no clips."""
    if result.error is None and result.silent.all():
        return dataclasses.replace(result, error=f"{result.path}: no sound: every second is silent")
    return result
