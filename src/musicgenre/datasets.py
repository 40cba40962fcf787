"""Load and validate the study's dataset layout: ROOT/{train,val,test}/{mfccs,melgrams}/{X.npy,labels.npy}."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicgenre.errors import MusicGenreError
from musicgenre.io import not_a_file

FEATURE_SHAPES: dict[str, tuple[int, ...]] = {"mfcc": (26,), "melgram": (21, 128)}
FEATURE_DIRS: dict[str, str] = {"mfcc": "mfccs", "melgram": "melgrams"}
MELGRAM_RANGE = (-80.0, 0.0)
SPLITS = ("train", "val", "test")  # also the order of extract's split-ratio shares (two shares make no test split)
DATA_ENV = "MUSICGENRE_DATA"
DATA_HINT = (
    "get the study's dataset (folder data/music_genre_data_di of the study's public repository) "
    "or build one with `musicgenre extract`, then pass --data ROOT or set MUSICGENRE_DATA"
)


@dataclass(frozen=True)
class Dataset:
    """One split of one representation: float32 features, int64 class indices, the class names. Checked when
    made (from files or by a caller of the API), so that nothing trains or scores on arrays that do not fit."""

    X: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    features: str
    split: str

    def __post_init__(self) -> None:
        where = f"{self.split} split of {self.features} features"
        if self.features not in FEATURE_SHAPES:
            raise MusicGenreError(f"unknown features {self.features!r}: choose one of {', '.join(FEATURE_SHAPES)}")
        object.__setattr__(self, "classes", genre_tuple(self.classes, where))
        X = validate_features(np.asarray(self.X), self.features, where)
        object.__setattr__(self, "X", own_copy(X, self.X))
        if len(self.X) == 0:  # nothing to train on or score: torch.cat failed on it
            raise MusicGenreError(f"{where}: no rows")
        y = np.asarray(self.y)
        if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(self.X):
            raise MusicGenreError(f"{where}: y must be {len(self.X)} whole-number class indices (one per row of X), "
                                  f"got {y.dtype} {y.shape}")
        if y.min() < 0 or y.max() >= len(self.classes):  # y is not empty: X has rows
            raise MusicGenreError(f"{where}: y holds class index {y.min() if y.min() < 0 else y.max()}, outside "
                                  f"0..{len(self.classes) - 1} ({len(self.classes)} classes)")
        object.__setattr__(self, "y", own_copy(y.astype(np.int64, copy=False), self.y))

    def __len__(self) -> int:
        return len(self.y)


def check_dataset(obj: object, name: str) -> None:
    """Refuse anything but a Dataset where one is needed (a mistake of the API's callers), naming the argument."""
    if not isinstance(obj, Dataset):
        hint = ": load_dataset gives a dict of splits, pass one of them (data['train'])" if isinstance(obj, dict) else ""
        raise MusicGenreError(f"{name} must be a Dataset, not {type(obj).__name__}{hint}")


def own_copy(a: np.ndarray, given: object) -> np.ndarray:
    """torch_ready(a), copied where it still shares memory with what the caller gave (`given`): checked when the
    Dataset was made, it must stay so (labels the caller changed after were read out of range by the fused epoch)."""
    return np.array(a, order="C") if np.may_share_memory(a, np.asarray(given)) else torch_ready(a)


def torch_ready(a: np.ndarray) -> np.ndarray:
    """`a` as torch.from_numpy takes it as it is, copied where it is not C-contiguous (a reversed view, which torch
    refuses: training crashed on one) or not writable (a read-only mmap, which torch warns of)."""
    return a if a.flags.c_contiguous and a.flags.writeable else np.array(a, order="C")


def resolve_data_root(data: str | os.PathLike | None) -> Path:
    """The data root from --data, else $MUSICGENRE_DATA, else a clear error saying where to get it."""
    source = ""
    if data is None:
        data, source = os.environ.get(DATA_ENV), f" (from ${DATA_ENV})"
    if not data:
        raise MusicGenreError(f"no data root given: {DATA_HINT}")
    root = Path(data)
    if not (root / "train").is_dir():
        what = ("not a data root (no train/ folder inside)" if root.is_dir() else
                "a file, not a data root folder" if root.exists() else "no such folder")
        raise MusicGenreError(f"{root}{source}: {what}; {DATA_HINT}")
    return root


def split_dir(root: Path, split: str, features: str) -> Path:
    """Where one split's arrays of one representation live."""
    if features not in FEATURE_DIRS:
        raise MusicGenreError(f"unknown features {features!r}: choose one of {', '.join(FEATURE_DIRS)}")
    return Path(root) / split / FEATURE_DIRS[features]


def has_split(root: Path, split: str, features: str) -> bool:
    """Whether the split exists with both of its files."""
    d = split_dir(root, split, features)
    return (d / "X.npy").is_file() and (d / "labels.npy").is_file()


def _load_npy(path: Path) -> np.ndarray:
    """An array from a .npy file, never unpickled; a one-line error naming the file otherwise."""
    if not path.is_file():
        raise MusicGenreError(f"{path}: {not_a_file(path, 'a .npy array')}")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError:  # numpy's message would suggest allow_pickle=True: we never unpickle
        raise MusicGenreError(f"{path}: not a readable .npy array of numbers or strings "
                              f"(cut short, pickled objects, or not .npy)") from None
    except (OSError, EOFError) as exc:
        raise MusicGenreError(f"{path}: unreadable .npy file ({exc})") from None
    except MemoryError:  # numpy allocates what the header declares before reading: a damaged header can ask for TiBs
        raise MusicGenreError(f"{path}: declares an array larger than this machine's memory (a damaged header?)") from None
    if not isinstance(array, np.ndarray):  # np.load opens a zip (.npz) archive whatever the file's name
        array.close()
        raise MusicGenreError(f"{path}: a .npz archive, not a .npy array")
    return array


def validate_features(X: np.ndarray, features: str, source: str) -> np.ndarray:
    """Check shape, dtype and finiteness of a feature array and return it as float32 (finite as float32 too:
    a float64 value beyond float32's range would turn into infinity in training)."""
    shape = FEATURE_SHAPES[features]
    if X.ndim != 1 + len(shape) or X.shape[1:] != shape:
        want = "(N, " + ", ".join(map(str, shape)) + ")"
        raise MusicGenreError(f"{source}: {features} array has shape {X.shape}, expected {want}")
    if X.dtype.kind not in "iuf":
        raise MusicGenreError(f"{source}: array of dtype {X.dtype}, expected real numbers")
    with np.errstate(over="ignore"):
        X = X.astype(np.float32, copy=False)
    bad = ~np.isfinite(X).all(axis=tuple(range(1, X.ndim)))
    if bad.any():
        raise MusicGenreError(
            f"{source}: {int(bad.sum())} rows hold NaN, infinite or out-of-float32-range values"
            f" (first at row {int(np.argmax(bad))})"
        )
    if features == "melgram" and len(X):  # power_to_db(ref=max) with top_db 80: what predict computes
        low, high = float(X.min()), float(X.max())
        if low < MELGRAM_RANGE[0] or high > MELGRAM_RANGE[1]:
            raise MusicGenreError(f"{source}: melgram values run from {low:.7g} to {high:.7g}; the study's melgrams (and "
                                  "predict's) are decibels relative to each second's peak, from -80 to 0")
    return X


def is_genre_name(name: object) -> bool:
    """A usable genre label: a non-empty string without spaces at either end (a stray space would make a class
    of its own), control characters, or the surrogate escapes of a folder name that is not UTF-8 (no table,
    figure or JSON file could show them)."""
    return (isinstance(name, str) and bool(name) and name == name.strip()
            and not any(unicodedata.category(c) in ("Cc", "Cs") for c in name))


def genre_tuple(classes: Sequence[str], where: str) -> tuple[str, ...]:
    """`classes` as a tuple of distinct genre names (a list, tuple or array of them; one string is refused, not
    read as its letters)."""
    if not isinstance(classes, (list, tuple, np.ndarray)):
        raise MusicGenreError(f"{where}: classes must be a list of genre names, not {classes!r}")
    classes = tuple(classes)
    if not all(is_genre_name(c) for c in classes) or len(set(classes)) != len(classes):
        raise MusicGenreError(f"{where}: classes must be distinct genre names, not {classes!r}")
    return tuple(map(str, classes))  # numpy's strings as Python's


def load_split(
    root: str | os.PathLike, split: str, features: str, classes: tuple[str, ...] | None = None
) -> Dataset:
    """Load one split and validate it; `classes` (from train) fixes the label order, else the sorted unique labels."""
    d = split_dir(Path(root), split, features)
    if not d.is_dir():
        raise MusicGenreError(f"{root}: no {split} split of {features} features (no folder {d.relative_to(root)})")
    X = _load_npy(d / "X.npy")
    labels_path = d / "labels.npy"
    labels = _load_npy(labels_path)
    if labels.ndim != 1 or labels.dtype.kind not in "US":
        raise MusicGenreError(f"{labels_path}: expected a 1-D array of genre names, got {labels.dtype} {labels.shape}")
    try:
        labels = labels.astype(str)
    except UnicodeDecodeError:  # byte strings are read as ASCII
        raise MusicGenreError(f"{labels_path}: genre names stored as bytes that are not ASCII text") from None
    bad = [name for name in sorted(set(labels.tolist())) if not is_genre_name(name)]
    if bad:
        raise MusicGenreError(f"{labels_path}: {bad[0]!r} is not a genre name (empty, spaces at either end, or control characters)")
    X = validate_features(X, features, str(d / "X.npy"))
    if len(X) != len(labels):
        raise MusicGenreError(f"{d}: X.npy has {len(X)} rows but labels.npy has {len(labels)}")
    if len(X) == 0:
        raise MusicGenreError(f"{d / 'X.npy'}: empty split")
    classes = tuple(sorted(set(labels.tolist()))) if classes is None else genre_tuple(classes, f"{split} split's classes given")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(labels.tolist()) - index.keys())
    if unknown:
        raise MusicGenreError(
            f"{labels_path}: unknown genre label(s) {', '.join(map(repr, unknown))}; known: {', '.join(classes)}"
        )
    y = np.fromiter((index[s] for s in labels), dtype=np.int64, count=len(labels))
    return Dataset(X=X, y=y, classes=tuple(classes), features=features, split=split)


def load_dataset(
    root: str | os.PathLike | None, features: str, splits: str | Sequence[str] = ("train", "val")
) -> dict[str, Dataset]:
    """Load train plus whichever of the other requested splits exist (a split with one of its two files
    is an error, not skipped); classes come from train, which must hold at least two. `splits` names splits
    among SPLITS (one name alone is one split, not its letters)."""
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    if unknown := [s for s in splits if s not in SPLITS]:
        raise MusicGenreError(f"unknown split {unknown[0]!r}: choose among {', '.join(SPLITS)}")
    root = resolve_data_root(root)
    train = load_split(root, "train", features)
    if len(train.classes) < 2:
        raise MusicGenreError(
            f"{split_dir(root, 'train', features) / 'labels.npy'}: one genre only ({train.classes[0]!r}); "
            "a classifier needs at least two"
        )
    out = {"train": train}
    for split in splits:
        d = split_dir(root, split, features)
        if split != "train" and ((d / "X.npy").exists() or (d / "labels.npy").exists()):
            out[split] = load_split(root, split, features, train.classes)
    return out


def data_record(root: str | os.PathLike, splits: dict[str, Dataset]) -> dict:
    """What a run records of the data it was trained on (config.json's "data"): the root, the splits read and
    their digest."""
    return {"root": str(Path(root).resolve()), "splits": sorted(splits), "digest": data_digest(splits)}


def data_digest(splits: dict[str, Dataset]) -> str:
    """A fingerprint of loaded splits (their features, labels and classes), saved with a long job so that its
    resumption can tell that the data under the same path has changed since, and refuse to mix the two, and with
    each run (data_record), so that evaluate, ensemble and calibrate can tell its val split may hold training clips."""
    h = hashlib.sha256()
    for name in sorted(splits):
        d = splits[name]
        for part in (name, d.features, "\n".join(d.classes)):
            h.update(part.encode("utf-8", "surrogateescape") + b"\0")
        h.update(np.ascontiguousarray(d.X))  # the arrays' own buffers: no copy
        h.update(np.ascontiguousarray(d.y))
    return h.hexdigest()[:16]
