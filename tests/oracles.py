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


def iscen_diffusion(X_db, X_q, k=50, kq=10, gamma=3, alpha=0.99, tol=1e-6, it=20):
    """Transcription of Iscen et al.'s diffusion code (``run_test.m``, global descriptors, no truncation;
    CVPR 2017, github.com/ahmetius/diffusion-retrieval), one MATLAB function at a time. ``X_db (N, D)``,
    ``X_q (Q, D)``, rows L2-normalised. Returns the scores ``(Q, N)``, float64.

    Loops where the MATLAB loops; ``pcg`` is SciPy's ``cg`` with the same
    relative tolerance and iteration limit.
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import cg

    N = len(X_db)

    def knn_wrap(V, qv, k):                      # k nearest by dot product, as (k, n) lists, full sort
        s_all = qv @ V.T
        order = np.argsort(-s_all, axis=1, kind="stable")[:, :k]
        return order.T, np.take_along_axis(s_all, order, axis=1).T

    def knngraph(knn, sim):                      # mutual kNN graph, diagonal to 0
        n = knn.shape[1]
        sim = np.where(sim < 0, 0, sim)
        I, J, W = [], [], []
        for i in range(n):
            mem = np.array([np.isin(i, knn[:, j]) for j in knn[:, i]])   # is i among the neighbours of j?
            for pos in np.flatnonzero(mem):
                I.append(i)
                J.append(knn[pos, i])
                W.append(sim[pos, i])
        A = sp.csr_matrix((np.array(W, float), (I, J)), shape=(n, n)).tolil()
        A.setdiag(0)
        return A.tocsr()

    def transition_matrix(W):
        D = np.asarray(W.sum(axis=1)).ravel() ** -0.5
        D = sp.diags(D)
        return D @ W @ D

    def ymake(v, qv, k, gamma):
        knn, s = knn_wrap(v, qv[None, :], k)
        y = np.zeros(len(v))
        y[knn[:, 0]] = np.maximum(s[:, 0] ** gamma, 0)
        return y

    knn_, s_ = knn_wrap(X_db, X_db, k)
    A_ = knngraph(knn_, s_ ** gamma)
    with np.errstate(divide="ignore"):
        S = transition_matrix(A_)
    A = sp.eye(N) - alpha * S
    scores = np.zeros((len(X_q), N))
    for q in range(len(X_q)):
        y = ymake(X_db, X_q[q], kq, gamma)
        f, _ = cg(A, y, rtol=tol, maxiter=it)
        scores[q] = f
    return scores
