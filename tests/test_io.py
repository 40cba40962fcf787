import json

import numpy as np
import pytest

from musicgenre.errors import MusicGenreError
from musicgenre.io import atomic_save_npy, atomic_write_json, atomic_write_text, read_json


def test_writes_create_folders_and_leave_no_temp_files(tmp_path):
    atomic_save_npy(tmp_path / "a" / "X.npy", np.arange(3, dtype=np.float32))
    atomic_write_json(tmp_path / "a" / "m.json", {"b": 1, "a": [1, 2]})
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "X.npy"), [0, 1, 2])
    text = (tmp_path / "a" / "m.json").read_text()
    assert json.loads(text) == {"b": 1, "a": [1, 2]} and text.index('"b"') < text.index('"a"')
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["X.npy", "m.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "X.npy"
    atomic_write_text(path, "old")
    with pytest.raises(ValueError):  # object arrays need pickles, refused midway through the write
        atomic_save_npy(path, np.array([object()]))
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]


def test_json_nested_beyond_the_parser_is_a_one_line_error(tmp_path):
    (tmp_path / "config.json").write_text("[" * 100_000)
    with pytest.raises(MusicGenreError, match="config.json: not a readable JSON file \\(nested too deeply\\)$"):
        read_json(tmp_path / "config.json")
