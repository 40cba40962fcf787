"""Start-up time: `musicgenre --help` and `musicgenre train --help` as whole processes (median of
several), and what importing torch and scikit-learn alone costs, for comparison.
Run: PYTHONPATH=src python bench/bench_startup.py"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def wall(args: list[str], repeats: int = 5) -> float:
    """Median wall time of a fresh Python process running `args`."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> list[dict]:
    bare = wall(["-c", "pass"])
    rows = []
    for name, args in [
        ("musicgenre --help (vs import torch)", ["-m", "musicgenre.cli", "--help"]),
        ("musicgenre train --help (vs import torch)", ["-m", "musicgenre.cli", "train", "--help"]),
    ]:
        ours = wall(args)
        torch_s = wall(["-c", "import torch"])
        row = {"benchmark": name, "reference_s": round(torch_s, 3), "ours_s": round(ours, 3),
               "ratio": round(torch_s / ours, 2), "python_alone_s": round(bare, 3),
               "import_sklearn_s": round(wall(["-c", "import sklearn.metrics"], 3), 3)}
        print(row, flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
