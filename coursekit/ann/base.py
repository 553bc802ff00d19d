"""What every index shares: the interface, input checks, k-means and top-k selection.

An index answers *which database vectors are nearest to each query*. Every
class in :mod:`coursekit.ann` has the same small interface::

    index = PQIndex(M=8, seed=0)
    index.train(X_train)             # learn what the method needs (a no-op for exact search)
    index.add(X_db)                  # store (and encode) the database, ids 0, 1, 2, ...
    D, I = index.search(X_q, k=10)   # D (Q, k) float32, I (Q, k) int64, best first
    index.memory_per_vector          # bytes the index keeps per database vector

Conventions: vectors are rows, ``float32``; ``D`` holds squared Euclidean
distances (smaller is better) unless a class says otherwise; ids are the
rows' positions in the order they were added. When a search sees fewer
than ``k`` vectors (a small inverted list, say), the missing places hold
id ``-1`` and distance ``inf``, as in faiss.
"""

from __future__ import annotations

import numpy as np

from ..local import squared_distances  # one home: notebook 02 meets it first

__all__ = ["Index", "as_vectors", "top_k", "squared_distances", "kmeans", "nearest_centroid", "concat_ranges",
           "CHUNK_FLOATS"]

#: Temporary arrays are cut into pieces of about this many float32 values (64 MB).
CHUNK_FLOATS = 1 << 24


def as_vectors(X, name: str = "X", d: int | None = None) -> np.ndarray:
    """``X`` as a C-contiguous ``(N, D) float32`` array, or a ValueError that says what to change.

    ``d``: the dimension the index was trained with, checked when given.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        hint = f" (for a single vector, pass {name}[None, :])" if X.ndim == 1 else ""
        raise ValueError(f"{name} must be a 2-D array of vectors (N, D); got shape {X.shape}{hint}")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise ValueError(f"{name} must hold numbers; got dtype {X.dtype}")
    if d is not None and X.shape[1] != d:
        raise ValueError(f"{name} has D={X.shape[1]} columns but the index works in D={d}: "
                         f"pass vectors of the dimension the index was trained on")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values: remove or fix those rows first")
    return X


def top_k(D: np.ndarray, k: int, largest: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best entries of each row of ``D (Q, N)``, best first.

    Returns ``(values (Q, k) float32, columns (Q, k) int64)``; smallest first,
    or largest first with ``largest=True``. ``np.argpartition`` finds the
    ``k`` best in ``O(N)`` per row, then only those ``k`` are sorted. Where
    a row has fewer than ``k`` columns, the rest is ``inf`` (``-inf`` if
    ``largest``) with column ``-1``. Long rows go through
    :func:`_top_k_long` first, which gives the same values faster.
    """
    Q, N = D.shape
    fill = -np.inf if largest else np.inf
    if N < k:
        pad_v = np.full((Q, k - N), fill, dtype=np.float32)
        vals, cols = top_k(D, N, largest) if N else (np.zeros((Q, 0), np.float32), np.zeros((Q, 0), np.int64))
        return np.hstack([vals, pad_v]), np.hstack([cols, np.full((Q, k - N), -1, np.int64)])
    if D.dtype not in (np.float32, np.float64, np.int32, np.int64):
        D = D.astype(np.float32)            # numpy's vectorised selection covers 32- and 64-bit types only
    if N >= 4096 and N >= 32 * k and Q > 0:
        return _top_k_long(D, k, largest)
    return _top_k_plain(D, k, largest)


def _top_k_plain(D: np.ndarray, k: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` by ``np.argpartition`` (``k <= N``)."""
    Q, N = D.shape
    key = -D if largest else D
    if k < N:
        cols = np.argpartition(key, k - 1, axis=1)[:, :k]
    else:
        cols = np.broadcast_to(np.arange(N), (Q, N))
    part = np.take_along_axis(key, cols, axis=1)
    order = np.argsort(part, axis=1, kind="stable")
    cols = np.take_along_axis(cols, order, axis=1).astype(np.int64)
    vals = np.take_along_axis(D, cols, axis=1).astype(np.float32)
    cols[~np.isfinite(vals)] = -1
    return vals, cols


def _top_k_long(D: np.ndarray, k: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` for rows much longer than ``k``: a cheap threshold first, then a small selection.

    The ``k``-th smallest of every 4th column is at least the ``k``-th
    smallest of the whole row (a subset cannot have more small values than
    the set), so every entry of the true top ``k`` is ``<=`` it. One
    vectorised comparison keeps those candidates (about ``4 k`` per row,
    more where values tie), and :func:`top_k` runs on them alone: on long
    rows, faster than ``np.argpartition`` of the whole row, the more so on
    integer values with many ties (Hamming distances).
    """
    key = -D if largest else D
    Q, N = key.shape
    step = 4                                                                # N >= 32 k: the sample has >= 8 k columns
    tau = np.partition(key[:, ::step], k - 1, axis=1)[:, k - 1]            # (Q,) an upper bound of the k-th
    rows, cols = np.divmod(np.flatnonzero(key <= tau[:, None]), N)        # (flat is much faster than 2-D nonzero)
    counts = np.bincount(rows, minlength=Q)
    width = int(counts.max())
    if 2 * width > N:  # the threshold kept most of a row (it is mostly inf padding, or ties): no gain
        return _top_k_plain(D, k, largest)
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    cand = np.full((Q, width), np.inf, np.float64 if key.dtype == np.float64 else np.float32)
    cand[rows, slot] = key[rows, cols]
    cand_cols = np.zeros((Q, width), np.int64)
    cand_cols[rows, slot] = cols
    _, pick = top_k(cand, k)                                               # small: the plain path
    cols = np.take_along_axis(cand_cols, pick, axis=1)
    vals = np.take_along_axis(D, cols, axis=1).astype(np.float32)
    cols[~np.isfinite(vals)] = -1
    return vals, cols


def concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])`` without the loop: ``(sum(lengths),) int64``.

    Each output position ``t`` belongs to range ``r``; its value is
    ``starts[r] + (t - first position of range r)``.
    """
    starts = np.asarray(starts, np.int64)
    lengths = np.asarray(lengths, np.int64)
    firsts = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - firsts, lengths)


def nearest_centroid(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Row of ``C (K, D)`` nearest to each row of ``X (N, D)``: ``(N,) int64``.

    ``argmin_j ||x - c_j||^2 = argmin_j (||c_j||^2 - 2 x . c_j)`` (``||x||^2``
    drops out): one matrix product per block of rows, with ``x`` given an
    extra coordinate 1 and ``c_j`` the extra coordinate ``||c_j||^2``.
    """
    K, D = C.shape
    W = np.vstack([-2.0 * C.T, np.einsum("kd,kd->k", C, C)[None, :]]).astype(np.float32)   # (D + 1, K)
    out = np.empty(len(X), np.int64)
    rows = max(1, min(len(X), CHUNK_FLOATS // (4 * K)))
    x1 = np.ones((rows, D + 1), np.float32)
    for s in range(0, len(X), rows):
        n = len(X[s:s + rows])
        x1[:n, :D] = X[s:s + rows]
        out[s:s + rows] = np.argmin(x1[:n] @ W, axis=1)
    return out


def kmeans(X: np.ndarray, k: int, seed: int = 0, n_iter: int = 25,
           max_points_per_centroid: int = 256) -> np.ndarray:
    """Centroids of ``k`` clusters of ``X (N, D)`` by Lloyd's algorithm: ``(k, D) float32``.

    Made the way faiss makes them by default (``faiss.Kmeans``), so that our
    quantizers and faiss's are trained alike: at most
    ``max_points_per_centroid * k`` training points (a seeded sample);
    ``k`` distinct random training points as the first centroids; exactly
    ``n_iter`` iterations of assign-then-average. A centroid left with no
    point is moved to a random training point. scikit-learn's ``KMeans``
    does the same with ``init="random", n_init=1, tol=0`` (it reaches the
    same inertia within a fraction of a percent in our tests); this
    version is a few times faster on a single core for the small
    dimensions of PQ, because assignment is one matrix product.
    """
    X = as_vectors(X)
    N = len(X)
    if N < k:
        raise ValueError(f"k-means needs at least k={k} training vectors, got {N}: "
                         f"train on more vectors or ask for fewer centroids")
    rng = np.random.default_rng(seed)
    if N > max_points_per_centroid * k:
        X = X[np.sort(rng.choice(N, max_points_per_centroid * k, replace=False))]
        N = len(X)
    C = X[rng.choice(N, k, replace=False)].copy()
    for _ in range(n_iter):
        labels = nearest_centroid(X, C)
        counts = np.bincount(labels, minlength=k)
        # for j: C[j] = mean of the points with label j
        sums = _segment_sums(X, labels, np.zeros((k, X.shape[1]), np.float64))
        filled = counts > 0
        C[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
        empty = np.flatnonzero(~filled)
        if len(empty):
            C[empty] = X[rng.choice(N, len(empty), replace=False)]
    return np.ascontiguousarray(C, dtype=np.float32)


def _segment_sums(X: np.ndarray, labels: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[j] = X[labels == j].sum(axis=0)`` for every ``j``, by sorting the rows by label once."""
    order = np.argsort(labels, kind="stable")
    present, starts = np.unique(labels[order], return_index=True)
    out[present] = np.add.reduceat(X[order].astype(np.float64), starts, axis=0)
    return out


class Index:
    """The interface every index implements (see the module docstring).

    Subclasses set :attr:`needs_training` and implement ``_train``, ``_add``
    and ``_search``; this class checks inputs and state, so that every index
    refuses bad input with the same clear messages.

    Attributes: ``d`` (the dimension, set by ``train`` or the first ``add``),
    ``ntotal`` (vectors added), ``is_trained``, ``seed``.
    """

    needs_training = True

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.d: int | None = None
        self.ntotal = 0
        self.is_trained = not self.needs_training

    # ---------------------------------------------------------------- public interface
    def train(self, X) -> Index:
        """Learn the index's parameters from ``X (N, D)``; returns ``self``."""
        if self.ntotal:
            raise ValueError(f"{type(self).__name__} already holds {self.ntotal} vectors: train before add, "
                             f"or make a new index to train again")
        X = as_vectors(X, "X_train")
        if len(X) == 0:
            raise ValueError("X_train is empty: pass at least one training vector")
        self.d = X.shape[1]
        self._train(X)
        self.is_trained = True
        return self

    def add(self, X) -> Index:
        """Add the database vectors ``X (N, D)``, ids ``ntotal .. ntotal + N - 1``; returns ``self``."""
        if not self.is_trained:
            raise ValueError(f"{type(self).__name__} must be trained before vectors are added: "
                             f"call index.train(X_train) first")
        X = as_vectors(X, "X_db", self.d)
        self.d = X.shape[1]
        self._add(X)
        self.ntotal += len(X)
        return self

    def search(self, X_q, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest database vectors of each query ``X_q (Q, D)``.

        Returns ``D (Q, k) float32`` (distances, best first) and
        ``I (Q, k) int64`` (database ids).
        """
        if not self.is_trained:
            raise ValueError(f"{type(self).__name__} is not trained: call index.train(X_train), "
                             f"then index.add(X_db), before search")
        if self.ntotal == 0:
            raise ValueError(f"{type(self).__name__} is empty: call index.add(X_db) before search")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if k > self.ntotal:
            raise ValueError(f"k={k} is larger than the {self.ntotal} vectors in the index: "
                             f"ask for k <= {self.ntotal}")
        X_q = as_vectors(X_q, "X_q", self.d)
        D, I = self._search(X_q, int(k))
        return np.ascontiguousarray(D, dtype=np.float32), np.ascontiguousarray(I, dtype=np.int64)

    @property
    def memory_per_vector(self) -> float:
        """Bytes the index keeps per database vector (codes, ids, raw vectors it needs)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self.ntotal

    def __repr__(self) -> str:
        state = f"d={self.d}, ntotal={self.ntotal}" if self.is_trained else "untrained"
        return f"{type(self).__name__}({self._describe()}; {state})"

    # ---------------------------------------------------------------- for subclasses
    def _describe(self) -> str:
        return f"seed={self.seed}"

    def _train(self, X: np.ndarray) -> None:
        pass

    def _add(self, X: np.ndarray) -> None:
        raise NotImplementedError

    def _search(self, X_q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError
