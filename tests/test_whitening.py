import numpy as np
import pytest

from coursekit.whitening import fit_pca


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
