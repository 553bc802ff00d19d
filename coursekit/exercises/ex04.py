"""Checks of notebook 04, "VLAD and Fisher vectors".

=====  ==================================================  ==========================================
id     the student writes                                  reference
=====  ==================================================  ==========================================
4.1    ``vlad(X, C)``                                      :func:`coursekit.aggregation.vlad`
4.2    ``fisher_mean_gradient(X, gamma, w, mu, var)``      the first ``K * D`` entries of
                                                           :func:`coursekit.aggregation.fisher_vector`
                                                           with ``improved=False``
=====  ==================================================  ==========================================

Contracts
---------
4.1 ``X (T, D)`` float descriptors (``T >= 0``), ``C (K, D)`` float
    visual words. Each descriptor goes to its nearest word (Euclidean; the
    cases have no ties); ``v_k = sum of (x - c_k)`` over the descriptors of
    word ``k``, a zero block for a word that no descriptor chose. Returns
    the unnormalised ``(K * D,)`` float vector laid out word by word:
    ``v[k * D:(k + 1) * D]`` is ``v_k`` (``V.ravel()`` of a ``(K, D)`` array).
    Jegou, Douze, Schmid and Perez, CVPR 2010.

4.2 ``X (T, D)`` float descriptors (``T >= 1``); ``gamma (T, K)`` their
    posteriors under a diagonal GMM (rows sum to 1; given, as
    :func:`coursekit.aggregation.gmm_posteriors` computes them); the GMM's
    weights ``w (K,)``, means ``mu (K, D)`` and variances ``var (K, D)``.
    Returns the ``(K * D,)`` float gradient with respect to the means,
    word by word: ``G_k = 1 / (T sqrt(w_k)) sum_t gamma[t, k] (x_t - mu_k) / sigma_k``
    with ``sigma_k = sqrt(var_k)`` (Perronnin, Sanchez and Mensink, ECCV 2010).

Each check runs the small case the notebook works through first, then
seeded random ones, small enough for a loop over descriptors to pass within
the time limit. When a wrong answer matches a known slip (the residual's
sign, the layout, a mean instead of a sum, variances instead of standard
deviations...), the message names the slip.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .check import CheckFailed, Checker, Exercise, call_text, compare, diagnose

__all__ = ["check_vlad", "check_fisher_mean_gradient", "LECTURE_X", "LECTURE_C", "lecture_gmm"]

_SEED = 2025

#: Five 2-D descriptors and four words. Nearest words: 0, 0, 1, 1, 2; word 3 stays empty.
#: VLAD = [1, -1,  0, 2,  0.5, -1,  0, 0]; the bag of words would only say [2, 2, 1, 0].
LECTURE_X = np.array([[1.0, 0.0], [0.0, -1.0], [5.0, 1.0], [3.0, 1.0], [0.5, 3.0]])
LECTURE_C = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [8.0, 8.0]])


def lecture_gmm():
    """The notebook's small GMM for exercise 4.2: two Gaussians in 2-D, overlapping.

    Returns ``(X (4, 2), w (2,), mu (2, 2), var (2, 2))``.
    """
    X = np.array([[0.0, 0.5], [1.0, 1.0], [2.5, 0.0], [1.5, -0.5]])
    w = np.array([0.7, 0.3])
    mu = np.array([[0.0, 0.0], [2.0, 0.0]])
    var = np.array([[1.0, 0.25], [4.0, 1.0]])
    return X, w, mu, var


def _exercise(ex_id: str) -> Exercise:
    from . import exercise  # late: the list in __init__ refers to the checks below
    return exercise(ex_id)





def _case(c: Checker, fn: Callable, expected: np.ndarray, slips: dict[str, np.ndarray], tol: dict,
          **args: Any) -> None:
    got = c.call(fn, **args)
    name = getattr(fn, "__name__", c.exercise.function)
    call = call_text(name, args)
    where = f"{c.exercise.label}: {call}"
    diagnose(where, got, expected, slips, tol)
    if isinstance(got, np.ndarray) and got.dtype.kind == "f" and np.isnan(got).any() and not np.isnan(expected).any():
        hint = " A word that no descriptor chose must give a block of zeros (a mean over no rows is nan)." \
            if c.exercise.id == "4.1" else ""
        raise CheckFailed(f"{where}: got nan.{hint}")
    compare(c.exercise, got, expected, call=call, **tol)
    c.count()


# --------------------------------------------------------------------------- 4.1

def _nearest(X: np.ndarray, C: np.ndarray, which: int = 0) -> np.ndarray:
    d = ((X[:, None, :].astype(np.float64) - C[None]) ** 2).sum(-1)
    return np.argsort(d, axis=1)[:, which]


def _vlad_slips(X: np.ndarray, C: np.ndarray, expected: np.ndarray) -> dict[str, np.ndarray]:
    """Answers of plausible slips, each with the message that explains it."""
    K, D = C.shape
    V = expected.reshape(K, D).astype(np.float64)
    slips = {
        "the residuals are x - c_k (the descriptor minus its word), not c_k - x.": -expected,
        "the layout must be word by word (v[k*D:(k+1)*D] is word k's block, V.ravel() of a (K, D) array), "
        "not dimension by dimension.": V.T.ravel(),
    }
    if len(X):
        n_k = np.bincount(_nearest(X, C), minlength=K)[:, None]
        slips["sum the residuals of each word; do not average them."] = (V / np.maximum(n_k, 1)).ravel()
        norm = np.linalg.norm(expected)
        if norm > 0:
            slips["return the unnormalised VLAD: no L2 normalisation (the notebook normalises afterwards)."] = \
                expected / norm
            ssr = np.sign(expected) * np.sqrt(np.abs(expected))
            slips["return the unnormalised VLAD: no signed square root (the notebook applies the "
                  "normalisations afterwards)."] = ssr
            slips["return the unnormalised VLAD: no signed square root, no L2 normalisation (the notebook "
                  "applies them afterwards)."] = ssr / max(np.linalg.norm(ssr), 1e-12)
        if K > 1:
            second = _nearest(X, C, 1)
            V2 = np.zeros((K, D))
            np.add.at(V2, second, X - C[second])
            slips["each descriptor goes to its nearest word (the smallest distance), not the second nearest."] = \
                V2.ravel()
            far = np.argmax(((X[:, None, :].astype(np.float64) - C[None]) ** 2).sum(-1), axis=1)
            V3 = np.zeros((K, D))
            np.add.at(V3, far, X - C[far])
            slips["each descriptor goes to its nearest word: argmin of the distances, not argmax."] = V3.ravel()
    return slips


def _clustered(rng: np.random.Generator, T: int, C: np.ndarray, used: int, spread: float) -> np.ndarray:
    """``T`` descriptors around the first ``used`` words of ``C``."""
    centre = rng.integers(0, used, T)
    return C[centre] + rng.normal(0, spread, (T, C.shape[1]))


def check_vlad(vlad: Callable, *, quiet: bool = False) -> None:
    """Exercise 4.1: unnormalised VLAD, ``(K * D,)``, word by word."""
    from ..aggregation import vlad as ref

    c = Checker(_exercise("4.1"), quiet=quiet)
    tol = dict(atol=1e-4, rtol=1e-4)

    def case(X, C):
        expected = ref(X, C).astype(np.float64)
        _case(c, vlad, expected, _vlad_slips(X, C, expected), tol, X=X, C=C)

    case(LECTURE_X, LECTURE_C)
    rng = np.random.default_rng(_SEED)
    C = rng.normal(0, 1, (8, 5))
    case(_clustered(rng, 60, C, 8, 0.6), C)                              # every word used
    C = rng.normal(0, 1, (12, 3))
    case(_clustered(rng, 40, C, 5, 0.3), C)                              # words 5..11 stay empty
    C = rng.normal(0, 1, (6, 4))
    case(_clustered(rng, 1, C, 6, 0.5), C)                               # a single descriptor
    C = rng.random((16, 32)) / 4
    X = np.sqrt(rng.dirichlet(np.full(32, 0.5), 200))                   # RootSIFT-like: non-negative, unit norm
    case(X, np.sqrt(C / C.sum(1, keepdims=True)))
    case(np.zeros((0, 4)), rng.normal(0, 1, (3, 4)))                     # an image without descriptors: zeros
    return c.passed()


# --------------------------------------------------------------------------- 4.2

def _fisher_slips(X, gamma, w, mu, var, expected) -> dict[str, np.ndarray]:
    T = len(X)
    sigma = np.sqrt(var)

    def g(gam=gamma, scale=None, denom=sigma, sign=1.0):
        s = (gam.T @ X - gam.sum(0)[:, None] * mu) * sign / denom            # (K, D)
        return (s / (scale if scale is not None else T * np.sqrt(w)[:, None])).ravel()

    hard = np.zeros_like(gamma)
    hard[np.arange(T), np.argmax(gamma, axis=1)] = 1.0
    K, D = mu.shape
    return {
        "divide by the standard deviation sigma_k = sqrt(var_k), not by the variance.": g(denom=var),
        "the residual x_t - mu_k must be divided by sigma_k.": g(denom=1.0),
        "divide by sqrt(w_k), the square root of the weight, not by w_k.": g(scale=T * w[:, None]),
        "divide by sqrt(w_k): the factor 1 / (T sqrt(w_k)) normalises by the Fisher information.":
            g(scale=np.full((K, 1), float(T))),
        "divide by T, the number of descriptors (the gradient of the *mean* log-likelihood).":
            g(scale=np.sqrt(w)[:, None]),
        "weigh each descriptor by its posteriors gamma[t, k] for every Gaussian (soft assignment), "
        "not only by its most likely Gaussian.": g(gam=hard),
        "the residual is x_t - mu_k, not mu_k - x_t.": -expected,
        "the layout must be Gaussian by Gaussian (G[k*D:(k+1)*D] belongs to Gaussian k), "
        "not dimension by dimension.": expected.reshape(K, D).T.ravel(),
    }


def _random_gmm(rng: np.random.Generator, K: int, D: int):
    w = rng.uniform(0.3, 1.0, K)
    mu = rng.normal(0, 1.0, (K, D))
    var = rng.uniform(0.3, 3.0, (K, D))
    return w / w.sum(), mu, var


def check_fisher_mean_gradient(fisher_mean_gradient: Callable, *, quiet: bool = False) -> None:
    """Exercise 4.2: the Fisher vector's gradient with respect to the means, ``(K * D,)``."""
    from ..aggregation import GMM, fisher_vector, gmm_posteriors

    c = Checker(_exercise("4.2"), quiet=quiet)
    tol = dict(atol=1e-5, rtol=1e-4)

    def case(X, w, mu, var):
        gmm = GMM(w, mu, var)
        gamma = gmm_posteriors(X, gmm)
        expected = fisher_vector(X, gmm, improved=False)[:mu.size].astype(np.float64)
        _case(c, fisher_mean_gradient, expected, _fisher_slips(X, gamma, w, mu, var, expected), tol,
              X=X, gamma=gamma, w=w, mu=mu, var=var)

    case(*lecture_gmm())
    rng = np.random.default_rng(_SEED + 1)
    for T, K, D in ((30, 3, 4), (100, 5, 8), (1, 4, 3), (60, 8, 16)):
        w, mu, var = _random_gmm(rng, K, D)
        comp = rng.choice(K, T, p=w)
        X = mu[comp] + rng.normal(0, 1, (T, D)) * np.sqrt(var[comp]) * 1.5     # wide: soft posteriors
        case(X, w, mu, var)
    return c.passed()
