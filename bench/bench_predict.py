"""Real-time factor of `musicgenre predict` as a whole process (start-up included): audio seconds
classified per wall second, on the longest real recording alone and on a folder holding each real
recording COPIES times (links in a temporary folder: start-up is paid once, decoding runs in parallel
worker processes). "reference" is the audio's duration, so ratio = real-time factor.
Run: PYTHONPATH=src python bench/bench_predict.py"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT.parent / "shared" / "audio"
COPIES = 8


def wall(args: list[str], repeats: int = 3) -> float:
    """Median wall time of `python -m musicgenre.cli predict ARGS` as a fresh process."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "musicgenre.cli", "predict", *args], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> list[dict]:
    files = sorted(p for p in AUDIO.iterdir() if p.suffix in (".ogg", ".mp3"))
    durations = {p: sf.info(p).duration for p in files}
    longest = max(files, key=durations.get)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for k in range(COPIES):
            for p in files:
                Path(folder, f"{k}_{p.name}").symlink_to(p)
        for name, args, audio_s in [
            (f"predict {longest.name} ({durations[longest]:.0f} s), whole process", [str(longest)], durations[longest]),
            (f"predict folder of {COPIES * len(files)} files ({COPIES * sum(durations.values()):.0f} s), whole process",
             [folder], COPIES * sum(durations.values())),
        ]:
            ours = wall(args)
            row = {"benchmark": name, "reference_s": round(audio_s, 1), "ours_s": round(ours, 3),
                   "ratio": round(audio_s / ours, 1)}
            print(row, flush=True)
            rows.append(row)
    return rows


if __name__ == "__main__":
    main()
