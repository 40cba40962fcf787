"""scikit-learn baselines for the MFCC features, each a seeded Pipeline of StandardScaler (after mfcc-mlp-log's
log transform for sk-logreg-log) and a classifier at scikit-learn's default settings (C=1 for the SVM): what
classical methods reach on the same input, untuned."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC

from musicgenre.datasets import Dataset
from musicgenre.errors import MusicGenreError
from musicgenre.metrics import classification_metrics
from musicgenre.models import LogStd


def log_std(X: np.ndarray) -> np.ndarray:
    """mfcc-mlp-log's input transform (models.LogStd: the 13 deviations as logs) on a numpy array."""
    return LogStd()(torch.from_numpy(X)).numpy()


# name -> factory(seed) -> unfitted pipeline
BASELINES: dict[str, Callable[[int], Pipeline]] = {
    "sk-logreg": lambda seed: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed)),
    "sk-logreg-log": lambda seed: make_pipeline(FunctionTransformer(log_std), StandardScaler(),
                                                LogisticRegression(max_iter=2000, random_state=seed)),
    "sk-svm-rbf": lambda seed: make_pipeline(StandardScaler(), SVC(kernel="rbf", C=1.0, random_state=seed)),
    "sk-hist-gb": lambda seed: make_pipeline(StandardScaler(), HistGradientBoostingClassifier(random_state=seed)),
}


def fit_baseline(name: str, train_set: Dataset, seed: int = 0) -> Pipeline:
    """Fit the named baseline on a training split of MFCC features."""
    if name not in BASELINES:
        raise MusicGenreError(f"unknown baseline {name!r}: choose one of {', '.join(BASELINES)}")
    if train_set.features != "mfcc":
        raise MusicGenreError(f"baseline {name} reads mfcc features, not {train_set.features}")
    return BASELINES[name](seed).fit(train_set.X, train_set.y)


def evaluate_baseline(pipe: Pipeline, dataset: Dataset) -> dict:
    """Full classification metrics of a fitted baseline on a split."""
    return classification_metrics(dataset.y, pipe.predict(dataset.X), dataset.classes)
