"""The optimizer sweep: the 11 torch.optim optimizers the study compared (or those given) x several seeds on one model, resumable,
summarised as CSV, a Markdown table and a bar chart with error bars."""

from __future__ import annotations

import csv
import inspect
import io
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from musicgenre.config import OPTIMIZERS, WITHOUT_WEIGHT_DECAY, TrainConfig, canonical_optimizer
from musicgenre.datasets import data_record, load_dataset, resolve_data_root
from musicgenre.errors import MusicGenreError, SettingError
from musicgenre.figures import new_figure, png_bytes
from musicgenre.io import (atomic_write_bytes, atomic_write_json, atomic_write_text, check_out_path, occupied, probe_out,
                          progress_display, read_json, write_dir)
from musicgenre.metrics import mean_std
from musicgenre.runs import NUMBER, check_fields, save_run, train_config_from_json
from musicgenre.tables import differences, markdown_table, plural, plus_minus
from musicgenre.training import TrainResult, check_settings, evaluate_model, train_seeds, trained_where
from musicgenre.versions import TRAINING, software_versions

SWEEP_KIND = "musicgenre-sweep"
RESULT_FIELDS = ["optimizer", "lr", "seed", "accuracy", "f1_macro", "best_epoch", "epochs_run", "train_seconds"]


@dataclass
class SweepConfig:
    """What a sweep trains: one base configuration, the optimizers, how many seeds, which lr rule and split."""

    base: TrainConfig
    data: str  # the data root, resolved
    optimizers: tuple[str, ...] = OPTIMIZERS
    seeds: int = 5
    lr_per_optimizer: bool = False  # each optimizer's own default lr instead of base.lr
    split: str = "val"

    def __post_init__(self) -> None:
        if isinstance(self.optimizers, str) or not isinstance(self.optimizers, (list, tuple)):  # not its letters
            raise SettingError(f"optimizers must be a list of optimizer names, not {self.optimizers!r}")
        self.optimizers = tuple(canonical_optimizer(o) for o in self.optimizers)
        twice = sorted({o for o in self.optimizers if self.optimizers.count(o) > 1})
        if twice:
            raise SettingError(f"optimizers: {', '.join(twice)} listed more than once")
        if type(self.seeds) is not int or self.seeds < 1:  # True is no count; a sweep of 2.5 seeds crashed half-written
            raise SettingError(f"--seeds must be a whole number of at least 1, not {self.seeds!r}")
        if type(self.lr_per_optimizer) is not bool:  # "no" would have switched it on
            raise SettingError(f"lr_per_optimizer must be True or False, not {self.lr_per_optimizer!r}")
        if self.split not in ("val", "test"):
            raise SettingError(f"unknown split {self.split!r}: choose val or test")
        lacking = [o for o in self.optimizers if o in WITHOUT_WEIGHT_DECAY]
        if self.base.weight_decay and lacking:  # refused now, not after training the optimizers before it
            others = ",".join(o for o in self.optimizers if o not in lacking)
            leave_out = f"sweep --optimizers {others}, or " if others else ""  # not an empty list
            raise SettingError(f"weight decay {self.base.weight_decay:g} is set and {', '.join(lacking)} has none: "
                               f"{leave_out}pass --weight-decay 0")

    def lr_for(self, optimizer: str) -> float:
        """The learning rate this sweep gives `optimizer`: its own default, or the base configuration's."""
        return default_lr(optimizer, self.base.lr) if self.lr_per_optimizer else self.base.lr

    def run_config(self, optimizer: str) -> TrainConfig:
        """The configuration `optimizer`'s runs train with."""
        return replace(self.base, optimizer=optimizer, lr=self.lr_for(optimizer))

    def to_dict(self) -> dict:
        return {"kind": SWEEP_KIND, **asdict(self), "optimizers": list(self.optimizers)}


@dataclass
class OptimizerResult:
    """All seeds of one optimizer on the sweep's split."""

    optimizer: str
    lr: float
    runs: list[dict] = field(default_factory=list)  # one dict of RESULT_FIELDS per seed

    def mean_std(self, key: str) -> tuple[float, float | None]:
        """Mean and sample standard deviation over seeds (None for a single seed)."""
        return mean_std([r[key] for r in self.runs])


RESULT_TYPES = {"optimizer": (str,), "lr": NUMBER, "seed": (int,), "accuracy": NUMBER, "f1_macro": NUMBER,
                "best_epoch": (int,), "epochs_run": (int,), "train_seconds": NUMBER}


def read_result(path: Path, optimizer: str, seeds: int) -> OptimizerResult:
    """A finished optimizer's results.json, read back and checked: one row of RESULT_FIELDS per seed 0..seeds-1."""
    saved = check_fields(read_json(path), {"lr": NUMBER, "runs": (list,)}, str(path))
    runs = [check_fields(row, RESULT_TYPES, f"{path}: run {i + 1}") for i, row in enumerate(saved["runs"])]
    for i, row in enumerate(runs):
        unknown = sorted(set(row) - set(RESULT_FIELDS))
        if unknown:
            raise MusicGenreError(f"{path}: run {i + 1}: unknown field(s) {', '.join(unknown)}")
        if row["optimizer"] != optimizer:
            raise MusicGenreError(f"{path}: run {i + 1} is of optimizer {row['optimizer']!r}, not {optimizer}")
    if sorted(row["seed"] for row in runs) != list(range(seeds)):
        raise MusicGenreError(f"{path}: holds seeds {sorted(row['seed'] for row in runs)}, not the sweep's 0..{seeds - 1}")
    return OptimizerResult(optimizer, saved["lr"], runs)


def check_trained_where(saved: dict, where: dict[str, dict], done: dict, out: Path) -> None:
    """Refuse to resume a sweep whose unfinished optimizers would train elsewhere than where it began (`saved`'s
    'trained_on', training.trained_where of each): on another device, or on the CPU with another number of threads,
    their weights would not be those of the sweep run in one go. A folder of an earlier version, which recorded
    only its thread count, is held to that."""
    began = saved.get("trained_on")
    if began is None:  # an earlier version's folder, or a new one: on the CPU, held to the threads it recorded, if any
        began = {opt: {**w, "cpu_threads": saved.get("cpu_threads", w.get("cpu_threads"))} if w["device"] == "cpu" else w
                 for opt, w in where.items()}
    for opt, here in where.items():
        if opt in done or began.get(opt, here) == here:
            continue
        before = began[opt]
        if before.get("device") != here["device"]:
            how = "resume it on a machine with a GPU" if before.get("device") == "cuda" else \
                "resume it with the GPU hidden (CUDA_VISIBLE_DEVICES=)"
        else:
            how = f"set MUSICGENRE_THREADS={before.get('cpu_threads')} to resume it"
        raise MusicGenreError(f"{out}: holds a sweep whose {opt} runs were to train on {_place(before)}, and here they "
                              f"would train on {_place(here)}, which sums in another order (other weights): {how}, or "
                              "choose another --out")


def _place(where: dict) -> str:
    """training.trained_where's record in words: 'a CUDA GPU', 'the CPU with 2 threads'."""
    if where.get("device") != "cpu":
        return f"a {str(where.get('device')).upper()} GPU"
    return f"the CPU with {plural(where.get('cpu_threads'), 'thread')}"


def finished_results(cfg: SweepConfig, out: Path) -> dict[str, OptimizerResult]:
    """The optimizers of `cfg` that the sweep in `out` has finished (their results.json), read back and checked."""
    return {opt: read_result(path, opt, cfg.seeds) for opt in cfg.optimizers
            if (path := out / "runs" / opt / "results.json").is_file()}


def default_lr(optimizer: str, fallback: float) -> float:
    """The lr default in the optimizer's signature (torch 2.x gives one for all 11); `fallback` if none."""
    param = inspect.signature(getattr(torch.optim, optimizer)).parameters.get("lr")
    value = None if param is None else param.default
    return float(value) if isinstance(value, (int, float)) and value > 0 else fallback


def seed_row(optimizer: str, lr: float, result: TrainResult, metrics: dict) -> dict:
    """One seed's line of sweep.csv (RESULT_FIELDS): its scores on the sweep's split, kept epoch and training time."""
    return {
        "optimizer": optimizer, "lr": lr, "seed": result.config.seed, "accuracy": metrics["accuracy"],
        "f1_macro": metrics["f1_macro"], "best_epoch": result.best_epoch, "epochs_run": len(result.history),
        "train_seconds": result.train_seconds,
    }


def read_sweep_config(path: Path) -> SweepConfig:
    """A sweep_config.json read back and checked (fields added to TrainConfig since take their defaults)."""
    d = read_json(path)
    if not isinstance(d, dict) or d.get("kind") != SWEEP_KIND:
        raise MusicGenreError(f"{path}: not a musicgenre sweep configuration (kind is not {SWEEP_KIND!r})")
    check_fields(d, {"base": (dict,), "data": (str,), "optimizers": (list,), "seeds": (int,),
                     "lr_per_optimizer": (bool,), "split": (str,)}, str(path))
    if not all(isinstance(o, str) for o in d["optimizers"]):
        raise MusicGenreError(f"{path}: 'optimizers' must be a list of optimizer names")
    base = train_config_from_json(d["base"], f"{path}: 'base'")
    try:
        return SweepConfig(base=base, data=d["data"], optimizers=tuple(d["optimizers"]), seeds=d["seeds"],
                           lr_per_optimizer=d["lr_per_optimizer"], split=d["split"])
    except MusicGenreError as exc:
        raise MusicGenreError(f"{path}: {exc}") from None


def check_config(cfg: SweepConfig, out: Path) -> bool:
    """Whether `out` already holds this sweep (False: it is new); refuse a sweep of another configuration,
    or a folder or file that is not a sweep. Writes nothing."""
    path = out / "sweep_config.json"
    if path.is_file():
        old, new = (json.loads(json.dumps(c.to_dict())) for c in (read_sweep_config(path), cfg))
        if old != new:  # name each setting that differs, the training ones (under base) by their own names
            flat_old, flat_new = ({**c.pop("base"), **c} for c in (dict(old), dict(new)))
            raise MusicGenreError(f"{path}: {out} holds a sweep with another configuration "
                                  f"({differences(flat_old, flat_new)}); choose another --out")
        return True
    if occupied(out):
        raise MusicGenreError(f"{out}: already exists and is not a sweep directory (choose another --out)")
    return False


def write_tensorboard(result: TrainResult, log_dir: Path) -> None:
    """Per-epoch scalars for TensorBoard, when it is installed (silently nothing otherwise). Written whole
    into a temporary folder that then replaces `log_dir`, so a retrained seed's curves replace its old ones."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return

    def fill(tmp: Path) -> None:
        with SummaryWriter(str(tmp)) as w:
            for r in result.history:
                w.add_scalar("loss/train", r.loss, r.epoch)
                if r.val_f1 is not None:
                    w.add_scalar("val/accuracy", r.val_accuracy, r.epoch)
                    w.add_scalar("val/f1_macro", r.val_f1, r.epoch)

    write_dir(log_dir, True, fill)


def seed_dir(out: Path, optimizer: str, seed: int) -> Path:
    """Where a sweep keeps one optimizer's run of one seed: runs/<optimizer>/seed-<k>, or seed<k> in a
    sweep written before 2026-11-25, whose finished optimizers are kept when it is resumed."""
    legacy = out / "runs" / optimizer / f"seed{seed}"
    return legacy if legacy.is_dir() else out / "runs" / optimizer / f"seed-{seed}"


def run_sweep(cfg: SweepConfig, out: str | os.PathLike, progress: bool = True) -> list[OptimizerResult]:
    """Train every optimizer not already finished in `out` (all its seeds, which train together: one stopped halfway
    starts over), then write sweep.csv/.md/.png.
    Each optimizer's seeds are saved as runs under runs/<optimizer>/seed-<k>/ (as `train --seeds`) and its results.json last,
    which marks it finished."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    out = check_out_path(out, [cfg.data])
    if not out.exists():
        probe_out(out)  # a place no folder can be made in is refused now, leaving none of the folders above it
    resuming = check_config(cfg, out)
    data = load_dataset(cfg.data, cfg.base.features, ("train", "val", cfg.split))
    if cfg.split not in data:
        raise MusicGenreError(f"{cfg.data}: no {cfg.split} split of {cfg.base.features} features to evaluate on")
    check_settings(cfg.base, data["train"], data.get("val"))
    record = data_record(cfg.data, data)  # in each run's config.json
    digest = record["digest"]
    n_classes = len(data["train"].classes)
    where = {opt: trained_where(cfg.run_config(opt), n_classes) for opt in cfg.optimizers}
    path = out / "sweep_config.json"
    saved = {} if not resuming else check_fields(read_json(path), {"data_digest": (str,), "cpu_threads": (int,),
                                                                  "trained_on": (dict,)}, str(path), required=False)
    if saved.get("data_digest", digest) != digest:  # its finished optimizers were trained on other data
        raise MusicGenreError(f"{out}: holds a sweep begun on other data: what {cfg.data} holds has changed since; "
                              "choose another --out, or delete it to start over")
    if not all(isinstance(w, dict) for w in saved.get("trained_on", {}).values()):
        raise MusicGenreError(f"{path}: 'trained_on' must give each optimizer's device (and CPU threads)")
    done = finished_results(cfg, out)
    check_trained_where(saved, where, done, out)
    if not {"data_digest", "trained_on"} <= saved.keys():  # new, or begun by an earlier version (adopted): only now
        # that the data and options are good
        atomic_write_json(path, {**cfg.to_dict(), "data_digest": digest, "trained_on": where,
                                 "versions": saved.get("versions") or software_versions(*TRAINING)})
    seeds = list(range(cfg.seeds))
    epochs = cfg.base.epochs
    results: list[OptimizerResult] = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, **progress_display(progress)) as bar:
        task = bar.add_task("sweep", total=len(cfg.optimizers) * len(seeds) * epochs)
        for i, opt in enumerate(cfg.optimizers):
            if opt in done:
                results.append(done[opt])
                bar.update(task, completed=(i + 1) * len(seeds) * epochs)
                continue
            lr = cfg.lr_for(opt)
            bar.update(task, description=f"{opt} (lr {lr:g}), {plural(len(seeds), 'seed')}")
            trained = train_seeds(cfg.run_config(opt), seeds, data["train"], data.get("val"),
                                  on_epoch=lambda _r: bar.advance(task))
            res = OptimizerResult(opt, lr)
            for r in trained:
                metrics = r.metrics if cfg.split == "val" else evaluate_model(r.model, data[cfg.split])
                res.runs.append(seed_row(opt, lr, r, metrics))
                run_dir = seed_dir(out, opt, r.config.seed)
                save_run(r, run_dir, overwrite=True,
                         extra={"sweep_split": cfg.split, "sweep_metrics": metrics, "data": record})
                write_tensorboard(r, out / "tensorboard" / opt / run_dir.name)
            atomic_write_json(out / "runs" / opt / "results.json",
                              {"optimizer": opt, "lr": lr, "split": cfg.split, "runs": res.runs})
            results.append(res)
            bar.update(task, completed=(i + 1) * len(seeds) * epochs)
            if progress:  # each optimizer's result as it finishes, above the bar
                acc, f1 = plus_minus(*res.mean_std("accuracy")), plus_minus(*res.mean_std("f1_macro"))
                bar.console.print(f"{opt:9s} lr {lr:<7g} acc {acc}  F1 {f1}")
    write_summary(cfg, results, out)
    return results


def sweep_csv(results: list[OptimizerResult]) -> str:
    """One row per optimizer x seed, then a mean and a std row per optimizer."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RESULT_FIELDS)
    w.writeheader()
    for res in results:
        w.writerows(res.runs)
    for res in results:
        for i, stat in enumerate(["mean", "std"]):
            row = {k: res.mean_std(k)[i] for k in ["accuracy", "f1_macro", "best_epoch", "epochs_run", "train_seconds"]}
            w.writerow({"optimizer": res.optimizer, "lr": res.lr, "seed": stat, **row})
    return buf.getvalue()


def by_f1(results: list[OptimizerResult]) -> list[OptimizerResult]:
    """The optimizers, best mean macro F1 first: the order of the table and the figure."""
    return sorted(results, key=lambda r: r.mean_std("f1_macro")[0], reverse=True)


SWEEP_HEADER = ("Optimizer", "lr", "Accuracy", "Macro F1", "Best epoch (mean)", "Train s / seed")
SWEEP_ALIGN = "lrrrrr"  # numbers right-aligned


def sweep_intro(cfg: SweepConfig) -> list[str]:
    """Two sentences stating the settings and the lr rule of a sweep."""
    b = cfg.base
    split = {"val": "validation", "test": "test"}[cfg.split]
    lr_line = ("lr: each optimizer's own default (from its torch.optim signature)" if cfg.lr_per_optimizer
               else f"lr: {b.lr:g} for every optimizer")
    return [f"Optimizer sweep: {b.model} on {b.features}, {split} split, {plural(cfg.seeds, 'seed')} (0..{cfg.seeds - 1}), "
            f"{plural(b.epochs, 'epoch')}, batch {b.batch_size}; kept epoch = best validation macro F1 (the last epoch "
            "where the data has no val split; 0: the initial weights, kept where training diverged in epoch 1).",
            f"{lr_line}. Figures are mean ± sample std over seeds."]


def sweep_table_rows(results: list[OptimizerResult]) -> list[tuple[str, ...]]:
    """The table's cells (see SWEEP_HEADER), best macro F1 first."""
    rows = []
    for res in by_f1(results):
        rows.append((res.optimizer, f"{res.lr:g}", plus_minus(*res.mean_std("accuracy"), ".1f", 100, "%"),
                     plus_minus(*res.mean_std("f1_macro")),
                     f"{res.mean_std('best_epoch')[0]:.1f}", f"{res.mean_std('train_seconds')[0]:.1f}"))
    return rows


def sweep_markdown(cfg: SweepConfig, results: list[OptimizerResult]) -> str:
    """The study-style table, best macro F1 first, with the lr rule and the settings stated above it."""
    return "\n\n".join([*sweep_intro(cfg), markdown_table(SWEEP_HEADER, sweep_table_rows(results), SWEEP_ALIGN)]) + "\n"


def sweep_figure(cfg: SweepConfig, results: list[OptimizerResult]) -> bytes:
    """PNG bytes: accuracy and macro F1 per optimizer (best F1 first), bars at the mean, error bars one std."""
    ordered = by_f1(results)
    x = np.arange(len(ordered))
    fig = new_figure(figsize=(max(6.0, 0.8 * len(ordered) + 2), 4.2))
    ax = fig.subplots()
    for offset, key, label in [(-0.2, "accuracy", "accuracy"), (0.2, "f1_macro", "macro F1")]:
        means, stds = zip(*(r.mean_std(key) for r in ordered))
        ax.bar(x + offset, means, 0.4, yerr=[s or 0.0 for s in stds], capsize=3, label=label)
    ax.set_xticks(x, [r.optimizer for r in ordered], rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"{cfg.split} score (mean ± std, {plural(cfg.seeds, 'seed')})")
    lr = "own default lr" if cfg.lr_per_optimizer else f"lr {cfg.base.lr:g}"
    ax.set_title(f"{cfg.base.model}: optimizers, {lr}, {plural(cfg.base.epochs, 'epoch')}")
    ax.legend(loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return png_bytes(fig, dpi=110)


def write_summary(cfg: SweepConfig, results: list[OptimizerResult], out: Path) -> None:
    """sweep.csv, sweep.md and sweep.png in `out`, each written atomically."""
    atomic_write_text(out / "sweep.csv", sweep_csv(results))
    atomic_write_text(out / "sweep.md", sweep_markdown(cfg, results))
    atomic_write_bytes(out / "sweep.png", sweep_figure(cfg, results))


def load_sweep(path: str | os.PathLike) -> tuple[SweepConfig, list[OptimizerResult]]:
    """A sweep directory's configuration and its finished optimizers (in the configured order)."""
    path = Path(path)
    cfg_path = path / "sweep_config.json"
    if not cfg_path.is_file():
        raise MusicGenreError(f"{cfg_path}: missing: {path} is not a sweep directory")
    cfg = read_sweep_config(cfg_path)
    return cfg, list(finished_results(cfg, path).values())


def sweep_config_from(base: TrainConfig, data: str | None, optimizers: str, seeds: int,
                      lr_per_optimizer: bool, split: str) -> SweepConfig:
    """A SweepConfig from command-line style values ('all' or a comma list of optimizers)."""
    if not isinstance(optimizers, str):
        raise SettingError(f"optimizers must be 'all' or a comma-separated list of names, not {optimizers!r}")
    names = OPTIMIZERS if optimizers.strip().lower() == "all" else tuple(o.strip() for o in optimizers.split(",") if o.strip())
    if not names:
        raise SettingError("--optimizers: give 'all' or a comma-separated list of optimizer names")
    root = str(resolve_data_root(data).resolve())
    return SweepConfig(base=replace(base, seed=None, optimizer="SGD"), data=root, optimizers=names, seeds=seeds,
                       lr_per_optimizer=lr_per_optimizer, split=split)
