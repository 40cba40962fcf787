"""Training speed against a loop written the way the study wrote it (TensorDataset + DataLoader,
shuffle, per-batch steps, validation through a DataLoader, torch's default threads), side by side in
one process: the MFCC MLP (one seed, fused and with PyTorch's loop; ten seeds, fused one after another
and stacked into one batched model) and the mel CNN (ours in float32 and in bf16 mixed precision). The
machine is shared, so timings are the best of REPEATS runs (the CNN's in interleaved rounds; the study's
MLP loop at torch's default threads runs once). Run: PYTHONPATH=src python bench/bench_training.py"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from musicgenre.config import TrainConfig
from musicgenre.datasets import Dataset, load_dataset
from musicgenre.models import GenreNet, MelCNN, build_model, norm_shape
from musicgenre.training import train, train_seeds

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "music_genre_data_di"
MLP = TrainConfig(features="mfcc", model="mfcc-mlp", optimizer="SGD", lr=0.002, epochs=30, batch_size=16, seed=0, device="cpu")
REPEATS = 3
CNN = TrainConfig(features="melgram", model="mel-cnn", optimizer="SGD", lr=0.002, epochs=2, batch_size=16, seed=0, device="cpu")


def study_model(name: str, n_classes: int) -> nn.Module:
    """The model as the study ran it: our MelCNN in the default (not channels-last) memory format."""
    if name == "mel-cnn":
        return GenreNet(MelCNN(n_classes, channels_last=False), norm_shape("melgram"))
    return build_model(name, n_classes)


def reference_train(cfg: TrainConfig, train_set: Dataset, val_set: Dataset, threads: int | None = None,
                    device: str = "cpu") -> tuple[float, float]:
    """The study's loop; returns the final validation accuracy and the seconds spent in training
    steps (validation excluded). `threads` None keeps torch's default. On a GPU, as the study ran it:
    batches collated on the CPU and copied over one by one."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(cfg.seed)
        model = study_model(cfg.model, len(train_set.classes)).to(device)
        opt = getattr(torch.optim, cfg.optimizer)(model.parameters(), lr=cfg.lr)
        loss_fn = nn.CrossEntropyLoss()
        loader = DataLoader(TensorDataset(torch.from_numpy(train_set.X), torch.from_numpy(train_set.y)),
                            batch_size=cfg.batch_size, shuffle=True)
        val_loader = DataLoader(TensorDataset(torch.from_numpy(val_set.X), torch.from_numpy(val_set.y)),
                                batch_size=cfg.batch_size)
        train_s = 0.0
        for _ in range(cfg.epochs):
            t0 = time.perf_counter()
            model.train()
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                opt.zero_grad()
                loss = loss_fn(model(xb), yb)
                loss.backward()
                opt.step()
            if device != "cpu":
                torch.cuda.synchronize()
            train_s += time.perf_counter() - t0
            model.eval()
            correct = 0
            with torch.no_grad():
                for xb, yb in val_loader:
                    correct += (model(xb.to(device)).argmax(1).cpu() == yb).sum().item()
    finally:
        torch.set_num_threads(before)
    return correct / len(val_set), train_s


def timed(fn, repeats: int = 1):
    """Best wall time of `repeats` calls of fn, and the last call's result."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def synthetic_melgrams(n: int, seed: int = 0) -> Dataset:
    """(n, 21, 128) inputs in [-80, 0] whose level depends on the class (the CNN has no real melgrams here)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    X = rng.uniform(-80, 0, size=(n, 21, 128))
    X[:, :, :32] = np.clip(X[:, :, :32] * 0.2 - 60 + 15 * y[:, None, None], -80, 0)
    return Dataset(X.astype(np.float32), y.astype(np.int64), ("a", "b", "c", "d"), "melgram", "train")


def row(name: str, ref_s: float, ours_s: float, **extra) -> dict:
    r = {"benchmark": name, "reference_s": round(ref_s, 3), "ours_s": round(ours_s, 3), "ratio": round(ref_s / ours_s, 2), **extra}
    print(r, flush=True)
    return r


def train_gflop_per_clip(cfg: TrainConfig) -> float:
    """Floating-point work of one training step of the model per clip (forward and backward), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    model, x = build_model(cfg.model, 4), torch.zeros(16, 21, 128)
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), torch.zeros(16, dtype=torch.long)).backward()
    return counter.get_total_flops() / 16 / 1e9


def matmul_row(n: int = 2048, repeats: int = 10) -> dict:
    """What this CPU's matrix products reach in float32 and in bfloat16 (every core): the roofline
    the CNN rows are read against."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    times = {}
    for dtype in (torch.float32, torch.bfloat16):
        x, y = a.to(dtype), b.to(dtype)
        times[dtype] = timed(lambda x=x, y=y: [x @ y for _ in range(repeats)], 3)[0] / repeats
    flop = 2 * n**3 / 1e9
    return row(f"matmul {n}x{n}: float32 vs bfloat16", times[torch.float32], times[torch.bfloat16],
               float32_gflops=round(flop / times[torch.float32]), bfloat16_gflops=round(flop / times[torch.bfloat16]))


def main() -> list[dict]:
    data = load_dataset(DATA, "mfcc", ("train", "val"))
    tr, va = data["train"], data["val"]
    for fused in (True, False):  # warm-up: lazy imports (torch._dynamo via torch.optim, sklearn, numba's cache)
        train(replace(MLP, epochs=1, fused=fused), tr, va)
    reference_train(replace(MLP, epochs=1), tr, va)

    ref_s, (ref_acc, _) = timed(lambda: reference_train(MLP, tr, va))
    ref1_s, (ref1_acc, _) = timed(lambda: reference_train(MLP, tr, va, threads=1), REPEATS)
    unfused = replace(MLP, fused=False)  # PyTorch's own loop: resident tensors, foreach SGD, one thread
    unfused_s, unfused_run = timed(lambda: train(unfused, tr, va), REPEATS)
    ours_s, ours = timed(lambda: train(MLP, tr, va), REPEATS)  # the fused epoch (fused.py)
    rows = [
        row("mlp 30 epochs vs study loop", ref_s, ours_s, reference_acc=ref_acc, ours_acc=ours.metrics["accuracy"],
            ours_last_epoch_acc=ours.history[-1].val_accuracy),
        row("mlp 30 epochs vs study loop at 1 thread", ref1_s, ours_s, reference_acc=ref1_acc, ours_acc=ours.metrics["accuracy"]),
        row("mlp 30 epochs, our PyTorch loop (--no-fused) vs study loop", ref_s, unfused_s,
            ours_acc=unfused_run.metrics["accuracy"]),
    ]
    for name, cfg in [("fused, one seed after another", MLP), ("stacked, --no-fused", unfused)]:
        seeds_s, runs = timed(lambda cfg=cfg: train_seeds(cfg, list(range(10)), tr, va), REPEATS)
        accs = [r.metrics["accuracy"] for r in runs]
        rows.append(row(f"mlp 10 seeds ({name}) vs ONE study-loop run", ref_s, seeds_s,
                        ours_acc_mean=round(float(np.mean(accs)), 4), ours_acc_std=round(float(np.std(accs)), 4)))

    mel = synthetic_melgrams(1024)
    mel_val = synthetic_melgrams(256, seed=2)  # a fifth of the clips, as the study's 800 val against 3200 train
    warm = synthetic_melgrams(64, seed=1)  # warm-up: oneDNN primitives for each loop and precision
    reference_train(replace(CNN, epochs=1), warm, warm)
    for precision in ("fp32", "bf16"):
        train(replace(CNN, epochs=1, precision=precision), warm, warm)
    # REPEATS interleaved rounds of the three loops, the best of each: load on this shared machine then
    # falls on all three alike (a single run of each swung the bf16 ratio from 1.6x to 2.2x)
    timings: dict[str, list] = {"reference": [], "fp32": [], "bf16": []}
    for _ in range(REPEATS):
        timings["reference"].append(timed(lambda: reference_train(CNN, mel, mel_val)))
        for precision in ("fp32", "bf16"):
            timings[precision].append(timed(lambda p=precision: train(replace(CNN, precision=p), mel, mel_val)))
    ref_s = min(s for s, _ in timings["reference"])
    ref_train_s = min(train_s for _, (_, train_s) in timings["reference"])
    ref_acc = timings["reference"][0][1][0]
    samples = CNN.epochs * len(mel)
    gflop = train_gflop_per_clip(CNN)
    rows.append(matmul_row())
    for precision in ("fp32", "bf16"):
        ours_s = min(s for s, _ in timings[precision])
        ours_train_s = min(result.train_seconds for _, result in timings[precision])
        acc = {"reference_acc": ref_acc, "ours_acc": timings[precision][0][1].metrics["accuracy"]}
        rows.append(row(f"mel-cnn training steps, ours in {precision} (ratio = training samples/s gain)",
                        ref_train_s, ours_train_s, reference_samples_per_s=round(samples / ref_train_s),
                        ours_samples_per_s=round(samples / ours_train_s), gflop_per_clip=round(gflop, 3),
                        reference_gflops=round(gflop * samples / ref_train_s),
                        ours_gflops=round(gflop * samples / ours_train_s), **acc))
        rows.append(row(f"mel-cnn 2 epochs x 1024 with validation of 256, ours in {precision}", ref_s, ours_s, **acc))
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
