"""Measuring an index: recall@R against exact search, query time, memory; and a synthetic test set.

Recall@R here is the measure of Jegou, Douze and Schmid (TPAMI 2011) and
faiss's benchmarks: the fraction of queries whose *true nearest neighbour*
is among the first ``R`` results. Recall@1 asks for the exact answer;
recall@100 asks whether a short list of 100 would contain it, for an
exact re-ranking to find.
"""

from __future__ import annotations

import numpy as np

from ..timing import best_of
from .base import Index, as_vectors
from .exact import ExactIndex

__all__ = ["recall_at", "true_neighbours", "evaluate_index", "sweep", "synthetic_vectors", "INDEX_KINDS", "build_index"]

# the indexes ``python -m coursekit evaluate --index`` can build
INDEX_KINDS = ("exact", "kdtree", "lsh", "pq", "opq", "ivfpq")


def true_neighbours(X_db, X_q, k: int = 1) -> np.ndarray:
    """The ids of the ``k`` exact nearest neighbours (squared L2) of each query: ``(Q, k) int64``."""
    return ExactIndex().add(X_db).search(X_q, k)[1]


def recall_at(I: np.ndarray, gt: np.ndarray, ranks=(1, 10, 100)) -> dict[int, float]:
    """``{R: fraction of queries whose true nearest neighbour is in I[:, :R]}``.

    ``I (Q, k) int64``: an index's results; ``gt (Q,)`` or ``(Q, >= 1)``: the
    exact neighbours, nearest first (only the first column is used).
    Every ``R`` must be at most ``k``.
    """
    I = np.asarray(I)
    gt = np.asarray(gt)
    gt = gt[:, 0] if gt.ndim == 2 else gt
    if I.ndim != 2 or len(I) != len(gt):
        raise ValueError(f"I must be (Q, k) with one row per query of gt; got {I.shape} and {gt.shape}")
    if max(ranks) > I.shape[1]:
        raise ValueError(f"recall@{max(ranks)} needs at least {max(ranks)} results per query, got {I.shape[1]}: "
                         f"search with a larger k")
    hit = I == gt[:, None]                                    # (Q, k): where the true neighbour is
    return {int(r): float(hit[:, :r].any(axis=1).mean()) for r in ranks}


def evaluate_index(index: Index, X_q, gt: np.ndarray, ranks=(1, 10, 100), repeat: int = 1) -> dict:
    """Search ``X_q`` with ``k = max(ranks)`` and report recall, time and memory.

    Returns ``{"recall@1": ..., "recall@10": ..., "seconds": best of
    ``repeat`` searches, "ms_per_query": ..., "bytes_per_vector": ...}``.
    """
    X_q = as_vectors(X_q, "X_q")
    k = max(ranks)
    seconds, (_, I) = best_of(lambda: index.search(X_q, k), repeat)
    out = {f"recall@{r}": v for r, v in recall_at(I, gt, ranks).items()}
    out.update(seconds=seconds, ms_per_query=1e3 * seconds / len(X_q),
               bytes_per_vector=index.memory_per_vector)
    return out


def sweep(index: Index, param: str, values, X_q, gt: np.ndarray, ranks=(1, 10, 100), repeat: int = 1) -> list[dict]:
    """Operating points of a trained, filled index: :func:`evaluate_index` for each value of a search parameter.

    ``param`` is an attribute read at search time (``"nprobe"`` of the
    inverted files, ``"max_leaves"`` of the k-d tree, ``"n_candidates"`` of
    LSH); it is set to each of ``values`` in turn and restored after.
    Returns one dict per value, with ``param`` added: the points of a
    recall-against-time curve.
    """
    if not hasattr(index, param):
        raise ValueError(f"{type(index).__name__} has no parameter {param!r} to sweep")
    before = getattr(index, param)
    points = []
    try:
        for v in values:
            setattr(index, param, v)
            points.append({param: v, **evaluate_index(index, X_q, gt, ranks, repeat)})
    finally:
        setattr(index, param, before)
    return points


def build_index(kind: str, X_train, X_db, M: int = 16, nbits: int = 8, nlist: int | None = None,
                nprobe: int = 8, seed: int = 0) -> Index:
    """Train an index of one of :data:`INDEX_KINDS` on ``X_train (T, D)`` and fill it with ``X_db (N, D)``.

    ``M``, ``nbits``: the product quantizer of ``pq``, ``opq`` and ``ivfpq``
    (``M`` must divide ``D``; ``2^nbits`` centroids need as many training
    vectors). ``nlist``: the coarse lists of ``ivfpq``, by default about
    ``sqrt(N)`` (and at most ``T``); ``nprobe``: the lists visited per query.
    ``lsh``: ``M * nbits`` random-hyperplane bits, the code size of PQ's,
    ranked by Hamming distance. ``exact`` and ``kdtree`` ignore the rest.
    """
    from .exact import ExactIndex
    from .kdtree import KDTreeIndex
    from .lsh import LSHIndex
    from .pq import IVFPQIndex, OPQIndex, PQIndex

    X_train, X_db = as_vectors(X_train, "X_train"), as_vectors(X_db, "X_db")
    D = X_db.shape[1]
    if X_train.shape[1] != D:
        raise ValueError(f"training vectors are {X_train.shape[1]}-D, database vectors {D}-D")
    if kind in ("pq", "opq", "ivfpq"):
        if D % M:
            raise ValueError(f"PQ cuts {D}-D vectors into M={M} blocks: M must divide {D} (pass another M)")
        if len(X_train) < (1 << nbits):
            raise ValueError(f"PQ with nbits={nbits} learns {1 << nbits} centroids per block from {len(X_train)} "
                             f"training vectors: pass nbits <= {max(int(np.log2(len(X_train))), 1)}")
    if kind == "exact":
        index = ExactIndex(seed=seed)
    elif kind == "kdtree":
        index = KDTreeIndex(seed=seed)
    elif kind == "lsh":
        index = LSHIndex(n_bits=M * nbits, seed=seed)
    elif kind == "pq":
        index = PQIndex(M, nbits, seed=seed)
    elif kind == "opq":
        index = OPQIndex(M, nbits, seed=seed)
    elif kind == "ivfpq":
        nlist = nlist or max(1, min(int(round(np.sqrt(len(X_db)))), len(X_train)))
        index = IVFPQIndex(nlist, M, nbits, nprobe=nprobe, seed=seed)
    else:
        raise ValueError(f"unknown index {kind!r}; known: {', '.join(INDEX_KINDS)}")
    return index.train(X_train).add(X_db)


def synthetic_vectors(n: int, d: int = 64, n_clusters: int = 100, decay: float = 1.0, seed: int = 0) -> np.ndarray:
    """``(n, d) float32`` vectors with structure like real descriptors: clusters, and a decaying spectrum.

    A mixture of ``n_clusters`` Gaussians whose centres are themselves
    Gaussian; every cluster has the same covariance, with standard
    deviations ``j^(-decay / 2)`` along ``d`` random orthogonal directions
    (the variance of direction ``j`` falls like ``1 / j^decay``, as the PCA
    spectrum of SIFT or CNN descriptors does), so a few directions carry
    most of the energy. Draw the database and the queries from one call
    and split the rows, so they share the clusters.
    """
    rng = np.random.default_rng(seed)
    axes = np.linalg.qr(rng.standard_normal((d, d)))[0]                     # random orthogonal directions
    scales = np.arange(1, d + 1) ** (-decay / 2.0)
    centres = (rng.standard_normal((n_clusters, d)) * scales * 2.0) @ axes.T
    labels = rng.integers(0, n_clusters, n)
    X = centres[labels] + (rng.standard_normal((n, d)) * scales) @ axes.T
    return X.astype(np.float32)
