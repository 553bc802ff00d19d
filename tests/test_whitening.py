import numpy as np
import pytest

from coursekit.whitening import fit_pca, fit_pca_whitening, fit_shrunk_whitening


def test_pca_finds_the_axes_of_an_anisotropic_cloud():
    rng = np.random.default_rng(0)
    R = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    X = (rng.normal(size=(5000, 3)) * [5.0, 2.0, 0.5]) @ R.T + [1.0, -2.0, 3.0]
    pca = fit_pca(X, 2)
    assert pca.variances == pytest.approx([25.0, 4.0], rel=0.08)
    for i in range(2):  # each component is the matching axis, up to sign
        assert abs(pca.components[i] @ R[:, i]) > 0.99
    Y = pca.project(X)
    assert Y.shape == (5000, 2) and abs(Y.mean(axis=0)).max() < 0.1
    np.testing.assert_allclose(Y.var(axis=0), pca.variances, rtol=1e-3)


def test_pca_refuses_too_many_components():
    with pytest.raises(ValueError, match="d=5"):
        fit_pca(np.zeros((4, 3)), 5)


def test_pca_by_svd_and_by_covariance_agree():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 20)) * np.linspace(3, 0.5, 20)
    big = fit_pca(X, 5)                       # N >= 4 D: eigenvectors of the covariance
    small = fit_pca(X[:60], 5)                # N < 4 D: SVD
    assert big.components.shape == small.components.shape == (5, 20)
    ref = np.linalg.svd(X - X.mean(0), full_matrices=False)[2][:5]
    np.testing.assert_allclose(np.abs(np.sum(big.components * ref, axis=1)), 1.0, atol=1e-5)


def test_whitening_gives_the_training_data_identity_covariance():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 8)) @ rng.normal(size=(8, 8)) + 5.0
    W = fit_pca_whitening(X, 6, eps=0.0)
    Y = W.apply(X, normalize=False)
    np.testing.assert_allclose(np.cov(Y.T), np.eye(6), atol=1e-4)


def test_whitening_agrees_with_scikit_learn():
    from sklearn.decomposition import PCA as SkPCA

    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 12)) * np.arange(1, 13)
    ours = fit_pca_whitening(X, 4, eps=0.0).apply(X[:50], normalize=False)
    theirs = SkPCA(4, whiten=True, svd_solver="full").fit(X).transform(X[:50])
    np.testing.assert_allclose(np.abs(ours), np.abs(theirs), rtol=1e-3, atol=1e-4)


def test_eps_caps_the_amplification_of_weak_directions():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1000, 3)) * [10.0, 1.0, 0.01]
    eps = 1e-2
    W = fit_pca_whitening(X, 3, eps=eps)
    gains = np.linalg.norm(W.P, axis=1)
    assert gains[2] / gains[0] <= np.sqrt((1 + eps) / eps)
    assert gains[2] / gains[0] > 0.5 / np.sqrt(eps)  # and the cap is what binds


def test_apply_l2_normalises_and_checks_the_dimension():
    rng = np.random.default_rng(4)
    W = fit_pca_whitening(rng.normal(size=(100, 10)), 5)
    Y = W.apply(rng.normal(size=(7, 10)))
    np.testing.assert_allclose(np.linalg.norm(Y, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="10-D"):
        W.apply(np.zeros((3, 9)))


def test_whitening_refuses_zero_variance_without_eps():
    X = np.random.default_rng(5).normal(size=(5, 10))  # rank 4 once centred
    with pytest.raises(ValueError, match="zero variance"):
        fit_pca_whitening(X, 5, eps=0.0)
    assert fit_pca_whitening(X, 5, eps=1e-3).P.shape == (5, 10)


def test_pca_refuses_bad_data():
    with pytest.raises(ValueError, match="NaN"):
        fit_pca(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="N >= 2"):
        fit_pca(np.zeros((1, 3)))


def test_shrunk_whitening_is_the_inverse_square_root_of_the_shrunk_covariance():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(8, 20)) @ rng.normal(size=(20, 20))       # 8 vectors in 20-D: rank 7 once centred
    eps = 0.05
    W = fit_shrunk_whitening(X, eps)
    Xc = X - X.mean(0)
    cov = Xc.T @ Xc / (len(X) - 1)
    lam, V = np.linalg.eigh(cov)
    lam1 = lam.max()
    M = V @ np.diag((np.maximum(lam, 0) + eps * lam1) ** -0.5) @ V.T    # (Sigma + eps lambda_1 I)^(-1/2)
    Y = rng.normal(size=(5, 20))
    expected = (Y - X.mean(0)) @ M.T
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(W.apply(Y), expected, atol=1e-5)
    assert W.apply(Y).shape == (5, 20)
    with pytest.raises(ValueError, match="eps must be > 0"):
        fit_shrunk_whitening(X, 0.0)
