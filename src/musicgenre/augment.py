"""Training-time augmentation on batches of tensors: mixup (any features) and SpecAugment-style
time/frequency masking (melgrams). Plain functions; each keeps shapes and value ranges."""

from __future__ import annotations

import torch

from musicgenre.config import TrainConfig


def spec_augment(x: torch.Tensor, gen: torch.Generator, max_time: int = 4, max_freq: int = 16) -> torch.Tensor:
    """Mask one random band of up to `max_time` frames and one of up to `max_freq` mel bands in each
    (N, time, mel) clip, filling with that clip's minimum (its silence level), so that no value leaves
    the clip's own range."""
    n, t, f = x.shape
    fill = x.amin(dim=(1, 2), keepdim=True)

    def band(size: int, max_width: int) -> torch.Tensor:
        width = torch.randint(0, max_width + 1, (n, 1), generator=gen)
        start = (torch.rand(n, 1, generator=gen) * (size - width + 1)).long()
        pos = torch.arange(size).unsqueeze(0)
        return ((pos >= start) & (pos < start + width)).to(x.device)

    mask = band(t, max_time)[:, :, None] | band(f, max_freq)[:, None, :]
    return torch.where(mask, fill, x)


def mixup(
    x: torch.Tensor, y: torch.Tensor, n_classes: int, alpha: float, gen: torch.Generator, same_class: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each example with a random partner of the batch (weight ~ Beta(alpha, alpha), kept >= 0.5
    for the example itself); targets become the matching class-probability rows. With `same_class` the
    partner is drawn from the example's own class (its target stays one class): new examples between
    the clips of a genre, none between genres."""
    lam = torch.distributions.Beta(alpha, alpha).sample((len(y),)).to(x.device)  # uses the global seed
    lam = torch.maximum(lam, 1 - lam)
    if same_class:  # two orders sorted by class, each shuffled within it: row i of one pairs with row i of the other
        keys = (y + torch.rand(len(y), generator=gen, dtype=torch.float64).to(y.device) for _ in range(2))
        first, second = map(torch.argsort, keys)  # on y's device: no wait for a GPU to hand y back
        partner = torch.empty_like(first)
        partner[first] = second
    else:
        partner = torch.randperm(len(y), generator=gen).to(x.device)
    shape = (-1,) + (1,) * (x.dim() - 1)
    x = lam.view(shape) * x + (1 - lam.view(shape)) * x[partner]
    onehot = torch.nn.functional.one_hot(y, n_classes).to(x.dtype)
    return x, lam[:, None] * onehot + (1 - lam[:, None]) * onehot[partner]


def augment_batch(
    x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, n_classes: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training batch after the augmentations `cfg` asks for (unchanged when none)."""
    if cfg.spec_augment and x.dim() == 3:
        x = spec_augment(x, gen)
    if cfg.mixup > 0:
        x, y = mixup(x, y, n_classes, cfg.mixup, gen, cfg.mixup_same_class)
    return x, y
