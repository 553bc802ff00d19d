"""Exact nearest-neighbour search: the baseline every approximate index is measured against.

Compare the query with every database vector. For ``Q`` queries and ``N``
vectors of dimension ``D`` that is ``Q N D`` multiply-adds, done as one
matrix product per block of queries (``||q - x||^2 = ||q||^2 - 2 q.x +
||x||^2``), so the BLAS library does the work. Memory: the raw vectors,
``4 D`` bytes each. What the approximate indexes of this package buy is
less of one or both.
"""

from __future__ import annotations

import numpy as np

from .base import CHUNK_FLOATS, Index, squared_distances, top_k

__all__ = ["ExactIndex"]


class ExactIndex(Index):
    """Brute-force search, L2 or inner product (faiss: ``IndexFlatL2``, ``IndexFlatIP``).

    ``metric="l2"``: ``D`` holds squared Euclidean distances, smallest
    first. ``metric="ip"``: ``D`` holds inner products, largest first (the
    cosine similarity for L2-normalised vectors).

    Queries are processed in blocks of ``chunk`` rows (default: as many as
    keep the ``(chunk, N)`` block of scores near 64 MB), so the full
    ``(Q, N)`` matrix never has to fit in memory. Needs no training:
    ``add`` may be called first.
    """

    needs_training = False

    def __init__(self, metric: str = "l2", chunk: int | None = None, seed: int = 0):
        if metric not in ("l2", "ip"):
            raise ValueError(f"metric must be 'l2' or 'ip', got {metric!r}")
        super().__init__(seed)
        self.metric, self.chunk = metric, chunk
        self.X = np.zeros((0, 0), np.float32)   # (N, D) the database
        self.x2 = np.zeros(0, np.float32)       # (N,) squared norms, kept for L2

    def _describe(self) -> str:
        return f"metric={self.metric!r}"

    def _add(self, X: np.ndarray) -> None:
        self.X = X.copy() if self.ntotal == 0 else np.vstack([self.X, X])
        self.x2 = np.einsum("nd,nd->n", self.X, self.X)

    def _search(self, X_q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        chunk = self.chunk or max(1, CHUNK_FLOATS // self.ntotal)
        D = np.empty((len(X_q), k), np.float32)
        I = np.empty((len(X_q), k), np.int64)
        for s in range(0, len(X_q), chunk):
            q = X_q[s:s + chunk]
            if self.metric == "l2":
                D[s:s + chunk], I[s:s + chunk] = top_k(squared_distances(q, self.X, self.x2), k)
            else:
                D[s:s + chunk], I[s:s + chunk] = top_k(q @ self.X.T, k, largest=True)
        return D, I

    @property
    def memory_per_vector(self) -> float:
        return 4.0 * (self.d or 0)
