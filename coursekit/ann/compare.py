"""The same index built here and in faiss, measured in the same run: recall, train, encode and search time.

faiss (Johnson, Douze and Jegou, "Billion-scale similarity search with
GPUs", IEEE Trans. Big Data 2019; the ``faiss-cpu`` package) is the
industry's reference implementation of these methods. :func:`compare`
builds one configuration both ways on the same data, with one thread each
(``faiss.omp_set_num_threads(1)``; numpy's BLAS held to one thread by
threadpoolctl), and times the best of ``repeat`` searches.

| config | ours | faiss |
|---|---|---|
| ``exact`` | ``ExactIndex()`` | ``IndexFlatL2(d)`` |
| ``pq`` | ``PQIndex(M, nbits)`` | ``IndexPQ(d, M, nbits)`` |
| ``opq`` | ``OPQIndex(M, nbits)`` | ``IndexPreTransform(OPQMatrix(d, M), IndexPQ(d, M, nbits))`` |
| ``ivfpq`` | ``IVFPQIndex(nlist, M, nbits, nprobe)`` | ``IndexIVFPQ(IndexFlatL2(d), d, nlist, M, nbits)``, ``nprobe`` |
| ``imi`` | ``MultiIndexPQIndex(nbits_coarse, M, nbits, nprobe)`` | ``index_factory(d, "IMI2x{nbits_coarse},PQ{M}np")`` (no polysemous training), ``nprobe`` |
| ``lsh`` | ``LSHIndex(n_bits)`` (Hamming ranking) | ``IndexPreTransform(CenteringTransform(d), IndexLSH(d, n_bits, True, False))`` |
| ``lsh_rerank`` | ``LSHIndex(n_bits, n_candidates=c)`` | the same, in ``IndexRefineFlat`` with ``k_factor = c / k`` |

faiss is imported only when a comparison runs; it is not a dependency of
the course's notebooks.
"""

from __future__ import annotations

import numpy as np

from ..timing import best_of, timed
from .base import Index
from .evaluate import recall_at
from .exact import ExactIndex
from .lsh import LSHIndex
from .multi_index import MultiIndexPQIndex
from .pq import IVFPQIndex, OPQIndex, PQIndex, random_rotation

__all__ = ["CONFIGS", "ours", "theirs", "compare"]

#: Parameters of each configuration, as the benchmark and tests use them unless told otherwise.
CONFIGS = {
    "exact": {},
    "pq": {"M": 16, "nbits": 8},
    "opq": {"M": 16, "nbits": 8},
    "ivfpq": {"nlist": 1024, "M": 16, "nbits": 8, "nprobe": 16},
    "imi": {"nbits_coarse": 8, "M": 16, "nbits": 8, "nprobe": 128},
    "lsh": {"n_bits": 256},
    "lsh_rerank": {"n_bits": 128, "n_candidates": 1000},
}


def ours(config: str, seed: int = 0, **params) -> Index:
    """Our index for ``config`` (a key of :data:`CONFIGS`) with ``params`` overriding the defaults."""
    p = {**CONFIGS[config], **params}
    if config == "exact":
        return ExactIndex()
    if config == "pq":
        return PQIndex(p["M"], p["nbits"], seed=seed)
    if config == "opq":
        return OPQIndex(p["M"], p["nbits"], seed=seed, **{k: p[k] for k in ("n_opq_iter", "init") if k in p})
    if config == "ivfpq":
        return IVFPQIndex(p["nlist"], p["M"], p["nbits"], p["nprobe"], seed=seed)
    if config == "imi":
        return MultiIndexPQIndex(p["nbits_coarse"], p["M"], p["nbits"], p["nprobe"], seed=seed)
    if config == "lsh":
        return LSHIndex(p["n_bits"], seed=seed)
    if config == "lsh_rerank":
        return LSHIndex(p["n_bits"], n_candidates=p["n_candidates"], seed=seed)
    raise ValueError(f"unknown config {config!r}; choose among {sorted(CONFIGS)}")


def theirs(config: str, d: int, k: int = 100, seed: int | None = None, **params):
    """faiss's index for ``config`` in dimension ``d`` (``k``: the search's k, for ``lsh_rerank``).

    ``seed``: the seed of faiss's random start, ``None`` for faiss's own:
    for LSH, its rotation (``IndexLSH.rrot.init(seed)``); for OPQ, the
    initial rotation, then our :func:`~coursekit.ann.pq.random_rotation`
    (the same start as ``OPQIndex(seed=seed)``).
    """
    import faiss

    p = {**CONFIGS[config], **params}
    if config == "exact":
        return faiss.IndexFlatL2(d)
    if config == "pq":
        return faiss.IndexPQ(d, p["M"], p["nbits"])
    if config == "opq":
        opq = faiss.OPQMatrix(d, p["M"])
        opq.niter = p.get("n_opq_iter", opq.niter)
        if seed is not None:                   # start from our random rotation (faiss applies x -> A x: A = R^T)
            faiss.copy_array_to_vector(np.ascontiguousarray(random_rotation(d, seed).T).ravel(), opq.A)
        return faiss.IndexPreTransform(opq, faiss.IndexPQ(d, p["M"], p["nbits"]))
    if config == "ivfpq":
        quantizer = faiss.IndexFlatL2(d)
        index = faiss.IndexIVFPQ(quantizer, d, p["nlist"], p["M"], p["nbits"])
        index.nprobe = p["nprobe"]
        return index
    if config == "imi":
        index = faiss.index_factory(d, f"IMI2x{p['nbits_coarse']},PQ{p['M']}np")   # np: no polysemous training
        faiss.extract_index_ivf(index).nprobe = p["nprobe"]
        return index
    if config in ("lsh", "lsh_rerank"):
        lsh = faiss.IndexLSH(d, p["n_bits"], True, False)
        if seed is not None:
            lsh.rrot.init(seed)
        index = faiss.IndexPreTransform(faiss.CenteringTransform(d), lsh)
        if config == "lsh":
            return index
        refine = faiss.IndexRefineFlat(index)
        refine.k_factor = p["n_candidates"] / k
        return refine
    raise ValueError(f"unknown config {config!r}; choose among {sorted(CONFIGS)}")


def compare(config: str, X_train: np.ndarray, X_db: np.ndarray, X_q: np.ndarray, gt: np.ndarray,
            k: int = 100, ranks=(1, 10, 100), repeat: int = 3, seed: int = 0, faiss_seed: int | None = None,
            **params) -> dict:
    """Build ``config`` ours and faiss's on the same data, one thread each; measure both.

    ``seed`` seeds our index; ``faiss_seed`` faiss's random start (see :func:`theirs`).

    Returns ``{"ours": {...}, "faiss": {...}}``, each with ``recall@R`` for
    ``R`` in ``ranks``, ``train_s``, ``add_s`` (encoding the database),
    ``search_s`` (best of ``repeat``) and ``bytes_per_vector``.
    """
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(1)
    X_train, X_db, X_q = (np.ascontiguousarray(a, dtype=np.float32) for a in (X_train, X_db, X_q))
    out = {}
    with threadpool_limits(1):
        for who in ("ours", "faiss"):
            if who == "ours":
                index = ours(config, seed, **params)
            else:
                index = theirs(config, X_db.shape[1], k, faiss_seed, **params)
            t_train, _ = timed(lambda: index.train(X_train))
            t_add, _ = timed(lambda: index.add(X_db))
            t_search, (_, I) = best_of(lambda: index.search(X_q, k), repeat)
            row = {f"recall@{r}": v for r, v in recall_at(I, gt, ranks).items()}
            row.update(train_s=t_train, add_s=t_add, search_s=t_search,
                       bytes_per_vector=index.memory_per_vector if who == "ours" else _faiss_bytes(config, index))
            out[who] = row
    return out


def _faiss_bytes(config: str, index) -> float:
    """faiss's memory per vector: its code size, plus an int64 id in inverted lists, plus raw vectors to refine."""
    import faiss

    if config == "exact":
        return 4.0 * index.d
    if config in ("ivfpq", "imi"):
        return faiss.extract_index_ivf(index).code_size + 8.0
    if config == "lsh_rerank":
        lsh = faiss.downcast_index(faiss.downcast_index(index.base_index).index)
        return float(lsh.code_size) + 4.0 * index.d
    if config == "lsh":
        return float(faiss.downcast_index(index.index).code_size)
    if config == "opq":
        return float(faiss.downcast_index(index.index).code_size)
    return float(index.code_size)
