"""Pooling of convolutional maps (coursekit.cnn.pooling): each against its definition or a limit."""

import math

import numpy as np
import pytest
import torch

from coursekit.cnn.pooling import (GeM, centre_prior, crow, crow_channel_weights, crow_spatial_weights, gem, mac,
                                   regional_mac, rmac, rmac_regions, spoc)


@pytest.fixture()
def x():
    return torch.rand(3, 8, 6, 9, generator=torch.Generator().manual_seed(0)) * 4.0


def _l2(v):
    return v / v.norm(dim=-1, keepdim=True)


def test_mac_is_the_largest_value_of_each_channel(x):
    np.testing.assert_allclose(mac(x).numpy(), x.numpy().reshape(3, 8, -1).max(axis=2))


def test_gem_with_p_1_is_spoc_without_the_prior(x):
    torch.testing.assert_close(_l2(gem(x, p=1.0)), _l2(spoc(x, prior=False)))
    torch.testing.assert_close(gem(x, p=1.0) * 6 * 9, spoc(x, prior=False), rtol=1e-5, atol=1e-5)


def test_gem_tends_to_mac_as_p_grows(x):
    gaps = [float((gem(x.double(), p=p) - mac(x.double())).abs().max()) for p in (3, 10, 50, 200)]
    assert all(a > b for a, b in zip(gaps, gaps[1:]))     # closer and closer
    assert gaps[-1] < 0.05 * float(mac(x).min())
    assert (gem(x, p=3.0) <= mac(x) + 1e-5).all() and (gem(x, p=3.0) >= gem(x, p=1.0) - 1e-5).all()  # power means


def test_learnable_gem_module_matches_the_function_and_learns_p(x):
    layer = GeM(p=3.0)
    out = layer(x)
    torch.testing.assert_close(out, gem(x, 3.0))
    out.sum().backward()
    assert layer.p.grad is not None and torch.isfinite(layer.p.grad)


def test_spoc_prior_peaks_at_the_centre_with_sigma_a_third_of_the_half_side():
    a = centre_prior(9, 15)
    assert a.shape == (9, 15) and a.argmax() == 4 * 15 + 7 and float(a.max()) == pytest.approx(1.0)
    torch.testing.assert_close(a, a.flip(0))
    torch.testing.assert_close(a, a.flip(1))
    b = centre_prior(6, 6)                                  # sigma = 3 / 3 = 1; cell centres at +-0.5, +-1.5, +-2.5
    assert float(b[2, 2]) == pytest.approx(math.exp(-(0.25 + 0.25) / 2))


def test_spoc_weighs_the_centre(x):
    spread = torch.zeros(1, 1, 9, 9)
    spread[0, 0, 4, 4] = 1.0
    corner = torch.zeros(1, 1, 9, 9)
    corner[0, 0, 0, 0] = 1.0
    assert float(spoc(spread)) == pytest.approx(1.0) and float(spoc(corner)) < 0.05
    assert float(spoc(corner, prior=False)) == 1.0


@pytest.mark.parametrize("H, W, count", [(10, 10, 1 + 4 + 9), (30, 40, 2 + 6 + 12), (40, 30, 2 + 6 + 12),
                                         (7, 7, 14), (24, 32, 20)])
def test_rmac_region_grid_has_the_papers_count(H, W, count):
    """l x (l + m - 1) regions at scale l, m extra along the long side: 20 for 4:3 maps (Tolias et al. 2016)."""
    R = rmac_regions(H, W, L=3)
    assert len(R) == count
    top, left, h, w = R.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= H).all() and (left + w <= W).all()
    assert (h == w).all()                                   # square regions
    short = min(H, W)
    sides = sorted(set(h.tolist()), reverse=True)
    assert sides == [math.floor(2 * short / (l + 1)) for l in (1, 2, 3)]


def test_rmac_chooses_the_count_whose_overlap_is_nearest_40_percent():
    # 30 x 40: 2 regions of 30 overlap by 2/3, 3 by 5/6: 2 it is
    assert rmac_regions(30, 40, L=1).tolist() == [[0, 0, 30, 30], [0, 10, 30, 30]]
    # 10 x 40: 2 regions of 10 would not overlap (-2), 3 overlap by -0.5, 4 by 0, 5 by 0.25, 6 by 0.4
    R = rmac_regions(10, 40, L=1)
    assert R[:, 1].tolist() == [0, 6, 12, 18, 24, 30]


def test_rmac_is_the_sum_of_normalised_regional_macs(x):
    R = rmac_regions(6, 9)
    expected = torch.zeros(3, 8)
    for t, s, h, w in R.tolist():
        v = x[:, :, t:t + h, s:s + w].reshape(3, 8, -1).max(dim=2).values
        expected += v / v.norm(dim=1, keepdim=True)
    torch.testing.assert_close(rmac(x), expected, rtol=1e-5, atol=1e-5)
    assert regional_mac(x, R).shape == (3, len(R), 8)


def test_rmac_whitens_each_region_before_the_sum(x):
    g = torch.Generator().manual_seed(1)
    mean, P = torch.rand(8, generator=g), torch.randn(5, 8, generator=g)      # to 5 dimensions
    expected = torch.zeros(3, 5)
    for t, s, h, w in rmac_regions(6, 9).tolist():
        v = _l2(x[:, :, t:t + h, s:s + w].reshape(3, 8, -1).max(dim=2).values)
        expected += _l2((v - mean) @ P.T)
    torch.testing.assert_close(rmac(x, whitening=(mean, P)), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rmac(x, whitening=(torch.zeros(8), torch.eye(8))), rmac(x), rtol=1e-5, atol=1e-5)


def test_crow_weights_follow_the_definitions():
    x = torch.zeros(1, 4, 3, 3)
    x[0, 0] = 1.0                                          # channel 0 fires everywhere
    x[0, 1, 1, 1] = 2.0                                    # channel 1 fires in one cell
    S = x[0].sum(0)
    alpha = (S / S.pow(2).sum().sqrt()).sqrt()
    torch.testing.assert_close(crow_spatial_weights(x)[0], alpha)
    Q = torch.tensor([1.0, 1 / 9, 0.0, 0.0])
    beta = crow_channel_weights(x)[0]
    torch.testing.assert_close(beta, torch.tensor([math.log(Q.sum() / 1.0), math.log(Q.sum() / (1 / 9)), 0.0, 0.0]))
    assert beta[1] > beta[0]                               # the rare channel weighs more
    f = crow(x)[0]
    torch.testing.assert_close(f, torch.stack([(x[0, k] * alpha).sum() * beta[k] for k in range(4)]))


def test_pooling_refuses_a_map_that_is_not_4d():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        mac(torch.zeros(8, 6, 9))
