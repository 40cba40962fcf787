"""Atomic writes of files and folders: a reader (or a crash) never sees half of one, only the old one or the
new one; output paths are checked before any work (never an input, the current folder, or what is there
without overwrite); progress bars go to the terminal only."""

from __future__ import annotations

import ctypes
import errno
import json
import math
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from musicgenre.errors import MusicGenreError


@contextmanager
def stops_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back meanwhile and deliver them when it ends, for steps that must not be cut in
    two: renaming a finished output into place (the old one set aside, the new one in), starting worker
    processes (they inherit the block through exec on POSIX, so that a stop cannot kill one before it ignores
    stops). Two holds, since a signal blocked here can still be caught by another thread of ours, whose Python
    handler then runs here: the mask, and handlers that only note the signal. Off the main thread, no hold."""
    stops = (signal.SIGINT, signal.SIGTERM)
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    handlers = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in stops}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # one still pending arrives now, and is noted
        for s, handler in handlers.items():
            signal.signal(s, handler)
        if caught:
            signal.raise_signal(caught[0])  # now to the handler that was there: Ctrl-C's or SIGTERM's


def as_path(arg: Any, what: str = "file or folder") -> Path:
    """A path given as an argument (a str, bytes as os.listdir(b".") gives names, or a PathLike) as a Path,
    refusing what is no path and the empty string, which Path would read as the current folder."""
    if not isinstance(arg, (str, bytes, os.PathLike)):
        raise MusicGenreError(f"{arg!r} is not a path: give a str or a pathlib.Path")
    if not os.fspath(arg):
        raise MusicGenreError(f"'': an empty path names no {what}")
    return Path(os.fsdecode(arg))


def not_a_file(path: Path, what: str) -> str:
    """Why `path`, which is no regular file, cannot be read as `what` ("an audio file", "a .npy array"): a
    folder, a device, pipe or socket, a link that leads nowhere, or nothing at all."""
    if path.is_dir():
        return f"a folder, not {what}"
    if path.exists():
        return f"not a regular file (a device, pipe or socket), so not {what}"
    return "a link that leads to no file (broken, or a loop)" if path.is_symlink() else "no such file"


@contextmanager
def _atomic_file(path: str | Path) -> Iterator[IO[bytes]]:
    """Yield a temporary file beside path; on success it replaces path, on error it is removed."""
    path = Path(path)
    try:  # a folder that cannot be made or written into (read-only): named as the file, not its temporary twin
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=hidden_sibling(path, "tmp").name + ".")
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp makes it owner-only; results are meant to be shared
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)  # gone already when a stop lands just after the rename
        if isinstance(exc, OSError):  # a full disk names no file, numpy's short write says "N requested and M written"
            raise _write_error(path, exc) from exc
        raise


def _write_error(path: Path, exc: OSError) -> MusicGenreError:
    """A failed write as one line naming the file being written, not its hidden temporary twin."""
    short_write = exc.errno is None and " requested and " in str(exc)
    reason = "no space left on device" if short_write else (exc.strerror or str(exc)).lower()
    return MusicGenreError(f"{path}: cannot be written ({reason})")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes to path atomically, creating its folder if needed."""
    with _atomic_file(path) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text to path atomically; a file name in it that is not UTF-8 (surrogate escapes) is written
    as its own bytes."""
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"))


def atomic_save_npy(path: str | Path, array: np.ndarray) -> None:
    """Save an array in .npy format (no pickles) to path atomically."""
    with _atomic_file(path) as f:
        np.save(f, np.asarray(array), allow_pickle=False)


def finite_or_null(obj: Any) -> Any:
    """obj with every NaN or infinite float as None: JSON has no such numbers (json.dumps would write `NaN`,
    which strict JSON readers reject)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write obj as indented JSON (keys in insertion order; NaN and infinities as null) to path atomically."""
    try:
        text = json.dumps(finite_or_null(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except TypeError as exc:  # a value JSON has no form for (an object a caller put in a run's `extra`)
        raise MusicGenreError(f"{path}: cannot be written as JSON ({exc})") from None
    # a file name that is not UTF-8 holds surrogate escapes, which UTF-8 cannot encode: written as the JSON
    # escapes \udcXX, which read back to the same name
    atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"))


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing, unreadable or malformed one is a one-line error naming it (a pipe or
    device is not read: it could be read forever)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise MusicGenreError(f"{path}: {not_a_file(path, 'a JSON file')}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MusicGenreError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MusicGenreError(f"{path}: not a readable JSON file ({exc})") from None
    except RecursionError:  # nested deeper than Python's parser goes: no file of ours is
        raise MusicGenreError(f"{path}: not a readable JSON file (nested too deeply)") from None


def check_out_path(out: str | os.PathLike, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """The output path (lexically normalised; a link to a file or folder followed, as every command then writes
    where it leads), after refusing a device, pipe or socket (`/dev/null`), one under a file, or one that is,
    holds or lies inside any of `inputs` (what the command reads, which writing there could replace), or a path
    the system cannot even look up (a name too long)."""
    out = Path(os.path.normpath(as_path(out, "folder (--out)")))
    try:
        return _checked_out_path(out, inputs)
    except OSError as exc:
        raise _cannot_write(out, exc) from None


def _checked_out_path(out: Path, inputs: Sequence[str | os.PathLike]) -> Path:
    if out.exists() and not (out.is_dir() or out.is_file()):  # never replaced, --overwrite or not
        raise MusicGenreError(f"{out}: is a device, pipe or socket, not a place for output (choose another --out)")
    if out.is_symlink() and not out.exists():
        raise MusicGenreError(f"{out}: is a link to nothing (choose another --out)")
    if out.is_symlink():  # a link (runs -> /bigdisk/runs): written where it leads, the link kept
        out = Path(os.path.realpath(out))
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise MusicGenreError(f"{out}: {parent} is a file, not a folder (choose another --out)")
        if parent.is_symlink() and not parent.exists():
            raise MusicGenreError(f"{out}: {parent} is a link to nothing (choose another --out)")
    target = out.resolve()
    for path in inputs:
        found = Path(path).resolve()
        if found == target or target in found.parents or found in target.parents:
            raise MusicGenreError(f"{out}: overlaps the input {path}, which writing there could replace "
                                  "(choose an --out outside it)")
    return out


def _cannot_write(out: Path, exc: OSError) -> MusicGenreError:
    """An output path the system refused (permission, a read-only or full file system, a name too long), in one line."""
    where = Path(exc.filename).parent if exc.filename else out.parent
    return MusicGenreError(f"{out}: cannot be written ({exc.strerror} in {where}; choose another --out)")


def probe_out(out: Path) -> None:
    """Make the folders above `out` that are missing and a hidden folder beside it, then remove them all: a place
    where no folder can be made (permission bits do not tell root; a name too long) is refused before any work."""
    missing = [p for p in out.absolute().parents if not os.path.exists(p)]  # nearest first; no error for a long name
    with stops_deferred():  # a stop is taken once they are removed, not in between
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            os.rmdir(tempfile.mkdtemp(prefix=hidden_sibling(out, "probe").name, dir=out.parent))
        except OSError as exc:
            raise _cannot_write(out, exc) from None
        finally:
            for folder in missing:
                try:
                    folder.rmdir()
                except OSError:  # never made, or made by another meanwhile and not empty
                    pass


def out_folder(out: str | os.PathLike, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """An output folder to write into (created if needed), after check_out_path and, for a new one, probe_out; an
    existing file is refused."""
    out = check_out_path(out, inputs)
    if out.exists() and not out.is_dir():
        raise MusicGenreError(f"{out}: is a file, not a folder (choose another --out)")
    if not out.exists():
        probe_out(out)  # no folder above it is left behind when it cannot be made
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_write(out, exc) from None
    return out


def occupied(out: Path) -> bool:
    """Whether `out` holds something a folder written there would replace: a file, or a non-empty folder
    (an empty folder or a dangling link holds nothing)."""
    return out.exists() and (not out.is_dir() or any(out.iterdir()))


def check_out_dir(out: str | os.PathLike, overwrite: bool = False, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """The output path of a folder that will replace what is there, after refusing what check_out_path refuses,
    the current folder or one above it, an existing file or non-empty folder unless `overwrite`, and a place
    a mount point to replace, and a place where no folder can be made (probe_out)."""
    out = check_out_path(out, inputs)
    if out.resolve() in (Path.cwd(), *Path.cwd().parents):
        raise MusicGenreError(f"{out}: is or holds the current folder, which it would replace (choose another --out)")
    if occupied(out) and not overwrite:
        what = "is a file, which the output folder would replace" if out.is_file() else "already exists and is not empty"
        raise MusicGenreError(f"{out}: {what} (choose another --out, or --overwrite: overwrite=True in Python)")
    if overwrite and occupied(out) and os.path.ismount(out):  # its rename would fail after the work
        raise MusicGenreError(f"{out}: is a mount point, which cannot be replaced (choose a folder inside it as --out)")
    probe_out(out)
    return out


def prepare_out_dir(
    out: str | os.PathLike, overwrite: bool = False, inputs: Sequence[str | os.PathLike] = ()
) -> tuple[Path, Path]:
    """A fresh temporary sibling to fill, and the final path; refuses what check_out_dir refuses."""
    out = check_out_dir(out, overwrite, inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = hidden_sibling(out, "tmp")
    remove_path(tmp)
    tmp.mkdir()
    return tmp, out


def remove_path(path: Path) -> None:
    """Delete a file, a symlink (not what it points to) or a folder tree, if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def hidden_sibling(path: Path, kind: str) -> Path:
    """A hidden name beside `path` for its temporary twin (`kind` tmp, old, probe), its stem cut so that the name
    stays within the 255 bytes a file name may have whatever the length of `path`'s own."""
    return path.parent / f".{os.fsdecode(os.fsencode(path.name)[:STEM_BYTES])}.{kind}-{os.getpid()}"


STEM_BYTES = 200  # of a name, in a hidden sibling's: room for ".", ".probe-" and a process id


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux's renameat2 with RENAME_EXCHANGE), so that there is no moment
    without either; False where the system cannot (another OS or an old one, a file system without it)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_cwd, rename_exchange = -100, 2
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def commit_dir(tmp: Path, out: Path, overwrite: bool = True) -> Path:
    """Move a finished temporary directory into place: an old `out` (folder or file) is swapped with it in one step
    where the system can (Linux), else moved aside first (put back if the rename fails); deleted last. `tmp` never
    outlives a failure. Without `overwrite`, an `out` that became a file or a non-empty folder meanwhile is refused,
    not replaced."""
    committed = False
    try:
        with stops_deferred():  # a stop is taken after the renames, never between them
            if not overwrite and occupied(out):
                raise MusicGenreError(f"{out}: appeared while this was being written (choose another --out, or --overwrite: overwrite=True in Python)")
            old = None
            if not (out.exists() or out.is_symlink()):
                os.replace(tmp, out)
            elif _exchange(tmp, out):  # a kill at any moment leaves the old output or the new one in place
                old = tmp
            else:  # two renames: a kill between them leaves the old output as .NAME.old-PID
                old = hidden_sibling(out, "old")
                os.replace(out, old)
                try:
                    os.replace(tmp, out)
                except BaseException:
                    os.replace(old, out)
                    raise
            committed = True
            if old is not None:  # deleted before a stop is taken, so that no hidden copy of it is left behind
                remove_path(old)
    finally:
        if not committed:
            remove_path(tmp)
    return out


def write_dir(
    out: str | os.PathLike, overwrite: bool, fill: Callable[[Path], None], inputs: Sequence[str | os.PathLike] = ()
) -> Path:
    """Build a folder with `fill` in a temporary sibling, then move it into place (see commit_dir); on any
    error the temporary folder is deleted and `out` is left as it was. `inputs`: see check_out_path."""
    tmp, out = prepare_out_dir(out, overwrite, inputs)
    try:
        fill(tmp)
    except MusicGenreError as exc:  # a file that could not be written is named where it was going, not in tmp
        remove_path(tmp)
        raise MusicGenreError(str(exc).replace(str(tmp), str(out))) from exc
    except BaseException:
        remove_path(tmp)
        raise
    return commit_dir(tmp, out, overwrite)


def progress_display(wanted: bool) -> dict:
    """rich's `console` and `disable` arguments for a progress bar: on stderr, and only when `wanted` and that is a
    terminal, so that stdout keeps the results and a log of stderr the one-line errors."""
    from rich.console import Console

    console = Console(stderr=True)
    return {"console": console, "disable": not (wanted and console.is_terminal)}
