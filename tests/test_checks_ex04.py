"""The checks of notebook 04: each passes the reference and an independent
correct answer, reports the stub as not done, and fails plausible wrong answers
with a one-line message that names the slip where it can."""

import re
import warnings

import numpy as np
import pytest

from coursekit import aggregation
from coursekit.exercises import EXERCISES, exercise
from coursekit.exercises import ex04
from checkhelpers import fails, stub


def test_registry():
    assert [e.id for e in EXERCISES["04"]] == ["4.1", "4.2"]
    assert [e.function for e in EXERCISES["04"]] == ["vlad", "fisher_mean_gradient"]
    assert [e.points for e in EXERCISES["04"]] == [2, 3]
    assert exercise("4.2").check is ex04.check_fisher_mean_gradient


@pytest.mark.parametrize("check", [ex04.check_vlad, ex04.check_fisher_mean_gradient])
def test_stub_is_not_done(check):
    assert "not done yet" in fails(check, stub, not_done=True)


@pytest.mark.parametrize("check", [ex04.check_vlad, ex04.check_fisher_mean_gradient])
def test_a_function_that_raises_fails_with_its_error(check):
    def broken(*args):
        return np.zeros(3)[5]
    m = fails(check, broken)
    assert "raised IndexError" in m


# --------------------------------------------------------------------------- 4.1 VLAD

def loop_vlad(X, C):
    """A student's loops: nearest word by explicit distances, residuals summed word by word."""
    K, D = C.shape
    V = np.zeros((K, D))
    for x in X:
        k = int(np.argmin([np.linalg.norm(x - c) for c in C]))
        V[k] += x - C[k]
    return V.reshape(-1)


def test_vlad_passes(capsys):
    ex04.check_vlad(aggregation.vlad)
    assert re.fullmatch(r"✔ Exercise 4\.1 \(VLAD aggregation\): passed 6 cases\.", capsys.readouterr().out.strip())
    ex04.check_vlad(loop_vlad, quiet=True)


def test_vlad_lecture_example_is_what_the_docstring_says():
    np.testing.assert_allclose(aggregation.vlad(ex04.LECTURE_X, ex04.LECTURE_C), [1, -1, 0, 2, 0.5, -1, 0, 0])


def _assigned(X, C, which=0):
    d = ((X[:, None, :] - C[None]) ** 2).sum(-1)
    return np.argsort(d, axis=1)[:, which] if len(X) else np.zeros(0, int)


def vlad_with(X, C, which=0, sign=1.0, mean=False):
    K, D = C.shape
    words = _assigned(X, C, which)
    V = np.zeros((K, D))
    np.add.at(V, words, sign * (X - C[words]))
    if mean:
        V /= np.maximum(np.bincount(words, minlength=K), 1)[:, None]
    return V.ravel()


def soft_vlad(X, C):
    d = ((X[:, None, :] - C[None]) ** 2).sum(-1)
    a = np.exp(-(d - d.min(1, keepdims=True)))
    a /= a.sum(1, keepdims=True)
    return (a.T @ X - a.sum(0)[:, None] * C).ravel()


@pytest.mark.parametrize("wrong, hint", [
    (lambda X, C: vlad_with(X, C, sign=-1.0), "not c_k - x"),
    (lambda X, C: vlad_with(X, C, mean=True), "do not average them"),
    (lambda X, C: vlad_with(X, C, which=1), "not the second nearest"),
    (lambda X, C: vlad_with(X, C).reshape(C.shape).T.ravel(), "word by word"),
    (lambda X, C: vlad_with(X, C) / max(np.linalg.norm(vlad_with(X, C)), 1e-12), "no L2 normalisation"),
    (lambda X, C: np.sign(vlad_with(X, C)) * np.sqrt(np.abs(vlad_with(X, C))), "no signed square root"),
], ids=["sign", "mean", "second-nearest", "dimension-major", "l2", "ssr"])
def test_vlad_slips_are_named(wrong, hint):
    m = fails(ex04.check_vlad, wrong)
    assert hint in m and m.startswith("Exercise 4.1 (VLAD aggregation): <lambda>(X=")


def test_vlad_soft_assignment_fails():
    assert "expected" in fails(ex04.check_vlad, soft_vlad)


def test_vlad_per_word_mean_of_an_empty_word_is_nan():
    def nan_mean(X, C):
        words = _assigned(X, C)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)          # "mean of empty slice"
            return np.concatenate([(X[words == k] - C[k]).mean(0) for k in range(len(C))])
    assert "got nan" in fails(ex04.check_vlad, nan_mean)


def test_vlad_dropping_empty_words_or_returning_a_matrix_fails_on_the_shape():
    def only_used_words(X, C):
        words = _assigned(X, C)
        return np.concatenate([(X[words == k] - C[k]).sum(0) for k in np.unique(words)])
    assert "expected shape (8,), got shape (6,)" in fails(ex04.check_vlad, only_used_words)
    assert "expected shape (8,), got shape (4, 2)" in fails(ex04.check_vlad,
                                                            lambda X, C: vlad_with(X, C).reshape(C.shape))
    assert "returned None" in fails(ex04.check_vlad, lambda X, C: None)


def test_vlad_must_handle_an_image_without_descriptors():
    def no_empty(X, C):
        if len(X) == 0:
            raise ValueError("attempt to get argmin of an empty sequence")
        return vlad_with(X, C)
    m = fails(ex04.check_vlad, no_empty)
    assert "raised ValueError" in m and "array of shape (0, 4)" in m


# --------------------------------------------------------------------------- 4.2 Fisher vector, means

def loop_fisher_mean_gradient(X, gamma, w, mu, var):
    T, K = gamma.shape
    out = []
    for k in range(K):
        g = np.zeros(mu.shape[1])
        for t in range(T):
            g += gamma[t, k] * (X[t] - mu[k]) / np.sqrt(var[k])
        out.append(g / (T * np.sqrt(w[k])))
    return np.concatenate(out)


def mean_gradient(X, gamma, w, mu, var, denom=None, scale=None, hard=False):
    if hard:
        gamma = np.eye(gamma.shape[1])[np.argmax(gamma, axis=1)]
    T = len(X)
    s = (gamma.T @ X - gamma.sum(0)[:, None] * mu) / (np.sqrt(var) if denom is None else denom(var))
    return (s / (T * np.sqrt(w)[:, None] if scale is None else scale(T, w))).ravel()


def test_fisher_mean_gradient_passes(capsys):
    ex04.check_fisher_mean_gradient(lambda X, gamma, w, mu, var: mean_gradient(X, gamma, w, mu, var))
    assert re.fullmatch(r"✔ Exercise 4\.2 \(the Fisher vector's mean gradient\): passed 5 cases\.",
                        capsys.readouterr().out.strip())
    ex04.check_fisher_mean_gradient(loop_fisher_mean_gradient, quiet=True)


def test_fisher_reference_is_the_autograd_checked_fisher_vector():
    X, w, mu, var = ex04.lecture_gmm()
    gmm = aggregation.GMM(w, mu, var)
    gamma = aggregation.gmm_posteriors(X, gmm)
    np.testing.assert_allclose(aggregation.fisher_vector(X, gmm, improved=False)[:4],
                               loop_fisher_mean_gradient(X, gamma, w, mu, var), rtol=1e-5)
    assert 0.25 < gamma.min() * 10 and gamma.max() < 0.95          # the lecture posteriors are soft


@pytest.mark.parametrize("kwargs, hint", [
    (dict(denom=lambda var: var), "not by the variance"),
    (dict(denom=lambda var: 1.0), "must be divided by sigma_k"),
    (dict(scale=lambda T, w: T * w[:, None]), "not by w_k"),
    (dict(scale=lambda T, w: T), "divide by sqrt(w_k)"),
    (dict(scale=lambda T, w: np.sqrt(w)[:, None]), "divide by T"),
    (dict(hard=True), "soft assignment"),
], ids=["var", "no-sigma", "w", "no-w", "no-T", "hard"])
def test_fisher_slips_are_named(kwargs, hint):
    m = fails(ex04.check_fisher_mean_gradient, lambda X, gamma, w, mu, var: mean_gradient(X, gamma, w, mu, var,
                                                                                           **kwargs))
    assert hint in m and m.startswith("Exercise 4.2 (the Fisher vector's mean gradient): <lambda>(X=")


def test_fisher_wrong_layout_and_shape_fail():
    def dim_major(X, gamma, w, mu, var):
        return mean_gradient(X, gamma, w, mu, var).reshape(mu.shape).T.ravel()
    assert "Gaussian by Gaussian" in fails(ex04.check_fisher_mean_gradient, dim_major)

    def as_matrix(X, gamma, w, mu, var):
        return mean_gradient(X, gamma, w, mu, var).reshape(mu.shape)
    assert "expected shape (4,), got shape (2, 2)" in fails(ex04.check_fisher_mean_gradient, as_matrix)

    def with_sigma_gradient(X, gamma, w, mu, var):
        gmm = aggregation.GMM(w, mu, var)
        return aggregation.fisher_vector(X, gmm, improved=False)
    assert "expected shape (4,), got shape (8,)" in fails(ex04.check_fisher_mean_gradient, with_sigma_gradient)


def test_fisher_improved_vector_fails():
    def improved(X, gamma, w, mu, var):
        return aggregation.fisher_vector(X, aggregation.GMM(w, mu, var))[:mu.size]
    assert "expected" in fails(ex04.check_fisher_mean_gradient, improved)
