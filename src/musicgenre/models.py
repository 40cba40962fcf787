"""Network architectures, by name: the study's two models and their variants."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from musicgenre.datasets import FEATURE_SHAPES
from musicgenre.errors import MusicGenreError


class MfccMLP(nn.Module):
    """The study's MFCC net: 26 -> 128 -> 32 -> classes with ReLU."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(26, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU(), nn.Linear(32, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MelCNN(nn.Module):
    """The study's CNN: four 5x5 conv/ReLU/max-pool blocks (16-32-64-128), flatten to 1024, then
    1024 -> 1024 -> 256 -> 32 -> classes; its notebook had no activations between those linear
    layers (`relu_head=False`), its text claims ReLU (`relu_head=True`)."""

    def __init__(self, n_classes: int, relu_head: bool = False) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for c_in, c_out in [(1, 16), (16, 32), (32, 64), (64, 128)]:
            blocks += [nn.Conv2d(c_in, c_out, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks, nn.Flatten())
        widths = [1024, 1024, 256, 32]
        head: list[nn.Module] = []
        for w_in, w_out in zip(widths, widths[1:]):
            head += [nn.Linear(w_in, w_out)] + ([nn.ReLU()] if relu_head else [])
        self.head = nn.Sequential(*head, nn.Linear(32, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.unsqueeze(1)))


class GenreNet(nn.Module):
    """A body wrapped with the input standardisation and the temperature it was trained and
    calibrated with, so that a saved model carries everything `predict` needs."""

    def __init__(self, body: nn.Module, norm_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.body = body
        self.register_buffer("mean", torch.zeros(norm_shape))
        self.register_buffer("std", torch.ones(norm_shape))
        self.register_buffer("temperature", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits divided by the calibration temperature (1 until calibrated)."""
        return self.body((x - self.mean) / self.std) / self.temperature


# name -> (features, factory(n_classes) -> body)
MODELS: dict[str, tuple[str, Callable[[int], nn.Module]]] = {
    "mfcc-mlp": ("mfcc", MfccMLP),
    "mel-cnn": ("melgram", MelCNN),
    "mel-cnn-relu": ("melgram", lambda n: MelCNN(n, relu_head=True)),
}


def model_features(name: str) -> str:
    """The representation a named model reads ('mfcc' or 'melgram')."""
    if name not in MODELS:
        raise MusicGenreError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name][0]


def norm_shape(features: str) -> tuple[int, ...]:
    """Shape of the standardisation statistics: one per MFCC number, or one per mel band."""
    return (FEATURE_SHAPES[features][-1],)


def build_model(name: str, n_classes: int) -> GenreNet:
    """A fresh, untrained model (identity standardisation, temperature 1)."""
    features = model_features(name)
    return GenreNet(MODELS[name][1](n_classes), norm_shape(features))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
