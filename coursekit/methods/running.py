"""Running a method by name and measuring it: whitening (notebook 05), re-ranking (notebook 09), indexes
(notebook 06) and :func:`evaluate_method`, what ``python -m coursekit evaluate`` and the course report call."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import numpy as np

from ..datasets import Dataset
from ..evaluation import evaluate, ranks_from_similarities
from ..rerank_choice import PAPER, describe
from ..timing import timed
from ..whitening import fit_pca_whitening, fit_shrunk_whitening
from .features import Retrieval
from .table import GLOBAL_METHODS, METHODS, TABLE

__all__ = ["whitened", "whitening_vectors", "RERANKINGS", "reranked", "rerank_settings", "run_method", "index_ranks", "neighbour_recall", "evaluate_method"]


def whitened(result: Retrieval, d: int | None = None, eps: float = 1e-3, X_learn: np.ndarray | None = None
             ) -> Retrieval:
    """``result`` with its global vectors whitened, learned on ``result.X_train`` (or on ``X_learn (T, D)``:
    another dataset's vectors, :func:`run_method`'s ``whiten_on``), and L2-normalised.

    Learned on the training split, never on the database or the queries.
    With ``d``: PCA-whitening to ``d`` dimensions (Jegou and Chum, ECCV
    2012; :func:`coursekit.whitening.fit_pca_whitening`). Without: every
    dimension kept, whitened by the training covariance shrunk towards the
    identity (:func:`coursekit.whitening.fit_shrunk_whitening`), which on
    small training splits does better (notebook 05 measures both on VLAD).
    """
    if result.X_db is None:
        raise ValueError("this method has no global vectors to whiten; methods that have: "
                         + ", ".join(GLOBAL_METHODS))
    learn = result.X_train if X_learn is None else np.asarray(X_learn, np.float32)
    if learn is None:
        raise ValueError("whitening is learned on the training split: call the method with with_train=True, on a "
                         "dataset that has one (this one has no training images), or learn it on another dataset")
    if learn.shape[1] != result.X_db.shape[1]:
        raise ValueError(f"the whitening's vectors have {learn.shape[1]} dimensions and the method's "
                         f"{result.X_db.shape[1]}: learn it on vectors of the same method and network")
    W = fit_shrunk_whitening(learn, eps) if d is None else fit_pca_whitening(learn, d, eps)
    X_db, X_q = W.apply(result.X_db), W.apply(result.X_q)
    return Retrieval(X_q @ X_db.T, X_db, X_q, cached_seconds=result.cached_seconds,
                     X_train=None if result.X_train is None else W.apply(result.X_train))


def whitening_vectors(name: str, source: Dataset, progress: bool = True, **params) -> np.ndarray:
    """The vectors of method ``name`` that a whitening learned on ``source`` is fitted to: its training split's
    where it has one, else its database's (as Gordo et al., IJCV 2017, learn "PCA Paris" on the Paris images
    for Oxford). ``(T, D) float32``; computed once and cached, as every feature, under ``source``."""
    result = run_method(name, source, progress, with_train=bool(source.train), **params)
    return result.X_train if result.X_train is not None else result.X_db


RERANKINGS = tuple(PAPER)     # aqe, alpha_qe, aqe_dba, alpha_qe_dba, diffusion: the names rerank_choice sets


def reranked(result: Retrieval, how: str, **settings) -> Retrieval:
    """``result`` re-ranked with its global vectors (notebook 09, :mod:`coursekit.rerank`).

    ``how``: ``"aqe"``, average query expansion of each query with its top
    ``n`` database vectors (Chum et al., ICCV 2007); ``"alpha_qe"``, the
    same weighted by similarity to the power ``qe_alpha`` (Radenovic et al.,
    TPAMI 2018); ``"aqe_dba"`` and ``"alpha_qe_dba"``, the database first
    augmented with its own ``n`` nearest neighbours the same way
    (Arandjelovic and Zisserman, CVPR 2012), then the queries expanded
    against it; ``"diffusion"``, diffusion on the database's mutual
    ``k``-NN graph from ``k_q`` query neighbours with damping ``alpha``
    (Iscen et al., CVPR 2017; the graph cached on disk). ``settings`` not
    given are the papers' (:data:`coursekit.rerank_choice.PAPER`: n 5,
    qe_alpha 3, k 50, k_q 10, alpha 0.99); :func:`evaluate_method` chooses
    them from the data. The first ranking's similarities are kept as
    ``first_stage``. After query expansion, ``X_q`` (and with DBA ``X_db``)
    are the expanded vectors and ``sims = X_q @ X_db.T``; after diffusion,
    ``sims`` holds the diffusion scores and the vectors are those of
    ``result``.
    """
    from .. import rerank
    from ..rerank_choice import settings_of

    if result.X_db is None:
        raise ValueError("re-ranking uses the global vectors and this method has none; methods that have: "
                         + ", ".join(GLOBAL_METHODS))
    sims, X_q, X_db = rerank.apply(result.X_q, result.X_db, how, **settings_of(how, **settings))
    return Retrieval(sims.astype(np.float32), X_db, X_q, cached_seconds=result.cached_seconds,
                     first_stage=result.sims, X_train=result.X_train)


def rerank_settings(how: str, result: Retrieval, ds: Dataset, **given) -> tuple[dict, str]:
    """The settings of re-ranking ``how`` for ``result`` on ``ds``, and how they were chosen: those ``given``
    (not ``None``) with the papers' for the rest, or, when none is given, chosen from the data by
    :func:`coursekit.rerank_choice.choose` (on the training split's vectors ``result.X_train`` when the
    dataset has labelled training images, else from the database), never from the test queries."""
    from ..rerank_choice import choose, settings_of

    if any(value is not None for value in given.values()):
        return settings_of(how, **given), "given, the papers' values for the rest"
    labels = ds.train_labels if result.X_train is not None else None
    return choose(how, result.X_db, result.X_train, labels)


def run_method(name: str, ds: Dataset, progress: bool = True, whiten: bool = False, dim: int | None = None,
               with_train: bool = False, whiten_on: str | Dataset | None = None, **params) -> Retrieval:
    """Run the method called ``name`` on ``ds``; with ``whiten``, whiten its
    global vectors, to ``dim`` dimensions if given (see :func:`whitened`);
    for ``rmac``, whiten its regions before their sum (:func:`rmac`).
    ``whiten_on``: learn the whitening on another dataset (a name, loaded
    from the data folder, or a :class:`Dataset`) instead of ``ds``'s
    training split: :func:`whitening_vectors` (for ``rmac``, of its global
    vectors). A dataset never whitens itself: on its own database the
    whitening would be shaped by the images it then ranks (and learned on
    the queries' own positives); Oxford and Paris, which have no training
    split, learn it on each other.
    ``params`` go to the method (``backbone=``, ``weights=`` of the CNN methods)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    if whiten_on is not None:
        from ..datasets import load_dataset

        if whiten:
            raise ValueError("pass whiten (learned on this dataset's training split) or whiten_on (on another "
                             "dataset), not both")
        source = whiten_on if isinstance(whiten_on, Dataset) else load_dataset(whiten_on)
        if source.name == ds.name and Path(source.root).resolve() == Path(ds.root).resolve():
            raise ValueError(f"{ds.name!r} cannot whiten itself: learned on the images it ranks, the whitening is "
                             "shaped by them and by the queries' own positives; learn it on another dataset "
                             "(--whiten-on, e.g. rparis6k for roxford5k), or on this one's training split (--whiten)")
        if name not in GLOBAL_METHODS:
            raise ValueError(f"method {name!r} makes no global vectors, so it cannot be whitened; "
                             f"methods that can: {', '.join(GLOBAL_METHODS)}")
        if next(m for m in TABLE if m.name == name).learns and not params.get("train_on"):
            raise ValueError(f"{name}'s vectors depend on what it learns from each dataset (a vocabulary, a GMM "
                             f"or a fine-tuned network), so a whitening learned on {source.name!r}'s is in another "
                             f"space: whiten on {ds.name!r}'s own training split (--whiten), or use a method "
                             "without learning (the CNN poolings, color_hist, gist)"
                             + (", or gem_finetuned with --train-on" if name == "gem_finetuned" else ""))
        learn = whitening_vectors(name, source, progress, **params)
        result = run_method(name, ds, progress, with_train=with_train and bool(ds.train), **params)
        return whitened(result, dim, X_learn=learn)
    if (whiten or with_train) and name not in GLOBAL_METHODS:
        raise ValueError(f"method {name!r} makes no global vectors, so it cannot be whitened or indexed; "
                         f"methods that can: {', '.join(GLOBAL_METHODS)}")
    if whiten and not ds.train:
        raise ValueError(f"whitening is learned on a training split and {ds.name!r} has none: "
                         "learn it on another dataset (--whiten-on embedded), drop --whiten, or use a dataset with "
                         "training images (embedded, coil100)")
    if dim is not None and not whiten:
        raise ValueError("dim is the dimension kept by the whitening: pass it with whiten")
    fn = METHODS[name][0]
    unknown = set(params) - set(inspect.signature(fn).parameters)
    if unknown:
        raise ValueError(f"method {name!r} takes no {', '.join(sorted(unknown))} (only the CNN methods take a backbone)")
    if whiten and name == "rmac":    # the paper whitens each region before the sum
        return fn(ds, progress=progress, with_train=True, whiten_regions=True, dim=dim, **params)
    if name in GLOBAL_METHODS:
        result = fn(ds, progress=progress, with_train=whiten or with_train, **params)
    else:
        result = fn(ds, progress=progress, **params)
    return whitened(result, dim) if whiten else result


def index_ranks(I: np.ndarray, n_db: int) -> np.ndarray:
    """A full ranking from an index's results: ``I (Q, k) int64`` (``-1`` past the
    candidates) -> ``ranks (Q, n_db) int64``: the results in their order, then
    every database image the index did not return, in database order (it gave
    them no score, so no order among them is better informed)."""
    Q = len(I)
    ranks = np.empty((Q, n_db), np.int64)
    for q in range(Q):  # one row per query: the set difference is per row
        found = I[q][I[q] >= 0]
        rest = np.setdiff1d(np.arange(n_db), found, assume_unique=True)
        ranks[q] = np.concatenate([found, rest])
    return ranks


def neighbour_recall(D_exact: np.ndarray, I: np.ndarray, ranks=(1, 10, 100), copy: float = 1e-6) -> dict[int, float]:
    """Recall@R of an index: the fraction of queries for which one of its first ``R`` results is
    an exact nearest neighbour.

    ``D_exact (Q, N)``: exact squared distances from each query to each
    database vector; ``I (Q, k) int64``: the index's results (``-1`` past
    its candidates). As :func:`coursekit.ann.recall_at`, with two
    differences for image datasets: database vectors within ``copy`` of the
    query are copies of the query itself (COIL-100's queries are database
    images), which every index finds, so they are dropped from the results
    and the neighbour to find is the nearest other image; and any vector at
    the nearest distance counts (duplicates tie).
    """
    found = np.where(I >= 0, np.take_along_axis(D_exact, np.maximum(I, 0), axis=1), np.inf)   # (Q, k)
    nearest = np.where(D_exact > copy, D_exact, np.inf).min(axis=1)                            # (Q,)
    other = found > copy                                  # results that are not copies of the query
    position = np.cumsum(other, axis=1)                   # rank of each among those
    is_nearest = other & (found <= nearest[:, None] * (1 + 1e-5))
    return {int(r): float((is_nearest & (position <= r)).any(axis=1).mean()) for r in ranks}


def evaluate_method(name: str, ds: Dataset, progress: bool = True, whiten: bool = False, dim: int | None = None,
                    index: str | None = None, M: int = 16, nbits: int = 8, nlist: int | None = None,
                    nprobe: int = 8, seed: int = 0, rerank: str | None = None, rerank_given: dict | None = None,
                    whiten_on: str | Dataset | None = None, **params) -> dict:
    """Run a method end to end and measure it.

    Returns a JSON-able dict: ``dataset``, ``method``, ``n_db``,
    ``n_queries``, every measure of :func:`coursekit.evaluation.evaluate`,
    and ``seconds``: the method's time on this machine, with the time of
    cached steps as measured when they were computed (so a second run
    reports the same cost, not the cache's).

    ``whiten``, ``dim``: PCA-whitening learned on the training split
    (:func:`whitened`); ``whiten_on``: learned on another dataset instead
    (:func:`run_method`; the method's name then ends ``+whiten[on NAME]``). ``index``: one of
    :data:`coursekit.ann.INDEX_KINDS`, built by
    :func:`coursekit.ann.build_index` (``M``, ``nbits``, ``nlist``,
    ``nprobe``, ``seed``) on the training split's vectors (the database's
    when the dataset has no training split: ``index_trained_on`` says which);
    the measures are then of the index's ranking (:func:`index_ranks`),
    those of exact search are added with the prefix ``exact_``, and
    ``recall@R`` is the fraction of queries whose exact nearest neighbour
    the index returns in its first ``R`` (:func:`coursekit.ann.recall_at`),
    with ``ms_per_query`` and ``bytes_per_vector`` (see :func:`neighbour_recall`
    for queries that are database images, and ties).

    ``rerank``: one of :data:`RERANKINGS`, applied to the (whitened)
    vectors (:func:`reranked`) with the settings of :func:`rerank_settings`
    (``rerank_given``: e.g. ``{"k": 50}``; none given: chosen from the
    data); the measures are then of the re-ranked list, those of the first
    ranking are added with the prefix ``first_``, ``rerank_settings`` says
    what ran and how it was chosen, and ``rerank_seconds`` is the
    re-ranking's own time (the graph's construction included, unless it
    came from the cache) and ``rerank_choice_seconds`` the choice's. Not
    with an ``index``.
    """
    from ..ann import build_index, squared_distances

    if rerank is not None and index is not None:
        raise ValueError("re-ranking runs on exact search: pass either rerank or index, not both")
    if rerank is not None and rerank not in RERANKINGS:
        raise ValueError(f"unknown re-ranking {rerank!r}; known: {', '.join(RERANKINGS)}")
    if rerank is not None and name not in GLOBAL_METHODS:
        raise ValueError(f"method {name!r} makes no global vectors, so it cannot be re-ranked by them; "
                         f"methods that can: {', '.join(GLOBAL_METHODS)}")
    start = time.perf_counter()
    given = {k: v for k, v in (rerank_given or {}).items() if v is not None}
    learn_on_train = rerank is not None and not given and ds.train_labels is not None
    result = run_method(name, ds, progress, whiten=whiten, dim=dim, with_train=index is not None or learn_on_train,
                        whiten_on=whiten_on, **params)
    whiten = whiten or whiten_on is not None
    on = "" if whiten_on is None else f"[on {whiten_on if isinstance(whiten_on, str) else whiten_on.name}]"
    if rerank is not None:
        choice_seconds, (settings, chosen) = timed(lambda: rerank_settings(rerank, result, ds, **given))
        rerank_seconds, result = timed(lambda: reranked(result, rerank, **settings))
    scores = evaluate(ranks_from_similarities(result.sims), ds)
    trained_on = f"(trained on {params['train_on']})" if params.get("train_on") else ""
    out = {"dataset": ds.name, "method": name + trained_on + ("+whiten" + on if whiten else "")
           + (f"+{rerank}" if rerank else ""), "n_db": ds.n_db, "n_queries": ds.n_queries}
    if whiten:
        out["dim"] = int(result.X_db.shape[1])
    if index is None:
        out.update({k: round(v, 4) for k, v in scores.items()})
        if rerank is not None:
            first = evaluate(ranks_from_similarities(result.first_stage), ds)
            out.update({f"first_{k}": round(v, 4) for k, v in first.items()})
            out["rerank_settings"] = describe(settings, chosen)
            out["rerank_seconds"] = round(rerank_seconds, 3)
            out["rerank_choice_seconds"] = round(choice_seconds, 3)
    else:
        X_train = result.X_train if result.X_train is not None else result.X_db
        idx = build_index(index, X_train, result.X_db, M=M, nbits=nbits, nlist=nlist, nprobe=nprobe, seed=seed)
        search_seconds, (_, I) = timed(lambda: idx.search(result.X_q, ds.n_db))
        ranked = evaluate(index_ranks(I, ds.n_db), ds)
        recall = neighbour_recall(squared_distances(result.X_q, result.X_db), I,
                                  [r for r in (1, 10, 100) if r <= ds.n_db])
        out.update(index=repr(idx), index_trained_on="train" if result.X_train is not None else "database")
        out.update({k: round(v, 4) for k, v in ranked.items()})
        out.update({f"exact_{k}": round(v, 4) for k, v in scores.items()})
        out.update({f"recall@{r}": round(v, 4) for r, v in recall.items()})
        out.update(ms_per_query=round(1e3 * search_seconds / ds.n_queries, 3),
                   bytes_per_vector=idx.memory_per_vector)
    out["seconds"] = round(time.perf_counter() - start + result.cached_seconds, 2)
    return out
