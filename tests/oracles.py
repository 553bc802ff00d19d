"""Independent, straightforward transcriptions used as test oracles.

These are deliberately loop-by-loop copies of published reference code, kept
apart from the package so that a test compares two independent programs.
"""

import numpy as np


def revisited_compute_ap(ranks, nres):
    """Transcription of ``compute_ap`` from the revisited Oxford/Paris code
    (Radenovic et al., CVPR 2018), itself Oxford's ``compute_ap.cpp``:
    trapezoids of the precision-recall plot. ``ranks``: 0-based positions of
    the positives with junk removed, ascending."""
    nimgranks = len(ranks)
    ap = 0.0
    recall_step = 1.0 / nres
    for j in np.arange(nimgranks):
        rank = ranks[j]
        if rank == 0:
            precision_0 = 1.0
        else:
            precision_0 = float(j) / rank
        precision_1 = float(j + 1) / (rank + 1)
        ap += (precision_0 + precision_1) * recall_step / 2.0
    return ap


def revisited_compute_map(ranks, gnd, kappas=()):
    """Transcription of ``compute_map`` from the revisited Oxford/Paris code.

    ``ranks`` is ``(n_db, n_queries)`` as in the original (columns are
    queries); ``gnd`` a list of dicts with ``ok`` (positives) and ``junk``.
    Returns ``(map, aps, pr, prs)``.
    """
    map_ = 0.0
    nq = len(gnd)
    aps = np.zeros(nq)
    pr = np.zeros(len(kappas))
    prs = np.zeros((nq, len(kappas)))
    nempty = 0
    for i in np.arange(nq):
        qgnd = np.array(gnd[i]["ok"])
        if qgnd.shape[0] == 0:
            aps[i] = float("nan")
            prs[i, :] = float("nan")
            nempty += 1
            continue
        try:
            qgndj = np.array(gnd[i]["junk"])
        except KeyError:
            qgndj = np.empty(0)
        pos = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgnd)]
        junk = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgndj)]
        k = 0
        ij = 0
        if len(junk):
            ip = 0
            while ip < len(pos):
                while ij < len(junk) and pos[ip] > junk[ij]:
                    k += 1
                    ij += 1
                pos[ip] = pos[ip] - k
                ip += 1
        ap = revisited_compute_ap(pos, len(qgnd))
        map_ = map_ + ap
        aps[i] = ap
        pos += 1
        for j in np.arange(len(kappas)):
            kq = min(max(pos), kappas[j])
            prs[i, j] = (pos <= kq).sum() / kq
        pr = pr + prs[i, :]
    map_ = map_ / (nq - nempty)
    pr = pr / (nq - nempty)
    return map_, aps, pr, prs


def random_benchmark(n_queries, n_db, rng, max_pos=20, max_junk=10, empty_every=0):
    """Random rankings ``(Q, N)`` and ground truth with disjoint positives and junk."""
    from coursekit.datasets import GroundTruth

    ranks = np.argsort(rng.random((n_queries, n_db)), axis=1)
    gnd, dicts = [], []
    for q in range(n_queries):
        n_pos = 0 if (empty_every and q % empty_every == 0) else int(rng.integers(1, max_pos + 1))
        n_junk = int(rng.integers(0, max_junk + 1))
        chosen = rng.choice(n_db, n_pos + n_junk, replace=False)
        pos, junk = np.sort(chosen[:n_pos]), np.sort(chosen[n_pos:])
        gnd.append(GroundTruth(pos, np.zeros(0, np.int64), junk))
        dicts.append({"ok": pos, "junk": junk})
    return ranks, gnd, dicts
