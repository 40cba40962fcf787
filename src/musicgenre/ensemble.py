"""One predictor for a single run or an ensemble of runs (averaged probabilities), and temperature
scaling, which calibrates a run's probabilities on the validation split."""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from musicgenre.datasets import Dataset, check_dataset, torch_ready, validate_features
from musicgenre.errors import MusicGenreError
from musicgenre.io import as_path, atomic_write_bytes, atomic_write_json, stops_deferred
from musicgenre.metrics import classification_metrics, expected_calibration_error
from musicgenre.runs import TEMPERATURES, WEIGHTS, Run, load_run, save_weights
from musicgenre.training import check_scorable, predict_logits

ENSEMBLE_PREFIX = "ensemble:"


@dataclass
class Predictor:
    """Runs that read the same features and predict the same classes; probabilities are their mean."""

    runs: list[Run]

    @property
    def classes(self) -> tuple[str, ...]:
        return self.runs[0].classes

    @property
    def features(self) -> str:
        return self.runs[0].features

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        """Log class probabilities (N, classes) for a float array of clips' features (checked as a Dataset's
        are): the log of the members' mean probability, from their log-softmax (finite where a probability
        would round to 0)."""
        Xt = torch.from_numpy(torch_ready(validate_features(np.asarray(X), self.features, "the input")))
        logp = torch.stack([predict_logits(r.model, Xt).log_softmax(1) for r in self.runs])
        return (torch.logsumexp(logp, 0) - math.log(len(self.runs))).numpy()

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes) for a float array of clips' features."""
        return np.exp(self.predict_log_proba(X))


def load_ensemble(paths: Sequence[str | os.PathLike]) -> Predictor:
    """Load run directories into one predictor; they must agree on classes and features."""
    if isinstance(paths, (str, bytes, os.PathLike)):  # one path, not its characters
        raise MusicGenreError(f"{paths}: an ensemble takes a list of run directories, not one path")
    if not paths:
        raise MusicGenreError("an ensemble needs at least one run directory")
    runs = [load_run(p) for p in paths]
    where = [r.path.resolve() for r in runs]
    for i, r in enumerate(runs):
        if where[i] in where[:i]:
            raise MusicGenreError(f"{r.path}: given twice; an ensemble averages different runs")
    first = runs[0]
    for r in runs[1:]:
        if r.features != first.features or r.classes != first.classes:
            raise MusicGenreError(
                f"{r.path}: reads {r.features} features for classes {', '.join(r.classes)}, but {first.path} "
                f"reads {first.features} for {', '.join(first.classes)}; ensemble members must agree"
            )
    return Predictor(runs)


def load_predictor(spec: str | os.PathLike) -> Predictor:
    """A run directory, or `ensemble:RUN1,RUN2,...` for the average of several."""
    spec = str(as_path(spec, "run directory"))
    if spec.startswith(ENSEMBLE_PREFIX):
        return load_ensemble([p.strip() for p in spec[len(ENSEMBLE_PREFIX):].split(",") if p.strip()])
    return load_ensemble([spec])


def check_split_fits(dataset: Dataset, features: str, classes: tuple[str, ...]) -> None:
    """Refuse a split of other features or genres (in output order) than a model reads and predicts: its labels
    would be scored against another genre's output."""
    if (features, classes) != (dataset.features, dataset.classes):
        raise MusicGenreError(f"the {dataset.split} split's {dataset.features} features of classes {', '.join(dataset.classes)} "
                              f"are not what the model reads and predicts ({features} features of classes "
                              f"{', '.join(classes)}): load the split with the model's classes")


def evaluate_predictor(predictor: Predictor, dataset: Dataset) -> dict:
    """Classification metrics plus negative log-likelihood and ECE of the predictor's probabilities; outputs
    that are not numbers (inputs far beyond the training data's range) are an error, not the first class. The
    predictor's genres (in output order) and features must be the split's, so that no label is scored against
    another genre's output. Whether its runs trained on that split, runs.held_out_notes tells."""
    if not isinstance(predictor, Predictor):
        raise MusicGenreError(f"predictor must be a Predictor (load_predictor(path), or Predictor([run])), not {type(predictor).__name__}")
    check_dataset(dataset, "dataset")
    check_split_fits(dataset, predictor.features, predictor.classes)
    log_probs = predictor.predict_log_proba(dataset.X)
    check_scorable(np.isfinite(log_probs).all(axis=1), dataset.split)
    probs = np.exp(log_probs)
    m = classification_metrics(dataset.y, probs.argmax(1), dataset.classes)
    m["nll"] = float(-log_probs[np.arange(len(dataset.y)), dataset.y].mean(dtype=np.float64))
    m["ece"] = expected_calibration_error(probs, dataset.y)
    return m


def fit_temperature(logits: torch.Tensor, y: torch.Tensor) -> float:
    """The temperature T minimising the NLL of softmax(logits / T), by LBFGS over log T."""
    log_t = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def _calibration_figures(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    probs = logits.softmax(1)
    return float(F.cross_entropy(logits, y)), expected_calibration_error(probs.numpy(), y.numpy())


def calibrate_run(run: Run, dataset: Dataset) -> dict:
    """Fit a loaded run's temperature on `dataset` (the validation split), store it in the run's weights,
    and record NLL and ECE before (T = 1: so a second calibration refits the same T and records the same
    figures) and after under "calibration" in its metrics.json. Everything is computed
    and checked first; if writing metrics.json fails, the old weights are put back."""
    weights = run.path / WEIGHTS
    if dataset.split in run.training_splits:  # fitted on its own training data, T would make it over-confident
        raise MusicGenreError(f"{run.path}: trained on the {dataset.split} split (config.json 'training_splits'), "
                              f"so it cannot be calibrated on it: calibrate a run trained on train alone")
    check_split_fits(dataset, run.features, run.classes)
    uncalibrated = copy.deepcopy(run.model)  # T = 1 exactly: multiplying by the stored T undid it only to rounding,
    uncalibrated.temperature.fill_(1.0)      # so a second calibration refitted another T in its last bits
    raw = predict_logits(uncalibrated, torch.from_numpy(dataset.X)).clone()  # out of inference mode: T is fitted on it
    if not torch.isfinite(raw).all():
        raise MusicGenreError(f"{weights}: the model's outputs on the {dataset.split} split are NaN or infinite; "
                              "it cannot be calibrated")
    y = torch.from_numpy(dataset.y)
    if bool((raw.argmax(1) == y).all()):  # no error to fit: the NLL falls as T -> 0, making every prediction certain
        raise MusicGenreError(f"{weights}: the model gets every clip of the {dataset.split} split right, so no "
                              "temperature fits it (T would run towards 0); nothing stored (calibrate on a larger split)")
    nll_before, ece_before = _calibration_figures(raw, y)  # uncalibrated (T = 1), whatever T was stored
    t = fit_temperature(raw, y)
    if not (math.isfinite(t) and TEMPERATURES[0] <= t <= TEMPERATURES[1]):
        raise MusicGenreError(f"{weights}: no temperature from {TEMPERATURES[0]:g} to {TEMPERATURES[1]:g} fits the "
                              f"model's outputs on the {dataset.split} split (it fits {t:g}); nothing stored")
    nll_after, ece_after = _calibration_figures(raw / t, y)
    report = {
        "split": dataset.split, "n": len(dataset), "temperature": t,
        "nll_before": nll_before, "nll_after": nll_after, "ece_before": ece_before, "ece_after": ece_after,
    }
    old_weights, old_t = weights.read_bytes(), run.model.temperature.clone()
    run.model.temperature.fill_(t)
    with stops_deferred():  # both files or neither: a stop is taken after them
        try:
            save_weights(run.model, weights, run.config.model, run.classes)
            atomic_write_json(run.path / "metrics.json", {**run.metrics, "calibration": report})
        except BaseException:
            atomic_write_bytes(weights, old_weights)
            run.model.temperature.copy_(old_t)  # the loaded run as its files are again
            raise
    return report
