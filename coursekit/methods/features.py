"""What every method is built on: :class:`Retrieval`, the (cropped) query images, and the cached extraction of
one vector per image (:func:`extract_global`, :func:`extract_train`), of SIFT (:func:`sift_features`) and of
aggregated RootSIFT (:func:`aggregated_splits`, for VLAD and Fisher vectors)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .. import local
from ..cache import cached_arrays, files_fingerprint
from ..datasets import Dataset
from ..images import crop, load_image

__all__ = ["Retrieval", "query_image", "extract_global", "extract_train", "sift_features", "aggregated_splits"]


@dataclass
class Retrieval:
    """What a method returns.

    ``sims (Q, N) float32``: similarity of each query to each database image
    (larger is better). ``X_db (N, D)`` and ``X_q (Q, D) float32``: the
    global vectors, for methods that have them (``sims = X_q @ X_db.T``).
    ``cached_seconds``: what the steps that came from the disk cache took
    when they were computed (0 for steps computed in this call).
    ``first_stage (Q, N) float32``: for re-ranking methods, the similarities
    before re-ranking (``sift_ransac``: those of ``sift_match``).
    ``X_train (T, D) float32``: the same global vectors of the dataset's
    training split, for learning a whitening or an index; filled when the
    method is called with ``with_train=True`` and the dataset has a training
    split (``ds.train``), else ``None``.
    """

    sims: np.ndarray
    X_db: np.ndarray | None = None
    X_q: np.ndarray | None = None
    cached_seconds: float = 0.0
    first_stage: np.ndarray | None = None
    X_train: np.ndarray | None = None


def query_image(ds: Dataset, i: int) -> np.ndarray:
    """Query ``i`` as ``(H, W, 3) uint8``, cropped to its box when the dataset has boxes."""
    image = load_image(ds.queries[i])
    return crop(image, ds.bbx[i]) if ds.bbx is not None else image


def _describe_files(paths, describe: Callable[[np.ndarray], np.ndarray], desc: str, progress: bool) -> np.ndarray:
    """``describe(image)`` of every image file: ``(len(paths), D) float32``."""
    return np.stack([describe(load_image(p)) for p in tqdm(paths, desc=desc, disable=not progress)]).astype(np.float32)


def dataset_key(ds: Dataset) -> dict:
    """What a cache key needs to name of a dataset's database and queries: its name, the files'
    fingerprints and the query boxes (rounded to 2 decimals)."""
    return {"dataset": ds.name, "db": files_fingerprint(ds.db), "queries": files_fingerprint(ds.queries),
            "bbx": None if ds.bbx is None else ds.bbx.round(2).tolist()}


def extract_global(
    ds: Dataset,
    describe: Callable[[np.ndarray], np.ndarray],
    key: dict,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, float]:
    """One vector per database image and per (cropped) query, cached on disk.

    ``describe`` maps an ``(H, W, 3) uint8`` image to a ``(D,)`` vector.
    ``key`` names the method and all its parameters; the dataset's files
    and boxes are added to it. Returns ``X_db (N, D)``, ``X_q (Q, D) float32``
    and the seconds the cache saved (see :func:`coursekit.cache.cached_arrays`).
    """
    name = key.get("method", "features")
    full_key = {**key, **dataset_key(ds)}

    def compute() -> dict[str, np.ndarray]:
        X_db = _describe_files(ds.db, describe, f"{name}: database", progress)
        X_q = [describe(query_image(ds, i)) for i in
               tqdm(range(ds.n_queries), desc=f"{name}: queries", disable=not progress)]
        return {"X_db": X_db, "X_q": np.stack(X_q).astype(np.float32)}

    arrays, seconds = cached_arrays("features", full_key, compute)
    return arrays["X_db"], arrays["X_q"], seconds


def extract_train(ds: Dataset, describe: Callable[[np.ndarray], np.ndarray], key: dict,
                  progress: bool = True) -> tuple[np.ndarray | None, float]:
    """:func:`extract_global` for the training split (cached apart): ``X_train (T, D) float32``
    (``None`` when the dataset has no training split) and the seconds the cache saved."""
    if not ds.train:
        return None, 0.0
    name = key.get("method", "features")
    full_key = {**key, "dataset": ds.name, "split": "train", "train": files_fingerprint(ds.train)}
    arrays, seconds = cached_arrays(
        "features", full_key, lambda: {"X_train": _describe_files(ds.train, describe, f"{name}: training", progress)})
    return arrays["X_train"], seconds


def sift_features(ds: Dataset, max_features: int, progress: bool):
    """RootSIFT-ready SIFT of the database and of the (cropped) queries, cached (at most ``max_features`` an image,
    as :func:`coursekit.local.extract_sift` gives them, one entry an image); and the seconds the cache saved."""
    fdb, s_db = local.extract_sift(ds.db, max_features=max_features, progress=progress, desc="sift: database")
    fq, s_q = local.extract_sift(ds.queries, ds.bbx, max_features=max_features, progress=progress,
                                 desc="sift: queries")
    return fdb, fq, s_db + s_q


def _aggregate(feats, describe: Callable[[np.ndarray], np.ndarray], desc: str, progress: bool) -> np.ndarray:
    """``describe(RootSIFT of image i)`` for every image of ``feats``: ``(N, D) float32``."""
    return np.stack([describe(feats.descriptors(i)) for i in
                     tqdm(range(len(feats)), desc=desc, disable=not progress)]).astype(np.float32)


def _aggregated(ds: Dataset, split: str, describe: Callable[[np.ndarray], np.ndarray], key: dict, max_features: int,
                progress: bool) -> tuple[np.ndarray, float]:
    """``describe`` of the RootSIFT of every image of a split (``"db"``, ``"queries"``, cropped to
    their boxes, or ``"train"``), cached on disk under ``key`` (the method, its parameters and the
    digest of what it learned): ``(N, D) float32`` and the seconds the caches saved."""
    paths, boxes = {"db": (ds.db, None), "queries": (ds.queries, ds.bbx), "train": (ds.train, None)}[split]
    full_key = {**key, "dataset": ds.name, "split": split, "files": files_fingerprint(paths),
                "bbx": None if boxes is None else boxes.round(2).tolist(), "max_features": max_features}

    def compute() -> dict[str, np.ndarray]:
        feats, sift_saved = local.extract_sift(paths, boxes, max_features=max_features, progress=progress,
                                               desc=f"sift: {split}")
        X = _aggregate(feats, describe, f"{key['method']}: {split}", progress)
        return {"X": X, "sift_saved": np.float64(sift_saved)}

    arrays, saved = cached_arrays("features", full_key, compute)
    return arrays["X"], saved + float(arrays["sift_saved"])


def aggregated_splits(ds: Dataset, describe, key: dict, max_features: int, with_train: bool, progress: bool):
    """:func:`_aggregated` of the database, the queries and (with ``with_train``, when the dataset has
    one) the training split: ``X_db, X_q, X_train or None`` and the seconds the caches saved."""
    X_db, s_db = _aggregated(ds, "db", describe, key, max_features, progress)
    X_q, s_q = _aggregated(ds, "queries", describe, key, max_features, progress)
    X_tr, s_tr = (_aggregated(ds, "train", describe, key, max_features, progress) if with_train and ds.train
                  else (None, 0.0))
    return X_db, X_q, X_tr, s_db + s_q + s_tr
