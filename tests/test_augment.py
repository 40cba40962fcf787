"""Augmentation keeps shapes and value ranges, and is repeatable under a seed."""

import torch

from musicgenre.augment import augment_batch, mixup, spec_augment
from musicgenre.config import TrainConfig


def melgram_batch(n: int = 32) -> torch.Tensor:
    return -80 * torch.rand(n, 21, 128, generator=torch.Generator().manual_seed(1))


def test_spec_augment_masks_within_the_clip_range():
    x = melgram_batch()
    out = spec_augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    lo, hi = x.amin(dim=(1, 2), keepdim=True), x.amax(dim=(1, 2), keepdim=True)
    assert ((out >= lo) & (out <= hi)).all()
    changed = out != x
    assert changed.any()
    assert (out[changed] == lo.expand_as(x)[changed]).all()  # masked cells hold the clip minimum
    assert changed.float().mean() < 0.35  # at most 4 of 21 frames and 16 of 128 bands


def test_spec_augment_is_seeded():
    x = melgram_batch()
    a = spec_augment(x, torch.Generator().manual_seed(5))
    b = spec_augment(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_mixup_blends_inputs_and_targets():
    torch.manual_seed(0)
    x = torch.randn(64, 26)
    y = torch.arange(64) % 4
    xm, t = mixup(x, y, 4, 1.0, torch.Generator().manual_seed(0))
    assert xm.shape == x.shape and t.shape == (64, 4)
    assert torch.allclose(t.sum(1), torch.ones(64))
    assert (t.max(1).values >= 0.5).all()
    assert (xm.amin(0) >= x.amin(0) - 1e-5).all() and (xm.amax(0) <= x.amax(0) + 1e-5).all()  # convex blends
    assert not torch.equal(xm, x)


def test_same_class_mixup_blends_within_each_class_only():
    """Each example's partner is of its own class (its target stays that class), drawn at random: every
    example of a class serves as a partner exactly once, and a class of one example pairs with itself."""
    torch.manual_seed(0)
    y = torch.tensor([2] + [0, 1, 3] * 21)  # one example of class 2
    x = torch.randn(len(y), 26) + 100 * y[:, None]  # classes far apart: a blend across them would show
    torch.manual_seed(1)  # the blend weights' draw
    xm, t = mixup(x, y, 4, 2.0, torch.Generator().manual_seed(0), same_class=True)
    assert torch.equal(t, torch.nn.functional.one_hot(y, 4).float())
    assert torch.allclose(xm[0], x[0])
    for c in (0, 1, 3):
        rows = y == c
        assert (xm[rows] - 100 * c).abs().max() < 10  # blends of that class's rows only
    # the partner order is a permutation within each class, seeded by the generator
    torch.manual_seed(1)
    again, _ = mixup(x, y, 4, 2.0, torch.Generator().manual_seed(0), same_class=True)
    assert torch.equal(xm, again) and not torch.equal(xm, x)


def test_augment_batch_is_identity_when_off():
    x, y = melgram_batch(8), torch.arange(8) % 4
    xa, ya = augment_batch(x, y, TrainConfig(features="melgram", model="mel-cnn"), 4, torch.Generator())
    assert xa is x and ya is y
    xa, ya = augment_batch(x, y, TrainConfig(features="melgram", model="mel-cnn", spec_augment=True, mixup=0.2),
                           4, torch.Generator().manual_seed(0))
    assert xa.shape == x.shape and ya.shape == (8, 4)
