"""The typed configuration of a training run; it is saved beside every run's results."""

from __future__ import annotations

import math
import numbers
import os
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from musicgenre.errors import SettingError

OPTIMIZERS = ("Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "ASGD", "NAdam", "RAdam", "RMSprop", "Rprop", "SGD")
WITHOUT_WEIGHT_DECAY = ("Rprop",)  # the one of them whose torch.optim signature has no weight_decay
SCHEDULERS = ("none", "cosine", "onecycle")
PRECISIONS = ("fp32", "bf16")
CUDA_DEVICE = r"cuda(:\d+)?"  # cuda or cuda:N
FLOAT32_MAX = 3.4028234663852886e38
# torch's Beta sampler returns exactly 0.5 for a share of draws that grows as alpha falls below 0.01 (a quarter
# at 0.001, nearly all at 1e-5; they should lie near 0 or 1), and nothing mixes above float32's range; past
# 1000 the blend is 0.5 +- 0.01 anyway
MIXUP_ALPHAS = (0.01, 1000.0)
SEED_LIMIT = 2**32  # seeds are 0..2**32-1: torch's CPU generator keeps 32 bits of a seed (2**32 would repeat 0), numpy takes no more


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, which containers and taskset narrow (os.cpu_count
    counts the machine's), at least 1."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_seed(seed: Any) -> int:
    """`seed` as Python's int, after refusing what is not a whole number from 0 to 2**32-1 (beyond it, seeds
    would repeat runs of smaller ones)."""
    if not is_whole(seed) or not 0 <= seed < SEED_LIMIT:
        raise SettingError(f"seed {seed!r} out of range: give a whole number from 0 to 2**32 - 1 (4294967295)")
    return int(seed)


def is_whole(v: Any) -> bool:
    """Whether `v` is an integer, Python's or numpy's, and not a bool (True would pass as 1)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


_KINDS = {"str": (lambda v: isinstance(v, str), "a string"), "int": (is_whole, "a whole number"),
          "float": (lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool), "a number"),
          "bool": (lambda v: isinstance(v, bool), "True or False")}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; defaults are the study's settings. Checked when made, and
    frozen after (dataclasses.replace makes a changed copy, checked again), so that no run starts from a
    configuration that was never checked."""

    features: str = "mfcc"
    model: str = "mfcc-mlp"
    optimizer: str = "SGD"
    lr: float = 0.002
    epochs: int = 30
    batch_size: int = 16
    seed: int | None = None  # None: a seed is drawn and recorded, so the run can still be repeated
    device: str = "auto"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    scheduler: str = "none"
    patience: int | None = None  # stop after this many epochs without a better validation F1
    standardize: bool = False  # fit feature standardisation on train and store it in the model
    mixup: float = 0.0  # mixup Beta(alpha, alpha) parameter; 0 = off
    mixup_same_class: bool = False  # mixup partners of the same class only (inputs blended, targets kept)
    spec_augment: bool = False  # time/frequency masking of melgram batches
    precision: str = "fp32"  # "bf16": mixed-precision training (weights stay fp32), fast on CPUs with bf16 units
    cuda_graphs: bool = True  # on a GPU, replay training steps as CUDA graphs where cudagraph.can_graph allows
    fused: bool = True  # on the CPU, train plain MLPs with SGD in one compiled call per epoch where fused.can_fuse allows

    def __post_init__(self) -> None:
        for f in fields(self):  # each field of its own type ("no" would be a truthy bool, 2.5 epochs a crash)
            v, (kind, _, optional) = getattr(self, f.name), f.type.partition(" | ")
            accepts, words = _KINDS[kind]
            if v is None and optional:
                continue
            if not accepts(v):
                raise SettingError(f"{f.name} must be {words}{' or None' if optional else ''}, not {v!r}")
            if kind in ("int", "float"):  # numpy's numbers as Python's, which JSON and torch take
                object.__setattr__(self, f.name, int(v) if kind == "int" else float(v))
        object.__setattr__(self, "optimizer", canonical_optimizer(self.optimizer))
        if self.scheduler not in SCHEDULERS:
            raise SettingError(f"unknown scheduler {self.scheduler!r}: choose one of {', '.join(SCHEDULERS)}")
        if self.precision not in PRECISIONS:
            raise SettingError(f"unknown precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise SettingError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise SettingError(f"learning rate must be a positive number, not {self.lr}")
        if self.lr > FLOAT32_MAX:  # torch.optim cannot take it: its steps are in float32
            raise SettingError(f"learning rate {self.lr:g} is beyond float32's largest number ({FLOAT32_MAX:.4g})")
        if self.seed is not None:
            check_seed(self.seed)
        if not re.fullmatch(rf"auto|cpu|{CUDA_DEVICE}", self.device):
            raise SettingError(f"unknown device {self.device!r}: choose auto, cpu, cuda or cuda:N")
        for name, v in (("mixup alpha", self.mixup), ("weight decay", self.weight_decay)):
            if not (math.isfinite(v) and v >= 0):
                raise SettingError(f"{name} must be 0 (off) or a positive number, not {v}")
        if self.mixup and not MIXUP_ALPHAS[0] <= self.mixup <= MIXUP_ALPHAS[1]:
            raise SettingError(f"mixup alpha {self.mixup:g} out of range: give 0 (off) or a number from "
                               f"{MIXUP_ALPHAS[0]:g} to {MIXUP_ALPHAS[1]:g}")
        if self.weight_decay and self.optimizer in WITHOUT_WEIGHT_DECAY:
            raise SettingError(f"optimizer {self.optimizer} has no weight decay: set it to 0 (--weight-decay 0) "
                               "or choose another optimizer")
        if not 0 <= self.label_smoothing < 1:
            raise SettingError(f"label smoothing must be in [0, 1), not {self.label_smoothing}")
        if self.patience is not None and self.patience < 1:
            raise SettingError(f"patience must be at least 1 epoch, not {self.patience}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Rebuild from a saved config, ignoring keys this version does not know."""
        if not isinstance(d, dict):
            raise SettingError(f"a configuration is a dict of settings, not {d!r}")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def seed_range(first: int, n: int) -> list[int]:
    """The n seeds first..first+n-1 of a multi-seed run, refused before any training if they run out of range."""
    if first + n > SEED_LIMIT:
        raise SettingError(f"--seed {first} with --seeds {n}: the last seed, {first + n - 1}, is beyond 2**32 - 1")
    return list(range(first, first + n))


def canonical_optimizer(name: str) -> str:
    """The torch.optim class name for a case-insensitive optimizer name."""
    by_lower = {o.lower(): o for o in OPTIMIZERS}
    if name.lower() not in by_lower:
        raise SettingError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    return by_lower[name.lower()]


# Named recipes: a model with the training settings chosen for it (on the validation split).
_MLP = dict(optimizer="AdamW", lr=3e-3, weight_decay=1e-2, batch_size=64, epochs=80, scheduler="cosine",
            label_smoothing=0.1, standardize=True, mixup=2.0, mixup_same_class=True)
_MEL = dict(features="melgram", optimizer="AdamW", lr=1e-3, weight_decay=1e-4, batch_size=64, epochs=40,
            scheduler="cosine", label_smoothing=0.1, standardize=True, spec_augment=True, mixup=0.2)
RECIPES: dict[str, TrainConfig] = {
    "mfcc-mlp": TrainConfig(),  # the study's MFCC run
    "mfcc-mlp-std": TrainConfig(standardize=True),  # the same with standardised input
    "mfcc-mlp-plus": TrainConfig(model="mfcc-mlp-plus", **_MLP),
    "mfcc-mlp-log": TrainConfig(model="mfcc-mlp-log", **_MLP),  # the same net and settings, log deviations
    # its input into one linear layer; no mixup, smoothing or decay (with them, 0.735 on val over seeds 0-4: `train --recipe
    # mfcc-linear --weight-decay 0.01 --label-smoothing 0.1 --mixup 2 --mixup-same-class --lr 0.003 --epochs 80 --seeds 5`)
    "mfcc-linear": TrainConfig(model="mfcc-linear", optimizer="AdamW", lr=1e-2, batch_size=64, epochs=60,
                               scheduler="cosine", standardize=True),
    "mel-cnn": TrainConfig(features="melgram", model="mel-cnn", optimizer="Adagrad"),  # the study's best CNN run
    "mel-cnn-relu": TrainConfig(features="melgram", model="mel-cnn-relu", optimizer="Adagrad"),  # as its text says
    "mel-cnn-bn": TrainConfig(model="mel-cnn-bn", **_MEL),
    "mel-resnet": TrainConfig(model="mel-resnet", **_MEL),
}


def recipe(name: str) -> TrainConfig:
    """The named recipe's configuration."""
    if not isinstance(name, str) or name not in RECIPES:
        raise SettingError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def config_from_options(recipe_name: str | None, given: dict[str, Any]) -> TrainConfig:
    """A recipe with the options a user gave on top (what `train`, `sweep` and `bench-devices` train). Without
    a recipe, the model's own (the study's settings for its MLP); a model given alone brings its own features,
    features given alone bring their default model (mfcc-mlp, mel-cnn). A recipe's settings were chosen for
    its own representation: another one is refused."""
    from musicgenre.models import MODELS, check_model_features, model_features

    base = recipe(recipe_name) if recipe_name else TrainConfig()
    given = dict(given)
    if "model" not in given and "features" in given and given["features"] != base.features:
        given["model"] = "mel-cnn" if given["features"] == "melgram" else "mfcc-mlp"
    if not recipe_name and given.get("model") in RECIPES:
        base = recipe(given["model"])
    model = given.get("model", base.model)
    if model in RECIPES and model not in MODELS:  # a model's settings, not a model
        raise SettingError(f"unknown model {model!r}: it is a recipe (--recipe {model}) of model {RECIPES[model].model}")
    features = given.setdefault("features", model_features(model))
    check_model_features(model, features)
    if recipe_name and features != base.features:
        raise SettingError(f"recipe {recipe_name} reads {base.features} features, not {features}: "
                           f"choose a recipe for {features}")
    cfg = replace(base, **given)
    if given.get("mixup_same_class") and cfg.mixup == 0:
        raise SettingError("--mixup-same-class chooses mixup's partners: it needs mixup on (--mixup ALPHA > 0)")
    if cfg.mixup == 0 and cfg.mixup_same_class:  # a recipe's, with mixup turned off: recorded off, as it then is
        cfg = replace(cfg, mixup_same_class=False)
    return cfg
