"""Checks of notebook 00, "what retrieval is and how it is measured".

=====  =========================================  ======================================
id     the student writes                         reference
=====  =========================================  ======================================
0.1    ``precision_at_k(labels, k)``              :func:`coursekit.evaluation.precision_at_k`
0.2    ``recall_at_k(labels, k, n_relevant)``     :func:`coursekit.evaluation.recall_at_k`
0.3    ``average_precision(labels, n_relevant)``  :func:`coursekit.evaluation.average_precision` (plain)
0.4    ``mean_average_precision(ranks, gnd)``     :func:`coursekit.evaluation.mean_average_precision` (plain, junk removed)
=====  =========================================  ======================================

``labels`` is a ranked ``(N,) bool`` list (True = relevant), ``k >= 1``;
``ranks (Q, N) int`` holds database indices best first and ``gnd`` one
:class:`~coursekit.datasets.GroundTruth` per query. Each check runs fixed
cases (the lecture's example first) and seeded random ones.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .check import Checker, Exercise

__all__ = [
    "check_precision_at_k", "check_recall_at_k", "check_average_precision",
    "check_mean_average_precision", "LECTURE_LABELS",
]

#: The lecture's ranked list: with 6 relevant items, AP = 0.7462.
LECTURE_LABELS = np.array([1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0], dtype=bool)

_SEED = 2024
_TOL = dict(atol=1e-6, rtol=1e-6)


def _exercise(ex_id: str) -> Exercise:
    from . import exercise  # late: the list in __init__ refers to the checks below
    return exercise(ex_id)


def _reference(name: str) -> Callable:
    from .. import evaluation
    return getattr(evaluation, name)


def _random_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.random(n) < rng.uniform(0.15, 0.7)


def check_precision_at_k(precision_at_k: Callable, *, quiet: bool = False) -> None:
    """Exercise 0.1: the fraction of the top ``k`` that is relevant."""
    c = Checker(_exercise("0.1"), quiet=quiet)
    ref = _reference("precision_at_k")
    for k in (1, 2, 3, 5, 12):
        c.case(precision_at_k, ref, labels=LECTURE_LABELS, k=k, **_TOL)
    c.case(precision_at_k, ref, labels=np.zeros(8, bool), k=4, **_TOL)
    c.case(precision_at_k, ref, labels=np.ones(5, bool), k=3, **_TOL)
    rng = np.random.default_rng(_SEED)
    for _ in range(8):
        n = int(rng.integers(2, 40))
        c.case(precision_at_k, ref, labels=_random_labels(rng, n), k=int(rng.integers(1, n)), **_TOL)
    return c.passed()


def check_recall_at_k(recall_at_k: Callable, *, quiet: bool = False) -> None:
    """Exercise 0.2: the fraction of all ``n_relevant`` relevant items found in the top ``k``."""
    c = Checker(_exercise("0.2"), quiet=quiet)
    ref = _reference("recall_at_k")
    for k, n_rel in ((1, 6), (4, 6), (12, 6), (5, 10)):
        c.case(recall_at_k, ref, labels=LECTURE_LABELS, k=k, n_relevant=n_rel, **_TOL)
    c.case(recall_at_k, ref, labels=np.zeros(6, bool), k=3, n_relevant=2, **_TOL)
    rng = np.random.default_rng(_SEED + 1)
    for _ in range(8):
        n = int(rng.integers(2, 40))
        labels = _random_labels(rng, n)
        n_rel = int(labels.sum()) + int(rng.integers(0, 4))
        if n_rel == 0:
            n_rel = 1
        c.case(recall_at_k, ref, labels=labels, k=int(rng.integers(1, n)), n_relevant=n_rel, **_TOL)
    return c.passed()


def check_average_precision(average_precision: Callable, *, quiet: bool = False) -> None:
    """Exercise 0.3: plain AP, the mean over all ``n_relevant`` relevant items of
    the precision at each one's rank; an unretrieved one counts 0."""
    c = Checker(_exercise("0.3"), quiet=quiet)
    ref = _reference("average_precision")
    c.case(average_precision, ref, labels=LECTURE_LABELS, n_relevant=6, **_TOL)   # 0.7462
    c.case(average_precision, ref, labels=LECTURE_LABELS, n_relevant=8, **_TOL)   # 2 never retrieved
    c.case(average_precision, ref, labels=np.array([0, 0, 1, 0, 1], bool), n_relevant=2, **_TOL)
    c.case(average_precision, ref, labels=np.array([1, 0, 0, 0], bool), n_relevant=1, **_TOL)
    c.case(average_precision, ref, labels=np.zeros(7, bool), n_relevant=3, **_TOL)
    rng = np.random.default_rng(_SEED + 2)
    for _ in range(8):
        n = int(rng.integers(3, 50))
        labels = _random_labels(rng, n)
        n_rel = max(1, int(labels.sum()) + int(rng.integers(0, 4)))
        c.case(average_precision, ref, labels=labels, n_relevant=n_rel, **_TOL)
    return c.passed()


def _ground_truth(easy, hard=(), junk=()):
    from ..datasets import GroundTruth
    as_idx = lambda a: np.asarray(a, dtype=np.int64)  # noqa: E731
    return GroundTruth(as_idx(easy), as_idx(hard), as_idx(junk))


def _random_case(rng: np.random.Generator):
    q, n = int(rng.integers(2, 7)), int(rng.integers(8, 40))
    ranks = np.stack([rng.permutation(n) for _ in range(q)]).astype(np.int64)
    gnd = []
    for i in range(q):
        order = rng.permutation(n)
        n_pos = 0 if (i > 0 and rng.random() < 0.2) else int(rng.integers(1, max(2, n // 3)))
        n_hard = int(rng.integers(0, n_pos + 1)) if n_pos else 0
        n_junk = int(rng.integers(0, max(1, n // 5)))
        gnd.append(_ground_truth(np.sort(order[: n_pos - n_hard]), np.sort(order[n_pos - n_hard: n_pos]),
                                 np.sort(order[n_pos: n_pos + n_junk])))
    return ranks, gnd


def check_mean_average_precision(mean_average_precision: Callable, *, quiet: bool = False) -> None:
    """Exercise 0.4: mAP with junk removed from each ranking; positives are
    ``easy`` and ``hard``; queries without positives are left out of the mean."""
    c = Checker(_exercise("0.4"), quiet=quiet)
    ref = _reference("mean_average_precision")
    # Fixed: junk ahead of positives, a hard positive, a query without positives.
    ranks = np.array([[3, 0, 5, 1, 2, 4, 6, 7],
                      [7, 6, 5, 4, 3, 2, 1, 0],
                      [0, 1, 2, 3, 4, 5, 6, 7]], dtype=np.int64)
    gnd = [_ground_truth([0, 1], hard=[4], junk=[3]),
           _ground_truth([2], junk=[7, 6, 5]),
           _ground_truth([], junk=[1])]
    c.case(mean_average_precision, ref, ranks=ranks, gnd=gnd, **_TOL)
    c.case(mean_average_precision, ref, ranks=ranks[:2], gnd=gnd[:2], **_TOL)
    c.case(mean_average_precision, ref, ranks=ranks[:1], gnd=[_ground_truth([0, 1, 4])], **_TOL)
    rng = np.random.default_rng(_SEED + 3)
    for _ in range(8):
        ranks, gnd = _random_case(rng)
        c.case(mean_average_precision, ref, ranks=ranks, gnd=gnd, **_TOL)
    return c.passed()
