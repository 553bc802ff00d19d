"""Aggregating local descriptors into one vector per image: VLAD and Fisher vectors.

Bag of words keeps, per visual word, only *how many* descriptors fell in
it. VLAD and the Fisher vector keep *where* they fell relative to the word:
the residuals ``x - c_k``. A few thousand dimensions then carry what a
million-word vocabulary carried, and images compare with a dot product.

Shapes: an image's descriptors are ``X (T, D)``; a vocabulary ``C (K, D)``;
VLAD is ``(K * D,)`` and the Fisher vector ``(2 * K * D,)``, ``float32``,
laid out word by word (``v[k * D:(k + 1) * D]`` belongs to word ``k``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .bow import assign

__all__ = ["power_normalize", "l2_normalize", "intra_normalize", "vlad", "GMM", "fit_gmm",
           "gmm_posteriors", "fisher_vector", "dataset_gmm", "ASMKImage", "asmk_aggregate", "selectivity", "asmk_scores"]


# --------------------------------------------------------------------------- normalisations

def power_normalize(v: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``sign(v) |v|^alpha`` elementwise; ``alpha = 0.5`` is the signed square
    root (SSR). It damps components made large by repeated structures
    (Jegou et al., TPAMI 2012; Perronnin et al., ECCV 2010)."""
    v = np.asarray(v, dtype=np.float32)
    return np.sign(v) * np.abs(v) ** alpha


def l2_normalize(v: np.ndarray, axis: int = -1) -> np.ndarray:
    """Divide by the L2 norm along ``axis`` (a zero vector stays zero)."""
    v = np.asarray(v, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=axis, keepdims=True), 1e-12)


def intra_normalize(v: np.ndarray, k: int) -> np.ndarray:
    """L2-normalise each word's block of a ``(..., K * D)`` vector separately
    (Arandjelovic and Zisserman, "All about VLAD", CVPR 2013): every word
    then has the same say, however many descriptors fell in it."""
    v = np.asarray(v, dtype=np.float32)
    blocks = v.reshape(*v.shape[:-1], k, v.shape[-1] // k)
    return l2_normalize(blocks, axis=-1).reshape(v.shape)


# --------------------------------------------------------------------------- VLAD

def vlad(X: np.ndarray, C: np.ndarray, words: np.ndarray | None = None) -> np.ndarray:
    """Vector of locally aggregated descriptors, unnormalised: ``(K * D,) float32``.

    Jegou, Douze, Schmid and Perez, "Aggregating local descriptors into a
    compact image representation", CVPR 2010:
    ``v_k = sum over x with NN(x) = k of (x - c_k)``.

    ``X (T, D)``, ``C (K, D)``; ``words (T,)`` the nearest word of each
    descriptor (computed when not given). Apply :func:`power_normalize`,
    :func:`intra_normalize` and :func:`l2_normalize` after, as wanted.
    """
    X = np.asarray(X, dtype=np.float32)
    C = np.asarray(C, dtype=np.float32)
    K, D = C.shape
    if len(X) == 0:
        return np.zeros(K * D, dtype=np.float32)
    words = assign(X, C) if words is None else np.asarray(words, dtype=np.int64)
    # for k in range(K): V[k] = (X[words == k] - C[k]).sum(0)   -- as one sparse product:
    onehot = sp.csr_matrix((np.ones(len(X), np.float32), (words, np.arange(len(X)))), shape=(K, len(X)))
    V = onehot @ X - np.asarray(onehot.sum(axis=1), dtype=np.float32) * C
    return V.astype(np.float32).ravel()


# --------------------------------------------------------------------------- Fisher vectors

@dataclass
class GMM:
    """A Gaussian mixture with diagonal covariances: weights ``w (K,)``,
    means ``mu (K, D)``, variances ``var (K, D)``, all ``float64``."""

    w: np.ndarray
    mu: np.ndarray
    var: np.ndarray

    @property
    def k(self) -> int:
        return len(self.w)


def fit_gmm(X: np.ndarray, k: int, seed: int = 0, max_iter: int = 100, reg: float = 1e-6) -> GMM:
    """Fit a diagonal GMM to training descriptors ``X (M, D)`` with
    scikit-learn's ``GaussianMixture`` (EM), seeded."""
    from sklearn.mixture import GaussianMixture

    g = GaussianMixture(n_components=k, covariance_type="diag", random_state=seed, max_iter=max_iter,
                        reg_covar=reg, init_params="k-means++")
    g.fit(np.asarray(X, dtype=np.float64))
    return GMM(g.weights_.copy(), g.means_.copy(), g.covariances_.copy())


def gmm_posteriors(X: np.ndarray, gmm: GMM) -> np.ndarray:
    """Soft assignments ``gamma_t(k) = p(k | x_t)``: ``(T, K) float64``, rows sum to 1."""
    X = np.asarray(X, dtype=np.float64)
    # log w_k + log N(x_t; mu_k, var_k), expanded so that no (T, K, D) array is formed
    log_det = np.log(2 * np.pi * gmm.var).sum(axis=1)                          # (K,)
    inv = 1.0 / gmm.var                                                          # (K, D)
    maha = (X ** 2) @ inv.T - 2 * X @ (gmm.mu * inv).T + (gmm.mu ** 2 * inv).sum(axis=1)  # (T, K)
    log_p = np.log(gmm.w) - 0.5 * (log_det + maha)
    log_p -= log_p.max(axis=1, keepdims=True)
    p = np.exp(log_p)
    return p / p.sum(axis=1, keepdims=True)


def fisher_vector(X: np.ndarray, gmm: GMM, improved: bool = True) -> np.ndarray:
    """Fisher vector of descriptors ``X (T, D)``: ``(2 * K * D,) float32``.

    Perronnin, Sanchez and Mensink, "Improving the Fisher kernel for
    large-scale image classification", ECCV 2010 (and Sanchez et al., IJCV
    2013), with ``gamma_t(k)`` the posteriors:

    ``G_mu_k    = 1 / (T sqrt(w_k))   sum_t gamma_t(k) (x_t - mu_k) / sigma_k``
    ``G_sigma_k = 1 / (T sqrt(2 w_k)) sum_t gamma_t(k) [(x_t - mu_k)^2 / sigma_k^2 - 1]``

    i.e. the gradient of the mean log-likelihood with respect to the means
    and standard deviations, scaled by the diagonal Fisher information.
    Layout: all ``G_mu`` (word by word), then all ``G_sigma``. With
    ``improved``, the power law (alpha = 0.5) and L2 normalisation follow
    ("improved Fisher vector").
    """
    X = np.asarray(X, dtype=np.float64)
    K, D = gmm.mu.shape
    if len(X) == 0:
        return np.zeros(2 * K * D, dtype=np.float32)
    T = len(X)
    gamma = gmm_posteriors(X, gmm)                                   # (T, K)
    s0 = gamma.sum(axis=0)[:, None]                                 # (K, 1)  sum_t gamma
    s1 = gamma.T @ X                                                 # (K, D)  sum_t gamma x
    s2 = gamma.T @ (X ** 2)                                          # (K, D)  sum_t gamma x^2
    sigma = np.sqrt(gmm.var)
    w = gmm.w[:, None]
    # sum_t gamma (x - mu) = s1 - mu s0 ;  sum_t gamma (x - mu)^2 = s2 - 2 mu s1 + mu^2 s0
    g_mu = (s1 - gmm.mu * s0) / sigma / (T * np.sqrt(w))
    g_sigma = ((s2 - 2 * gmm.mu * s1 + gmm.mu ** 2 * s0) / gmm.var - s0) / (T * np.sqrt(2 * w))
    fv = np.concatenate([g_mu.ravel(), g_sigma.ravel()]).astype(np.float32)
    if improved:
        fv = l2_normalize(power_normalize(fv, 0.5))
    return fv


# --------------------------------------------------------------------------- ASMK

@dataclass
class ASMKImage:
    """An image for the aggregated selective match kernel: the words it
    contains ``words (m,) int64`` (sorted) and, per word, the L2-normalised
    sum of its descriptors' residuals ``V (m, D) float32``."""

    words: np.ndarray
    V: np.ndarray


def asmk_aggregate(X: np.ndarray, C: np.ndarray, words: np.ndarray | None = None) -> ASMKImage:
    """Aggregate an image's residuals per visual word, for ASMK.

    ``V(X_c) = Phi(X_c) / ||Phi(X_c)||`` with ``Phi(X_c) = sum_{x in X_c} (x - c)``
    (Tolias, Avrithis and Jegou, "To aggregate or not to aggregate: selective
    match kernels for image search", ICCV 2013). ``X (T, D)``, ``C (K, D)``.
    """
    K, D = np.asarray(C).shape
    V = vlad(X, C, words).reshape(K, D)
    present = np.flatnonzero(np.abs(V).sum(axis=1) > 0)
    return ASMKImage(present.astype(np.int64), l2_normalize(V[present]))


def selectivity(u: np.ndarray, alpha: float = 3.0, tau: float = 0.0) -> np.ndarray:
    """ASMK's selectivity ``sigma(u) = sign(u) |u|^alpha`` where ``u > tau``,
    else 0: weak word matches are silenced, strong ones kept."""
    return np.where(u > tau, np.sign(u) * np.abs(u) ** alpha, 0.0)


def asmk_scores(query: ASMKImage, db: list[ASMKImage], alpha: float = 3.0, tau: float = 0.0) -> np.ndarray:
    """ASMK similarity of a query to every database image: ``(N,) float32``.

    ``K(X, Y) = gamma(X) gamma(Y) sum_{c in X and Y} sigma(V(X_c)^T V(Y_c))``
    with ``gamma(X) = (sum_c sigma(V(X_c)^T V(X_c)))^(-1/2) = |words of X|^(-1/2)``.
    Only words in both images count: an inverted-file join, vectorised over
    all (query word, database entry) pairs.
    """
    words = np.concatenate([im.words for im in db])                         # (M,) every entry of the database
    owner = np.repeat(np.arange(len(db)), [len(im.words) for im in db])
    vecs = np.concatenate([im.V for im in db])
    order = np.argsort(words, kind="stable")                                  # posting lists, word by word
    words, owner, vecs = words[order], owner[order], vecs[order]
    lo = np.searchsorted(words, query.words, side="left")
    hi = np.searchsorted(words, query.words, side="right")
    # all pairs (query word i, database entry j) with the same word:
    #   for i: for j in range(lo[i], hi[i]): pairs.append((i, j))
    n_pairs = hi - lo
    qi = np.repeat(np.arange(len(query.words)), n_pairs)
    dj = np.arange(n_pairs.sum()) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs) + np.repeat(lo, n_pairs)
    s = selectivity(np.einsum("pd,pd->p", query.V[qi], vecs[dj]), alpha, tau)
    scores = np.bincount(owner[dj], weights=s, minlength=len(db))
    n_words = np.array([max(len(im.words), 1) for im in db], dtype=np.float64)
    return (scores / np.sqrt(max(len(query.words), 1) * n_words)).astype(np.float32)


def dataset_gmm(ds, k: int, d: int = 64, seed: int = 0, n_sample: int = 100_000, progress: bool = True):
    """A diagonal GMM of ``k`` components for Fisher vectors on ``ds``, learned
    on RootSIFT from its training split reduced to ``d`` dimensions by PCA
    (Perronnin et al. reduce SIFT to 64-D: decorrelated dimensions suit a
    diagonal GMM). Cached on disk.

    Returns ``(pca, gmm, saved_seconds)``: project descriptors with
    ``pca.project`` before :func:`fisher_vector`.
    """
    from .bow import training_descriptors
    from .cache import cached_arrays
    from .whitening import PCA, fit_pca

    X, source = training_descriptors(ds, n_sample, seed, progress)
    key = {"what": "gmm", "k": k, "d": d, "source": source, "version": 1}

    def compute():
        pca = fit_pca(X, d)
        g = fit_gmm(pca.project(X), k, seed)
        return {"mean": pca.mean, "components": pca.components, "variances": pca.variances,
                "w": g.w, "mu": g.mu, "var": g.var}

    a, saved = cached_arrays("gmm", key, compute)
    return PCA(a["mean"], a["components"], a["variances"]), GMM(a["w"], a["mu"], a["var"]), saved
