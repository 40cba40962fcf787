"""Run directories: weights (safetensors), configuration, history and metrics, written atomically."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_bytes

from musicgenre.config import TrainConfig
from musicgenre.datasets import SPLITS, Dataset, data_digest, data_record, is_genre_name, load_dataset
from musicgenre.errors import MusicGenreError
from musicgenre.io import as_path, atomic_write_bytes, atomic_write_json, atomic_write_text, not_a_file, read_json, write_dir
from musicgenre.metrics import seed_summary
from musicgenre.models import GenreNet, build_model, check_model_features, count_parameters
from musicgenre.training import EpochRecord, TrainResult, check_learned, train, train_seeds
from musicgenre.versions import TRAINING, software_versions

RUN_KIND = "musicgenre-run"
WEIGHTS = "model.safetensors"
TEMPERATURES = (1e-3, 1e3)  # the calibration temperatures calibrate stores; beyond, every prediction is certain or flat


@dataclass
class Run:
    """A trained model loaded back from its run directory."""

    path: Path
    model: GenreNet
    config: TrainConfig
    classes: tuple[str, ...]
    metrics: dict
    meta: dict = field(default_factory=dict)  # config.json as saved (sweep runs add sweep_split, sweep_metrics)

    @property
    def features(self) -> str:
        return self.config.features

    @property
    def training_splits(self) -> tuple[str, ...]:
        """The splits the model was trained on (config.json 'training_splits'; runs of `train`: train alone)."""
        return tuple(self.meta.get("training_splits", ("train",)))

    @property
    def data(self) -> dict:
        """What config.json records of the data the run was trained on (datasets.data_record: root, splits,
        digest); empty for a run that recorded none (the shipped model, runs saved from Python)."""
        recorded = self.meta.get("data")
        return recorded if isinstance(recorded, dict) else {}


NUMBER = (int, float)
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
               dict: "a JSON object", type(None): "null"}


def check_fields(obj: Any, spec: dict[str, tuple[type, ...]], source: str, required: bool = True) -> dict:
    """`obj` if it is a JSON object whose keys in `spec` (all of them if `required`) hold values of their
    types (true/false is not a number, nor is NaN or Infinity, which Python's JSON reader takes); else a
    one-line error naming `source`."""
    if not isinstance(obj, dict):
        raise MusicGenreError(f"{source}: expected a JSON object, not {json.dumps(obj)[:60]}")
    for key, types in spec.items():
        if key not in obj:
            if required:
                raise MusicGenreError(f"{source}: {key!r} is missing")
            continue
        value = obj[key]
        if (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
                or (isinstance(value, float) and not math.isfinite(value))):
            names = " or ".join(_TYPE_NAMES[t] for t in types if not (t is int and float in types))
            raise MusicGenreError(f"{source}: {key!r} is {json.dumps(value)[:60]}, expected {names}")
    return obj


def train_config_from_json(d: Any, source: str) -> TrainConfig:
    """A saved training configuration, checked (types and values, as TrainConfig checks them; a known model
    reading the saved features); fields it lacks take their defaults; errors name `source`."""
    check_fields(d, {}, source)
    try:
        config = TrainConfig.from_dict(d)
        check_model_features(config.model, config.features)
    except MusicGenreError as exc:
        raise MusicGenreError(f"{source}: {exc}") from None
    return config


def check_eval_metrics(m: Any, source: str) -> dict:
    """A saved evaluation (as classification_metrics returns it), checked: figures, class names, per-class
    scores and a square confusion matrix of counts."""
    check_fields(m, {"n": (int,), "accuracy": NUMBER, "f1_macro": NUMBER, "classes": (list,), "per_class": (dict,),
                     "confusion_matrix": (list,)}, source)
    if not (0 <= m["accuracy"] <= 1 and 0 <= m["f1_macro"] <= 1):
        raise MusicGenreError(f"{source}: accuracy and macro F1 must lie between 0 and 1")
    classes = m["classes"]
    if not all(isinstance(c, str) for c in classes) or set(m["per_class"]) != set(classes):
        raise MusicGenreError(f"{source}: 'classes' must be the genre names that 'per_class' lists")
    for c in classes:
        check_fields(m["per_class"][c], {"precision": NUMBER, "recall": NUMBER, "f1": NUMBER, "support": (int,)},
                     f"{source}: per_class {c!r}")
    k, cm = len(classes), m["confusion_matrix"]
    if len(cm) != k or not all(isinstance(row, list) and len(row) == k and all(type(v) is int for v in row) for row in cm):
        raise MusicGenreError(f"{source}: 'confusion_matrix' is not a {k} x {k} table of counts")
    return m


def training_record(run: Run) -> dict:
    """The run's metrics.json as `train` writes it (kept epoch, epochs run, times, val evaluation or null), checked;
    load_run has read it already, into run.metrics."""
    source = run.path / "metrics.json"
    if not source.is_file():
        raise MusicGenreError(f"{source}: missing")
    if "best_epoch" not in run.metrics:  # the shipped model keeps its validation figures, not a training record
        raise MusicGenreError(f"{source}: holds no training record ('best_epoch' is missing): "
                              f"{run.path} was not written by train, sweep or reproduce")
    m = check_fields(run.metrics, {"best_epoch": (int,), "epochs_run": (int,), "train_seconds": NUMBER,
                                   "seconds_per_epoch": NUMBER, "val": (dict, type(None))}, str(source))
    if not 0 <= m["best_epoch"] <= m["epochs_run"]:
        raise MusicGenreError(f"{source}: 'best_epoch' is {m['best_epoch']}, but the run has epochs 0 (its initial "
                              f"weights) to {m['epochs_run']}")
    if m["val"] is not None:
        check_eval_metrics(m["val"], f"{source}: 'val'")
    return m


# A null loss is a NaN or infinite loss (JSON has neither), saved as null (an epoch a run diverged in, as is one whose
# weights or outputs turned NaN or infinite: `diverged` says so, in files written since 2026-12-05); null scores: no
# validation that epoch.
HISTORY_TYPES = {"epoch": (int,), "loss": (*NUMBER, type(None)), "val_accuracy": (*NUMBER, type(None)),
                 "val_f1": (*NUMBER, type(None)), "seconds": NUMBER}


def read_history(run: Run) -> list[dict]:
    """The run's history.json: one checked record per epoch."""
    path = run.path / "history.json"
    history = read_json(path)
    if not isinstance(history, list) or not history:
        raise MusicGenreError(f"{path}: expected a non-empty list of epoch records, not {json.dumps(history)[:60]}")
    return [check_fields(rec, HISTORY_TYPES, f"{path}: epoch record {i + 1}") for i, rec in enumerate(history)]


def history_csv(result: TrainResult) -> str:
    """The per-epoch log (loss, val accuracy and F1, seconds, seed, whether it diverged) as CSV, one row per epoch."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[f.name for f in fields(EpochRecord)])
    w.writeheader()
    for rec in result.history:
        w.writerow(asdict(rec))
    return buf.getvalue()


def save_weights(model: GenreNet, path: Path, model_name: str, classes: Sequence[str]) -> None:
    """Write a model's weights as safetensors, atomically, tagged as ours with the model's name and its genres
    in output order (so that a config.json paired with other weights is caught). One metadata key: safetensors
    writes several in an order that changes from process to process, and the same run should give the same
    bytes."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tag = json.dumps({"model": model_name, "classes": list(classes)}, ensure_ascii=False)
    atomic_write_bytes(path, safetensors_bytes(state, metadata={RUN_KIND: tag}))


def _fill_run(tmp: Path, result: TrainResult, extra: dict | None) -> None:
    """Write a run's files into the folder `tmp`; `extra` adds keys to config.json, none of its own (a run saved with
    another kind, config or genres could not be loaded)."""
    record = {
        "kind": RUN_KIND,
        "versions": software_versions(*TRAINING),
        "config": result.config.to_dict(),
        "trained_on": result.trained_on,
        "classes": list(result.classes),
        "n_parameters": count_parameters(result.model),
    }
    if taken := sorted(set(extra or {}) & set(record)):
        raise MusicGenreError(f"extra: {', '.join(taken)} {'is' if len(taken) == 1 else 'are'} config.json's own, not to be replaced")
    save_weights(result.model, tmp / WEIGHTS, result.config.model, result.classes)
    atomic_write_json(tmp / "config.json", {**record, **(extra or {})})
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


def save_run(result: TrainResult, out: str | os.PathLike, overwrite: bool = False, extra: dict | None = None) -> Path:
    """Write a run directory: model.safetensors, config.json, history.json/.csv, metrics.json; `extra` adds keys
    to config.json (_fill_run)."""
    return write_dir(out, overwrite, lambda tmp: _fill_run(tmp, result, extra))


def train_run(cfg: TrainConfig, root: str | os.PathLike, data: dict[str, Dataset], out: str | os.PathLike,
              overwrite: bool = False, on_epoch: Callable[[EpochRecord], None] | None = None) -> tuple[TrainResult, Path]:
    """Train `cfg` on `data` (loaded from `root`: train, validated on val where there is one), refuse a run that
    learned nothing (training.check_learned), and save it to `out` with a record of its data."""
    result = train(cfg, data["train"], data.get("val"), on_epoch)
    check_learned([result])
    return result, save_run(result, out, overwrite, {"data": data_record(root, data)})


def recorded_root(runs: Sequence[Run]) -> tuple[str | None, str | None]:
    """The data root all of `runs` recorded (Run.data) where it still holds a train/ folder: their own data, which
    evaluate, ensemble, calibrate and report score and draw from unless given another. Else None, with why where
    they recorded any (a root moved or deleted, runs of two datasets), for a note: not silently another's figures."""
    roots = {root if isinstance(root := run.data.get("root"), str) else None for run in runs}
    named = sorted(root for root in roots if root is not None)
    if not named:
        return None, None
    if len(roots) > 1:  # runs of two datasets (or some that recorded none)
        return None, f"the runs recorded different data roots ({', '.join(named)}{', and some none' if None in roots else ''})"
    if os.path.isdir(Path(named[0]) / "train"):  # os.path: False, not an error, for a name too long to look up
        return named[0], None
    who = f"{runs[0].path} recorded {named[0]} as its" if len(runs) == 1 else f"the runs recorded {named[0]} as their"
    return None, f"{who} data root, which holds no train/ folder now"  # moved or deleted


def held_out_notes(runs: Sequence[Run], split: str, root: str | os.PathLike) -> list[str]:
    """Why figures of `runs` on `split` of `root` may not be a held-out estimate: a run trained on that split (as
    the shipped model was on val), or on data under `root` that has changed since (data_changed). evaluate and
    ensemble print them; evaluate_predictor, which is not told where the split came from, cannot tell."""
    changed = data_changed([run for run in runs if split not in run.training_splits], root)
    notes = []
    for run in runs:
        if split in run.training_splits:
            notes.append(f"{run.path} was trained on the {split} split: its figures there are not a held-out estimate")
        elif run.path in changed:
            notes.append(f"{changed[run.path]}: its figures on {split} may not be a held-out estimate")
    return notes


def data_changed(runs: Sequence[Run], root: str | os.PathLike) -> dict[Path, str]:
    """For each run of `runs` whose recorded data root (Run.data) is `root` and whose arrays there have changed
    since it was trained (another extract there, with another seed, puts training files in val): why its
    splits may hold clips it trained on, by run path. Each set of arrays is read and fingerprinted once, however
    many runs (an ensemble's seeds) recorded it."""
    digests: dict[tuple, str] = {}
    changed = {}
    for run in runs:
        if run.data.get("root") != str(Path(root).resolve()):
            continue
        default = ["train", "val", *(["test"] if run.meta.get("sweep_split") == "test" else [])]  # runs before "splits"
        key = (run.features, tuple(run.data.get("splits", default)))
        if key not in digests:
            digests[key] = data_digest(load_dataset(root, *key))
        if digests[key] != run.data.get("digest"):
            changed[run.path] = (f"{root} has changed since {run.path} was trained on it (its arrays' fingerprint "
                                 "differs from config.json's), so its splits may hold clips the run trained on")
    return changed


def _load_weights(model: GenreNet, state: dict[str, torch.Tensor]) -> bool:
    """Whether `state` fits `model` exactly (then it is loaded)."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        return False
    return True


def weights_classes(model_name: str, state: dict[str, torch.Tensor]) -> int | None:
    """How many classes `state` was trained for, if it is a `model_name` model of some class count, else None."""
    one, two = build_model(model_name, 1).state_dict(), build_model(model_name, 2).state_dict()
    out_bias = [k for k in one if one[k].ndim == 1 and one[k].shape != two[k].shape]
    if not out_bias or out_bias[0] not in state or state[out_bias[0]].ndim != 1:
        return None
    n = len(state[out_bias[0]])
    return n if n > 0 and _load_weights(build_model(model_name, n), state) else None


def weights_tag(metadata: dict[str, str]) -> tuple[str | None, list | None]:
    """The model name and genres our tag in a weights file's metadata gives: {RUN_KIND: JSON of both}, or, as
    runs saved before December 2026 wrote it, {RUN_KIND: name} or {"kind": RUN_KIND, "model": name} (no
    genres); no name for weights not written by musicgenre."""
    if metadata.get("kind") == RUN_KIND:
        return metadata.get("model"), None
    tag = metadata.get(RUN_KIND)
    if tag is None or not tag.startswith("{"):
        return tag, None
    try:
        d = json.loads(tag)
    except ValueError:
        return None, None
    if not isinstance(d, dict):
        return None, None
    model, classes = d.get("model"), d.get("classes")
    if not isinstance(model, str) or not (classes is None or isinstance(classes, list) and classes
                                          and all(isinstance(c, str) for c in classes)):
        return None, None  # not a tag musicgenre writes
    return model, classes


def read_weights(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """A safetensors file's metadata and tensors, from its bytes (never unpickled): safetensors' own file
    opener takes UTF-8 paths only, and a folder's name need not be UTF-8."""
    data = path.read_bytes()
    state = safetensors_load(data)  # checks the whole file, its header included
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])  # 8-byte length, then a JSON header
    return header.get("__metadata__") or {}, dict(sorted(state.items()))


def run_folders(path: Path) -> list[str]:
    """Names of the run directories right inside `path`, in number order (seed-2 before seed-10): the one run
    per seed that `train --seeds N` writes under OUT, and a sweep under runs/OPTIMIZER. Hidden folders (a
    temporary one left by a killed command) are not runs."""
    return sorted((p.name for p in path.iterdir() if not p.name.startswith(".") and (p / "config.json").is_file()),
                  key=lambda name: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)])


def load_run(path: str | os.PathLike, averaged: bool = True) -> Run:
    """Load a run directory, its model on the CPU in eval mode; anything that is not one of ours is a one-line
    error naming the file. `averaged`: whether the command could average several runs, which a folder of runs
    is then pointed to."""
    path = as_path(path, "run directory")  # not '': the current folder, which calibrate would write into
    meta, config, classes = _run_config(path, averaged)
    model = _run_model(path, config, classes)
    metrics_path = path / "metrics.json"
    metrics = check_fields(read_json(metrics_path), {}, str(metrics_path)) if metrics_path.is_file() else {}
    model.eval()
    return Run(path=path, model=model, config=config, classes=tuple(classes), metrics=metrics, meta=meta)


def holds_runs(path: Path, runs: list[str], verb: str, more: str = "") -> MusicGenreError:
    """The refusal of a folder given for one run that holds `runs` (run_folders) instead: which to `verb` (pass,
    report on), and `more` ways to use them after that."""
    if len(runs) == 1:
        return MusicGenreError(f"{path}: not a run directory, but it holds one: {verb} {path / runs[0]}")
    listed = ", ".join(runs[:3]) + (", ..." if len(runs) > 3 else "")
    return MusicGenreError(f"{path}: holds {len(runs)} runs ({listed}), not one: {verb} one of them{more}")


def _run_config(path: Path, averaged: bool) -> tuple[dict, TrainConfig, list[str]]:
    """A run directory's config.json, checked: the whole record, its training configuration and its genres."""
    cfg_path = path / "config.json"
    if not path.is_dir():
        raise MusicGenreError(f"{path}: {'a file, not a' if path.exists() else 'no such'} run directory")
    if not cfg_path.is_file():
        if runs := run_folders(path):
            listed = [f"{path}/{name}" for name in runs[:2]] + (["..."] if len(runs) > 2 else [])
            average = (f", or average them (`musicgenre ensemble {' '.join(listed)}`, or "
                       f"`--model ensemble:{','.join(listed)}`)") if averaged else ""
            raise holds_runs(path, runs, "pass", average)
        if cfg_path.exists() or cfg_path.is_symlink():
            raise MusicGenreError(f"{cfg_path}: {not_a_file(cfg_path, 'a JSON file')}")
        raise MusicGenreError(f"{cfg_path}: missing: {path} is not a musicgenre run directory")
    meta = read_json(cfg_path)
    if not isinstance(meta, dict) or meta.get("kind") != RUN_KIND:
        raise MusicGenreError(f"{cfg_path}: not a musicgenre run configuration (kind is not {RUN_KIND!r})")
    check_fields(meta, {"config": (dict,), "classes": (list,)}, str(cfg_path))
    config = train_config_from_json(meta["config"], f"{cfg_path}: 'config'")
    classes = meta["classes"]
    if not classes or not all(map(is_genre_name, classes)) or len(set(classes)) != len(classes):
        raise MusicGenreError(f"{cfg_path}: 'classes' must be a list of distinct genre names, not {json.dumps(classes)[:60]}")
    check_fields(meta, {"sweep_split": (str,), "training_splits": (list,), "data": (dict, type(None))}, str(cfg_path),
                 required=False)
    if not all(split in SPLITS for split in meta.get("training_splits", ["train"])):
        raise MusicGenreError(f"{cfg_path}: 'training_splits' must list splits among {', '.join(SPLITS)}")
    if meta.get("data") is not None:  # datasets.data_record, which evaluate, ensemble, calibrate and report read back
        record = check_fields(meta["data"], {"root": (str,), "splits": (list,), "digest": (str,)}, f"{cfg_path}: 'data'",
                              required=False)
        if not all(split in SPLITS for split in record.get("splits", [])):
            raise MusicGenreError(f"{cfg_path}: 'data': 'splits' must list splits among {', '.join(SPLITS)}")
        if record.get("root") == "":
            raise MusicGenreError(f"{cfg_path}: 'data': 'root' is empty: it names the folder the run was trained on")
    if "sweep_metrics" in meta:
        check_eval_metrics(meta["sweep_metrics"], f"{cfg_path}: 'sweep_metrics'")
    return meta, config, classes


def _run_model(path: Path, config: TrainConfig, classes: list[str]) -> GenreNet:
    """A run directory's model.safetensors loaded into its model, after checking that it is the model and genres
    config.json names, and that nothing in it is damaged."""
    cfg_path = path / "config.json"
    weights = path / WEIGHTS
    if (weights.exists() or weights.is_symlink()) and not weights.is_file():  # a pipe would be read forever
        raise MusicGenreError(f"{weights}: {not_a_file(weights, 'a weights file')}")
    try:
        metadata, state = read_weights(weights)
        kind, trained_classes = weights_tag(metadata)
    except FileNotFoundError:
        raise MusicGenreError(f"{weights}: missing") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise MusicGenreError(f"{weights}: not a safetensors weights file ({exc})") from None
    if kind != config.model:  # same shapes as another model (mfcc-mlp-plus and -log) must not pass for it
        held = f"a {kind} model" if kind else "weights not written by musicgenre"
        raise MusicGenreError(f"{weights}: holds {held}, but {cfg_path} names model {config.model} (a model file of another kind)")
    if trained_classes is not None and trained_classes != classes:  # outputs would be read as other genres
        raise MusicGenreError(f"{cfg_path}: lists the genres {', '.join(classes)}, but {weights} was trained for "
                              f"{', '.join(map(str, trained_classes))} (in that output order): the two files are not one run's")
    model = build_model(config.model, len(classes))
    own = model.state_dict()
    wrong = [k for k, t in state.items() if k in own and t.dtype != own[k].dtype]
    if wrong:  # load_state_dict would cast them (integers to whole-number weights) without a word
        raise MusicGenreError(f"{weights}: '{wrong[0]}' is {state[wrong[0]].dtype}, not {own[wrong[0]].dtype} "
                              f"(a model file of another kind)")
    if "temperature" in state and state["temperature"].shape != ():  # load_state_dict takes a (1,) for a scalar
        raise MusicGenreError(f"{weights}: its calibration temperature has shape {tuple(state['temperature'].shape)}, "
                              "not a single number (a damaged model file)")
    if not _load_weights(model, state):
        n = weights_classes(config.model, state)
        if n is not None:
            raise MusicGenreError(f"{cfg_path}: lists {len(classes)} classes, but {weights} holds a model of {n} classes")
        raise MusicGenreError(f"{weights}: weights do not fit model {config.model} (a model file of another kind)")
    if not all(torch.isfinite(t).all() for t in state.values()):
        raise MusicGenreError(f"{weights}: holds NaN or infinite weights (its training diverged)")
    if not bool((model.std > 0).all()):  # training writes at least 1e-6: inputs divided by it
        raise MusicGenreError(f"{weights}: its input standardisation has a std of 0 or below (a damaged model file)")
    if not TEMPERATURES[0] <= float(model.temperature) <= TEMPERATURES[1]:
        raise MusicGenreError(f"{weights}: calibration temperature {float(model.temperature):g} (one calibrate "
                              f"could store lies from {TEMPERATURES[0]:g} to {TEMPERATURES[1]:g}: a damaged model file)")
    return model


def save_seed_runs(
    results: list[TrainResult], out: str | os.PathLike, overwrite: bool = False, extra: dict | None = None
) -> tuple[Path, dict]:
    """One run directory per seed (OUT/seed-K, with `extra` in each config.json, as save_run) and OUT/summary.json
    with validation mean ± sample std."""
    summary: dict = {"config": replace(results[0].config, seed=None).to_dict(), "seeds": [r.config.seed for r in results]}
    if results[0].metrics is not None:
        for key in ("accuracy", "f1_macro"):
            summary[f"val_{key}"] = seed_summary([r.metrics[key] for r in results])

    def fill(tmp: Path) -> None:
        for r in results:
            save_run(r, tmp / f"seed-{r.config.seed}", extra=extra)
        atomic_write_json(tmp / "summary.json", summary)

    return write_dir(out, overwrite, fill), summary


def train_seed_runs(cfg: TrainConfig, seeds: list[int], root: str | os.PathLike, data: dict[str, Dataset],
                    out: str | os.PathLike, overwrite: bool = False,
                    on_epoch: Callable[[EpochRecord], None] | None = None) -> tuple[list[TrainResult], Path, dict]:
    """`train_run` for each of `seeds` (trained together where training.train_seeds can): refuse runs that learned
    nothing, save them to `out` (save_seed_runs), and return them with the folder and its summary."""
    results = train_seeds(cfg, seeds, data["train"], data.get("val"), on_epoch)
    check_learned(results)
    return (results, *save_seed_runs(results, out, overwrite, {"data": data_record(root, data)}))


def load_seed_runs(path: Path) -> list[Run]:
    """The runs of a `train --seeds N` folder, those its summary.json lists, each checked to be that seed of that
    configuration: a run copied in from elsewhere was reported as one of its seeds."""
    source = path / "summary.json"
    summary = check_fields(read_json(source), {"config": (dict,), "seeds": (list,)}, str(source))
    config, seeds = train_config_from_json(summary["config"], f"{source}: 'config'"), summary["seeds"]
    if not seeds or not all(type(s) is int for s in seeds) or len(set(seeds)) != len(seeds):
        raise MusicGenreError(f"{source}: 'seeds' must list the folder's seeds, distinct whole numbers, not {json.dumps(seeds)[:60]}")
    if set(folders := run_folders(path)) != {f"seed-{s}" for s in seeds}:
        raise MusicGenreError(f"{path}: its run folders ({', '.join(folders)}) are not the seeds {source} lists "
                              f"({', '.join(map(str, seeds))})")
    runs = [load_run(path / f"seed-{seed}") for seed in seeds]
    for seed, run in zip(seeds, runs):
        if run.config.seed != seed or replace(run.config, seed=None) != config or run.data != runs[0].data:
            raise MusicGenreError(f"{run.path}: not seed {seed} of the configuration {source} records, trained on the "
                                  f"data its other seeds were (a run from elsewhere?)")
    return runs
