"""On a CUDA GPU (skipped where there is none, as in CI): training, stacked seeds, bf16 and the device
comparison run there and agree with the CPU, and a GPU-trained run loads and predicts on the CPU."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from conftest import GENRES, synthetic_melgrams
from musicgenre.benchmark import compare_devices
from musicgenre.config import RECIPES, TrainConfig
from musicgenre.cudagraph import GraphedStep, can_graph
from musicgenre.datasets import Dataset, load_dataset
from musicgenre.runs import load_run, save_run
from musicgenre.training import evaluate_model, train, train_seeds

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


@pytest.fixture(scope="module")
def mfcc(study_data) -> dict[str, Dataset]:
    return load_dataset(study_data, "mfcc", ("train", "val"))


def test_gpu_run_matches_cpu_and_predicts_on_cpu(mfcc, tmp_path):
    cfg = replace(RECIPES["mfcc-mlp-log"], epochs=8, seed=0, device="cuda")
    gpu = train(cfg, mfcc["train"], mfcc["val"])
    cpu = train(replace(cfg, device="cpu"), mfcc["train"], mfcc["val"])
    assert next(gpu.model.parameters()).is_cuda
    assert gpu.metrics["accuracy"] > 0.68
    # same seed, same batch order: only float rounding differs between the devices
    assert gpu.metrics["accuracy"] == pytest.approx(cpu.metrics["accuracy"], abs=0.02)
    run = load_run(save_run(gpu, tmp_path / "run"))  # loads on the CPU
    assert run.config.device == "cuda" and not next(run.model.parameters()).is_cuda
    assert evaluate_model(run.model, mfcc["val"])["accuracy"] == pytest.approx(gpu.metrics["accuracy"], abs=2 / 800)


def test_gpu_stacked_seeds_agree_with_single_runs(mfcc):
    cfg = TrainConfig(epochs=4, device="cuda", optimizer="adam", lr=0.003, standardize=True)
    stacked = train_seeds(cfg, [0, 1], mfcc["train"], mfcc["val"])
    for seed, got in zip([0, 1], stacked):
        want = train(replace(cfg, seed=seed), mfcc["train"], mfcc["val"])
        for g, w in zip(got.history, want.history):
            assert g.loss == pytest.approx(w.loss, rel=1e-3)
        assert got.metrics["accuracy"] == pytest.approx(want.metrics["accuracy"], abs=0.01)


@pytest.mark.parametrize("cfg", [
    TrainConfig(epochs=4, seed=0, device="cuda"),  # the study's SGD
    TrainConfig(epochs=4, seed=0, device="cuda", optimizer="adagrad", lr=0.01, standardize=True),  # the study's CNN optimizer
    TrainConfig(epochs=4, seed=0, device="cuda", optimizer="adam", lr=0.003, standardize=True, weight_decay=1e-3),
    TrainConfig(epochs=4, seed=0, device="cuda", optimizer="adamw", lr=0.003, standardize=True, scheduler="cosine",
                mixup=1.0, label_smoothing=0.1),  # the recipes' schedule and augmentation, drawn outside the graph
], ids=["sgd", "adagrad", "adam", "adamw-cosine-mixup"])
def test_cuda_graph_steps_train_as_eager_steps_do(mfcc, cfg, monkeypatch):
    """Replayed graphs run the same kernels on the same batches as the same steps run eagerly (a
    GraphedStep that never captures): the same run to float rounding, also for a last batch of another
    size (3000 clips = 187 batches of 16 and one of 8), stacked seeds, and a cosine schedule (a graph
    that kept the first lr would drift). Without graphs at all (non-capturable optimizer arithmetic)
    the scores agree too."""
    tr = Dataset(mfcc["train"].X[:3000], mfcc["train"].y[:3000], mfcc["train"].classes, "mfcc", "train")
    runs = (lambda c: [train(c, tr, mfcc["val"])], lambda c: train_seeds(c, [0, 1], tr, mfcc["val"]))
    graphed = [r for run in runs for r in run(cfg)]
    plain = [r for run in runs for r in run(replace(cfg, cuda_graphs=False))]
    monkeypatch.setattr(GraphedStep, "WARMUP", 10**9)
    eager = [r for run in runs for r in run(cfg)]
    for g, e, p in zip(graphed, eager, plain):
        assert len(g.history) == len(e.history) == 4
        for gh, eh in zip(g.history, e.history):
            assert gh.loss == pytest.approx(eh.loss, rel=1e-4)
        for pg, pe in zip(g.model.parameters(), e.model.parameters()):
            assert torch.allclose(pg, pe, atol=1e-4)
        assert g.metrics["accuracy"] == pytest.approx(p.metrics["accuracy"], abs=0.02)


@pytest.fixture(scope="module")
def melgrams() -> Dataset:
    """256 synthetic (21, 128) clips whose level depends on the genre."""
    X, labels = synthetic_melgrams(256)
    return Dataset(X, np.searchsorted(GENRES, labels), GENRES, "melgram", "train")


def test_cuda_graphs_train_a_cnn_with_batchnorm_and_dropout(melgrams):
    """Replays update BatchNorm's running statistics and draw fresh dropout masks (graph-safe RNG);
    the device given by number."""
    cfg = replace(RECIPES["mel-cnn-bn"], epochs=4, seed=0, device="cuda:0", mixup=0.0, spec_augment=False, scheduler="none")
    assert can_graph(cfg, torch.device("cuda"))
    result = train(cfg, melgrams, melgrams)
    assert result.metrics["accuracy"] > 0.9  # chance is 0.25
    norms = [m for m in result.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(int(m.num_batches_tracked) == result.best_epoch * len(melgrams) // cfg.batch_size for m in norms)


def test_gpu_bf16_cnn_learns_and_keeps_fp32_weights(melgrams):
    cfg = replace(RECIPES["mel-cnn-bn"], epochs=6, seed=0, device="cuda", precision="bf16")
    result = train(cfg, melgrams, melgrams)
    assert all(p.dtype == torch.float32 and p.is_cuda for p in result.model.parameters())
    assert result.metrics["accuracy"] > 0.9  # chance is 0.25


def test_compare_devices_trains_on_both(study_data):
    cfg = TrainConfig(epochs=3, seed=0)
    cpu, gpu = compare_devices(cfg, ["cpu", "cuda"], str(study_data))
    assert cpu["available"] and gpu["available"] and gpu["name"] == torch.cuda.get_device_name(0)
    assert gpu["val_accuracy"] == pytest.approx(cpu["val_accuracy"], abs=0.02)
