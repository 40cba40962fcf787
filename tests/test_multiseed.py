"""Seeds trained together (stacked into batched matmuls) give what training each seed alone gives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import subset
from musicgenre.config import OPTIMIZERS, TrainConfig
from musicgenre.datasets import Dataset, load_dataset
from musicgenre.models import GenreNet, build_model
from musicgenre.multiseed import StackedChain, can_stack, train_stacked
from musicgenre.training import train, train_seeds


CPU = torch.device("cpu")


@pytest.fixture(scope="session")
def mfcc(study_data) -> dict[str, Dataset]:
    d = load_dataset(study_data, "mfcc", ("train", "val"))
    return {"train": subset(d["train"], 800), "val": d["val"]}


class Residual(nn.Module):
    """Only Linear and ReLU leaves, but not a chain: its forward adds the input back."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(26, 26), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


def test_stackable_models():
    assert can_stack(build_model("mfcc-mlp", 4))
    assert can_stack(GenreNet(nn.Sequential(nn.Linear(26, 8), nn.Tanh(), nn.Linear(8, 4, bias=False)), (26,)))
    assert not can_stack(build_model("mel-cnn", 4))
    assert not can_stack(GenreNet(Residual(), (26,)))
    assert not can_stack(GenreNet(nn.Sequential(nn.Linear(26, 8), nn.Dropout(), nn.Linear(8, 4)), (26,)))


@pytest.mark.parametrize("body", [
    lambda: build_model("mfcc-mlp", 4).body,
    lambda: nn.Sequential(nn.Linear(26, 8), nn.GELU(), nn.Linear(8, 4, bias=False)),
], ids=["mfcc-mlp", "bias-free"])
def test_stacked_chain_computes_each_model(body):
    """Each seed's slice of the stacked forward is its own GenreNet's output (standardisation and
    temperature included), and its weights go back into the model unchanged."""
    models = []
    for s in range(3):
        torch.manual_seed(s)
        m = GenreNet(body(), (26,))
        m.mean.normal_()
        m.std.uniform_(0.5, 2.0)
        m.temperature.fill_(1.5 + s)
        models.append(m)
    net = StackedChain(models)
    X = torch.randn(5, 26)
    with torch.no_grad():
        got = net(net.standardize(X))
        for s, m in enumerate(models):
            assert torch.allclose(got[s], m(X), atol=1e-6)
    fresh = GenreNet(body(), (26,))
    net.load_into(fresh, 2, net.params)
    for p, want in zip(fresh.parameters(), models[2].parameters()):
        assert torch.equal(p, want)


@pytest.mark.parametrize("cfg", [
    TrainConfig(epochs=6, device="cpu", fused=False),  # fused, plain SGD trains seed after seed (test_fused.py)
    TrainConfig(epochs=6, device="cpu", optimizer="adam", lr=0.003, standardize=True, weight_decay=1e-3,
                label_smoothing=0.1, scheduler="onecycle"),
], ids=["study", "adam-options"])
def test_stacked_seeds_agree_with_single_runs(mfcc, cfg):
    """Per seed: the same initial weights and batch order as `train`; the batched matmuls add up in
    another order, so figures agree to float rounding (losses to 1e-4 relative), not bit for bit."""
    seeds = [0, 1, 2]
    stacked = train_seeds(cfg, seeds, mfcc["train"], mfcc["val"])
    assert [r.config.seed for r in stacked] == seeds
    for seed, got in zip(seeds, stacked):
        want = train(TrainConfig(**{**cfg.to_dict(), "seed": seed}), mfcc["train"], mfcc["val"])
        assert len(got.history) == len(want.history)
        assert got.history[0].loss == pytest.approx(want.history[0].loss, rel=1e-5)
        for g, w in zip(got.history, want.history):
            assert g.loss == pytest.approx(w.loss, rel=1e-4)
            assert g.val_accuracy == pytest.approx(w.val_accuracy, abs=0.01)
        assert got.metrics["accuracy"] == pytest.approx(want.metrics["accuracy"], abs=0.01)
        # recorded with the run, since only the same seeds stacked repeat it to the bit
        assert got.trained_on == {"device": "cpu", "loop": "stacked", "stacked_seeds": seeds, "cpu_threads": 1}
        assert want.trained_on == {"device": "cpu", "loop": "pytorch", "cpu_threads": 1}
        assert got.metrics["f1_macro"] == pytest.approx(got.history[got.best_epoch - 1].val_f1, abs=1e-12)
        for pg, pw in zip(got.model.parameters(), want.model.parameters()):
            assert torch.allclose(pg, pw, atol=1e-2)


def test_stacked_early_stopping_per_seed(mfcc):
    cfg = TrainConfig(epochs=20, device="cpu", optimizer="adam", lr=0.05, patience=2)
    stacked = train_stacked(cfg, [3, 4], mfcc["train"], mfcc["val"], None, CPU)
    for seed, got in zip([3, 4], stacked):
        want = train(TrainConfig(**{**cfg.to_dict(), "seed": seed}), mfcc["train"], mfcc["val"])
        assert (len(got.history), got.best_epoch) == (len(want.history), want.best_epoch)
        assert len(got.history) < 20


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_trains_stacked(mfcc, optimizer):
    cfg = TrainConfig(epochs=2, device="cpu", optimizer=optimizer, lr=0.01, standardize=True)
    results = train_stacked(cfg, [0, 1, 2], mfcc["train"], mfcc["val"], None, CPU)
    assert len(results) == 3
    for r in results:
        assert all(math.isfinite(h.loss) for h in r.history) and r.metrics["n"] == len(mfcc["val"])
    first = [next(r.model.parameters()) for r in results]
    assert not torch.equal(first[0], first[1])  # each seed its own model
    alone = train(TrainConfig(**{**cfg.to_dict(), "seed": 1}), mfcc["train"], mfcc["val"])
    assert results[1].history[-1].loss == pytest.approx(alone.history[-1].loss, rel=1e-3)


def test_cli_trains_seeds_together(mfcc, tmp_path, capsys):
    import json

    from conftest import write_split

    from musicgenre.cli import main

    root = tmp_path / "data"
    for split in ("train", "val"):
        d = mfcc[split]
        write_split(root, split, "mfcc", d.X, np.array(d.classes)[d.y])
    out = tmp_path / "runs"
    assert main(["train", "--data", str(root), "--out", str(out), "--seeds", "3", "--seed", "10", "--epochs", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["seed-10", "seed-11", "seed-12", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    accs = [json.loads((out / f"seed-{s}" / "metrics.json").read_text())["val"]["accuracy"] for s in (10, 11, 12)]
    assert summary["val_accuracy"]["values"] == accs
    assert summary["val_accuracy"]["mean"] == pytest.approx(np.mean(accs))
    out_text = capsys.readouterr().out
    assert "over 3 seeds" in out_text
    # several runs report their epochs in turn: each line and each history record says whose it is
    assert sorted(line.split("  epoch")[0] for line in out_text.splitlines() if "  epoch " in line) == \
        ["seed 10"] * 2 + ["seed 11"] * 2 + ["seed 12"] * 2
    assert {r["seed"] for r in json.loads((out / "seed-11" / "history.json").read_text())} == {11}
    # the study's SGD net trains seed after seed with the fused epoch, which `train --seed 11` repeats
    assert json.loads((out / "seed-11" / "config.json").read_text())["trained_on"] == {"device": "cpu", "loop": "fused", "cpu_threads": 1}
