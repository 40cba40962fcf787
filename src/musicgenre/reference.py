"""The study's own per-segment feature calls: the yardstick for parity tests and benchmarks, not for use.

reference_mfcc needs pyAudioAnalysis (a test dependency), imported only when called.
"""

from __future__ import annotations

import numpy as np

from musicgenre.audio import SAMPLE_RATE
from musicgenre.features import FRAME


def reference_mfcc(segments: np.ndarray) -> np.ndarray:
    """pyAudioAnalysis on each segment: MFCC rows 8:21, mean then std over the frames, (n, 26)."""
    from pyAudioAnalysis import ShortTermFeatures

    rows = []
    for seg in segments:
        m = ShortTermFeatures.feature_extraction(seg, SAMPLE_RATE, FRAME, FRAME, deltas=False)[0][8:21]
        rows.append(np.r_[m.mean(axis=1), m.std(axis=1)])
    return np.array(rows)


def reference_melgram(segments: np.ndarray) -> np.ndarray:
    """librosa melspectrogram + power_to_db(ref=np.max) on each segment, transposed, (n, 21, 128)."""
    import librosa

    return np.stack(
        [
            librosa.power_to_db(
                librosa.feature.melspectrogram(y=seg, sr=SAMPLE_RATE, n_fft=FRAME, hop_length=FRAME), ref=np.max
            ).T
            for seg in segments
        ]
    )
