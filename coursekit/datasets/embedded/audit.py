"""How a dataset's nearest neighbours are made: by the objects, or by an artefact of how it was built.

A synthetic benchmark can be solved for the wrong reason. Version 1 of the
``embedded`` set cut every background from one of 11 photos, and an
off-the-shelf CNN's nearest neighbours of an image were mostly the images
cut from the same photo, whatever object they showed. These functions
measure that from any global vectors and the records' ``background``
sources, so that the course report can show it for every build:

* :func:`neighbour_shares`: of each database image's ``k`` nearest
  database neighbours, the fraction that share its background source and
  the fraction that show its object, beside what chance gives;
* :func:`mutual_knn_purity`: of the mutual ``k``-nearest-neighbour graph's
  edges between images of query objects, the fraction that join two views
  of the same object: the graph that diffusion walks on (:mod:`coursekit.rerank`);
* :func:`audit`: both at once; :func:`background_sources` reads a build's
  sources.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _neighbours(X: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` nearest other rows by dot product: ``(N, k) int64``, nearest first."""
    X = np.asarray(X, np.float32)
    if X.ndim != 2 or len(X) <= k:
        raise ValueError(f"need an (N, D) array with N > k = {k}; got shape {X.shape}")
    S = X @ X.T
    np.fill_diagonal(S, -np.inf)
    top = np.argpartition(-S, k - 1, axis=1)[:, :k]                        # the k largest, unordered
    order = np.argsort(-np.take_along_axis(S, top, 1), axis=1, kind="stable")
    return np.take_along_axis(top, order, 1)


def neighbour_shares(X_db: np.ndarray, labels: np.ndarray, sources: list[str], k: int = 10) -> dict[str, float]:
    """What ``k``-nearest database neighbours have in common with the image: ``dict`` of fractions.

    ``X_db (N, D) float32``: L2-normalised global vectors; ``labels (N,)``:
    object ids (``< 0``: a distractor, no object); ``sources``: each
    image's background source (``record["background"]["source"]``).

    * ``background``: over all images, the fraction of their neighbours
      with the same background source; ``background_chance``: the same
      fraction for neighbours drawn at random (``sum_s n_s (n_s - 1) /
      (N (N - 1))`` over the sources' counts ``n_s``);
    * ``object``: over the images of an object, the fraction of their
      neighbours that show the same object; ``object_chance`` likewise.
    """
    labels = np.asarray(labels)
    sources = np.asarray(sources)
    n = len(labels)
    if len(sources) != n or len(X_db) != n:
        raise ValueError(f"{len(X_db)} vectors, {n} labels and {len(sources)} sources: they must match")
    nn = _neighbours(X_db, k)
    same_bg = sources[nn] == sources[:, None]                               # (N, k)
    same_obj = (labels[nn] == labels[:, None]) & (labels[:, None] >= 0)
    _, counts = np.unique(sources, return_counts=True)
    has_object = labels >= 0
    _, obj_counts = np.unique(labels[has_object], return_counts=True)
    return {"background": float(same_bg.mean()),
            "background_chance": float((counts * (counts - 1)).sum() / (n * (n - 1))),
            "object": float(same_obj[has_object].mean()),
            "object_chance": float((obj_counts * (obj_counts - 1)).sum() / (has_object.sum() * (n - 1)))}


def mutual_knn_purity(X_db: np.ndarray, labels: np.ndarray, k: int = 10) -> dict[str, float]:
    """The mutual ``k``-NN graph of the database: how many edges join views of the same object.

    An edge ``i - j`` when each is among the other's ``k`` nearest
    neighbours (the graph of Iscen et al., CVPR 2017). Returns ``purity``:
    the fraction of the edges with at least one end on a query object's
    image that join two images of the same object; ``edges``: that number
    of edges; ``isolated``: the fraction of a query object's images with
    no edge to another view of their object.
    """
    labels = np.asarray(labels)
    n = len(labels)
    nn = _neighbours(X_db, k)
    A = np.zeros((n, n), bool)
    A[np.repeat(np.arange(n), k), nn.ravel()] = True
    M = np.triu(A & A.T, 1)                                                 # each mutual edge once
    i, j = np.nonzero(M)
    touches = (labels[i] >= 0) | (labels[j] >= 0)
    pure = (labels[i] == labels[j]) & touches
    has_object = labels >= 0
    linked = np.zeros(n, bool)
    linked[i[pure]] = linked[j[pure]] = True
    return {"purity": float(pure.sum() / max(touches.sum(), 1)), "edges": int(touches.sum()),
            "isolated": float(1.0 - linked[has_object].mean())}


def background_sources(root) -> list[str] | None:
    """Each database image's background source from a build's ``groundtruth.json`` (``None`` when it has none).

    ``root``: the folder of a build of the embedded set (``Dataset.root``).
    """
    path = Path(root) / "groundtruth.json"
    if not path.is_file():
        return None
    records = json.loads(path.read_text()).get("db_records") or []
    sources = [(r.get("background") or {}).get("source") for r in records]
    return sources if sources and all(isinstance(s, str) for s in sources) else None


def audit(X_db: np.ndarray, labels: np.ndarray, sources: list[str], k: int = 10) -> dict[str, float]:
    """:func:`neighbour_shares` and :func:`mutual_knn_purity` of the same vectors, in one ``dict``."""
    return {**neighbour_shares(X_db, labels, sources, k), **mutual_knn_purity(X_db, labels, k), "k": k}
