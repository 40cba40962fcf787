"""Reports for a run or a sweep directory: PNG figures plus report.md and a self-contained
report.html (figures embedded as data URIs), both rendered from one list of blocks."""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from musicgenre.datasets import has_split
from musicgenre.errors import MusicGenreError
from musicgenre.figures import new_figure, png_bytes
from musicgenre.io import as_path, atomic_write_bytes, atomic_write_text, write_dir
from musicgenre.metrics import mean_std
from musicgenre.models import count_parameters
from musicgenre.runs import (NUMBER, Run, check_fields, holds_runs, load_run, load_seed_runs, read_history, recorded_root, run_folders,
                             training_record)
from musicgenre.tables import markdown_table, per_class_rows, plus_minus

if TYPE_CHECKING:
    from collections.abc import Sequence

    from musicgenre.sweep import OptimizerResult, SweepConfig

CALIBRATION_FIGURES = ("nll_before", "nll_after", "ece_before", "ece_after")
MAX_ANNOTATED = 12  # classes up to which a confusion matrix's cells are labelled and its figure grows
MEL_COLUMNS, MEL_EXAMPLES = 6, 24  # example mel-spectrograms per row, and in all (the first genres')


@dataclass
class Block:
    """One piece of a report: a heading, a paragraph, a table or an image (a PNG file in the report dir)."""

    kind: str  # "h2" | "p" | "table" | "img"
    text: str = ""
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    align: str = ""  # a table's columns: one 'l' or 'r' each (tables.markdown_table)


def _save(fig, path: Path) -> None:
    atomic_write_bytes(path, png_bytes(fig))


def plot_learning_curves(history: list[dict], best_epoch: int, path: Path) -> None:
    """Training loss, and validation accuracy / macro F1, per epoch; the kept epoch marked."""
    epochs = [h["epoch"] for h in history]
    fig = new_figure(figsize=(10, 3.6))
    a1, a2 = fig.subplots(1, 2)
    a1.plot(epochs, [h["loss"] for h in history])
    a1.set(xlabel="epoch", ylabel="training loss", title="loss")
    if history and history[0]["val_f1"] is not None:
        a2.plot(epochs, [h["val_accuracy"] for h in history], label="val accuracy")
        a2.plot(epochs, [h["val_f1"] for h in history], label="val macro F1")
        a2.legend()
    a2.set(xlabel="epoch", ylabel="score", title="validation")
    from matplotlib.ticker import MaxNLocator

    for ax in (a1, a2):
        ax.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"kept epoch {best_epoch}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    a1.legend()
    fig.tight_layout()
    _save(fig, path)


def labels(genres: Sequence[str], width: int = 24) -> list[str]:
    """Genre names as a figure shows them: cut with an ellipsis beyond `width` characters (a 200-character folder
    name left no room for the plot, and matplotlib warned), numbered where two cut names would read the same; the
    report's tables name them whole."""
    cut = [g if len(g) <= width else g[: width - 1] + "…" for g in genres]
    return cut if len(set(cut)) == len(cut) else [f"{i}. {c}" for i, c in enumerate(cut, 1)]


def plot_confusion(metrics: dict, path: Path) -> None:
    """Heatmap of row-normalised rates (recall per true class), each cell annotated with count and rate (up to
    MAX_ANNOTATED classes; the figure stops growing there too: 100 classes had made a 7 GB, 14,000-pixel image)."""
    cm = np.array(metrics["confusion_matrix"])
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    classes = metrics["classes"]
    n = min(len(classes), MAX_ANNOTATED)
    fig = new_figure(figsize=(1.4 * n + 2.5, 1.2 * n + 1.5))
    ax = fig.subplots()
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if len(classes) <= MAX_ANNOTATED:
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{cm[i, j]}\n{100 * rates[i, j]:.0f}%", ha="center", va="center",
                        color="white" if rates[i, j] > 0.5 else "black", fontsize=9)
    ticks = {"fontsize": 9 if len(classes) <= MAX_ANNOTATED else 5}
    names = labels(classes)
    ax.set_xticks(range(len(classes)), names, rotation=30 if len(classes) <= MAX_ANNOTATED else 90, ha="right", **ticks)
    ax.set_yticks(range(len(classes)), names, **ticks)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (count, row %)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    _save(fig, path)


def plot_per_class(metrics: dict, path: Path) -> None:
    """Precision, recall and F1 of each class as grouped bars."""
    classes = metrics["classes"]
    x = np.arange(len(classes))
    fig = new_figure(figsize=(7, 3.6))
    ax = fig.subplots()
    for k, key in enumerate(["precision", "recall", "f1"]):
        ax.bar(x + (k - 1) * 0.27, [metrics["per_class"][c][key] for c in classes], 0.27, label=key)
    ax.set_xticks(x, labels(classes))
    ax.set(ylim=(0, 1), ylabel="score", title="per-class scores")
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def plot_mel_examples(data: str | os.PathLike, classes: tuple[str, ...], path: Path) -> None:
    """The first mel-spectrogram of each of the first MEL_EXAMPLES genres in the train split (time across, mel band
    up), as the study showed."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from musicgenre.datasets import MELGRAM_RANGE, load_split

    train = load_split(data, "train", "melgram", classes)
    scale = ScalarMappable(Normalize(*MELGRAM_RANGE), "magma")  # one scale for every panel, and its colour bar
    classes = classes[:MEL_EXAMPLES]
    cols = min(len(classes), MEL_COLUMNS)
    rows = -(-len(classes) // cols)
    fig = new_figure(figsize=(3.2 * cols, 2.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for k, (ax, title) in enumerate(zip(axes, labels(classes))):
        idx = np.flatnonzero(train.y == k)
        ax.set_title(title)
        if len(idx):
            ax.imshow(train.X[idx[0]].T, origin="lower", aspect="auto", cmap=scale.cmap, norm=scale.norm)
        ax.set(xlabel="frame", ylabel="mel band" if k % cols == 0 else "")
    for ax in axes[len(classes):]:
        ax.set_axis_off()
    fig.colorbar(scale, ax=axes.tolist(), label="dB")
    _save(fig, path)


def calibration_text(run: Run, record: dict) -> str:
    """One sentence on a calibrated run: its temperature, and NLL/ECE before and after where metrics.json has them."""
    text = f"Calibrated by musicgenre calibrate: its logits are divided by a temperature of {float(run.model.temperature):.3f}"
    if "calibration" in record:
        cal = check_fields(record["calibration"], {"split": (str,), **{k: NUMBER for k in CALIBRATION_FIGURES}},
                           f"{run.path / 'metrics.json'}: 'calibration'")
        text += (f", fitted on the {cal['split']} split: NLL {cal['nll_before']:.3f} -> {cal['nll_after']:.3f}, "
                 f"expected calibration error {cal['ece_before']:.3f} -> {cal['ece_after']:.3f}")
    return text + " (accuracy and F1 do not change: a temperature never changes the top class)."


def run_blocks(run: Run, record: dict, history: list[dict], out: Path, prefix: str, data: str | None) -> list[Block]:
    """Figures and tables of one loaded run with its training record and history (runs.training_record,
    runs.read_history); PNGs are named `prefix`*.png in `out`."""
    metrics = run.meta.get("sweep_metrics") or record["val"]
    split = run.meta.get("sweep_split", "val")
    settings = tuple((k, str(v)) for k, v in run.config.to_dict().items())
    blocks = [Block("table", header=("setting", "value"),
                    rows=settings + (("parameters", f"{count_parameters(run.model):,}"),))]
    blocks.append(Block("p", f"Kept epoch {record['best_epoch']} of {record['epochs_run']}; "
                             f"trained in {record['train_seconds']:.1f} s "
                             f"({record['seconds_per_epoch']:.3f} s per epoch)."))
    plot_learning_curves(history, record["best_epoch"], out / f"{prefix}learning_curves.png")
    blocks.append(Block("img", f"{prefix}learning_curves.png"))
    if metrics:
        blocks.append(Block("p", f"On the {split} split (n={metrics['n']}): accuracy {100 * metrics['accuracy']:.1f}%, "
                                 f"macro F1 {metrics['f1_macro']:.3f}."))
        blocks.append(Block("table", header=("class", "precision", "recall", "F1", "support"),
                            rows=tuple(per_class_rows(metrics)), align="lrrrr"))
        plot_confusion(metrics, out / f"{prefix}confusion.png")
        plot_per_class(metrics, out / f"{prefix}per_class.png")
        blocks += [Block("img", f"{prefix}confusion.png"), Block("img", f"{prefix}per_class.png")]
    if float(run.model.temperature) != 1.0:
        blocks.append(Block("p", calibration_text(run, record)))
    if run.features == "melgram":  # optional: without them the report goes on, saying why
        missing = None
        if data is None:
            missing = "no data root to take them from (pass --data ROOT, or set MUSICGENRE_DATA)"
        elif not has_split(Path(data), "train", "melgram"):
            missing = f"{data} has no train split of melgrams (pass --data ROOT of one that has)"
        else:
            try:
                plot_mel_examples(data, run.classes, out / f"{prefix}mel_examples.png")
                shown = "" if len(run.classes) <= MEL_EXAMPLES else f" (the first {MEL_EXAMPLES} of {len(run.classes)})"
                blocks += [Block("p", f"One training mel-spectrogram per genre{shown}, from {Path(data).resolve()}:"),
                           Block("img", f"{prefix}mel_examples.png")]  # which root: $MUSICGENRE_DATA's may not be the run's
            except MusicGenreError as exc:  # another dataset's genres, or a broken file
                missing = f"{exc} (pass --data ROOT of the run's own data)"
        if missing:
            blocks.append(Block("p", f"No example mel-spectrograms: {missing}."))
    return blocks


def seed_blocks(runs: list[Run], records: list[dict]) -> list[Block]:
    """The seeds of a `train --seeds N` folder (runs with their training records): validation figures and kept
    epoch of each, their mean ± sample std."""
    keys = ("accuracy", "f1_macro")
    rows = tuple((str(run.config.seed), *(f"{rec['val'][k]:.4f}" if rec["val"] else "—" for k in keys), str(rec["best_epoch"]))
                 for run, rec in zip(runs, records))
    blocks = [Block("table", header=("seed", "val accuracy", "val macro F1", "kept epoch"), rows=rows, align="rrrr")]
    if all(rec["val"] for rec in records):
        acc, f1 = (plus_minus(*mean_std([rec["val"][k] for rec in records]), ".4f") for k in keys)
        blocks.insert(0, Block("p", f"{len(runs)} seeds of one configuration: val accuracy {acc}, macro F1 {f1} "
                                    "(mean ± sample std over the seeds, each at its kept epoch)."))
    return blocks


def sweep_blocks(cfg: SweepConfig, results: list[OptimizerResult], out: Path) -> list[Block]:
    """The sweep table and chart."""
    from musicgenre.sweep import SWEEP_ALIGN, SWEEP_HEADER, sweep_figure, sweep_intro, sweep_table_rows

    atomic_write_bytes(out / "sweep.png", sweep_figure(cfg, results))
    blocks = [Block("p", line) for line in sweep_intro(cfg)]
    missing = [o for o in cfg.optimizers if o not in {r.optimizer for r in results}]
    if missing:  # a sweep stopped part way: what is there is not the whole comparison
        blocks.append(Block("p", f"Unfinished: {len(results)} of {len(cfg.optimizers)} optimizers have run; not yet "
                                 f"{', '.join(missing)} (rerun the sweep command to continue it)."))
    return blocks + [Block("table", header=SWEEP_HEADER, rows=tuple(sweep_table_rows(results)), align=SWEEP_ALIGN), Block("img", "sweep.png")]


def render_markdown(title: str, blocks: list[Block]) -> str:
    """The report's blocks as Markdown, figures as image links to the PNG files beside it."""
    parts = [f"# {title}"]
    for b in blocks:
        if b.kind == "h2":
            parts.append(f"## {b.text}")
        elif b.kind == "p":
            parts.append(b.text)
        elif b.kind == "img":
            parts.append(f"![{b.text}]({b.text})")
        else:
            parts.append(markdown_table(b.header, b.rows, b.align))
    return "\n\n".join(parts) + "\n"


def render_html(title: str, blocks: list[Block], out: Path) -> str:
    """One HTML file with every PNG inlined, so it can be mailed or opened anywhere."""
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
             "body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px}img{max-width:100%}</style></head><body>",
             f"<h1>{e(title)}</h1>"]
    for b in blocks:
        if b.kind == "h2":
            parts.append(f"<h2>{e(b.text)}</h2>")
        elif b.kind == "p":
            parts.append(f"<p>{e(b.text)}</p>")
        elif b.kind == "img":
            data = base64.b64encode((out / b.text).read_bytes()).decode("ascii")
            parts.append(f"<p><img alt='{e(b.text)}' src='data:image/png;base64,{data}'></p>")
        else:
            head = "".join(f"<th>{e(h)}</th>" for h in b.header)
            right = b.align.ljust(len(b.header), "l")
            body = "".join("<tr>" + "".join(f"<td{' align=right' if a == 'r' else ''}>{e(c)}</td>" for c, a in zip(r, right))
                           + "</tr>" for r in b.rows)
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
    return "\n".join(parts) + "\n</body></html>\n"


def build_report(path: str | os.PathLike, out: str | os.PathLike, data: str | None = None, overwrite: bool = False) -> Path:
    """Write report.md, report.html and the PNGs for a run directory, a sweep directory (its best
    optimizer's best seed as a run) or a `train --seeds` folder (its seeds, then the best as a run) into the folder `out`, built aside and moved into place (an existing
    non-empty `out` only with `overwrite`, never inside the input); `data` is where melgram runs find their
    example mel-spectrograms (by default the data root the run recorded, where it is still a folder, else
    $MUSICGENRE_DATA). The input is loaded and checked (as `evaluate` does) before `out` is made."""
    from musicgenre.datasets import DATA_ENV
    from musicgenre.sweep import by_f1, load_sweep, seed_dir

    path = as_path(path, "run directory")
    seed_runs: list[Run] = []
    if (path / "sweep_config.json").is_file():
        cfg, results = load_sweep(path)
        if not results:
            raise MusicGenreError(f"{path}: no finished optimizer yet (rerun the sweep command to continue it)")
        best = by_f1(results)[0]
        seed = max(best.runs, key=lambda r: r["f1_macro"])["seed"]
        run = load_run(seed_dir(path, best.optimizer, seed))
        title, prefix = f"Optimizer sweep: {path.name}", "best_"
    elif (path / "config.json").is_file():
        cfg, run = None, load_run(path)
        title, prefix = f"Training run: {path.name}", ""
    elif (path / "summary.json").is_file():  # train --seeds N: the seeds, then the best one
        cfg, seed_runs = None, load_seed_runs(path)
        seed_records = [training_record(r) for r in seed_runs]
        best_f1 = [rec["val"]["f1_macro"] if rec["val"] else -1.0 for rec in seed_records]
        run = seed_runs[best_f1.index(max(best_f1))]
        title, prefix = f"Seeds: {path.name}", "best_"
    elif not path.is_dir():
        raise MusicGenreError(f"{path}: no such run or sweep directory")
    elif (path / "reproduce_config.json").is_file():
        parts = sorted(p.name for p in path.iterdir() if (p / "config.json").is_file() or (p / "sweep_config.json").is_file())
        where = (f"whose reports are in {path / 'reports'}, summed up in {path / 'reproduce.md'}" if (path / "reproduce.md").is_file()
                 else "unfinished (rerun the reproduce command to finish it and write its reports)")
        parts_text = f": report on one of its parts ({', '.join(parts)}) for another" if parts else ""
        raise MusicGenreError(f"{path}: a reproduction, {where}{parts_text}")
    elif runs := run_folders(path):  # one run per seed (`train --seeds N`, a sweep's optimizer), a reproduction's runs
        raise holds_runs(path, runs, "report on")
    else:
        raise MusicGenreError(f"{path}: neither a run directory (config.json) nor a sweep directory "
                              f"(sweep_config.json)")
    record, history = training_record(run), read_history(run)
    if data is None:  # the run's own data first: $MUSICGENRE_DATA may well be the study's, which has no melgrams
        data = recorded_root([run])[0] or os.environ.get(DATA_ENV) or None

    def fill(tmp: Path) -> None:
        blocks = []
        if cfg is not None:
            so_far = " so far" if len(results) < len(cfg.optimizers) else ""
            blocks = sweep_blocks(cfg, results, tmp) + [Block("h2", f"Best{so_far}: {best.optimizer}, seed {seed}")]
        elif seed_runs:
            heading = "Best: seed" if max(best_f1) >= 0 else "Seed"  # without validation, none is best
            blocks = seed_blocks(seed_runs, seed_records) + [Block("h2", f"{heading} {run.config.seed}")]
        blocks += run_blocks(run, record, history, tmp, prefix, data)
        atomic_write_text(tmp / "report.md", render_markdown(title, blocks))
        atomic_write_text(tmp / "report.html", render_html(title, blocks, tmp))

    return write_dir(out, overwrite, fill, inputs=[path] + ([data] if data is not None else []))
