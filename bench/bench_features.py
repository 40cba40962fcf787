"""Time the vectorised features against the study's per-segment reference calls; prints, never asserts.

Run: python bench/bench_features.py (with the package importable, e.g. PYTHONPATH=src).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from musicgenre.audio import SAMPLE_RATE, load_audio, segment
from musicgenre.features import melgram, mfcc
from musicgenre.reference import reference_melgram, reference_mfcc

RECORDING = Path(__file__).resolve().parents[1].parent / "shared" / "audio" / "folk_karissa_hobbs_lets_go_fishin.ogg"
SECONDS = 60
REPEATS = 5


def best_time(fn: Callable[[np.ndarray], np.ndarray], segments: np.ndarray) -> tuple[float, np.ndarray]:
    """Best wall time of REPEATS calls fn(segments) (after one warm-up call), and the result."""
    result = fn(segments)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn(segments)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> list[dict]:
    """Run both comparisons on SECONDS of the recording; print and return one row per benchmark."""
    segments = segment(load_audio(RECORDING)[: SECONDS * SAMPLE_RATE])
    rows = []
    for name, reference, ours in [
        ("mfcc", reference_mfcc, mfcc),
        ("melgram", reference_melgram, melgram),
    ]:
        reference_s, expected = best_time(reference, segments)
        ours_s, got = best_time(ours, segments)
        rows.append({"benchmark": f"{name} ({len(segments)} segments)", "reference_s": reference_s, "ours_s": ours_s,
                     "ratio": reference_s / ours_s})
        print(f"{name:8s} {len(segments)} x 1 s: reference {reference_s * 1e3:8.2f} ms, ours {ours_s * 1e3:7.2f} ms, "
              f"speed-up {reference_s / ours_s:6.1f}x, max abs diff {np.abs(got - expected).max():.2e}")
    return rows


if __name__ == "__main__":
    main()
