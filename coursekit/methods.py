"""Every named end-to-end retrieval method, as a plain function.

A method takes a :class:`~coursekit.datasets.Dataset` and returns a
:class:`Retrieval`: the similarity of every query to every database image,
and, for methods that make one global vector per image, those vectors (so
that an index or a re-ranking can use them). ``python -m coursekit evaluate``
runs them; the notebooks build each one step by step.

=============  ==========================================================
name           what it does
=============  ==========================================================
``color_hist`` joint HSV colour histogram, Hellinger kernel (notebook 01)
=============  ==========================================================
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from . import color
from .cache import cached_arrays, files_fingerprint
from .datasets import Dataset
from .evaluation import evaluate, ranks_from_similarities
from .images import crop, load_image

__all__ = ["Retrieval", "METHODS", "describe_methods", "query_image", "extract_global", "color_hist",
           "run_method", "evaluate_method"]


@dataclass
class Retrieval:
    """What a method returns.

    ``sims (Q, N) float32``: similarity of each query to each database image
    (larger is better). ``X_db (N, D)`` and ``X_q (Q, D) float32``: the
    global vectors, for methods that have them (``sims = X_q @ X_db.T``).
    ``cached_seconds``: what the steps that came from the disk cache took
    when they were computed (0 for steps computed in this call).
    """

    sims: np.ndarray
    X_db: np.ndarray | None = None
    X_q: np.ndarray | None = None
    cached_seconds: float = 0.0


def query_image(ds: Dataset, i: int) -> np.ndarray:
    """Query ``i`` as ``(H, W, 3) uint8``, cropped to its box when the dataset has boxes."""
    image = load_image(ds.queries[i])
    return crop(image, ds.bbx[i]) if ds.bbx is not None else image


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
    full_key = {
        **key,
        "dataset": ds.name,
        "db": files_fingerprint(ds.db),
        "queries": files_fingerprint(ds.queries),
        "bbx": None if ds.bbx is None else ds.bbx.round(2).tolist(),
    }

    def compute() -> dict[str, np.ndarray]:
        name = key.get("method", "features")
        X_db = [describe(load_image(p)) for p in tqdm(ds.db, desc=f"{name}: database", disable=not progress)]
        X_q = [describe(query_image(ds, i)) for i in
               tqdm(range(ds.n_queries), desc=f"{name}: queries", disable=not progress)]
        return {"X_db": np.stack(X_db).astype(np.float32), "X_q": np.stack(X_q).astype(np.float32)}

    arrays, seconds = cached_arrays("features", full_key, compute)
    return arrays["X_db"], arrays["X_q"], seconds


def color_hist(ds: Dataset, bins: tuple[int, int, int] = (8, 8, 8), space: str = "hsv",
               progress: bool = True) -> Retrieval:
    """Joint colour histogram, square-rooted (Hellinger), compared by dot product.

    Swain and Ballard, "Color indexing", IJCV 1991; the Hellinger kernel as
    in Arandjelovic and Zisserman, CVPR 2012.
    """
    key = {"method": "color_hist", "bins": list(bins), "space": space, "version": 1}
    X_db, X_q, seconds = extract_global(ds, lambda im: color.joint_histogram(im, bins, space), key, progress)
    X_db, X_q = color.hellinger_normalize(X_db), color.hellinger_normalize(X_q)
    return Retrieval(X_q @ X_db.T, X_db, X_q, cached_seconds=seconds)


# name -> (function, one line for `python -m coursekit methods`)
METHODS: dict[str, tuple[Callable[..., Retrieval], str]] = {
    "color_hist": (color_hist, "joint HSV colour histogram (8x8x8), Hellinger kernel  [notebook 01]"),
}


def describe_methods() -> dict[str, str]:
    """Each method name with its one-line description."""
    return {name: line for name, (_, line) in METHODS.items()}


def run_method(name: str, ds: Dataset, progress: bool = True) -> Retrieval:
    """Run the method called ``name`` on ``ds``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    return METHODS[name][0](ds, progress=progress)


def evaluate_method(name: str, ds: Dataset, progress: bool = True) -> dict:
    """Run a method end to end and measure it.

    Returns a JSON-able dict: ``dataset``, ``method``, ``n_db``,
    ``n_queries``, every measure of :func:`coursekit.evaluation.evaluate`,
    and ``seconds``: the method's time on this machine, with the time of
    cached steps as measured when they were computed (so a second run
    reports the same cost, not the cache's).
    """
    start = time.perf_counter()
    result = run_method(name, ds, progress)
    ranks = ranks_from_similarities(result.sims)
    scores = evaluate(ranks, ds)
    seconds = time.perf_counter() - start + result.cached_seconds
    return {"dataset": ds.name, "method": name, "n_db": ds.n_db, "n_queries": ds.n_queries,
            **{k: round(v, 4) for k, v in scores.items()}, "seconds": round(seconds, 2)}
