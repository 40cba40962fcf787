"""The model-comparison table: every recipe and the scikit-learn baselines trained over several seeds
(validation accuracy and macro F1, mean ± std) beside parameters and CPU inference time per clip."""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musicgenre.baselines import BASELINES, evaluate_baseline, fit_baseline
from musicgenre.config import RECIPES
from musicgenre.datasets import FEATURE_SHAPES, data_digest, has_split, load_dataset, resolve_data_root
from musicgenre.errors import MusicGenreError
from musicgenre.io import atomic_write_json, atomic_write_text, write_dir
from musicgenre.metrics import mean_std
from musicgenre.models import build_model, count_parameters, model_features
from musicgenre.tables import markdown_table, plus_minus
from musicgenre.training import cpu_threads, predict_logits, train_seeds
from musicgenre.versions import TRAINING, software_versions

TIMING_BATCH = 256
TIMING_THREADS = 2


@dataclass
class Row:
    """One model's line of the table; empty score lists mean it was not trained (no data)."""

    name: str
    features: str
    accuracy: list[float] = field(default_factory=list)
    f1_macro: list[float] = field(default_factory=list)
    parameters: int | None = None
    us_per_clip: float | None = None


@dataclass
class Comparison:
    """The table's rows, and what produced them (written beside the tables as compare_config.json)."""

    rows: list[Row]
    settings: dict


def seconds_per_clip(predict: Callable[[Any], object], X: np.ndarray | torch.Tensor, repeats: int = 20) -> float:
    """CPU inference time per clip: the best of `repeats` timed calls on one batch, after warm-up calls."""
    with cpu_threads(TIMING_THREADS):
        for _ in range(3):
            predict(X)
        best = min(_timed(predict, X) for _ in range(repeats))
    return best / len(X)


def _timed(predict: Callable[[Any], object], X: np.ndarray | torch.Tensor) -> float:
    t0 = time.perf_counter()
    predict(X)
    return time.perf_counter() - t0


def timing_batch(features: str, seed: int = 0) -> np.ndarray:
    """A fixed random batch of the given representation for timing."""
    return np.random.default_rng(seed).standard_normal((TIMING_BATCH, *FEATURE_SHAPES[features])).astype(np.float32)


def model_cost(model_name: str, n_classes: int) -> tuple[int, float]:
    """Parameters and CPU seconds per clip of a named model: 256 clips predicted as `predict` does them
    (predict_logits, batches of 64, inference mode), 2 threads."""
    model = build_model(model_name, n_classes).eval()
    X = torch.from_numpy(timing_batch(model_features(model_name)))
    return count_parameters(model), seconds_per_clip(lambda x: predict_logits(model, x), X)


def compare(
    data: str | os.PathLike | None, seeds: list[int], on_row: Callable[[Row], None] | None = None
) -> Comparison:
    """Train every recipe whose features the data root has (over `seeds`) and every baseline on MFCC;
    recipes without data are listed with their cost only. Scores are on the val split, which every
    representation with a train split must have."""
    root = resolve_data_root(data)
    rows: list[Row] = []

    def add(row: Row) -> None:
        rows.append(row)
        if on_row is not None:
            on_row(row)

    splits = {f: load_dataset(root, f, ("train", "val")) for f in FEATURE_SHAPES if has_split(root, "train", f)}
    for features, d in splits.items():
        if "val" not in d:
            raise MusicGenreError(f"{root}: no val split of {features} features, which compare scores the models on")
    n_classes = len(next(iter(splits.values()))["train"].classes) if splits else 4
    for name, recipe in RECIPES.items():
        row = Row(name, recipe.features)
        row.parameters, row.us_per_clip = model_cost(recipe.model, n_classes)
        row.us_per_clip *= 1e6
        if recipe.features in splits:
            d = splits[recipe.features]
            for r in train_seeds(recipe, seeds, d["train"], d["val"]):
                row.accuracy.append(r.metrics["accuracy"])
                row.f1_macro.append(r.metrics["f1_macro"])
        add(row)
    if "mfcc" in splits:
        d = splits["mfcc"]
        X = timing_batch("mfcc")
        for name in BASELINES:
            row = Row(name, "mfcc")
            for seed in seeds:
                pipe = fit_baseline(name, d["train"], seed)
                m = evaluate_baseline(pipe, d["val"])
                row.accuracy.append(m["accuracy"])
                row.f1_macro.append(m["f1_macro"])
            row.us_per_clip = seconds_per_clip(pipe.predict, X) * 1e6
            add(row)
    settings = {
        "kind": "musicgenre-compare", "data": str(root.resolve()),
        "data_digest": {f: data_digest(d) for f, d in splits.items()}, "seeds": seeds,
        "recipes": {name: r.to_dict() for name, r in RECIPES.items() if r.features in splits},
        "baselines": list(BASELINES) if "mfcc" in splits else [],
        "timing": {"batch": TIMING_BATCH, "threads": TIMING_THREADS},
        "versions": software_versions(*TRAINING, "scikit-learn"),
    }
    return Comparison(rows, settings)


def _summary(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample std over seeds (metrics.mean_std), and neither for no scores."""
    return mean_std(values) if values else (None, None)


def _mean_std(values: list[float]) -> str:
    """mean ± sample std over seeds, or a dash for no scores."""
    return plus_minus(*mean_std(values), fmt=".4f") if values else "—"


COLUMNS = ("model", "features", "seeds", "val accuracy", "val macro F1", "parameters", "CPU µs/clip")


def _cells(row: Row) -> list[str]:
    return [
        row.name, row.features, str(len(row.accuracy)) if row.accuracy else "—",
        _mean_std(row.accuracy), _mean_std(row.f1_macro),
        f"{row.parameters:,}" if row.parameters is not None else "—",
        f"{row.us_per_clip:.1f}" if row.us_per_clip is not None else "—",
    ]


def table_markdown(rows: list[Row]) -> str:
    """The comparison as a Markdown table."""
    return markdown_table(COLUMNS, [_cells(r) for r in rows]) + "\n"


def table_csv(rows: list[Row]) -> str:
    """The comparison as CSV, with raw means and standard deviations."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "features", "seeds", "accuracy_mean", "accuracy_std", "f1_macro_mean", "f1_macro_std",
                "parameters", "cpu_us_per_clip"])
    for r in rows:
        stats = ["" if x is None else f"{x:.6f}" for values in (r.accuracy, r.f1_macro) for x in _summary(values)]
        w.writerow([r.name, r.features, len(r.accuracy), *stats, r.parameters or "",
                    f"{r.us_per_clip:.3f}" if r.us_per_clip is not None else ""])
    return buf.getvalue()


def write_tables(comparison: Comparison, out: str | os.PathLike, overwrite: bool = False,
                 inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Write the folder `out` with compare.md, compare.csv and compare_config.json, built aside and moved into
    place (see io.write_dir: an existing non-empty `out` only with `overwrite`, never one overlapping `inputs`)."""

    def fill(tmp: Path) -> None:
        atomic_write_text(tmp / "compare.md", table_markdown(comparison.rows))
        atomic_write_text(tmp / "compare.csv", table_csv(comparison.rows))
        atomic_write_json(tmp / "compare_config.json", comparison.settings)

    return write_dir(out, overwrite, fill, inputs)
