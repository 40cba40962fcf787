"""Fused CPU training of the plain MLPs (Linear/ReLU chains) with SGD: one compiled call per epoch.
At batch 16 a step of the study's 7,716-parameter net is a few microseconds of arithmetic inside about
20 tensor operations, so PyTorch's per-operation overhead, not arithmetic, sets the pace
(bench/bench_step_floor.py). Compiled by numba (which librosa already brings), the whole epoch (forward,
softmax cross-entropy, backward, SGD update) costs what its arithmetic costs. It updates the model's own
parameter tensors in place, so validation, best-epoch keeping and saving stay PyTorch's; it computes the
same steps as autograd and torch.optim.SGD (tests/test_fused.py), up to float rounding."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import torch
from torch import nn

from musicgenre.config import TrainConfig
from musicgenre.models import GenreNet, layer_chain


def can_fuse(cfg: TrainConfig, model: GenreNet, device: torch.device) -> bool:
    """Whether the compiled epoch trains `model` as `cfg` asks: on the CPU in float32 with SGD, a constant
    learning rate and no mixup, and a body that alternates Linear (with bias) and ReLU, ending in a Linear,
    whose weights and biases are all the model's parameters, each used once and trained (no tied,
    frozen or parametrized weights, no trainable input transform) and no calibration temperature."""
    chain = layer_chain(model) or []
    linears = chain[::2]
    plain = (len(chain) % 2 == 1 and all(type(m) is nn.Linear and m.bias is not None for m in linears)
             and all(type(m) is nn.ReLU for m in chain[1::2]))
    params = [p for m in linears for p in (m.weight, m.bias)] if plain else []
    own = (len({id(p) for p in params}) == len(params) == len(list(model.parameters()))
           and {id(p) for p in params} == {id(p) for p in model.parameters()}
           and all(isinstance(p, nn.Parameter) and p.requires_grad and p.dtype == torch.float32 for p in params))
    return (plain and own and float(model.temperature) == 1.0 and cfg.fused and device.type == "cpu"
            and cfg.optimizer == "SGD" and cfg.precision == "fp32" and cfg.scheduler == "none" and cfg.mixup == 0)


def sgd_epoch(X: np.ndarray, y: np.ndarray, order: np.ndarray, sizes: np.ndarray, weights: tuple[np.ndarray, ...],
              biases: tuple[np.ndarray, ...], lr: float, weight_decay: float, smoothing: float) -> float:
    """One epoch over X[order] in batches of `sizes`: Linear layers (weights (out, in), biases), ReLU between
    them, cross-entropy with label smoothing averaged over each batch, and SGD with weight decay updating
    weights and biases in place. Returns the sum of the examples' losses."""
    n_layers = len(weights)
    n_classes = biases[n_layers - 1].shape[0]
    acts = [X[:1] for _ in range(n_layers + 1)]  # each layer's input, then the logits
    total = 0.0
    start = 0
    for size in sizes:
        idx = order[start : start + size]
        start += size
        acts[0] = X[idx]
        for layer in range(n_layers):
            z = acts[layer] @ weights[layer].T
            b = biases[layer]
            for i in range(size):
                for j in range(z.shape[1]):
                    v = z[i, j] + b[j]
                    z[i, j] = v if layer == n_layers - 1 or not v <= 0 else 0  # ReLU; NaN stays NaN, as in torch
            acts[layer + 1] = z
        logits = acts[n_layers]
        g = np.empty_like(logits)  # gradient of the batch's mean loss, from the logits back
        for i in range(size):
            lse = logits[i].max()
            lse += np.log(np.exp(logits[i] - lse).sum())
            t = y[idx[i]]
            total += lse - (1 - smoothing) * logits[i, t] - smoothing * logits[i].mean()
            for j in range(n_classes):
                target = smoothing / n_classes + (1 - smoothing if j == t else 0)
                g[i, j] = (np.exp(logits[i, j] - lse) - target) / size
        for layer in range(n_layers - 1, -1, -1):
            a, w, b = acts[layer], weights[layer], biases[layer]
            gw = g.T @ a
            gb = g.sum(axis=0)
            if layer > 0:  # through the weights as they were, and the ReLU that made a
                g = g @ w
                for i in range(size):
                    for j in range(g.shape[1]):
                        if a[i, j] <= 0:
                            g[i, j] = 0
            for i in range(w.shape[0]):
                for j in range(w.shape[1]):
                    w[i, j] -= lr * (gw[i, j] + weight_decay * w[i, j])
            for j in range(b.shape[0]):
                b[j] -= lr * (gb[j] + weight_decay * b[j])
    return total


@cache
def compiled_epoch() -> Callable[..., float]:
    """sgd_epoch compiled by numba (imported here: start-up stays fast), cached on disk after the first compile."""
    from numba import njit

    try:
        return njit(cache=True)(sgd_epoch)
    except RuntimeError:  # numba finds no writable cache directory: compile in memory, once per process
        return njit(sgd_epoch)


class FusedSGD:
    """The model's Linear layers (numpy views of its parameters) and the standardised training set, for
    `epoch` to train in place."""

    def __init__(self, cfg: TrainConfig, model: GenreNet, X: torch.Tensor, y: torch.Tensor, sizes: list[int]) -> None:
        with torch.no_grad():  # the body's input, computed once
            self.X = model.standardize(X).float().contiguous().numpy()
        self.y = y.numpy()
        linears = [m for m in layer_chain(model) if isinstance(m, nn.Linear)]
        self.weights = tuple(m.weight.detach().numpy() for m in linears)
        self.biases = tuple(m.bias.detach().numpy() for m in linears)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.cfg = cfg
        no_batches = np.zeros(0, dtype=np.int64)  # compiled, or loaded from numba's cache, here: not in epoch 1's time
        compiled_epoch()(self.X, self.y, no_batches, no_batches, self.weights, self.biases, 0.0, 0.0, 0.0)

    def epoch(self, order: torch.Tensor) -> float:
        """Train one epoch over the examples in `order`; the mean loss."""
        total = compiled_epoch()(self.X, self.y, order.numpy(), self.sizes, self.weights, self.biases,
                                 self.cfg.lr, self.cfg.weight_decay, self.cfg.label_smoothing)
        return total / len(self.y)
