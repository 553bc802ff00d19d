import numpy as np
import pytest
import torch

from coursekit.learning.losses import contrastive_loss, triplet_loss


def unit(rng, *shape):
    x = rng.normal(size=shape)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def t(x, grad=False):
    return torch.tensor(x, dtype=torch.float32, requires_grad=grad)


# ---------------------------------------------------------------- contrastive

def test_contrastive_matches_the_formula_on_random_pairs():
    rng = np.random.default_rng(0)
    x1, x2 = unit(rng, 40, 16), unit(rng, 40, 16)
    y = rng.integers(0, 2, size=40)
    for margin in (0.7, 1.5):  # 1.5: most random unit pairs (d about 1.4) are inside the margin
        d = np.linalg.norm(x1 - x2, axis=1)
        expected = np.mean(np.where(y == 1, 0.5 * d ** 2, 0.5 * np.maximum(0.0, margin - d) ** 2))
        got = contrastive_loss(t(x1), t(x2), torch.tensor(y), margin=margin)
        assert got.ndim == 0
        assert got.item() == pytest.approx(expected, rel=1e-5)


def test_contrastive_on_hand_made_pairs():
    e = np.eye(4)
    x = t(e[[0, 0, 0, 0]])
    # identical matching pair; orthogonal non-matching pair (d = sqrt 2 > 0.7);
    # identical non-matching pair (d = 0); orthogonal matching pair (d^2 = 2)
    z = t(e[[0, 1, 0, 2]])
    y = torch.tensor([1, 0, 0, 1])
    for i, expected in enumerate([0.0, 0.0, 0.5 * 0.7 ** 2, 1.0]):
        got = contrastive_loss(x[i:i + 1], z[i:i + 1], y[i:i + 1], margin=0.7).item()
        assert got == pytest.approx(expected, abs=1e-5), i
    assert contrastive_loss(x, z, y).item() == pytest.approx((0.5 * 0.49 + 1.0) / 4, abs=1e-5)
    # a non-matching pair just inside the margin: d = 0.5, cost 0.5 (0.7 - 0.5)^2
    a, b = t([[1.0, 0.0]]), t([[np.cos(2 * np.arcsin(0.25)), np.sin(2 * np.arcsin(0.25))]])
    assert contrastive_loss(a, b, [0]).item() == pytest.approx(0.5 * 0.2 ** 2, rel=1e-4)


def test_contrastive_gradients():
    rng = np.random.default_rng(1)
    base = unit(rng, 3, 8)
    x1 = t(base, grad=True)
    far = -base[2]                                       # d = 2, beyond the margin
    near = unit(rng, 8) * 0.05 + base[1]
    x2 = t(np.stack([unit(rng, 8), near / np.linalg.norm(near), far]), grad=True)
    y = torch.tensor([1, 0, 0])
    contrastive_loss(x1, x2, y).backward()
    g1, g2 = x1.grad.numpy(), x2.grad.numpy()
    assert np.abs(g1[0]).max() > 1e-3 and np.abs(g2[0]).max() > 1e-3   # the positive is pulled together
    assert np.abs(g1[1]).max() > 1e-3                                  # the close negative is pushed apart
    np.testing.assert_array_equal(g1[2], 0.0)                          # the far negative teaches nothing
    np.testing.assert_array_equal(g2[2], 0.0)
    # pulling: moving x1[0] against its gradient brings it closer to x2[0]; pushing: the reverse
    assert g1[0] @ (base[0] - x2[0].detach().numpy()) > 0
    assert g1[1] @ (base[1] - x2[1].detach().numpy()) < 0


def test_contrastive_identical_negative_has_a_finite_gradient():
    x = t(np.eye(3)[:1], grad=True)
    loss = contrastive_loss(x, x.detach().clone(), [0])
    loss.backward()
    assert loss.item() == pytest.approx(0.5 * 0.7 ** 2, rel=1e-5)
    assert torch.isfinite(x.grad).all()


def test_contrastive_shape_errors_name_the_shapes():
    a, b = torch.zeros(4, 8), torch.zeros(4, 6)
    with pytest.raises(ValueError, match=r"\(4, 8\).*\(4, 6\)"):
        contrastive_loss(a, b, torch.ones(4))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        contrastive_loss(a, a, torch.ones(3))
    with pytest.raises(ValueError, match=r"\(8,\)"):
        contrastive_loss(torch.zeros(8), torch.zeros(8), torch.ones(1))
    with pytest.raises(ValueError, match="0 .non-matching"):
        contrastive_loss(a, a, torch.tensor([0, 1, 2, 1]))


# ---------------------------------------------------------------- triplet

def test_triplet_matches_the_formula_with_one_and_several_negatives():
    rng = np.random.default_rng(2)
    a, p = unit(rng, 30, 12), unit(rng, 30, 12)
    n = unit(rng, 30, 4, 12)
    dp = np.sum((a - p) ** 2, axis=1)
    dn = np.sum((a[:, None] - n) ** 2, axis=2)               # (30, 4)
    for margin in (0.1, 0.5):
        expected = np.mean(np.maximum(0.0, dp[:, None] - dn + margin))
        assert triplet_loss(t(a), t(p), t(n), margin=margin).item() == pytest.approx(expected, rel=1e-5)
        one = np.mean(np.maximum(0.0, dp - dn[:, 0] + margin))
        assert triplet_loss(t(a), t(p), t(n[:, 0]), margin=margin).item() == pytest.approx(one, rel=1e-5)
        # (B, 1, D) is the same as (B, D)
        assert triplet_loss(t(a), t(p), t(n[:, :1]), margin=margin).item() == pytest.approx(one, rel=1e-5)


def test_triplet_on_hand_made_triplets():
    e = t(np.eye(3))
    a, p = e[[0, 0, 0]], e[[0, 0, 1]]
    n = e[[1, 0, 0]]
    # p = a, n orthogonal: 0 - 2 + 0.1 < 0 -> 0;  p = a = n: 0 - 0 + 0.1;  p orthogonal, n = a: 2 - 0 + 0.1
    costs = [triplet_loss(a[i:i + 1], p[i:i + 1], n[i:i + 1], margin=0.1).item() for i in range(3)]
    assert costs == pytest.approx([0.0, 0.1, 2.1], abs=1e-6)
    assert triplet_loss(a, p, n, margin=0.1).item() == pytest.approx(2.2 / 3, abs=1e-6)


def test_triplet_gradients():
    rng = np.random.default_rng(3)
    a0 = unit(rng, 2, 8)
    a = t(a0, grad=True)
    p = t(a0 + 0.1 * unit(rng, 2, 8), grad=True)
    # anchor 0: a hard negative (close to the anchor); anchor 1: an easy one (opposite)
    n = t(np.stack([a0[0] + 0.05 * unit(rng, 8), -a0[1]]), grad=True)
    triplet_loss(a, p, n, margin=0.1).backward()
    assert np.abs(n.grad[0].numpy()).max() > 1e-3 and np.abs(p.grad[0].numpy()).max() > 1e-3
    for g in (a.grad, p.grad, n.grad):
        np.testing.assert_array_equal(g[1].numpy(), 0.0)


def test_triplet_shape_errors_name_the_shapes():
    a = torch.zeros(4, 8)
    with pytest.raises(ValueError, match=r"\(4, 8\).*\(5, 8\)"):
        triplet_loss(a, torch.zeros(5, 8), a)
    with pytest.raises(ValueError, match=r"\(4, 3, 7\)"):
        triplet_loss(a, a, torch.zeros(4, 3, 7))
    with pytest.raises(ValueError, match=r"\(2, 8\)"):
        triplet_loss(a, a, torch.zeros(2, 8))
