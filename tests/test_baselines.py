"""The scikit-learn baselines run on the real MFCC data and clearly beat chance."""

from pathlib import Path

import pytest

from musicgenre.baselines import BASELINES, evaluate_baseline, fit_baseline
from musicgenre.datasets import load_dataset
from musicgenre.errors import MusicGenreError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "music_genre_data_di"


@pytest.fixture(scope="module")
def mfcc():
    return load_dataset(DATA, "mfcc")


@pytest.mark.parametrize("name", list(BASELINES))
def test_baseline_beats_chance_on_real_data(mfcc, name):
    m = evaluate_baseline(fit_baseline(name, mfcc["train"], seed=0), mfcc["val"])
    assert m["accuracy"] > 0.6 and m["f1_macro"] > 0.6  # chance is 0.25


def test_unknown_baseline_is_a_clear_error(mfcc):
    with pytest.raises(MusicGenreError, match="unknown baseline"):
        fit_baseline("sk-nope", mfcc["train"])
