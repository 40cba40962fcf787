"""Run directories: weights (safetensors), configuration, history and metrics, written atomically."""

from __future__ import annotations

import csv
import io
import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from musicgenre import __version__
from musicgenre.config import TrainConfig
from musicgenre.errors import MusicGenreError
from musicgenre.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from musicgenre.metrics import seed_summary
from musicgenre.models import GenreNet, build_model, count_parameters
from musicgenre.training import TrainResult

RUN_KIND = "musicgenre-run"
WEIGHTS = "model.safetensors"


@dataclass
class Run:
    """A trained model loaded back from its run directory."""

    path: Path
    model: GenreNet
    config: TrainConfig
    classes: tuple[str, ...]
    metrics: dict

    @property
    def features(self) -> str:
        return self.config.features


def check_out_dir(out: str | os.PathLike, overwrite: bool = False) -> Path:
    """The output path, after refusing one that exists and is not empty unless `overwrite`."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise MusicGenreError(f"{out}: already exists and is not empty (choose another --out, or --overwrite)")
    return out


def prepare_out_dir(out: str | os.PathLike, overwrite: bool = False) -> tuple[Path, Path]:
    """A fresh temporary sibling to fill, and the final path; refuses to replace a non-empty
    directory unless `overwrite`."""
    out = check_out_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp, out


def commit_dir(tmp: Path, out: Path) -> Path:
    """Move a finished temporary directory into place in one rename (the old one, if any, goes last)."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def history_csv(result: TrainResult) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["epoch", "loss", "val_accuracy", "val_f1", "seconds"])
    w.writeheader()
    for rec in result.history:
        w.writerow(asdict(rec))
    return buf.getvalue()


def save_weights(model: GenreNet, path: Path, model_name: str) -> None:
    """Write a model's weights as safetensors, atomically, tagged as ours. One metadata key: safetensors
    writes several in an order that changes from process to process, and the same run should give
    the same bytes."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, safetensors_bytes(state, metadata={RUN_KIND: model_name}))


def save_run(result: TrainResult, out: str | os.PathLike, overwrite: bool = False, extra: dict | None = None) -> Path:
    """Write a run directory: model.safetensors, config.json, history.json/.csv, metrics.json."""
    tmp, out = prepare_out_dir(out, overwrite)
    save_weights(result.model, tmp / WEIGHTS, result.config.model)
    atomic_write_json(
        tmp / "config.json",
        {
            "kind": RUN_KIND,
            "musicgenre_version": __version__,
            "torch_version": torch.__version__,
            "config": result.config.to_dict(),
            "classes": list(result.classes),
            "n_parameters": count_parameters(result.model),
            **(extra or {}),
        },
    )
    atomic_write_json(tmp / "history.json", [asdict(r) for r in result.history])
    atomic_write_text(tmp / "history.csv", history_csv(result))
    epochs = len(result.history)
    atomic_write_json(
        tmp / "metrics.json",
        {
            "best_epoch": result.best_epoch,
            "epochs_run": epochs,
            "train_seconds": result.train_seconds,
            "seconds_per_epoch": result.train_seconds / max(epochs, 1),
            "val": result.metrics,
        },
    )
    return commit_dir(tmp, out)


def load_run(path: str | os.PathLike, device: str | torch.device = "cpu") -> Run:
    """Load a run directory; anything that is not one of ours is a one-line error naming the file."""
    path = Path(path)
    cfg_path = path / "config.json"
    if not path.is_dir():
        raise MusicGenreError(f"{path}: no such run directory")
    if not cfg_path.is_file():
        raise MusicGenreError(f"{cfg_path}: missing: {path} is not a musicgenre run directory")
    meta = read_json(cfg_path)
    if not isinstance(meta, dict) or meta.get("kind") != RUN_KIND:
        raise MusicGenreError(f"{cfg_path}: not a musicgenre run configuration (kind is not {RUN_KIND!r})")
    try:
        config, classes = TrainConfig.from_dict(meta["config"]), tuple(meta["classes"])
    except (KeyError, TypeError) as exc:
        raise MusicGenreError(f"{cfg_path}: incomplete run configuration (no {exc})") from None
    model = build_model(config.model, len(classes))
    weights = path / WEIGHTS
    try:
        state = load_file(str(weights))
    except FileNotFoundError:
        raise MusicGenreError(f"{weights}: missing") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise MusicGenreError(f"{weights}: not a safetensors weights file ({exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise MusicGenreError(f"{weights}: weights do not fit model {config.model} (a model file of another kind)") from None
    metrics_path = path / "metrics.json"
    metrics = read_json(metrics_path) if metrics_path.is_file() else {}
    model.to(device).eval()
    return Run(path=path, model=model, config=config, classes=classes, metrics=metrics)


def save_seed_runs(results: list[TrainResult], out: str | os.PathLike, overwrite: bool = False) -> tuple[Path, dict]:
    """One run directory per seed (OUT/seed-K) and OUT/summary.json with validation mean ± sample std."""
    tmp, out = prepare_out_dir(out, overwrite)
    for r in results:
        save_run(r, tmp / f"seed-{r.config.seed}")
    summary: dict = {"config": replace(results[0].config, seed=None).to_dict(), "seeds": [r.config.seed for r in results]}
    if results[0].metrics is not None:
        for key in ("accuracy", "f1_macro"):
            summary[f"val_{key}"] = seed_summary([r.metrics[key] for r in results])
    atomic_write_json(tmp / "summary.json", summary)
    return commit_dir(tmp, out), summary
