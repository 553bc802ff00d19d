"""The checks of notebook 03: each passes the reference and independent
correct answers, reports the stub as not done, and fails plausible wrong
answers with a one-line message."""

import re

import numpy as np
import pytest
import scipy.sparse as sp

from coursekit import bow
from coursekit.exercises import EXERCISES, exercise, exercises_for
from coursekit.exercises import ex03
from checkhelpers import fails, stub

CHECKS = [ex03.check_idf_weights, ex03.check_inverted_file_scores, ex03.check_burstiness_tfidf]


def test_registry():
    assert [e.id for e in EXERCISES["03"]] == ["3.1", "3.2", "3.3"]
    assert [e.function for e in EXERCISES["03"]] == ["idf_weights", "inverted_file_scores", "burstiness_tfidf"]
    assert [e.check for e in exercises_for(path="03_bag_of_words.ipynb")] == CHECKS
    assert exercise("3.2").points == 2


@pytest.mark.parametrize("check", CHECKS)
def test_stub_is_not_done(check):
    assert "not done yet" in fails(check, stub, not_done=True)


@pytest.mark.parametrize("check", CHECKS)
def test_a_function_that_raises_fails_in_one_line(check):
    def broken(*args):
        return args[0].no_such_attribute
    m = fails(check, broken)
    assert "raised AttributeError" in m and "csr_matrix" in m   # the sparse input is named, on one line


@pytest.mark.parametrize("check", CHECKS)
def test_returning_none_fails(check):
    assert "returned None" in fails(check, lambda *a: None)


def test_sparse_inputs_are_named_on_one_line_and_compare_exactly():
    from coursekit.exercises.check import _same, describe

    a = ex03._csr(ex03.LECTURE_COUNTS)
    assert describe(a) == "<4x5 sparse csr, float32, 10 stored>"
    b = a.copy()
    assert _same(a, b)
    b.data[0] += 1
    assert not _same(a, b) and not _same(a, a.toarray())


def loop_idf(counts):
    n, k = counts.shape
    dense = counts.toarray()
    out = np.zeros(k)
    for j in range(k):
        n_k = sum(1 for i in range(n) if dense[i, j] > 0)
        if n_k:
            out[j] = np.log(n / n_k)
    return out


def matrix_idf(counts):
    n_k = np.asarray((counts > 0).sum(axis=0)).ravel()
    with np.errstate(divide="ignore"):
        return np.where(n_k > 0, np.log(counts.shape[0] / np.maximum(n_k, 1)), 0.0)


def test_idf_passes(capsys):
    ex03.check_idf_weights(bow.idf)
    assert re.fullmatch(r"✔ Exercise 3\.1 \(idf weights\): passed \d+ cases\.", capsys.readouterr().out.strip())
    ex03.check_idf_weights(loop_idf, quiet=True)
    ex03.check_idf_weights(matrix_idf, quiet=True)


def idf_occurrences(counts):                     # n_k = total occurrences, not images
    n_k = np.asarray(counts.sum(axis=0)).ravel()
    return np.where(n_k > 0, np.log(counts.shape[0] / np.maximum(n_k, 1)), 0.0)


def idf_log10(counts):
    n_k = np.bincount(counts.indices, minlength=counts.shape[1])
    return np.where(n_k > 0, np.log10(counts.shape[0] / np.maximum(n_k, 1)), 0.0)


def idf_smoothed(counts):
    n_k = np.bincount(counts.indices, minlength=counts.shape[1])
    return np.log(counts.shape[0] / (1.0 + n_k))


def idf_number_of_words_as_n(counts):
    n_k = np.bincount(counts.indices, minlength=counts.shape[1])
    return np.where(n_k > 0, np.log(counts.shape[1] / np.maximum(n_k, 1)), 0.0)


def idf_upside_down(counts):
    n_k = np.bincount(counts.indices, minlength=counts.shape[1])
    return np.where(n_k > 0, np.log(np.maximum(n_k, 1) / counts.shape[0]), 0.0)


@pytest.mark.parametrize("wrong", [idf_occurrences, idf_log10, idf_smoothed, idf_number_of_words_as_n,
                                   idf_upside_down])
def test_idf_wrong_answers(wrong):
    m = fails(ex03.check_idf_weights, wrong)
    assert f"{wrong.__name__}(counts=<4x5 sparse csr" in m and "expected" in m


def test_idf_of_an_unused_word_must_be_zero_not_inf():
    def no_guard(counts):
        n_k = np.bincount(counts.indices, minlength=counts.shape[1])
        with np.errstate(divide="ignore"):
            return np.log(counts.shape[0] / n_k)
    assert "at index (4,) expected 0, got inf" in fails(ex03.check_idf_weights, no_guard)


def test_idf_wrong_shape_fails():
    m = fails(ex03.check_idf_weights, lambda c: np.asarray((c > 0).sum(axis=0), float))   # forgot ravel: (1, K)
    assert "expected shape (5,), got shape (1, 5)" in m


def test_idf_changing_the_input_fails():
    def in_place(counts):
        counts.data[:] = 1                      # binarise in place
        return bow.idf(counts)
    assert "changed its input `counts`" in fails(ex03.check_idf_weights, in_place)


# --------------------------------------------------------------------------- 3.2 inverted file

def loop_scores(q, postings):
    scores = np.zeros(postings.shape[1])
    for k, w in zip(q.indices, q.data):                       # each word of the query
        start, end = postings.indptr[k], postings.indptr[k + 1]
        scores[postings.indices[start:end]] += w * postings.data[start:end]
    return scores


def numpy_scores(q, postings):
    starts, ends = postings.indptr[q.indices], postings.indptr[q.indices + 1]
    lengths = ends - starts
    at = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    return np.bincount(postings.indices[at], weights=np.repeat(q.data, lengths) * postings.data[at],
                       minlength=postings.shape[1])


def dense_scores(q, postings):
    return q.toarray()[0] @ postings.toarray()


def test_inverted_file_scores_pass(capsys):
    ex03.check_inverted_file_scores(lambda q, p: (q @ p).toarray().ravel())
    assert "passed" in capsys.readouterr().out
    for answer in (loop_scores, numpy_scores, dense_scores):
        ex03.check_inverted_file_scores(answer, quiet=True)


def scores_without_query_weights(q, postings):
    scores = np.zeros(postings.shape[1])
    for k in q.indices:
        start, end = postings.indptr[k], postings.indptr[k + 1]
        scores[postings.indices[start:end]] += postings.data[start:end]
    return scores


def scores_fancy_index_add(q, postings):
    """Vectorised, but `scores[ids] += values` adds once per distinct id: repeated images lose terms."""
    starts, ends = postings.indptr[q.indices], postings.indptr[q.indices + 1]
    lengths = ends - starts
    at = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    scores = np.zeros(postings.shape[1])
    scores[postings.indices[at]] += np.repeat(q.data, lengths) * postings.data[at]
    return scores


def scores_shared_words(q, postings):
    scores = np.zeros(postings.shape[1])
    for k in q.indices:
        scores[postings.indices[postings.indptr[k]:postings.indptr[k + 1]]] += 1
    return scores


def scores_wrong_slice(q, postings):
    scores = np.zeros(postings.shape[1])
    for k, w in zip(q.indices, q.data):
        start, end = postings.indptr[k], postings.indptr[k + 1]
        scores[postings.indices[start:end]] += w * postings.data[k]     # the k-th stored value, not the list's
    return scores


@pytest.mark.parametrize("wrong", [scores_without_query_weights, scores_fancy_index_add, scores_shared_words,
                                   scores_wrong_slice])
def test_inverted_file_scores_wrong_answers(wrong):
    m = fails(ex03.check_inverted_file_scores, wrong)
    assert f"{wrong.__name__}(q=<1x5 sparse csr" in m and "expected" in m


def test_inverted_file_scores_wrong_shapes_and_types():
    m = fails(ex03.check_inverted_file_scores, lambda q, p: (q @ p).toarray())
    assert "expected shape (4,), got shape (1, 4) (use .ravel())" in m
    m = fails(ex03.check_inverted_file_scores, lambda q, p: q @ p)
    assert "got a sparse matrix (use .toarray().ravel())" in m
    m = fails(ex03.check_inverted_file_scores, lambda q, p: list((q @ p).toarray().ravel()))
    assert "expected a NumPy array, got a list" in m


def test_inverted_file_scores_transposed_postings_raise():
    m = fails(ex03.check_inverted_file_scores, lambda q, p: (p @ q.T).toarray().ravel())
    assert "raised ValueError" in m


# --------------------------------------------------------------------------- 3.3 burstiness

def loop_burstiness(counts, idf, alpha):
    dense = counts.toarray().astype(np.float64)
    out = np.zeros_like(dense)
    for i, row in enumerate(dense):
        v = np.array([t ** alpha * w if t > 0 else 0.0 for t, w in zip(row, idf)])
        norm = np.sqrt((v ** 2).sum())
        if norm > 0:
            out[i] = v / norm
    return out


def sparse_burstiness(counts, idf, alpha):
    m = counts.power(alpha).multiply(idf[None, :]).tocsr()
    norms = sp.linalg.norm(m, axis=1)
    return sp.diags(1.0 / np.maximum(norms, 1e-12)) @ m


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_burstiness_passes(capsys):
    ex03.check_burstiness_tfidf(lambda c, w, a: bow.tfidf(bow.burstiness(c, a), w))
    assert re.fullmatch(r"✔ Exercise 3\.3 \(burstiness: power law, idf, L2\): passed \d+ cases\.",
                        capsys.readouterr().out.strip())
    ex03.check_burstiness_tfidf(loop_burstiness, quiet=True)
    ex03.check_burstiness_tfidf(sparse_burstiness, quiet=True)
    ex03.check_burstiness_tfidf(lambda c, w, a: np.asmatrix(loop_burstiness(c, w, a)), quiet=True)


def _rows_l2(v):
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def power_after_idf(counts, idf, alpha):
    return _rows_l2((counts.toarray() * idf) ** alpha)


def not_renormalised(counts, idf, alpha):
    return counts.toarray() ** alpha * idf


def normalised_before_idf(counts, idf, alpha):
    return _rows_l2(counts.toarray() ** alpha) * idf


def power_on_idf_too(counts, idf, alpha):
    return _rows_l2(counts.toarray() ** alpha * idf ** alpha)


def l1_normalised(counts, idf, alpha):
    v = counts.toarray() ** alpha * idf
    return v / np.maximum(v.sum(axis=1, keepdims=True), 1e-12)


def alpha_as_a_factor(counts, idf, alpha):
    return _rows_l2(counts.toarray() * alpha * idf)


@pytest.mark.parametrize("wrong", [power_after_idf, not_renormalised, normalised_before_idf, power_on_idf_too,
                                   l1_normalised, alpha_as_a_factor])
def test_burstiness_wrong_answers(wrong):
    m = fails(ex03.check_burstiness_tfidf, wrong)
    assert f"{wrong.__name__}(counts=<4x5 sparse csr" in m and "expected" in m   # the lecture's case


def test_burstiness_nan_on_an_all_zero_row():
    def no_guard(counts, idf, alpha):
        v = counts.toarray() ** alpha * idf
        with np.errstate(invalid="ignore"):
            return v / np.linalg.norm(v, axis=1, keepdims=True)
    assert "got nan" in fails(ex03.check_burstiness_tfidf, no_guard)


def test_burstiness_in_place_power_fails():
    def in_place(counts, idf, alpha):
        counts.data **= alpha                   # changes the caller's counts
        return bow.tfidf(counts, idf)
    assert "changed its input `counts`" in fails(ex03.check_burstiness_tfidf, in_place)


def test_burstiness_wrong_shape_fails():
    m = fails(ex03.check_burstiness_tfidf, lambda c, w, a: loop_burstiness(c, w, a).T)
    assert "expected shape (4, 5), got shape (5, 4)" in m


# --------------------------------------------------------------------------- the generator

def test_random_counts_look_like_visual_words():
    rng = np.random.default_rng(0)
    c = ex03.random_counts(rng, 200, 300, empty_rows=3)
    assert c.shape == (200, 300) and (c >= 0).all() and np.array_equal(c, np.round(c))
    assert (c.sum(axis=1) == 0).sum() >= 3
    assert (c.sum(axis=0) == 0).any()           # some words in no image
    assert c.max() >= 5                         # bursts
