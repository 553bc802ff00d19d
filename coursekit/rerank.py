"""Re-ranking with the database's own structure: query expansion and diffusion.

A first ranking puts some relevant images at the top, with high
confidence. Re-ranking uses them to find the rest:

* **Query expansion** (Chum, Philbin, Sivic, Isard and Zisserman, "Total
  recall", ICCV 2007): issue a new query made of the query and its best
  results. In its global-descriptor form, *average query expansion* (AQE)
  averages the query's vector with those of its top ``k`` results;
  *alpha-weighted query expansion* (alpha-QE, Radenovic, Tolias and Chum,
  TPAMI 2018) weights each by its similarity to the query raised to
  ``alpha``, so that a weak neighbour barely counts.
* **Database-side augmentation** (DBA, Arandjelovic and Zisserman, "Three
  things everyone should know to improve object retrieval", CVPR 2012; in
  its weighted form, Radenovic et al.): the same averaging done offline for
  every database image, with its own neighbours.
* **Diffusion** (Zhou, Bousquet, Lal, Weston and Schoelkopf, "Ranking on
  data manifolds", NIPS 2003; Iscen, Tolias, Avrithis, Furon and Chum,
  "Efficient diffusion on region manifolds", CVPR 2017): similarity
  spreads through a k-nearest-neighbour graph of the database, so that an
  image reached through a chain of close neighbours ranks high even when
  it is far from the query in a straight line.

Diffusion in Iscen et al.'s notation: ``A (N, N)`` the affinity of the
mutual kNN graph, ``a_ij = max(x_i . x_j, 0)^gamma``; ``S = D^-1/2 A D^-1/2``
with ``D = diag(A 1)``; ``y (N,)`` the query's similarity to its ``k_q``
nearest database vectors, to the power ``gamma``, zero elsewhere. The
ranking scores ``f`` are the solution of ``(I - alpha S) f = y``, i.e.
``f = sum_t (alpha S)^t y``: the query's similarity, passed along the
graph's edges ``t`` times and damped by ``alpha^t``. The matrix
``I - alpha S`` is symmetric positive definite for ``0 <= alpha < 1`` (the
eigenvalues of ``S`` lie in ``[-1, 1]``), so conjugate gradient solves it
(:func:`conjugate_gradient`) in a few sparse products.

Every function takes L2-normalised global vectors, ``X_db (N, D)`` and
``X_q (Q, D) float32`` (dot product = cosine similarity), and returns new
arrays, never changing its inputs.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from .ann.base import top_k
from .whitening import l2_normalize

__all__ = ["nearest", "expand", "average_query_expansion", "alpha_query_expansion", "verified_query_expansion",
           "database_augmentation",
           "knn_affinity", "mutual_knn_affinity", "normalized_affinity", "diffusion_graph", "query_vector",
           "conjugate_gradient", "iterative_diffusion", "dense_diffusion", "diffuse", "diffusion", "ranked_below", "apply",
           "gmp_weights", "regional_diffusion"]

# Defaults from the papers: the graph and query neighbours, exponent, damping and solver of Iscen et al. (CVPR
# 2017, global descriptors); alpha-QE's exponent from Radenovic et al. (TPAMI 2018).
GRAPH_K, QUERY_K, GAMMA, ALPHA = 50, 10, 3.0, 0.99
CG_TOL, CG_ITERATIONS = 1e-6, 20
QE_K, QE_ALPHA = 5, 3.0


def _vectors(X, name: str, d: int | None = None) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (vectors in rows), got shape {X.shape}")
    if d is not None and X.shape[1] != d:
        raise ValueError(f"{name} has {X.shape[1]} dimensions but the database vectors have {d}: "
                         "the queries and the database must be described by the same method")
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} has NaN or infinite values")
    return X


def nearest(X_q: np.ndarray, X_db: np.ndarray, k: int, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` database vectors most similar to each query, by dot product, most similar first.

    ``X_q (Q, D)``, ``X_db (N, D) float32`` -> ``(sims (Q, k) float32,
    ids (Q, k) int64)``. Exact: the similarities are computed ``chunk``
    queries at a time (by default as many as keep a block under 64 M
    floats), so 100,000 x 100,000 fits in memory. ``k`` is capped at ``N``.
    With ``X_q`` the database itself, each vector finds itself first (or a
    copy of itself).
    """
    X_db = _vectors(X_db, "X_db")
    X_q = _vectors(X_q, "X_q", X_db.shape[1])
    k = min(int(k), len(X_db))
    chunk = chunk or max(1, (1 << 26) // max(len(X_db), 1))
    sims = np.empty((len(X_q), k), np.float32)
    ids = np.empty((len(X_q), k), np.int64)
    for start in range(0, len(X_q), chunk):                 # blocks of queries, each one matrix product
        block = X_q[start:start + chunk] @ X_db.T
        sims[start:start + chunk], ids[start:start + chunk] = top_k(block, k, largest=True)
    return sims, ids


# ----------------------------------------------------------------------------------------------------------
# Query expansion and database-side augmentation
# ----------------------------------------------------------------------------------------------------------

def expand(X: np.ndarray, X_db: np.ndarray, ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The expanded vectors ``x' = (x + sum_j w_j x_j) / ||...||``, with ``x_j = X_db[ids[:, j]]``.

    ``X (Q, D)``, ``ids (Q, k) int64``, ``weights (Q, k)`` -> ``(Q, D)
    float32``, L2-normalised. Each vector keeps weight 1 for itself; a
    neighbour of weight 0 changes nothing.
    """
    # loop form: for q in range(Q): X[q] + sum(weights[q, j] * X_db[ids[q, j]] for j in range(k))
    weights = np.asarray(weights, dtype=np.float32)
    out = np.array(X, dtype=np.float32)
    for start in range(0, len(X), 4096):          # blocks of rows: X_db[ids] is (rows, k, D)
        block = slice(start, start + 4096)
        out[block] += np.einsum("qk,qkd->qd", weights[block], X_db[ids[block]])
    return l2_normalize(out)


def alpha_query_expansion(X_q: np.ndarray, X_db: np.ndarray, k: int = QE_K, alpha: float = QE_ALPHA) -> np.ndarray:
    """alpha-QE (Radenovic, Tolias and Chum, TPAMI 2018): each query averaged with its top ``k`` database
    vectors, weighted by ``max(s, 0)^alpha`` (``s``: their similarity to the query), then L2-normalised.

    ``X_q (Q, D)``, ``X_db (N, D) float32`` -> ``(Q, D) float32``; search
    again with it. ``alpha = 0`` is average query expansion
    (:func:`average_query_expansion`); the larger ``alpha``, the less a
    weak neighbour counts.
    """
    if k < 0 or alpha < 0:
        raise ValueError(f"k and alpha must be non-negative, got k={k}, alpha={alpha}")
    sims, ids = nearest(X_q, X_db, k)
    weights = np.ones_like(sims) if alpha == 0 else np.maximum(sims, 0.0) ** alpha
    return expand(_vectors(X_q, "X_q"), X_db, ids, weights)


def average_query_expansion(X_q: np.ndarray, X_db: np.ndarray, k: int = QE_K) -> np.ndarray:
    """Average query expansion, AQE (Chum et al., ICCV 2007, in the global-vector form of Radenovic et al.,
    TPAMI 2018): ``q' = (q + x_1 + ... + x_k) / ||...||`` over the query's top ``k`` database vectors.
    ``X_q (Q, D)``, ``X_db (N, D) float32`` -> ``(Q, D) float32``."""
    return alpha_query_expansion(X_q, X_db, k, alpha=0.0)


def verified_query_expansion(X_q: np.ndarray, X_db: np.ndarray, verified: np.ndarray) -> np.ndarray:
    """Query expansion with the images that passed spatial verification, as Chum et al. (ICCV 2007) do it:
    ``q' = (q + sum of the verified x_j) / ||...||``.

    ``X_q (Q, D)``, ``X_db (N, D) float32``, ``verified (Q, N) bool``
    (e.g. ``inliers >= 12`` after RANSAC) -> ``(Q, D) float32``. Unlike
    :func:`average_query_expansion`, which trusts the top ``k`` blindly,
    a wrong neighbour gets in only if it fooled the geometry too; a query
    with nothing verified is left as it is.
    """
    X_db = _vectors(X_db, "X_db")
    X_q = _vectors(X_q, "X_q", X_db.shape[1])
    verified = np.asarray(verified, dtype=bool)
    if verified.shape != (len(X_q), len(X_db)):
        raise ValueError(f"verified must be (Q, N) = {(len(X_q), len(X_db))}, got {verified.shape}")
    return l2_normalize(X_q + verified.astype(np.float32) @ X_db)   # row q: X_q[q] + sum of X_db[verified[q]]


def database_augmentation(X_db: np.ndarray, k: int = QE_K, alpha: float = QE_ALPHA) -> np.ndarray:
    """DBA (Arandjelovic and Zisserman, CVPR 2012; alpha-weighted, Radenovic et al., TPAMI 2018): every
    database vector replaced by the weighted mean of itself and its ``k`` nearest other database vectors.

    ``X_db (N, D) float32`` -> ``(N, D) float32``, L2-normalised. Weights
    ``max(s, 0)^alpha`` as in :func:`alpha_query_expansion` (``alpha = 0``:
    the plain average). Done once, offline; the queries are then searched,
    or expanded, against the augmented database.
    """
    if k < 0 or alpha < 0:
        raise ValueError(f"k and alpha must be non-negative, got k={k}, alpha={alpha}")
    X_db = _vectors(X_db, "X_db")
    sims, ids = nearest(X_db, X_db, k + 1)
    # drop each vector's own entry (it is normally first, but a duplicate may come before it): keep k others
    others = ids != np.arange(len(X_db))[:, None]
    keep = np.cumsum(others, axis=1) <= k
    weights = (np.ones_like(sims) if alpha == 0 else np.maximum(sims, 0.0) ** alpha) * (others & keep)
    return expand(X_db, X_db, ids, weights)


# ----------------------------------------------------------------------------------------------------------
# Diffusion: the graph
# ----------------------------------------------------------------------------------------------------------

def mutual_knn_affinity(sims: np.ndarray, ids: np.ndarray, gamma: float = GAMMA) -> sp.csr_matrix:
    """The affinity matrix of the mutual kNN graph from kNN lists (Iscen et al., CVPR 2017).

    ``sims (N, k) float32`` and ``ids (N, k) int64``: each vector's ``k``
    nearest neighbours (its own entry may be among them) and their
    similarities. Returns a symmetric ``(N, N) float32`` sparse matrix with
    ``a_ij = max(s_ij, 0)^gamma`` where ``j`` is among the neighbours of
    ``i`` *and* ``i`` among those of ``j``, and zero elsewhere, on the
    diagonal too. Mutual neighbours link images that agree they are alike,
    which keeps a popular "hub" image from joining everything to
    everything.
    """
    N, k = ids.shape
    valid = ids >= 0
    rows = np.repeat(np.arange(N), k)[valid.ravel()]
    cols = ids.ravel()[valid.ravel()]
    w = np.maximum(sims.ravel()[valid.ravel()], 0.0).astype(np.float32) ** np.float32(gamma)
    W = sp.csr_matrix((w, (rows, cols)), shape=(N, N), dtype=np.float32)   # directed: i -> its neighbours
    W.sum_duplicates()
    A = W.minimum(W.T).tocsr()           # an edge in both directions, or none (s_ij = s_ji up to rounding)
    A.setdiag(0)
    A.eliminate_zeros()
    return A


def knn_affinity(X_db: np.ndarray, k: int = GRAPH_K, gamma: float = GAMMA) -> sp.csr_matrix:
    """:func:`mutual_knn_affinity` of the exact ``k`` nearest neighbours of every database vector.
    ``X_db (N, D) float32`` -> ``(N, N) float32`` sparse, symmetric, zero diagonal. For an approximate
    graph, pass an index's neighbours to :func:`mutual_knn_affinity` instead."""
    sims, ids = nearest(X_db, X_db, k)
    return mutual_knn_affinity(sims, ids, gamma)


def normalized_affinity(A: sp.spmatrix) -> sp.csr_matrix:
    """``S = D^-1/2 A D^-1/2`` with ``D = diag(A 1)`` (Zhou et al., NIPS 2003): ``(N, N) float32`` sparse.

    ``S`` is symmetric with its eigenvalues in ``[-1, 1]``. A vertex with no
    edge (degree 0) keeps a row and column of zeros: diffusion leaves it
    where the query put it.
    """
    A = sp.csr_matrix(A, dtype=np.float32)
    degree = np.asarray(A.sum(axis=1)).ravel()
    d = np.zeros_like(degree)
    np.divide(1.0, np.sqrt(degree), out=d, where=degree > 0)
    Dm = sp.diags(d.astype(np.float32))
    return (Dm @ A @ Dm).tocsr().astype(np.float32)


def diffusion_graph(X_db: np.ndarray, k: int = GRAPH_K, gamma: float = GAMMA, progress: bool = False
                    ) -> sp.csr_matrix:
    """:func:`knn_affinity` of ``X_db``, built once and cached on disk, keyed by the vectors' digest, ``k``
    and ``gamma``. ``(N, N) float32`` sparse. The kNN search is the offline cost (``N^2 D`` multiply-adds;
    100,000 x 128 takes under a minute on two cores, see ``benchmarks/bench_rerank.py``)."""
    from .cache import array_digest, cached_arrays

    X_db = _vectors(X_db, "X_db")

    def compute() -> dict[str, np.ndarray]:
        with tqdm(total=1, desc=f"kNN graph of {len(X_db)} vectors", disable=not progress) as bar:
            A = knn_affinity(X_db, k, gamma)
            bar.update()
        return {"data": A.data, "indices": A.indices, "indptr": A.indptr}

    key = {"method": "mutual-knn-affinity", "X_db": array_digest(X_db), "k": int(k), "gamma": float(gamma)}
    arrays, _ = cached_arrays("graphs", key, compute)
    N = len(X_db)
    return sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(N, N))


def query_vector(X_q: np.ndarray, X_db: np.ndarray, k: int = QUERY_K, gamma: float = GAMMA) -> np.ndarray:
    """The queries' starting vectors ``Y (N, Q) float32``: ``y_i = max(q . x_i, 0)^gamma`` for the query's
    ``k`` nearest database vectors, 0 elsewhere (Iscen et al., CVPR 2017). Column ``j`` is query ``j``."""
    X_db = _vectors(X_db, "X_db")
    sims, ids = nearest(X_q, X_db, k)
    Y = np.zeros((len(X_db), len(sims)), np.float32)
    Y[ids, np.arange(len(sims))[:, None]] = np.maximum(sims, 0.0) ** np.float32(gamma)
    return Y


# ----------------------------------------------------------------------------------------------------------
# Diffusion: solving (I - alpha S) F = Y
# ----------------------------------------------------------------------------------------------------------

def conjugate_gradient(matvec, B: np.ndarray, tol: float = CG_TOL, maxiter: int = CG_ITERATIONS) -> np.ndarray:
    """Solve ``M X = B`` for a symmetric positive definite ``M``, every column of ``B`` at once
    (Hestenes and Stiefel, 1952).

    ``matvec``: ``(N, Q) -> (N, Q)``, the product ``M P``; ``B (N, Q)
    float32`` -> ``X (N, Q) float32``. Starts from ``X = 0``; a column stops
    (its step set to 0) once its residual ``||b - M x||`` is at most
    ``tol * ||b||``, as MATLAB's ``pcg`` that Iscen et al. use; at most
    ``maxiter`` products in all. Each iteration is one sparse product with
    all columns, instead of one per column.
    """
    B = np.asarray(B, dtype=np.float32)
    squeeze = B.ndim == 1
    B = B[:, None] if squeeze else B
    X = np.zeros_like(B)
    R = B.copy()                                   # residual b - M x
    P = R.copy()                                   # search direction
    rr = np.einsum("nq,nq->q", R, R)               # loop form: [R[:, j] @ R[:, j] for j in range(Q)]
    goal = (tol ** 2) * rr                         # ||r||^2 <= tol^2 ||b||^2
    active = rr > goal
    for _ in range(maxiter):
        if not active.any():
            break
        MP = matvec(P)
        pMp = np.einsum("nq,nq->q", P, MP)
        step = np.where(active & (pMp > 0), rr / np.where(pMp > 0, pMp, 1.0), 0.0).astype(np.float32)
        X += step * P
        R -= step * MP
        rr_new = np.einsum("nq,nq->q", R, R)
        beta = np.where(active, rr_new / np.where(rr > 0, rr, 1.0), 0.0).astype(np.float32)
        P = R + beta * P
        rr = rr_new
        active &= rr > goal
    return X[:, 0] if squeeze else X


def iterative_diffusion(S: sp.spmatrix, Y: np.ndarray, alpha: float = ALPHA, n_iter: int = CG_ITERATIONS
                        ) -> np.ndarray:
    """Zhou et al.'s iteration ``F <- alpha S F + Y`` from ``F = Y``, ``n_iter`` times: ``(N, Q) float32``.
    It converges to ``(I - alpha S)^-1 Y`` since the spectral radius of ``alpha S`` is below 1, but its
    error shrinks only by ``alpha`` per step: 0.99 needs hundreds of steps where CG needs about 20."""
    F = np.asarray(Y, dtype=np.float32).copy()
    for _ in range(n_iter):
        F = alpha * (S @ F) + Y
    return F.astype(np.float32)


def dense_diffusion(S: sp.spmatrix, Y: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """``(I - alpha S)^-1 Y`` by a dense solve in float64: the exact answer, for small graphs (``N`` of a few
    thousand) and for tests. ``(N, Q) float32``."""
    S = S.toarray() if sp.issparse(S) else np.asarray(S)
    M = np.eye(len(S)) - alpha * S.astype(np.float64)
    return np.linalg.solve(M, np.asarray(Y, dtype=np.float64)).astype(np.float32)


def diffuse(S: sp.spmatrix, Y: np.ndarray, alpha: float = ALPHA, solver: str = "cg", tol: float = CG_TOL,
            maxiter: int = CG_ITERATIONS) -> np.ndarray:
    """Solve ``(I - alpha S) F = Y`` with ``solver`` ``"cg"`` (:func:`conjugate_gradient`), ``"iterative"``
    (:func:`iterative_diffusion`, ``maxiter`` steps) or ``"dense"`` (:func:`dense_diffusion`).
    ``S (N, N)`` sparse, ``Y (N, Q)`` or ``(N,)`` -> ``F`` of ``Y``'s shape, float32."""
    if not 0 <= alpha < 1:
        raise ValueError(f"alpha must be in [0, 1) for (I - alpha S) to be invertible, got {alpha}")
    if S.shape[0] != S.shape[1] or S.shape[0] != len(Y):
        raise ValueError(f"S is {S.shape} and Y has {len(Y)} rows: S must be (N, N) and Y (N, Q)")
    if solver == "cg":
        return conjugate_gradient(lambda P: P - alpha * (S @ P), Y, tol, maxiter)
    if solver == "iterative":
        return iterative_diffusion(S, Y, alpha, maxiter)
    if solver == "dense":
        return dense_diffusion(S, Y, alpha)
    raise ValueError(f"unknown solver {solver!r}: use 'cg', 'iterative' or 'dense'")


def ranked_below(F: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Scores ``(Q, N) float32`` that rank by ``F`` every image diffusion reached (``F != 0``) and put the
    others after them, in the order of the first ranking ``first (Q, N)``: an image the graph never
    reached has no diffusion score, and the plain similarity is the best guess left."""
    F = np.asarray(F, dtype=np.float32)
    lo = np.minimum(F.min(axis=1, keepdims=True), 0.0)
    span = first.max(axis=1, keepdims=True) - first.min(axis=1, keepdims=True)
    below = lo - 2.0 + (first - first.min(axis=1, keepdims=True)) / np.maximum(span, 1e-12)  # in [lo-2, lo-1]
    return np.where(F != 0, F, below).astype(np.float32)


def diffusion(X_q: np.ndarray, X_db: np.ndarray, k: int = GRAPH_K, k_q: int = QUERY_K, gamma: float = GAMMA,
              alpha: float = ALPHA, truncate: int | None = None, A: sp.spmatrix | None = None, tol: float = CG_TOL,
              maxiter: int = CG_ITERATIONS, chunk: int = 256, progress: bool = False) -> np.ndarray:
    """Diffusion re-ranking (Iscen et al., CVPR 2017): ``X_q (Q, D)``, ``X_db (N, D) float32`` -> scores
    ``(Q, N) float32``, larger is better.

    The graph ``A`` is :func:`diffusion_graph` (``k`` mutual neighbours,
    exponent ``gamma``; pass ``A`` to reuse one), each query's ``y`` is
    :func:`query_vector` (``k_q`` neighbours) and ``f`` solves
    ``(I - alpha S) f = y`` by conjugate gradient (``tol``, ``maxiter``),
    ``chunk`` queries at a time. Images the diffusion never reaches come
    after the others, in the order of the plain similarity
    (:func:`ranked_below`).

    ``truncate``: for large databases, each query diffuses on the sub-graph
    of its ``truncate`` most similar database images only, ``S`` normalised
    again on it, as in the paper's large-scale experiments (its
    ``trunclap``): the cost per query no longer grows with ``N``.
    """
    X_db = _vectors(X_db, "X_db")
    X_q = _vectors(X_q, "X_q", X_db.shape[1])
    if A is None:
        A = diffusion_graph(X_db, k, gamma, progress)
    if A.shape != (len(X_db), len(X_db)):
        raise ValueError(f"the graph is {A.shape} but there are {len(X_db)} database vectors")
    first = X_q @ X_db.T                                            # (Q, N): the plain ranking
    F = np.zeros_like(first)
    if truncate is None or truncate >= len(X_db):
        S = normalized_affinity(A)
        for start in tqdm(range(0, len(X_q), chunk), desc="diffusion", disable=not progress):
            Y = query_vector(X_q[start:start + chunk], X_db, k_q, gamma)
            F[start:start + chunk] = diffuse(S, Y, alpha, "cg", tol, maxiter).T
        return ranked_below(F, first)
    A = sp.csr_matrix(A)
    _, short = top_k(first, int(truncate), largest=True)            # (Q, L): each query's sub-graph
    for q in tqdm(range(len(X_q)), desc="diffusion (truncated)", disable=not progress):
        sub = short[q]                                  # one small system per query: a loop over queries
        S = normalized_affinity(A[sub][:, sub])
        y = query_vector(X_q[q:q + 1], X_db[sub], k_q, gamma)
        F[q, sub] = diffuse(S, y, alpha, "cg", tol, maxiter)[:, 0]
    return ranked_below(F, first)


def apply(X_q: np.ndarray, X_db: np.ndarray, how: str, n: int = QE_K, qe_alpha: float = QE_ALPHA, k: int = GRAPH_K,
          k_q: int = QUERY_K, alpha: float = ALPHA, cache_graph: bool = True, A: sp.spmatrix | None = None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-ranking ``how`` with its settings: ``(sims (Q, N), X_q, X_db)``, all ``float32``.

    ``"aqe"``: :func:`average_query_expansion` with the top ``n``;
    ``"alpha_qe"``: :func:`alpha_query_expansion` with the top ``n`` and
    the exponent ``qe_alpha``; ``"aqe_dba"``, ``"alpha_qe_dba"``: the same
    after :func:`database_augmentation` with ``n`` neighbours;
    ``"diffusion"``: :func:`diffusion` on a ``k``-NN graph from ``k_q``
    query neighbours, damping ``alpha`` (the graph cached on disk unless
    ``cache_graph`` is false, as for the many small graphs of a search over
    settings; or given as ``A``, :func:`knn_affinity` of ``X_db`` with ``k``). After expansion ``sims = X_q @ X_db.T`` with the expanded
    vectors returned; after diffusion the vectors are returned unchanged.
    The defaults are the papers'; :mod:`coursekit.rerank_choice` chooses
    them from the data. ``n = 0`` (expansion) or ``k_q = 0`` (diffusion)
    re-ranks nothing: the first ranking, what the choice picks where
    re-ranking does not help.
    """
    X_db = _vectors(X_db, "X_db")
    X_q = _vectors(X_q, "X_q", X_db.shape[1])
    if (k_q if how == "diffusion" else n) == 0:
        return (X_q @ X_db.T).astype(np.float32), X_q, X_db
    if how == "diffusion":
        if A is None and not cache_graph:
            A = knn_affinity(X_db, k)
        return diffusion(X_q, X_db, k=k, k_q=k_q, alpha=alpha, A=A), X_q, X_db
    if how not in ("aqe", "alpha_qe", "aqe_dba", "alpha_qe_dba"):
        raise ValueError(f"unknown re-ranking {how!r}; known: aqe, alpha_qe, aqe_dba, alpha_qe_dba, diffusion")
    weight = qe_alpha if how.startswith("alpha") else 0.0
    if how.endswith("_dba"):
        X_db = database_augmentation(X_db, n, weight)
    X_q = alpha_query_expansion(X_q, X_db, n, weight)
    return (X_q @ X_db.T).astype(np.float32), X_q, X_db


# ----------------------------------------------------------------------------------------------------------
# Regional diffusion
# ----------------------------------------------------------------------------------------------------------

def gmp_weights(V: np.ndarray, starts: np.ndarray, lam: float = 1.0) -> np.ndarray:
    """Generalized max pooling weights of each image's regional vectors (Murray and Perronnin, CVPR 2014), as
    Iscen et al. (CVPR 2017) pool regional diffusion scores: for the regions ``V_i (R_i, D)`` of image ``i``,
    ``b_i`` solves ``(V_i V_i^T + lam I) b_i = 1``. ``V (M, D) float32`` (all images' regions, image by image),
    ``starts (N,) int64`` (the first region of each image) -> ``(M,) float32``.

    A region like many others of its image gets a small weight, a region unlike the rest a large one, so that
    a repeated background does not outvote the one region that holds the object. All images are solved in one
    batched call, their Gram matrices padded with the identity to the largest region count.
    """
    V = _vectors(V, "V")
    starts = np.asarray(starts, dtype=np.int64)
    counts = np.diff(np.append(starts, len(V)))
    n, r = len(starts), int(counts.max())
    slot = np.arange(len(V)) - np.repeat(starts, counts)                 # each region's place in its image
    image = np.repeat(np.arange(n), counts)
    padded = np.zeros((n, r, V.shape[1]), np.float32)
    padded[image, slot] = V
    gram = padded @ padded.transpose(0, 2, 1) + lam * np.eye(r, dtype=np.float32)   # (n, r, r); padding: lam I
    b = np.linalg.solve(gram.astype(np.float64), np.ones((n, r, 1)))[..., 0]      # loop form: one solve per image
    return b[image, slot].astype(np.float32)


def regional_diffusion(V_q: np.ndarray, starts_q: np.ndarray, V_db: np.ndarray, starts_db: np.ndarray,
                       first: np.ndarray, k: int = 200, k_q: int = 200, gamma: float = GAMMA, alpha: float = ALPHA,
                       tol: float = CG_TOL, maxiter: int = CG_ITERATIONS, chunk: int = 64,
                       progress: bool = False) -> np.ndarray:
    """Diffusion on the graph of the database's *regions* (Iscen et al., CVPR 2017, their "regional" setting,
    with their ``k = k_q = 200``): ``(Q, N) float32`` image scores, larger is better.

    ``V_q (R_q, D)`` and ``V_db (M, D) float32``: L2-normalised regional
    vectors (e.g. R-MAC's regional MACs,
    :func:`coursekit.cnn.extract.dataset_regional_macs`), image by image,
    ``starts_q (Q,)`` and ``starts_db (N,)`` the first region of each.
    The graph is :func:`diffusion_graph` of ``V_db`` (cached). A query's
    ``y`` sums, over its regions, their similarities to their ``k``
    nearest database regions; its ``k_q`` largest entries are kept and
    raised to ``gamma``. After the solve, an image's score is its regions'
    scores pooled with :func:`gmp_weights`. ``first (Q, N)``: the
    similarities that order what the diffusion does not reach
    (:func:`ranked_below`). A small object in a cluttered image is one
    region among many: its region can be reached when the whole image's
    vector, dominated by the clutter, is not.
    """
    V_db = _vectors(V_db, "V_db")
    V_q = _vectors(V_q, "V_q", V_db.shape[1])
    starts_q, starts_db = np.asarray(starts_q, np.int64), np.asarray(starts_db, np.int64)
    Q, N, M = len(starts_q), len(starts_db), len(V_db)
    if first.shape != (Q, N):
        raise ValueError(f"first must be (Q, N) = {(Q, N)}, got {first.shape}")
    S = normalized_affinity(diffusion_graph(V_db, k, gamma, progress))
    coeff = gmp_weights(V_db, starts_db)
    owner = np.repeat(np.arange(Q), np.diff(np.append(starts_q, len(V_q))))      # query of each query region
    sims, ids = nearest(V_q, V_db, k)                                              # (R_q, k)
    F = np.zeros((Q, N), np.float32)
    for start in tqdm(range(0, Q, chunk), desc="regional diffusion", disable=not progress):
        stop = min(start + chunk, Q)
        rows = (owner >= start) & (owner < stop)
        acc = np.zeros((stop - start, M), np.float32)
        np.add.at(acc, (np.repeat(owner[rows] - start, ids.shape[1]), ids[rows].ravel()), sims[rows].ravel())
        vals, cols = top_k(acc, min(k_q, M), largest=True)                        # keep the k_q largest
        Y = np.zeros((M, stop - start), np.float32)
        Y[cols, np.arange(stop - start)[:, None]] = np.maximum(vals, 0.0) ** np.float32(gamma)
        f = diffuse(S, Y, alpha, "cg", tol, maxiter)                              # (M, chunk)
        F[start:stop] = np.add.reduceat(f * coeff[:, None], starts_db, axis=0).T  # pooled per image
    return ranked_below(F, first)
