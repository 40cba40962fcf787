"""Loading the study's dataset, and each validation error on a crafted bad file."""

from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import GENRES, write_split
from musicgenre.datasets import load_dataset, load_split, resolve_data_root
from musicgenre.errors import MusicGenreError


def test_loads_real_mfcc_train_and_val(study_data):
    data = load_dataset(study_data, "mfcc")
    assert set(data) == {"train", "val"}  # the test split is withheld here
    train, val = data["train"], data["val"]
    assert train.X.shape == (3200, 26) and val.X.shape == (800, 26)
    assert train.X.dtype == np.float32 and train.y.dtype == np.int64
    assert train.classes == GENRES and val.classes == GENRES
    assert np.bincount(train.y).tolist() == [800] * 4
    raw = np.load(study_data / "train" / "mfccs" / "labels.npy")
    assert [train.classes[i] for i in train.y[:50]] == raw[:50].tolist()


def test_data_root_from_env_and_missing(monkeypatch, study_data, tmp_path):
    monkeypatch.setenv("MUSICGENRE_DATA", str(study_data))
    assert resolve_data_root(None) == study_data
    monkeypatch.delenv("MUSICGENRE_DATA")
    with pytest.raises(MusicGenreError, match="music_genre_data_di"):
        resolve_data_root(None)
    with pytest.raises(MusicGenreError, match="no train/ folder"):
        resolve_data_root(tmp_path)


def _root(tmp_path, X, labels, features="mfcc"):
    write_split(tmp_path, "train", features, X, labels)
    return tmp_path


GOOD_LABELS = np.array(GENRES * 2)


@pytest.mark.parametrize(
    "X, labels, message",
    [
        (np.zeros((8, 25)), GOOD_LABELS, r"shape \(8, 25\), expected \(N, 26\)"),
        (np.zeros((7, 26)), GOOD_LABELS, "X.npy has 7 rows but labels.npy has 8"),
        (np.where(np.eye(8, 26) > 0, np.nan, 0.0), GOOD_LABELS, "8 rows hold NaN"),
        (np.full((8, 26), np.inf), GOOD_LABELS, "NaN, infinite"),
        (np.zeros((8, 26)), np.arange(8), "expected a 1-D array of genre names"),
        (np.zeros((0, 26)), np.array([], dtype="<U5"), "empty split"),
        (np.float64(3), GOOD_LABELS, r"shape \(\), expected \(N, 26\)"),
        (np.zeros((8, 26), dtype=complex), GOOD_LABELS, "dtype complex128, expected real numbers"),
        (np.where(np.eye(8, 26) > 0, 1e300, 0.0), GOOD_LABELS, "8 rows hold NaN, infinite or out-of-float32-range"),
        # an empty name, or a stray space, would otherwise train a class of its own
        (np.zeros((8, 26)), np.array(GENRES * 2)[:7].tolist() + [""], "labels.npy: '' is not a genre name"),
        (np.zeros((8, 26)), np.array(GENRES * 2)[:7].tolist() + ["blues "], "labels.npy: 'blues ' is not a genre name"),
    ],
)
def test_validation_errors_name_the_file(tmp_path, X, labels, message):
    root = _root(tmp_path, X, labels)
    with pytest.raises(MusicGenreError, match=message) as err:
        load_split(root, "train", "mfcc")
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)


def test_melgram_shape_checked(tmp_path):
    root = _root(tmp_path, np.zeros((8, 128, 21)), GOOD_LABELS, "melgram")
    with pytest.raises(MusicGenreError, match=r"expected \(N, 21, 128\)"):
        load_split(root, "train", "melgram")


def test_unknown_label_in_val(tmp_path):
    write_split(tmp_path, "train", "mfcc", np.zeros((8, 26)), GOOD_LABELS)
    write_split(tmp_path, "val", "mfcc", np.zeros((2, 26)), ["blues", "jazz"])
    with pytest.raises(MusicGenreError, match=r"val/mfccs/labels.npy: unknown genre label\(s\) 'jazz'"):
        load_dataset(tmp_path, "mfcc")


def test_pickled_object_array_is_refused(tmp_path):
    d = tmp_path / "train" / "mfccs"
    d.mkdir(parents=True)
    np.save(d / "X.npy", np.array([{"a": 1}] * 8, dtype=object), allow_pickle=True)
    np.save(d / "labels.npy", GOOD_LABELS)
    with pytest.raises(MusicGenreError, match="not a readable .npy array of numbers or strings") as err:
        load_split(tmp_path, "train", "mfcc")
    assert "allow_pickle" not in str(err.value)  # numpy's hint to unpickle is not passed on


def test_missing_and_corrupt_files(tmp_path, monkeypatch):
    with pytest.raises(MusicGenreError, match="no train split of mfcc features \\(no folder train/mfccs\\)"):
        load_split(tmp_path, "train", "mfcc")
    monkeypatch.setenv("MUSICGENRE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(MusicGenreError, match="nowhere \\(from \\$MUSICGENRE_DATA\\): no such folder"):
        resolve_data_root(None)
    monkeypatch.setenv("MUSICGENRE_DATA", str(tmp_path))
    with pytest.raises(MusicGenreError, match="\\(from \\$MUSICGENRE_DATA\\): not a data root \\(no train/ folder inside\\)"):
        resolve_data_root(None)
    d = tmp_path / "train" / "mfccs"
    d.mkdir(parents=True)
    (d / "X.npy").write_bytes(b"not numpy at all")
    np.save(d / "labels.npy", GOOD_LABELS)
    with pytest.raises(MusicGenreError, match="X.npy"):
        load_split(tmp_path, "train", "mfcc")
    np.save(d / "X.npy", np.zeros((8, 26)))
    (d / "X.npy").write_bytes((d / "X.npy").read_bytes()[:-100])  # cut short
    with pytest.raises(MusicGenreError, match="X.npy: not a readable .npy array .*cut short"):
        load_split(tmp_path, "train", "mfcc")
    np.save(d / "X.npy", np.zeros((8, 26)))
    data = (d / "X.npy").read_bytes()
    (d / "X.npy").write_bytes(data.replace(b"(8, 26)", b"(100000000000, 26)", 1))  # a header asking for 19 TiB
    with pytest.raises(MusicGenreError, match="X.npy: declares an array larger than this machine's memory"):
        load_split(tmp_path, "train", "mfcc")
    with open(d / "X.npy", "wb") as f:  # an .npz archive under the .npy name
        np.savez(f, X=np.zeros((8, 26)))
    with pytest.raises(MusicGenreError, match="X.npy: a .npz archive, not a .npy array$"):
        load_split(tmp_path, "train", "mfcc")
    (d / "X.npy").unlink()
    (d / "X.npy").mkdir()
    with pytest.raises(MusicGenreError, match="X.npy: a folder, not a .npy array$"):
        load_split(tmp_path, "train", "mfcc")


def test_byte_string_labels_are_read_as_ascii_and_others_refused(tmp_path):
    write_split(tmp_path, "train", "mfcc", np.zeros((8, 26)), np.array(GOOD_LABELS).astype("S"))
    assert load_split(tmp_path, "train", "mfcc").classes == tuple(sorted(set(GOOD_LABELS)))
    np.save(tmp_path / "train" / "mfccs" / "labels.npy", np.array([b"caf\xe9"] * 8))
    with pytest.raises(MusicGenreError, match="labels.npy: genre names stored as bytes that are not ASCII text$"):
        load_split(tmp_path, "train", "mfcc")


def test_optional_splits_and_test_split(tmp_path):
    X = np.random.default_rng(0).normal(size=(8, 26))
    write_split(tmp_path, "train", "mfcc", X, GOOD_LABELS)
    assert set(load_dataset(tmp_path, "mfcc", ("train", "val", "test"))) == {"train"}
    write_split(tmp_path, "test", "mfcc", X[:4], GOOD_LABELS[:4])
    assert set(load_dataset(tmp_path, "mfcc", ("train", "val", "test"))) == {"train", "test"}


def test_a_split_with_one_of_its_files_is_an_error_not_skipped(tmp_path):
    write_split(tmp_path, "train", "mfcc", np.zeros((8, 26)), GOOD_LABELS)
    write_split(tmp_path, "val", "mfcc", np.zeros((8, 26)), GOOD_LABELS)
    (tmp_path / "val" / "mfccs" / "X.npy").unlink()
    with pytest.raises(MusicGenreError, match="val/mfccs/X.npy: no such file"):
        load_dataset(tmp_path, "mfcc")


def test_training_data_needs_two_genres(tmp_path):
    write_split(tmp_path, "train", "mfcc", np.zeros((8, 26)), ["blues"] * 8)
    with pytest.raises(MusicGenreError, match="train/mfccs/labels.npy: one genre only \\('blues'\\)"):
        load_dataset(tmp_path, "mfcc")


def test_genre_names_may_hold_any_text_but_control_characters_and_undecodable_bytes():
    from musicgenre.datasets import is_genre_name

    assert all(map(is_genre_name, ["Hip\u00a0Hop", "\u067e\u0627\u067e\u200c\u0631\u0627\u06a9", "rock", "r|b"]))
    assert not any(map(is_genre_name, ["", " rock", "ro\nck", "bell\x07", "caf\udce9"]))


def test_what_stands_where_an_array_should_is_named(small_mfcc_root, tmp_path):
    """A pipe, a link loop and a link to nothing were all "file not found"; a file given as the data root
    was "no such folder"."""
    X = small_mfcc_root / "val" / "mfccs" / "X.npy"
    X.unlink()
    os.mkfifo(X)
    with pytest.raises(MusicGenreError, match=r"X.npy: not a regular file \(a device, pipe or socket\), so not a .npy array$"):
        load_split(small_mfcc_root, "val", "mfcc")
    X.unlink()
    X.symlink_to(X)
    with pytest.raises(MusicGenreError, match=r"X.npy: a link that leads to no file \(broken, or a loop\)$"):
        load_split(small_mfcc_root, "val", "mfcc")
    with pytest.raises(MusicGenreError, match="manifest.json: a file, not a data root folder; get the study's"):
        (tmp_path / "manifest.json").write_text("{}")
        load_dataset(tmp_path / "manifest.json", "mfcc")
