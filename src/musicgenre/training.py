"""Training: data resident as tensors on the device, batches drawn by index, best epoch kept."""

from __future__ import annotations

import inspect
import random
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from musicgenre.augment import augment_batch
from musicgenre.config import TrainConfig
from musicgenre.datasets import Dataset
from musicgenre.errors import MusicGenreError
from musicgenre.metrics import classification_metrics, macro_f1
from musicgenre.models import GenreNet, build_model, model_features


@dataclass
class EpochRecord:
    """One epoch's figures, as shown in progress and saved in history."""

    epoch: int
    loss: float
    val_accuracy: float | None
    val_f1: float | None
    seconds: float  # training time of this epoch, validation excluded


@dataclass
class TrainResult:
    """A trained model (weights of the best epoch) with what produced it and how it did."""

    model: GenreNet
    config: TrainConfig
    classes: tuple[str, ...]
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    train_seconds: float = 0.0
    metrics: dict | None = None  # validation metrics of the kept model


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA where there is none is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MusicGenreError("device 'cuda' asked for, but no CUDA GPU is available here")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed every generator a run draws from."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    """The torch.optim optimizer named in the config, with its lr and weight decay."""
    cls = getattr(torch.optim, cfg.optimizer)
    kwargs: dict = {"lr": cfg.lr}
    if cfg.weight_decay:
        if "weight_decay" not in inspect.signature(cls).parameters:
            raise MusicGenreError(f"optimizer {cfg.optimizer} has no weight decay")
        kwargs["weight_decay"] = cfg.weight_decay
    return cls(params, **kwargs)


def fit_standardization(model: GenreNet, X: np.ndarray) -> None:
    """Set the model's input mean/std from training features (per MFCC number or per mel band)."""
    flat = X.reshape(-1, X.shape[-1]).astype(np.float64)
    model.mean.copy_(torch.from_numpy(flat.mean(axis=0)))
    model.std.copy_(torch.from_numpy(np.maximum(flat.std(axis=0), 1e-6)))


@torch.inference_mode()
def predict_logits(model: nn.Module, X: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Logits for all rows, in eval mode, in a few large batches."""
    model.eval()
    return torch.cat([model(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])


def train(
    cfg: TrainConfig,
    train_set: Dataset,
    val_set: Dataset | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """Train `cfg.model` on `train_set`; keep the epoch with the best validation macro F1
    (the last epoch when there is no validation split)."""
    if model_features(cfg.model) != train_set.features:
        raise MusicGenreError(f"model {cfg.model} reads {model_features(cfg.model)} features, not {train_set.features}")
    if cfg.seed is None:
        cfg = replace(cfg, seed=random.SystemRandom().randrange(2**31))
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    classes = train_set.classes
    model = build_model(cfg.model, len(classes))
    if cfg.standardize:
        fit_standardization(model, train_set.X)
    model.to(device)

    X = torch.from_numpy(train_set.X).to(device)
    y = torch.from_numpy(train_set.y).to(device)
    Xv = torch.from_numpy(val_set.X).to(device) if val_set is not None else None
    n, bs = len(y), cfg.batch_size
    steps = (n + bs - 1) // bs
    opt = make_optimizer(cfg, model.parameters())
    sched = None
    if cfg.scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    elif cfg.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    gen = torch.Generator().manual_seed(cfg.seed)

    result = TrainResult(model=model, config=cfg, classes=classes)
    best_f1, best_state, since_best = -1.0, None, 0
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        total = torch.zeros((), device=device)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            xb, yb = augment_batch(X[idx], y[idx], cfg, len(classes), gen)
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
            if cfg.scheduler == "onecycle":
                sched.step()
        if cfg.scheduler == "cosine":
            sched.step()
        epoch_loss = float(total) / n  # the one host sync of the epoch
        seconds = time.perf_counter() - t0
        result.train_seconds += seconds

        acc = f1 = None
        if Xv is not None:
            pred = predict_logits(model, Xv).argmax(1).cpu().numpy()
            acc = float((pred == val_set.y).mean())
            f1 = macro_f1(val_set.y, pred, len(classes))
        record = EpochRecord(epoch, epoch_loss, acc, f1, seconds)
        result.history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if f1 is None or f1 > best_f1:
            best_f1, since_best, result.best_epoch = (f1 if f1 is not None else -1.0), 0, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since_best += 1
            if cfg.patience is not None and since_best >= cfg.patience:
                break

    model.load_state_dict(best_state)
    model.eval()
    if val_set is not None:
        result.metrics = evaluate_model(model, val_set)
    return result


def evaluate_model(model: nn.Module, dataset: Dataset) -> dict:
    """Full classification metrics of a model on a dataset split."""
    device = next(model.parameters()).device
    logits = predict_logits(model, torch.from_numpy(dataset.X).to(device))
    return classification_metrics(dataset.y, logits.argmax(1).cpu().numpy(), dataset.classes)


def train_seeds(
    cfg: TrainConfig,
    seeds: list[int],
    train_set: Dataset,
    val_set: Dataset | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> list[TrainResult]:
    """One training run per seed of the same configuration, each as `train` would give it."""
    return [train(replace(cfg, seed=s), train_set, val_set, on_epoch) for s in seeds]
