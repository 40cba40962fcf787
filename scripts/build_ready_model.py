"""Build the ready model shipped in src/musicgenre/ready_model/: the best MFCC recipe trained on
train+val combined with a fixed seed. With no held-out split left, the epoch count is the recipe's
full cosine schedule, which validation showed needs no early stopping (the last epoch's val accuracy,
averaged over seeds, is recorded beside the best epoch's). Deterministic: same data, same files.

usage: python scripts/build_ready_model.py [--data ROOT] [--seeds 5]   (ROOT: the study's data, or $MUSICGENRE_DATA)
"""

from __future__ import annotations

import os

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # MKL results independent of memory alignment (set before torch loads)

import argparse
import sys
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from musicgenre.config import RECIPES
from musicgenre.datasets import Dataset, load_dataset
from musicgenre.errors import MusicGenreError
from musicgenre.cli import positive_int
from musicgenre.io import atomic_write_json, write_dir
from musicgenre.metrics import seed_summary
from musicgenre.runs import WEIGHTS, save_run
from musicgenre.tables import plural, plus_minus
from musicgenre.training import train, train_seeds

RECIPE = "mfcc-mlp-log"
SEED = 0
OUT = Path(__file__).resolve().parents[1] / "src" / "musicgenre" / "ready_model"


def validation_figures(train_set: Dataset, val_set: Dataset, n_seeds: int) -> dict:
    """The recipe's validation accuracy and macro F1 over seeds 0..n-1 (kept epoch and last epoch)."""
    results = train_seeds(RECIPES[RECIPE], list(range(n_seeds)), train_set, val_set)
    return {
        "recipe": RECIPE,
        "seeds": n_seeds,
        "accuracy": seed_summary([r.metrics["accuracy"] for r in results]),
        "f1_macro": seed_summary([r.metrics["f1_macro"] for r in results]),
        "best_epoch": [r.best_epoch for r in results],
        "last_epoch_accuracy": seed_summary([r.history[-1].val_accuracy for r in results]),
        "last_epoch_f1_macro": seed_summary([r.history[-1].val_f1 for r in results]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data root (default: $MUSICGENRE_DATA)")
    parser.add_argument("--seeds", type=positive_int, default=5, help="seeds for the validation figures")
    args = parser.parse_args()
    torch.set_num_threads(1)  # a net this small trains fastest on one thread, and the result stays reproducible

    data = load_dataset(args.data, "mfcc", ("train", "val"))
    tr, va = data["train"], data["val"]
    val_figures = validation_figures(tr, va, args.seeds)
    acc, f1 = (plus_minus(val_figures[k]["mean"], val_figures[k]["std"], ".4f") for k in ("accuracy", "f1_macro"))
    print(f"{RECIPE} on val over {plural(args.seeds, 'seed')}: accuracy {acc}, macro F1 {f1}")

    both = Dataset(np.concatenate([tr.X, va.X]), np.concatenate([tr.y, va.y]), tr.classes, "mfcc", "train+val")
    cfg = replace(RECIPES[RECIPE], seed=SEED)
    result = train(cfg, both)  # no validation split: the last epoch is kept

    def fill(tmp: Path) -> None:
        with tempfile.TemporaryDirectory() as scratch:  # keep only the files that do not hold timings
            run = save_run(result, Path(scratch) / "run", extra={"training_splits": ["train", "val"]})
            for name in (WEIGHTS, "config.json"):
                shutil.copy(run / name, tmp / name)
        atomic_write_json(tmp / "metrics.json", {
            "trained_on": f"train+val ({len(both)} clips), seed {SEED}, {cfg.epochs} epochs",
            "validation": val_figures,
        })

    out = write_dir(OUT, True, fill)  # built beside it, then moved into place; nothing left behind on failure
    print(f"ready model written to {out}")


if __name__ == "__main__":
    try:
        main()
    except MusicGenreError as exc:  # no data root, a damaged file: one line and status 2, as the musicgenre command gives
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
