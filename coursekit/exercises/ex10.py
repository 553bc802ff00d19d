"""Checks of notebook 10, "Capstone: search your own photos".

=====  ===============================================  =====================================================
id     the student writes                               reference
=====  ===============================================  =====================================================
10.1   ``plan_update(indexed, found)``                  :func:`coursekit.photo_search.plan_update`
10.2   ``top_k(X, q, k)``                               :func:`coursekit.photo_search.top_k`
=====  ===============================================  =====================================================

Contracts
---------
10.1 ``indexed`` and ``found`` dicts ``{path (str): (size, mtime_ns)}``:
     the photos in the index and those on disk now. Returns three lists
     ``(new, changed, missing)``, each sorted: found and not indexed; in
     both with another ``(size, mtime)``; indexed and no longer found.
     Tuples or lists of the pairs are equal if their values are. The
     inputs must not be changed.

10.2 ``X (N, D)`` float32, ``q (D,)`` float32, ``k`` an int ``>= 1``.
     Returns ``(ids, scores)``: the ``k`` rows of ``X`` with the largest dot
     product with ``q``, best first, as an int array ``(k,)`` and a float
     array ``(k,)`` (``min(k, N)`` of each when ``k > N``). Equal scores are
     ordered by row index. A case of ``N = 200,000`` must take well under a
     second (no Python loop over the rows). Tolerance ``1e-5`` on the scores.
"""

from __future__ import annotations

import copy
import time
from typing import Callable

import numpy as np

from .check import CheckFailed, Checker, Exercise, compare

__all__ = ["check_plan_update", "check_top_k"]

_SEED = 2028


def _exercise(ex_id: str) -> Exercise:
    from . import exercise  # late: the list in __init__ refers to the checks below
    return exercise(ex_id)


# --------------------------------------------------------------------------- 10.1

def check_plan_update(plan_update: Callable, *, quiet: bool = False) -> None:
    """Exercise 10.1: which photos ``index add`` must embed, and which have gone."""
    from ..photo_search import plan_update as ref

    c = Checker(_exercise("10.1"), quiet=quiet)
    names = ("new", "changed", "missing")

    def case(indexed, found):
        before = copy.deepcopy((indexed, found))
        expected = ref(indexed, found)
        got, where, _ = c.start(plan_update, indexed=indexed, found=found)
        if got is None:
            raise CheckFailed(f"{where} returned None — did you forget `return`?")
        if (indexed, found) != before:
            raise CheckFailed(f"{where}: changed its input dicts; build new lists instead")
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise CheckFailed(f"{where}: return three lists (new, changed, missing); got {type(got).__name__}"
                              + (f" of length {len(got)}" if isinstance(got, (tuple, list)) else ""))
        for name, g, e in zip(names, got, expected):
            try:
                g = list(g)
            except TypeError:
                raise CheckFailed(f"{where}: {name} must be a list of paths, got {type(g).__name__}") from None
            if g == e:
                continue
            if sorted(map(str, g)) == e:
                raise CheckFailed(f"{where}: {name} has the right paths in another order; sort each list")
            same = [p for p in g if p in indexed and p in found and tuple(indexed[p]) == tuple(found[p])]
            if name == "changed" and same and any(type(indexed[p]) is not type(found[p]) for p in same):
                raise CheckFailed(f"{where}: changed lists {same[0]!r}, whose size and time are the same, "
                                  f"{indexed[same[0]]} and {found[same[0]]}: compare the values, e.g. as tuples")
            if name == "changed" and set(g) == set(e) | {p for p in found if p in indexed}:
                raise CheckFailed(f"{where}: changed lists every photo in both; only those whose (size, mtime) "
                                  "differ were edited")
            if name == "missing" and set(g) == {p for p in found if p not in indexed}:
                raise CheckFailed(f"{where}: missing is the other way round: indexed, and no longer found")
            extra, lacking = sorted(set(g) - set(e)), sorted(set(e) - set(g))
            raise CheckFailed(f"{where}: {name}: expected {e}, got {g}"
                              + (f" (should not be there: {extra[:3]})" if extra else "")
                              + (f" (left out: {lacking[:3]})" if lacking else ""))
        c.count()

    case({"a.jpg": (10, 1), "b.jpg": (20, 2), "c.jpg": (30, 3)},
         {"a.jpg": (10, 1), "b.jpg": (20, 5), "d.jpg": (40, 4)})
    case({}, {"x.jpg": (1, 1), "w.jpg": (2, 2)})                                 # the first build
    case({"x.jpg": (1, 1)}, {})                                                   # the folder emptied
    case({"s.jpg": (5, 9)}, {"s.jpg": (6, 9)})                                    # a size change alone
    case({"s.jpg": [5, 9]}, {"s.jpg": (5, 9)})                                    # a list and a tuple: equal
    rng = np.random.default_rng(_SEED)
    paths = [f"trip/{i:04d}.jpg" for i in rng.permutation(300)]
    indexed = {p: (int(rng.integers(1e5, 1e6)), int(rng.integers(1e9))) for p in paths[:200]}
    found = {p: indexed.get(p, (int(rng.integers(1e5, 1e6)), int(rng.integers(1e9)))) for p in paths[50:]}
    for p in paths[60:80]:
        found[p] = (found[p][0], found[p][1] + 1)
    case(indexed, found)
    return c.passed()


# --------------------------------------------------------------------------- 10.2

def check_top_k(top_k: Callable, *, quiet: bool = False) -> None:
    """Exercise 10.2: the ``k`` best rows by dot product, best first, ties by index."""
    from ..photo_search import top_k as ref

    c = Checker(_exercise("10.2"), quiet=quiet)

    def case(X, q, k, seconds=None):
        e_ids, e_scores = ref(X, q, k)
        start = time.perf_counter()
        got, where, call = c.start(top_k, X=X, q=q, k=k)
        took = time.perf_counter() - start
        if got is None:
            raise CheckFailed(f"{where} returned None — did you forget `return`?")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise CheckFailed(f"{where}: return a pair (ids, scores); got {type(got).__name__}")
        ids, scores = (np.asarray(g) if isinstance(g, (list, tuple)) else g for g in got)
        if isinstance(ids, np.ndarray) and ids.shape == e_ids.shape and ids.dtype.kind in "iu" \
                and not np.array_equal(ids, e_ids):
            s = X @ q
            if np.array_equal(ids, e_ids[::-1]):
                raise CheckFailed(f"{where}: the ids are in increasing order of score; best first")
            if np.array_equal(np.sort(ids), np.sort(e_ids)):
                if np.allclose(s[ids], s[e_ids]):
                    raise CheckFailed(f"{where}: equal scores must come in increasing row order (a stable sort "
                                      "of -score, or np.lexsort); got ids " + str(ids.tolist()[:8]))
                raise CheckFailed(f"{where}: the right rows in the wrong order: sort them by score, best first")
            if np.array_equal(ids, np.argsort(np.linalg.norm(X - q, axis=1), kind="stable")[:len(ids)]):
                raise CheckFailed(f"{where}: these are the nearest rows by Euclidean distance; rank by the dot "
                                  "product X @ q (the same only for unit vectors)")
        compare(c.exercise, ids, e_ids, call=call + " -> ids")
        compare(c.exercise, scores, e_scores.astype(np.float64), call=call + " -> scores",
                atol=1e-5, rtol=1e-5)
        if seconds is not None and took > seconds:
            raise CheckFailed(f"{where}: took {took:.2f} s for N = {len(X):,}: compute the scores with one matrix "
                              "product and pick the top k with np.argpartition, without a Python loop")
        c.count()

    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0], [0.8, 0.6]], np.float32)
    case(X, np.array([1.0, 0.0], np.float32), 3)
    case(X, np.array([0.0, 1.0], np.float32), 9)                                   # k > N: all five
    rng = np.random.default_rng(_SEED)
    case(rng.standard_normal((50, 8)).astype(np.float32), rng.standard_normal(8).astype(np.float32), 1)
    ties = np.repeat(rng.standard_normal((3, 4)).astype(np.float32), [4, 1, 3], axis=0)[rng.permutation(8)]
    case(ties, rng.standard_normal(4).astype(np.float32), 5)
    big = rng.standard_normal((200_000, 32)).astype(np.float32)
    case(big, rng.standard_normal(32).astype(np.float32), 10, seconds=1.5)
    return c.passed()
