"""Choosing a re-ranking's settings from the data, never from the test queries' labels.

Query expansion and diffusion (:mod:`coursekit.rerank`) were designed on
landmark datasets, where a query has dozens of positives; their papers'
settings (expand with the top 5, a 50-NN graph, 10 query neighbours)
assume it. On a database that holds a handful of views of each object the
same settings pull in other objects and lower mAP. What matters is how
many images of the same thing a typical image has around it, and that can
be learned without looking at the test queries:

* **on a training split** (:func:`training_task`, :func:`choose_on_training`):
  one image of each training object is a query, the object's other images
  its positives, every other training image the database; each setting of
  a small grid is run there and the best mean AP wins;
* **from the database alone** (:func:`reciprocity`, :func:`choose_from_database`),
  where there is no training split (UKBench, a folder, a photo index): the
  ``k`` at which images are most often among the ``k`` nearest neighbours
  of their own ``k`` nearest estimates how many other views ``m`` of an
  object the database holds, and the settings follow it (``n = k_q = m``,
  ``k = m + 1``; no re-ranking where the curve has no peak).

:func:`choose` picks the first where the dataset allows it and returns the
settings with what they were chosen from. Every function takes
L2-normalised vectors ``(N, D) float32``.
"""

from __future__ import annotations

import itertools

import numpy as np

from . import rerank
from .datasets import GroundTruth
from .evaluation import average_precisions, ranks_from_similarities

__all__ = ["PAPER", "GRID", "FROM_VIEWS", "settings_of", "training_task", "task_map", "grid_of", "choose_on_training", "reciprocity",
           "views_per_image",
           "from_views", "choose_from_database", "choose", "describe"]

# The papers' settings of each re-ranking (rerank.QE_K, QE_ALPHA; GRAPH_K, QUERY_K, ALPHA): what `--rerank X`
# meant before settings were chosen from the data, and what explicit flags start from.
PAPER = {
    "aqe": {"n": rerank.QE_K},
    "alpha_qe": {"n": rerank.QE_K, "qe_alpha": rerank.QE_ALPHA},
    "aqe_dba": {"n": rerank.QE_K},
    "alpha_qe_dba": {"n": rerank.QE_K, "qe_alpha": rerank.QE_ALPHA},
    "diffusion": {"k": rerank.GRAPH_K, "k_q": rerank.QUERY_K, "alpha": rerank.ALPHA},
}

# The values tried on a training split, setting by setting (the grid is their product for each re-ranking).
# n = 0 and k_q = 0 re-rank nothing (rerank.apply): the first ranking is always among the candidates.
GRID = {"n": (0, 1, 2, 3, 5, 8, 12, 20), "qe_alpha": (1.0, 3.0), "k": (3, 5, 8, 12, 20, 50),
        "k_q": (0, 2, 3, 5, 10), "alpha": (0.9, 0.99)}


def settings_of(how: str, **given) -> dict:
    """The settings of re-ranking ``how``: the paper's (:data:`PAPER`), with those ``given`` (not ``None``)
    in their place. An unknown name is a ``ValueError`` that lists the known ones."""
    if how not in PAPER:
        raise ValueError(f"unknown re-ranking {how!r}; known: {', '.join(PAPER)}")
    given = {name: value for name, value in given.items() if value is not None}
    unknown = set(given) - set(PAPER[how])
    if unknown:
        raise ValueError(f"re-ranking {how!r} takes {', '.join(PAPER[how])}, not {', '.join(sorted(unknown))}")
    return {**PAPER[how], **given}


def training_task(X: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[GroundTruth]]:
    """A retrieval task made of a labelled training split ``X (T, D)``, ``labels (T,)``: the first image of
    each object that has at least two is a query, every other image the database, the object's other
    images the query's positives. Returns ``(X_q (Q, D), X_db (T - Q, D), gnd)``; no image is both."""
    labels = np.asarray(labels)
    if len(labels) != len(X):
        raise ValueError(f"{len(X)} training vectors but {len(labels)} labels")
    _, first, counts = np.unique(labels, return_index=True, return_counts=True)
    queries = np.sort(first[counts >= 2])
    if len(queries) == 0:
        raise ValueError("the training split has no object with two images: nothing to learn the settings on")
    db = np.setdiff1d(np.arange(len(X)), queries)
    gnd = [GroundTruth(np.flatnonzero(labels[db] == labels[q])) for q in queries]
    return X[queries], X[db], gnd


def task_map(X_q: np.ndarray, X_db: np.ndarray, gnd: list[GroundTruth], how: str | None, A=None,
             **settings) -> float:
    """mAP (trapezoid AP, as the course reports it) of the task's first ranking (``how=None``) or of re-ranking
    ``how`` with ``settings`` (diffusion: on the graph ``A`` when given, else one built for ``k``, not cached)."""
    sims = X_q @ X_db.T if how is None else rerank.apply(X_q, X_db, how, cache_graph=False, A=A, **settings)[0]
    return float(np.nanmean(average_precisions(ranks_from_similarities(sims), gnd, kind="trapezoid")))


def grid_of(how: str, n_db: int) -> list[dict]:
    """The settings of ``how`` that :func:`choose_on_training` tries on a database of ``n_db`` vectors: the
    product of :data:`GRID`'s values in :data:`PAPER`'s order, without those that ask for ``n_db`` neighbours
    or more, and with the first ranking (``n = 0`` or ``k_q = 0``) once."""
    names = list(PAPER[how])
    out: list[dict] = []
    for values in itertools.product(*(GRID[name] for name in names)):
        s = dict(zip(names, values))
        if max(s.get("n", 1), s.get("k", 1), s.get("k_q", 1)) >= n_db:
            continue
        if _as_is(s) and any(_as_is(t) for t in out):       # nothing re-ranked: once is enough
            continue
        out.append(s)
    return out


def _as_is(settings: dict) -> bool:
    """Whether ``settings`` re-rank nothing (:func:`coursekit.rerank.apply` with ``n = 0`` or ``k_q = 0``)."""
    return settings.get("n") == 0 or settings.get("k_q") == 0


def _maps(sims: np.ndarray, gnd: list[GroundTruth], groups: int = 1) -> np.ndarray:
    """mAP of ``groups`` stacked tasks: ``sims (groups * Q, N)``, each block of ``Q`` rows one setting's
    similarities for the same queries ``gnd`` (positives only, no junk: a :func:`training_task`);
    ``(groups,) float64``: the trapezoid AP of :func:`coursekit.evaluation.average_precisions`, ties in
    database order as :func:`coursekit.evaluation.ranks_from_similarities` breaks them.

    Only the positives' ranks matter. With a handful of positives per query, each one's rank is counted
    (the images scored above it) instead of sorting every row: ``P N`` comparisons against ``N log N``."""
    Q, N = len(gnd), sims.shape[1]
    P = max(len(g.positives) for g in gnd)
    pos = np.full((Q, P), -1, np.int64)                 # each query's positives, padded with -1
    for q, g in enumerate(gnd):                         # a loop over queries, once for every block
        pos[q, :len(g.positives)] = np.sort(g.positives)
    pos = np.tile(pos, (groups, 1))                     # (groups * Q, P)
    valid = pos >= 0
    if P < 2 * np.log2(max(N, 2)):                      # count: rank = #(scored above) + #(tied, earlier)
        rank = np.empty(pos.shape, np.int64)
        step = max(1, (1 << 24) // (P * N))             # rows per block: at most 16 M comparisons at once
        for a in range(0, len(sims), step):
            s = sims[a:a + step]                                                  # (B, N)
            s_p = np.take_along_axis(s, np.where(valid[a:a + step], pos[a:a + step], 0), axis=1)  # (B, P)
            above = (s[:, None, :] > s_p[:, :, None]).sum(axis=2)
            tied = ((s[:, None, :] == s_p[:, :, None]) & (np.arange(N) < pos[a:a + step, :, None])).sum(axis=2)
            rank[a:a + step] = above + tied
    else:                                               # sort, as ranks_from_similarities does
        where = np.empty_like(order := ranks_from_similarities(sims))
        np.put_along_axis(where, order, np.arange(N)[None].repeat(len(sims), axis=0), axis=1)   # rank of each
        rank = np.take_along_axis(where, np.where(valid, pos, 0), axis=1)
    R = np.sort(np.where(valid, rank, N), axis=1) + 1   # 1-based ranks of the positives, in order (padding last)
    J = np.arange(1, P + 1)[None]                       # the j-th positive found
    before = np.where(R > 1, (J - 1) / np.maximum(R - 1, 1), 1.0)                # precision just before it
    per_hit = np.where(np.sort(~valid, axis=1) == 0, (before + J / R) / 2, 0.0)  # Oxford's compute_ap
    aps = per_hit.sum(axis=1) / valid.sum(axis=1)
    return aps.reshape(groups, Q).mean(axis=1)


def _expansion_grid(X_q: np.ndarray, X_db: np.ndarray, gnd: list[GroundTruth], how: str, grid: list[dict]
                    ) -> dict[tuple, float]:
    """mAP of query expansion ``how`` for each setting of ``grid`` that re-ranks, keyed by its values: the
    neighbour lists are searched once for the largest ``n`` and cut for the others, and every setting's
    ranking is scored in one call (what :func:`task_map` does setting by setting, with a search each time)."""
    names, dba = list(PAPER[how]), how.endswith("_dba")
    grid = [s for s in grid if not _as_is(s)]
    n_max = max(s["n"] for s in grid)
    own = np.arange(len(X_db))[:, None]
    if dba:    # each database vector's n_max + 1 nearest, its own entry among them (as database_augmentation)
        sims, ids = rerank.nearest(X_db, X_db, n_max + 1)
    else:
        sims, ids = rerank.nearest(X_q, X_db, n_max)
    blocks = []
    for power in sorted({s.get("qe_alpha", 0.0) for s in grid}):     # aqe, aqe_dba: one, 0 (no weighting)
        w = np.ones_like(sims) if power == 0 else np.maximum(sims, 0.0) ** power
        ns = [s["n"] for s in grid if s.get("qe_alpha", 0.0) == power]
        if not dba:
            # loop form: for n in ns: q' = alpha_query_expansion(q, X_db, n, power); every n at once, as one
            # batched product: q + (w_1 .. w_n, 0 ..) @ (x_1 .. x_n_max)
            first_n = np.arange(n_max)[None] < np.array(ns)[:, None]             # (len(ns), n_max)
            weights = w[:, None, :] * first_n[None]                               # (Q, len(ns), n_max)
            expanded = X_q[:, None] + weights @ X_db[ids]                         # (Q, len(ns), D)
            expanded = expanded.transpose(1, 0, 2).reshape(-1, X_q.shape[1])       # setting by setting
            blocks.append(rerank.l2_normalize(expanded) @ X_db.T)
        else:
            for n in ns:  # loop form: X_db' = database_augmentation(X_db, n, power); q' = alpha_query_expansion(q, X_db', n)
                others = ids[:, :n + 1] != own
                keep = others & (np.cumsum(others, axis=1) <= n)
                X_d = rerank.expand(X_db, X_db, ids[:, :n + 1], w[:, :n + 1] * keep)
                blocks.append(rerank.alpha_query_expansion(X_q, X_d, n, power) @ X_d.T)
    maps = _maps(np.concatenate(blocks), gnd, len(grid))
    order = sorted(grid, key=lambda s: (s.get("qe_alpha", 0.0), s["n"]))      # the order the blocks were made in
    return {tuple(s[name] for name in names): float(m) for s, m in zip(order, maps)}


def _diffusion_grid(X_q: np.ndarray, X_db: np.ndarray, gnd: list[GroundTruth], grid: list[dict]
                    ) -> dict[tuple, float]:
    """mAP of diffusion for each setting of ``grid`` that re-ranks, keyed by ``(k, k_q, alpha)``: one kNN
    search of the database for the largest ``k`` (each graph its lists cut to ``k``), one of the queries for
    the largest ``k_q``, and one conjugate-gradient solve per ``(k, alpha)`` for every ``k_q`` at once (CG
    treats each column on its own, so stacking changes no result)."""
    grid = [s for s in grid if not _as_is(s)]
    ks, k_qs = sorted({s["k"] for s in grid}), sorted({s["k_q"] for s in grid})
    Q, N = len(X_q), len(X_db)
    first = X_q @ X_db.T
    sims_db, ids_db = rerank.nearest(X_db, X_db, max(ks))
    sims_q, ids_q = rerank.nearest(X_q, X_db, max(k_qs))
    Y = np.zeros((N, len(k_qs), Q), np.float32)           # loop form: Y[:, j] = query_vector(X_q, X_db, k_qs[j])
    for j, k_q in enumerate(k_qs):
        Y[ids_q[:, :k_q], j, np.arange(Q)[:, None]] = np.maximum(sims_q[:, :k_q], 0.0) ** np.float32(rerank.GAMMA)
    Y = Y.reshape(N, len(k_qs) * Q)
    keys, blocks = [], []
    for k in ks:
        S = rerank.normalized_affinity(rerank.mutual_knn_affinity(sims_db[:, :k], ids_db[:, :k]))
        for alpha in sorted({s["alpha"] for s in grid if s["k"] == k}):
            F = rerank.diffuse(S, Y, alpha).T.reshape(len(k_qs), Q, N)        # (len(k_qs), Q, N)
            blocks += [rerank.ranked_below(F[j], first) for j in range(len(k_qs))]
            keys += [(k, k_q, alpha) for k_q in k_qs]
    return {key: float(m) for key, m in zip(keys, _maps(np.concatenate(blocks), gnd, len(keys)))}


def choose_on_training(X_train: np.ndarray, labels: np.ndarray, how: str) -> tuple[dict, list[tuple[dict, float]]]:
    """The settings of ``how`` with the best mAP on :func:`training_task` over :func:`grid_of`, and every
    ``(settings, mAP)`` tried, in the grid's order (ties go to the first, the smaller values). Each mAP
    equals :func:`task_map` of its settings (tested); the searches and solves are shared across the grid."""
    X_q, X_db, gnd = training_task(X_train, labels)
    names, grid = list(PAPER[how]), grid_of(how, len(X_db))
    as_is = task_map(X_q, X_db, gnd, None)
    if how == "diffusion":
        scores = _diffusion_grid(X_q, X_db, gnd, grid)
    else:
        scores = _expansion_grid(X_q, X_db, gnd, how, grid)
    tried = [(s, as_is if _as_is(s) else scores[tuple(s[name] for name in names)]) for s in grid]
    best = max(range(len(tried)), key=lambda i: (tried[i][1], -i))
    return tried[best][0], tried


def reciprocity(X_db: np.ndarray, max_k: int = 50, chunk: int = 1024) -> np.ndarray:
    """``rho (max_k,) float64``: ``rho[k - 1]`` is the mean share of an image's ``k`` nearest database
    neighbours that have the image among their own ``k`` nearest (its *k-reciprocal* neighbours, Qin,
    Gammeter, Bossard, Quack and Van Gool, "Hello neighbor", CVPR 2011).

    If every object has ``m + 1`` views in the database and views of one
    object are nearer to each other than to anything else, ``rho`` peaks at
    ``k = m``: there, an image's ``k`` nearest are its object's other
    views, and each has the image in its own ``k`` nearest; below ``m`` the
    views compete for too few places, above it the extra neighbours are
    other objects, which list their own views first. ``X_db (N, D)
    float32``, L2-normalised; memory ``chunk x max_k^2``.
    """
    X_db = np.asarray(X_db, np.float32)
    N, k = len(X_db), min(max_k, len(X_db) - 1)
    if k < 2:
        raise ValueError(f"{N} database vectors: too few to estimate how many views of an object there are")
    _, ids = rerank.nearest(X_db, X_db, k + 1)
    others = ids != np.arange(N)[:, None]                            # drop each vector's own entry
    ids = ids[others & (np.cumsum(others, axis=1) <= k)].reshape(N, k)     # (N, k): rank t + 1 in row i
    need = np.empty((N, k), np.int64)    # the smallest k' at which the pair (i, ids[i, t]) is k'-reciprocal
    for s in range(0, N, chunk):
        rows = np.arange(s, min(s + chunk, N))
        hit = ids[ids[rows]] == rows[:, None, None]                  # (n, k, k): is i in its neighbour's list?
        back = np.where(hit.any(axis=2), hit.argmax(axis=2) + 1, k + 1)     # i's rank in each neighbour's list
        need[rows] = np.maximum(np.arange(1, k + 1)[None], back)
    # loop form: rho[k' - 1] = mean over i of #{t : need[i, t] <= k'} / k'
    counts = np.cumsum(np.bincount(need.ravel(), minlength=k + 2))[1:k + 1]
    return counts / (N * np.arange(1, k + 1))


def views_per_image(X_db: np.ndarray, max_k: int = 50) -> int:
    """How many other views of its object a database image has, estimated from the vectors alone: the
    ``k`` at which :func:`reciprocity` peaks (the smallest, on a tie), or 0 where it has no peak below
    ``max_k`` and keeps rising, as on a database of one image per object, where every neighbour is
    another object and more of them are shared the more are counted."""
    rho = reciprocity(X_db, max_k)
    k = int(np.argmax(rho)) + 1
    return 0 if k == len(rho) else k


# The exponent and the damping used with settings read from the database: what the training splits chose for
# every re-ranking of GeM on both datasets that have one (embedded and COIL-100; see notebook 09): a weaker
# weighting and less spreading than the papers' (3 and 0.99), for databases with a few views of each object.
FROM_VIEWS = {"qe_alpha": 1.0, "alpha": 0.9}


def from_views(how: str, m: int) -> dict:
    """The settings of ``how`` for a database with ``m`` other views per image: expand with ``n = m``,
    diffuse from ``k_q = m`` neighbours on a graph of ``k = m + 1`` (each image's kNN list,
    :func:`coursekit.rerank.knn_affinity`, counts the image itself: ``m + 1`` joins it to its ``m`` other
    views); the exponent and the damping are :data:`FROM_VIEWS`. ``m = 0`` re-ranks nothing
    (``n = k_q = 0``)."""
    m = max(int(m), 0)
    size = {"n": m, "k": m + 1, "k_q": m, **FROM_VIEWS}
    return {name: size[name] for name in PAPER[how]}


def choose_from_database(X_db: np.ndarray, how: str) -> tuple[dict, int]:
    """The settings of ``how`` from the database alone: :func:`from_views` of :func:`views_per_image`;
    returns them and that number of views."""
    m = views_per_image(X_db)
    return from_views(how, m), m


def choose(how: str, X_db: np.ndarray, X_train: np.ndarray | None = None, train_labels: np.ndarray | None = None
           ) -> tuple[dict, str]:
    """The settings of re-ranking ``how`` for a database ``X_db``, and a line that says how they were chosen:
    on the training split when ``X_train`` and ``train_labels`` are given (:func:`choose_on_training`),
    else from the database (:func:`choose_from_database`). The test queries are never an argument.
    Cached on disk, keyed by the vectors, the labels, :data:`GRID` and ``how``."""
    from .cache import array_digest, cached_arrays

    on_training = X_train is not None and train_labels is not None
    key = {"method": "rerank-choice", "how": how, "grid": {k: list(v) for k, v in GRID.items()}, "from_views": FROM_VIEWS, "version": 3,
           **({"X_train": array_digest(np.asarray(X_train, np.float32)),
               "labels": array_digest(np.asarray(train_labels, np.int64))} if on_training
              else {"X_db": array_digest(np.asarray(X_db, np.float32))})}

    def compute() -> dict[str, np.ndarray]:
        if on_training:
            settings, tried = choose_on_training(X_train, train_labels, how)
            found = {"n_tried": len(tried), "best": max(score for _, score in tried),
                     "as_is": next(score for s, score in tried if _as_is(s))}
        else:
            settings, m = choose_from_database(X_db, how)
            found = {"m": m}
        return {**{f"setting_{k}": np.float64(v) for k, v in settings.items()},
                **{k: np.float64(v) for k, v in found.items()}}

    arrays, _ = cached_arrays("rerank-choice", key, compute)
    settings = {k: _as_setting(k, arrays[f"setting_{k}"]) for k in PAPER[how]}
    if on_training:
        return settings, (f"chosen on the training split: {int(arrays['n_tried'])} settings tried, "
                          f"best mAP {float(arrays['best']):.3f}, {float(arrays['as_is']):.3f} not re-ranked")
    return settings, (f"chosen from the database: {int(arrays['m'])} other views per image "
                      "(where k-reciprocal neighbours peak)")


def describe(settings: dict, chosen: str) -> str:
    """One line for the settings of a re-ranking and how they were chosen, as ``evaluate``, ``search`` and the
    explorer print it: ``"k=3 k_q=2 alpha=0.9 (chosen on the training split: ...)"``."""
    return " ".join(f"{k}={v:g}" for k, v in settings.items()) + f" ({chosen})"


def _as_setting(name: str, value) -> int | float:
    """A setting read back from the cache: the counts as ``int``, the exponents and the damping as ``float``."""
    return int(value) if name in ("n", "k", "k_q") else float(value)
