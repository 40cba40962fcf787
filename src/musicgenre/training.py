"""Training: data resident as tensors on the device, batches drawn by index, best epoch kept."""

from __future__ import annotations

import inspect
import math
import os
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from musicgenre.augment import augment_batch
from musicgenre.config import TrainConfig, check_seed, usable_cpus
from musicgenre.cudagraph import GraphedStep, can_graph, tensor_lr
from musicgenre.datasets import Dataset, check_dataset
from musicgenre.errors import MusicGenreError, SettingError
from musicgenre.fused import FusedSGD, can_fuse
from musicgenre.metrics import classification_metrics
from musicgenre.models import GenreNet, build_model, check_model_features, float32_default, model_features


@dataclass
class EpochRecord:
    """One epoch's figures, as shown in progress and saved in history."""

    epoch: int
    loss: float
    val_accuracy: float | None
    val_f1: float | None
    seconds: float  # training time of this epoch, validation excluded
    seed: int | None = None  # the run's seed: which run a record belongs to when several train at once
    diverged: bool = False  # its loss, weights or validation outputs turned NaN or infinite: the run stops here


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
    # how it was trained, recorded beside its config: the device and the loop ("fused", "pytorch", "stacked",
    # with ", cuda graphs"); a stacked run also lists the seeds trained with it, which its exact repeat needs
    # (stacking agrees with a seed trained alone to float rounding only, which epochs can grow)
    trained_on: dict = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for a GPU this machine lacks is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SettingError(f"device {name!r} asked for, but no CUDA GPU is available here")
    device = torch.device(name)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise SettingError(f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def training_device(cfg: TrainConfig, n_classes: int) -> torch.device:
    """The device a run trains on: `cfg.device`, where 'auto' picks CUDA when present, except for models the
    fused CPU epoch trains (fused.py): its 15-20 µs steps beat a GPU's, whose kernel launches alone cost more."""
    device = resolve_device(cfg.device)
    cpu = torch.device("cpu")
    if cfg.device == "auto" and device.type == "cuda" and can_fuse(cfg, probe_model(cfg, n_classes), cpu):
        return cpu
    return device


def trained_where(cfg: TrainConfig, n_classes: int) -> dict:
    """What of this machine decides the weights `cfg` trains to, beyond its settings and data: the device `train`
    puts it on here, and on the CPU its number of threads (another sums in another order)."""
    device = training_device(cfg, n_classes).type
    return {"device": device, "cpu_threads": train_threads(cfg.model)} if device == "cpu" else {"device": device}


def probe_model(cfg: TrainConfig, n_classes: int) -> GenreNet:
    """`cfg`'s model, built only to be looked at (which trainer takes it), without drawing from the caller's
    generator: `train` leaves it as it was."""
    with torch.random.fork_rng(devices=[]):
        return build_model(cfg.model, n_classes)


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The forward pass and loss in bf16 mixed precision when asked ("bf16"): matrix products and
    convolutions run in bfloat16, weights, gradients and the optimizer stay float32. No cast cache:
    each weight is cast once per forward anyway, and CUDA graphs cannot capture a cached cast."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False)


@contextmanager
def run_state(device: torch.device) -> Iterator[None]:
    """A run's own torch state meanwhile: float32 by default, gradients on and autocast off whatever the caller
    set (inference mode broke training, a float64 default or the caller's autocast changed it), and the
    generators it seeds (Python's, numpy's, torch's, the GPUs' where the run is on one or CUDA has started)
    put back as the caller had them after."""
    py_state, np_state = random.getstate(), np.random.get_state()
    on_gpu = device.type == "cuda" or torch.cuda.is_initialized()  # a run's seeding would start and seed them
    gpus = list(range(torch.cuda.device_count())) if on_gpu else []
    try:
        with (torch.random.fork_rng(devices=gpus), float32_default(), torch.inference_mode(False), torch.enable_grad(),
              torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False)):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def seed_everything(seed: int) -> None:
    """Seed every generator a run draws from."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(cfg: TrainConfig, params: Iterable[torch.Tensor], graph_device: torch.device | None = None) -> torch.optim.Optimizer:
    """The torch.optim optimizer named in the config, with its lr and weight decay; the foreach
    (multi-tensor) implementation, which updates all parameters in a few calls instead of one per tensor.
    For steps captured as CUDA graphs on `graph_device`, its state stays on that GPU (`capturable`),
    with the lr as a GPU tensor for Adam and AdamW (cudagraph.tensor_lr), which a cosine schedule updates in place."""
    cls = getattr(torch.optim, cfg.optimizer)
    accepted = inspect.signature(cls).parameters
    graphed = graph_device is not None
    kwargs: dict = {"lr": torch.tensor(cfg.lr, device=graph_device) if graphed and tensor_lr(cfg) else cfg.lr}
    if "foreach" in accepted:
        kwargs["foreach"] = True
    if graphed and "capturable" in accepted:
        kwargs["capturable"] = True
    if cfg.weight_decay:  # TrainConfig refuses it for an optimizer without it
        kwargs["weight_decay"] = cfg.weight_decay
    return cls(params, **kwargs)


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The configured learning-rate schedule (None for a constant rate)."""
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.scheduler == "onecycle":
        # cycle_momentum off: the schedule shapes the lr only, and leaves the configured optimizer as it is (it
        # would switch SGD's momentum on, and fails for optimizers without momentum or beta1, such as Adagrad)
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, cycle_momentum=False
        )
    return None


def fit_standardization(model: GenreNet, X: np.ndarray) -> None:
    """Set the model's input mean/std from training features after its fixed input transform
    (per MFCC number or per mel band)."""
    with torch.no_grad():
        flat = model.prepare(torch.from_numpy(X.reshape(-1, X.shape[-1]).astype(np.float64))).numpy()
    model.mean.copy_(torch.from_numpy(flat.mean(axis=0)))
    model.std.copy_(torch.from_numpy(np.maximum(flat.std(axis=0), 1e-6)))


@torch.inference_mode()
def predict_logits(model: nn.Module, X: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Logits for all rows in eval mode (the model's mode put back after), in float32 whatever autocast the
    caller has on, in batches of 64 (memory stays small for any number of rows)."""
    training = model.training
    model.eval()
    try:
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            return torch.cat([model(X[i : i + batch_size]) for i in range(0, max(len(X), 1), batch_size)])  # 0 rows: (0, C)
    finally:
        model.train(training)


MAX_THREADS = 1024  # far more than any CPU here; torch crashes on absurd thread counts (100000)


def train_threads(model: str) -> int:
    """CPU threads for training `model`: MUSICGENRE_THREADS when set; else 1 for the fully connected
    MFCC models (their ops are too small to share out: extra threads only wait on each other, and
    on a busy 2-core machine that made training 25x slower) and every core for the convolutional
    melgram models, whose convolutions do split well."""
    value = os.environ.get("MUSICGENRE_THREADS")
    if value is None:
        return 1 if model_features(model) == "mfcc" else usable_cpus()
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_THREADS):
        raise MusicGenreError(f"MUSICGENRE_THREADS={value!r}: give a number of threads from 1 to {MAX_THREADS}")
    return int(value)


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run the block with `n` intra-op CPU threads (torch's and the BLAS/OpenMP pools'), restoring them after."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)


def val_scores(pred: torch.Tensor, y: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy and macro F1 (over the classes in the truth or the predictions, as in metrics.macro_f1) of predictions
    shaped (..., N), one pair per leading index: one confusion-matrix count for any number of models."""
    lead = pred.shape[:-1]
    rows = pred.reshape(-1, pred.shape[-1])
    offset = torch.arange(len(rows), device=pred.device)[:, None] * n_classes**2
    cm = torch.bincount((offset + y * n_classes + rows).flatten(), minlength=len(rows) * n_classes**2)
    cm = cm.view(len(rows), n_classes, n_classes).double()
    tp = cm.diagonal(dim1=1, dim2=2)
    denom = cm.sum(1) + cm.sum(2)  # predicted + true counts of each class
    f1 = (2 * tp / denom.clamp(min=1)).sum(1) / (denom > 0).sum(1)  # a class of neither has tp = denom = 0
    acc = tp.sum(1) / pred.shape[-1]
    return acc.view(lead), f1.view(lead)


@dataclass
class BestKeeper:
    """Tracks the best validation F1 so far and the early-stopping count."""

    patience: int | None
    best_f1: float = -1.0
    best_epoch: int = 0
    since_best: int = 0

    def improved(self, epoch: int, f1: float | None) -> bool:
        """Whether this epoch is the new best (always, without validation)."""
        if f1 is None or f1 > self.best_f1:
            self.best_f1, self.best_epoch, self.since_best = (f1 if f1 is not None else -1.0), epoch, 0
            return True
        self.since_best += 1
        return False

    @property
    def stop(self) -> bool:
        return self.patience is not None and self.since_best >= self.patience


def finite_weights(params: Iterable[torch.Tensor], models: int = 1) -> torch.Tensor:
    """(models,) bools: whether each model's weights (and buffers, such as batch norm's running variance) are
    all numbers. The epoch's loss alone can miss it: its last step can turn them infinite. `params` are one
    model's, or stacked over `models` on dim 0."""
    return torch.stack([p.detach().reshape(models, -1).isfinite().all(1) for p in params]).all(0)


def resolve_seed(cfg: TrainConfig) -> TrainConfig:
    """The config with a drawn seed when it has none (recorded, so the run can be repeated); drawn below 2**31,
    half of the seeds' range, so that the seeds after it of a multi-seed run (--seeds N) stay in range."""
    return cfg if cfg.seed is not None else replace(cfg, seed=random.SystemRandom().randrange(2**31))


def check_settings(cfg: TrainConfig, train_set: Dataset, val_set: Dataset | None) -> None:
    """The model must read the configuration's features and the data's (a run saved otherwise could not be
    loaded), augmentation must fit them, early stopping needs a validation split to stop on, and a classifier
    needs clips of two genres at least."""
    if not isinstance(cfg, TrainConfig):
        raise MusicGenreError(f"the configuration must be a TrainConfig (TrainConfig.from_dict for a dict), not {type(cfg).__name__}")
    check_dataset(train_set, "train_set")
    if val_set is not None:
        check_dataset(val_set, "val_set")
    if len(np.unique(train_set.y)) < 2:
        raise MusicGenreError(f"the {train_set.split} split holds clips of one genre only "
                              f"({train_set.classes[train_set.y[0]]!r}): a classifier needs at least two")
    features = model_features(cfg.model)
    if cfg.features != features:
        raise SettingError(f"model {cfg.model} reads {features} features, but the configuration says "
                           f"features={cfg.features!r}: set features={features!r}")
    check_model_features(cfg.model, train_set.features)
    if val_set is not None and (val_set.features, val_set.classes) != (train_set.features, train_set.classes):
        raise MusicGenreError(f"the {val_set.split} split's {val_set.features} features of classes {', '.join(val_set.classes)} "
                              f"do not match the train split's {train_set.features} features of classes "
                              f"{', '.join(train_set.classes)} (load it with the train split's classes)")
    if cfg.spec_augment and features != "melgram":
        raise SettingError(f"spec_augment (--spec-augment) masks melgram bands and frames: it does nothing to {features} features")
    if cfg.patience is not None and val_set is None:
        raise SettingError("patience (--patience) stops when the validation F1 stops improving, and there is no "
                           "val split to score: leave it out, or add a val split")


def new_model(cfg: TrainConfig, seed: int, train_set: Dataset, device: torch.device) -> GenreNet:
    """The initial model of a seeded run (the same for `train` and the stacked multi-seed path)."""
    seed_everything(seed)
    model = build_model(cfg.model, len(train_set.classes))
    if cfg.standardize:
        fit_standardization(model, train_set.X)
    return model.to(device)


def as_tensors(dataset: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A split's features and labels, resident on the device for the whole run."""
    return torch.from_numpy(dataset.X).to(device), torch.from_numpy(dataset.y).to(device)  # arrays as torch takes them


def batch_sizes(n: int, batch_size: int) -> list[int]:
    """The sizes of an epoch's batches: `batch_size` each and the rest last, except that a last batch of
    one example joins the one before it (batch norm cannot train on a single example)."""
    sizes = [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    if len(sizes) > 1 and sizes[-1] == 1:
        sizes[-2:] = [sizes[-2] + 1]
    return sizes


def check_trainable(cfg: TrainConfig, model: nn.Module, n: int) -> None:
    """A model with batch norm needs batches of at least two examples."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()) and min(n, cfg.batch_size) < 2:
        raise MusicGenreError(
            f"model {cfg.model} has batch norm, which cannot train on batches of one example "
            f"({n} training clips, batch size {cfg.batch_size}): use at least 2 of each"
        )


def run_epoch(cfg: TrainConfig, step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
              batches: Iterable[tuple[torch.Tensor, torch.Tensor]], sched: torch.optim.lr_scheduler.LRScheduler | None,
              weights: torch.Tensor) -> torch.Tensor:
    """One epoch of `step` over `batches` (`weights`: their sizes) with the schedule's steps; the epoch's mean
    loss over its examples (one per seed for stacked steps), left on the device: no host sync per step."""
    losses = []
    for xb, yb in batches:
        losses.append(step(xb, yb))
        if cfg.scheduler == "onecycle":
            sched.step()
    if cfg.scheduler == "cosine":
        sched.step()
    return weights @ torch.stack(losses) / weights.sum()


def train(
    cfg: TrainConfig,
    train_set: Dataset,
    val_set: Dataset | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """Train `cfg.model` on `train_set`; keep the epoch with the best validation macro F1
    (the last epoch when there is no validation split). A loss, weights or validation outputs that turn NaN or infinite stop training
    at that epoch; if that is epoch 1, the initial weights are kept (best_epoch 0: nothing learned)."""
    check_settings(cfg, train_set, val_set)
    cfg = resolve_seed(cfg)
    device = training_device(cfg, len(train_set.classes))
    with cpu_threads(train_threads(cfg.model)), run_state(device):
        return _train(cfg, train_set, val_set, on_epoch, device)


def _train(cfg, train_set, val_set, on_epoch, device) -> TrainResult:
    classes = train_set.classes
    model = new_model(cfg, cfg.seed, train_set, device)
    X, y = as_tensors(train_set, device)
    Xv, yv = as_tensors(val_set, device) if val_set is not None else (None, None)
    check_trainable(cfg, model, len(y))
    n, sizes = len(y), batch_sizes(len(y), cfg.batch_size)
    weights = torch.tensor(sizes, dtype=torch.float32, device=device)  # each batch's share of the epoch's loss
    graphs = can_graph(cfg, device)
    opt = make_optimizer(cfg, model.parameters(), device if graphs else None)
    sched = make_scheduler(cfg, opt, len(sizes))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    gen = torch.Generator().manual_seed(cfg.seed)
    fused = FusedSGD(cfg, model, X, y, sizes) if can_fuse(cfg, model, device) else None

    def step(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        with autocast(device, cfg.precision):
            loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    if graphs:
        step = GraphedStep(step)

    loop = "fused" if fused is not None else "pytorch, cuda graphs" if graphs else "pytorch"
    trained_on = {"device": str(device), "loop": loop, "cpu_threads": torch.get_num_threads()}  # threads: sums' order
    result = TrainResult(model=model, config=cfg, classes=classes, trained_on=trained_on)
    keeper = BestKeeper(cfg.patience)
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}  # epoch 0: kept if epoch 1 diverges
    best_pred = None
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        if fused is not None:
            epoch_loss = fused.epoch(perm)
        else:
            batches = (augment_batch(xb, yb, cfg, len(classes), gen) for xb, yb in zip(X[perm].split(sizes), y[perm].split(sizes)))
            epoch_loss = float(run_epoch(cfg, step, batches, sched, weights))  # the one host sync of the epoch's steps
        seconds = time.perf_counter() - t0
        result.train_seconds += seconds
        stop = not (math.isfinite(epoch_loss) and bool(finite_weights(model.state_dict().values())))  # diverged

        acc = f1 = pred = None
        if Xv is not None and not stop:
            logits = predict_logits(model, Xv)
            stop = not bool(logits.isfinite().all())  # outputs that are not numbers: diverged too
            if not stop:
                pred = logits.argmax(1)
                acc, f1 = map(float, val_scores(pred, yv, len(classes)))
        record = EpochRecord(epoch, epoch_loss, acc, f1, seconds, cfg.seed, diverged=stop)
        result.history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if stop:
            break
        if keeper.improved(epoch, f1):
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best_pred = pred
        elif keeper.stop:
            break

    result.best_epoch = keeper.best_epoch
    model.load_state_dict(best_state)
    model.eval()
    if val_set is not None:
        result.metrics = kept_metrics(model, val_set, best_pred)
    return result


def kept_metrics(model: GenreNet, val_set: Dataset, pred: torch.Tensor | None) -> dict:
    """Validation metrics of the kept epoch from its own predictions `pred` (no second pass over the split), or
    with None, of the initial weights, kept because epoch 1 diverged."""
    if pred is None:  # outputs that cannot be scored are then the data's doing, not the training's: refused
        return evaluate_model(model, val_set)
    return classification_metrics(val_set.y, pred.cpu().numpy(), val_set.classes)


def check_learned(results: list[TrainResult]) -> None:
    """Refuse runs that kept their initial weights because their first epoch diverged (for `train`, which
    would otherwise save an untrained model, and `bench-devices`, which would time it; a sweep records them,
    as the optimizer's result)."""
    lost = [str(r.config.seed) for r in results if r.best_epoch == 0]
    if lost:
        raise MusicGenreError(
            f"training diverged in epoch 1 (NaN or infinite loss, weights or validation outputs) with seed {', '.join(lost)}: nothing was "
            "learned; try a lower learning rate"
        )


def evaluate_model(model: nn.Module, dataset: Dataset, classes: Sequence[str] | None = None) -> dict:
    """Full classification metrics of a model on a dataset split. `classes`, the model's genres in its output
    order (a run's `classes`), are checked against the dataset's, so that no label is scored against another
    genre's output; the number of outputs is checked in any case."""
    check_dataset(dataset, "dataset")
    if isinstance(classes, str):  # its letters would be taken for genres
        raise MusicGenreError(f"classes must be a list of genre names, not one name: [{classes!r}]")
    if classes is not None and tuple(classes) != dataset.classes:
        raise MusicGenreError(f"the {dataset.split} split's classes ({', '.join(dataset.classes)}) are not the model's "
                              f"({', '.join(classes)}): load it with the model's classes")
    if isinstance(model, GenreNet) and model.mean.shape[-1] != dataset.X.shape[-1]:  # one per MFCC or mel band
        raise MusicGenreError(f"the model does not read {dataset.features} features, which the {dataset.split} split holds")
    device = next(model.parameters()).device
    logits = predict_logits(model, torch.from_numpy(dataset.X).to(device))
    if logits.shape[1] != len(dataset.classes):
        raise MusicGenreError(f"the model has {logits.shape[1]} outputs and the {dataset.split} split "
                              f"{len(dataset.classes)} classes: load it with the model's classes")
    check_scorable(logits.isfinite().all(1).cpu().numpy(), dataset.split)
    return classification_metrics(dataset.y, logits.argmax(1).cpu().numpy(), dataset.classes)


def check_scorable(finite_rows: np.ndarray, split: str) -> None:
    """Refuse to score a model whose outputs on some clips are not numbers (inputs far beyond the training
    data's range): their argmax would count as the first class."""
    bad = ~finite_rows
    if bad.any():
        raise MusicGenreError(f"the model's outputs on {int(bad.sum())} of the {len(bad)} {split} clips are NaN or "
                              f"infinite (first: clip {int(np.argmax(bad))}), so they cannot be scored")


def train_seeds(
    cfg: TrainConfig,
    seeds: list[int],
    train_set: Dataset,
    val_set: Dataset | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> list[TrainResult]:
    """One training run per seed of the same configuration, each as `train` would give it: plain chains of
    Linear and elementwise layers without augmentation train all seeds at once as one batched model (see
    multiseed.py), others one seed after another, and so do runs of the fused CPU epoch (fused.py), faster still.
    `on_epoch` gets every record of every seed."""
    from musicgenre.multiseed import can_stack, train_stacked

    if not isinstance(seeds, (list, tuple, range, np.ndarray)):
        raise MusicGenreError(f"seeds must be a list of whole numbers, not {seeds!r}")
    seeds = [check_seed(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):  # the same seed twice would train the same run twice
        raise MusicGenreError(f"seeds must be one or more distinct whole numbers, not {seeds}")
    check_settings(cfg, train_set, val_set)
    augmented = cfg.mixup > 0 or cfg.spec_augment  # the stacked trainer draws no augmentation
    model, device = probe_model(cfg, len(train_set.classes)), training_device(cfg, len(train_set.classes))
    if len(seeds) > 1 and not augmented and can_stack(model) and not can_fuse(cfg, model, device):
        with cpu_threads(train_threads(cfg.model)), run_state(device):
            return train_stacked(cfg, seeds, train_set, val_set, on_epoch, device)
    return [train(replace(cfg, seed=s), train_set, val_set, on_epoch) for s in seeds]
