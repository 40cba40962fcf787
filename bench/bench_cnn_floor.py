"""Where the floor is for one bf16 training step of the study's CNN (batch 16, every core), against the
study's step (float32, default memory format, autograd, torch.optim.SGD), same batch every step, no
DataLoader: ours as `train` steps (bf16 autocast, channels-last, autograd, foreach SGD); the same step
with its gradients written by hand (the kernels autograd calls, without autograd, autocast or an
optimizer object); and the sum of that step's kernels, each timed alone, over and over on the same
tensors (so with warm caches): weight casts to bf16 and gradients back to float32, convolutions
forward and backward, ReLU and max-pool forward and backward, the head's matrix products, the loss
gradient and the SGD update. It says how far a 2x target for this CNN is from what this CPU's kernels
cost, and how much of a step is PyTorch's per-operation work. Run: PYTHONPATH=src python bench/bench_cnn_floor.py"""

from __future__ import annotations

import copy
import sys
from collections import defaultdict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bench_training import CNN, row, study_model, synthetic_melgrams, timed
from musicgenre.models import GenreNet, build_model
from musicgenre.training import autocast, make_optimizer

STEPS, REPEATS, BF16 = 50, 5, torch.bfloat16
aten = torch.ops.aten


def step_seconds(steps: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Seconds STEPS calls of each step take, best of REPEATS interleaved rounds (load on this shared
    machine then falls on all alike)."""
    best = {}
    for name, step in steps.items():
        step()
        best[name] = float("inf")
    for _ in range(REPEATS):
        for name, step in steps.items():
            best[name] = min(best[name], timed(lambda step=step: [step() for _ in range(STEPS)])[0])
    return best


def autograd_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                  precision: str) -> Callable[[], None]:
    """A training step as `train` runs it (and, in fp32 with plain torch.optim.SGD, as the study did)."""
    loss_fn, cpu = nn.CrossEntropyLoss(), torch.device("cpu")

    def step() -> None:
        with autocast(cpu, precision):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def hand_step(model: GenreNet, x: torch.Tensor, y: torch.Tensor, run: Callable[[str, Callable], object]) -> None:
    """One bf16 SGD step of our (channels-last, identity-standardised) MelCNN, gradients by hand: each
    kernel as `run(kind, kernel)`, which calls it (and, for the floor, also times it alone)."""
    layers = [*model.body.features, *model.body.head]
    params = [p for m in layers if isinstance(m, (nn.Conv2d, nn.Linear)) for p in (m.weight, m.bias)]
    with torch.no_grad():
        h = run("casts", lambda: x.unsqueeze(1).contiguous(memory_format=torch.channels_last).to(BF16))
        saved = []
        for layer in layers:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                w, b = run("casts", lambda: layer.weight.to(BF16)), run("casts", lambda: layer.bias.to(BF16))
                if isinstance(layer, nn.Conv2d):
                    out = run("convolutions", lambda: F.conv2d(h, w, b, padding=2))
                else:
                    out = run("head matmuls", lambda: torch.addmm(b, h, w.t()))
                saved.append((h, w))
            elif isinstance(layer, nn.ReLU):
                out = run("relu + max-pool", lambda: torch.relu(h))
                saved.append(out)
            elif isinstance(layer, nn.MaxPool2d):
                out, idx = run("relu + max-pool", lambda: aten.max_pool2d_with_indices(h, [2, 2], [2, 2]))
                saved.append((h, idx))
            else:  # Flatten
                out = run("head matmuls", lambda: h.flatten(1))
                saved.append(h.shape)
            h = out
        logits = h.float()
        g = run("loss + SGD", lambda: ((torch.softmax(logits, 1) - F.one_hot(y, logits.shape[1])) / len(y)).to(BF16))
        grads = []
        for i, (layer, ctx) in reversed(list(enumerate(zip(layers, saved)))):
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                h, w = ctx
                if isinstance(layer, nn.Conv2d):
                    mask = [i > 0, True, True]  # no gradient for the input clip
                    g, gw, gb = run("convolutions", lambda: aten.convolution_backward(
                        g, h, w, [w.shape[0]], [1, 1], [2, 2], [1, 1], False, [0, 0], 1, mask))
                else:
                    gw, gb = run("head matmuls", lambda: g.t() @ h), run("head matmuls", lambda: g.sum(0))
                    g = run("head matmuls", lambda: g @ w)
                grads[:0] = [run("casts", lambda: gw.float()), run("casts", lambda: gb.float())]
            elif isinstance(layer, nn.ReLU):
                g = run("relu + max-pool", lambda: aten.threshold_backward(g, ctx, 0))
            elif isinstance(layer, nn.MaxPool2d):
                g = run("relu + max-pool", lambda: aten.max_pool2d_with_indices_backward(
                    g, ctx[0], [2, 2], [2, 2], [0, 0], [1, 1], False, ctx[1]))
            else:  # Flatten
                g = g.reshape(ctx)
        run("loss + SGD", lambda: torch._foreach_add_(params, grads, alpha=-CNN.lr))


def kernel_floor(model: GenreNet, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Seconds of each kind of kernel in one hand step, each kernel timed alone (best of REPEATS x 20 calls)."""
    seconds: dict[str, float] = defaultdict(float)

    def run(kind: str, kernel: Callable) -> object:
        seconds[kind] += timed(lambda: [kernel() for _ in range(20)], REPEATS)[0] / 20
        return kernel()

    hand_step(copy.deepcopy(model), x, y, run)
    return dict(seconds)


def main() -> list[dict]:
    data = synthetic_melgrams(CNN.batch_size)
    x, y = torch.from_numpy(data.X), torch.from_numpy(data.y)
    torch.manual_seed(0)
    ours, hand = build_model(CNN.model, 4), build_model(CNN.model, 4)
    torch.manual_seed(0)
    study = study_model(CNN.model, 4)

    # the hand step computes what autograd does: the same update from the same weights, to bf16 rounding
    check = copy.deepcopy(ours)
    autograd_step(check, make_optimizer(CNN, check.parameters()), x, y, "bf16")()
    hand.load_state_dict(ours.state_dict())
    hand_step(hand, x, y, lambda kind, kernel: kernel())
    with torch.no_grad():
        moved = [(a - o, b - o) for a, b, o in zip(check.parameters(), hand.parameters(), ours.parameters())]
        update_diff = max(float((da - db).norm() / da.norm()) for da, db in moved)

    s = step_seconds({
        "study": autograd_step(study, torch.optim.SGD(study.parameters(), lr=CNN.lr), x, y, "fp32"),
        "ours": autograd_step(ours, make_optimizer(CNN, ours.parameters()), x, y, "bf16"),
        "hand": lambda: hand_step(hand, x, y, lambda kind, kernel: kernel()),
    })
    parts = kernel_floor(ours, x, y)
    name = f"mel-cnn {STEPS} steps of batch 16 vs the study's (float32)"
    return [
        row(f"{name}: ours, bf16 (as train steps)", s["study"], s["ours"]),
        row(f"{name}: bf16, gradients by hand (no autograd)", s["study"], s["hand"],
            update_rel_diff_vs_autograd=float(f"{update_diff:.1e}")),
        row(f"{name}: the sum of the hand step's kernels, each timed alone", s["study"], STEPS * sum(parts.values()),
            **{f"{k} ms/step": round(v * 1e3, 2) for k, v in parts.items()}),
    ]


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
