import warnings

import numpy as np
import pytest

from coursekit.learning.mining import positive_pairs
from coursekit.whitening import fit_learned_whitening, fit_pca_whitening, l2_normalize


def random_pairs(rng, N, M):
    i = rng.integers(0, N, size=M)
    return np.stack([i, (i + rng.integers(1, N, size=M)) % N], axis=1)


def cirtorch_whitenlearn(X, qidxs, pidxs):
    """The steps of ``whitenlearn`` (cirtorch/utils/whiten.py), vectors in columns, transcribed."""
    m = X[:, qidxs].mean(axis=1, keepdims=True)
    df = X[:, qidxs] - X[:, pidxs]
    S = np.dot(df, df.T) / df.shape[1]
    P = np.linalg.inv(np.linalg.cholesky(S))
    df = np.dot(P, X - m)
    eigval, eigvec = np.linalg.eig(np.dot(df, df.T))
    order = eigval.argsort()[::-1]
    return m, np.dot(eigvec[:, order].T, P)


def test_pair_differences_come_out_white():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 10)) @ rng.normal(size=(10, 10))
    pairs = random_pairs(rng, 300, 200)
    W = fit_learned_whitening(X, pairs)
    assert W.P.shape == (10, 10) and W.P.dtype == np.float32 and W.mean.dtype == np.float32
    np.testing.assert_allclose(W.mean, X[pairs[:, 0]].mean(axis=0), rtol=1e-5, atol=1e-5)
    diff = W.apply(X[pairs[:, 0]], normalize=False) - W.apply(X[pairs[:, 1]], normalize=False)
    np.testing.assert_allclose(diff.T @ diff / len(diff), np.eye(10), atol=1e-4)
    # and the rotation orders the learning data's directions by decreasing energy
    Y = W.apply(X, normalize=False).astype(np.float64)
    C = Y.T @ Y
    np.testing.assert_allclose(C - np.diag(np.diag(C)), 0.0, atol=1e-3 * C[0, 0])
    assert (np.diff(np.diag(C)) <= 0).all()


@pytest.mark.parametrize("d", [None, 5])
def test_agrees_with_the_cirtorch_steps(d):
    rng = np.random.default_rng(1)
    X = l2_normalize(rng.normal(size=(200, 12)) * np.linspace(3, 0.3, 12))
    pairs = random_pairs(rng, 200, 150)
    W = fit_learned_whitening(X, pairs, d=d)
    m, P = cirtorch_whitenlearn(X.T.astype(np.float64), pairs[:, 0], pairs[:, 1])
    P = P[:d]
    np.testing.assert_allclose(W.mean, m[:, 0], atol=1e-6)
    assert W.P.shape == P.shape
    signs = np.sign(np.sum(W.P * P, axis=1))              # eigenvectors are defined up to sign
    np.testing.assert_allclose(W.P, P * signs[:, None], rtol=1e-3, atol=1e-3 * np.abs(P).max())
    # applied, as cirtorch's whitenapply: P (x - m), L2-normalised
    Z = P @ (X.T - m)
    Z /= np.linalg.norm(Z, axis=0)
    np.testing.assert_allclose(np.abs(W.apply(X[:20])), np.abs(Z.T[:20]), atol=1e-4)


def test_learned_whitening_beats_pca_whitening_when_pairs_differ_along_nuisance_directions():
    """Objects differ outside an 8-D "nuisance" subspace; images of one object differ inside it.

    PCA-whitening sees only the total variance, which is alike in every
    direction; Lw sees, from the pairs, which directions are nuisance.
    Learned on 100 training objects, tested on 100 others (query: one
    image; database: the other image of every test object).
    """
    rng = np.random.default_rng(3)
    D = 32
    U = np.linalg.qr(rng.normal(size=(D, 8)))[0]

    def images(K, per):
        c = rng.normal(size=(K, D))
        c -= (c @ U) @ U.T
        lab = np.repeat(np.arange(K), per)
        X = c[lab] + 3.0 * rng.normal(size=(len(lab), 8)) @ U.T + 0.5 * rng.normal(size=(len(lab), D))
        return l2_normalize(X), lab

    X_train, labels = images(100, 4)
    X_test, _ = images(100, 2)
    q, db = X_test[0::2], X_test[1::2]

    def top1(f):
        return float(np.mean(np.argmax(f(q) @ f(db).T, axis=1) == np.arange(len(q))))

    plain = top1(lambda x: x)
    pcaw = top1(fit_pca_whitening(X_train, D, eps=1e-3).apply)
    lw = top1(fit_learned_whitening(X_train, positive_pairs(labels, seed=0)).apply)
    assert plain < pcaw < lw - 0.05, (plain, pcaw, lw)


def test_singular_difference_covariance_gets_a_ridge():
    rng = np.random.default_rng(4)
    X = l2_normalize(rng.normal(size=(40, 30)))
    pairs = random_pairs(rng, 40, 10)                     # 10 pairs, 30 dimensions: S has rank 10
    diff = X[pairs[:, 0]] - X[pairs[:, 1]]
    mean_eig = np.trace(diff.T @ diff / 10) / 30
    with pytest.warns(RuntimeWarning, match="singular"):
        W = fit_learned_whitening(X, pairs, d=12)
    assert W.P.shape == (12, 30) and np.isfinite(W.P).all()
    # the smallest ridge that works: directions no pair explored are amplified enormously
    assert np.linalg.norm(W.P, 2) > 1e3 / np.sqrt(mean_eig)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        W = fit_learned_whitening(X, pairs, d=12, eps=0.1)
    # eps caps the gain at 1 / sqrt(eps * mean eigenvalue), reached on those directions
    gain = np.linalg.norm(W.P.astype(np.float64), 2)
    assert gain == pytest.approx(1 / np.sqrt(0.1 * mean_eig), rel=1e-3)


def test_learned_whitening_checks_its_arguments():
    X = np.zeros((5, 3))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        fit_learned_whitening(X, np.arange(4))
    with pytest.raises(ValueError, match="X has 5 rows"):
        fit_learned_whitening(X, np.array([[0, 5]]))
    with pytest.raises(ValueError, match="d=4"):
        fit_learned_whitening(X, np.array([[0, 1]]), d=4)
