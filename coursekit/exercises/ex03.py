"""Checks of notebook 03, "bag of visual words".

=====  ==========================================  ================================================
id     the student writes                          reference
=====  ==========================================  ================================================
3.1    ``idf_weights(counts)``                     :func:`coursekit.bow.idf`
3.2    ``inverted_file_scores(q, postings)``       :meth:`coursekit.bow.InvertedFile.score`
3.3    ``burstiness_tfidf(counts, idf, alpha)``    :func:`coursekit.bow.burstiness`, then
                                                   :func:`coursekit.bow.tfidf`
=====  ==========================================  ================================================

Contracts
---------
3.1 ``counts (N, K)`` ``scipy.sparse.csr_matrix``, the database's term
    frequencies (``counts[i, k]``: how many descriptors of image ``i`` were
    assigned to word ``k``; whole numbers >= 0, no stored zeros) ->
    ``(K,)`` float: ``idf[k] = log(N / n_k)``, natural log, ``n_k`` the
    number of images that contain word ``k`` at least once (not the number
    of its occurrences); 0 for a word in no image (Sivic and Zisserman,
    ICCV 2003).

3.2 ``q (1, K)`` ``csr_matrix``: one query's weighted (tf-idf,
    L2-normalised) vector; ``postings (K, N)`` ``csr_matrix``: row ``k`` is
    word ``k``'s posting list, the database images that contain the word
    (``postings[k].indices``) with their weights (``postings[k].data``) ->
    ``(N,)`` float: ``scores[n] = sum_k q[0, k] * postings[k, n]``, which
    equals the dot product of the query with every database vector (their
    cosine). Touching only the posting lists of the query's own words is
    the point; any correct way passes (a loop over the query's words,
    NumPy on the CSR arrays, or ``q @ postings``).

3.3 ``counts (N, K)`` ``csr_matrix`` term frequencies, ``idf (K,)`` float
    (>= 0; 0 for some words), ``alpha`` in (0, 1] -> ``(N, K)``: each row
    ``tf^alpha * idf``, then divided by its L2 norm (a row that is all zero
    stays zero). The power applies to the term frequencies only, before the
    idf weighting (Jegou, Douze and Schmid, "On the burstiness of visual
    elements", CVPR 2009). A ``csr_matrix`` or a dense array is accepted.

The sparse inputs are ``csr_matrix`` objects (a subclass that prints itself
on one line in messages and compares exactly, so that a function that
changes its input in place is caught); inputs stay small, so a loop over
rows or words passes within the time limit.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp

from .check import CheckFailed, Checker, Exercise, compare, describe

__all__ = ["check_idf_weights", "check_inverted_file_scores", "check_burstiness_tfidf",
           "LECTURE_COUNTS", "random_counts"]

_SEED = 2025

#: The lecture's 4 images x 5 words. Word 0 is in every image (idf 0), word 1 in one image (idf
#: log 4), word 2 in two (log 2), word 3 in three (log 4/3: it occurs 6 times, but in 3 images),
#: word 4 in none (0). Image 3 holds words 2 and 3, of different idf, once and 4 times.
LECTURE_COUNTS = np.array([[3, 1, 0, 0, 0],
                           [1, 0, 2, 1, 0],
                           [2, 0, 0, 1, 0],
                           [1, 0, 1, 4, 0]], dtype=np.float32)


def _csr(a) -> sp.csr_matrix:
    """``a`` (dense or sparse) as a canonical CSR matrix: sorted indices, no duplicates, no stored zeros."""
    m = sp.csr_matrix(a, dtype=np.float32)
    m.sum_duplicates()
    m.eliminate_zeros()
    m.sort_indices()
    return m


def _exercise(ex_id: str) -> Exercise:
    from . import exercise  # late: the list in __init__ refers to the checks below
    return exercise(ex_id)


def random_counts(rng: np.random.Generator, n: int, k: int, words_per_image: tuple[int, int] = (1, 40),
                  empty_rows: int = 0) -> np.ndarray:
    """Term frequencies ``(n, k) float32`` drawn like visual words: a Zipf-like
    word distribution (a few frequent words, many rare ones, some never drawn)
    and bursts (one word repeated many times in an image); ``empty_rows``
    images without any word."""
    p = 1.0 / np.arange(1, k + 1) ** 1.1
    p = rng.permutation(p / p.sum())
    counts = np.zeros((n, k), np.float32)
    for i in range(n):
        m = int(rng.integers(*words_per_image))
        np.add.at(counts[i], rng.choice(k, m, p=p), 1)
        if rng.random() < 0.3:                      # a burst: a brick wall, a window grid
            counts[i, rng.integers(k)] += rng.integers(5, 20)
    counts[rng.permutation(n)[:empty_rows]] = 0
    return counts


# --------------------------------------------------------------------------- 3.1

def check_idf_weights(idf_weights: Callable, *, quiet: bool = False) -> None:
    """Exercise 3.1: ``idf[k] = log(N / n_k)``, 0 for words in no image."""
    from ..bow import idf as ref

    c = Checker(_exercise("3.1"), quiet=quiet)
    tol = dict(atol=1e-5, rtol=1e-5)
    c.case(idf_weights, ref, counts=_csr(LECTURE_COUNTS), **tol)   # [0, 1.386, 0.6931, 0.2877, 0]
    rng = np.random.default_rng(_SEED)
    for n, k, empty in ((6, 10, 0), (30, 80, 2), (120, 500, 5), (1, 7, 0), (200, 60, 0)):
        c.case(idf_weights, ref, counts=_csr(random_counts(rng, n, k, empty_rows=empty)), **tol)
    return c.passed()


# --------------------------------------------------------------------------- 3.2

def _index(rng: np.random.Generator, n: int, k: int, q: int, alpha: float = 1.0):
    """An inverted file over random database counts ``(n, k)`` and ``q`` weighted queries."""
    from ..bow import InvertedFile

    db = random_counts(rng, n, k, empty_rows=1)
    index = InvertedFile.build(sp.csr_matrix(db), alpha)
    queries = index.query_vectors(sp.csr_matrix(random_counts(rng, q, k)))
    return index, queries


def check_inverted_file_scores(inverted_file_scores: Callable, *, quiet: bool = False) -> None:
    """Exercise 3.2: scores ``(N,)`` of one query, accumulated over its words' posting lists."""
    from ..bow import InvertedFile, idf, tfidf

    ex = _exercise("3.2")
    c = Checker(ex, quiet=quiet)
    name = getattr(inverted_file_scores, "__name__", ex.function)

    def one(index: InvertedFile, q) -> None:
        q, postings = _csr(q), _csr(index.postings)
        expected = index.score(q)[0]
        call = f"{name}(q={describe(q)}, postings={describe(postings)})"
        got = c.call(inverted_file_scores, q=q, postings=postings)
        if sp.issparse(got):
            raise CheckFailed(f"{ex.label}: {call}: expected a NumPy array of shape {expected.shape}, "
                              f"got a sparse matrix (use .toarray().ravel())")
        if isinstance(got, np.ndarray) and got.shape == (1,) + expected.shape:
            raise CheckFailed(f"{ex.label}: {call}: expected shape {expected.shape}, got shape {got.shape} "
                              f"(use .ravel())")
        if isinstance(got, np.ndarray) and got.dtype.kind in "iu":
            got = got.astype(np.float64)    # np.bincount of an empty query gives integer zeros: right
        compare(ex, got, expected, call=call, atol=1e-5, rtol=1e-4)
        c.count()

    # the lecture's database, and a query with words 0 to 3: word 0, in every image, has an empty
    # posting list; image 3 is on the lists of words 2 and 3, and its score adds both
    db = sp.csr_matrix(LECTURE_COUNTS)
    w = idf(db)
    postings = tfidf(db, w).T.tocsr()
    postings.eliminate_zeros()
    one(InvertedFile(postings, w), tfidf(sp.csr_matrix(np.array([[2, 1, 1, 1, 0]], np.float32)), w))
    rng = np.random.default_rng(_SEED + 1)
    for n, k, alpha in ((8, 12, 1.0), (40, 100, 1.0), (150, 600, 0.5), (300, 2000, 1.0)):
        index, queries = _index(rng, n, k, 2, alpha)
        for i in range(queries.shape[0]):
            one(index, queries[i])
    index, _ = _index(rng, 20, 50, 1)
    one(index, sp.csr_matrix((1, 50), dtype=np.float32))                 # a query without words: all zero
    return c.passed()


# --------------------------------------------------------------------------- 3.3

def _reference_burstiness_tfidf(counts, idf, alpha) -> np.ndarray:
    from ..bow import burstiness, tfidf
    return tfidf(burstiness(counts, alpha), idf).toarray()


def check_burstiness_tfidf(burstiness_tfidf: Callable, *, quiet: bool = False) -> None:
    """Exercise 3.3: ``tf^alpha * idf`` per row, L2-normalised."""
    from ..bow import idf as idf_of

    ex = _exercise("3.3")
    c = Checker(ex, quiet=quiet)
    name = getattr(burstiness_tfidf, "__name__", ex.function)

    def one(counts, idf, alpha: float) -> None:
        counts, idf = _csr(counts), np.asarray(idf, np.float32)
        expected = _reference_burstiness_tfidf(counts, idf, alpha)
        call = f"{name}(counts={describe(counts)}, idf={_short(idf)}, alpha={alpha:g})"
        got = c.call(burstiness_tfidf, counts=counts, idf=idf, alpha=alpha)
        if sp.issparse(got):
            got = got.toarray()
        elif isinstance(got, np.matrix):
            got = np.asarray(got)
        compare(ex, got, expected, call=call, atol=1e-5, rtol=1e-4)
        c.count()

    # the lecture's counts: row 0 has a burst of word 0, which has idf 0 (it is in every image)
    lecture_idf = idf_of(sp.csr_matrix(LECTURE_COUNTS))
    one(LECTURE_COUNTS, lecture_idf, 0.5)
    one(LECTURE_COUNTS, np.ones(5, np.float32), 0.5)          # idf all 1: only the power law and L2
    one(LECTURE_COUNTS, lecture_idf, 1.0)                     # alpha = 1: plain tf-idf
    rng = np.random.default_rng(_SEED + 2)
    for n, k, alpha in ((10, 30, 0.5), (50, 200, 0.25), (40, 100, 0.7), (120, 800, 0.5), (5, 9, 1.0)):
        counts = random_counts(rng, n, k, empty_rows=1)            # an image without words stays all zero
        one(counts, idf_of(sp.csr_matrix(counts)), alpha)
    only_common = np.zeros((3, 4), np.float32)
    only_common[:, 0] = [1, 3, 2]
    only_common[1, 2] = 5                                      # image 0 and 2: only a word of idf 0
    one(only_common, idf_of(sp.csr_matrix(only_common)), 0.5)
    return c.passed()


def _short(a: np.ndarray) -> str:
    """A vector in a message, on one line."""
    head = " ".join(f"{v:.3g}" for v in a[:6])
    return f"[{head}{' ...' if a.size > 6 else ''}] ({a.size},)"
