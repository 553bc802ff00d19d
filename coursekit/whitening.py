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

:func:`fit_learned_whitening` ("Lw", Mikolajczyk and Matas, ICCV 2007;
Radenovic, Tolias and Chum, TPAMI 2018) learns the whitening from matching
pairs instead: it whitens the differences between images of one object
(notebook 08).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .aggregation import l2_normalize  # re-exported: whitened vectors are L2-normalised again

__all__ = ["PCA", "fit_pca", "Whitening", "fit_pca_whitening", "ShrunkWhitening", "fit_shrunk_whitening",
           "fit_learned_whitening", "l2_normalize"]


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


def fit_learned_whitening(X: np.ndarray, pairs: np.ndarray, d: int | None = None, eps: float = 0.0) -> Whitening:
    """Learned whitening ("Lw") from matching pairs: a :class:`Whitening` keeping ``d`` dimensions.

    Mikolajczyk and Matas, "Improving descriptors for fast tree matching by
    optimal linear projection", ICCV 2007, as used on CNN descriptors by
    Radenovic, Tolias and Chum, "Fine-tuning CNN image retrieval with no
    human annotation", TPAMI 2018. ``X (N, D)`` the training vectors (L2-
    normalised); ``pairs (M, 2)`` int indices into ``X`` of matching images.
    The steps of their code (``whitenlearn`` in ``cirtorch/utils/whiten.py``):

    1. ``m`` = the mean of the pairs' first images ``X[pairs[:, 0]]``;
    2. ``S = sum_k (x_i - x_j)(x_i - x_j)^T / M`` over the pairs ``(i, j)``
       (their differences' second moment, not centred);
    3. ``P1 = L^-1`` with ``S = L L^T`` (Cholesky): ``P1 S P1^T = I``, the
       differences between matching images are whitened, so the directions
       along which images of one object vary (viewpoint, lighting) are
       shrunk and the rare ones amplified;
    4. the eigenvectors ``E`` of ``sum_n P1 (x_n - m)(x_n - m)^T P1^T`` over
       *all* of ``X`` (by decreasing eigenvalue) rotate it: ``P = E^T P1``,
       whose first ``d`` rows are kept (all ``D`` by default). The rotation
       changes no distance; it orders the directions by how much the images
       vary along them, so that truncating keeps the most discriminative.

    ``S`` is singular when there are fewer pairs than dimensions (``M < D``),
    or when the pairs never differ along some direction. ``eps > 0`` adds the
    ridge ``eps * trace(S) / D`` (a fraction of its mean eigenvalue) to its
    diagonal; with ``eps = 0`` a singular ``S`` gets, as in their code, the
    smallest ridge (``1e-10``, ``1e-9``, ... times ``trace(S) / D``) that makes
    it positive definite, with a warning: the directions the pairs never
    explored are then amplified enormously, so with few pairs pass ``eps``.
    float64 inside; ``mean (D,)`` and ``P (d, D)`` float32. Each eigenvector's
    sign is fixed so that its largest entry is positive.
    """
    import warnings

    from threadpoolctl import threadpool_limits

    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or not np.isfinite(X).all():
        raise ValueError(f"X must be (N, D) finite vectors; got shape {X.shape}")
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0 or not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(f"pairs must be (M, 2) integer indices into X, M >= 1; got {pairs.dtype} {pairs.shape}")
    if pairs.min() < 0 or pairs.max() >= len(X):
        raise ValueError(f"pairs index images {pairs.min()}..{pairs.max()}, but X has {len(X)} rows")
    D = X.shape[1]
    d = D if d is None else d
    if not 1 <= d <= D:
        raise ValueError(f"cannot keep d={d} dimensions of {D}-D vectors: d must be between 1 and {D}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    with threadpool_limits(1):  # as in fit_pca: one BLAS thread on a busy 2-core machine
        m = X[pairs[:, 0]].mean(axis=0)
        diff = X[pairs[:, 0]] - X[pairs[:, 1]]
        S = diff.T @ diff / len(diff)
        scale = max(np.trace(S) / D, 1e-300)
        S = S + eps * scale * np.eye(D)
        alpha = 0.0
        while True:
            try:
                L = np.linalg.cholesky(S + alpha * scale * np.eye(D))
                break
            except np.linalg.LinAlgError:
                alpha = 1e-10 if alpha == 0 else alpha * 10
                if alpha > 1e3:
                    raise ValueError("the pairs' difference covariance is not positive definite even with a "
                                     "large ridge: are the pairs' images all identical?") from None
        if alpha:
            warnings.warn(f"the covariance of the {len(diff)} pair differences is singular ({D}-D vectors): "
                          f"added {alpha:.0e} x trace(S)/D to its diagonal; with few pairs, pass eps "
                          f"(e.g. 0.1) for a steadier whitening", RuntimeWarning, stacklevel=2)
        P1 = np.linalg.inv(L)
        Y = (X - m) @ P1.T
        lam, E = np.linalg.eigh(Y.T @ Y)                  # ascending
        E = E[:, ::-1][:, :d]
        E *= np.sign(E[np.abs(E).argmax(axis=0), np.arange(d)])   # the largest entry of each eigenvector > 0
        P = E.T @ P1
    return Whitening(m.astype(np.float32), P.astype(np.float32))
