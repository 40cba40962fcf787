"""The comparison table (`musicgenre compare`) on a slice of the real MFCC data: every recipe and baseline,
scores over seeds, costs for the models without data, and its output folder handled like every other."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import sklearn
import torch

import musicgenre.compare
from conftest import write_split
from musicgenre.baselines import BASELINES
from musicgenre.cli import main
from musicgenre.config import RECIPES


@pytest.fixture
def short_recipes(monkeypatch):
    """Every recipe at 2 epochs: the table's mechanics, not the recipes' accuracy, are under test here."""
    monkeypatch.setattr(musicgenre.compare, "RECIPES", {k: replace(r, epochs=2) for k, r in RECIPES.items()})


def test_compare_scores_mfcc_recipes_and_baselines_and_costs_the_rest(small_mfcc_root, short_recipes, tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--data", str(small_mfcc_root), "--seeds", "2", "--out", str(out)]) == 0
    rows = {r["model"]: r for r in csv.DictReader((out / "compare.csv").open())}
    assert set(rows) == set(RECIPES) | set(BASELINES)
    for name, r in rows.items():
        trained = RECIPES[name].features == "mfcc" if name in RECIPES else True
        assert r["seeds"] == ("2" if trained else "0")
        assert (0.25 < float(r["accuracy_mean"]) <= 1 and r["accuracy_std"] != "") if trained else r["accuracy_mean"] == ""
        assert float(r["cpu_us_per_clip"]) > 0
    assert int(rows["mel-cnn"]["parameters"]) == 1_589_796  # no melgrams here: cost only
    md = (out / "compare.md").read_text()
    assert "| mfcc-mlp-log | mfcc | 2 | " in md and " ± " in md
    settings = json.loads((out / "compare_config.json").read_text())  # what ran, recorded beside the results
    assert (settings["data"], settings["seeds"]) == (str(small_mfcc_root.resolve()), [0, 1])
    assert set(settings["recipes"]) == {n for n, r in RECIPES.items() if r.features == "mfcc"}
    assert settings["recipes"]["mfcc-mlp-log"] == replace(RECIPES["mfcc-mlp-log"], epochs=2).to_dict()
    assert settings["baselines"] == list(BASELINES) and list(settings["data_digest"]) == ["mfcc"]
    assert settings["versions"]["scikit-learn"] == sklearn.__version__ and settings["versions"]["torch"] == torch.__version__


def test_one_seed_has_no_spread_to_show(small_mfcc_root, short_recipes, tmp_path):
    assert main(["compare", "--data", str(small_mfcc_root), "--seeds", "1", "--out", str(tmp_path / "cmp")]) == 0
    line = next(x for x in (tmp_path / "cmp" / "compare.md").read_text().splitlines() if x.startswith("| mfcc-mlp |"))
    assert " ± " not in line
    row = next(r for r in csv.DictReader((tmp_path / "cmp" / "compare.csv").open()) if r["model"] == "mfcc-mlp")
    assert row["accuracy_mean"] != "" and row["accuracy_std"] == ""


def test_compare_refuses_what_it_cannot_score_or_would_clobber(small_mfcc_root, tmp_path, capsys):
    train_only = tmp_path / "train-only"
    X = np.load(small_mfcc_root / "train/mfccs/X.npy")
    write_split(train_only, "train", "mfcc", X, np.load(small_mfcc_root / "train/mfccs/labels.npy"))
    assert main(["compare", "--data", str(train_only), "--seeds", "1", "--out", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err == f"error: {train_only}: no val split of mfcc features, which compare scores the models on\n"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "compare.md").write_text("precious")
    for out, message in [(mine, "already exists and is not empty"), (small_mfcc_root / "cmp", "overlaps the input")]:
        assert main(["compare", "--data", str(small_mfcc_root), "--seeds", "1", "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert (mine / "compare.md").read_text() == "precious" and not (tmp_path / "a").exists()
