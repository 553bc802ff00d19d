"""How retrieval is measured: precision, recall, AP, mAP with junk, N-S score.

Everything starts from a *ranking*: for each query, the database indices
best first, ``ranks (Q, N) int64`` (row ``q`` is a permutation of
``range(N)``, or its first ``k`` entries for a truncated ranking). Turning
similarities into a ranking is :func:`ranks_from_similarities`.

Average precision has three definitions in the literature, and they give
different numbers on the same ranking. For the ranked list
``T T F T F F T F T T F F`` with 6 relevant items:

===============  ======================================================  ======
``kind``         definition                                              AP
===============  ======================================================  ======
``plain``        mean, over all relevant items, of the precision at       0.7462
                 the rank of each one (an unretrieved one counts 0)
``interpolated`` area under the PR curve with precision filled in         0.7583
                 from the right (max precision at any higher recall)
``trapezoid``    trapezoids between precisions just before and at each    0.7249
                 relevant rank: Oxford's ``compute_ap`` (Philbin et al.,
                 CVPR 2007), kept by revisited Oxford (Radenovic et al.,
                 CVPR 2018)
===============  ======================================================  ======

Junk images (Philbin et al. 2007) are neither right nor wrong: they are
removed from the ranking before AP is computed, so the images behind them
move up. Queries without positives are left out of the mean.

The revisited Oxford and Paris protocols (Radenovic, Iscen, Tolias, Avrithis
and Chum, CVPR 2018) split positives into easy and hard:

- Easy: positives = easy; hard images are junk.
- Medium: positives = easy + hard.
- Hard: positives = hard; easy images are junk.

All matrix functions are vectorised over queries and process them in chunks
so that 5,000 queries x 10,000 images fit in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .datasets.base import Dataset, GroundTruth

__all__ = [
    "AP_KINDS", "average_precision", "precision_at_k", "recall_at_k", "pr_curve",
    "ranks_from_similarities", "relevance_matrix", "average_precisions", "mean_average_precision",
    "protocol_gnd", "revisited_map", "mean_precision_at_k", "ns_score", "evaluate",
]

AP_KINDS = ("plain", "interpolated", "trapezoid")
_CHUNK = 256  # queries per block in the matrix functions


# --------------------------------------------------------------------------
# One ranked list
# --------------------------------------------------------------------------

def _as_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D ranked list, got shape {labels.shape}")
    if labels.dtype != bool:
        if not np.isin(labels, (0, 1)).all():
            raise ValueError("labels must be booleans (True = relevant) or 0/1")
        labels = labels.astype(bool)
    return labels


def precision_at_k(labels, k: int) -> float:
    """Fraction of the top ``k`` that is relevant.

    ``labels``: ``(N,) bool``, the ranked list (True = relevant). When
    ``k > N`` the missing ranks count as not relevant.
    """
    labels = _as_labels(labels)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return float(labels[:k].sum() / k)


def recall_at_k(labels, k: int, n_relevant: int | None = None) -> float:
    """Fraction of all relevant items found in the top ``k``.

    ``n_relevant`` is the number of relevant items in the whole database
    (default: those in ``labels``).
    """
    labels = _as_labels(labels)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n = int(labels.sum()) if n_relevant is None else int(n_relevant)
    if n <= 0:
        raise ValueError("recall is undefined without relevant items (n_relevant = 0)")
    return float(labels[:k].sum() / n)


def pr_curve(labels, n_relevant: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after each rank: two ``(N,) float64`` arrays.

    Returns ``(recall, precision)``, ready for ``plt.plot(recall, precision)``.
    """
    labels = _as_labels(labels)
    n = int(labels.sum()) if n_relevant is None else int(n_relevant)
    if n <= 0:
        raise ValueError("a precision-recall curve needs at least one relevant item")
    hits = np.cumsum(labels)
    precision = hits / np.arange(1, labels.size + 1)
    return hits / n, precision


def average_precision(labels, n_relevant: int | None = None, kind: str = "plain") -> float:
    """Average precision of one ranked list.

    ``labels``: ``(N,) bool``, True where the item at that rank is relevant.
    ``n_relevant``: relevant items in the whole database (default:
    ``labels.sum()``); relevant items missing from ``labels`` count as never
    retrieved. ``kind``: ``"plain"``, ``"interpolated"`` or ``"trapezoid"``
    (see the module docstring).

    >>> round(average_precision([1,1,0,1,0,0,1,0,1,1,0,0], 6), 4)
    0.7462
    """
    labels = _as_labels(labels)
    n = int(labels.sum()) if n_relevant is None else int(n_relevant)
    if n <= 0:
        raise ValueError("average precision is undefined without relevant items (n_relevant = 0)")
    if labels.sum() > n:
        raise ValueError(f"labels hold {int(labels.sum())} relevant items but n_relevant is {n}")
    r = np.flatnonzero(labels)
    hits = _Hits(np.zeros(r.size, np.int64), np.arange(r.size), r, 1)
    return float(_ap_from_hits(hits, np.array([n]), kind)[0])


@dataclass
class _Hits:
    """The retrieved positives of ``n_rows`` ranked lists, one entry each:
    ``row``, ``j`` (0-based count of positives before it in its row) and ``r``
    (0-based rank with junk removed), sorted by row then rank."""

    row: np.ndarray
    j: np.ndarray
    r: np.ndarray
    n_rows: int


def _ap_from_hits(hits: _Hits, n_pos: np.ndarray, kind: str) -> np.ndarray:
    """AP of every row, ``(n_rows,) float64``. Precision at the ``j``-th
    positive, found at rank ``r``, is ``(j + 1) / (r + 1)``."""
    if kind not in AP_KINDS:
        raise ValueError(f"kind must be one of {AP_KINDS}, got {kind!r}")
    precision = (hits.j + 1) / (hits.r + 1)
    if kind == "plain":
        per_hit = precision
    elif kind == "trapezoid":  # Oxford's compute_ap: mean of precision just before and at the hit
        before = np.where(hits.r > 0, hits.j / np.maximum(hits.r, 1), 1.0)
        per_hit = (before + precision) / 2
    else:  # interpolated: the best precision at this recall or higher, filled in from the right
        table = np.zeros((hits.n_rows, int(hits.j.max(initial=-1)) + 1))
        table[hits.row, hits.j] = precision
        filled = np.maximum.accumulate(table[:, ::-1], axis=1)[:, ::-1]
        per_hit = filled[hits.row, hits.j]
    return np.bincount(hits.row, weights=per_hit, minlength=hits.n_rows) / n_pos


# --------------------------------------------------------------------------
# Many queries
# --------------------------------------------------------------------------

def ranks_from_similarities(sims: np.ndarray, k: int | None = None) -> np.ndarray:
    """Rank the database for each query, most similar first.

    ``sims (Q, N)`` float -> ``ranks (Q, N) int64`` (or ``(Q, k)`` with ``k``).
    Ties keep database order (a stable sort), so results are reproducible.
    """
    sims = np.asarray(sims)
    if sims.ndim != 2:
        raise ValueError(f"sims must be (n_queries, n_db), got shape {sims.shape}")
    if np.isnan(sims).any():
        raise ValueError("sims contains NaN: check the descriptors (a zero vector normalised?)")
    if k is None or k >= sims.shape[1]:
        return np.argsort(-sims, axis=1, kind="stable").astype(np.int64)
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1).astype(np.int64)


def _check_ranks(ranks, n_queries: int) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.ndim != 2 or ranks.shape[0] != n_queries:
        raise ValueError(f"ranks must be (n_queries={n_queries}, N), got shape {ranks.shape}")
    if not np.issubdtype(ranks.dtype, np.integer):
        raise ValueError(f"ranks must hold integer database indices, got dtype {ranks.dtype}")
    return ranks


def _n_db(ranks: np.ndarray, gnd: Sequence[GroundTruth]) -> int:
    """The smallest database size that every index in ``ranks`` and ``gnd`` fits."""
    biggest = [int(ranks.max(initial=-1))]
    biggest += [int(a.max()) for g in gnd for a in (g.easy, g.hard, g.junk) if a.size]
    return max(biggest) + 1


def relevance_matrix(index_lists: Sequence[np.ndarray], n_db: int) -> np.ndarray:
    """``(Q, n_db) bool``, True at ``[q, i]`` for every ``i`` in ``index_lists[q]``."""
    index_lists = [np.asarray(a, dtype=np.int64).reshape(-1) for a in index_lists]
    out = np.zeros((len(index_lists), n_db), dtype=bool)
    lengths = [a.size for a in index_lists]
    if sum(lengths):
        rows = np.repeat(np.arange(len(index_lists)), lengths)
        out[rows, np.concatenate(index_lists)] = True
    return out


def _hits_in_block(ranks: np.ndarray, gnd: Sequence[GroundTruth], n_db: int) -> tuple[_Hits, np.ndarray]:
    """Retrieved positives of a block of queries, junk removed, and ``n_pos (B,)``.

    One pass over the ``(B, N)`` ranking: a code per database image
    (1 positive, 2 junk) is gathered in ranked order, and everything after
    works on the few flagged entries only.
    """
    pos = relevance_matrix([g.positives for g in gnd], n_db)
    junk = relevance_matrix([g.junk for g in gnd], n_db) & ~pos
    code = pos.view(np.int8) + 2 * junk.view(np.int8)            # (B, n_db)
    ranked = code.ravel()[ranks + n_db * np.arange(len(gnd))[:, None]]  # (B, N) in ranked order
    flat = np.flatnonzero(ranked != 0)                            # sorted by row, then rank
    row, col = np.divmod(flat, ranks.shape[1])
    is_junk = ranked.ravel()[flat] == 2
    before = np.cumsum(is_junk) - is_junk                         # junk strictly before, counted over all rows
    junk_before = before - before[np.searchsorted(row, row)]      # ... and within the entry's own row
    keep = ~is_junk
    row, col, junk_before = row[keep], col[keep], junk_before[keep]
    j = np.arange(row.size) - np.searchsorted(row, row)           # index among the row's positives
    return _Hits(row, j, col - junk_before, len(gnd)), pos.sum(axis=1)


def average_precisions(ranks, gnd: Sequence[GroundTruth], kind: str = "plain") -> np.ndarray:
    """AP of every query, junk removed: ``(Q,) float64``, NaN for a query
    without positives.

    ``ranks (Q, N) int``: database indices, best first. ``gnd``: one
    :class:`~coursekit.datasets.GroundTruth` per query; positives are
    ``easy`` and ``hard``; ``junk`` is removed from the ranking.
    """
    ranks = _check_ranks(ranks, len(gnd))
    n_db = _n_db(ranks, gnd)
    out = np.full(len(gnd), np.nan)
    for start in range(0, len(gnd), _CHUNK):
        stop = min(start + _CHUNK, len(gnd))
        hits, n_pos = _hits_in_block(ranks[start:stop], gnd[start:stop], n_db)
        with np.errstate(invalid="ignore", divide="ignore"):
            aps = _ap_from_hits(hits, n_pos, kind)
        out[start:stop] = np.where(n_pos > 0, aps, np.nan)
    return out


def mean_average_precision(ranks, gnd: Sequence[GroundTruth], kind: str = "plain") -> float:
    """mAP over the queries that have positives, junk removed from the ranking."""
    aps = average_precisions(ranks, gnd, kind)
    if np.isnan(aps).all():
        raise ValueError("no query has a positive: mAP is undefined")
    return float(np.nanmean(aps))


def protocol_gnd(gnd: Sequence[GroundTruth], protocol: str) -> list[GroundTruth]:
    """Ground truth for a revisited protocol: ``"easy"``, ``"medium"`` or ``"hard"``.

    Easy: positives easy, junk + hard. Medium: positives easy + hard.
    Hard: positives hard, junk + easy (Radenovic et al., CVPR 2018).
    """
    empty = np.zeros(0, np.int64)
    if protocol == "easy":
        return [GroundTruth(g.easy, empty, np.concatenate([g.junk, g.hard])) for g in gnd]
    if protocol == "medium":
        return list(gnd)
    if protocol == "hard":
        return [GroundTruth(g.hard, empty, np.concatenate([g.junk, g.easy])) for g in gnd]
    raise ValueError(f"protocol must be 'easy', 'medium' or 'hard', got {protocol!r}")


def revisited_map(ranks, gnd: Sequence[GroundTruth], kind: str = "trapezoid") -> dict[str, float]:
    """mAP under the Easy, Medium and Hard protocols, as
    ``{"easy": ., "medium": ., "hard": .}``. The default ``kind`` is the
    trapezoid AP that the revisited benchmark's code computes.
    """
    return {p: mean_average_precision(ranks, protocol_gnd(gnd, p), kind) for p in ("easy", "medium", "hard")}


def mean_precision_at_k(ranks, gnd: Sequence[GroundTruth], k: int = 10) -> float:
    """mP@k as the revisited Oxford code computes it, junk removed.

    For each query with positives, precision at ``k' = min(k, rank of the
    last positive)``: a query with only 2 positives, both at the top, scores
    1.0 rather than 0.2. This keeps mP@10 meaningful on datasets with few
    positives per query (SMVS has one). Queries without positives are left out.
    """
    ranks = _check_ranks(ranks, len(gnd))
    n_db = _n_db(ranks, gnd)
    values = []
    for start in range(0, len(gnd), _CHUNK):
        stop = min(start + _CHUNK, len(gnd))
        hits, n_pos = _hits_in_block(ranks[start:stop], gnd[start:stop], n_db)
        last = np.zeros(hits.n_rows, np.int64)                    # 1-based rank of the last positive
        np.maximum.at(last, hits.row, hits.r + 1)
        kq = np.minimum(k, np.maximum(last, 1))
        found = np.bincount(hits.row, weights=(hits.r + 1) <= kq[hits.row], minlength=hits.n_rows)
        values.append((found / kq)[n_pos > 0])
    values = np.concatenate(values)
    if values.size == 0:
        raise ValueError("no query has a positive: mP@k is undefined")
    return float(values.mean())


def ns_score(ranks, db_labels, query_labels, group_size: int = 4) -> float:
    """UKBench N-S score (Nister and Stewenius, CVPR 2006): the mean number of
    images of the query's group among the top ``group_size``, between 0 and
    ``group_size``. The query itself is in the database and counts, as in the
    original benchmark.

    ``ranks (Q, >= group_size) int``, ``db_labels (N,)``, ``query_labels (Q,)``.
    """
    ranks = _check_ranks(ranks, len(query_labels))
    if ranks.shape[1] < group_size:
        raise ValueError(f"ranks must hold at least the top {group_size} for the N-S score")
    top = np.asarray(db_labels)[ranks[:, :group_size]]
    return float((top == np.asarray(query_labels)[:, None]).sum(axis=1).mean())


def evaluate(ranks, dataset: Dataset) -> dict[str, float]:
    """Every measure the dataset supports, as a flat dict.

    ``map``: mAP with junk removed, with the trapezoid AP of the Oxford and
    revisited Oxford code, so that numbers compare with published ones (on
    revisited data this is the Medium protocol). ``map_easy``,
    ``map_medium``, ``map_hard`` on revisited data; ``mp@10``
    (:func:`mean_precision_at_k`); ``ns_score`` for UKBench-style groups.
    """
    out = {"map": mean_average_precision(ranks, dataset.gnd, kind="trapezoid")}
    if dataset.protocol == "revisited":
        for p in ("easy", "medium", "hard"):
            g = protocol_gnd(dataset.gnd, p)
            has_pos = any(x.positives.size for x in g)
            out[f"map_{p}"] = mean_average_precision(ranks, g, kind="trapezoid") if has_pos else float("nan")
    out["mp@10"] = mean_precision_at_k(ranks, dataset.gnd, 10)
    if dataset.ns_group_size:
        out["ns_score"] = ns_score(ranks, dataset.db_labels, dataset.query_labels, dataset.ns_group_size)
    return out
