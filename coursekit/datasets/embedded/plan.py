"""Which images the ``embedded`` benchmark renders, in which order: the plan.

The plan is drawn from its own generator (see
:func:`coursekit.datasets.embedded.build_embedded`), before any image is
rendered: how many database renderings each query object gets, their
difficulty targets (version 1) or their poses (version 2: walks in
viewpoint, scale and light), the training renderings and the shuffled
database order.
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


#: Version 2: database views per query object (inclusive range), walks per
#: object, distractors; each step of a walk changes the pose by these
#: standard deviations (tilt and rotation in degrees, scale and light in
#: octaves, i.e. log2).
_V2_VIEWS = (8, 10)
_V2_WALKS = (1, 3)
_V2_DISTRACTORS = 90
_V2_STEP = {"tilt": 5.0, "tilt_axis": 10.0, "rotation": 10.0, "scale": 0.2, "light": 0.1}


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


def walk_poses(rng, n: int) -> list[dict]:
    """``n`` poses of one object as 1-3 random walks that start at the query's pose.

    A pose is ``tilt`` (degrees, 0-68), ``tilt_axis`` and ``rotation``
    (degrees), ``scale`` (octaves relative to the query's size, -1.8 to
    1.5) and ``light`` (octaves of gain). Every walk starts at the query's
    (no tilt, rotation or scale change; its own tilt and rotation are mild)
    and takes one step of :data:`_V2_STEP` per view, so that consecutive
    views of a walk differ a little and its last views a lot: the chains of
    small changes that a landmark's photos form, which query expansion and
    diffusion follow to the distant views. Each pose also names its
    ``walk`` (0, 1, ...) and its ``step`` along it (1, 2, ...).
    """
    walks = int(rng.integers(_V2_WALKS[0], _V2_WALKS[1] + 1))
    walks = min(walks, n)
    lengths = np.bincount(rng.integers(0, walks, n - walks), minlength=walks) + 1
    s = _V2_STEP
    poses: list[dict] = []
    for walk, length in enumerate(lengths.tolist()):
        pose = {"tilt": 0.0, "tilt_axis": float(rng.uniform(0, 180)), "rotation": 0.0, "scale": 0.0, "light": 0.0}
        for step in range(1, length + 1):
            pose = {"tilt": float(min(abs(pose["tilt"] + rng.normal(0, s["tilt"])), 68.0)),
                    "tilt_axis": float((pose["tilt_axis"] + rng.normal(0, s["tilt_axis"])) % 180),
                    "rotation": float((pose["rotation"] + rng.normal(0, s["rotation"]) + 180) % 360 - 180),
                    "scale": float(np.clip(pose["scale"] + rng.normal(0, s["scale"]), -1.8, 1.5)),
                    "light": float(np.clip(pose["light"] + rng.normal(0, s["light"]), -0.8, 0.8))}
            poses.append({**{k: round(v, 3) for k, v in pose.items()}, "walk": walk, "step": step})
    return poses


def _jobs_v2(plan_rng, catalogue: list[ObjectInfo]) -> list[tuple[str, int, str, dict | None]]:
    """Version 2's images, in order: ``(kind, object id, target, pose)``.

    Per query object: the query, then :data:`_V2_VIEWS` database views along
    :func:`walk_poses` (target ``"first"`` for the first view of the first
    walk, which must come out easy; ``"view"`` for the others, whose
    difficulty is what the rendering measures); then the distractors; then
    per training object its reference and its training views, walks too.
    """
    jobs: list[tuple[str, int, str, dict | None]] = []
    for o in catalogue:
        if o.split == "query":
            n = int(plan_rng.integers(_V2_VIEWS[0], _V2_VIEWS[1] + 1))
            jobs.append(("query", o.id, "query", None))
            jobs += [("db", o.id, "first" if k == 0 else "view", pose)
                     for k, pose in enumerate(walk_poses(plan_rng, n))]
    jobs += [("db", -1, "distractor", None)] * _V2_DISTRACTORS
    for o in catalogue:
        if o.split == "train":
            jobs.append(("reference", o.id, "query", None))
            jobs += [("train", o.id, "view", pose) for pose in walk_poses(plan_rng, _N_TRAIN_RENDERINGS)]
    return jobs


def plan_images(plan_rng, catalogue: list[ObjectInfo],
                version: int) -> tuple[list[tuple[str, int, str, dict | None]], list[int]]:
    """The images to render and where the database ones go: ``(jobs, db_slots)``.

    ``jobs``: ``(kind, object id, target, pose)`` in rendering order (see
    :func:`_jobs` for version 1, whose pose is always ``None``, and
    :func:`_jobs_v2`); ``db_slots[k]``: the database index of the ``k``-th
    ``"db"`` job, a random permutation of ``range(n_db)`` drawn from
    ``plan_rng`` after the jobs (the shuffled database order).
    """
    if version == 1:
        jobs = [(kind, oid, target, None) for kind, oid, target in _jobs(plan_rng, catalogue)]
    else:
        jobs = _jobs_v2(plan_rng, catalogue)
    n_db = sum(job[0] == "db" for job in jobs)
    return jobs, plan_rng.permutation(n_db).tolist()
