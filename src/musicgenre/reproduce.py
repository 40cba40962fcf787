"""The whole study in one command: the MFCC net, the CNN (where melgrams exist), the optimizer sweep,
the device table and the reports, with the study's published figures beside ours. Resumable: parts
already in the output folder are read back, not redone, when it was made with the same settings
(reproduce_config.json)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from musicgenre.benchmark import compare_devices, device_table, read_device_rows
from musicgenre.config import TrainConfig, recipe
from musicgenre.datasets import Dataset, data_digest, has_split, load_dataset, resolve_data_root
from musicgenre.errors import MusicGenreError
from musicgenre.io import atomic_write_json, atomic_write_text, out_folder, read_json
from musicgenre.report import build_report
from musicgenre.runs import check_fields, load_run, train_run, training_record
from musicgenre.sweep import OptimizerResult, run_sweep, sweep_config_from
from musicgenre.tables import differences, markdown_table, plural, plus_minus
from musicgenre.versions import TRAINING, software_versions

# The study's published figures (on its test split): (what, model, optimizer, accuracy, macro F1).
STUDY_FIGURES = (
    ("MFCC net, SGD lr 0.002", "mfcc-mlp", "SGD", 0.621, 0.611),
    ("CNN, Adagrad", "mel-cnn", "Adagrad", 0.758, 0.756),
)


PARTS = {"mfcc-net", "mel-cnn", "sweep", "devices.json", "reproduce.md"}  # what reproduce writes (and reports/)


def train_or_load(cfg: TrainConfig, root: Path, splits: dict[str, Dataset], out: Path) -> dict | None:
    """Validation metrics of the run in `out`, training and saving it first if it is not there yet (refused,
    as by `train`, if it learned nothing); one there of other settings (a recipe changed since) is refused."""
    if not (out / "metrics.json").is_file():
        if out.exists():  # runs are written whole, so something else, or a run a hand has changed
            raise MusicGenreError(f"{out}: not a finished run (no metrics.json): delete it, and rerun to train it anew")
        train_run(cfg, root, splits, out)
    run = load_run(out)
    if run.config != cfg:
        raise MusicGenreError(f"{out}: a run of other settings ({differences(run.config.to_dict(), cfg.to_dict())}): "
                              "delete it, and rerun to train it anew")
    return training_record(run)["val"]


def comparison_rows(runs: dict[str, dict | None], sweep_model: str, sweep: list[OptimizerResult]) -> list[tuple[str, ...]]:
    """For each published figure: the study's, our single seed-0 run, and our sweep's mean ± std over seeds."""
    by_opt = {r.optimizer: r for r in sweep}
    rows = []
    for what, model, optimizer, acc, f1 in STUDY_FIGURES:
        m = runs.get(model)
        single = f"{100 * m['accuracy']:.1f}% / {m['f1_macro']:.3f}" if m else "-"
        res = by_opt.get(optimizer) if model == sweep_model else None
        if res:
            swept = f"{plus_minus(*res.mean_std('accuracy'), '.1f', 100, '%')} / {plus_minus(*res.mean_std('f1_macro'))}"
        else:
            swept = "-"
        rows.append((what, f"{100 * acc:.1f}% / {f1:.3f}", single, swept))
    return rows


def reproduction_folder(out: str | os.PathLike, root: Path, settings: dict) -> Path:
    """`out`, made if new, where a reproduction with `settings` (reproduce_config.json) runs or resumes: refused
    if it holds one begun with other settings or on other data, or anything else that is not a reproduction."""
    settings_path = Path(out) / "reproduce_config.json"
    found = {p.name for p in Path(out).iterdir() if not p.name.startswith(".")} if Path(out).is_dir() else set()
    if found and not settings_path.is_file() and not found & PARTS:  # its reports/ would replace what is there
        raise MusicGenreError(f"{out}: already exists, is not empty and holds none of a reproduction's parts "
                              f"({', '.join(sorted(PARTS))}): choose another --out")
    out = out_folder(out, [root])
    saved = check_fields(read_json(settings_path), {}, str(settings_path)) if settings_path.is_file() else dict(settings)
    versions = saved.pop("versions", None) or software_versions(*TRAINING)  # as it began: beside the
    # settings, not one of them (its runs' config.json record their own)
    saved.setdefault("data_digest", settings["data_digest"])  # a folder of an earlier version, which recorded none, is adopted
    if saved["data_digest"] != settings["data_digest"]:
        raise MusicGenreError(f"{settings_path}: {out} holds a reproduction begun on other data: what {root} holds "
                              "has changed since; pass another --out, or delete it to start over")
    if saved != settings:  # its finished parts would be read back and mixed with parts run otherwise
        raise MusicGenreError(f"{settings_path}: {out} holds a reproduction run with other settings "
                              f"({differences(saved, settings)}): pass another --out, or delete it to start over")
    atomic_write_json(settings_path, {**settings, "versions": versions})  # a folder of an earlier version, without one, is adopted
    return out


def reproduce(data: str | os.PathLike | None, out: str | os.PathLike, seeds: int = 5, epochs: int = 30,
              optimizers: str = "all", progress: bool = True, on_part: Callable[[str], None] | None = None) -> Path:
    """Run every part of the study into `out` and write out/reproduce.md; returns its path. The options
    and the data are checked before `out` is made or anything is trained. `on_part` gets the name of each part
    as it begins; `progress`: the sweep's progress bar."""
    say = on_part or (lambda part: None)
    root = resolve_data_root(data).resolve()
    notes: list[str] = []
    mfcc = replace(recipe("mfcc-mlp"), epochs=epochs, seed=0)  # the study's MFCC run
    cnn = replace(recipe("mel-cnn"), epochs=epochs, seed=0)  # the study's best CNN run (Adagrad)
    has_mel = has_split(root, "train", "melgram")
    base = cnn if has_mel else mfcc
    sweep_cfg = sweep_config_from(base, str(root), optimizers, seeds, False, "val")
    data_of = {c.features: load_dataset(root, c.features) for c in ([mfcc, cnn] if has_mel else [mfcc])}
    for features, splits in data_of.items():  # every part is scored on val: refused before anything is trained
        if "val" not in splits:
            raise MusicGenreError(f"{root}: no val split of {features} features, which reproduce scores every part on")
    digest = data_digest({f"{features}/{split}": d for features, splits in data_of.items() for split, d in splits.items()})
    settings = {"data": str(root), "epochs": epochs, "seeds": seeds, "optimizers": list(sweep_cfg.optimizers),
                "data_digest": digest}
    out = reproduction_folder(out, root, settings)

    say("MFCC net (the study's settings, seed 0)")
    runs = {"mfcc-mlp": train_or_load(mfcc, root, data_of["mfcc"], out / "mfcc-net")}
    if has_mel:
        say("CNN on mel-spectrograms (the study's settings with Adagrad, seed 0)")
        runs["mel-cnn"] = train_or_load(cnn, root, data_of["melgram"], out / "mel-cnn")
    else:
        notes.append(f"No mel-spectrograms under {root}: the CNN was not trained and the optimizer sweep "
                     "ran on the MFCC net instead of the CNN the study swept.")

    say(f"optimizer sweep on {base.model}")
    sweep = run_sweep(sweep_cfg, out / "sweep", progress=progress)

    devices_path = out / "devices.json"
    if not devices_path.is_file():
        say("device comparison")
        atomic_write_json(devices_path, compare_devices(base, ["cpu", "cuda"], str(root)))
    devices = read_device_rows(devices_path)

    reports = {name: out / name for name in ["mfcc-net", "mel-cnn", "sweep"] if (out / name).is_dir()}
    for name, path in reports.items():
        build_report(path, out / "reports" / name, str(root), overwrite=True)  # a rerun makes them anew

    header = ("Figure", "Study, its test split (acc / F1)", "Ours, seed 0, val split", "Ours, sweep mean ± std, val split")
    table = markdown_table(header, comparison_rows(runs, base.model, sweep), "lrrr")
    text = "\n\n".join([
        f"# The study, reproduced\n\nData: {root}; {plural(epochs, 'epoch')}; sweep of {plural(len(sweep), 'optimizer')} x {plural(seeds, 'seed')} "
        f"on {base.model}; validation split.",
        table,
        *notes,
        f"## Devices ({base.model}, {plural(base.epochs, 'epoch')})\n\n" + device_table(devices).rstrip(),
        "## Reports\n\n" + "\n".join(f"- {name}: reports/{name}/report.html" for name in reports),
    ]) + "\n"
    atomic_write_text(out / "reproduce.md", text)
    return out / "reproduce.md"
