"""The fused CPU epoch (numba) on the study's real MFCC data: the same training as autograd and torch.optim.SGD."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from conftest import subset
from musicgenre.cli import build_parser, train_config_from_args
from musicgenre.config import TrainConfig
from musicgenre.datasets import Dataset, load_dataset
from musicgenre.fused import FusedSGD, can_fuse
from musicgenre.models import GenreNet, LogStd, build_model
from musicgenre.training import batch_sizes, train, train_seeds

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def mfcc(study_data) -> dict[str, Dataset]:
    """401 real training clips (batches of 16, the last 17: batch_sizes merges a batch of one) and 400 val clips."""
    d = load_dataset(study_data, "mfcc", ("train", "val"))
    va = d["val"]
    return {"train": subset(d["train"], 401), "val": Dataset(va.X[:400], va.y[:400], va.classes, "mfcc", "val")}


@pytest.mark.parametrize("cfg", [
    TrainConfig(epochs=8, seed=0, device="cpu"),  # the study's run
    TrainConfig(epochs=4, seed=3, device="cpu", lr=0.05, standardize=True, weight_decay=1e-2, label_smoothing=0.1),
    TrainConfig(epochs=4, seed=1, device="cpu", model="mfcc-linear", standardize=True),  # one layer, log input
], ids=["study", "options", "linear"])
def test_fused_epochs_train_as_autograd_and_torch_sgd(mfcc, monkeypatch, cfg):
    epochs = []
    real = FusedSGD.epoch
    monkeypatch.setattr(FusedSGD, "epoch", lambda self, order: epochs.append(1) or real(self, order))
    fused = train(cfg, mfcc["train"], mfcc["val"])
    assert len(epochs) == cfg.epochs  # every epoch ran fused
    plain = train(replace(cfg, fused=False), mfcc["train"], mfcc["val"])
    assert len(epochs) == cfg.epochs
    # Same initial weights, batch order, gradients and updates: equal up to float rounding.
    for f, p in zip(fused.history, plain.history):
        assert f.loss == pytest.approx(p.loss, rel=1e-5)
        assert f.val_accuracy == pytest.approx(p.val_accuracy, abs=0.003)
    assert fused.best_epoch == plain.best_epoch
    for f, p in zip(fused.model.state_dict().values(), plain.model.state_dict().values()):
        assert torch.allclose(f, p, atol=1e-5)
    assert fused.history[-1].loss < fused.history[0].loss  # it learns
    # And a seed repeats bit for bit.
    again = train(cfg, mfcc["train"], mfcc["val"])
    assert [r.loss for r in again.history] == [r.loss for r in fused.history]
    for f, a in zip(fused.model.parameters(), again.model.parameters()):
        assert torch.equal(f, a)


def test_fused_seeds_are_the_single_runs(mfcc):
    cfg = TrainConfig(epochs=3, device="cpu")
    runs = train_seeds(cfg, [5, 6], mfcc["train"], mfcc["val"])
    for run in runs:
        alone = train(replace(cfg, seed=run.config.seed), mfcc["train"], mfcc["val"])
        assert [r.loss for r in run.history] == [r.loss for r in alone.history]


def test_fused_only_where_it_computes_what_was_asked():
    study = TrainConfig()
    mlp = build_model("mfcc-mlp", 4)
    assert can_fuse(study, mlp, CPU)
    assert can_fuse(study, GenreNet(nn.Sequential(nn.Linear(26, 8), nn.ReLU(), nn.Linear(8, 4)), (26,), LogStd()), CPU)
    for cfg in [replace(study, fused=False), replace(study, optimizer="adam"), replace(study, mixup=0.2),
                replace(study, precision="bf16"), replace(study, scheduler="cosine"), replace(study, scheduler="onecycle")]:
        assert not can_fuse(cfg, mlp, CPU)
    assert not can_fuse(study, mlp, torch.device("cuda"))
    for body in [nn.Sequential(nn.Linear(26, 8), nn.Tanh(), nn.Linear(8, 4)),  # only ReLU's gradient is written
                 nn.Sequential(nn.Linear(26, 8), nn.ReLU(), nn.Linear(8, 4, bias=False)),
                 nn.Sequential(nn.Linear(26, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU()),
                 nn.Sequential(nn.Linear(26, 8), nn.ReLU(), nn.ReLU(), nn.Linear(8, 4))]:
        assert not can_fuse(study, GenreNet(body, (26,)), CPU)
    for name in ["mfcc-mlp-plus", "mfcc-mlp-log", "mel-cnn"]:  # batch norm, dropout, convolutions
        assert not can_fuse(study, build_model(name, 4), CPU)
    # Parameters the kernel would train wrongly or not at all: tied, frozen, parametrized, outside the chain.
    shared = nn.Linear(8, 8)
    tied = GenreNet(nn.Sequential(nn.Linear(26, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 4)), (26,))
    frozen = build_model("mfcc-mlp", 4)
    frozen.body.layers[0].weight.requires_grad_(False)
    normed = GenreNet(nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(26, 8)), nn.ReLU(), nn.Linear(8, 4)), (26,))
    learned_input = GenreNet(nn.Sequential(nn.Linear(26, 8), nn.ReLU(), nn.Linear(8, 4)), (26,), nn.Linear(26, 26))
    calibrated = build_model("mfcc-mlp", 4)
    calibrated.temperature.fill_(0.5)
    for model in [tied, frozen, normed, learned_input, calibrated]:
        assert not can_fuse(study, model, CPU)
    args = build_parser().parse_args(["train", "--no-fused", "--data", "d", "--out", "o"])
    assert train_config_from_args(args).fused is False


def test_nan_in_a_hidden_layer_reaches_the_loss_as_in_torch(mfcc):
    """A diverging run's NaN must not vanish in a ReLU (torch keeps it): the loss turns NaN and training stops."""
    model = build_model("mfcc-mlp", 4)
    with torch.no_grad():
        model.body.layers[0].weight[0, 0] = float("nan")
    X, y = torch.from_numpy(mfcc["train"].X), torch.from_numpy(mfcc["train"].y)
    assert torch.isnan(nn.functional.cross_entropy(model(X), y))
    fused = FusedSGD(TrainConfig(), model, X, y, batch_sizes(len(y), 16))
    assert np.isnan(fused.epoch(torch.randperm(len(y))))
