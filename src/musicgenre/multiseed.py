"""Several seeds of one MLP configuration trained together: each Linear's weights stacked to
(S, in, out) and biases to (S, out), every layer one batched matmul (baddbmm) over the seeds, the
per-seed losses summed (seeds do not interact, so each gets exactly its own gradient) and one
elementwise torch.optim optimizer stepping the stacked tensors, which is S independent optimizers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from musicgenre.config import TrainConfig
from musicgenre.cudagraph import GraphedStep, can_graph
from musicgenre.datasets import Dataset
from musicgenre.models import GenreNet, layer_chain
from musicgenre.training import (
    BestKeeper,
    EpochRecord,
    TrainResult,
    as_tensors,
    autocast,
    batch_sizes,
    finite_weights,
    kept_metrics,
    make_optimizer,
    make_scheduler,
    new_model,
    run_epoch,
    val_scores,
)

def can_stack(model: GenreNet) -> bool:
    """Whether seeds of this model can train stacked (convolutions, BatchNorm, dropout fall back to a loop)."""
    return layer_chain(model) is not None


class StackedChain:
    """S models of one Linear/elementwise chain as batched tensors: per Linear a weight (S, in, out)
    (stored transposed: baddbmm runs faster on it) and a bias (S, out); GenreNet's input transform,
    mean/std (S, F) and temperature (S,) applied as GenreNet applies them."""

    def __init__(self, models: list[GenreNet]) -> None:
        chains = [layer_chain(m) for m in models]
        self.steps: list[tuple[nn.Module, torch.Tensor | None, torch.Tensor | None]] = []
        for layers in zip(*chains):
            if isinstance(layers[0], nn.Linear):
                w = torch.stack([m.weight.detach().T for m in layers]).requires_grad_()
                b = None if layers[0].bias is None else torch.stack([m.bias.detach() for m in layers]).requires_grad_()
                self.steps.append((layers[0], w, b))
            else:
                self.steps.append((layers[0], None, None))
        self.params = [t for _, w, b in self.steps for t in (w, b) if t is not None]
        self.prepare = models[0].prepare  # fixed, the same for every seed of one architecture
        self.mean = torch.stack([m.mean for m in models])
        self.std = torch.stack([m.std for m in models])
        self.temperature = torch.stack([m.temperature for m in models])

    def standardize(self, X: torch.Tensor) -> torch.Tensor:
        """(N, F) inputs -> (S, N, F), standardised with each seed's statistics."""
        return (self.prepare(X) - self.mean[:, None]) / self.std[:, None]

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """(S, B, F) standardised inputs -> (S, B, classes) logits."""
        for layer, w, b in self.steps:
            if w is None:
                z = layer(z)
            else:
                z = torch.bmm(z, w) if b is None else torch.baddbmm(b.unsqueeze(1), z, w)
        return z / self.temperature[:, None, None]

    def load_into(self, model: GenreNet, s: int, params: list[torch.Tensor]) -> None:
        """Copy seed s of `params` (tensors shaped like `self.params`) into its model's Linear layers."""
        values = iter(params)
        with torch.no_grad():
            for linear, (_, w, b) in zip(layer_chain(model), self.steps):
                if w is not None:
                    linear.weight.copy_(next(values)[s].T)
                    if b is not None:
                        linear.bias.copy_(next(values)[s])


def train_stacked(cfg: TrainConfig, seeds: list[int], train_set: Dataset, val_set: Dataset | None,
                  on_epoch: Callable[[EpochRecord], None] | None, device: torch.device) -> list[TrainResult]:
    """Train one model per seed at once on `device` (`training.train_seeds` picks it and the CPU threads);
    per seed the same initial weights, batch order, best-epoch copy and early stop as
    `train(replace(cfg, seed=s))`. Epoch seconds are the batch's time / S."""
    S, classes = len(seeds), train_set.classes
    models = [new_model(cfg, s, train_set, device) for s in seeds]
    net = StackedChain(models)

    X, y = as_tensors(train_set, device)
    Z = net.standardize(X)  # (S, n, F): standardised once, batches gathered from it
    Zv, yv = None, None
    if val_set is not None:
        Xv, yv = as_tensors(val_set, device)
        Zv = net.standardize(Xv)
    n, sizes = len(y), batch_sizes(len(y), cfg.batch_size)
    weights = torch.tensor(sizes, dtype=torch.float32, device=device)  # each batch's share of the epoch's loss
    graphs = can_graph(cfg, device)
    opt = make_optimizer(cfg, net.params, device if graphs else None)
    sched = make_scheduler(cfg, opt, len(sizes))
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    rows = torch.arange(S, device=device)[:, None]

    def step(zb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """One step of every seed on its own (S, b, F) batch; returns each seed's mean loss, (S,)."""
        with autocast(device, cfg.precision):
            flat = nn.functional.cross_entropy(net(zb).flatten(0, 1), yb, reduction="none", label_smoothing=cfg.label_smoothing)
        loss = flat.view(S, -1).mean(1)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        return loss.detach()

    if graphs:
        step = GraphedStep(step)

    trained_on = {"device": str(device), "loop": "stacked, cuda graphs" if graphs else "stacked", "stacked_seeds": list(seeds),
                  "cpu_threads": torch.get_num_threads()}
    results = [TrainResult(model=m, config=replace(cfg, seed=s), classes=classes, trained_on=trained_on) for m, s in zip(models, seeds)]
    keepers = [BestKeeper(cfg.patience) for _ in seeds]
    active = list(range(S))  # seeds not yet stopped early
    best = [p.detach().clone() for p in net.params]
    best_pred: list[torch.Tensor | None] = [None] * S  # each seed's kept epoch's val predictions
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
        inputs = Z[rows, perms].split(sizes, dim=1)  # each (S, b, F): seed s's batch in its own order
        targets = [t.flatten() for t in y[perms].split(sizes, dim=1)]
        epoch_loss = run_epoch(cfg, step, zip(inputs, targets), sched, weights).tolist()  # the one host sync of the epoch's steps
        seconds = (time.perf_counter() - t0) / S

        acc = f1 = [None] * S
        finite, pred = finite_weights(net.params, S), None
        if Zv is not None:
            with torch.no_grad():
                out = net(Zv)
                finite &= out.reshape(S, -1).isfinite().all(1)  # outputs that are not numbers: diverged too
                pred = out.argmax(-1)
                acc, f1 = (t.tolist() for t in val_scores(pred, yv, len(classes)))
        finite = finite.tolist()
        for s in list(active):
            stop = not (math.isfinite(epoch_loss[s]) and finite[s])  # diverged: train keeps its best earlier epoch (or 0)
            record = EpochRecord(epoch, epoch_loss[s], None if stop else acc[s], None if stop else f1[s], seconds, seeds[s],
                                 diverged=stop)
            results[s].history.append(record)
            results[s].train_seconds += seconds
            if on_epoch is not None:
                on_epoch(record)
            if stop:
                active.remove(s)
            elif keepers[s].improved(epoch, f1[s]):
                for kept, p in zip(best, net.params):
                    kept[s].copy_(p.detach()[s])
                best_pred[s] = None if pred is None else pred[s]
            elif keepers[s].stop:
                active.remove(s)
        if not active:
            break

    for s, result in enumerate(results):
        result.best_epoch = keepers[s].best_epoch
        net.load_into(result.model, s, best)
        result.model.eval()
        if val_set is not None:
            result.metrics = kept_metrics(result.model, val_set, best_pred[s])
    return results
