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


def test_a_full_disk_names_the_file_being_written_not_its_temporary_twin(tmp_path, monkeypatch):
    """ENOSPC carries no file name, so the command said only "[Errno 28] No space left on device"; numpy's
    short write said "438144 requested and 3040 written"."""
    import errno
    import os

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(MusicGenreError, match=f"^{tmp_path / 'm.json'}: cannot be written \\(no space left on device\\)$"):
        atomic_write_json(tmp_path / "m.json", {"a": 1})
    monkeypatch.undo()

    def short(self, *args, **kwargs):
        raise OSError("438144 requested and 3040 written")

    monkeypatch.setattr(np.lib.format, "write_array", lambda f, a, **kw: short(a))
    with pytest.raises(MusicGenreError, match=f"^{tmp_path / 'X.npy'}: cannot be written \\(no space left on device\\)$"):
        atomic_save_npy(tmp_path / "X.npy", np.zeros(3))
    assert list(tmp_path.iterdir()) == []


def test_a_stop_just_after_a_rename_is_the_stop_and_leaves_the_output_whole(tmp_path, stop_after_rename):
    """The file's cleanup unlinked a temporary file already renamed: FileNotFoundError hid the stop. Replacing a
    folder, a stop between its two renames tried to put the old one back over the new (Directory not empty)."""
    from musicgenre.io import write_dir

    stop_after_rename.at = 1
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(tmp_path / "a.txt", "new")
    assert (tmp_path / "a.txt").read_text() == "new"
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("old")
    stop_after_rename.at = 2  # at the second rename from here: the new file's (1), then the old folder set aside (2)
    with pytest.raises(KeyboardInterrupt):
        write_dir(out, True, lambda tmp: atomic_write_text(tmp / "new.txt", "new"))
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "run"]  # no .run.old-PID, no .run.tmp-PID


def test_a_stop_while_the_replaced_folder_is_deleted_leaves_no_hidden_copy(tmp_path, monkeypatch):
    """The old folder was deleted after the stop could be taken: a stop then left .run.old-PID behind."""
    import signal

    import musicgenre.io as io

    real = io.remove_path

    def remove_path(path):
        if ".old-" in path.name:
            signal.raise_signal(signal.SIGINT)  # a stop as the old folder's deletion starts
        real(path)

    monkeypatch.setattr(io, "remove_path", remove_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        io.write_dir(out, True, lambda tmp: atomic_write_text(tmp / "new.txt", "new"))
    assert [p.name for p in tmp_path.iterdir()] == ["run"] and [p.name for p in out.iterdir()] == ["new.txt"]


def test_a_file_that_cannot_be_written_in_a_folder_being_built_is_named_where_it_was_going(tmp_path, monkeypatch):
    """The error named the file inside the hidden temporary folder, which no longer exists when it is read."""
    import errno
    import os

    from musicgenre.io import write_dir

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(MusicGenreError, match=f"^{tmp_path / 'run' / 'm.json'}: cannot be written \\(no space left on device\\)$"):
        write_dir(tmp_path / "run", False, lambda tmp: atomic_write_json(tmp / "m.json", {}))
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_written_into_is_named_not_its_temporary_file(tmp_path, monkeypatch):
    """On a read-only mount the temporary file could not be made: the error named `.model.safetensors.x7q.tmp`
    with Python's [Errno 30]; a sweep's folder that could not be made, the raw error too."""
    import errno

    import musicgenre.io as io_mod

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".m.json.x7q.tmp"))

    monkeypatch.setattr(io_mod.tempfile, "mkstemp", read_only)
    with pytest.raises(MusicGenreError, match=f"^{tmp_path / 'm.json'}: cannot be written \\(read-only file system\\)$"):
        io_mod.atomic_write_bytes(tmp_path / "m.json", b"{}")
    monkeypatch.setattr(io_mod.Path, "mkdir", read_only)
    with pytest.raises(MusicGenreError, match=f"^{tmp_path / 'sweep'}: cannot be written \\(read-only file system\\)$"):
        io_mod.out_folder(tmp_path / "sweep")
