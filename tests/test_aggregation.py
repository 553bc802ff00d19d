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


# --------------------------------------------------------------------------- spatial pyramid

def test_spatial_cells_are_numbered_level_by_level_row_major():
    from coursekit.aggregation import spatial_cells

    xy = np.array([[10, 10], [90, 10], [10, 70], [90, 70], [100, 80], [0, 0], [49.9, 40]])   # image 100 wide, 80 high
    cells = spatial_cells(xy, (80, 100, 3), grid=((1, 1), (2, 2), (1, 3)))
    np.testing.assert_array_equal(cells[:, 0], 0)
    np.testing.assert_array_equal(cells[:, 1], [1, 2, 3, 4, 4, 1, 3])            # the far edge is in the last cell
    np.testing.assert_array_equal(cells[:, 2], [5, 7, 5, 7, 7, 5, 6])


def _pyramid_case(seed=6, T=80, K=5, D=3):
    rng = np.random.default_rng(seed)
    C = rng.normal(size=(K, D)).astype(np.float32)
    X = rng.normal(size=(T, D)).astype(np.float32)
    xy = rng.uniform([0, 0], [64, 48], size=(T, 2))
    return X, xy, C


def test_vlad_pyramid_levels_are_vlads_of_their_cells():
    from coursekit.aggregation import vlad_pyramid

    X, xy, C = _pyramid_case()
    K, D = C.shape
    grid = ((1, 1), (2, 2), (3, 1))
    v = vlad_pyramid(X, xy, (48, 64), C, grid)
    assert v.shape == (8 * K * D,) and v.dtype == np.float32
    blocks = v.reshape(8, K * D)
    np.testing.assert_allclose(blocks[0], vlad(X, C), atol=1e-5)                  # the 1x1 level is plain VLAD
    np.testing.assert_allclose(blocks[1:5].sum(0), vlad(X, C), atol=1e-5)        # the quarters sum to it
    np.testing.assert_allclose(blocks[5:8].sum(0), vlad(X, C), atol=1e-5)        # so do the three bands
    # each cell is the VLAD of the descriptors that fall in it
    top_left = (xy[:, 0] < 32) & (xy[:, 1] < 24)
    np.testing.assert_allclose(blocks[1], vlad(X[top_left], C), atol=1e-5)
    middle_band = (xy[:, 1] >= 16) & (xy[:, 1] < 32)
    np.testing.assert_allclose(blocks[6], vlad(X[middle_band], C), atol=1e-5)


def test_vlad_pyramid_moves_with_the_keypoints_and_handles_no_descriptors():
    from coursekit.aggregation import vlad_pyramid

    X, xy, C = _pyramid_case(7)
    v = vlad_pyramid(X, xy, (48, 64), C)
    flipped = vlad_pyramid(X, np.c_[64 - xy[:, 0], xy[:, 1]], (48, 64), C).reshape(5, -1)
    blocks = v.reshape(5, -1)
    np.testing.assert_allclose(flipped[[0, 2, 1, 4, 3]], blocks, atol=1e-5)       # a mirror swaps left and right
    assert vlad_pyramid(np.zeros((0, 3)), np.zeros((0, 2)), (48, 64), C).shape == (5 * 15,)


# --------------------------------------------------------------------------- triangulation embedding

def test_triangulation_blocks_are_unit_directions():
    from coursekit.aggregation import triangulate

    rng = np.random.default_rng(8)
    C = rng.normal(size=(4, 6)).astype(np.float32)
    X = np.vstack([rng.normal(size=(20, 6)), C[2:3]]).astype(np.float32)         # the last sits on anchor 2
    phi = triangulate(X, C)
    assert phi.shape == (21, 24) and phi.dtype == np.float32
    norms = np.linalg.norm(phi.reshape(21, 4, 6), axis=2)
    np.testing.assert_allclose(norms[:20], 1, rtol=1e-5)
    np.testing.assert_allclose(norms[20], [1, 1, 0, 1], atol=1e-6)
    expected = (X[0] - C[1]) / np.linalg.norm(X[0] - C[1])
    np.testing.assert_allclose(phi[0, 6:12], expected, rtol=1e-5)


def _fitted_triangulation(drop=0, seed=9):
    from coursekit.aggregation import fit_triangulation

    rng = np.random.default_rng(seed)
    C = rng.normal(size=(3, 4)).astype(np.float32)
    X_train = (rng.normal(size=(3000, 4)) * [1, 2, 0.5, 1]).astype(np.float32)
    return fit_triangulation(X_train, C, drop=drop), X_train, rng


@pytest.mark.parametrize("drop", [0, 2])
def test_whitened_training_embeddings_have_zero_mean_and_identity_covariance(drop):
    from coursekit.aggregation import triangulation_embed

    te, X_train, _ = _fitted_triangulation(drop)
    E = triangulation_embed(X_train, te).astype(np.float64)
    assert E.shape == (3000, 12 - drop) and te.dim == 12 - drop
    np.testing.assert_allclose(E.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(np.cov(E, rowvar=False), np.eye(12 - drop), atol=2e-3)


def test_sum_aggregation_is_the_normalised_sum_of_the_embeddings():
    from coursekit.aggregation import triangulation_aggregate, triangulation_embed

    te, _, rng = _fitted_triangulation()
    X = rng.normal(size=(40, 4)).astype(np.float32)
    psi = triangulation_embed(X, te).astype(np.float64).sum(0)
    expected = np.sign(psi) * np.sqrt(np.abs(psi))
    np.testing.assert_allclose(triangulation_aggregate(X, te), expected / np.linalg.norm(expected), atol=1e-5)
    assert np.linalg.norm(triangulation_aggregate(X, te, democratic=True)) == pytest.approx(1, rel=1e-5)
    assert not np.any(triangulation_aggregate(np.zeros((0, 4)), te))


def test_democratic_weights_equalise_the_contributions():
    from coursekit.aggregation import democratic_weights, triangulation_embed

    te, _, rng = _fitted_triangulation()
    X = np.vstack([rng.normal(size=(30, 4)), np.repeat(rng.normal(size=(1, 4)), 15, axis=0)])   # a burst of 15
    E = triangulation_embed(X.astype(np.float32), te).astype(np.float64)
    G = E @ E.T
    lam = democratic_weights(G, n_iter=200)
    contribution = lam * (np.maximum(G, 0) @ lam)                 # lambda_i phi_i . psi on the clipped kernel
    np.testing.assert_allclose(contribution, 1, rtol=1e-6)
    assert lam[30:].max() < 0.7 * np.median(lam[:30])            # the repeated descriptor is weighed down
    plain = np.maximum(G, 0).sum(1)                               # its share with equal weights
    assert plain[30:].min() > plain[:30].max()
    lam10 = democratic_weights(G, n_iter=10)
    np.testing.assert_allclose(lam10 * (np.maximum(G, 0) @ lam10), 1, atol=0.05)


def test_dataset_triangulation_caches_one_pca_for_every_drop(monkeypatch, tmp_path):
    """Learned on the dataset's training descriptors, cached: a second call, with another
    ``drop``, reuses the PCA and equals fitting directly."""
    from coursekit import bow
    from coursekit.aggregation import dataset_triangulation, fit_triangulation

    rng = np.random.default_rng(10)
    C = rng.normal(size=(3, 4)).astype(np.float32)
    X = rng.normal(size=(500, 4)).astype(np.float32)
    calls = []
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(bow, "dataset_vocabulary", lambda ds, k, seed=0, progress=True: (C[:k], 0.0))
    monkeypatch.setattr(bow, "training_descriptors",
                        lambda ds, n, seed=0, progress=True: (calls.append(n) or X[:n], {"fake": n}))
    te0, saved0 = dataset_triangulation(None, 3, drop=0, n_sample=400)
    te2, saved2 = dataset_triangulation(None, 3, drop=2, n_sample=400)
    assert saved0 == 0.0 and saved2 > 0.0                        # the second came from the cache
    assert te0.dim == 12 and te2.dim == 10
    direct = fit_triangulation(X[:400], C, drop=2)
    np.testing.assert_allclose(np.abs(te2.P), np.abs(direct.P), rtol=1e-3, atol=1e-4)   # up to each row's sign
    assert calls == [400, 400]
