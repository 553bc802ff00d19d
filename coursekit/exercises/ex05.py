"""Checks of notebook 05, "Dimensionality: PCA and whitening".

=====  ==================================  ======================================================
id     the student writes                  reference
=====  ==================================  ======================================================
5.1    ``fit_whitening(X, d, eps)``        :func:`coursekit.whitening.fit_pca_whitening`
                                           (its ``mean`` and ``P``)
5.2    ``apply_whitening(X, mean, P)``     :meth:`coursekit.whitening.Whitening.apply`
=====  ==================================  ======================================================

Contracts
---------
5.1 ``X (N, D)`` float training vectors, ``d`` the number of dimensions to
    keep (``1 <= d < N``, ``d <= D``; the cases keep ``d`` below the rank of the
    centred data, so every kept direction is defined), ``eps >= 0``. Returns a
    pair ``(mean (D,), P (d, D))`` of float arrays: ``mean`` the mean of the rows
    of ``X``; with ``X - mean = U S V^T`` (SVD of the centred data) the rows of
    ``E^T`` are the first ``d`` rows of ``V^T``, by decreasing variance
    ``lambda_i = S_i^2 / (N - 1)``, and row ``i`` of ``P`` is row ``i`` of ``E^T``
    divided by ``sqrt(lambda_i + eps * lambda_1)``:
    ``P = diag(lambda + eps lambda_1)^(-1/2) E^T`` (Jegou and Chum, ECCV 2012).

    Accepted variants, because they give the same whitened vectors after L2
    normalisation: each row of ``P`` may have either sign (an eigenvector's
    sign is arbitrary, and SVD routines differ); the variances may be
    ``S^2 / N`` instead of ``S^2 / (N - 1)`` (``np.var``'s default, the
    maximum-likelihood estimate; it multiplies every row of ``P`` by the same
    ``sqrt(N / (N - 1))``, which the L2 normalisation removes, and the
    whitened training vectors have variance ``(N - 1) / N``, close to 1). Any
    correct route passes: the SVD, the eigenvectors of the covariance
    (``np.linalg.eigh``, then in decreasing order), scikit-learn's PCA.
    Not accepted: ``S^2`` without dividing by ``N - 1`` (the whitened training
    vectors would not have unit variance, which is what whitening means),
    directions in increasing order of variance.

5.2 ``X (N, D)`` float, ``mean (D,)`` and ``P (d, D)`` float32 as 5.1 returns
    them. Returns ``(N, d) float32``: the rows of ``(X - mean) P^T``, each
    divided by its L2 norm; a row equal to ``mean`` projects to zero and stays
    zero (divide by ``max(norm, 1e-12)``, as :func:`coursekit.whitening.l2_normalize`).

Each check runs the small 2-D cloud the notebook works through first, then
seeded random cases: many short vectors (``N > D``) and few long ones
(``N < D``, like VLADs of a training split). When a wrong answer matches a
known slip (no centring, ``S`` for the variance, ``eps`` not relative to
``lambda_1``, dividing by ``lambda`` instead of its square root, columns
for rows, increasing order; for 5.2 no centring, no L2, ``P`` for ``P^T``,
normalising before projecting) the message names it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .check import CheckFailed, Checker, Exercise, call_text, compare, describe

__all__ = ["check_fit_whitening", "check_apply_whitening", "lecture_cloud"]

_SEED = 2025


def lecture_cloud() -> np.ndarray:
    """The notebook's 2-D example: 300 points of an elongated, tilted Gaussian cloud centred at (3, 1).

    Standard deviations 2 and 0.5 along axes at 30 degrees; ``(300, 2) float64``.
    """
    rng = np.random.default_rng(5)
    a = np.deg2rad(30.0)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (rng.normal(size=(300, 2)) * [2.0, 0.5]) @ R.T + [3.0, 1.0]


def _exercise(ex_id: str) -> Exercise:
    from . import exercise  # late: the list in __init__ refers to the checks below
    return exercise(ex_id)



def _anisotropic(rng: np.random.Generator, n: int, scales: np.ndarray, offset: float = 2.0,
                 dtype=np.float64) -> np.ndarray:
    """``n`` points with standard deviations ``scales`` along random orthogonal axes, off the origin."""
    D = len(scales)
    R = np.linalg.qr(rng.normal(size=(D, D)))[0]
    return ((rng.normal(size=(n, D)) * scales) @ R.T + offset * rng.normal(size=D)).astype(dtype)


# --------------------------------------------------------------------------- 5.1

def _aligned(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``got`` with each row's sign flipped to agree with the same row of ``ref`` (both ``(d, D)``)."""
    s = np.sign(np.sum(got * ref, axis=1))
    s[s == 0] = 1.0
    return got * s[:, None]


def _same_rows(got: np.ndarray, ref: np.ndarray, tol: dict) -> bool:
    """Equal up to the sign of each row."""
    return got.shape == ref.shape and bool(np.all(np.isfinite(ref))) and np.allclose(_aligned(got, ref), ref, **tol)


def _tol_for(P: np.ndarray, dtype=np.float64) -> dict:
    """Tolerances for ``P``: looser for float32 data, whose SVD in float32 is accurate to about 1e-4."""
    f = 10.0 if np.dtype(dtype) == np.float32 else 1.0
    return dict(rtol=1e-4 * f, atol=1e-5 * f * float(np.abs(P).max()))


def _whitening_slips(X: np.ndarray, d: int, eps: float) -> dict[str, np.ndarray]:
    """``P`` of plausible slips, each with the message that explains it."""
    N, D = X.shape
    m = X.mean(0)
    _, S, Vt = np.linalg.svd(X - m, full_matrices=False)
    lam = S ** 2 / (N - 1)
    Et, l = Vt[:d], lam[:d]

    def P(E, v, first=None):
        return E / np.sqrt(v + eps * (v[0] if first is None else first))[:, None]

    _, S0, Vt0 = np.linalg.svd(X, full_matrices=False)
    slips = {
        "centre the data first: the SVD of X itself (not X - mean) finds the direction of the mean, "
        "not of the largest variance.": P(Vt0[:d], S0[:d] ** 2 / (N - 1)),
        "the variances are lambda_i = S_i^2 / (N - 1), the squared singular values divided by N - 1, "
        "not the singular values S_i.": P(Et, S[:d]),
        "the variances are lambda_i = S_i^2 / (N - 1): divide the squared singular values by N - 1 "
        "(without it the whitened training vectors have variance 1 / (N - 1), not 1).": P(Et, S[:d] ** 2),
        "eps is relative to the largest variance: divide by sqrt(lambda_i + eps * lambda_1), not "
        "sqrt(lambda_i + eps).": Et / np.sqrt(l + eps)[:, None],
        "that is PCA, not whitening: divide row i of E^T by sqrt(lambda_i + eps * lambda_1).": Et,
        "add the regulariser: divide by sqrt(lambda_i + eps * lambda_1); eps was left out.": P(Et, l, 0.0),
        "eps is relative to lambda_1, the largest variance (row 0), not the smallest kept one.": P(Et, l, l[-1]),
        "divide each row by the square root sqrt(lambda_i + eps * lambda_1), not by "
        "lambda_i + eps * lambda_1.": Et / (l + eps * l[0])[:, None],
        "the directions are the rows of V^T (np.linalg.svd returns V^T, directions as rows), not its "
        "columns.": P(Vt.T[:d], l) if Vt.shape[0] == D else None,
    }
    if d == D:
        slips["divide row i of E^T by sqrt(lambda_i + eps * lambda_1) (broadcast over rows with "
              "[:, None]), not column i."] = Et / np.sqrt(l + eps * l[0])[None, :]
    return {hint: answer for hint, answer in slips.items() if answer is not None and answer.shape == (d, D)}


def _which_directions(P: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, int] | None:
    """For each row of ``P``, the index of the principal direction of ``X`` it points along (either
    sign), with the rank of the centred data; ``None`` when a row is not along one of the
    well-defined principal directions (those of non-zero variance)."""
    Xc = X.astype(np.float64) - X.mean(0)
    _, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    rank = int(np.sum(S > 1e-6 * S[0]))
    norms = np.linalg.norm(P, axis=1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(P)):
        return None
    cos = np.abs((P / norms) @ Vt[:rank].T)                   # (d, rank)
    idx = np.argmax(cos, axis=1)
    return (idx, rank) if np.all(cos[np.arange(len(P)), idx] > 0.999) else None


def _order_slip(P: np.ndarray, X: np.ndarray, d: int) -> str | None:
    """A message when the rows of ``P`` are principal directions, but not the first ``d`` in order."""
    found = _which_directions(P, X)
    if found is None or np.array_equal(found[0], np.arange(d)):
        return None
    idx, rank = found
    if np.array_equal(np.sort(idx), np.arange(d)):
        return ("the rows of P go by decreasing variance: row 0 is the direction of the largest variance "
                "(np.linalg.eigh sorts its eigenvalues in increasing order: reverse them).")
    if np.array_equal(np.sort(idx), np.arange(rank - d, rank)):
        return ("keep the directions of the largest variance (the first rows of V^T, or the last "
                "eigenvectors of np.linalg.eigh, reversed), not the smallest.")
    return (f"the rows of P are principal directions {idx.tolist()}, by variance; "
            f"keep the first d = {d}, in decreasing order of variance.")


def check_fit_whitening(fit_whitening: Callable, *, quiet: bool = False) -> None:
    """Exercise 5.1: ``(mean (D,), P (d, D))`` of PCA-whitening, rows by decreasing variance, any signs."""
    from ..whitening import fit_pca_whitening

    ex = _exercise("5.1")
    c = Checker(ex, quiet=quiet)
    name = getattr(fit_whitening, "__name__", ex.function)

    def case(X: np.ndarray, d: int, eps: float) -> None:
        ref = fit_pca_whitening(X, d, eps)
        mean, P = ref.mean.astype(np.float64), ref.P.astype(np.float64)
        args = dict(X=X, d=d, eps=eps)
        call = call_text(name, args)
        where = f"{ex.label}: {call}"
        got = c.call(fit_whitening, **args)
        if got is None:
            raise CheckFailed(f"{where} returned None — did you forget `return`?")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise CheckFailed(f"{where}: expected a pair (mean, P), got {describe(got)} ({type(got).__name__})")
        g_mean, g_P = got
        if isinstance(g_mean, np.ndarray) and g_mean.shape == mean.shape and g_mean.dtype.kind == "f" \
                and np.allclose(g_mean, 0) and not np.allclose(mean, 0, atol=1e-3):
            raise CheckFailed(f"{where}: the mean is all zeros; return the mean of the rows of X, "
                              f"X.mean(axis=0), the centre that apply_whitening subtracts")
        compare(ex, g_mean, mean, call=call + ", its mean", atol=1e-5, rtol=1e-5)
        N, D = X.shape
        if isinstance(g_P, np.ndarray) and g_P.shape == (D, d) and d != D:
            raise CheckFailed(f"{where}: P must be (d, D) = {(d, D)}, one direction per row (E^T, the rows of "
                              f"V^T), got shape {g_P.shape}")
        if not isinstance(g_P, np.ndarray) or g_P.shape != P.shape or g_P.dtype.kind != "f":
            compare(ex, g_P, P, call=call + ", its P")   # fails with the right message
        tol = _tol_for(P, X.dtype)
        if np.isnan(g_P).any():
            raise CheckFailed(f"{where}: P contains nan")
        if _same_rows(g_P, P, tol) or _same_rows(g_P, P * np.sqrt(N / (N - 1)), tol):
            c.count()
            return
        order = _order_slip(g_P, X, d)
        if order is not None:
            raise CheckFailed(f"{where}: {order}")
        for hint, answer in _whitening_slips(X, d, eps).items():
            if _same_rows(g_P, answer, _tol_for(answer, X.dtype)):
                raise CheckFailed(f"{where}: {hint}")
        # no known slip: the first value that differs, once each row's sign agrees with the reference's
        compare(ex, _aligned(g_P, P), P, call=call + ", its P (rows' signs aligned with the reference's)", **tol)
        c.count()

    case(lecture_cloud(), 2, 0.0)
    rng = np.random.default_rng(_SEED)
    case(_anisotropic(rng, 300, np.array([8.0, 5.0, 3.0, 2.0, 1.0, 0.5])), 4, 0.1)      # N > D
    case(_anisotropic(rng, 200, np.array([6.0, 3.0, 1.5])), 3, 0.05)                    # d = D
    low = rng.normal(size=(40, 6)) * [9.0, 6.0, 4.0, 3.0, 2.0, 1.5] @ rng.normal(size=(6, 100))
    X = (low + 0.3 * rng.normal(size=(40, 100)) + rng.normal(size=100)).astype(np.float32)
    case(X, 10, 1e-2)                                                                     # N < D, float32
    case(_anisotropic(rng, 50, np.array([4.0, 2.0, 1.0, 0.5, 0.25])), 1, 1e-3)          # d = 1
    return c.passed()


# --------------------------------------------------------------------------- 5.2

def _l2(Y: np.ndarray) -> np.ndarray:
    return Y / np.maximum(np.linalg.norm(Y, axis=1, keepdims=True), 1e-12)


def _apply_slips(X: np.ndarray, mean: np.ndarray, P: np.ndarray) -> dict[str, np.ndarray]:
    X, mean, P = X.astype(np.float64), mean.astype(np.float64), P.astype(np.float64)
    slips = {
        "subtract the mean before projecting: (X - mean) @ P.T.": _l2(X @ P.T),
        "L2-normalise each row of the result: divide by its norm (np.linalg.norm(Y, axis=1, keepdims=True)).":
            (X - mean) @ P.T,
        "project first, then normalise: L2-normalise the rows of (X - mean) @ P.T, not X - mean.":
            _l2(X - mean) @ P.T,
        "centre, project, then normalise: here X was normalised before the mean was subtracted.":
            _l2((_l2(X) - mean) @ P.T),
    }
    if P.shape[0] == P.shape[1]:
        slips["project with P.T: (X - mean) @ P.T (row i of P is a direction), not (X - mean) @ P."] = \
            _l2((X - mean) @ P)
    return slips


def _shapes_do_not_match(e: CheckFailed) -> bool:
    """Whether the student's function raised NumPy's error for a product of arrays whose shapes do not
    match (``matmul``'s, ``dot``'s "not aligned"), what projecting with ``P`` instead of ``P.T`` gives."""
    text = f"{e.exception_type}: {e.exception_message}"
    return e.kind == "raised" and any(word in text for word in ("matmul", "not aligned", "shapes"))


def check_apply_whitening(apply_whitening: Callable, *, quiet: bool = False) -> None:
    """Exercise 5.2: ``(N, d) float32``, the L2-normalised rows of ``(X - mean) P^T``."""
    from ..whitening import Whitening, fit_pca_whitening

    ex = _exercise("5.2")
    c = Checker(ex, quiet=quiet)
    name = getattr(apply_whitening, "__name__", ex.function)
    tol = dict(atol=1e-5, rtol=1e-4)

    def case(X: np.ndarray, W: Whitening) -> None:
        expected = W.apply(X).astype(np.float64)
        args = dict(X=X, mean=W.mean, P=W.P)
        call = call_text(name, args)
        where = f"{ex.label}: {call}"
        try:
            got = c.call(apply_whitening, **args)
        except CheckFailed as e:
            if _shapes_do_not_match(e):
                raise e.amended(" (P is (d, D): project with (X - mean) @ P.T)") from None
            raise
        if isinstance(got, np.ndarray) and got.shape == expected.shape and got.dtype.kind == "f":
            g = got.astype(np.float64)
            if not np.allclose(g, expected, **tol):
                for hint, answer in _apply_slips(X, W.mean, W.P).items():
                    if np.allclose(g, answer, **tol):
                        raise CheckFailed(f"{where}: {hint}")
            zero = np.linalg.norm(expected, axis=1) == 0
            if np.isnan(g[zero]).any():
                raise CheckFailed(f"{where}: got nan for a row equal to the mean: it projects to zero, and "
                                  f"zero must stay zero (divide by np.maximum(norm, 1e-12))")
        compare(ex, got, expected, call=call, dtype=np.float32, **tol)
        c.count()

    X = lecture_cloud()
    W = fit_pca_whitening(X, 2, 0.0)
    case(X[:8], W)                                                                         # d = D
    rng = np.random.default_rng(_SEED + 1)
    T = _anisotropic(rng, 300, np.array([8.0, 5.0, 3.0, 2.0, 1.0, 0.5]))
    W = fit_pca_whitening(T, 3, 0.1)
    X = _anisotropic(rng, 12, np.array([8.0, 5.0, 3.0, 2.0, 1.0, 0.5]))
    X[4] = W.mean                                                                          # projects to zero
    case(X.astype(np.float32), W)
    T = rng.normal(size=(40, 6)) * [9.0, 6.0, 4.0, 3.0, 2.0, 1.5] @ rng.normal(size=(6, 100))
    T += 0.3 * rng.normal(size=(40, 100)) + rng.normal(size=100)
    W = fit_pca_whitening(T, 10, 1e-2)
    case(T[:5] + 0.1 * rng.normal(size=(5, 100)), W)                                       # N < D
    W = fit_pca_whitening(T, 1, 1e-3)
    case(T[5:9], W)                                                                        # d = 1
    return c.passed()
