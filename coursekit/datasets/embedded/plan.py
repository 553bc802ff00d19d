"""Which images the ``embedded`` benchmark renders, in which order: the plan.

The plan is drawn from its own generator (see
:func:`coursekit.datasets.embedded.build_embedded`), before any image is
rendered: how many database renderings each query object gets, their
difficulty targets, the training renderings and the shuffled database order.
"""

from __future__ import annotations

import numpy as np

from .catalogue import ObjectInfo

#: Database renderings per query object: first one always easy, the others
#: easy / hard / junk with these probabilities.
_N_POSITIVES = (5, 7)  # inclusive range
_TARGETS = {"easy": 0.45, "hard": 0.40, "junk": 0.15}
_N_DISTRACTORS = 260
_N_TRAIN_RENDERINGS = 6
_TRAIN_TARGETS = {"easy": 0.6, "hard": 0.4}


def _choice(rng, probs: dict) -> str:
    """A key of ``probs`` (key -> probability) drawn with its probability: one ``rng.choice``."""
    keys = list(probs)
    return keys[int(rng.choice(len(keys), p=np.array([probs[k] for k in keys])))]


def _jobs(plan_rng, catalogue: list[ObjectInfo]) -> list[tuple[str, int, str]]:
    """The images to render, in order: ``(kind, object id, difficulty target)``.

    ``kind`` is ``"query"``, ``"db"``, ``"train"`` or ``"reference"`` (a
    query-like rendering of a training object, never written: the scale of
    its training renderings is measured against it).
    """
    jobs: list[tuple[str, int, str]] = []
    for o in catalogue:
        if o.split == "query":
            n = int(plan_rng.integers(_N_POSITIVES[0], _N_POSITIVES[1] + 1))
            jobs.append(("query", o.id, "query"))
            jobs.append(("db", o.id, "first"))  # must come out easy
            jobs += [("db", o.id, _choice(plan_rng, _TARGETS)) for _ in range(n - 1)]
    jobs += [("db", -1, "distractor")] * _N_DISTRACTORS
    for o in catalogue:
        if o.split == "train":
            jobs.append(("reference", o.id, "query"))
            jobs += [("train", o.id, _choice(plan_rng, _TRAIN_TARGETS)) for _ in range(_N_TRAIN_RENDERINGS)]
    return jobs


def plan_images(plan_rng, catalogue: list[ObjectInfo]) -> tuple[list[tuple[str, int, str]], list[int]]:
    """The images to render and where the database ones go: ``(jobs, db_slots)``.

    ``jobs``: ``(kind, object id, difficulty target)`` in rendering order
    (see :func:`_jobs`); ``db_slots[k]``: the database index of the ``k``-th
    ``"db"`` job, a random permutation of ``range(n_db)`` drawn from
    ``plan_rng`` after the jobs (the shuffled database order).
    """
    jobs = _jobs(plan_rng, catalogue)
    n_db = sum(kind == "db" for kind, _, _ in jobs)
    return jobs, plan_rng.permutation(n_db).tolist()
