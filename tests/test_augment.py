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
    """Each output is a blend of its own example (weight >= 0.5) and one partner, and its target the same blend
    of the two one-hot targets: the partner and weight are recovered from the inputs alone, then checked on
    the targets."""
    torch.manual_seed(0)
    x = torch.randn(64, 26, dtype=torch.float64)
    y = torch.arange(64) % 4
    xm, t = mixup(x, y, 4, 1.0, torch.Generator().manual_seed(0))
    assert xm.shape == x.shape and t.shape == (64, 4) and not torch.equal(xm, x)
    onehot = torch.nn.functional.one_hot(y, 4).double()
    for i in range(64):
        if torch.allclose(xm[i], x[i]):  # its own partner (or a weight of 1)
            assert torch.allclose(t[i], onehot[i])
            continue
        d = x[i] - x  # xm[i] - x[j] = lam (x[i] - x[j]) for the partner j
        lam = ((xm[i] - x) * d).sum(1) / (d * d).sum(1).clamp(min=1e-30)
        residual = (xm[i] - x - lam[:, None] * d).norm(dim=1)
        residual[i] = float("inf")
        j = int(residual.argmin())
        assert residual[j] < 1e-9 and 0.5 <= lam[j] <= 1
        assert torch.allclose(t[i], lam[j] * onehot[i] + (1 - lam[j]) * onehot[j])


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


def test_augment_batch_is_identity_when_off_and_applies_what_is_asked():
    x, y = melgram_batch(8), torch.arange(8) % 4
    xa, ya = augment_batch(x, y, TrainConfig(features="melgram", model="mel-cnn"), 4, torch.Generator())
    assert xa is x and ya is y
    cfg = TrainConfig(features="melgram", model="mel-cnn", spec_augment=True)
    xa, ya = augment_batch(x, y, cfg, 4, torch.Generator().manual_seed(0))
    changed = xa != x
    assert ya is y and changed.any() and (xa[changed] == x.amin(dim=(1, 2), keepdim=True).expand_as(x)[changed]).all()
    xa, ya = augment_batch(x, y, TrainConfig(features="melgram", model="mel-cnn", mixup=0.2), 4, torch.Generator().manual_seed(0))
    assert ya.shape == (8, 4) and torch.allclose(ya.sum(1), torch.ones(8)) and (ya.max(1).values < 1).any()
    assert not torch.equal(xa, x)
