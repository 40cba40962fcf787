"""The study's two feature sets, computed for all 1-second segments of a file at once, and per file
in worker processes (what `extract` and `predict` both run).

mfcc reproduces pyAudioAnalysis 0.3.14 (the study's extractor) and melgram reproduces
librosa's melspectrogram + power_to_db(ref=np.max), so models trained on the study's arrays apply.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import InvalidStateError, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.fft import dct

from musicgenre.audio import PADS, SAMPLE_RATE, SEGMENT_SAMPLES, check_signal, decode, resample, segment
from musicgenre.config import is_whole, usable_cpus
from musicgenre.datasets import FEATURE_SHAPES
from musicgenre.errors import MusicGenreError
from musicgenre.io import stops_deferred

FRAME = 400  # samples per analysis frame, 50 ms at 8 kHz: both feature sets use it as window and hop
N_MFCC = 13
TOP_DB = 80.0
# A second whose samples span less than this (peaks under about -66 dBFS: digital silence, padding, a
# noise floor) is silent. Each second is scaled to full volume before its features, which would
# otherwise describe the noise floor as if it were music.
SILENCE_LEVEL = 1e-3


def _mfcc_filterbank(n_fft_bins: int = FRAME // 2, sr: int = SAMPLE_RATE) -> np.ndarray:
    """pyAudioAnalysis's 40 triangular filters (13 linear, 27 log), shape (40, n_fft_bins).

    It maps bin k to k / n_fft_bins * sr (not sr / 2); that quirk is kept, as the study's features have it.
    """
    n_lin, n_log = 13, 27
    edges = np.zeros(n_lin + n_log + 2)
    edges[:n_lin] = 133.33 + np.arange(n_lin) * (200 / 3)
    edges[n_lin:] = edges[n_lin - 1] * 1.0711703 ** np.arange(1, n_log + 3)
    low, centre, high = (edges[i : len(edges) - 2 + i, None] for i in range(3))
    heights = 2.0 / (high - low)
    bins = np.arange(n_fft_bins)
    freqs = bins / n_fft_bins * sr

    def first_bin(f: np.ndarray) -> np.ndarray:
        return np.floor(f * n_fft_bins / sr) + 1

    rising = (bins >= first_bin(low)) & (bins < first_bin(centre))
    falling = (bins >= first_bin(centre)) & (bins < first_bin(high))
    return np.where(rising, heights / (centre - low) * (freqs - low), 0.0) + np.where(
        falling, heights / (high - centre) * (high - freqs), 0.0
    )


_FILTERBANK_T = _mfcc_filterbank().T


def _check_segments(segments: np.ndarray) -> np.ndarray:
    """Segments as a 2-D array of finite real samples (audio.segment's rows), refusing anything else."""
    segments = np.asarray(segments)
    if segments.ndim != 2 or segments.shape[1] != SEGMENT_SAMPLES or segments.dtype.kind not in "iuf":
        raise MusicGenreError(f"segments must be real samples of shape (n, {SEGMENT_SAMPLES}), not {segments.dtype} {segments.shape}")
    if not np.isfinite(segments).all():
        raise MusicGenreError("segments hold NaN or infinite samples")
    return segments


def mfcc(segments: np.ndarray) -> np.ndarray:
    """Mean and std over 20 frames of 13 MFCCs per segment, (n, 26) float64, as pyAudioAnalysis computes them.

    Each segment is normalised on its own (DC removed, peak scaled to 1), as in the study.
    """
    x = _check_segments(segments).astype(np.float64) / 2.0**15
    x -= x.mean(axis=1, keepdims=True)
    x /= np.abs(x).max(axis=1, keepdims=True) + 1e-10
    frames = x.reshape(len(x), SEGMENT_SAMPLES // FRAME, FRAME)
    magnitude = np.abs(np.fft.rfft(frames, axis=-1)[..., : FRAME // 2]) / (FRAME // 2)
    log_energies = np.log10(magnitude @ _FILTERBANK_T + sys.float_info.epsilon)
    ceps = dct(log_energies, type=2, norm="ortho", axis=-1)[..., :N_MFCC]
    return np.concatenate([ceps.mean(axis=1), ceps.std(axis=1)], axis=1)


_numba_cache: tempfile.TemporaryDirectory | None = None  # where librosa's functions are cached, when nowhere else


def _melspectrogram() -> Callable[..., np.ndarray]:
    """librosa's melspectrogram. librosa has numba cache its compiled functions beside its files or in the user's
    cache folder; where neither can be written (a read-only install and home) its import raises, and they are
    cached in a temporary folder of this process instead."""
    global _numba_cache
    import librosa

    try:
        return librosa.feature.melspectrogram
    except RuntimeError as exc:
        if "cannot cache function" not in str(exc):
            raise
        import numba

        _numba_cache = tempfile.TemporaryDirectory(prefix="musicgenre-numba-")
        numba.config.CACHE_DIR = _numba_cache.name
        return librosa.feature.melspectrogram


def melgram(segments: np.ndarray) -> np.ndarray:
    """Log-mel spectrogram per segment, (n, 21, 128) float32 in [-80, 0] dB relative to the segment's peak.

    Equals librosa.power_to_db(melspectrogram(seg, sr=8000, n_fft=400, hop_length=400), ref=np.max).T
    for each segment, computed in one batched call.
    """
    x = _check_segments(segments).astype(np.float32)
    if len(x) == 0:  # librosa warns on an empty batch
        return np.zeros((0, *FEATURE_SHAPES["melgram"]), dtype=np.float32)
    power = _melspectrogram()(y=x, sr=SAMPLE_RATE, n_fft=FRAME, hop_length=FRAME)
    amin = np.float32(1e-10)
    db = 10.0 * np.log10(np.maximum(power, amin))
    peak_db = 10.0 * np.log10(np.maximum(power.max(axis=(1, 2), keepdims=True), amin))
    db = np.maximum(db - peak_db, -TOP_DB)
    return np.ascontiguousarray(db.transpose(0, 2, 1), dtype=np.float32)


def silent_seconds(signal: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Flag each second of a mono signal at rate `sr` that has no audible sound (its samples span under
    SILENCE_LEVEL): such seconds have no genre. A last, shorter second is judged on its own samples, not on
    padding. `file_features` judges the decoded samples before resampling, whose filter rings where a
    file starts or ends on a constant offset: that ringing would pass for sound."""
    signal = check_signal(signal, sr)
    full = len(signal) // sr
    ptp = np.ptp(signal[: full * sr].reshape(full, sr), axis=1)
    if len(signal) % sr:
        ptp = np.append(ptp, np.ptp(signal[full * sr:]))
    return ptp < SILENCE_LEVEL


_EXTRACTORS = {"mfcc": mfcc, "melgram": melgram}


def extract(segments: np.ndarray, kind: str) -> np.ndarray:
    """Compute the feature set named by kind ('mfcc' or 'melgram') for every segment."""
    if kind not in _EXTRACTORS:
        raise MusicGenreError(f"{kind!r}: unknown feature kind; choose one of {', '.join(FEATURE_SHAPES)}")
    return _EXTRACTORS[kind](segments)


@dataclass
class FileFeatures:
    """One decoded file: each feature kind for every second, which seconds are silent, its length; or its error."""

    path: Path
    features: dict[str, np.ndarray] = field(default_factory=dict)
    silent: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    duration: float = 0.0
    error: str | None = None


def check_request(kinds: Sequence[str], pad: str) -> None:
    """Refuse feature kinds or a pad that no file could be given (the caller's mistake, not a file's problem)."""
    if isinstance(kinds, str) or not isinstance(kinds, (list, tuple)) or not set(kinds) <= set(FEATURE_SHAPES):
        raise MusicGenreError(f"feature kinds must be a list among {', '.join(FEATURE_SHAPES)}, not {kinds!r}")
    if pad not in PADS:
        raise MusicGenreError(f"unknown pad {pad!r}: choose one of {', '.join(PADS)}")


def file_features(path: Path, kinds: tuple[str, ...], pad: str = "zeros") -> FileFeatures:
    """Decode one file and compute the given feature kinds (its last second filled out as audio.segment's `pad`
    says); a file that fails gives its one-line error, never raises (kinds or a pad of no use raise: check_request)."""
    check_request(kinds, pad)
    try:
        mono, sr = decode(path)
        y = resample(mono, sr)
        if not np.isfinite(y).all():  # soxr's output of samples near float32's largest
            raise MusicGenreError(f"{path}: its samples overflow when resampled (samples far beyond the [-1, 1] of audio)")
        if len(y) < FRAME:
            raise MusicGenreError(
                f"{path}: too short to analyse: {1000 * len(y) / SAMPLE_RATE:.1f} ms of audio, "
                f"less than one {1000 * FRAME // SAMPLE_RATE} ms analysis frame"
            )
        segments = segment(y, pad)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, naming the file
            features = {kind: extract(segments, kind) for kind in kinds}
        if not all(np.isfinite(f).all() for f in features.values()):
            raise MusicGenreError(f"{path}: its features overflow (samples far beyond the [-1, 1] of audio)")
        return FileFeatures(path, features, silent_seconds(mono, sr), len(y) / SAMPLE_RATE)
    except MusicGenreError as exc:
        return FileFeatures(path, error=str(exc))
    except Exception as exc:  # decoder, resampler or memory failures: one file's problem, not the batch's
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        return FileFeatures(path, error=f"{path}: could not be processed ({detail})")


def _start_worker(parent: int) -> None:
    """In a decoding worker: Ctrl-C and SIGTERM (`timeout` signals the whole process group) reach the workers
    too; they ignore them and the main process stops them, so the user sees one line, not one per worker. A
    main process killed outright (`kill -9`, out of memory) stops nothing: a worker then ends on its own once
    its parent (`parent`, the main process's pid, passed in: a worker still starting when it was killed would
    read its new parent here) has gone, instead of waiting for work forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def end_with_parent() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=end_with_parent, daemon=True).start()


def iter_file_features(paths: Sequence[Path], kinds: tuple[str, ...], workers: int | None = None,
                       pad: str = "zeros") -> Iterator[FileFeatures]:
    """file_features of each path, in order; several files are decoded at once in worker processes."""
    if isinstance(paths, (str, bytes, os.PathLike)):  # its characters would each be taken for a file
        raise MusicGenreError(f"paths must be a list of files, not one path: [{paths!r}]")
    check_request(kinds, pad)
    if workers is not None and (not is_whole(workers) or workers < 1):
        raise MusicGenreError(f"workers must be a whole number from 1 up (or None: one per core), not {workers!r}")
    workers = min(int(workers or usable_cpus()), len(paths))
    if workers <= 1:
        yield from (file_features(path, kinds, pad) for path in paths)
        return
    ctx = multiprocessing.get_context("spawn")  # forking after torch has started its threads is unsafe
    pool, finished = None, False
    try:
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker, initargs=(os.getpid(),))
        with stops_deferred():  # the workers start here, inheriting the block until they ignore them
            results = pool.map(file_features, paths, [kinds] * len(paths), [pad] * len(paths))
        for taken, result in enumerate(results, 1):
            finished = taken == len(paths)  # no work left once the last is taken, even if this is closed there
            yield result
    except (BrokenProcessPool, OSError) as exc:  # a worker killed (out of memory), or none could start
        raise MusicGenreError(f"the decoding worker processes failed ({type(exc).__name__}: {exc}); "
                              "--workers 1 decodes in this process (workers=1 in Python, where a script that decodes "
                              "in workers needs an `if __name__ == \"__main__\":` guard)") from exc
    finally:
        if pool is not None:
            pool.shutdown() if finished else _end_workers(pool)


def _quiet_cancelled_futures(hook: Callable[[threading.ExceptHookArgs], None]) -> Callable[[threading.ExceptHookArgs], None]:
    """`hook` (threading's excepthook) less one error: a pool's manager thread, finding its workers killed, sets an
    error on futures already cancelled and dies of InvalidStateError (CPython gh-107219), which printed a traceback
    around the one line of a stopped extract or predict."""

    def quiet(args: threading.ExceptHookArgs) -> None:
        if not (args.exc_type is InvalidStateError and "CANCELLED" in str(args.exc_value)):
            hook(args)

    quiet.quiets = True  # type: ignore[attr-defined]
    return quiet


def _end_workers(pool: ProcessPoolExecutor) -> None:
    """A pool left with work undone (a stop, an error, its results no longer wanted): its workers are killed, not
    waited for. Waiting would decode the files left, and at a stop the interpreter's exit could wait forever on
    workers that were never told to end. A second stop waits until they are reaped: landing between a reap and
    its record (Ctrl-C twice), it left a worker that could never be joined, and the interpreter's exit spun on
    it forever at full CPU."""
    processes = list((pool._processes or {}).values())  # the executor has no public way to reach them
    results = pool._result_queue
    if not getattr(threading.excepthook, "quiets", False):
        threading.excepthook = _quiet_cancelled_futures(threading.excepthook)
    pool.shutdown(wait=False, cancel_futures=True)
    with stops_deferred():
        for p in processes:
            p.kill()
        for p in processes:
            p.join()
    # A worker killed while sending a result (a long file's features) leaves the executor's thread waiting for
    # the rest of it, and the interpreter's exit waiting on that thread, forever: this process holds the pipe's
    # other write end. Closed, the wait ends (end of file) and the thread with it.
    if results is not None:
        results._writer.close()
