"""Choosing the training examples: hard negatives, random negatives, matching pairs.

A non-matching pair that the current descriptor already puts far apart
costs nothing in the contrastive or triplet loss (:mod:`coursekit.learning.losses`)
and teaches nothing. Hard-negative mining looks, for each training query,
for the pool images of *other* objects that the current descriptor finds
most similar to it, and trains on those; it is redone every epoch, since
the descriptor changes (Radenovic, Tolias and Chum, "CNN image retrieval
learns from BoW", ECCV 2016, and "Fine-tuning CNN image retrieval with no
human annotation", TPAMI 2018). Their code takes at most one negative per
3D model (cluster of images of one object), so that a single look-alike
object, photographed many times, does not fill every negative slot of a
query; :func:`hard_negatives` does the same per label.

Everything takes numpy arrays (or torch tensors, which are detached and
copied to the CPU) and returns numpy ``int64`` indices. Labels are any
hashable values numpy can sort (integers, strings), one per image.
"""

from __future__ import annotations

import numpy as np

__all__ = ["hard_negatives", "random_negatives", "positive_pairs"]

_CHUNK = 1 << 21  # similarities sorted at once (queries x pool items): bounds the memory to some 50 MB


def _numpy(x, dtype=None) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _codes(*labels) -> list[np.ndarray]:
    """Integer codes for one or more label arrays, the same code for the same label in all of them."""
    arrays = [_numpy(lab) for lab in labels]
    if any(a.ndim != 1 for a in arrays):
        raise ValueError(f"labels must be 1-D, one per image; got shapes {[a.shape for a in arrays]}")
    _, codes = np.unique(np.concatenate(arrays), return_inverse=True)
    return np.split(codes.reshape(-1), np.cumsum([len(a) for a in arrays])[:-1])


def _enough(ql: np.ndarray, pl: np.ndarray, n: int, one_per_label: bool) -> None:
    """Raise unless every query (label codes ``ql``) has at least ``n`` candidate negatives in a pool labelled ``pl``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    per_label = np.bincount(pl, minlength=int(max(ql.max(initial=-1), pl.max(initial=-1))) + 1)
    if one_per_label:
        count = (per_label > 0).sum() - (per_label[ql] > 0)
    else:
        count = len(pl) - per_label[ql]
    if len(count) and count.min() < n:
        i = int(np.argmin(count))
        what = "labels other than its own in the pool (one negative per label)" if one_per_label \
            else "pool items with a label other than its own"
        advice = "lower n, use a larger pool" + (", or set one_per_label=False" if one_per_label else "")
        raise ValueError(f"query {i} has {int(count[i])} candidate negatives ({what}), but n={n} were asked "
                         f"({int((count < n).sum())} of {len(count)} queries have fewer than {n}): {advice}")


def hard_negatives(q, pool, q_labels, pool_labels, n: int = 5, one_per_label: bool = True) -> np.ndarray:
    """For each query, the ``n`` pool items most similar to it among those of other labels: ``(Q, n) int64``.

    ``q (Q, D)`` and ``pool (P, D)`` float, L2-normalised (similarity is the
    dot product); ``q_labels (Q,)`` and ``pool_labels (P,)``. Row ``i``
    lists indices into ``pool``, most similar first, of items whose label
    differs from ``q_labels[i]`` (a query that is itself in the pool is
    never its own negative). With ``one_per_label`` (the default, as in
    Radenovic, Tolias and Chum, TPAMI 2018), only the most similar item of
    each label is a candidate, so the ``n`` negatives have ``n`` different
    labels. Equal similarities are ordered by pool index.

    Raises a ValueError when a query has fewer than ``n`` candidates
    (fewer than ``n`` other labels in the pool with ``one_per_label``).
    """
    Q, P = _numpy(q, np.float32), _numpy(pool, np.float32)
    if Q.ndim != 2 or P.ndim != 2 or Q.shape[1] != P.shape[1]:
        raise ValueError(f"q must be (Q, D) and pool (P, D) with the same D; got shapes {Q.shape} and {P.shape}")
    ql, pl = _codes(q_labels, pool_labels)
    if len(ql) != len(Q) or len(pl) != len(P):
        raise ValueError(f"one label per vector: q {Q.shape} has {len(ql)} labels, pool {P.shape} has {len(pl)}")
    _enough(ql, pl, n, one_per_label)
    out = np.empty((len(Q), n), dtype=np.int64)
    step = max(1, _CHUNK // max(1, len(P)))
    for s in range(0, len(Q), step):  # chunks of queries, to bound the memory
        order = np.argsort(-(Q[s:s + step] @ P.T), axis=1, kind="stable")   # pool items, most similar first
        lab = pl[order]                                                     # their labels, in that order
        valid = lab != ql[s:s + step, None]
        if one_per_label:
            # group each ranking by label (stable: rank order within a group) and keep each group's first item
            by_label = np.argsort(lab, axis=1, kind="stable")
            grouped = np.take_along_axis(lab, by_label, axis=1)
            first = np.ones(grouped.shape, dtype=bool)
            first[:, 1:] = grouped[:, 1:] != grouped[:, :-1]
            keep = np.empty_like(first)
            np.put_along_axis(keep, by_label, first, axis=1)
            valid &= keep
        firsts = np.argsort(~valid, axis=1, kind="stable")[:, :n]          # positions of the first n candidates
        out[s:s + step] = np.take_along_axis(order, firsts, axis=1)
    return out


def random_negatives(q_labels, pool_labels, n: int, seed) -> np.ndarray:
    """``n`` distinct pool items of other labels per query, drawn uniformly at random: ``(Q, n) int64``.

    The baseline for :func:`hard_negatives` (same shape, no vectors needed).
    ``seed`` (an int or a ``numpy.random.Generator``) makes the draw
    repeatable. Raises a ValueError when a query has fewer than ``n``
    pool items of other labels.
    """
    ql, pl = _codes(q_labels, pool_labels)
    _enough(ql, pl, n, one_per_label=False)
    rng = np.random.default_rng(seed)
    keys = rng.random((len(ql), len(pl)))
    keys[pl[None, :] == ql[:, None]] = np.inf
    pick = np.argpartition(keys, n - 1, axis=1)[:, :n]                          # the n smallest keys, unordered
    pick = np.take_along_axis(pick, np.argsort(np.take_along_axis(keys, pick, axis=1), axis=1), axis=1)
    return pick.astype(np.int64)


def positive_pairs(labels, seed, per_image: int = 1) -> np.ndarray:
    """Matching pairs from labels: ``(M, 2) int64`` rows ``(i, j)``, ``i != j``, same label.

    For each image ``i`` (in increasing order) that shares its label with
    at least one other image, ``min(per_image, g - 1)`` distinct partners
    ``j`` drawn uniformly among the ``g - 1`` others of its label. An
    image alone with its label gets none. ``seed`` (an int or a
    ``numpy.random.Generator``) makes the draw repeatable.
    """
    (lab,) = _codes(labels)
    if per_image < 1:
        raise ValueError(f"per_image must be >= 1, got {per_image}")
    rng = np.random.default_rng(seed)
    order = np.argsort(lab, kind="stable")              # images grouped by label
    grouped = lab[order]
    start = np.searchsorted(grouped, grouped, side="left")
    g = np.searchsorted(grouped, grouped, side="right") - start   # size of each image's group
    if len(lab) == 0 or g.max() < 2:
        return np.empty((0, 2), dtype=np.int64)
    # partner = the image `offset` places further round the group, offset in 1..g-1, distinct offsets
    keys = rng.random((len(lab), int(g.max()) - 1))
    keys[np.arange(keys.shape[1])[None, :] >= (g - 1)[:, None]] = np.inf
    k = min(per_image, keys.shape[1])
    offsets = np.argsort(keys, axis=1, kind="stable")[:, :k] + 1              # (N, k)
    take = np.arange(k)[None, :] < np.minimum(per_image, g - 1)[:, None]
    pos = np.arange(len(lab))[:, None] - start[:, None]                      # position within the group
    partner = order[start[:, None] + (pos + offsets) % g[:, None]]
    first = np.broadcast_to(order[:, None], partner.shape)
    pairs = np.stack([first[take], partner[take]], axis=1)
    return pairs[np.argsort(pairs[:, 0], kind="stable")].astype(np.int64)
