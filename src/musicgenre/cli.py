"""Command-line interface: parses arguments, calls the library, prints. Heavy imports stay inside
the commands so that `musicgenre --help` starts fast."""

from __future__ import annotations

import argparse
import codecs
import importlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from musicgenre.errors import MusicGenreError, SettingError

if TYPE_CHECKING:
    from collections.abc import Callable

    from musicgenre.config import TrainConfig
    from musicgenre.datasets import Dataset
    from musicgenre.predict import FilePrediction
    from musicgenre.training import EpochRecord


class Parser(argparse.ArgumentParser):
    """argparse with its refusals as one line, as every other refusal is (it printed its whole usage first, up to 17
    lines): `error: musicgenre train: argument --epochs: must be at least 1, not 0 (see musicgenre train --help)`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


# Every training option defaults to None, meaning "not given": the recipe's (or the study's) value stays.
TRAIN_OPTIONS = ("features", "model", "optimizer", "lr", "epochs", "batch_size", "weight_decay", "label_smoothing",
                 "scheduler", "patience", "standardize", "device", "seed", "mixup", "mixup_same_class", "spec_augment", "precision",
                 "cuda_graphs", "fused")


def _add_train_options(p: argparse.ArgumentParser, not_taken: dict[str, str] | None = None) -> None:
    """Options shared by every command that trains; unset ones keep the recipe's or the study's settings.
    `not_taken` names options a command sets itself, with why: they are still parsed (else argparse would take
    --seed as an abbreviation of --seeds) and refused by train_config_from_args."""
    not_taken = not_taken or {}

    def helps(name: str, text: str) -> str:
        return f"not taken: {not_taken[name]}" if name in not_taken else text

    p.set_defaults(not_taken=not_taken)
    p.add_argument("--recipe", default=None,
                   help="start from a named recipe (model + settings: mfcc-mlp-std, mfcc-mlp-plus, mel-resnet, ...); options you give override it")
    p.add_argument("--features", choices=["mfcc", "melgram"], help="representation (default: the model's)")
    p.add_argument("--model", help="mfcc-mlp (default for mfcc), mel-cnn (default for melgram), mel-cnn-relu, ...; "
                                   "without --recipe it trains with its own recipe's settings")
    p.add_argument("--optimizer", help=helps("optimizer", "one of the 11 torch.optim optimizers the study compared (Adadelta ... SGD), case-insensitive (default: the recipe's; the study's: SGD)"))
    p.add_argument("--lr", type=float, help="learning rate (default: the recipe's; the study's: 0.002)")
    p.add_argument("--epochs", type=positive_int, help="default: the recipe's; the study's: 30")
    p.add_argument("--batch-size", type=positive_int, help="default: the recipe's; the study's: 16")
    p.add_argument("--weight-decay", type=float, help="default: the recipe's; the study's: 0")
    p.add_argument("--label-smoothing", type=float, help="default: the recipe's; the study's: 0")
    p.add_argument("--scheduler", choices=["none", "cosine", "onecycle"], help="default: the recipe's; the study's: none")
    p.add_argument("--patience", type=positive_int, help="early stopping: epochs without a better val F1 (default: none)")
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction, help="fit feature standardisation on train, store it in the model (default: the recipe's; the study's: off)")
    p.add_argument("--device", help=helps("device", "auto (default: CUDA when present, but the CPU for what the fused epoch "
                                                    "trains, faster there: see --fused), cpu, cuda or cuda:N"))
    p.add_argument("--seed", type=int, help=helps("seed", "seed; without it one is drawn and recorded"))
    p.add_argument("--mixup", type=float, help="mixup alpha, 0 = off (default: the recipe's; the study's: 0)")
    p.add_argument("--mixup-same-class", action=argparse.BooleanOptionalAction,
                   help="mixup partners from the example's own genre only (default: the recipe's; the study's: off)")
    p.add_argument("--spec-augment", action=argparse.BooleanOptionalAction, help="time/frequency masking of melgram batches (default: the recipe's; the study's: off)")
    p.add_argument("--precision", choices=["fp32", "bf16"],
                   help="fp32 (default) or bf16 mixed precision: weights stay fp32; CNNs train faster on CPUs with bf16 units (the README's Speed section)")
    p.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction,
                   help="on a GPU, replay each training step as a CUDA graph (default: on where the settings allow; the README's Speed section)")
    p.add_argument("--fused", action=argparse.BooleanOptionalAction,
                   help="on the CPU, train plain MLPs with SGD in one compiled call per epoch (default: on where the settings allow; the README's Speed section)")
    add_data_option(p)


RECORDED_ROOT_DEFAULT = "default: the one the runs recorded, where it still is, else $MUSICGENRE_DATA"


def add_data_option(p: argparse.ArgumentParser, default: str = "default: $MUSICGENRE_DATA") -> None:
    """--data, the data root, by default $MUSICGENRE_DATA (datasets.resolve_data_root) or as `default` says."""
    p.add_argument("--data", default=None, help=f"data root ({default})")


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The configuration the command line asks for (config.config_from_options), its device checked; an option
    the command sets itself refused (SettingError, which main names with the command, as the parser's own refusals)."""
    from musicgenre.config import config_from_options
    from musicgenre.training import resolve_device, train_threads

    for name, why in args.not_taken.items():
        if getattr(args, name) is not None:
            raise SettingError(f"--{name} {getattr(args, name)} is not taken: {why}")
    cfg = config_from_options(args.recipe, {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None})
    resolve_device(cfg.device)  # a GPU this machine lacks is refused before any data loads
    train_threads(cfg.model)  # and so is a MUSICGENRE_THREADS of no number
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    """Train one run, or several seeds (--seeds), and save them."""
    from musicgenre.config import seed_range
    from musicgenre.datasets import load_dataset, resolve_data_root
    from musicgenre.models import build_model, count_parameters
    from musicgenre.io import check_out_dir
    from musicgenre.runs import train_run
    from musicgenre.tables import plural
    from musicgenre.training import check_settings, resolve_seed

    cfg = resolve_seed(train_config_from_args(args))
    seeds = seed_range(cfg.seed, args.seeds)
    root = resolve_data_root(args.data)
    check_out_dir(args.out, args.overwrite, [root])  # fail before training, not after
    data = load_dataset(root, cfg.features)
    val = data.get("val")
    check_settings(cfg, data["train"], val)  # before the header: a refusal is then the only line
    n_params = count_parameters(build_model(cfg.model, len(data["train"].classes)))
    print(f"{cfg.model} ({n_params:,} parameters) on {len(data['train'])} {cfg.features} clips, "
          f"validating on {len(val) if val else 0}; {cfg.optimizer} lr {cfg.lr}, {plural(cfg.epochs, 'epoch')}, batch {cfg.batch_size}")

    def show(r: EpochRecord) -> None:
        seed = f"seed {r.seed}  " if len(seeds) > 1 else ""  # several runs report, stacked ones in turn
        val_txt = f"  val acc {r.val_accuracy:.3f}  val F1 {r.val_f1:.3f}" if r.val_f1 is not None else ""
        stop = "  diverged: training stops here" if r.diverged else ""
        print(f"{seed}epoch {r.epoch:3d}/{cfg.epochs}  loss {r.loss:.4f}{val_txt}  ({r.seconds:.2f} s){stop}", flush=True)

    if len(seeds) > 1:
        return train_many_seeds(cfg, seeds, args, root, data, show)
    result, out = train_run(cfg, root, data, args.out, args.overwrite, on_epoch=show)
    summary = f"trained in {result.train_seconds:.1f} s; kept epoch {result.best_epoch}"
    if result.metrics:
        summary += f": val accuracy {result.metrics['accuracy']:.4f}, macro F1 {result.metrics['f1_macro']:.4f}"
    print(f"{summary}\nrun saved to {out} (seed {result.config.seed})")
    return 0


def train_many_seeds(cfg: TrainConfig, seeds: list[int], args: argparse.Namespace, root: Path,
                     data: dict[str, Dataset], show: Callable[[EpochRecord], None]) -> int:
    """The seeds trained together; OUT/seed-K per seed and OUT/summary.json."""
    from musicgenre.runs import train_seed_runs
    from musicgenre.tables import plural, plus_minus

    _, out, summary = train_seed_runs(cfg, seeds, root, data, args.out, args.overwrite, on_epoch=show)
    for key in ("accuracy", "f1_macro"):
        if f"val_{key}" in summary:
            figures = summary[f"val_{key}"]
            print(f"val {key}: {plus_minus(figures['mean'], figures['std'], '.4f')} over {plural(len(seeds), 'seed')}")
    print(f"runs saved to {out}/seed-{{{seeds[0]}..{seeds[-1]}}}")
    return 0


def print_metrics(m: dict, title: str) -> None:
    """A human-readable classification report: headline figures, per-class table, confusion matrix."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from musicgenre.tables import per_class_rows

    class PipeConsole(Console):
        def on_broken_pipe(self) -> None:  # rich exits with status 1; main stops quietly with 0, as for predict
            raise BrokenPipeError

    console = PipeConsole(soft_wrap=True)  # lines whole, not cut at 80 columns for a pipe (`| head -1` lost the figures)
    console.print(f"[bold]{escape(title)}[/bold]: n={m['n']}  accuracy {m['accuracy']:.4f}  macro F1 {m['f1_macro']:.4f}")
    t = Table("class", "precision", "recall", "F1", "support")
    for row in per_class_rows(m):
        t.add_row(*row)
    console.print(t)
    cm = Table("truth \\ predicted", *m["classes"], title="confusion matrix")
    for c, row in zip(m["classes"], m["confusion_matrix"]):
        cm.add_row(c, *map(str, row))
    console.print(cm)
    if "nll" in m:
        console.print(f"NLL {m['nll']:.4f}  ECE {m['ece']:.4f}")


def print_evaluation(m: dict, args: argparse.Namespace, title: str, source: dict) -> None:
    """With --json one JSON object (what was evaluated, the split, the metrics), else the readable report."""
    if args.json:  # a non-finite figure (an infinite NLL) as null: NaN and Infinity are not JSON
        from musicgenre.io import finite_or_null

        print(json.dumps(finite_or_null({**source, "split": args.split, **m}), allow_nan=False))
    else:
        print_metrics(m, title)


def scoring_root(args: argparse.Namespace, runs: list) -> Path:
    """The data root runs are scored on: --data, else the root they all recorded (their own data, where it still is),
    else $MUSICGENRE_DATA, with a note on stderr when they recorded one that is gone, or several (an error when
    $MUSICGENRE_DATA is not set either)."""
    from musicgenre.datasets import DATA_ENV, resolve_data_root
    from musicgenre.runs import recorded_root

    if args.data is not None:
        return resolve_data_root(args.data)
    own, why_not = recorded_root(runs)
    if why_not and not os.environ.get(DATA_ENV):  # one line: no other root to take
        raise MusicGenreError(f"{why_not}, and no other was given: pass --data ROOT (or set ${DATA_ENV})")
    if why_not:
        print(f"note: {why_not}: taking ${DATA_ENV}'s instead (pass --data to choose)", file=sys.stderr)
    return resolve_data_root(own)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score a run on a split: the metrics, or one JSON object."""
    from musicgenre.datasets import load_split
    from musicgenre.ensemble import Predictor, evaluate_predictor
    from musicgenre.runs import load_run

    run = load_run(args.run_dir)
    root = scoring_root(args, [run])
    dataset = load_split(root, args.split, run.features, run.classes)
    note_training_split([run], args.split, root)
    print_evaluation(evaluate_predictor(Predictor([run]), dataset), args, f"{run.path} on {args.split} of {root}",
                     {"run": str(run.path), "data": str(root)})
    return 0


def note_training_split(runs: list, split: str, root: Path) -> None:
    """Print runs.held_out_notes on stderr: figures of a split a run trained on, or of data changed since."""
    from musicgenre.runs import held_out_notes

    for note in held_out_notes(runs, split, root):
        print(f"note: {note}", file=sys.stderr)


def cmd_extract(args: argparse.Namespace) -> int:
    """Build a dataset from genre folders; print each split's size, the files skipped and what the dataset lacks."""
    from musicgenre.extraction import build_dataset, dataset_notes, split_sizes
    from musicgenre.tables import percent, plural

    manifest = build_dataset(args.audio_dir, args.out, split_ratio=args.split_ratio, seed=args.seed, workers=args.workers,
                             overwrite=args.overwrite)
    sizes = split_sizes(manifest)
    total = sum(clips for clips, _ in sizes.values())
    for split, (clips, files) in sizes.items():
        print(f"{split}: {plural(clips, 'one-second clip')} ({percent(clips / total)}) from {plural(files, 'file')}")
    for f in manifest["files"]:
        if f["error"]:
            print(f"skipped: {one_line(f['error'])}", file=sys.stderr)
    print(f"dataset written to {args.out} (manifest.json lists every file)")
    for note in dataset_notes(manifest):
        print(f"note: {one_line(note)}", file=sys.stderr)
    return 0


# Line breaks and other control characters in a file name, escaped so that each file's line stays one line
_CONTROL_ESCAPES = {c: repr(chr(c))[1:-1] for c in [*range(32), 127] if c != 9}


def one_line(text: str) -> str:
    """Text with any line break or other control character (from a file name) as its Python escape."""
    return text.translate(_CONTROL_ESCAPES)


def print_prediction(pred: FilePrediction, segments: bool) -> None:
    """A file's genre and probabilities on one line, then (with `segments`) one line per second."""
    path = one_line(str(pred.path))
    if pred.silent:
        print(f"{path}  (silent: no genre)  [{pred.duration:.1f} s]")
    else:
        probs = "  ".join(f"{c} {p:.2f}" for c, p in pred.probabilities.items())
        print(f"{path}  {pred.genre} ({pred.probabilities[pred.genre]:.2f})   {probs}  [{pred.duration:.1f} s]")
    if segments:
        for s in pred.segments:
            print(f"  {s.start:5d} s  {s.genre or '(silent)':20s} {'' if s.probability is None else f'{s.probability:.2f}'}")


def cmd_predict(args: argparse.Namespace) -> int:
    """Classify files and folders, one line (or JSON object) per file; status 1 if any could not be read."""
    from musicgenre.predict import predict_paths

    failed = []
    preds = predict_paths(args.paths, args.model, args.workers)
    try:
        for pred in preds:
            if pred.error is not None:
                failed.append(pred.error)
            if args.json:  # errors too, as {"file", "error"}
                print(json.dumps(pred.to_json(args.segments)), flush=True)
            elif pred.error is None:
                print_prediction(pred, args.segments)
    except BrokenPipeError:  # the reader stopped early (| head): quietly, with the status of the files read so far
        quiet_stdout()
    finally:  # a stop (Ctrl-C) ends the decoding workers now, not at interpreter exit; then the errors so far
        preds.close()
        for err in failed:
            print(f"error: {one_line(err)}", file=sys.stderr)
    return 1 if failed else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run or resume the optimizer sweep."""
    from musicgenre.sweep import run_sweep, sweep_config_from, sweep_markdown

    base = train_config_from_args(args)
    if args.lr_per_optimizer and args.lr is not None:
        raise SettingError("--lr and --lr-per-optimizer: choose one (the second replaces every lr by the optimizer's own default)")
    cfg = sweep_config_from(base, args.data, args.optimizers, args.seeds, args.lr_per_optimizer, args.split)
    print(sweep_markdown(cfg, run_sweep(cfg, args.out)), end="")
    print(f"sweep written to {args.out} (sweep.csv, sweep.md, sweep.png, runs/)")
    return 0


def cmd_bench_devices(args: argparse.Namespace) -> int:
    """Time the same training on each device asked for."""
    from musicgenre.benchmark import compare_devices, device_table
    from musicgenre.training import resolve_seed

    cfg = resolve_seed(train_config_from_args(args))
    rows = compare_devices(cfg, args.devices.split(","), args.data)
    print(device_table(rows), end="")
    print(f"seed {cfg.seed} (--seed {cfg.seed} repeats it)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write a run's or a sweep's report."""
    from musicgenre.report import build_report

    out = build_report(args.path, args.out, args.data, args.overwrite)
    print(f"report written to {out / 'report.md'} and {out / 'report.html'}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Run or resume all of the study's experiments."""
    from musicgenre.reproduce import reproduce

    summary = reproduce(args.data, args.out, seeds=args.seeds, epochs=args.epochs, optimizers=args.optimizers,
                        on_part=lambda part: print(part, flush=True))
    print(summary.read_text(), end="")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    """Score the mean of several runs' probabilities on a split."""
    from musicgenre.datasets import load_split
    from musicgenre.ensemble import evaluate_predictor, load_ensemble

    predictor = load_ensemble(args.run_dirs)
    root = scoring_root(args, predictor.runs)
    dataset = load_split(root, args.split, predictor.features, predictor.classes)
    note_training_split(predictor.runs, args.split, root)
    print_evaluation(evaluate_predictor(predictor, dataset), args, f"ensemble of {len(predictor.runs)} runs on {args.split} of {root}",
                     {"runs": [str(r.path) for r in predictor.runs], "data": str(root)})
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit and store a run's temperature on the val split."""
    from musicgenre.datasets import load_split
    from musicgenre.ensemble import calibrate_run
    from musicgenre.runs import data_changed, load_run

    run = load_run(args.run_dir, averaged=False)  # a temperature is fitted to one run
    root = scoring_root(args, [run])
    if changed := data_changed([run], root):  # fitted on training clips, T would make it over-confident
        raise MusicGenreError(f"{changed[run.path]}: calibrate on the data it was trained on, or train it again")
    dataset = load_split(root, "val", run.features, run.classes)
    c = calibrate_run(run, dataset)
    print(f"temperature {c['temperature']:.4f} fitted on val: NLL {c['nll_before']:.4f} -> {c['nll_after']:.4f}, "
          f"ECE {c['ece_before']:.4f} -> {c['ece_after']:.4f}; stored in {run.path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Train and score every recipe and baseline; write the comparison table."""
    from musicgenre.compare import compare, table_markdown, write_tables
    from musicgenre.datasets import resolve_data_root
    from musicgenre.io import check_out_dir

    root = resolve_data_root(args.data)
    check_out_dir(args.out, args.overwrite, [root])  # fail before training, not after

    def show(row) -> None:  # how it goes: stdout keeps the table, once
        print(table_markdown([row]).splitlines()[-1], file=sys.stderr, flush=True)

    comparison = compare(root, list(range(args.seeds)), on_row=show)
    out = write_tables(comparison, args.out, args.overwrite, [root])
    print(f"{table_markdown(comparison.rows)}\nwritten to {out / 'compare.md'} and {out / 'compare.csv'} "
          f"(settings: {out / 'compare_config.json'})")
    return 0


def add_scoring_options(p: argparse.ArgumentParser) -> None:
    """The data root, split and output options of the commands that score models on a split."""
    add_data_option(p, RECORDED_ROOT_DEFAULT)
    p.add_argument("--split", choices=["train", "val", "test"], default="val", help="the split to score (default: val)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    from musicgenre import __version__

    parser = Parser(prog="musicgenre", description="Classify music into genres with small neural networks.")
    parser.add_argument("--version", action="version", version=f"musicgenre {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model on a data root and save a run directory")
    _add_train_options(p)
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--seeds", type=positive_int, default=1,
                   help="train N seeds (seed..seed+N-1; several at once where the model allows); OUT/seed-K each, OUT/summary.json")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy, macro F1, per-class report and confusion matrix of a run")
    p.add_argument("run_dir", help="a run directory (from train, sweep or reproduce)")
    add_scoring_options(p)
    p.set_defaults(func=cmd_evaluate, stdout_is_the_result=True)

    p = sub.add_parser("extract", help="build a dataset in the study's format from one audio folder per genre")
    p.add_argument("audio_dir", help="folder with one subfolder of audio files per genre")
    p.add_argument("--out", required=True, help="data root to create")
    p.add_argument("--split-ratio", default="0.8/0.2",
                   help="train/val or train/val/test shares of each genre's files (0.7/0.15/0.15), scaled to sum to 1 (default: 0.8/0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the files' assignment to splits (default: 0)")
    p.add_argument("--workers", type=positive_int, default=None, help="decoding processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing data root")
    p.set_defaults(func=cmd_extract, computes_with_torch=False)  # features by numpy, librosa and numba only

    p = sub.add_parser("predict", help="genre of audio files (wav, flac, ogg, mp3), per file and per second")
    p.add_argument("paths", nargs="+", help="audio files or folders (searched recursively)")
    p.add_argument("--model", default=None, help="run directory or ensemble:RUN1,RUN2 (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="one JSON object per file (JSON Lines)")
    p.add_argument("--segments", action="store_true", help="also the per-second timeline")
    p.add_argument("--workers", type=positive_int, default=None, help="decoding processes for several files (default: all cores)")
    p.set_defaults(func=cmd_predict, stdout_is_the_result=True)

    p = sub.add_parser("sweep", help="train every optimizer x seed on one model; table, CSV and chart (resumable)")
    _add_train_options(p, {"seed": "a sweep trains seeds 0..N-1 of each optimizer (--seeds N)",
                           "optimizer": "a sweep trains each optimizer of --optimizers"})
    p.add_argument("--optimizers", default="all", help="'all' (the 11 torch.optim optimizers the study compared) or a comma list")
    p.add_argument("--seeds", type=positive_int, default=5, help="seeds 0..N-1 per optimizer (no --seed)")
    p.add_argument("--lr-per-optimizer", action="store_true", help="each optimizer's own default lr instead of --lr")
    p.add_argument("--split", choices=["val", "test"], default="val", help="split the table reports")
    p.add_argument("--out", required=True, help="sweep directory (rerun the same command to resume)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("bench-devices", help="train one configuration on each device and compare speed and scores")
    _add_train_options(p, {"device": "bench-devices trains on each device of --devices"})
    p.add_argument("--devices", default="cpu,cuda", help="comma list, e.g. cpu,cuda (absent ones: 'not available')")
    p.set_defaults(func=cmd_bench_devices, stdout_is_the_result=True)  # its table, which it writes nowhere else

    p = sub.add_parser("report", help="Markdown + self-contained HTML report with figures for a run or sweep dir")
    p.add_argument("path", help="a run directory, a sweep directory or a train --seeds folder")
    p.add_argument("--out", required=True, help="folder for report.md, report.html and the PNGs")
    p.add_argument("--data", default=None, help="data root for the example mel-spectrograms of melgram runs ("
                                                f"{RECORDED_ROOT_DEFAULT})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("reproduce", help="the whole study in one command: runs, optimizer sweep, devices, report")
    add_data_option(p)
    p.add_argument("--out", required=True, help="folder for everything (rerun to resume)")
    p.add_argument("--seeds", type=positive_int, default=5, help="seeds 0..N-1 of each optimizer in the sweep (default 5)")
    p.add_argument("--epochs", type=positive_int, default=30, help="epochs of every run (default 30, the study's)")
    p.add_argument("--optimizers", default="all", help="'all' (the 11 of the study) or a comma list, for the sweep")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("ensemble", help="evaluate the average of several runs' probabilities")
    p.add_argument("run_dirs", nargs="+", help="run directories whose probabilities are averaged")
    add_scoring_options(p)
    p.set_defaults(func=cmd_ensemble, stdout_is_the_result=True)

    p = sub.add_parser("calibrate", help="fit a run's temperature on the val split and store it in the run")
    p.add_argument("run_dir", help="a run directory trained without the val split")
    add_data_option(p, RECORDED_ROOT_DEFAULT)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("compare", help="train every recipe and baseline over seeds; write compare.md/.csv and compare_config.json")
    add_data_option(p)
    p.add_argument("--seeds", type=positive_int, default=5, help="seeds 0..N-1 per model (default 5)")
    p.add_argument("--out", required=True, help="folder for compare.md, compare.csv and compare_config.json")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_compare)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`), stopped as Ctrl-C is: temporary folders removed, decoding workers ended."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def _bytes_or_escapes(exc: UnicodeError) -> tuple[str | bytes, int]:
    """Output encoding errors: a file name that is not UTF-8 (surrogate escapes) as its own bytes, as ls prints
    it; any other character the stream's encoding lacks (a Latin-1 terminal) as a backslash escape."""
    try:
        return codecs.lookup_error("surrogateescape")(exc)
    except UnicodeError:
        return codecs.lookup_error("backslashreplace")(exc)


codecs.register_error("musicgenre", _bytes_or_escapes)


class StandardStream:
    """sys.stdout or sys.stderr as a command writes it. A command whose product is files (`outlive`) prints only how
    the work goes: once the stream cannot be written (its reader gone, `train ... | head -1` or `2>&1 | head -1`; a
    full device), the rest goes nowhere and the work carries on (train stopped at its next line, exiting 0 without
    its run saved). For the others, a write that fails for another reason than its reader going (a full device)
    names the stream: "[Errno 28] No space left on device" named no file."""

    def __init__(self, stream: TextIO, name: str, outlive: bool) -> None:
        self.stream, self.name, self.outlive = stream, name, outlive

    def _failed(self, exc: OSError) -> None:
        if self.outlive:
            quiet_stdout(self.stream)
        elif isinstance(exc, BrokenPipeError):  # main stops quietly
            raise exc
        else:
            quiet_stdout(self.stream)  # nor does the interpreter's exit try its buffer again
            raise OSError(exc.errno, exc.strerror, self.name) from None

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as exc:
            self._failed(exc)
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            self._failed(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def quiet_stdout(stream: TextIO | None = None) -> None:
    """After the reader of our output has gone (BrokenPipeError): what is still buffered in `stream` (stdout by
    default) goes nowhere, so that the interpreter's exit does not fail flushing it (Python's documented recipe,
    signal module)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), (stream or sys.stdout).fileno())
    except (OSError, ValueError):  # no file descriptor (stdout replaced, as by pytest's capture)
        pass


def main(argv: list[str] | None = None) -> int:
    stdout, stderr = sys.stdout, sys.stderr
    streams = [(stream, stream.errors) for stream in (sys.stdout, sys.stderr) if hasattr(stream, "reconfigure")]
    for stream, _ in streams:
        stream.reconfigure(errors="musicgenre")
    in_main_thread = threading.current_thread() is threading.main_thread()  # only it may handle signals
    before = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        args, unknown = build_parser().parse_known_args(argv)
        if unknown:  # named with the command's help, not the whole program's
            raise SettingError(f"unrecognized arguments: {' '.join(unknown)}")
        # notes and errors never stop a command; what it prints does where that is its result (predict, evaluate...)
        outlive = {"standard output": not getattr(args, "stdout_is_the_result", False), "standard error": True}
        sys.stdout, sys.stderr = (open(os.devnull, "w") if s is None else StandardStream(s, name, outlive[name])  # None:
                                  for s, name in ((sys.stdout, "standard output"), (sys.stderr, "standard error")))  # closed
        if getattr(args, "computes_with_torch", True):  # torch imported here with stops held back, since one
            from musicgenre.io import stops_deferred  # landing inside torch's C++ start-up aborted

            with stops_deferred():
                importlib.import_module("torch")
        return args.func(args)
    except SettingError as exc:  # named with the command and its help, as the parser's own refusals are
        print(f"error: musicgenre {args.command}: {one_line(str(exc))} (see musicgenre {args.command} --help)", file=sys.stderr)
        return 2
    except MusicGenreError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print("terminated" if terminated else "interrupted", file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        quiet_stdout()
        return 0
    except OSError as exc:  # disk full, permission denied: the system's reason, which names the file
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for ours in {sys.stdout, sys.stderr} - {stdout, stderr}:
            if not isinstance(ours, StandardStream):  # the devnull standing in for a stream closed from the start
                ours.close()
        sys.stdout, sys.stderr = stdout, stderr
        if in_main_thread:
            signal.signal(signal.SIGTERM, before)
        for stream, errors in streams:  # the caller's streams as they were
            if not stream.closed:
                stream.reconfigure(errors=errors)


def run() -> None:
    """The `musicgenre` command: main(), then the interpreter's exit with stops ignored. The work is done by
    then, and a Ctrl-C landing in the exit's own clean-up (torch's, multiprocessing's) printed a traceback."""
    code = main()
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    run()
