"""Classification metrics, computed with scikit-learn and returned as plain JSON-ready dicts.
scikit-learn is imported inside the functions: `predict` loads this module but never needs it."""

from __future__ import annotations

import numpy as np


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro-averaged F1 over the classes that occur in the truth or the predictions (scikit-learn's default):
    a class of neither, such as a genre missing from a small val split, says nothing about the model. A class
    present but never predicted scores 0."""
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, labels=np.union1d(y_true, y_pred), average="macro", zero_division=0))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Accuracy, macro F1, per-class precision/recall/F1/support and the confusion matrix (rows = truth)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(classes)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": macro_f1(y_true, y_pred),
        "classes": list(classes),
        "per_class": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1) of figures over seeds; no std (None) for a single value,
    whose spread is unknown."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else None


def seed_summary(values: list[float]) -> dict:
    """A figure over seeds as saved beside results: mean, sample std and the values themselves."""
    mean, std = mean_std(values)
    return {"mean": mean, "std": std, "values": [float(v) for v in values]}


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        m = bins == b
        ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)
