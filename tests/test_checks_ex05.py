"""The checks of notebook 05: each passes the reference and independent correct
answers (any sign per direction, variances over N or N - 1), reports the stub as
not done, and fails plausible wrong answers with a one-line message that names
the slip where it can."""

import re

import numpy as np
import pytest

from coursekit import whitening
from coursekit.exercises import EXERCISES, exercise, exercises_for
from coursekit.exercises import ex05
from checkhelpers import fails

CHECKS = [ex05.check_fit_whitening, ex05.check_apply_whitening]


def test_registry():
    assert [e.id for e in EXERCISES["05"]] == ["5.1", "5.2"]
    assert [e.function for e in EXERCISES["05"]] == ["fit_whitening", "apply_whitening"]
    assert [e.points for e in EXERCISES["05"]] == [3, 2]
    assert [e.check for e in exercises_for(path="05_pca_whitening.ipynb")] == CHECKS
    assert exercise("5.2").check is ex05.check_apply_whitening


# the stub, a function that raises and one that returns None: tests/test_checks.py, for every exercise


def test_lecture_cloud_is_what_the_docstring_says():
    X = ex05.lecture_cloud()
    assert X.shape == (300, 2)
    pca = whitening.fit_pca(X)
    assert np.sqrt(pca.variances) == pytest.approx([2.0, 0.5], rel=0.15)
    assert np.degrees(np.arctan2(abs(pca.components[0, 1]), abs(pca.components[0, 0]))) == pytest.approx(30, abs=5)


# --------------------------------------------------------------------------- 5.1 fit

def svd_whitening(X, d, eps, ddof=1, sign=1.0, flip_odd=False):
    """A student's SVD route; ``flip_odd`` negates every other direction (a legitimate choice of signs)."""
    X = np.asarray(X)
    m = X.mean(0)
    _, S, Vt = np.linalg.svd(X - m, full_matrices=False)
    lam = S[:d] ** 2 / (len(X) - ddof)
    E = Vt[:d] * sign
    if flip_odd:
        E[1::2] *= -1
    return m, E / np.sqrt(lam + eps * lam[0])[:, None]


def eigh_whitening(X, d, eps):
    """Another route: eigenvectors of the covariance, reversed into decreasing order, float32 output."""
    m = X.mean(0)
    lam, V = np.linalg.eigh(np.cov(X, rowvar=False))
    lam, V = lam[::-1][:d], V[:, ::-1][:, :d]
    return m.astype(np.float32), (V.T / np.sqrt(lam + eps * lam[0])[:, None]).astype(np.float32)


def float32_whitening(X, d, eps):
    """A student who works in float32 throughout (as the notebook's VLADs are)."""
    return svd_whitening(np.asarray(X, np.float32), d, eps)


def sklearn_whitening(X, d, eps):
    from sklearn.decomposition import PCA
    pca = PCA(d, svd_solver="full").fit(X)
    lam = pca.explained_variance_
    return pca.mean_, pca.components_ / np.sqrt(lam + eps * lam[0])[:, None]


def test_fit_passes(capsys):
    def reference(X, d, eps):
        W = whitening.fit_pca_whitening(X, d, eps)
        return W.mean, W.P
    ex05.check_fit_whitening(reference)
    assert re.fullmatch(r"✔ Exercise 5\.1 \(PCA-whitening: fit\): passed 5 cases\.", capsys.readouterr().out.strip())


@pytest.mark.parametrize("fn", [
    svd_whitening,
    lambda X, d, eps: svd_whitening(X, d, eps, sign=-1.0),
    lambda X, d, eps: svd_whitening(X, d, eps, flip_odd=True),
    lambda X, d, eps: svd_whitening(X, d, eps, ddof=0),        # variances over N: accepted, said in the contract
    eigh_whitening,
    sklearn_whitening,
    float32_whitening,
    lambda X, d, eps: list(svd_whitening(X, d, eps)),
], ids=["svd", "negated", "mixed-signs", "over-N", "eigh", "sklearn", "float32", "list"])
def test_fit_correct_variants_pass(fn):
    ex05.check_fit_whitening(fn, quiet=True)


def wrong_fit(X, d, eps, centre=True, var="S2/(N-1)", rel=True, root=True, order="desc", rows=True, scale=True):
    X = np.asarray(X, np.float64)
    m = X.mean(0)
    _, S, Vt = np.linalg.svd(X - m if centre else X, full_matrices=False)
    lam = {"S2/(N-1)": S ** 2 / (len(X) - 1), "S": S, "S2": S ** 2}[var]
    if order == "desc":
        idx = np.arange(d)
    elif order == "reversed":                          # the right directions, listed in increasing order
        idx = np.arange(d)[::-1]
    else:                                              # the d smallest, increasing
        idx = np.arange(len(S))[-d:]
    E = (Vt if rows else Vt.T)[idx]
    l = lam[idx]
    reg = l + (eps * l[0] if rel else eps)
    div = np.sqrt(reg) if root else reg
    return m, (E / div[:, None] if scale else E)


@pytest.mark.parametrize("kwargs, hint", [
    (dict(centre=False), "centre the data first"),
    (dict(var="S"), "not the singular values"),
    (dict(var="S2"), "divide the squared singular values by N - 1"),
    (dict(rel=False), "eps is relative to the largest variance"),
    (dict(root=False), "by the square root"),
    (dict(rows=False), "not its columns"),
    (dict(order="reversed"), "decreasing variance"),
    (dict(order="smallest"), "not the smallest"),
    (dict(scale=False), "that is PCA, not whitening"),
], ids=["no-centring", "S", "S2", "eps-absolute", "lambda", "columns", "increasing", "smallest", "no-scaling"])
def test_fit_slips_are_named(kwargs, hint):
    m = fails(ex05.check_fit_whitening, lambda X, d, eps: wrong_fit(X, d, eps, **kwargs))
    assert hint in m and m.startswith("Exercise 5.1 (PCA-whitening: fit): <lambda>(X=")


def test_fit_eps_left_out_or_relative_to_the_wrong_variance_is_named():
    assert "eps was left out" in fails(ex05.check_fit_whitening, lambda X, d, eps: svd_whitening(X, d, 0.0))

    def last(X, d, eps):
        m = X.mean(0)
        _, S, Vt = np.linalg.svd(X - m, full_matrices=False)
        lam = S[:d] ** 2 / (len(X) - 1)
        return m, Vt[:d] / np.sqrt(lam + eps * lam[-1])[:, None]
    assert "not the smallest kept one" in fails(ex05.check_fit_whitening, last)


def test_fit_dividing_columns_is_named():
    def by_column(X, d, eps):
        m, P = svd_whitening(X, d, eps)
        _, S, Vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
        lam = S[:d] ** 2 / (len(X) - 1)
        return m, Vt[:d] / np.sqrt(lam + eps * lam[0])[None, :]
    assert "not column i" in fails(ex05.check_fit_whitening, by_column)


def test_fit_wrong_shapes_and_means_fail():
    def transposed(X, d, eps):
        m, P = svd_whitening(X, d, eps)
        return m, (P if d == X.shape[1] else P.T)      # the lecture case (d = D = 2) passes, the next does not
    assert "one direction per row (E^T, the rows of V^T), got shape (6, 4)" in fails(ex05.check_fit_whitening,
                                                                                      transposed)
    # on the lecture case P.T has the right shape: it fails on its values (a 2 x 2 reflection is symmetric,
    # so P.T may be exactly the rows of E^T divided column by column)
    m = fails(ex05.check_fit_whitening, lambda X, d, eps: (X.mean(0), svd_whitening(X, d, eps)[1].T.copy()))
    assert "eps=0)" in m and ("not column i" in m or "expected" in m)
    assert "expected shape (2,), got shape (1, 2)" in fails(
        ex05.check_fit_whitening, lambda X, d, eps: (X.mean(0, keepdims=True), svd_whitening(X, d, eps)[1]))
    assert "the mean is all zeros" in fails(
        ex05.check_fit_whitening, lambda X, d, eps: (np.zeros(X.shape[1]), svd_whitening(X, d, eps)[1]))
    assert "expected a pair (mean, P)" in fails(ex05.check_fit_whitening,
                                                lambda X, d, eps: svd_whitening(X, d, eps)[1])
    assert "expected shape (2, 2), got shape (1, 2)" in fails(
        ex05.check_fit_whitening, lambda X, d, eps: svd_whitening(X, d - 1 or 1, eps))
    # all the directions, not the first d: (D, D) instead of (d, D) fails on the shape (lecture passes, D = d)
    assert "expected shape (4, 6), got shape (6, 6)" in fails(
        ex05.check_fit_whitening, lambda X, d, eps: svd_whitening(X, min(X.shape), eps))


def test_fit_nan_and_unexplained_errors_fail():
    def nan_rows(X, d, eps):
        m, P = svd_whitening(X, d, eps)
        P[-1] = np.nan
        return m, P
    assert "contains nan" in fails(ex05.check_fit_whitening, nan_rows)

    def noisy(X, d, eps):                                      # no known slip: the generic message, with the row
        m, P = svd_whitening(X, d, eps)
        return m, P * (1 + 0.01 * np.arange(d))[:, None]
    assert re.search(r"its P \(rows' signs aligned .*\): at index \(1, 0\) expected", fails(ex05.check_fit_whitening,
                                                                                          noisy))


# --------------------------------------------------------------------------- 5.2 apply

def loop_apply(X, mean, P):
    """A student's loop over rows, float64 inside, float32 out."""
    out = np.zeros((len(X), len(P)), np.float32)
    for i, x in enumerate(X):
        y = P.astype(np.float64) @ (x - mean)
        n = np.linalg.norm(y)
        out[i] = y / n if n > 0 else y
    return out


def test_apply_passes(capsys):
    ex05.check_apply_whitening(lambda X, mean, P: whitening.Whitening(mean, P).apply(X))
    assert re.fullmatch(r"✔ Exercise 5\.2 \(PCA-whitening: apply\): passed 4 cases\.",
                        capsys.readouterr().out.strip())
    ex05.check_apply_whitening(loop_apply, quiet=True)
    # normalising twice (before and after projecting) is harmless: a row scale does not change the direction
    ex05.check_apply_whitening(lambda X, mean, P: whitening.l2_normalize(whitening.l2_normalize(X - mean) @ P.T),
                               quiet=True)


def l2(Y):
    return Y / np.maximum(np.linalg.norm(Y, axis=1, keepdims=True), 1e-12)


@pytest.mark.parametrize("wrong, hint", [
    (lambda X, mean, P: l2(X @ P.T).astype(np.float32), "subtract the mean before projecting"),
    (lambda X, mean, P: ((X - mean) @ P.T).astype(np.float32), "L2-normalise each row"),
    (lambda X, mean, P: (l2(X - mean) @ P.T).astype(np.float32), "project first, then normalise"),
    (lambda X, mean, P: l2((l2(X) - mean) @ P.T).astype(np.float32), "before the mean was subtracted"),
    (lambda X, mean, P: l2((X - mean) @ P).astype(np.float32), "project with P.T"),
], ids=["no-centring", "no-l2", "normalise-first", "normalise-before-centring", "P"])
def test_apply_slips_are_named(wrong, hint):
    m = fails(ex05.check_apply_whitening, wrong)
    assert hint in m and m.startswith("Exercise 5.2 (PCA-whitening: apply): <lambda>(X=")


def test_apply_P_instead_of_P_T_on_a_non_square_P_names_the_fix():
    def P_not_PT(X, mean, P):
        Y = (X - mean) @ (P.T if P.shape[0] == P.shape[1] else P)   # right on the lecture case, d = D = 2
        return l2(Y).astype(np.float32)
    m = fails(ex05.check_apply_whitening, P_not_PT)
    assert "raised ValueError" in m and "project with (X - mean) @ P.T" in m


def test_apply_dtype_shape_and_zero_rows():
    m = fails(ex05.check_apply_whitening, lambda X, mean, P: l2((X - mean) @ P.T.astype(np.float64)))
    assert "expected dtype float32, got float64" in m

    def nan_on_zero_rows(X, mean, P):
        Y = (X - mean) @ P.T
        with np.errstate(invalid="ignore"):
            return (Y / np.linalg.norm(Y, axis=1, keepdims=True)).astype(np.float32)
    assert "a row equal to the mean" in fails(ex05.check_apply_whitening, nan_on_zero_rows)
    assert "expected shape (8, 2), got shape (2, 8)" in fails(
        ex05.check_apply_whitening, lambda X, mean, P: np.ascontiguousarray(
            whitening.Whitening(mean, P).apply(X).T))
