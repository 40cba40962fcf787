"""Where the floor is for one SGD step of the study's MLP (batch 16, one thread): the study's step
(DataLoader batch, nn.Module forward, autograd, torch.optim.SGD) against lower-overhead ways to do
the same arithmetic, side by side on the real MFCC data, 5 epochs (1000 steps) each:
our training loop (`musicgenre.training.train`'s step: batches sliced from resident tensors),
the gradients written out by hand in eager PyTorch (no autograd, no optimizer object), the same
hand-written step under TorchScript and under torch.compile (first call = compilation, reported
apart), in NumPy, and the whole epoch compiled by numba (musicgenre.fused, what `train` runs for this
net; its compile time from an empty cache, and its load from the disk cache, in fresh processes). It
answers how far a 10x target for this net is from what a PyTorch step can cost, and what the fused epoch gets. Run: PYTHONPATH=src python bench/bench_step_floor.py"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bench_training import timed
from musicgenre.config import TrainConfig
from musicgenre.datasets import load_split
from musicgenre.fused import FusedSGD
from musicgenre.models import GenreNet
from musicgenre.training import batch_sizes

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "music_genre_data_di"
EPOCHS, BATCH, LR = 5, 16, 0.002


def study_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(26, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU(), nn.Linear(32, 4))


def study_step(X: torch.Tensor, y: torch.Tensor) -> None:
    model, loss_fn = study_net(), nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    loader = DataLoader(TensorDataset(X, y), batch_size=BATCH, shuffle=True)
    for _ in range(EPOCHS):
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()


def resident_step(X: torch.Tensor, y: torch.Tensor) -> None:
    model, loss_fn = study_net(), nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=LR, foreach=True)
    for _ in range(EPOCHS):
        perm = torch.randperm(len(y))
        for xb, yb in zip(X[perm].split(BATCH), y[perm].split(BATCH)):
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def sgd_step(w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, w3: torch.Tensor,
             b3: torch.Tensor, xb: torch.Tensor, tb: torch.Tensor, lr: float) -> None:
    """Forward, softmax-cross-entropy gradient and SGD update written out, about 20 ops; one source for
    the eager, torch.compile and TorchScript rows. Updates are single in-place ops (TorchScript drops a
    _foreach_sub_ as dead code)."""
    h1 = torch.addmm(b1, xb, w1.t()).relu_()
    h2 = torch.addmm(b2, h1, w2.t()).relu_()
    g3 = torch.addmm(b3, h2, w3.t()).softmax(1).sub_(tb).mul_(lr / xb.shape[0])
    g2 = (g3 @ w3).mul_(h2 > 0)
    g1 = (g2 @ w2).mul_(h1 > 0)
    w3.sub_(g3.t() @ h2)
    b3.sub_(g3.sum(0))
    w2.sub_(g2.t() @ h1)
    b2.sub_(g2.sum(0))
    w1.sub_(g1.t() @ xb)
    b1.sub_(g1.sum(0))


def epoch_of(step):
    """An epoch that calls `step` (eager or compiled) on each batch from Python."""

    def epoch(Xb, Tb, w1, b1, w2, b2, w3, b3, lr):
        for xb, tb in zip(Xb, Tb):
            step(w1, b1, w2, b2, w3, b3, xb, tb, lr)

    return epoch


@torch.jit.script
def scripted_epoch(Xb: torch.Tensor, Tb: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
                   b2: torch.Tensor, w3: torch.Tensor, b3: torch.Tensor, lr: float) -> None:
    """A whole epoch inside TorchScript's interpreter (sgd_step compiled with it)."""
    for i in range(Xb.shape[0]):
        sgd_step(w1, b1, w2, b2, w3, b3, Xb[i], Tb[i], lr)


def hand_written(X: torch.Tensor, y: torch.Tensor, epoch) -> None:
    """EPOCHS of `epoch` over the study net's initial weights, batches of BATCH in a fresh order each epoch."""
    params = [p.detach().clone() for p in study_net().parameters()]
    onehot = nn.functional.one_hot(y, 4).float()
    for _ in range(EPOCHS):
        perm = torch.randperm(len(y))
        epoch(X[perm].view(-1, BATCH, X.shape[1]), onehot[perm].view(-1, BATCH, 4), *params, LR)


def compiled_epoch():
    """epoch_of(sgd_step compiled by torch.compile: inductor, C++ wrapper); its first call compiles."""
    import torch._inductor.config as inductor

    inductor.cpp_wrapper = True
    return epoch_of(torch.compile(sgd_step, fullgraph=True, dynamic=False))


def hand_numpy_step(X: np.ndarray, y: np.ndarray) -> None:
    """The same step in NumPy float32, whose per-call cost on tiny arrays is a fraction of torch's."""
    w1, b1, w2, b2, w3, b3 = (p.detach().numpy().T.copy() if p.dim() == 2 else p.detach().numpy().copy()
                              for p in study_net().parameters())
    onehot = np.eye(4, dtype=np.float32)[y]
    rng = np.random.default_rng(0)
    for _ in range(EPOCHS):
        perm = rng.permutation(len(y))
        Xp, Tp = X[perm], onehot[perm]
        for i in range(0, len(y), BATCH):
            xb, tb = Xp[i : i + BATCH], Tp[i : i + BATCH]
            h1 = np.maximum(xb @ w1 + b1, 0)
            h2 = np.maximum(h1 @ w2 + b2, 0)
            z = h2 @ w3 + b3
            e = np.exp(z - z.max(1, keepdims=True))
            g3 = (e / e.sum(1, keepdims=True) - tb) * (LR / len(xb))
            g2 = (g3 @ w3.T) * (h2 > 0)
            g1 = (g2 @ w2.T) * (h1 > 0)
            w3 -= h2.T @ g3
            b3 -= g3.sum(0)
            w2 -= h1.T @ g2
            b2 -= g2.sum(0)
            w1 -= xb.T @ g1
            b1 -= g1.sum(0)


def fused_numba(X: torch.Tensor, y: torch.Tensor) -> None:
    """EPOCHS of the fused epoch (musicgenre.fused.FusedSGD, as `train` runs it: forward, loss, backward and
    SGD in one compiled call)."""
    net = FusedSGD(TrainConfig(lr=LR), GenreNet(study_net(), (X.shape[1],)), X, y, batch_sizes(len(y), BATCH))
    for _ in range(EPOCHS):
        net.epoch(torch.randperm(len(y)))


def numba_compile_seconds() -> tuple[float, float]:
    """Seconds to compile the fused epoch with an empty numba cache, then to load it from that cache
    (each in a fresh process, numba's import included; the process start-up and torch's import are not)."""
    script = ("import time, numpy as np; from musicgenre.fused import compiled_epoch; t0 = time.perf_counter(); "
              "w = (np.ones((2, 2), np.float32),); b = (np.zeros(2, np.float32),); x = np.ones((2, 2), np.float32); "
              "compiled_epoch()(x, np.zeros(2, np.int64), np.arange(2), np.array([2]), w, b, 0.1, 0.0, 0.0); "
              "print(time.perf_counter() - t0)")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        return tuple(float(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                          check=True).stdout) for _ in range(2))


def main() -> list[dict]:
    from threadpoolctl import threadpool_limits

    split = load_split(DATA, "train", "mfcc")
    X, y = torch.from_numpy(split.X), torch.from_numpy(split.y)
    steps = EPOCHS * -(-len(y) // BATCH)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        timed(lambda: study_step(X, y))  # warm-up
        ref, _ = timed(lambda: study_step(X, y), 3)
        rows = []
        for name, fn, args in [
            ("our loop (resident tensors, foreach SGD)", resident_step, (X, y)),
            ("gradients by hand, eager torch", hand_written, (X, y, epoch_of(sgd_step))),
            ("gradients by hand, TorchScript", hand_written, (X, y, scripted_epoch)),
            ("gradients by hand, torch.compile", hand_written, (X, y, compiled_epoch())),
            ("gradients by hand, NumPy", hand_numpy_step, (split.X, split.y)),
            ("fused epoch compiled by numba (what train runs)", fused_numba, (X, y)),
        ]:
            first, _ = timed(lambda: fn(*args))  # the first call: compilation, caches
            ours, _ = timed(lambda: fn(*args), 3)
            r = {"benchmark": f"mlp step floor: {name} vs study step", "reference_s": round(ref, 3),
                 "ours_s": round(ours, 3), "ratio": round(ref / ours, 2),
                 "reference_us_per_step": round(ref / steps * 1e6), "ours_us_per_step": round(ours / steps * 1e6),
                 "first_call_s": round(first, 2)}
            rows.append(r)
        compile_s, load_s = numba_compile_seconds()
        rows[-1].update(numba_compile_s=round(compile_s, 2), numba_cached_load_s=round(load_s, 2))
        for r in rows:
            print(r, flush=True)
    torch.set_num_threads(before)
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
