"""Locally optimised product quantization: one rotation and one PQ per inverted list.

In IVF-ADC every list shares one product quantizer for its residuals, but
residuals differ from list to list: around one centroid the data may
stretch along directions that are flat around another. Kalantidis and
Avrithis ("Locally optimized product quantization for approximate nearest
neighbor search", CVPR 2014) give each list its own optimised PQ: a
rotation ``R_l`` and codebooks trained on that list's residuals only.

This version: a k-means coarse quantizer (the paper also pairs LOPQ with
the multi-index), and per list the non-parametric OPQ of
:func:`coursekit.ann.pq.train_opq` (the paper uses the parametric
variant, PCA with eigenvalue allocation). A list with fewer than
``min_points`` training residuals uses a global OPQ, trained on all of them.

Search: for each list, the queries that visit it, their residual tables
in that list's rotated space, and one scan of the list's codes
(:func:`coursekit.ann.pq.adc_distances`). The loop runs over lists (there
are ``nlist``, a few hundred at most), never over vectors. Memory per
vector is that of IVF-ADC; the rotations and codebooks (``nlist (D^2 +
2^nbits D)`` floats) are shared. There is no LOPQ in faiss.
"""

from __future__ import annotations

import numpy as np

from .base import Index, kmeans, nearest_centroid, squared_distances, top_k
from .pq import InvertedLists, adc_distances, adc_tables, check_split, code_dtype, pq_encode, train_opq

__all__ = ["LOPQIndex"]


class LOPQIndex(Index):
    """IVF with a local OPQ (rotation and codebooks) per list (Kalantidis and Avrithis, CVPR 2014).

    ``nlist`` coarse centroids; per list, ``M`` sub-quantizers of
    ``2^nbits`` centroids after a rotation, trained by ``n_opq_iter``
    alternations (see :func:`coursekit.ann.pq.train_opq`). ``nprobe``:
    lists visited per query. ``min_points``: below this many training
    residuals (default ``4 * 2^nbits``), a list uses the global OPQ.
    """

    def __init__(self, nlist: int = 64, M: int = 8, nbits: int = 8, nprobe: int = 8, n_opq_iter: int = 10,
                 n_pq_iter: int = 4, n_iter: int = 25, coarse_iter: int = 10, min_points: int | None = None,
                 seed: int = 0):
        self.code_dtype = code_dtype(nbits)
        super().__init__(seed)
        self.nlist, self.M, self.nbits, self.ksub, self.nprobe = nlist, M, nbits, 1 << nbits, nprobe
        self.n_opq_iter, self.n_pq_iter, self.n_iter, self.coarse_iter = n_opq_iter, n_pq_iter, n_iter, coarse_iter
        self.min_points = 4 * self.ksub if min_points is None else min_points
        self.coarse = None                 # (nlist, D)
        self.rotations = None              # (nlist, D, D): R_l, rotate with r @ R_l
        self.codebooks = None              # (nlist, M, ksub, dsub)
        self.local = None                  # (nlist,) bool: trained on its own residuals
        self.invlists = InvertedLists(nlist, M, self.code_dtype)

    def _describe(self) -> str:
        return f"nlist={self.nlist}, M={self.M}, nbits={self.nbits}, nprobe={self.nprobe}, seed={self.seed}"

    def _train(self, X: np.ndarray) -> None:
        check_split(X.shape[1], self.M)
        self.coarse = kmeans(X, self.nlist, self.seed, self.coarse_iter)
        lists = nearest_centroid(X, self.coarse)
        residuals = X - self.coarse[lists]
        R_all, B_all = train_opq(residuals, self.M, self.nbits, self.n_opq_iter, self.n_pq_iter,
                                 seed=self.seed + 1, pq_iter=self.n_iter)
        self.rotations = np.repeat(R_all[None], self.nlist, axis=0)
        self.codebooks = np.repeat(B_all[None], self.nlist, axis=0)
        self.local = np.zeros(self.nlist, bool)
        for l in np.flatnonzero(np.bincount(lists, minlength=self.nlist) >= self.min_points):   # one list at a time
            self.rotations[l], self.codebooks[l] = train_opq(residuals[lists == l], self.M, self.nbits,
                                                             self.n_opq_iter, self.n_pq_iter,
                                                             seed=self.seed + 2 + int(l), pq_iter=self.n_iter)
            self.local[l] = True

    def _add(self, X: np.ndarray) -> None:
        lists = nearest_centroid(X, self.coarse)
        codes = np.empty((len(X), self.M), self.code_dtype)
        for l in np.unique(lists):                                  # each list with its own quantizer
            rows = np.flatnonzero(lists == l)
            codes[rows] = pq_encode((X[rows] - self.coarse[l]) @ self.rotations[l], self.codebooks[l])
        self.invlists.add(lists, codes, np.arange(self.ntotal, self.ntotal + len(X)))

    def _search(self, X_q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        nprobe = min(self.nprobe, self.nlist)
        _, cells = top_k(squared_distances(X_q, self.coarse), nprobe)          # (Q, nprobe)
        inv = self.invlists
        q_all, d_all, r_all = [], [], []
        for l in np.unique(cells):                                   # each visited list: its queries at once
            start, end = inv.offsets[l], inv.offsets[l + 1]
            if start == end:
                continue
            qs = np.flatnonzero((cells == l).any(axis=1))
            tables = adc_tables((X_q[qs] - self.coarse[l]) @ self.rotations[l], self.codebooks[l])
            dist = adc_distances(tables, inv.codes[start:end])     # (len(qs), n_l)
            q_all.append(np.repeat(qs, end - start))
            d_all.append(dist.ravel())
            r_all.append(np.tile(np.arange(start, end), len(qs)))
        if not q_all:
            return np.full((len(X_q), k), np.inf, np.float32), np.full((len(X_q), k), -1, np.int64)
        q_all, d_all, r_all = np.concatenate(q_all), np.concatenate(d_all), np.concatenate(r_all)
        # lay each query's candidates out in one row, padded with inf, and keep the k best
        order = np.argsort(q_all, kind="stable")
        q_all, d_all, r_all = q_all[order], d_all[order], r_all[order]
        per_q = np.bincount(q_all, minlength=len(X_q))
        first = np.cumsum(per_q) - per_q
        Dpad = np.full((len(X_q), max(int(per_q.max()), 1)), np.inf, np.float32)
        Dpad[q_all, np.arange(len(q_all)) - first[q_all]] = d_all
        D, got = top_k(Dpad, k)
        I = np.where(got >= 0, inv.ids[r_all[np.minimum(first[:, None] + got, len(r_all) - 1)]], -1)
        return D, I

    @property
    def memory_per_vector(self) -> float:
        return self.M * self.nbits / 8 + 8
