"""The inverted multi-index: a product quantizer as the coarse quantizer, ``K^2`` lists for ``2K`` centroids.

An inverted file with ``K`` lists needs a k-means of ``K`` centroids, and
``K`` cannot grow much (training and assignment cost ``K D`` per vector).
Babenko and Lempitsky ("The inverted multi-index", CVPR 2012) split the
vector in two halves and quantize each with its own ``K`` centroids: a
vector's cell is the pair ``(i, j)`` of its nearest centroids in each half,
so there are ``K^2`` cells (65,536 for ``K = 256``) for the price of
``2K`` centroids, and the cells are small enough that a query can visit
just the few that hold its neighbours.

The distance from a query to cell ``(i, j)`` is ``d1[i] + d2[j]``, the
distances of its two halves to the two centroids. The ``nprobe`` nearest
cells are the smallest sums; Babenko and Lempitsky enumerate them in order
with a priority queue (the multi-sequence algorithm). Here they are found
without a queue: a cell among the ``nprobe`` smallest sums must have
``i`` among the ``nprobe`` smallest ``d1`` and ``j`` among the ``nprobe``
smallest ``d2`` (otherwise ``nprobe`` cells would beat it), so the
``nprobe x nprobe`` sums of those suffice, for all queries at once.

Inside the cells, residuals ``x - (c1_i, c2_j)`` are PQ-encoded, as in
IVF-ADC ("Multi-D-ADC" in the paper); the ``M`` sub-quantizers are split
evenly between the two halves, so each residual table splits into a
query part and a part of ``i`` (first half) or ``j`` (second half). faiss
builds the same index with ``index_factory(d, "IMI2x8,PQ16np")``.
"""

from __future__ import annotations

import numpy as np

from .base import Index, kmeans, nearest_centroid, squared_distances, top_k
from .pq import InvertedLists, check_split, coarse_terms, code_dtype, ivf_scan, pq_encode, query_terms, \
    train_codebooks

__all__ = ["MultiIndexPQIndex", "multi_index_cells"]


def multi_index_cells(d1: np.ndarray, d2: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``nprobe`` cells ``(i, j)`` with the smallest ``d1[q, i] + d2[q, j]``, nearest first.

    ``d1, d2 (Q, K)``: each half's squared distances to its ``K`` centroids.
    Returns ``(distances (Q, nprobe) float32, cells (Q, nprobe) int64)`` with
    cell id ``i * K + j``. The same cells as the multi-sequence algorithm
    (Babenko and Lempitsky 2012), ties aside.
    """
    Q, K = d1.shape
    n = min(nprobe, K)
    v1, i1 = top_k(d1, n)                                       # the n best first-half centroids
    v2, i2 = top_k(d2, n)
    # for q, a, b: sums[q, a, b] = d1[q, i1[q, a]] + d2[q, i2[q, b]]
    sums = (v1[:, :, None] + v2[:, None, :]).reshape(Q, n * n)
    dist, flat = top_k(sums, min(nprobe, n * n))
    cells = i1[np.arange(Q)[:, None], flat // n] * K + i2[np.arange(Q)[:, None], flat % n]
    return dist, cells


class MultiIndexPQIndex(Index):
    """Inverted multi-index with residual PQ (faiss: ``index_factory(d, "IMI2x{nbits_coarse},PQ{M}np")``).

    ``2^nbits_coarse`` centroids per half (k-means, ``coarse_iter``
    iterations), ``K^2`` cells; residual PQ with ``M`` (even) sub-quantizers
    of ``2^nbits`` centroids. ``nprobe``: cells visited per query (many are
    empty: the multi-index needs a larger ``nprobe`` than an IVF with
    ``K`` lists). Memory per vector: the code and an ``int64`` id.
    """

    def __init__(self, nbits_coarse: int = 8, M: int = 8, nbits: int = 8, nprobe: int = 64, n_iter: int = 25,
                 coarse_iter: int = 25, seed: int = 0):
        if M % 2:
            raise ValueError(f"M must be even (half the sub-quantizers in each half of the vector), got {M}")
        self.code_dtype = code_dtype(nbits)
        super().__init__(seed)
        self.K = 1 << nbits_coarse
        self.nbits_coarse, self.M, self.nbits, self.ksub = nbits_coarse, M, nbits, 1 << nbits
        self.nprobe, self.n_iter, self.coarse_iter = nprobe, n_iter, coarse_iter
        self.C1 = self.C2 = None                                 # (K, D / 2) float32 each
        self.codebooks = None                                    # (M, ksub, dsub) float32
        self.invlists = InvertedLists(self.K * self.K, M, self.code_dtype)

    def _describe(self) -> str:
        return (f"nbits_coarse={self.nbits_coarse}, M={self.M}, nbits={self.nbits}, nprobe={self.nprobe}, "
                f"seed={self.seed}")

    def _train(self, X: np.ndarray) -> None:
        D = X.shape[1]
        check_split(D, self.M)
        h = D // 2
        self.C1 = kmeans(X[:, :h], self.K, self.seed, self.coarse_iter)
        self.C2 = kmeans(X[:, h:], self.K, self.seed + 1, self.coarse_iter)
        cells = self.assign(X)
        self.codebooks = train_codebooks(X - self._centroids(cells), self.M, self.nbits, self.seed + 2, self.n_iter)
        # list part of the residual tables: first-half blocks from C1 (rows 0..K-1), second half from C2
        zeros = np.zeros_like(self.C1)
        self.list_terms = np.concatenate([coarse_terms(np.hstack([self.C1, zeros]), self.codebooks),
                                          coarse_terms(np.hstack([zeros, self.C2]), self.codebooks)])
        # for cell (i, j) and block m: row i if m < M / 2, else K + j
        i, j = np.divmod(np.arange(self.K * self.K, dtype=np.int32), self.K)
        half = self.M // 2
        self.list_rows = np.hstack([np.repeat(i[:, None], half, axis=1), np.repeat(self.K + j[:, None], half, axis=1)])

    def _centroids(self, cells: np.ndarray) -> np.ndarray:
        """The coarse reconstruction ``(c1_i, c2_j)`` of cells ``i * K + j``: ``(N, D)``."""
        i, j = np.divmod(cells, self.K)
        return np.hstack([self.C1[i], self.C2[j]])

    def assign(self, X) -> np.ndarray:
        """Cell ``i * K + j`` of each row of ``X (N, D)``: ``(N,) int64``."""
        h = X.shape[1] // 2
        return nearest_centroid(X[:, :h], self.C1) * self.K + nearest_centroid(X[:, h:], self.C2)

    def _add(self, X: np.ndarray) -> None:
        cells = self.assign(X)
        codes = pq_encode(X - self._centroids(cells), self.codebooks)
        self.invlists.add(cells, codes, np.arange(self.ntotal, self.ntotal + len(X)))

    def _search(self, X_q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        h = self.d // 2
        coarse_d, cells = multi_index_cells(squared_distances(X_q[:, :h], self.C1),
                                            squared_distances(X_q[:, h:], self.C2), self.nprobe)
        return ivf_scan(cells, coarse_d, self.invlists, k, query_terms(X_q, self.codebooks), self.list_terms,
                        self.list_rows)

    @property
    def memory_per_vector(self) -> float:
        return self.M * self.nbits / 8 + 8
