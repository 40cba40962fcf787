"""Decode audio files to 8 kHz mono and cut them into the 1-second segments the models classify."""

from __future__ import annotations

import os
import sys
from collections.abc import Hashable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from musicgenre.config import is_whole
from musicgenre.containers import flac_problem, mp3_frames, ogg_problem, wav_data_bytes, wav_problem
from musicgenre.errors import MusicGenreError
from musicgenre.io import as_path, not_a_file

SAMPLE_RATE = 8000
SEGMENT_SAMPLES = 8000
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
AUDIO_KINDS = ", ".join(ext.lstrip(".") for ext in AUDIO_EXTENSIONS)  # as error messages name them
# A file that decodes to fewer samples than its header declares is truncated; an MP3's Xing/Info header may
# count up to two frames of 1152 samples that its decoder does not return (encoder padding).
_MP3_LENGTH_SLACK = 2 * 1152
# An MP3's frames, counted one by one, may run longer than its decoded audio by its Xing/Info frame, the encoder's
# delay and padding (a few frames) and a last frame cut short: beyond this, the decoder stopped early.
_MP3_WALK_SLACK = 0.5
# libsndfile's frame count for a FLAC stream whose header records none (written to a pipe): SF_COUNT_MAX.
_UNKNOWN_FRAMES = 2**63 - 1
# Samples a file's header may declare and be read in one call (256 MB of float32, 25 minutes of 44.1 kHz stereo);
# beyond, it is read a block at a time, and a header that claims more than the file holds costs no memory.
_READ_WHOLE = 2**26


def _reason(exc: OSError) -> str:
    """The system's reason a path could not be reached or read: "permission denied"."""
    return (exc.strerror or str(exc)).lower()


def _os_problem(path: Path, exc: OSError) -> MusicGenreError:
    """That reason as one line naming the path."""
    return MusicGenreError(f"{path}: {_reason(exc)}")


def _declared_frames(f: sf.SoundFile, path: Path) -> int:
    """Frames the file's header declares: more than libsndfile read from a WAV or RF64 file cut short."""
    if f.format in ("WAV", "WAVEX", "RF64") and (sizes := wav_data_bytes(path)) is not None:
        declared, present = sizes
        return max(f.frames, f.frames * declared // max(present, 1))
    return f.frames


def _read_to_the_end(f: sf.SoundFile, block: int = 4096) -> np.ndarray:
    """The frames of a stream whose length libsndfile does not know, read a block at a time until none is left.
    Its FLAC reader then fails reading past the end ("psf_fseek() failed") rather than returning what is left:
    that ends the stream too, losing at most the last block's frames (under 0.1 s at 44.1 kHz)."""
    blocks = []
    while True:
        try:
            y = f.read(block, dtype="float32", always_2d=True)
        except sf.LibsndfileError:
            if not blocks:
                raise
            break
        if not len(y):
            break
        blocks.append(y)
    return np.concatenate(blocks) if blocks else np.zeros((0, f.channels), np.float32)


@contextmanager
def _decoder_messages_dropped() -> Iterator[None]:
    """Send the process's stderr (fd 2) to /dev/null meanwhile: libmpg123 writes its complaints about
    broken MP3 data there directly, dozens of lines above the one-line error that says what matters.
    Process-wide, so not for threads decoding at once (this package decodes in worker processes)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to keep clean
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode an audio file to float32 mono at its own sample rate (channels averaged), checked whole and
    finite: the samples and their rate."""
    path = as_path(path)
    try:
        if not path.is_file():
            raise MusicGenreError(f"{path}: {not_a_file(path, 'an audio file')}")
        open(path, "rb").close()  # a file we may not read is that, not corrupt audio
        empty = path.stat().st_size == 0
    except OSError as exc:
        raise _os_problem(path, exc) from exc
    if empty:  # said as it is, not as a format the decoder does not know
        raise MusicGenreError(f"{path}: an empty file (0 bytes)")
    try:
        # as bytes on POSIX: a name that is not UTF-8 (a Latin-1 rip in an old library) reaches Python with
        # surrogate escapes, which soundfile's own encoding of a str refuses; os.fsencode gives the name back
        native = os.fsencode(path) if os.name == "posix" else path
        with _decoder_messages_dropped(), sf.SoundFile(native) as f:
            declared, sr, container = _declared_frames(f, path), f.samplerate, f.format
            problems = {"OGG": ogg_problem, "FLAC": flac_problem, "WAV": wav_problem, "WAVEX": wav_problem,
                        "RF64": wav_problem}  # before reading: chained streams of other
            if container in problems and (problem := problems[container](path)):  # formats misread as one gave
                raise MusicGenreError(f"{path}: {problem}")  # absurd lengths
            if f.frames == _UNKNOWN_FRAMES:  # a FLAC stream written to a pipe records no length
                y = _read_to_the_end(f)
                declared = len(y)
            elif f.frames * f.channels > _READ_WHOLE:  # not allocated at once for what a header claims (a damaged
                y = _read_to_the_end(f, 1 << 16)  # Xing count asked numpy for 18 TiB): read as it decodes
            else:  # a codec libsndfile cannot seek in (GSM 6.10, G.721) is read by its frame count
                y = f.read(-1 if f.seekable() else f.frames, dtype="float32", always_2d=True)
        if container == "MP3":
            frames, counted = mp3_frames(path)
            declared = declared if counted else len(y)  # without the header, the decoder's length is its estimate
    except (sf.LibsndfileError, RuntimeError) as e:  # libsndfile refuses WAV files joined outright: said as that
        problem = None
        with suppress(OSError):
            problem = wav_problem(path)
        raise MusicGenreError(f"{path}: {problem or 'not a readable audio file (unknown format or corrupt data)'}") from e
    except OSError as exc:  # the container checks' own reads: the file gone or unreadable meanwhile
        raise _os_problem(path, exc) from exc
    if len(y) == 0:
        raise MusicGenreError(f"{path}: the file contains no audio samples")
    if len(y) + (_MP3_LENGTH_SLACK if container == "MP3" else 0) < declared:
        raise MusicGenreError(
            f"{path}: truncated file: only {len(y) / sr:.1f} s of the {declared / sr:.1f} s its header declares could "
            f"be decoded ({(declared - len(y)) / sr:.3g} s short)"
        )
    if container == "MP3" and frames > len(y) / sr + _MP3_WALK_SLACK:
        raise MusicGenreError(
            f"{path}: only {len(y) / sr:.1f} s of the {frames:.1f} s of MP3 frames in the file could be decoded (MP3 files "
            "joined with cat, a VBR file without a Xing header, or corrupt data): convert it, to FLAC for one, to read it whole"
        )
    if not np.isfinite(y).all():
        raise MusicGenreError(f"{path}: the audio has NaN or infinite samples (or ones too large for 32-bit floats)")
    return y.mean(axis=1, dtype=np.float64).astype(np.float32), sr  # summed in float32, 3e38 + 3e38 was infinite


def check_signal(signal: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A mono signal as an array, after refusing what no feature can be computed from: another shape, complex
    or non-numeric samples, NaN or infinity, a sample rate that is not a positive whole number."""
    signal = np.asarray(signal)
    if signal.ndim != 1 or signal.dtype.kind != "f":
        raise MusicGenreError(f"a mono signal is a 1-D array of floating-point samples (full scale 1.0), not "
                              f"{signal.dtype} {signal.shape}")
    if not np.isfinite(signal).all():
        raise MusicGenreError("the signal has NaN or infinite samples")
    if not is_whole(sr) or sr < 1:
        raise MusicGenreError(f"sample rate {sr!r}: give a positive whole number of samples per second")
    return signal.astype(np.float32, copy=False)


def resample(mono: np.ndarray, sr: int) -> np.ndarray:
    """A mono signal at rate `sr` brought to SAMPLE_RATE with soxr 'HQ' (librosa's default soxr_hq)."""
    mono = check_signal(mono, sr)
    if sr == SAMPLE_RATE:
        return mono
    # Like librosa, fix the length to ceil(n * ratio): soxr may return one sample fewer.
    out = np.zeros(int(np.ceil(len(mono) * SAMPLE_RATE / sr)), dtype=np.float32)
    resampled = soxr.resample(mono, sr, SAMPLE_RATE, quality="HQ")[: len(out)]
    out[: len(resampled)] = resampled
    return out


def load_audio(path: str | Path) -> np.ndarray:
    """Decode an audio file to float32 mono at SAMPLE_RATE, as librosa.load(path, sr=8000) would."""
    return resample(*decode(path))


PADS = ("zeros", "repeat")


def segment(y: np.ndarray, pad: str = "zeros") -> np.ndarray:
    """Cut a signal into rows of SEGMENT_SAMPLES, always at least one. The last is filled out with zeros, the
    study's recipe (`extract`), or with pad="repeat" with its own audio repeated (`predict`): zeros made a short
    clip's features those of near-silence, which a model read as confident classical."""
    if pad not in PADS:
        raise MusicGenreError(f"unknown pad {pad!r}: choose one of {', '.join(PADS)}")
    y = check_signal(y)
    n_segments = max(1, -(-len(y) // SEGMENT_SAMPLES))
    full, last = np.split(y, [(n_segments - 1) * SEGMENT_SAMPLES])
    last = np.resize(last, SEGMENT_SAMPLES) if pad == "repeat" else np.pad(last, (0, SEGMENT_SAMPLES - len(last)))
    return np.concatenate([full, last]).reshape(n_segments, SEGMENT_SAMPLES)


def audio_under(folder: Path) -> tuple[set[Path], list[str], list[Path]]:
    """Audio files anywhere under `folder`, through symlinked subfolders too (an album linked into a
    library), each real folder walked once, so that a link loop ends; an error line for each folder
    that could not be listed; and the folders walked, by the path they were reached by. Hidden files and
    folders (names starting with a dot: a trash folder, macOS's ._ metadata files) are left out."""
    found: set[Path] = set()
    walked: dict[str, Path] = {}  # real path: the path it was reached by
    errors: list[str] = []

    def unreadable(exc: OSError) -> None:
        errors.append(f"{exc.filename}: this folder cannot be read ({_reason(exc)})")

    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in walked:
            dirnames.clear()
            continue
        walked[real] = Path(dirpath)
        # sorted: a folder reached twice is named by its first path in sorted order, on any filesystem
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        # every entry named as audio, a link to nothing or a pipe included: reading it reports what it is
        found |= {p for name in filenames
                  if not name.startswith(".") and (p := Path(dirpath, name)).suffix.lower() in AUDIO_EXTENSIONS}
    return found, sorted(errors), list(walked.values())


def file_key(path: Path) -> Hashable:
    """What identifies a file among paths: its device and inode (links and hard links followed), so that a file
    reached by two paths counts once; for a path that reaches no file (a broken or looping link, one we may
    not look at), its own absolute path."""
    try:
        if path.is_file():
            st = path.stat()
            return st.st_dev, st.st_ino
    except OSError:
        pass
    return path.absolute()


def scan_audio(path: Path) -> tuple[list[Path], list[str]]:
    """One argument's audio files, sorted (the file itself, or those under a folder), and an error line for each
    folder under it that could not be read; an argument that names no audio at all raises its one-line error."""
    try:
        if path.is_file():
            return [path], []
        if path.is_dir():
            files, errors, _ = audio_under(path)
            if not files and not errors:
                raise MusicGenreError(f"{path}: no audio files ({AUDIO_KINDS}) in this folder")
            return sorted(files), errors
        gone = not path.exists() and not path.is_symlink()
        raise MusicGenreError(f"{path}: {'no such file or folder' if gone else not_a_file(path, 'an audio file')}")
    except OSError as exc:
        raise _os_problem(path, exc) from exc

