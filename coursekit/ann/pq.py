"""Vector quantization and product quantization: vectors become a few bytes, distances come from tables.

**Vector quantization (VQ).** k-means gives ``K`` centroids; a vector is
stored as the id of its nearest centroid, ``log2 K`` bits. Search compares
the query with the ``K`` centroids once, then reads each database vector's
distance off that table. But a fine quantizer needs a huge ``K``: 64 bits
would mean ``2^64`` centroids.

**Product quantization (PQ)** (Jegou, Douze and Schmid, "Product
quantization for nearest neighbor search", TPAMI 2011) cuts a vector of
dimension ``D`` into ``M`` sub-vectors of ``dsub = D / M`` dimensions and
quantizes each with its own small k-means codebook of ``ksub = 2^nbits``
centroids (``nbits = 8``: 256). A vector becomes ``M`` bytes, and the
implied codebook is the product of the ``M`` small ones: ``256^M``
centroids for the price of ``M * 256``.

- ``codebooks (M, ksub, dsub) float32``: sub-quantizer ``m`` owns
  dimensions ``m * dsub .. (m + 1) * dsub - 1``.
- ``codes (N, M) uint8`` (``uint16`` for ``nbits > 8``): ``codes[n, m]`` is
  the nearest centroid of sub-vector ``m`` of vector ``n`` (:func:`pq_encode`);
  decoding concatenates those centroids (:func:`pq_decode`).

**Distances through lookup tables.** The squared distance splits over the
sub-vectors: ``||q - x||^2 = sum_m ||q_m - x_m||^2``.

- Asymmetric (ADC): the query is kept exact and ``x`` is replaced by its
  decoded vector. The table ``T[m, j] = ||q_m - codebooks[m, j]||^2``
  (:func:`adc_tables`, ``(Q, M, ksub)``) costs ``ksub * D`` per query; then
  each database vector costs ``M`` lookups and adds (:func:`adc_distances`).
  The ADC distance *is* the exact distance from ``q`` to the decoded vector.
- Symmetric (SDC): the query is encoded too; the table
  ``S[m, i, j] = ||codebooks[m, i] - codebooks[m, j]||^2`` (:func:`sdc_tables`)
  is computed once at training. Less accurate than ADC (two quantization
  errors instead of one), but the query never needs to be kept exact.

**Optimised PQ (OPQ)** (Ge, He, Ke and Sun, "Optimized product quantization
for approximate nearest neighbor search", CVPR 2013): PQ's split of the
coordinates is arbitrary; rotate the data first, ``x -> x R``, with the
orthogonal ``R`` that minimises the quantization error. The non-parametric
method alternates two steps, each of which can only lower the error
``||X R - decode(encode(X R))||^2``: with the codes fixed, the best ``R``
is an orthogonal Procrustes problem solved by one SVD (Schonemann 1966);
with ``R`` fixed, re-encode and move each centroid to the mean of its
points (a k-means step).

**IVF-ADC** (Jegou et al., TPAMI 2011, section IV): a coarse k-means
quantizer of ``nlist`` centroids splits the database into inverted lists;
each vector is stored in its centroid's list as the PQ code of its
*residual* ``x - c``, which is smaller than ``x`` and so quantized more
finely. A query visits only the ``nprobe`` lists of its nearest
centroids, and scores each with the ADC table of its own residual
``q - c``. That table splits into a part of the query, a part of the
list and ``||q - c||^2`` (:func:`coarse_terms`), as faiss computes it;
here the list's part is summed once per stored vector and search, so a
candidate costs ``M`` lookups, as in plain ADC (:func:`ivf_scan`).

Vectorised lines carry the loop they replace as a comment, after nanopq's
``pq.py`` (Matsui). The sum of lookups of ADC is done as a product with a
sparse one-hot matrix of the codes: the same additions, done by scipy's
compiled loop over a block of queries at once (see :func:`adc_distances`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .base import CHUNK_FLOATS, Index, as_vectors, concat_ranges, kmeans, nearest_centroid, squared_distances, top_k

__all__ = ["train_codebooks", "pq_encode", "pq_decode", "adc_tables", "sdc_tables", "adc_distances",
           "train_opq", "random_rotation", "procrustes", "eigenvalue_allocation", "VQIndex", "PQIndex", "OPQIndex", "IVFPQIndex",
           "ivf_scan", "check_split", "code_dtype", "coarse_terms", "query_terms"]


# --------------------------------------------------------------------------- the codec

def check_split(D: int, M: int) -> int:
    """The sub-vector length ``D / M`` (an int) of ``M`` blocks of ``D`` coordinates; ``ValueError``
    naming the valid ``M`` when ``M`` does not divide ``D``."""
    if M < 1 or D % M:
        divisors = [m for m in range(1, D + 1) if D % m == 0]
        raise ValueError(f"D={D} is not divisible by M={M}: choose M among {divisors}")
    return D // M


def code_dtype(nbits: int) -> type:
    """The dtype of PQ codes of ``nbits`` bits per sub-quantizer: ``np.uint8`` up to 8 bits, ``np.uint16``
    up to 16; ``ValueError`` outside 1 to 16."""
    if not 1 <= nbits <= 16:
        raise ValueError(f"nbits must be between 1 and 16, got {nbits}")
    return np.uint8 if nbits <= 8 else np.uint16


def train_codebooks(X: np.ndarray, M: int, nbits: int = 8, seed: int = 0, n_iter: int = 25) -> np.ndarray:
    """The ``M`` sub-quantizers of PQ: ``X (N, D)`` -> ``codebooks (M, 2^nbits, D / M) float32``.

    An independent k-means (:func:`coursekit.ann.base.kmeans`) on each
    block of ``D / M`` coordinates, sub-quantizer ``m`` with seed
    ``seed + m`` (so with ``M = 1`` it is exactly ``kmeans(X, 2^nbits, seed)``).
    """
    X = as_vectors(X)
    dsub = check_split(X.shape[1], M)
    code_dtype(nbits)
    return np.stack([kmeans(X[:, m * dsub:(m + 1) * dsub], 1 << nbits, seed + m, n_iter) for m in range(M)])


def pq_encode(X: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """PQ codes of ``X (N, D)`` for ``codebooks (M, ksub, dsub)``: ``(N, M) uint8`` (``uint16`` if ``ksub > 256``).

    ``codes[n, m] = argmin_j ||X[n, m-th block] - codebooks[m, j]||^2``;
    ``||x_m||^2`` is the same for every ``j`` and drops out of the argmin,
    which leaves ``-2 x_m . c_j + ||c_j||^2``: one matrix product if ``x_m``
    gets an extra coordinate 1 and ``c_j`` the extra coordinate ``||c_j||^2``.
    """
    X = np.asarray(X, np.float32)
    M, ksub, dsub = codebooks.shape
    N = len(X)
    codes = np.empty((N, M), np.uint8 if ksub <= 256 else np.uint16)
    # W[m] = [-2 c_m1 .. -2 c_mK ; ||c_m1||^2 .. ||c_mK||^2], (M, dsub + 1, ksub)
    W = np.concatenate([-2.0 * codebooks.transpose(0, 2, 1),
                        np.einsum("mjd,mjd->mj", codebooks, codebooks)[:, None, :]], axis=1)
    rows = 4096
    x1 = np.ones((min(rows, N), dsub + 1), np.float32)
    for s in range(0, N, rows):
        x = X[s:s + rows]
        for m in range(M):
            # for n in block: codes[n, m] = argmin_j (||c_mj||^2 - 2 x_nm . c_mj)
            x1[:len(x), :dsub] = x[:, m * dsub:(m + 1) * dsub]
            codes[s:s + rows, m] = np.argmin(x1[:len(x)] @ W[m], axis=1)
    return codes


def pq_decode(codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Vectors back from codes: ``codes (N, M)`` -> ``(N, D) float32``, each block its centroid."""
    M, ksub, dsub = codebooks.shape
    codes = np.asarray(codes)
    # for n, m: X[n, m-th block] = codebooks[m, codes[n, m]]
    return codebooks[np.arange(M), codes].reshape(len(codes), M * dsub)


def adc_tables(X_q: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """ADC lookup tables: ``T[q, m, j] = ||X_q[q, m-th block] - codebooks[m, j]||^2``, ``(Q, M, ksub) float32``.

    ``||q_m - c||^2 = ||q_m||^2 - 2 q_m . c + ||c||^2``: one matrix product per
    sub-quantizer, with ``q_m`` extended by ``(1, ||q_m||^2)`` and ``c`` by
    ``(||c||^2, 1)``.
    """
    X_q = np.asarray(X_q, np.float32)
    M, ksub, dsub = codebooks.shape
    # W[m] = [-2 c_m1 .. -2 c_mK ; ||c_m1||^2 .. ||c_mK||^2 ; 1 .. 1], (M, dsub + 2, ksub)
    W = np.concatenate([-2.0 * codebooks.transpose(0, 2, 1),
                        np.einsum("mjd,mjd->mj", codebooks, codebooks)[:, None, :],
                        np.ones((M, 1, ksub), np.float32)], axis=1)
    T = np.empty((len(X_q), M, ksub), np.float32)
    q1 = np.empty((len(X_q), dsub + 2), np.float32)
    q1[:, dsub] = 1.0
    for m in range(M):
        # for q, j: T[q, m, j] = ||q_m||^2 - 2 q_m . c_mj + ||c_mj||^2
        q_m = X_q[:, m * dsub:(m + 1) * dsub]
        q1[:, :dsub] = q_m
        q1[:, dsub + 1] = np.einsum("qd,qd->q", q_m, q_m)
        T[:, m, :] = q1 @ W[m]
    return np.maximum(T, 0.0, out=T)


def sdc_tables(codebooks: np.ndarray) -> np.ndarray:
    """SDC lookup tables: ``S[m, i, j] = ||codebooks[m, i] - codebooks[m, j]||^2``, ``(M, ksub, ksub) float32``."""
    c2 = np.einsum("mjd,mjd->mj", codebooks, codebooks)
    # for m, i, j: S[m, i, j] = ||c_mi||^2 - 2 c_mi . c_mj + ||c_mj||^2
    S = c2[:, :, None] - 2.0 * (codebooks @ codebooks.transpose(0, 2, 1)) + c2[:, None, :]
    return np.maximum(S, 0.0).astype(np.float32)


def _one_hot(codes: np.ndarray, ksub: int) -> sp.csr_matrix:
    """``(N, M * ksub)`` sparse matrix with a 1 at ``(n, m * ksub + codes[n, m])``: one row per vector, ``M`` ones."""
    N, M = codes.shape
    cols = (codes.astype(np.int32) + np.arange(M, dtype=np.int32) * ksub).ravel()
    return sp.csr_matrix((np.ones(N * M, np.float32), cols, np.arange(0, N * M + 1, M, dtype=np.int64)),
                         shape=(N, M * ksub))


def adc_distances(tables: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The sums of lookups: ``tables (Q, M, ksub)``, ``codes (N, M)`` -> ``D (Q, N) float32``.

    ``D[q, n] = sum_m tables[q, m, codes[n, m]]``. The loop it replaces::

        for q in range(Q):
            for n in range(N):
                D[q, n] = sum(tables[q, m, codes[n, m]] for m in range(M))

    Written as ``tables (Q, M * ksub) @ onehot(codes).T``: the one-hot row
    of vector ``n`` picks, for each ``m``, entry ``codes[n, m]`` of block
    ``m``. scipy does it as ``onehot @ tables.T``, adding for each vector
    ``M`` contiguous rows of ``Q`` numbers: the same ``Q N M`` additions,
    in compiled code, with the table block of ``Q`` queries hot in cache.
    """
    Q, M, ksub = tables.shape
    S = _one_hot(np.asarray(codes), ksub)
    return _scan(S, tables)


def _scan(S: sp.csr_matrix, tables: np.ndarray) -> np.ndarray:
    B = np.ascontiguousarray(tables.reshape(len(tables), -1).T)           # (M * ksub, Q)
    return np.ascontiguousarray((S @ B).T)


def _pq_search(tables: np.ndarray, codes: np.ndarray, ksub: int, k: int, block: int = 128):
    """The ``k`` smallest ADC distances of each query: scan blocks of ``block`` queries, keep each block's top ``k``."""
    S = _one_hot(codes, ksub)
    D = np.empty((len(tables), k), np.float32)
    I = np.empty((len(tables), k), np.int64)
    block = max(1, min(block, CHUNK_FLOATS // max(1, len(codes))))
    for s in range(0, len(tables), block):
        D[s:s + block], I[s:s + block] = top_k(_scan(S, tables[s:s + block]), k)
    return D, I


# --------------------------------------------------------------------------- OPQ training

def _lloyd_steps(Y: np.ndarray, codebooks: np.ndarray, n_steps: int) -> np.ndarray:
    """``n_steps`` k-means steps on every sub-quantizer at once, from ``codebooks`` (a warm start).

    Each step encodes ``Y (N, D)`` and moves each centroid to the mean of its
    sub-vectors; a centroid with no sub-vector stays where it is. Neither
    half-step can raise the quantization error.
    """
    M, ksub, dsub = codebooks.shape
    codebooks = codebooks.copy()
    sub = Y.reshape(-1, dsub)                                                # row n * M + m: block m of vector n
    for _ in range(n_steps):
        flat = (pq_encode(Y, codebooks).astype(np.int64) + np.arange(M) * ksub).ravel()   # (N * M,) cell ids
        counts = np.bincount(flat, minlength=M * ksub)
        # for m, j: sums[m, j] = sum of block m of the vectors with codes[:, m] == j
        sums = np.stack([np.bincount(flat, weights=sub[:, c], minlength=M * ksub) for c in range(dsub)], axis=1)
        filled = counts > 0
        flat_books = codebooks.reshape(M * ksub, dsub)
        flat_books[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
    return codebooks


def random_rotation(d: int, seed: int = 0) -> np.ndarray:
    """A random orthogonal ``(d, d) float32`` matrix (QR of a Gaussian matrix): OPQ's default start."""
    rng = np.random.default_rng((seed, 0x0B9, 1))     # its own stream: not the draws of the data or of k-means
    return np.linalg.qr(rng.standard_normal((d, d)))[0].astype(np.float32)


def procrustes(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The rotation that best maps ``A`` onto ``B``: ``argmin_R ||A R - B||_F`` over orthogonal ``R (D, D)``.

    The orthogonal Procrustes problem (Schonemann, Psychometrika 1966):
    with the SVD ``A^T B = U S V^T``, the answer is ``R = U V^T``.
    ``A, B (N, D)`` -> ``R (D, D) float32``.
    """
    U, _, Vt = np.linalg.svd(np.asarray(A, np.float64).T @ np.asarray(B, np.float64))
    return (U @ Vt).astype(np.float32)


def eigenvalue_allocation(X: np.ndarray, M: int) -> np.ndarray:
    """The parametric OPQ rotation of Ge et al. (CVPR 2013): ``(D, D) float32``, columns grouped by sub-quantizer.

    For Gaussian data, PQ's error is lowest when the principal directions
    are dealt out to the ``M`` blocks so that the products of their
    variances are balanced. Greedily: take the directions by decreasing
    variance, and give each to the non-full block whose product (sum of
    log variances) is smallest. Column block ``m`` of the result holds
    the directions of sub-quantizer ``m``.
    """
    Xc = X - X.mean(axis=0)
    variances, vectors = np.linalg.eigh(Xc.T.astype(np.float64) @ Xc / max(len(X) - 1, 1))
    order = np.argsort(variances)[::-1]
    D = X.shape[1]
    dsub = D // M
    log_var = np.log(np.maximum(variances[order], 1e-12))
    blocks = [[] for _ in range(M)]
    score = np.zeros(M)
    for j, lv in zip(order, log_var):                    # one direction at a time (D of them, not vectors)
        open_ = [m for m in range(M) if len(blocks[m]) < dsub]
        m = min(open_, key=lambda b: score[b])
        blocks[m].append(j)
        score[m] += lv
    return np.ascontiguousarray(vectors[:, [j for b in blocks for j in b]], dtype=np.float32)


def train_opq(X: np.ndarray, M: int, nbits: int = 8, n_iter: int = 50, n_pq_iter: int = 4,
              init: str = "random", seed: int = 0, pq_iter: int = 25,
              max_train_points: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Non-parametric OPQ (Ge et al., CVPR 2013): a rotation ``R (D, D)`` and codebooks for ``X R``.

    Start from ``R`` = a random rotation (``init="random"``, as faiss's
    ``OPQMatrix``), the identity (``"identity"``: the first codebooks are
    then exactly :func:`train_codebooks` on ``X``, i.e. plain PQ), or the
    parametric solution of Ge et al. (``"pca"``: :func:`eigenvalue_allocation`).
    Then ``n_iter`` times: encode, solve Procrustes for ``R``, make
    ``n_pq_iter`` k-means steps on ``X R``. Works on at most
    ``max_train_points`` vectors (a seeded sample, like faiss). The rotation
    is learned on the centred vectors (as faiss does; the mean would
    otherwise weigh on the Procrustes fit), and the codebooks are moved
    back by ``mean R``.

    Every step lowers the quantization error or keeps it, so with
    ``init="identity"`` it is never above PQ's on those vectors (k-means
    commutes with a translation). Which start ends lowest depends on the
    data: ``pca`` can end with the lowest training error on synthetic
    vectors (:func:`~coursekit.ann.synthetic_vectors`) and yet the worst
    recall on real RootSIFT ones, where random does best (the course
    report's OPQ comparison). Hence the default, faiss's: random.

    Returns ``R (D, D) float32`` (orthogonal; rotate with ``X @ R``) and
    ``codebooks (M, 2^nbits, D / M) float32``.
    """
    X = as_vectors(X)
    D = X.shape[1]
    check_split(D, M)
    rng = np.random.default_rng((seed, 0x0B9))        # a stream of its own, not the one other seeded steps draw from
    if len(X) > max_train_points:
        X = X[np.sort(rng.choice(len(X), max_train_points, replace=False))]
    mean = X.mean(axis=0)
    Xc = X - mean                                     # the rotation is learned on centred data, as faiss does
    if init == "identity":
        R = np.eye(D, dtype=np.float32)
    elif init == "random":
        R = random_rotation(D, seed)
    elif init == "pca":
        R = eigenvalue_allocation(Xc, M)
    else:
        raise ValueError(f"init must be 'identity', 'random' or 'pca', got {init!r}")
    codebooks = train_codebooks(Xc @ R, M, nbits, seed, pq_iter)
    for _ in range(n_iter):
        Y_hat = pq_decode(pq_encode(Xc @ R, codebooks), codebooks)             # (N, D) the codes' vectors
        R = procrustes(Xc, Y_hat)
        codebooks = _lloyd_steps(Xc @ R, codebooks, n_pq_iter)
    # quantizing x R = (x - mean) R + mean R: the same codebooks, moved by mean R block by block
    codebooks = codebooks + (mean @ R).reshape(M, 1, D // M)
    return R, codebooks.astype(np.float32)


# --------------------------------------------------------------------------- indexes

class VQIndex(Index):
    """Vector quantization: each vector stored as the id of its nearest of ``n_centroids`` k-means centroids.

    ``codes (N,) uint8`` for up to 256 centroids (``uint16`` up to 65,536).
    The distance to a database vector is the distance to its centroid, so
    all vectors of a cell tie: VQ alone cannot rank within a cell.
    """

    def __init__(self, n_centroids: int = 256, n_iter: int = 25, seed: int = 0):
        if not 1 <= n_centroids <= 65536:
            raise ValueError(f"n_centroids must be between 1 and 65536, got {n_centroids}")
        super().__init__(seed)
        self.n_centroids, self.n_iter = n_centroids, n_iter
        self.centroids = None                                   # (K, D) float32
        self.codes = np.zeros(0, np.uint8 if n_centroids <= 256 else np.uint16)

    def _describe(self) -> str:
        return f"n_centroids={self.n_centroids}, seed={self.seed}"

    def _train(self, X: np.ndarray) -> None:
        self.centroids = kmeans(X, self.n_centroids, self.seed, self.n_iter)

    def encode(self, X) -> np.ndarray:
        """Nearest centroid of each row of ``X (N, D)``: ``(N,) uint8`` (or ``uint16``)."""
        return nearest_centroid(as_vectors(X, "X", self.d), self.centroids).astype(self.codes.dtype)

    def decode(self, codes) -> np.ndarray:
        return self.centroids[np.asarray(codes)]

    def _add(self, X: np.ndarray) -> None:
        self.codes = np.concatenate([self.codes, self.encode(X)])

    def _search(self, X_q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        table = squared_distances(X_q, self.centroids)              # (Q, K)
        D = np.empty((len(X_q), k), np.float32)
        I = np.empty((len(X_q), k), np.int64)
        rows = max(1, CHUNK_FLOATS // self.ntotal)
        for s in range(0, len(X_q), rows):
            # for q, n: D[q, n] = table[q, codes[n]]
            D[s:s + rows], I[s:s + rows] = top_k(table[s:s + rows][:, self.codes], k)
        return D, I

    @property
    def memory_per_vector(self) -> float:
        return float(self.codes.itemsize)


class PQIndex(Index):
    """Product quantization, exhaustive search (faiss: ``IndexPQ``).

    ``M`` sub-quantizers of ``2^nbits`` centroids; ``M * nbits / 8`` bytes
    per vector. ``mode="adc"`` (default) or ``"sdc"`` chooses the distance
    (module docstring); ``D`` holds the approximate squared distances.
    ``n_iter``: k-means iterations per sub-quantizer.
    """

    def __init__(self, M: int = 8, nbits: int = 8, mode: str = "adc", n_iter: int = 25, seed: int = 0):
        if mode not in ("adc", "sdc"):
            raise ValueError(f"mode must be 'adc' or 'sdc', got {mode!r}")
        self.code_dtype = code_dtype(nbits)
        super().__init__(seed)
        self.M, self.nbits, self.ksub, self.mode, self.n_iter = M, nbits, 1 << nbits, mode, n_iter
        self.codebooks = None                                   # (M, ksub, dsub) float32
        self.sdc = None                                         # (M, ksub, ksub) float32
        self.codes = np.zeros((0, M), self.code_dtype)         # (N, M)

    def _describe(self) -> str:
        return f"M={self.M}, nbits={self.nbits}, mode={self.mode!r}, seed={self.seed}"

    # the rotation of OPQ and its inverse; plain PQ leaves vectors as they are
    def _transform(self, X: np.ndarray) -> np.ndarray:
        return X

    def _untransform(self, Y: np.ndarray) -> np.ndarray:
        return Y

    def _train(self, X: np.ndarray) -> None:
        check_split(X.shape[1], self.M)
        self.codebooks = train_codebooks(X, self.M, self.nbits, self.seed, self.n_iter)
        self.sdc = sdc_tables(self.codebooks)

    def encode(self, X) -> np.ndarray:
        """PQ codes ``(N, M)`` of ``X (N, D)`` (rotated first, for OPQ)."""
        if self.codebooks is None:
            raise ValueError(f"{type(self).__name__} is not trained: call index.train(X_train) first")
        return pq_encode(self._transform(as_vectors(X, "X", self.d)), self.codebooks)

    def decode(self, codes) -> np.ndarray:
        """Vectors ``(N, D)`` back from codes ``(N, M)``, in the original (unrotated) space."""
        return self._untransform(pq_decode(np.asarray(codes), self.codebooks))

    def quantization_error(self, X) -> float:
        """Mean over the rows of ``X (N, D)`` of ``||x - decode(encode(x))||^2``."""
        X = as_vectors(X, "X", self.d)
        return float(((X - self.decode(self.encode(X))) ** 2).sum(axis=1).mean())

    def _add(self, X: np.ndarray) -> None:
        self.codes = np.vstack([self.codes, self.encode(X)])

    def query_tables(self, X_q) -> np.ndarray:
        """The lookup tables of the queries, ``(Q, M, ksub)``: ADC tables, or with ``mode="sdc"``
        the rows of the SDC tables chosen by the queries' own codes."""
        X_q = as_vectors(X_q, "X_q", self.d)
        if self.mode == "adc":
            return adc_tables(self._transform(X_q), self.codebooks)
        q_codes = self.encode(X_q)                                          # (Q, M)
        # for q, m: T[q, m, :] = sdc[m, q_codes[q, m], :]
        return self.sdc[np.arange(self.M), q_codes]

    def _search(self, X_q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return _pq_search(self.query_tables(X_q), self.codes, self.ksub, k)

    @property
    def memory_per_vector(self) -> float:
        return self.M * self.nbits / 8


class OPQIndex(PQIndex):
    """PQ after a learned rotation (faiss: ``IndexPreTransform(OPQMatrix, IndexPQ)``).

    Training: :func:`train_opq` (``n_opq_iter`` alternations of ``n_pq_iter``
    k-means steps from ``init``; 50, 4 and a random rotation, as in
    faiss's ``OPQMatrix``; ``init="identity"`` guarantees an error never
    above PQ's on the training set). Vectors and queries are rotated by
    ``R`` before PQ; a rotation keeps distances, so ADC still estimates
    ``||q - x||^2``. Memory as PQ, plus the ``D x D`` matrix, shared.
    """

    def __init__(self, M: int = 8, nbits: int = 8, mode: str = "adc", n_opq_iter: int = 50, n_pq_iter: int = 4,
                 init: str = "random", n_iter: int = 25, seed: int = 0):
        if init not in ("identity", "random", "pca"):
            raise ValueError(f"init must be 'identity', 'random' or 'pca', got {init!r}")
        super().__init__(M, nbits, mode, n_iter, seed)
        self.n_opq_iter, self.n_pq_iter, self.init = n_opq_iter, n_pq_iter, init
        self.R = None                                                       # (D, D) float32

    def _describe(self) -> str:
        return f"M={self.M}, nbits={self.nbits}, mode={self.mode!r}, init={self.init!r}, seed={self.seed}"

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return X @ self.R

    def _untransform(self, Y: np.ndarray) -> np.ndarray:
        return Y @ self.R.T                                                 # R is orthogonal: its inverse is R^T

    def _train(self, X: np.ndarray) -> None:
        self.R, self.codebooks = train_opq(X, self.M, self.nbits, self.n_opq_iter, self.n_pq_iter, self.init,
                                           self.seed, self.n_iter)
        self.sdc = sdc_tables(self.codebooks)


# --------------------------------------------------------------------------- inverted files

def coarse_terms(coarse: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """The query-independent part of the residual tables: ``(n_lists, M, ksub) float32``.

    For a query ``q``, a list's centroid ``c`` and a sub-centroid ``r``:
    ``||(q - c) - r||^2 = ||q - c||^2 + (||r||^2 + 2 c.r) - 2 q.r``, block by
    block. The middle term depends on the list and the codebooks only:
    ``terms[l, m, j] = ||r_mj||^2 + 2 c_lm . r_mj``, computed once at
    training. (The decomposition faiss uses for ``IndexIVFPQ``: Johnson,
    Douze and Jegou, "Billion-scale similarity search with GPUs", IEEE
    Trans. Big Data 2019.)
    """
    M, ksub, dsub = codebooks.shape
    blocks = coarse.reshape(len(coarse), M, dsub)                              # (L, M, dsub)
    # for l, m, j: terms[l, m, j] = ||r_mj||^2 + 2 c_lm . r_mj
    cross = np.einsum("lmd,mjd->lmj", blocks, codebooks, optimize=True)
    return np.ascontiguousarray(2.0 * cross + np.einsum("mjd,mjd->mj", codebooks, codebooks)[None], np.float32)


def query_terms(X_q: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """The list-independent part: ``-2 q_m . r_mj``, ``(Q, M, ksub) float32`` (see :func:`coarse_terms`)."""
    M, ksub, dsub = codebooks.shape
    out = np.empty((len(X_q), M, ksub), np.float32)
    for m in range(M):
        out[:, m, :] = X_q[:, m * dsub:(m + 1) * dsub] @ (-2.0 * codebooks[m].T)
    return out


def ivf_scan(cells: np.ndarray, coarse_d: np.ndarray, invlists: InvertedLists, k: int, query_terms: np.ndarray,
             list_terms: np.ndarray, list_rows: np.ndarray | None = None,
             max_candidates: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """Search inverted lists of PQ codes of residuals: the machinery shared by IVF-ADC and the multi-index.

    - ``cells (Q, nprobe) int64``: the lists each query visits, and
      ``coarse_d (Q, nprobe) float32``: ``||q - c_l||^2`` for each;
    - ``invlists``: the codes, ids and list of each stored vector, list by list;
    - ``query_terms (Q, M, ksub)``, ``list_terms (G, M, ksub)``: the two
      parts of the residual tables (see :func:`coarse_terms`); block ``m``
      of list ``l`` uses row ``list_rows[l, m]`` of ``list_terms`` (default:
      row ``l``).

    The distance from query ``q`` to stored vector ``r`` of list ``l`` is::

        coarse_d[q, j] + sum_m query_terms[q, m, codes[r, m]] + sum_m list_terms[list_rows[l, m], m, codes[r, m]]

    The last sum does not depend on the query: it is computed once per
    search for each vector of the lists visited (:func:`_vector_terms`).
    The loop this function replaces::

        for q in range(Q):
            for j, l in enumerate(cells[q]):
                for r in list l:
                    candidates[q].append((distance(q, j, r), ids[r]))
            keep the k nearest candidates[q]

    Vectorised: every (query, list) pair is expanded into its list's rows;
    the sum of ``M`` lookups in the query's table is a product of a sparse
    one-hot matrix (``M`` ones per candidate) with the block's flattened
    tables, in blocks of queries of about ``max_candidates`` candidates (so
    the temporaries stay in cache).

    Returns ``(D (Q, k) float32, I (Q, k) int64)``; ``-1`` and ``inf`` where
    the visited lists hold fewer than ``k`` vectors.
    """
    Q, nprobe = cells.shape
    offsets, codes, ids = invlists.offsets, invlists.codes, invlists.ids
    M = codes.shape[1]
    ksub = query_terms.shape[2]
    MK = M * ksub
    D = np.empty((Q, k), np.float32)
    I = np.empty((Q, k), np.int64)
    sizes_all = np.diff(offsets)
    # the query-independent part, for the vectors of every list some query visits
    visited = np.unique(cells)
    rows = concat_ranges(offsets[visited], sizes_all[visited])
    vector_terms = np.empty(len(codes), np.float32)                        # only the visited rows are filled
    row_lists = np.repeat(visited, sizes_all[visited])                     # the list of each of those rows
    vector_terms[rows] = _vector_terms(list_terms, row_lists if list_rows is None else list_rows[row_lists],
                                       codes[rows])
    per_query = max(1.0, nprobe * len(codes) / max(1, len(sizes_all)))       # expected candidates per query
    chunk = max(1, int(max_candidates / per_query))
    m_cols = np.arange(M, dtype=np.int32) * ksub                            # block m starts at m * ksub
    for s in range(0, Q, chunk):
        c = cells[s:s + chunk]
        nq = len(c)
        sizes = sizes_all[c]                                                 # (nq, nprobe)
        n_cand_q = sizes.sum(axis=1)                                         # candidates of each query
        first = np.cumsum(n_cand_q) - n_cand_q
        rows = concat_ranges(offsets[c.ravel()], sizes.ravel())            # (n_cand,) rows of codes and ids
        n_cand = len(rows)
        # candidate t of query q reads, for each m, entry (q, m, codes[t, m]) of the block's tables
        cols = codes[rows].astype(np.int32)
        cols += m_cols
        cols += np.repeat(np.arange(nq, dtype=np.int32) * MK, n_cand_q)[:, None]
        onehot = sp.csr_matrix((np.ones(n_cand * M, np.float32), cols.reshape(-1), np.arange(0, n_cand * M + 1, M)),
                               shape=(n_cand, nq * MK))
        dist = onehot @ query_terms[s:s + chunk].reshape(-1)
        dist += vector_terms[rows]
        dist += np.repeat(coarse_d[s:s + chunk].ravel(), sizes.ravel())
        # each query's candidates in one row of a padded (nq, width) array, then its k best
        width = max(int(n_cand_q.max()), 1)
        padded = np.full(nq * width, np.inf, np.float32)
        padded[np.arange(n_cand) + np.repeat(np.arange(nq) * width - first, n_cand_q)] = dist
        vals, got = top_k(padded.reshape(nq, width), k)
        D[s:s + chunk] = vals
        I[s:s + chunk] = np.where(got >= 0, ids[rows[np.minimum(first[:, None] + got, max(n_cand - 1, 0))]]
                                  if n_cand else -1, -1)
    return D, I


def _vector_terms(list_terms: np.ndarray, rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``sum_m list_terms[rows[n, m], m, codes[n, m]]`` for each vector ``n``: ``(N,) float32``.

    ``rows (N,)`` (the same row for every block) or ``(N, M)``.
    """
    G, M, ksub = list_terms.shape
    flat = list_terms.reshape(-1)
    out = np.zeros(len(codes), np.float32)
    for m in range(M):
        r = rows if rows.ndim == 1 else rows[:, m]
        out += flat[(r.astype(np.int64) * M + m) * ksub + codes[:, m]]
    return out


class InvertedLists:
    """Codes and ids grouped by list: list ``l`` is rows ``offsets[l]:offsets[l + 1]`` of ``codes (N, M)``
    and ``ids (N,) int64``. Per vector, that is the code and an 8-byte id, as in faiss."""

    def __init__(self, n_lists: int, M: int, dtype=np.uint8):
        self.offsets = np.zeros(n_lists + 1, np.int64)
        self.codes = np.zeros((0, M), dtype)
        self.ids = np.zeros(0, np.int64)

    @property
    def sizes(self) -> np.ndarray:
        """Vectors in each list, ``(n_lists,) int64``."""
        return np.diff(self.offsets)

    @property
    def lists(self) -> np.ndarray:
        """The list of each stored row, ``(N,) int64`` (computed, not stored)."""
        return np.repeat(np.arange(len(self.offsets) - 1), self.sizes)

    def add(self, lists: np.ndarray, codes: np.ndarray, ids: np.ndarray) -> None:
        """Add rows; a stable sort by list keeps earlier rows first within each list."""
        all_lists = np.concatenate([self.lists, lists])
        order = np.argsort(all_lists, kind="stable")
        self.codes = np.vstack([self.codes, codes])[order]
        self.ids = np.concatenate([self.ids, ids])[order]
        self.offsets[1:] = np.cumsum(np.bincount(all_lists, minlength=len(self.offsets) - 1))


class IVFPQIndex(Index):
    """IVF-ADC: inverted file over a coarse k-means, PQ codes of residuals (faiss: ``IndexIVFPQ``, ``by_residual``).

    ``nlist`` coarse centroids (k-means, ``coarse_iter`` iterations, as
    faiss's 10); residual PQ with ``M`` sub-quantizers of ``2^nbits``
    centroids. ``nprobe`` (may be changed between searches): lists visited
    per query; ``nprobe = nlist`` visits all, which is exhaustive ADC on
    the residual codes. Memory per vector: the code and an ``int64`` id,
    as faiss stores them.
    """

    def __init__(self, nlist: int = 256, M: int = 8, nbits: int = 8, nprobe: int = 8, n_iter: int = 25,
                 coarse_iter: int = 10, seed: int = 0):
        self.code_dtype = code_dtype(nbits)
        super().__init__(seed)
        self.nlist, self.M, self.nbits, self.ksub = nlist, M, nbits, 1 << nbits
        self.nprobe, self.n_iter, self.coarse_iter = nprobe, n_iter, coarse_iter
        self.coarse = None                                      # (nlist, D) float32
        self.codebooks = None                                   # (M, ksub, dsub) float32
        self.precomputed = None                                 # (nlist, M, ksub) float32, see coarse_terms
        self.invlists = InvertedLists(nlist, M, self.code_dtype)

    def _describe(self) -> str:
        return f"nlist={self.nlist}, M={self.M}, nbits={self.nbits}, nprobe={self.nprobe}, seed={self.seed}"

    def _train(self, X: np.ndarray) -> None:
        check_split(X.shape[1], self.M)
        self.coarse = kmeans(X, self.nlist, self.seed, self.coarse_iter)
        residuals = X - self.coarse[self.assign(X)]
        self.codebooks = train_codebooks(residuals, self.M, self.nbits, self.seed + 1, self.n_iter)
        self.precomputed = coarse_terms(self.coarse, self.codebooks)     # (nlist, M, ksub), as faiss's tables

    def assign(self, X) -> np.ndarray:
        """The list of each row of ``X (N, D)``: its nearest coarse centroid, ``(N,) int64``."""
        return nearest_centroid(as_vectors(X, "X", self.d), self.coarse)

    def _add(self, X: np.ndarray) -> None:
        lists = self.assign(X)
        codes = pq_encode(X - self.coarse[lists], self.codebooks)
        self.invlists.add(lists, codes, np.arange(self.ntotal, self.ntotal + len(X)))

    def _search(self, X_q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        nprobe = min(self.nprobe, self.nlist)
        coarse_d, cells = top_k(squared_distances(X_q, self.coarse), nprobe)   # (Q, nprobe) nearest lists
        return ivf_scan(cells, coarse_d, self.invlists, k, query_terms(X_q, self.codebooks), self.precomputed)

    @property
    def memory_per_vector(self) -> float:
        return self.M * self.nbits / 8 + 8
