import json
import sys
from pathlib import Path

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


def test_a_stop_just_after_a_rename_is_the_stop_and_leaves_the_output_whole(tmp_path, stop_after_rename, monkeypatch):
    """The file's cleanup unlinked a temporary file already renamed: FileNotFoundError hid the stop. Replacing a
    folder in two renames (where the system cannot swap two paths), a stop between them tried to put the old one
    back over the new (Directory not empty)."""
    import musicgenre.io as io
    from musicgenre.io import write_dir

    monkeypatch.setattr(io, "_exchange", lambda a, b: False)
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
    monkeypatch.setattr(io, "_exchange", lambda a, b: False)  # the two renames, where the system cannot swap
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        io.write_dir(out, True, lambda tmp: atomic_write_text(tmp / "new.txt", "new"))
    assert [p.name for p in tmp_path.iterdir()] == ["run"] and [p.name for p in out.iterdir()] == ["new.txt"]


@pytest.mark.skipif(sys.platform != "linux", reason="renameat2's RENAME_EXCHANGE is Linux's")
@pytest.mark.parametrize("old_is_a_file", [False, True])
def test_an_output_replaced_is_swapped_with_the_new_one_in_one_step(tmp_path, monkeypatch, old_is_a_file):
    """Moved aside, then the new one moved in: a kill between the two renames left no output under its name at all,
    the old one only as a hidden .run.old-PID that nothing put back. Swapped in one system call, there is no such moment;
    a stop right after it is taken once the old one is deleted."""
    import signal

    import musicgenre.io as io

    out = tmp_path / "run"
    if old_is_a_file:
        out.write_text("old")
    else:
        out.mkdir()
        (out / "old.txt").write_text("old")
    real, swapped = io._exchange, []

    def exchange(a, b):
        swapped.append(real(a, b))
        if not swapped[-1]:
            pytest.skip("this file system cannot swap two paths (RENAME_EXCHANGE): the two renames are tested above")
        assert [p.name for p in b.iterdir()] == ["new.txt"] and (a.is_file() if old_is_a_file else a.is_dir())
        signal.raise_signal(signal.SIGINT)
        return swapped[-1]

    monkeypatch.setattr(io, "_exchange", exchange)
    with pytest.raises(KeyboardInterrupt):
        io.write_dir(out, True, lambda tmp: atomic_write_text(tmp / "new.txt", "new"))
    assert swapped == [True]
    assert [p.name for p in tmp_path.iterdir()] == ["run"] and [p.name for p in out.iterdir()] == ["new.txt"]


def test_long_names_fit_their_temporary_twins_and_a_name_too_long_above_out_is_refused_first(tmp_path):
    """A 250-byte --out was refused: its hidden twins' names (".NAME.probe-XXXXXXXX") passed 255 bytes. A name too
    long in a missing folder above --out passed the check: train trained, then failed to save with Python's errno
    message, leaving the folders it had made."""
    from musicgenre.io import check_out_dir, write_dir

    long = tmp_path / ("b" * 250)
    write_dir(long, False, lambda tmp: atomic_write_text(tmp / ("c" * 250), "new"))
    assert [p.name for p in long.iterdir()] == ["c" * 250] and [p.name for p in tmp_path.iterdir()] == [long.name]
    out = tmp_path / "d2" / ("a" * 300) / "x"
    with pytest.raises(MusicGenreError, match=f"^{out}: cannot be written \\(File name too long in {tmp_path / 'd2'}; "):
        check_out_dir(out)
    assert [p.name for p in tmp_path.iterdir()] == [long.name]  # d2, made to find out, removed
    check_out_dir(tmp_path / "d3" / "e" / "x")  # folders that can be made are not left behind by the check either
    assert [p.name for p in tmp_path.iterdir()] == [long.name]
    # right under a folder that is there (Python's own lookup fails first), as the last name, and for out_folder
    # (sweep, reproduce), which made the folders above it before finding it could not make its own
    from musicgenre.io import out_folder

    for out in (tmp_path / ("z" * 300) / "run", tmp_path / ("q" * 256), tmp_path / "d4" / "a" / ("z" * 300) / "x"):
        for check in (check_out_dir, out_folder):
            with pytest.raises(MusicGenreError, match=f"^{out}: cannot be written \\(File name too long in .*; choose another --out\\)$"):
                check(out)
        assert [p.name for p in tmp_path.iterdir()] == [long.name]


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
    with pytest.raises(MusicGenreError, match=f"^{tmp_path / 'sweep'}: cannot be written \\(Read-only file system in .*; choose another --out\\)$"):
        io_mod.out_folder(tmp_path / "sweep")


def test_a_mount_point_is_not_replaced_by_overwrite(tmp_path, monkeypatch):
    """Its rename failed with Python's errno (Device or resource busy), after the whole training."""
    import musicgenre.io as io

    out = tmp_path / "mnt"
    out.mkdir()
    (out / "f").write_text("x")
    monkeypatch.setattr(io.os.path, "ismount", lambda p: Path(p) == out)
    with pytest.raises(MusicGenreError, match=f"^{out}: is a mount point, which cannot be replaced"):
        io.check_out_dir(out, overwrite=True)
    assert io.check_out_dir(out / "run", overwrite=True) == out / "run"  # a folder inside it is fine
