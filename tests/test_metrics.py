"""Metrics: which way the confusion matrix reads, how ECE weighs its bins, which spread over seeds is reported."""

from __future__ import annotations

import numpy as np
import pytest

from musicgenre.datasets import load_dataset
from musicgenre.metrics import classification_metrics, expected_calibration_error, mean_std, seed_summary


def test_confusion_matrix_rows_are_the_truth_and_columns_the_predictions(study_data):
    val = load_dataset(study_data, "mfcc", splits="val")["val"]
    pred = np.where(val.y == 0, 1, val.y)  # every blues clip called classical, the rest right
    m = classification_metrics(val.y, pred, val.classes)
    cm = np.array(m["confusion_matrix"])
    blues = int((val.y == 0).sum())
    assert val.classes[:2] == ("blues", "classical") and blues > 0
    assert cm[0, 1] == blues and cm[0, 0] == 0 and cm[1, 0] == 0
    assert cm.sum(axis=1).tolist() == [m["per_class"][c]["support"] for c in val.classes]
    assert m["per_class"]["blues"]["recall"] == 0 and m["per_class"]["classical"]["recall"] == 1
    assert m["per_class"]["classical"]["precision"] == pytest.approx(cm[1, 1] / (cm[1, 1] + blues))


def test_ece_weighs_each_confidence_bin_by_its_share_of_the_clips():
    probs = np.array([[0.95, 0.05]] * 9 + [[0.55, 0.45]])
    y = np.array([0] * 9 + [1])  # nine sure and right (gap 0.05), one unsure and wrong (gap 0.55)
    assert expected_calibration_error(probs, y) == pytest.approx(0.9 * 0.05 + 0.1 * 0.55)


def test_the_spread_over_seeds_is_the_sample_standard_deviation():
    assert mean_std([0.6, 0.7]) == pytest.approx((0.65, np.std([0.6, 0.7], ddof=1)))
    assert mean_std([0.6]) == (0.6, None)  # one seed: no spread to tell
    assert seed_summary([0.6, 0.7])["std"] == pytest.approx(0.0707107, rel=1e-5)
