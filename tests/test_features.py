import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from pyAudioAnalysis import ShortTermFeatures

from musicgenre.audio import SAMPLE_RATE, SEGMENT_SAMPLES, load_audio, segment
from musicgenre.errors import MusicGenreError
from musicgenre.features import (FEATURE_SHAPES, SILENCE_LEVEL, _mfcc_filterbank, extract, file_features, melgram, mfcc,
                                 silent_seconds)
from musicgenre.reference import reference_melgram, reference_mfcc

N_PARITY_SEGMENTS = 20  # per recording, to keep the reference loops quick


@pytest.fixture(scope="module")
def segmented(decoded) -> dict[str, np.ndarray]:
    return {name: segment(y) for name, y in decoded.items()}


def test_filterbank_matches_pyaudioanalysis():
    fbank, _ = ShortTermFeatures.mfcc_filter_banks(SAMPLE_RATE, 200)
    np.testing.assert_array_equal(_mfcc_filterbank(), fbank)


def test_mfcc_matches_pyaudioanalysis_on_real_recordings(segmented):
    for name, segments in segmented.items():
        head = segments[:N_PARITY_SEGMENTS]
        ours = mfcc(head)
        assert ours.shape == (len(head), *FEATURE_SHAPES["mfcc"])
        np.testing.assert_allclose(ours, reference_mfcc(head), rtol=0, atol=1e-6, err_msg=name)


def test_mfcc_statistics_resemble_the_study(segmented):
    music = np.concatenate([s for name, s in segmented.items() if not name.startswith("speech")])
    features = mfcc(music[~silent_seconds(music.ravel())])
    c0, c1 = features[:, 0].mean(), features[:, 1].mean()
    # The study's train arrays: c0 mean -22.9, c1 mean 1.87.
    assert -26 < c0 < -19 and 0.5 < c1 < 3.5, (c0, c1)


def test_melgram_matches_librosa_per_segment(segmented):
    for name, segments in segmented.items():
        head = segments[:N_PARITY_SEGMENTS]
        ours = melgram(head)
        assert ours.shape == (len(head), *FEATURE_SHAPES["melgram"]) and ours.dtype == np.float32
        assert ours.min() >= -80 and ours.max() == 0
        np.testing.assert_allclose(ours, reference_melgram(head), rtol=0, atol=1e-4, err_msg=name)


def test_silence_gives_finite_features_and_is_flagged():
    rng = np.random.default_rng(0)
    segments = np.zeros((3, SEGMENT_SAMPLES), dtype=np.float32)
    segments[1] = 0.25  # constant offset: no sound either
    segments = np.concatenate([segments, rng.normal(0, 0.1, (1, SEGMENT_SAMPLES)).astype(np.float32)])
    np.testing.assert_array_equal(silent_seconds(segments.ravel()), [True, True, True, False])
    # a 16-bit noise floor (+-1 step, about -90 dBFS) is silence too; a quiet passage at -50 dBFS is not
    lsb = rng.integers(-1, 2, SEGMENT_SAMPLES) / 32768
    quiet = 10 ** (-50 / 20) * np.sin(2 * np.pi * 440 * np.arange(SEGMENT_SAMPLES) / SAMPLE_RATE)
    np.testing.assert_array_equal(silent_seconds(np.concatenate([lsb, quiet]).astype(np.float32)), [True, False])
    # a DC offset of 1.5 s: a last second is judged on its own samples, and at the file's own rate
    np.testing.assert_array_equal(silent_seconds(np.full(12000, 0.01, dtype=np.float32)), [True, True])
    np.testing.assert_array_equal(silent_seconds(np.full(66150, 0.01, dtype=np.float32), 44100), [True, True])
    np.testing.assert_array_equal(silent_seconds(np.r_[np.zeros(44100), quiet].astype(np.float32), 44100), [True, False])
    for kind in FEATURE_SHAPES:
        assert np.isfinite(extract(segments, kind)).all(), kind


def test_a_quiet_offset_at_44_1_khz_is_silent_though_resampling_rings(tmp_path):
    """A file of a constant offset (and noise far below the silence level) has no sound, at any sample rate;
    the resampler's ringing where it starts and ends is not taken for sound (it spans over 0.001 here)."""
    rng = np.random.default_rng(0)
    y = 0.002 + 1e-5 * rng.standard_normal(44100 * 5)
    sf.write(tmp_path / "hum.wav", y, 44100, subtype="FLOAT")
    assert np.ptp(load_audio(tmp_path / "hum.wav")[:SAMPLE_RATE]) > SILENCE_LEVEL
    ff = file_features(tmp_path / "hum.wav", ("mfcc",))
    assert ff.error is None and ff.silent.tolist() == [True] * 5


def test_empty_batch():
    empty = np.zeros((0, SEGMENT_SAMPLES), dtype=np.float32)
    for kind, shape in FEATURE_SHAPES.items():
        assert extract(empty, kind).shape == (0, *shape)


def test_extract_dispatches_and_rejects_unknown_kind():
    segments = np.random.default_rng(1).normal(0, 0.1, (2, SEGMENT_SAMPLES)).astype(np.float32)
    np.testing.assert_array_equal(extract(segments, "mfcc"), mfcc(segments))
    with pytest.raises(MusicGenreError, match="chroma"):
        extract(segments, "chroma")
    with pytest.raises(MusicGenreError, match=r"^segments must be real samples of shape \(n, 8000\), not float32 \(2, 100\)$"):
        mfcc(segments[:, :100])


@pytest.mark.parametrize("bad, message", [
    (lambda s: s.astype(np.complex64), "segments must be real samples"),  # the imaginary part was dropped
    (lambda s: np.where(np.arange(SEGMENT_SAMPLES) == 5, np.nan, s), "segments hold NaN or infinite samples"),
    (lambda s: np.where(np.arange(SEGMENT_SAMPLES) == 5, np.inf, s), "segments hold NaN or infinite samples"),
])
def test_feature_functions_refuse_samples_no_feature_can_come_from(bad, message):
    """Called from Python, mfcc gave rows of NaN for one NaN sample, and melgram librosa's own error."""
    segments = bad(np.random.default_rng(1).normal(0, 0.1, (2, SEGMENT_SAMPLES)))
    for kind in ("mfcc", "melgram"):
        with pytest.raises(MusicGenreError, match=message):
            extract(segments, kind)


def test_signal_functions_refuse_other_shapes_and_rates():
    from musicgenre.audio import resample, segment
    from musicgenre.features import silent_seconds

    stereo = np.zeros((2, SEGMENT_SAMPLES), dtype=np.float32)
    for call in (lambda: silent_seconds(stereo), lambda: segment(stereo), lambda: resample(stereo, 44100)):
        with pytest.raises(MusicGenreError, match=r"^a mono signal is a 1-D array of floating-point samples \(full scale 1.0\), not float32 \(2, 8000\)$"):
            call()
    for sr in (0, -5, 2.5):
        with pytest.raises(MusicGenreError, match=f"^sample rate {sr}: give a positive whole number"):
            resample(np.zeros(100, dtype=np.float32), sr)


def test_importing_features_loads_neither_librosa_nor_torch():
    code = "import sys, musicgenre.features; print(sorted({'librosa', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_samples_far_beyond_audio_range_are_the_files_error_not_nan_features(tmp_path):
    # A float WAV may hold any float32: 4e30 squares past float32's range in the mel power spectrum.
    path = tmp_path / "loud.wav"
    sf.write(path, np.full(16000, 4e30, dtype=np.float32), SAMPLE_RATE, subtype="FLOAT")
    with np.errstate(all="raise"):  # no floating-point warning escapes either
        result = file_features(path, tuple(FEATURE_SHAPES))
    assert result.error == f"{path}: its features overflow (samples far beyond the [-1, 1] of audio)"
    assert result.features == {}


def test_melgrams_are_computed_where_numba_can_cache_nowhere(tmp_path):
    """A read-only install and home: librosa's import raised numba's "cannot cache function" and every file of
    `extract` and of a melgram model's `predict` was reported unreadable. Numba is left, as there, with no
    cache location but one given by NUMBA_CACHE_DIR, which is unset."""
    code = (
        "import numba.core.caching as c, numpy as np\n"
        "c.CacheImpl._locator_classes = [c.UserProvidedCacheLocator]\n"
        "from musicgenre.features import melgram\n"
        "x = np.random.default_rng(0).normal(0, 0.1, (2, 8000))\n"
        "np.save(%r, melgram(x))\n" % str(tmp_path / "mel.npy")
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    x = np.random.default_rng(0).normal(0, 0.1, (2, SEGMENT_SAMPLES))
    np.testing.assert_array_equal(np.load(tmp_path / "mel.npy"), melgram(x))


def test_ending_workers_while_one_sends_a_result_leaves_no_thread_waiting_for_the_rest():
    """A worker killed halfway through sending a result (a Ctrl-C while a long file's features were on their way)
    left the executor's thread waiting for the rest, and the interpreter's exit waiting on that thread: `extract`
    printed "interrupted" and never ended. The half message is written here by hand, so the moment is not raced."""
    import multiprocessing
    import struct
    from concurrent.futures import ProcessPoolExecutor

    from musicgenre.features import _end_workers, _start_worker

    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                               initargs=(os.getpid(),))
    assert pool.submit(abs, -1).result(timeout=60) == 1  # the worker is up
    manager = pool._executor_manager_thread
    os.write(pool._result_queue._writer.fileno(), struct.pack("!i", 1000) + bytes(10))  # 10 of 1000 bytes
    _end_workers(pool)
    manager.join(timeout=20)
    assert not manager.is_alive()


def test_a_pool_torn_down_prints_no_traceback_for_futures_it_had_cancelled():
    """Its manager thread, finding the workers killed, set an error on futures already cancelled and died of
    InvalidStateError (CPython gh-107219): a traceback around the one line of a stopped extract, now and then.
    Any other error of a thread is still printed."""
    import threading
    from concurrent.futures import InvalidStateError

    from musicgenre.features import _quiet_cancelled_futures

    printed = []
    hook = _quiet_cancelled_futures(printed.append)

    def died_of(exc: BaseException) -> threading.ExceptHookArgs:
        return threading.ExceptHookArgs([type(exc), exc, None, None])

    hook(died_of(InvalidStateError("CANCELLED: <Future at 0x7f state=cancelled>")))
    assert printed == []
    for other in (InvalidStateError("FINISHED: <Future at 0x7f state=finished>"), ValueError("x")):
        hook(died_of(other))
    assert [type(args.exc_value) for args in printed] == [InvalidStateError, ValueError]
