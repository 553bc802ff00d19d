import numpy as np
import pytest
import torch

from coursekit.aggregation import (GMM, fisher_vector, fit_gmm, gmm_posteriors, intra_normalize, l2_normalize,
                                   power_normalize, vlad)


def test_vlad_of_the_centroids_is_zero():
    C = np.random.default_rng(0).normal(size=(8, 5)).astype(np.float32)
    X = np.repeat(C, 3, axis=0)  # every descriptor sits on its word
    assert np.abs(vlad(X, C)).max() < 1e-6


def test_vlad_matches_its_definition():
    rng = np.random.default_rng(1)
    C, X = rng.normal(size=(6, 4)), rng.normal(size=(50, 4))
    words = np.argmin(((X[:, None] - C[None]) ** 2).sum(-1), axis=1)
    expected = np.stack([(X[words == k] - C[k]).sum(0) for k in range(6)]).ravel()
    np.testing.assert_allclose(vlad(X, C), expected, atol=1e-5)
    assert vlad(np.zeros((0, 4)), C).shape == (24,)


def test_normalisations():
    v = np.array([4.0, -9.0, 0.0, 1.0])
    np.testing.assert_allclose(power_normalize(v), [2, -3, 0, 1])
    blocks = intra_normalize(np.array([3.0, 4.0, 0.0, 2.0]), k=2)
    np.testing.assert_allclose(blocks, [0.6, 0.8, 0.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(l2_normalize(v)), 1, rtol=1e-6)


def _random_gmm(rng, K=3, D=4):
    w = rng.random(K) + 0.2
    return GMM(w / w.sum(), rng.normal(size=(K, D)), rng.random((K, D)) + 0.5)


def test_posteriors_match_a_direct_computation():
    rng = np.random.default_rng(2)
    gmm, X = _random_gmm(rng), rng.normal(size=(20, 4))
    dens = np.stack([gmm.w[k] * np.prod(np.exp(-0.5 * (X - gmm.mu[k]) ** 2 / gmm.var[k])
                                        / np.sqrt(2 * np.pi * gmm.var[k]), axis=1) for k in range(3)], axis=1)
    np.testing.assert_allclose(gmm_posteriors(X, gmm), dens / dens.sum(1, keepdims=True), rtol=1e-9)


def test_fisher_vector_is_the_scaled_gradient_of_the_log_likelihood():
    """FV = Fisher-information-scaled gradient of (1/T) sum_t log p(x_t), by torch autograd."""
    rng = np.random.default_rng(3)
    gmm, X = _random_gmm(rng), rng.normal(size=(30, 4))
    mu = torch.tensor(gmm.mu, requires_grad=True)
    sigma = torch.tensor(np.sqrt(gmm.var), requires_grad=True)
    x = torch.tensor(X)[:, None, :]
    log_n = -0.5 * (((x - mu) / sigma) ** 2 + torch.log(2 * torch.pi * sigma ** 2)).sum(-1)  # (T, K)
    log_lik = torch.logsumexp(torch.log(torch.tensor(gmm.w)) + log_n, dim=1).mean()
    d_mu, d_sigma = torch.autograd.grad(log_lik, (mu, sigma))
    s, w = np.sqrt(gmm.var), gmm.w[:, None]
    expected = np.concatenate([(d_mu.numpy() * s / np.sqrt(w)).ravel(), (d_sigma.numpy() * s / np.sqrt(2 * w)).ravel()])
    np.testing.assert_allclose(fisher_vector(X, gmm, improved=False), expected, rtol=1e-4, atol=1e-6)


def test_improved_fisher_vector_is_unit_and_fit_is_seeded():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(400, 3))
    g1, g2 = fit_gmm(X, 4, seed=0), fit_gmm(X, 4, seed=0)
    np.testing.assert_array_equal(g1.mu, g2.mu)
    fv = fisher_vector(X[:50], g1)
    assert fv.shape == (2 * 4 * 3,) and fv.dtype == np.float32
    assert np.linalg.norm(fv) == pytest.approx(1, rel=1e-5)


def test_asmk_without_selectivity_is_the_intra_normalised_vlad_kernel():
    """With sigma(u) = u on every word, ASMK sums V(X_c).V(Y_c): the dot product
    of intra-normalised VLADs, divided by sqrt(|words X| |words Y|)."""
    from coursekit.aggregation import asmk_aggregate, asmk_scores

    rng = np.random.default_rng(5)
    C = rng.normal(size=(16, 6)).astype(np.float32)
    images = [rng.normal(size=(rng.integers(3, 30), 6)).astype(np.float32) for _ in range(12)]
    agg = [asmk_aggregate(X, C) for X in images]
    scores = asmk_scores(agg[0], agg, alpha=1.0, tau=-2.0)
    V = np.stack([intra_normalize(vlad(X, C), 16) for X in images])
    n = np.array([len(a.words) for a in agg])
    np.testing.assert_allclose(scores, V @ V[0] / np.sqrt(n * n[0]), rtol=1e-4, atol=1e-6)
    assert scores[0] == pytest.approx(1.0, rel=1e-5)


def test_asmk_selectivity_silences_weak_matches():
    from coursekit.aggregation import selectivity

    np.testing.assert_allclose(selectivity(np.array([-0.5, 0.0, 0.5, 1.0]), alpha=3, tau=0.0), [0, 0, 0.125, 1])
