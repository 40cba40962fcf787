"""Several seeds of one configuration trained together as one batched model: parameters stacked
to (S, ...) with torch.func.stack_module_state, the forward pass vmapped over seeds, the per-seed
losses summed (seeds do not interact, so each gets exactly its own gradient) and one elementwise
torch.optim optimizer stepping the stacked tensors, which is S independent optimizers."""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from musicgenre.config import TrainConfig
from musicgenre.datasets import Dataset
from musicgenre.training import (
    BestKeeper, EpochRecord, TrainResult, as_tensors, cpu_threads, evaluate_model, make_optimizer,
    make_scheduler, new_model, resolve_device, val_scores,
)

# Layers that behave the same in train and eval mode and draw no random numbers: a model built only
# of these gives, stacked, what each seed's own `train` gives.
STACKABLE_LAYERS = (
    nn.Linear, nn.ReLU, nn.LeakyReLU, nn.GELU, nn.ELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.Flatten,
)


def can_stack(model: nn.Module) -> bool:
    """Whether every layer of the model is stackable (BatchNorm, dropout, convolutions fall back to a loop)."""
    leaves = [m for m in model.modules() if not list(m.children())]
    return all(isinstance(m, STACKABLE_LAYERS) for m in leaves)


def train_stacked(
    cfg: TrainConfig,
    seeds: list[int],
    train_set: Dataset,
    val_set: Dataset | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> list[TrainResult]:
    """Train one model per seed at once; per seed the same initial weights, batch order, best-epoch
    copy and early stop as `train(replace(cfg, seed=s))`. Epoch seconds are the batch's time / S."""
    device = resolve_device(cfg.device)
    with cpu_threads(device):
        return _train_stacked(cfg, list(seeds), train_set, val_set, on_epoch, device)


def _train_stacked(cfg, seeds, train_set, val_set, on_epoch, device) -> list[TrainResult]:
    S, classes = len(seeds), train_set.classes
    models = [new_model(cfg, s, train_set, device) for s in seeds]
    params, buffers = stack_module_state(models)
    template = copy.deepcopy(models[0]).to("meta")
    forward = vmap(lambda p, b, x: functional_call(template, (p, b), (x,)), in_dims=(0, 0, 0))
    predict = vmap(lambda p, b, x: functional_call(template, (p, b), (x,)), in_dims=(0, 0, None))

    X, y = as_tensors(train_set, device)
    Xv, yv = as_tensors(val_set, device) if val_set is not None else (None, None)
    n, bs = len(y), cfg.batch_size
    batch_sizes = torch.tensor([len(b) for b in torch.arange(n).split(bs)], dtype=torch.float32, device=device)
    opt = make_optimizer(cfg, list(params.values()))
    sched = make_scheduler(cfg, opt, len(batch_sizes))
    gens = [torch.Generator().manual_seed(s) for s in seeds]

    def seed_losses(logits: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """(S,) mean cross-entropy of each seed's batch."""
        flat = nn.functional.cross_entropy(
            logits.flatten(0, 1), yb.flatten(), reduction="none", label_smoothing=cfg.label_smoothing
        )
        return flat.view(S, -1).mean(1)

    results = [TrainResult(model=m, config=replace(cfg, seed=s), classes=classes) for m, s in zip(models, seeds)]
    keepers = [BestKeeper(cfg.patience) for _ in seeds]
    active = list(range(S))  # seeds not yet stopped early
    best = {k: v.detach().clone() for k, v in params.items()}
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
        losses = []
        for xb, yb in zip(X[perms].split(bs, dim=1), y[perms].split(bs, dim=1)):
            loss = seed_losses(forward(params, buffers, xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            losses.append(loss.detach())
            if cfg.scheduler == "onecycle":
                sched.step()
        if cfg.scheduler == "cosine":
            sched.step()
        epoch_loss = ((batch_sizes @ torch.stack(losses)) / n).tolist()
        seconds = (time.perf_counter() - t0) / S

        acc = f1 = [None] * S
        if Xv is not None:
            with torch.inference_mode():
                acc, f1 = (t.tolist() for t in val_scores(predict(params, buffers, Xv).argmax(-1), yv, len(classes)))
        for s in list(active):
            record = EpochRecord(epoch, epoch_loss[s], acc[s], f1[s], seconds)
            results[s].history.append(record)
            results[s].train_seconds += seconds
            if on_epoch is not None:
                on_epoch(record)
            if keepers[s].improved(epoch, f1[s]):
                for k, v in params.items():
                    best[k][s].copy_(v.detach()[s])
            elif keepers[s].stop:
                active.remove(s)
        if not active:
            break

    for s, result in enumerate(results):
        result.best_epoch = keepers[s].best_epoch
        result.model.load_state_dict({k: v[s] for k, v in best.items()}, strict=False)
        result.model.eval()
        if val_set is not None:
            result.metrics = evaluate_model(result.model, val_set)
    return results
