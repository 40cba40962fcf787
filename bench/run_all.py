"""Run every bench/bench_*.py module's main() and print one table of reference vs ours.
Run: PYTHONPATH=src python bench/run_all.py"""

from __future__ import annotations

import importlib.util
import os
import platform
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    t0 = time.perf_counter()
    rows = []
    for path in sorted(HERE.glob("bench_*.py")):
        print(f"== {path.name}", flush=True)
        rows += [{"file": path.stem, **r} for r in load(path).main()]
    table = Table("benchmark", "reference s", "ours s", "ratio",
                  title=f"{cpu_model()}, {os.cpu_count()} CPUs, {time.perf_counter() - t0:.0f} s in all")
    for r in rows:
        table.add_row(r["benchmark"], f"{r['reference_s']:.3f}", f"{r['ours_s']:.3f}", f"{r['ratio']:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
