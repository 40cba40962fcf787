"""Network architectures, by name: the study's two models, their variants, and stronger small nets."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable, NamedTuple

import torch
import torch.fx
from torch import nn

from musicgenre.datasets import FEATURE_SHAPES
from musicgenre.errors import SettingError

N_MFCC = FEATURE_SHAPES["mfcc"][-1]  # the 26 numbers of an MFCC summary: 13 means, then 13 standard deviations


class MfccMLP(nn.Module):
    """The study's MFCC net: 26 -> 128 -> 32 -> classes with ReLU."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(N_MFCC, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU(), nn.Linear(32, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MelNet(nn.Module):
    """A melgram network: `features` (convolutions), then `head`, on (batch, 1, 21, 128) inputs in the
    channels-last memory format, faster on the CPU (bench/bench_training.py); a subclass sets both up, then
    calls `_to_memory_format`."""

    memory_format = torch.channels_last
    features: nn.Module
    head: nn.Module

    def _to_memory_format(self) -> None:
        self.to(memory_format=self.memory_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.unsqueeze(1).contiguous(memory_format=self.memory_format)))


class MelCNN(MelNet):
    """The study's CNN: four 5x5 conv/ReLU/max-pool blocks (16-32-64-128), flatten to 1024, then
    1024 -> 1024 -> 256 -> 32 -> classes; its notebook had no activations between those linear
    layers (`relu_head=False`), its text claims ReLU (`relu_head=True`). Channels-last memory format
    by default (same arithmetic; `channels_last=False` is the layout the study ran, kept as the
    benchmark's reference). Each block pools before its ReLU: ReLU is monotonic, so max-pool then
    ReLU is the same function with the same gradients, and ReLU then runs on a quarter of the numbers
    (about 5% of a CPU training step, bench/README.md)."""

    def __init__(self, n_classes: int, relu_head: bool = False, channels_last: bool = True) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for c_in, c_out in [(1, 16), (16, 32), (32, 64), (64, 128)]:
            blocks += [nn.Conv2d(c_in, c_out, 5, padding=2), nn.MaxPool2d(2), nn.ReLU()]
        self.features = nn.Sequential(*blocks, nn.Flatten())
        widths = [1024, 1024, 256, 32]
        head: list[nn.Module] = []
        for w_in, w_out in zip(widths, widths[1:]):
            head += [nn.Linear(w_in, w_out)] + ([nn.ReLU()] if relu_head else [])
        self.head = nn.Sequential(*head, nn.Linear(32, n_classes))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self._to_memory_format()


class MfccMLPPlus(nn.Module):
    """A wider MFCC net for standardised input: 26 -> 256 -> 256 -> classes, each hidden layer
    Linear, BatchNorm, ReLU, Dropout(0.5)."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for w_in in (N_MFCC, 256):
            layers += [nn.Linear(w_in, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5)]
        self.layers = nn.Sequential(*layers, nn.Linear(256, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class MelCNNBN(MelNet):
    """The study's CNN made small and stable: four 3x3 conv/BN/ReLU/max-pool blocks (16-32-64-128),
    global average pooling instead of the 1024 flatten, dropout 0.3, one linear layer. Channels-last
    memory format (measured faster on CPU)."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for c_in, c_out in [(1, 16), (16, 32), (32, 64), (64, 128)]:
            blocks += [conv_bn(c_in, c_out), nn.MaxPool2d(2, ceil_mode=True)]
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, n_classes))
        self._to_memory_format()


class ResBlock(nn.Module):
    """A basic residual block: two 3x3 conv/BN layers, a 1x1 projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv_bn(c_in, c_out, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(self.conv1(x)) + self.skip(x))


class MelResNet(MelNet):
    """A small residual CNN: a 3x3 stride-2 stem (24 channels, 21x128 -> 11x64), three stages of one
    residual block each (24, 48, 96 channels; the last two halve time and frequency), global average
    pooling, dropout 0.3, one linear layer. Channels-last memory format (measured faster on CPU)."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        widths = (24, 48, 96)
        stages: list[nn.Module] = [conv_bn(1, widths[0], stride=2)]
        c_in = widths[0]
        for i, c_out in enumerate(widths):
            stages.append(ResBlock(c_in, c_out, stride=1 if i == 0 else 2))
            c_in = c_out
        self.features = nn.Sequential(*stages, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(c_in, n_classes))
        self._to_memory_format()


class LogStd(nn.Module):
    """An MFCC summary with its 13 standard deviations (the last 13 numbers) on a log scale, the 13
    means unchanged: the deviations are positive, right-skewed scales that standardise better as
    logs (about 0.7 of a point of validation accuracy for the MLP, on seeds 0-4 and on 5-9; see the README)."""

    eps = 1e-3  # added before the log: a deviation of 0 (a constant coefficient) stays finite

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_means = N_MFCC // 2  # 13 means, then 13 standard deviations
        return torch.cat([x[..., :n_means], torch.log(x[..., n_means:].clamp_min(0) + self.eps)], dim=-1)


class GenreNet(nn.Module):
    """A body wrapped with its fixed input transform (`prepare`), the input standardisation and the
    temperature it was trained and calibrated with, so that a saved model carries everything
    `predict` needs."""

    def __init__(self, body: nn.Module, norm_shape: tuple[int, ...], prepare: nn.Module | None = None) -> None:
        super().__init__()
        self.prepare = prepare if prepare is not None else nn.Identity()
        self.body = body
        self.register_buffer("mean", torch.zeros(norm_shape))
        self.register_buffer("std", torch.ones(norm_shape))
        self.register_buffer("temperature", torch.ones(()))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """The body's input: the fixed transform, then the training split's standardisation."""
        return (self.prepare(x) - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits divided by the calibration temperature (1 until calibrated)."""
        return self.body(self.standardize(x)) / self.temperature


class ModelSpec(NamedTuple):
    """What a model name stands for: its representation, its network and its fixed input transform."""

    features: str  # the representation the model reads
    body: Callable[[int], nn.Module]  # n_classes -> network
    prepare: Callable[[], nn.Module] | None = None  # a fixed input transform applied before standardisation


MODELS: dict[str, ModelSpec] = {
    "mfcc-mlp": ModelSpec("mfcc", MfccMLP),
    "mel-cnn": ModelSpec("melgram", MelCNN),
    "mel-cnn-relu": ModelSpec("melgram", lambda n: MelCNN(n, relu_head=True)),
    "mfcc-mlp-plus": ModelSpec("mfcc", MfccMLPPlus),
    "mfcc-mlp-log": ModelSpec("mfcc", MfccMLPPlus, LogStd),
    # multinomial logistic regression on mfcc-mlp-log's input: what the network adds over a linear model
    "mfcc-linear": ModelSpec("mfcc", lambda n: nn.Sequential(nn.Linear(N_MFCC, n)), LogStd),
    "mel-cnn-bn": ModelSpec("melgram", MelCNNBN),
    "mel-resnet": ModelSpec("melgram", MelResNet),
}


def model_features(name: str) -> str:
    """The representation a named model reads ('mfcc' or 'melgram')."""
    if name not in MODELS:
        raise SettingError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name].features


def check_model_features(model: str, features: str) -> None:
    """Refuse a model paired with the representation it does not read."""
    if model_features(model) != features:
        raise SettingError(f"model {model} reads {model_features(model)} features, not {features}")


def norm_shape(features: str) -> tuple[int, ...]:
    """Shape of the standardisation statistics: one per MFCC number, or one per mel band."""
    return (FEATURE_SHAPES[features][-1],)


@contextmanager
def float32_default() -> Iterator[None]:
    """torch's default dtype float32 meanwhile, whatever the caller set (a float64 default made models of
    float64 that float32 clips and saved weights do not fit)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def build_model(name: str, n_classes: int) -> GenreNet:
    """A fresh, untrained float32 model (identity standardisation, temperature 1)."""
    features = model_features(name)
    spec = MODELS[name]
    with float32_default():
        return GenreNet(spec.body(n_classes), norm_shape(features), spec.prepare() if spec.prepare else None)


# Layers that act on each number alone, hold no tensors and draw no random numbers: applied as they are
# to a stack of models' activations, they give each model what its own gives.
ELEMENTWISE_LAYERS = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.ELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Identity)


def layer_chain(model: GenreNet) -> list[nn.Module] | None:
    """The body's layers in call order when its forward is a plain chain of Linear and elementwise
    layers (each the input of the next, as in an nn.Sequential, read from a torch.fx trace), else None."""
    try:
        graph = torch.fx.symbolic_trace(model.body).graph
    except (torch.fx.proxy.TraceError, RuntimeError):  # data-dependent control flow, len(): no plain chain
        return None
    modules = dict(model.body.named_modules())
    chain: list[nn.Module] = []
    prev = None
    for node in graph.nodes:
        if node.op == "placeholder" and prev is None:
            prev = node
        elif node.op == "output":
            return chain if node.args == (prev,) and chain else None
        elif (node.op == "call_module" and node.args == (prev,) and not node.kwargs
              and isinstance(modules[node.target], (nn.Linear, *ELEMENTWISE_LAYERS))):
            chain.append(modules[node.target])
            prev = node
        else:
            return None
    return None


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
