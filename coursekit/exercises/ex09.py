"""Checks of notebook 09, "Re-ranking: query expansion and diffusion".

=====  ===============================================  =====================================================
id     the student writes                               reference
=====  ===============================================  =====================================================
9.1    ``average_query_expansion(X_q, X_db, k)``        :func:`coursekit.rerank.average_query_expansion`
9.2    ``normalized_affinity(A)``                       :func:`coursekit.rerank.normalized_affinity`, dense
9.3    ``conjugate_gradient(matvec, b, tol, maxiter)``  :func:`coursekit.rerank.conjugate_gradient`, one vector
=====  ===============================================  =====================================================

Contracts
---------
9.1 ``X_q (Q, D)`` and ``X_db (N, D)`` float32 NumPy arrays with unit
    rows; ``k`` an int, ``1 <= k <= N``. Returns ``(Q, D)`` float (any float
    dtype): each query plus its ``k`` most similar database vectors (dot
    product), summed with weight 1 each, then L2-normalised (Chum et al.,
    ICCV 2007). The cases have no tie at the ``k``-th neighbour.
    Tolerance ``1e-5``. The inputs must not be changed.

9.2 ``A (N, N)`` float64 NumPy array, symmetric, non-negative, zero
    diagonal; some cases have a vertex with no edge (a zero row and
    column). Returns ``S = D^-1/2 A D^-1/2`` with ``D = diag(A 1)``, as an
    ``(N, N)`` float array (a SciPy sparse matrix is accepted and
    converted); the row and column of an isolated vertex are zeros, never
    NaN (Zhou et al., NIPS 2003). Tolerance ``1e-6``.

9.3 ``matvec`` a function ``(N,) -> (N,)`` that returns ``M p`` for a
    symmetric positive definite ``M`` the student never sees; ``b (N,)``
    float64; ``tol`` a float; ``maxiter`` an int. Returns ``x (N,)`` float,
    from ``x = 0``, by conjugate gradient (Hestenes and Stiefel, 1952),
    having called ``matvec`` at most ``maxiter`` times. The check compares
    ``x`` with ``np.linalg.solve`` (a product with the zero vector, as in
    ``r = b - M x0``, is not counted): within ``10 tol ||x*||`` (and ``1e-9``)
    when CG reaches ``tol`` within ``maxiter`` products, as it does on
    every case but one; there, with ``maxiter`` cut short, ``x`` must be
    CG's own iterate after ``maxiter`` steps (relative tolerance ``1e-6``),
    which tells CG from steepest descent and other solvers. ``b = 0`` must
    give ``x = 0``.

Each check runs small hand-made cases first, then seeded random ones. When a
wrong answer matches a known slip (the query left out of the average, no
normalisation, ``D^-1 A``, no ``beta``...), the message names it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .check import CheckFailed, Checker, Exercise, compare, diagnose

__all__ = ["check_average_query_expansion", "check_normalized_affinity", "check_conjugate_gradient"]

_SEED = 2027


def _exercise(ex_id: str) -> Exercise:
    from . import exercise  # late: the list in __init__ refers to the checks below
    return exercise(ex_id)


def _unit(X: np.ndarray) -> np.ndarray:
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------- 9.1

def _qe_slips(X_q: np.ndarray, X_db: np.ndarray, k: int) -> dict[str, np.ndarray]:
    sims = X_q @ X_db.T
    order = np.argsort(-sims, axis=1, kind="stable")
    top = lambda kk: X_db[order[:, :kk]].sum(axis=1)
    slips = {
        "the query itself belongs to the average: q' = q + x_1 + ... + x_k, then normalise.": _unit(top(k)),
        "normalise the result: q' / ||q'|| (each row to unit length).": X_q + top(k),
        "take the k MOST similar database vectors (sort the similarities in decreasing order).":
            _unit(X_q + X_db[order[:, ::-1][:, :k]].sum(axis=1)),
        "average query expansion weighs every neighbour 1; weighting by similarity is alpha-QE.":
            _unit(X_q + np.einsum("qk,qkd->qd", np.take_along_axis(sims, order[:, :k], axis=1),
                                  X_db[order[:, :k]])),
    }
    if k + 1 <= len(X_db):
        slips["use exactly k neighbours (not k + 1)."] = _unit(X_q + top(k + 1))
    if k > 1:
        slips["use exactly k neighbours (not k - 1)."] = _unit(X_q + top(k - 1))
    return slips


def check_average_query_expansion(average_query_expansion: Callable, *, quiet: bool = False) -> None:
    """Exercise 9.1: average query expansion, ``(Q, D)`` unit rows."""
    from ..rerank import average_query_expansion as ref

    c = Checker(_exercise("9.1"), quiet=quiet)

    def case(X_q, X_db, k):
        expected = ref(X_q, X_db, k).astype(np.float64)
        got, where, call = c.start(average_query_expansion, X_q=X_q, X_db=X_db, k=k)
        if isinstance(got, np.ndarray) and got.shape == (len(X_q), len(X_db)) and expected.shape != got.shape:
            raise CheckFailed(f"{where}: got a (Q, N) array, similarities: return the expanded query VECTORS, "
                              f"shape {expected.shape}, which the notebook then searches with")
        diagnose(where, got, expected, _qe_slips(X_q, X_db, k), dict(atol=1e-5, rtol=1e-5))
        compare(c.exercise, got, expected, call=call, atol=1e-5, rtol=1e-5)
        c.count()

    # the small case: two clusters in the plane's first quadrant and third, the query near the first
    X_db = _unit(np.array([[1.0, 0.1, 0.0], [0.9, 0.3, 0.1], [0.7, 0.7, 0.0], [-1.0, 0.0, 0.2], [0.0, -1.0, 0.3]]))
    X_q = _unit(np.array([[1.0, 0.0, 0.0], [0.0, -0.9, 0.5]]))
    case(X_q, X_db, 2)
    rng = np.random.default_rng(_SEED)
    case(_unit(rng.normal(size=(6, 8))), _unit(rng.normal(size=(40, 8))), 5)
    case(_unit(rng.normal(size=(3, 16))), _unit(rng.normal(size=(25, 16))), 1)
    case(_unit(rng.normal(size=(10, 32))), _unit(rng.normal(size=(120, 32))), 10)
    case(_unit(rng.normal(size=(1, 4))), _unit(rng.normal(size=(7, 4))), 7)          # k = N: every vector
    return c.passed()


# --------------------------------------------------------------------------- 9.2

def _affinity(rng: np.random.Generator, n: int, density: float, isolated: tuple[int, ...] = ()) -> np.ndarray:
    A = rng.random((n, n)) * (rng.random((n, n)) < density)
    A = np.triu(A, 1)
    A = A + A.T
    for i in isolated:
        A[i, :] = A[:, i] = 0.0
    for i in range(n):                       # every other vertex keeps at least one edge
        if i not in isolated and not A[i].any():
            j = (i + 1) % n if (i + 1) % n not in isolated else (i + 2) % n
            A[i, j] = A[j, i] = 0.5
    return A


def _inverse_where(d: np.ndarray, power: float) -> np.ndarray:
    out = np.zeros_like(d)
    np.power(d, -power, out=out, where=d > 0)
    return out


def _affinity_slips(A: np.ndarray) -> dict[str, np.ndarray]:
    d = A.sum(axis=1)
    inv, inv_sqrt = _inverse_where(d, 1.0), _inverse_where(d, 0.5)
    return {
        "D^-1 A divides each row by its degree (a random walk's transition matrix, not symmetric): the "
        "symmetric normalisation divides a_ij by sqrt(d_i d_j).": inv[:, None] * A,
        "A D^-1 divides each column by its degree: the symmetric normalisation divides a_ij by sqrt(d_i d_j).":
            A * inv[None, :],
        "D^-1/2, the inverse SQUARE ROOT of the degrees, on both sides: a_ij / sqrt(d_i d_j), not "
        "a_ij / (d_i d_j).": inv[:, None] * A * inv[None, :],
        "S = D^-1/2 A D^-1/2 multiplies A by the inverse square roots; you multiplied by the square roots.":
            np.sqrt(d)[:, None] * A * np.sqrt(d)[None, :],
        "S is D^-1/2 A D^-1/2 itself, not I - S (that is the Laplacian).":
            np.eye(len(A)) - inv_sqrt[:, None] * A * inv_sqrt[None, :],
    }


def check_normalized_affinity(normalized_affinity: Callable, *, quiet: bool = False) -> None:
    """Exercise 9.2: ``S = D^-1/2 A D^-1/2``, ``(N, N)``, zero rows for isolated vertices."""
    import scipy.sparse as sp

    from ..rerank import normalized_affinity as ref

    c = Checker(_exercise("9.2"), quiet=quiet)

    def case(A):
        expected = ref(sp.csr_matrix(A)).toarray().astype(np.float64)
        got, where, call = c.start(normalized_affinity, A=A)
        if sp.issparse(got):
            got = got.toarray()
        if isinstance(got, np.ndarray) and got.shape == expected.shape and got.dtype.kind == "f":
            isolated = ~A.any(axis=1)
            if isolated.any() and not np.isfinite(got[isolated]).all():
                i = int(np.flatnonzero(isolated)[0])
                raise CheckFailed(f"{where}: vertex {i} has no edge (degree 0) and its row holds NaN or inf: "
                                  f"1 / sqrt(0) is infinite; give an isolated vertex the factor 0 instead")
        diagnose(where, got, expected, _affinity_slips(A), dict(atol=1e-6, rtol=1e-6))
        compare(c.exercise, got, expected, call=call, atol=1e-6, rtol=1e-6)
        c.count()

    # the small case: a path 0 - 1 - 2 with weights 1 and 3, and vertex 3 alone
    case(np.array([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 3.0, 0.0], [0.0, 3.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    rng = np.random.default_rng(_SEED)
    case(_affinity(rng, 12, 0.4))
    case(_affinity(rng, 30, 0.2, isolated=(0, 17)))
    case(_affinity(rng, 60, 0.1, isolated=(59,)))
    case(np.array([[0.0, 2.0], [2.0, 0.0]]))
    return c.passed()


# --------------------------------------------------------------------------- 9.3

def _cg_reference(M: np.ndarray, b: np.ndarray, tol: float, maxiter: int) -> np.ndarray:
    from ..rerank import conjugate_gradient as ref

    return ref(lambda P: M @ P, b.astype(np.float64)[:, None].astype(np.float32), tol, maxiter)[:, 0]


def _cg_float64(M: np.ndarray, b: np.ndarray, tol: float, maxiter: int) -> np.ndarray:
    """CG in float64 (the reference in float32 is too coarse to tell iterates apart after a few steps)."""
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr, goal = r @ r, tol ** 2 * (b @ b)
    for _ in range(maxiter):
        if rr <= goal:
            break
        Mp = M @ p
        a = rr / (p @ Mp)
        x, r = x + a * p, r - a * Mp
        rr, old = r @ r, rr
        p = r + rr / old * p
    return x


def _steepest_descent(M: np.ndarray, b: np.ndarray, maxiter: int) -> np.ndarray:
    x, r = np.zeros_like(b), b.copy()
    for _ in range(maxiter):
        Mr = M @ r
        x, r = x + (r @ r) / (r @ Mr) * r, r - (r @ r) / (r @ Mr) * Mr
    return x


def _graph_system(rng: np.random.Generator, n: int, alpha: float = 0.9) -> np.ndarray:
    from ..rerank import knn_affinity, normalized_affinity

    X = rng.normal(size=(n, 6))
    S = normalized_affinity(knn_affinity(_unit(X), k=min(8, n))).toarray().astype(np.float64)
    return np.eye(n) - alpha * S


def check_conjugate_gradient(conjugate_gradient: Callable, *, quiet: bool = False) -> None:
    """Exercise 9.3: conjugate gradient for one right-hand side, at most ``maxiter`` products."""
    c = Checker(_exercise("9.3"), quiet=quiet)

    def case(M, b, tol, maxiter, converged=True):
        calls = []

        def matvec(p):
            p = np.asarray(p, dtype=np.float64)
            if p.any():                      # a product with x = 0 (r = b - M x0) is free
                calls.append(1)
            return M @ p

        exact = np.linalg.solve(M, b)
        cg = _cg_float64(M, b, tol, maxiter)
        got, where, call = c.start(conjugate_gradient, matvec=matvec, b=b, tol=tol, maxiter=maxiter)
        if len(calls) > maxiter:
            raise CheckFailed(f"{where}: called matvec {len(calls)} times: stop after maxiter = {maxiter} "
                              f"products, even if the tolerance is not reached")
        if isinstance(got, np.ndarray) and got.shape == b.shape and got.dtype.kind == "f" and b.any():
            sd = _steepest_descent(M, b, maxiter)
            close = lambda u, v: np.allclose(u, v, rtol=1e-6, atol=1e-9 * np.abs(v).max())
            if not close(got, cg) and not close(got, exact) and close(got, sd):
                raise CheckFailed(f"{where}: this is steepest descent, which moves along the residual r "
                                  f"each time: conjugate gradient's direction is p = r' + beta p with "
                                  f"beta = r'.r' / r.r")
        slips = {"the update is x <- x + a p with a = r.r / p.Mp, positive: check the signs.": -cg}
        expected = cg if not converged else exact
        scale = np.abs(exact).max()
        tol_abs = (1e-6 * scale) if not converged else max(10 * tol * np.linalg.norm(exact), 1e-9)
        diagnose(where, got, expected, slips, dict(atol=tol_abs, rtol=0))
        compare(c.exercise, got, expected, call=call, atol=tol_abs, rtol=0)
        c.count()

    rng = np.random.default_rng(_SEED)
    M = np.array([[4.0, 1.0], [1.0, 3.0]])                               # the textbook 2 x 2 system
    case(M, np.array([1.0, 2.0]), 1e-10, 10)
    R = rng.normal(size=(20, 20))
    case(R @ R.T + 20 * np.eye(20), rng.normal(size=20), 1e-8, 50)      # well conditioned
    case(_graph_system(rng, 80), rng.random(80), 1e-8, 200)            # I - 0.9 S of a kNN graph
    M = _graph_system(rng, 150, alpha=0.99)
    case(M, rng.random(150), 1e-12, 8, converged=False)                 # cut short: CG's own 8th iterate
    case(M, np.zeros(150), 1e-6, 20)                                    # b = 0: x = 0
    d = np.linspace(1, 1000, 40)
    case(np.diag(d), rng.normal(size=40), 1e-10, 60)                    # ill conditioned, 40 eigenvalues
    return c.passed()
