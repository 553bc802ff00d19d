"""PCA and PCA-whitening of global descriptors.

PCA (principal component analysis) finds the directions of largest
variance by an SVD of the centred data: ``X - m = U S V^T``; the rows of
``V^T`` are the directions ``E^T``, ``lambda = S^2 / (n - 1)`` the
variances along them. Projecting on the first ``d`` keeps most of the
energy in fewer dimensions.

PCA-whitening goes one step further: it divides each projected coordinate
by its standard deviation, ``P = diag(lambda)^(-1/2) E^T``, so that the
learning data have identity covariance. For retrieval (Jegou and Chum,
"Negative evidences and co-occurrences in image retrieval: the benefit of
PCA and whitening", ECCV 2012) the whitened vectors are L2-normalised
again: whitening lowers the weight of directions along which many images
vary together (co-occurring visual words, bursts of similar features)
that a plain dot product would count many times over. It must be learned
on a set *disjoint* from the queries and the database (a training split),
or the evaluation flatters it.

The small eigenvalues are mostly noise, and ``lambda^(-1/2)`` amplifies
them most; ``eps`` regularises: ``P = diag(lambda + eps * lambda_1)^(-1/2) E^T``,
so that no direction is amplified more than ``sqrt((1 + eps) / eps)``
times as much as the first (about ``1 / sqrt(eps)``).

With few training vectors (``T``, and ``T - 1 < D``), PCA-whitening can
keep at most ``T - 1`` directions, and the directions along which the
test images differ are mostly among those the training images never
explored. :func:`fit_shrunk_whitening` keeps them all: the same formula on
every direction of ``R^D``, ``(Sigma + eps lambda_1 I)^(-1/2)`` (notebook 05
measures both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PCA", "fit_pca", "Whitening", "fit_pca_whitening", "ShrunkWhitening", "fit_shrunk_whitening", "l2_normalize"]


@dataclass
class PCA:
    """A fitted projection: ``mean (D,)``, ``components (d, D)`` (rows are
    unit directions, by decreasing variance) and their ``variances (d,)``."""

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray

    def project(self, X: np.ndarray) -> np.ndarray:
        """``(N, D) -> (N, d) float32``: centre, then project."""
        return ((np.asarray(X, dtype=np.float32) - self.mean) @ self.components.T).astype(np.float32)


def _check(X: np.ndarray, d: int | None) -> tuple[np.ndarray, int]:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"PCA needs (N, D) data with N >= 2 rows; got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("the data for PCA contain NaN or infinite values: check the descriptors")
    d = min(X.shape) if d is None else d
    if not 1 <= d <= min(X.shape):
        raise ValueError(f"cannot keep d={d} components of data with shape {X.shape}: "
                         f"d must be between 1 and min(N, D) = {min(X.shape)}")
    return X, d


def fit_pca(X: np.ndarray, d: int | None = None) -> PCA:
    """PCA of ``X (N, D)`` keeping ``d <= min(N, D)`` components (all by default).

    By the SVD of the centred data when ``N < 4 D`` (few, long vectors: VLAD
    or Fisher vectors of a training split); otherwise by the eigenvectors
    of the ``(D, D)`` covariance, which is cheaper for many short vectors
    and gives the same directions (up to sign).
    """
    from threadpoolctl import threadpool_limits

    X, d = _check(X, d)
    mean = X.mean(axis=0)
    Xc = X - mean
    with threadpool_limits(1):  # two BLAS threads on two busy cores run slower than one
        if len(X) < 4 * X.shape[1]:
            _, S, Vt = np.linalg.svd(Xc, full_matrices=False)
            E, lam = Vt[:d], S[:d] ** 2 / (len(X) - 1)
        else:
            lam, V = np.linalg.eigh(Xc.T @ Xc / (len(X) - 1))  # ascending
            E, lam = V[:, ::-1][:, :d].T, lam[::-1][:d]
    return PCA(mean.astype(np.float32), E.astype(np.float32), np.maximum(lam, 0.0).astype(np.float32))


def l2_normalize(X: np.ndarray) -> np.ndarray:
    """Rows of ``X (N, D)`` scaled to unit L2 norm (zero rows stay zero): ``(N, D) float32``."""
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


@dataclass
class Whitening:
    """A learned PCA-whitening: ``mean m (D,)`` and ``P (d, D) float32``.

    :meth:`apply` maps ``x`` to ``P (x - m)``, L2-normalised.
    """

    mean: np.ndarray
    P: np.ndarray

    def apply(self, X: np.ndarray, normalize: bool = True) -> np.ndarray:
        """``(N, D) -> (N, d) float32``: ``(X - m) P^T``, then L2 unless ``normalize=False``."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.P.shape[1]:
            raise ValueError(f"this whitening was learned on {self.P.shape[1]}-D vectors; got shape {X.shape}")
        Y = (X - self.mean) @ self.P.T
        return l2_normalize(Y) if normalize else Y.astype(np.float32)


def fit_pca_whitening(X: np.ndarray, d: int | None = None, eps: float = 1e-3) -> Whitening:
    """Learn PCA-whitening on ``X (N, D)`` (a training split), keeping ``d`` dimensions.

    Jegou and Chum, ECCV 2012: ``P = diag(lambda + eps * lambda_1)^(-1/2) E^T``
    with ``E (D, d)`` the first ``d`` principal directions and ``lambda (d,)``
    their variances (:func:`fit_pca`). ``eps = 0`` is plain whitening; it
    needs ``d`` below the rank of the centred data (at most ``N - 1``), or
    a zero variance is divided by.
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    pca = fit_pca(X, d)
    lam = pca.variances.astype(np.float64)
    lam_reg = lam + eps * lam[0]
    flat = lam_reg <= 1e-9 * lam[0]  # zero up to rounding
    if flat.any():
        raise ValueError(f"direction {int(np.argmax(flat))} of {len(lam)} has zero variance: keep fewer dimensions "
                         f"(d < N = {len(X)} training vectors) or set eps > 0")
    P = pca.components / np.sqrt(lam_reg)[:, None]
    return Whitening(pca.mean, P.astype(np.float32))


@dataclass
class ShrunkWhitening:
    """Whitening by a covariance shrunk towards the identity, every dimension kept.

    ``x -> (Sigma + eps lambda_1 I)^(-1/2) (x - m)``, up to a constant factor
    (which the L2 normalisation removes): ``x - m`` with its component along each
    learned direction ``e_i`` multiplied by ``sqrt(eps lambda_1 / (lambda_i + eps lambda_1))``.
    It is :func:`fit_pca_whitening`'s formula applied to all ``D`` directions,
    those without variance in the training set included (``lambda = 0``), kept
    in the original coordinates. ``mean (D,)``, ``components (T, D)``,
    ``damping (T,) float32``.
    """

    mean: np.ndarray
    components: np.ndarray
    damping: np.ndarray

    def apply(self, X: np.ndarray, normalize: bool = True) -> np.ndarray:
        """``(N, D) -> (N, D) float32``, then L2 unless ``normalize=False``."""
        Xc = np.asarray(X, dtype=np.float32) - self.mean
        Y = Xc + ((Xc @ self.components.T) * (self.damping - 1.0)) @ self.components
        return l2_normalize(Y) if normalize else Y.astype(np.float32)


def fit_shrunk_whitening(X: np.ndarray, eps: float = 1e-3) -> ShrunkWhitening:
    """Learn :class:`ShrunkWhitening` on ``X (N, D)``; ``eps > 0``.

    With few training vectors (``N - 1 < D``) PCA-whitening can keep at most
    ``N - 1`` directions; this keeps the others too, with the weight
    ``1 / sqrt(eps lambda_1)`` of a direction of zero variance (akin to
    Ledoit and Wolf's shrinkage, J. Multivariate Analysis 2004).
    """
    if eps <= 0:
        raise ValueError(f"eps must be > 0 to keep the directions without variance, got {eps}")
    pca = fit_pca(X)
    lam = pca.variances.astype(np.float64)
    damping = np.sqrt(eps * lam[0] / (lam + eps * lam[0]))
    return ShrunkWhitening(pca.mean, pca.components, damping.astype(np.float32))
