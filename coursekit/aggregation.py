"""Aggregating local descriptors into one vector per image: VLAD and Fisher vectors.

Bag of words keeps, per visual word, only *how many* descriptors fell in
it. VLAD and the Fisher vector keep *where* they fell relative to the word:
the residuals ``x - c_k``. A few thousand dimensions then carry what a
million-word vocabulary carried, and images compare with a dot product.

Shapes: an image's descriptors are ``X (T, D)``; a vocabulary ``C (K, D)``;
VLAD is ``(K * D,)`` and the Fisher vector ``(2 * K * D,)``, ``float32``,
laid out word by word (``v[k * D:(k + 1) * D]`` belongs to word ``k``).

Also here: VLAD over a spatial pyramid (:func:`vlad_pyramid`), the
aggregated selective match kernel (ASMK), and the triangulation embedding
with sum or democratic aggregation (:func:`triangulation_aggregate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .bow import assign

__all__ = ["power_normalize", "l2_normalize", "intra_normalize", "vlad", "spatial_cells", "vlad_pyramid", "GMM",
           "fit_gmm", "gmm_posteriors", "fisher_vector", "dataset_gmm", "ASMKImage", "asmk_aggregate", "selectivity",
           "asmk_scores", "TriangulationEmbedding", "triangulate", "fit_triangulation", "triangulation_embed",
           "democratic_weights", "triangulation_aggregate", "dataset_triangulation"]


# --------------------------------------------------------------------------- normalisations

def power_normalize(v: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``sign(v) |v|^alpha`` elementwise; ``alpha = 0.5`` is the signed square
    root (SSR). It damps components made large by repeated structures
    (Jegou et al., TPAMI 2012; Perronnin et al., ECCV 2010)."""
    v = np.asarray(v, dtype=np.float32)
    return np.sign(v) * np.abs(v) ** alpha


def l2_normalize(v: np.ndarray, axis: int = -1) -> np.ndarray:
    """``v`` divided by its L2 norm along ``axis`` (the last: each row of ``(N, D)`` rows), as float32 of ``v``'s
    shape; a zero vector stays zero (the norm is floored at 1e-12)."""
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


def spatial_cells(xy: np.ndarray, image_shape: tuple[int, ...], grid=((1, 1), (2, 2))) -> np.ndarray:
    """The cell of every keypoint at every level of a spatial pyramid: ``(T, L) int64``.

    ``xy (T, 2)``: keypoint positions ``x, y`` in pixels (column, row);
    ``image_shape``: ``(H, W, ...)`` of the image they were found in;
    ``grid``: one ``(rows, cols)`` per level. Cells are numbered across the
    whole pyramid, level after level, row-major inside a level: level
    ``(1, 1)`` is cell 0, then level ``(2, 2)`` holds cells 1 (top left),
    2 (top right), 3, 4. A point on the right or bottom edge belongs to the
    last cell.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    H, W = float(image_shape[0]), float(image_shape[1])
    rows = np.array([g[0] for g in grid], dtype=np.int64)                  # (L,)
    cols = np.array([g[1] for g in grid], dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(rows * cols)[:-1]])              # first cell of each level
    r = np.clip(np.floor(xy[:, 1:2] / H * rows), 0, rows - 1).astype(np.int64)   # (T, L)
    c = np.clip(np.floor(xy[:, 0:1] / W * cols), 0, cols - 1).astype(np.int64)
    return first + r * cols + c


def vlad_pyramid(X: np.ndarray, xy: np.ndarray, image_shape: tuple[int, ...], C: np.ndarray,
                 grid=((1, 1), (2, 2)), words: np.ndarray | None = None) -> np.ndarray:
    """VLAD over a spatial pyramid, unnormalised: ``(n_cells * K * D,) float32``.

    One VLAD (:func:`vlad`) per cell of every level of ``grid``, concatenated
    in the order of :func:`spatial_cells`: block ``cell * K + k`` of length
    ``D`` belongs to word ``k`` in that cell. The default, the whole image
    and its 2x2 quarters (5 cells), is the pyramid of Lazebnik, Schmid and
    Ponce ("Beyond bags of features: spatial pyramid matching", CVPR 2006)
    with its two first levels; Perronnin, Sanchez and Mensink (ECCV 2010)
    concatenate Fisher vectors over such cells in the same way. The cells of
    one level sum to the plain VLAD, which is the ``(1, 1)`` level itself.

    ``X (T, D)`` descriptors, ``xy (T, 2)`` their keypoints' ``x, y`` in
    pixels of an image of shape ``image_shape (H, W, ...)``, ``C (K, D)``,
    ``words (T,)`` as in :func:`vlad`. Normalise afterwards as for VLAD; with
    :func:`intra_normalize`, pass ``n_cells * K`` blocks.
    """
    X = np.asarray(X, dtype=np.float32)
    C = np.asarray(C, dtype=np.float32)
    K, D = C.shape
    n_cells = int(sum(r * c for r, c in grid))
    if len(X) == 0:
        return np.zeros(n_cells * K * D, dtype=np.float32)
    words = assign(X, C) if words is None else np.asarray(words, dtype=np.int64)
    cells = spatial_cells(xy, image_shape, grid)                                  # (T, L)
    L = cells.shape[1]
    # a pyramid is a plain VLAD over n_cells * K "words" (cell, word), each centred on c_word:
    # every descriptor is counted once per level, in its cell of that level
    slot = (cells * K + words[:, None]).ravel()                                  # (T * L,), descriptor-major
    return vlad(np.repeat(X, L, axis=0), np.tile(C, (n_cells, 1)), slot)


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
    from threadpoolctl import threadpool_limits

    from .bow import training_descriptors
    from .cache import cached_arrays
    from .whitening import PCA, fit_pca

    X, source = training_descriptors(ds, n_sample, seed, progress)
    key = {"what": "gmm", "k": k, "d": d, "source": source, "version": 1}

    def compute():
        pca = fit_pca(X, d)
        with threadpool_limits(1):  # thin products: two threads on a busy 2-core machine were 4-8x slower
            g = fit_gmm(pca.project(X), k, seed)
        return {"mean": pca.mean, "components": pca.components, "variances": pca.variances,
                "w": g.w, "mu": g.mu, "var": g.var}

    a, saved = cached_arrays("gmm", key, compute)
    return PCA(a["mean"], a["components"], a["variances"]), GMM(a["w"], a["mu"], a["var"]), saved


# --------------------------------------------------------------------------- triangulation embedding

@dataclass
class TriangulationEmbedding:
    """A fitted triangulation embedding (see :func:`fit_triangulation`): the
    anchors ``C (K, D)``, the mean ``mean (K * D,)`` of the training
    embeddings, and the whitening projection ``P (d, K * D)``, whose rows are
    principal directions divided by the square root of their variance; all
    ``float32``."""

    C: np.ndarray
    mean: np.ndarray
    P: np.ndarray

    @property
    def dim(self) -> int:
        """``d``, the length of an embedded descriptor and of an aggregated image."""
        return self.P.shape[0]


def triangulate(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """The raw triangulation embedding ``phi_Delta``: ``(T, K * D) float32``.

    Jegou and Zisserman, "Triangulation embedding and democratic aggregation
    for image search", CVPR 2014:
    ``phi_Delta(x) = [(x - c_1) / ||x - c_1||, ..., (x - c_K) / ||x - c_K||]``.
    Each descriptor is described by its *directions* to all ``K`` anchors,
    not by its distances: every block has unit norm (a descriptor exactly on
    an anchor gets a zero block there), so no descriptor weighs more than
    another. ``X (T, D)``, ``C (K, D)``.
    """
    X = np.asarray(X, dtype=np.float32)
    C = np.asarray(C, dtype=np.float32)
    R = X[:, None, :] - C[None, :, :]                                         # (T, K, D) residuals to every anchor
    return l2_normalize(R, axis=-1).reshape(len(X), -1)


def fit_triangulation(X: np.ndarray, C: np.ndarray, drop: int = 0, d: int | None = None,
                      eps: float = 1e-6) -> TriangulationEmbedding:
    """Learn the centring and the PCA-whitening of :func:`triangulate` on
    training descriptors ``X (M, D)`` with anchors ``C (K, D)``.

    ``phi(x) = P (phi_Delta(x) - mean)``: the mean and the covariance are those
    of ``phi_Delta`` over the training descriptors (Jegou and Zisserman, CVPR
    2014), so that the embedded training descriptors have zero mean and
    identity covariance. PCA by :func:`coursekit.whitening.fit_pca`; the
    first ``drop`` principal directions (those of largest variance) are left
    out and the next ``d`` kept (default: all that remain of ``K * D``,
    which needs ``M >= K * D``). ``eps`` times the largest variance is added
    to every variance before dividing, so that directions of almost no
    variance are not blown up.
    """
    from .whitening import fit_pca

    C = np.asarray(C, dtype=np.float32)
    phi = triangulate(X, C)
    d = phi.shape[1] - drop if d is None else d
    return _whitened(C, fit_pca(phi, drop + d), drop, d, eps)


def _whitened(C: np.ndarray, pca, drop: int, d: int | None, eps: float) -> TriangulationEmbedding:
    """The embedding from a PCA of ``phi_Delta``: directions ``drop .. drop + d`` rescaled to unit variance."""
    d = len(pca.variances) - drop if d is None else d
    var = pca.variances.astype(np.float64)
    P = pca.components[drop:drop + d] / np.sqrt(var[drop:drop + d] + eps * var[0])[:, None]
    return TriangulationEmbedding(np.asarray(C, np.float32), pca.mean.astype(np.float32), P.astype(np.float32))


def triangulation_embed(X: np.ndarray, te: TriangulationEmbedding) -> np.ndarray:
    """Centred, whitened triangulation embeddings of ``X (T, D)``: ``(T, d) float32``."""
    return ((triangulate(X, te.C) - te.mean) @ te.P.T).astype(np.float32)


def democratic_weights(G: np.ndarray, n_iter: int = 10) -> np.ndarray:
    """Weights ``lambda (T,) float64`` that make every descriptor contribute
    equally to the similarity of its image with itself.

    Democratic aggregation (Jegou and Zisserman, CVPR 2014): with
    ``psi = sum_i lambda_i phi_i``, ask ``lambda_i phi_i . psi`` to be the same
    for every ``i``. ``G (T, T)`` is the Gram matrix ``phi_i . phi_j``; its
    negative entries are set to 0, and ``lambda`` is found by the symmetric
    Sinkhorn-Knopp iteration (Sinkhorn and Knopp, Pacific J. Math. 1967)
    ``lambda <- sqrt(lambda / (G lambda))``, whose fixed point satisfies
    ``lambda_i (G lambda)_i = 1``: ``diag(lambda) G diag(lambda)`` is doubly
    stochastic. ``n_iter`` iterations from ``lambda = 1``.
    """
    G = np.maximum(np.asarray(G, dtype=np.float64), 0.0)
    lam = np.ones(len(G))
    for _ in range(n_iter):
        lam = np.sqrt(lam / np.maximum(G @ lam, 1e-12))
    return lam


def triangulation_aggregate(X: np.ndarray, te: TriangulationEmbedding, democratic: bool = False,
                            alpha: float = 0.5, n_iter: int = 10) -> np.ndarray:
    """One image's triangulation embedding: ``(d,) float32``, L2-normalised.

    Sum aggregation ``psi = sum_x phi(x)``, or with ``democratic`` the
    weighted sum of :func:`democratic_weights`; then the power law
    ``alpha`` (:func:`power_normalize`) and L2. The sum is computed as
    ``P (sum_x phi_Delta(x) - T mean)``: one projection per image rather
    than one per descriptor (the embedding is linear after ``phi_Delta``).
    Democratic aggregation needs every descriptor's embedding and their
    ``(T, T)`` Gram matrix. ``X (T, D)``.
    """
    X = np.asarray(X, dtype=np.float32)
    if len(X) == 0:
        return np.zeros(te.dim, dtype=np.float32)
    if democratic:
        E = triangulation_embed(X, te)                                       # (T, d)
        psi = democratic_weights(E @ E.T, n_iter).astype(np.float32) @ E
    else:
        psi = (triangulate(X, te.C).sum(axis=0) - len(X) * te.mean) @ te.P.T
    return l2_normalize(power_normalize(psi, alpha))


def dataset_triangulation(ds, k: int = 16, drop: int = 0, n_sample: int = 20_000, seed: int = 0,
                          progress: bool = True) -> tuple[TriangulationEmbedding, float]:
    """A triangulation embedding for ``ds``: ``k`` anchors from
    :func:`coursekit.bow.dataset_vocabulary`, centring and whitening
    (:func:`fit_triangulation`) learned on ``n_sample`` RootSIFT descriptors
    of its training split. The PCA is cached on disk, one for every value
    of ``drop``. It runs on one thread: two threads gain little on an idle
    2-core machine and are several times slower while other jobs keep a
    core busy.

    Returns the embedding and the seconds the cache saved.
    """
    from threadpoolctl import threadpool_limits

    from .bow import dataset_vocabulary, training_descriptors
    from .cache import array_digest, cached_arrays
    from .whitening import PCA, fit_pca

    C, s_voc = dataset_vocabulary(ds, k, seed=seed, progress=progress)
    X, source = training_descriptors(ds, n_sample, seed, progress)
    key = {"what": "triangulation_pca", "k": k, "source": source,
           "anchors": array_digest(C), "version": 1}

    def compute():
        phi = triangulate(X, C)
        with threadpool_limits(1):
            pca = fit_pca(phi, phi.shape[1])
        return {"mean": pca.mean, "components": pca.components, "variances": pca.variances}

    a, saved = cached_arrays("triangulation", key, compute)
    pca = PCA(a["mean"], a["components"], a["variances"])
    return _whitened(C, pca, drop, None, 1e-6), saved + s_voc
