"""Local features: SIFT keypoints and descriptors, RootSIFT, and descriptor matching.

A global descriptor (a colour histogram, notebook 01) summarises a whole
image and is spoilt by anything that changes a large part of it: a new
background, an occluder, another viewpoint. A *local* feature describes a
small patch around a keypoint that a detector finds again at the same place
on the object, at the right scale and orientation, whatever the viewpoint:
two images of the same object share many such patches, and a few surviving
patches are enough evidence even when most of the object is hidden.

SIFT (Lowe, "Distinctive image features from scale-invariant keypoints",
IJCV 2004) finds keypoints as extrema of differences of Gaussians across
space and scale, gives each a dominant gradient orientation, and describes
the patch, rotated and scaled to that frame, by 4x4 histograms of 8
gradient orientations: 128 numbers.

Conventions of this module
--------------------------
- ``kp (K, 4) float32``: one row ``x, y, size, angle`` per keypoint. ``x, y``
  are pixel coordinates (column, row; 0 is the centre of the first pixel) in
  the image that was given, even when it was shrunk for extraction (see
  :func:`sift`). ``size`` is OpenCV's diameter of the described region
  (about 12 times the detection scale sigma, Lowe's 4x4 cells of 3 sigma),
  in pixels. ``angle`` is the orientation in degrees, ``[0, 360)``, as in
  OpenCV: the direction ``(cos a, sin a)`` in ``(x, y)`` with ``y`` pointing
  down, i.e. clockwise on screen.
- ``desc (K, 128) float32``: SIFT descriptors as OpenCV makes them, whole
  numbers in ``[0, 255]`` (L2 norm about 512). They are stored as ``uint8``,
  losslessly.
- Matches are ``(P, 2) int64`` index pairs ``(i, j)``: row ``i`` of the first
  set of descriptors with row ``j`` of the second, sorted by ``i``.

RootSIFT (Arandjelovic and Zisserman, "Three things everyone should know to
improve object retrieval", CVPR 2012) L1-normalises a descriptor and takes
the square root: the Euclidean distance between RootSIFT vectors is then the
Hellinger distance between the SIFT histograms, which weighs small bins
more fairly than the Euclidean distance on SIFT does.

Extraction for a whole set of images is cached on disk (:func:`extract_sift`).
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from .cache import cached_arrays, files_fingerprint
from .images import crop, load_image

__all__ = [
    "MAX_FEATURES", "MAX_SIZE", "LocalFeatures", "sift", "rootsift", "extract_sift",
    "squared_distances", "two_nearest", "match_nn", "ratio_test", "one_to_one", "mutual_nn",
    "PaddedBlock", "pad_features", "nearest_many", "one_to_one_mask", "ratio_mask", "ratio_matches_many", "matches_per_image",
]

#: Default cap on keypoints per image (the strongest by DoG response are kept).
MAX_FEATURES = 1000
#: Default longer side, in pixels, above which an image is shrunk before extraction.
MAX_SIZE = 1024

_BLOCK = 500  # images per cache entry (see extract_sift)
_VERSION = 2  # bump when extraction changes what it stores


# --------------------------------------------------------------------------
# One image
# --------------------------------------------------------------------------

def sift(image: np.ndarray, max_features: int | None = MAX_FEATURES,
         max_size: int | None = MAX_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """SIFT keypoints and descriptors of one image, with OpenCV.

    ``image``: ``(H, W, 3) uint8`` RGB or ``(H, W) uint8`` grey.
    ``max_features``: keep at most this many keypoints, the strongest by
    DoG response (``None``: all). ``max_size``: when the longer side is
    larger, the image is shrunk to it first (area interpolation); the
    keypoints are mapped back, so ``x, y, size`` are always in the pixels of
    ``image`` (``None``: never shrink).

    Returns ``kp (K, 4) float32`` (``x, y, size, angle``) and ``desc (K, 128)
    float32`` (whole numbers in [0, 255]), sorted by ``y``, then ``x``, so
    the output does not depend on OpenCV's thread count.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W, 3) or (H, W) uint8 image, got {image.shape} {image.dtype}")
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    scale = 1.0
    if max_size is not None and max(grey.shape) > max_size:
        scale = max_size / max(grey.shape)
        size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    keypoints, desc = cv2.SIFT_create().detectAndCompute(grey, None)
    if desc is None or not keypoints:
        return np.zeros((0, 4), np.float32), np.zeros((0, 128), np.float32)
    kp = np.array([(k.pt[0], k.pt[1], k.size, k.angle) for k in keypoints], dtype=np.float64)
    response = np.array([k.response for k in keypoints])
    if max_features is not None and len(kp) > max_features:
        # the strongest; equal responses (one point, two orientations) ordered by position, size,
        # angle, so that the cut does not depend on the order OpenCV's threads found them in
        strongest = np.lexsort((kp[:, 3], kp[:, 2], kp[:, 0], kp[:, 1], -response))[:max_features]
        kp, desc = kp[strongest], desc[strongest]
    if scale != 1.0:  # pixel centres: x_orig + 0.5 = (x + 0.5) / scale
        kp[:, :2] = (kp[:, :2] + 0.5) / scale - 0.5
        kp[:, 2] /= scale
    order = np.lexsort((kp[:, 3], kp[:, 2], kp[:, 0], kp[:, 1]))  # by y, then x, size, angle
    return kp[order].astype(np.float32), np.asarray(desc, np.float32)[order]


def rootsift(desc: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """RootSIFT: L1-normalise each descriptor, then take the square root.

    Arandjelovic and Zisserman, CVPR 2012. ``desc (K, 128)`` non-negative
    (SIFT) -> ``(K, 128) float32`` with unit L2 norm (a zero row stays zero).
    For RootSIFT vectors ``u = rootsift(x)``, ``v = rootsift(y)``:
    ``u @ v = sum_i sqrt(x_i y_i / (|x|_1 |y|_1))`` is the Hellinger kernel
    of ``x`` and ``y``, and ``|u - v|^2 = 2 - 2 u @ v``.
    """
    desc = np.asarray(desc, dtype=np.float32)
    l1 = np.abs(desc).sum(axis=-1, keepdims=True)
    return np.sqrt(desc / np.maximum(l1, eps))


# --------------------------------------------------------------------------
# Many images, cached
# --------------------------------------------------------------------------

@dataclass
class LocalFeatures:
    """The local features of ``N`` images, concatenated.

    ``kp (T, 4) float32`` and ``desc (T, 128) uint8`` (raw SIFT) hold every
    image's rows one image after the other; image ``i`` owns rows
    ``offsets[i]:offsets[i + 1]`` (``offsets (N + 1,) int64``).
    """

    kp: np.ndarray
    desc: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def counts(self) -> np.ndarray:
        """Keypoints per image, ``(N,) int64``."""
        return np.diff(self.offsets)

    def keypoints(self, i: int) -> np.ndarray:
        """``(K_i, 4) float32`` keypoints of image ``i``."""
        return self.kp[self.offsets[i]:self.offsets[i + 1]]

    def descriptors(self, i: int, root: bool = True) -> np.ndarray:
        """``(K_i, 128) float32`` descriptors of image ``i``: RootSIFT, or raw SIFT with ``root=False``."""
        d = self.desc[self.offsets[i]:self.offsets[i + 1]].astype(np.float32)
        return rootsift(d) if root else d

    @staticmethod
    def concatenate(parts: Sequence[LocalFeatures]) -> LocalFeatures:
        """One set holding the images of ``parts``, in order."""
        sizes = [p.offsets[-1] for p in parts]
        starts = np.cumsum([0] + sizes[:-1])
        offsets = np.concatenate([[0]] + [p.offsets[1:] + s for p, s in zip(parts, starts)])
        return LocalFeatures(np.concatenate([p.kp for p in parts]), np.concatenate([p.desc for p in parts]),
                             offsets.astype(np.int64))


def _sift_file(path: Path, box, max_features, max_size) -> tuple[np.ndarray, np.ndarray]:
    """SIFT of one image file (cropped to ``box`` if given); descriptors as uint8."""
    image = load_image(path)
    if box is not None:
        image = crop(image, box)
    kp, desc = sift(image, max_features, max_size)
    return kp, desc.astype(np.uint8)


def _sift_file_star(args) -> tuple[np.ndarray, np.ndarray]:
    return _sift_file(*args)


def _one_thread() -> None:
    cv2.setNumThreads(1)  # in a worker process: the processes are the parallelism


def _default_workers(n_images: int) -> int:
    """Processes for ``n_images`` images: 0 (in this process) below 200 images,
    where starting the processes costs about what they save."""
    return 0 if n_images < 200 else min(os.cpu_count() or 1, 8)


class _Runner:
    """Runs SIFT jobs in this process or in a pool of processes started on first use."""

    def __init__(self, workers: int | None, bar):
        self.workers, self.bar, self.pool = workers, bar, None

    def run(self, jobs: list) -> dict[str, np.ndarray]:
        n_workers = _default_workers(len(jobs)) if self.workers is None else self.workers
        if n_workers > 1 and self.pool is None:
            self.pool = ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_one_thread)
        done = self.bar.n
        try:
            results = list(self._iterate(jobs, self.pool if n_workers > 1 else None))
        except BrokenProcessPool:
            warnings.warn("SIFT worker processes could not start (in a script, put its code under "
                          "`if __name__ == '__main__':`); extracting in this process instead", stacklevel=3)
            self.close()
            self.workers = 0
            self.bar.n = done
            results = list(self._iterate(jobs, None))
        offsets = np.cumsum([0] + [len(kp) for kp, _ in results]).astype(np.int64)
        return {"kp": np.concatenate([kp for kp, _ in results]).reshape(-1, 4),
                "desc": np.concatenate([d for _, d in results]).reshape(-1, 128), "offsets": offsets}

    def _iterate(self, jobs, pool):
        results = pool.map(_sift_file_star, jobs, chunksize=8) if pool is not None else map(_sift_file_star, jobs)
        for result in results:
            self.bar.update(1)
            yield result

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


def extract_sift(
    paths: Sequence[Path | str],
    boxes: np.ndarray | None = None,
    *,
    max_features: int | None = MAX_FEATURES,
    max_size: int | None = MAX_SIZE,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "sift",
    cache: bool = True,
) -> tuple[LocalFeatures, float]:
    """SIFT of many image files, cached on disk; returns the features and the seconds the cache saved.

    ``boxes (N, 4)``: crop image ``i`` to ``boxes[i]`` first (query boxes),
    keypoints then in the crop's pixels. ``max_features``, ``max_size``: as
    in :func:`sift`.

    Cache: one entry per block of 500 consecutive images
    (``cache_root()/sift/``), keyed by the block's file names, sizes and
    modification times, its boxes, the parameters and the OpenCV version.
    One file per block and not per image, because opening many small files
    is slow (thousands of per-image ``.npz`` files take far longer to read
    than the same arrays in one file, even with a warm OS cache); and
    not one file per dataset, so that an interrupted extraction keeps the
    blocks already done and a changed file recomputes only its block.

    ``workers``: processes that extract in parallel (``None``: one per core,
    up to 8, for a block of 200 images or more; 0: this process only).
    On a 2-core machine, 2 processes with one OpenCV thread each beat this
    process with OpenCV's 2 threads, start of the processes included, most
    on large photographs and least on thumbnails (where starting the
    processes is a large part of the time), and gain nothing while other
    programs keep both cores busy (``benchmarks/bench_local.py`` measures
    it). Decoding the image
    and OpenCV's serial parts of SIFT are what the processes overlap. They
    are started with ``spawn``: a ``fork`` after OpenCV started its threads
    hung in our tests. In a script, ``spawn`` needs the script's code under
    ``if __name__ == "__main__":``; without it the workers cannot start,
    and extraction goes on in this process with a warning.
    """
    paths = [Path(p) for p in paths]
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float32).reshape(len(paths), 4)
    params = {"max_features": max_features, "max_size": max_size}
    bar = tqdm(total=len(paths), desc=desc, disable=not progress, unit="img")
    runner = _Runner(workers, bar)
    parts, saved = [], 0.0
    try:
        for start in range(0, len(paths), _BLOCK):
            block = range(start, min(start + _BLOCK, len(paths)))
            jobs = [(paths[i], None if boxes is None else boxes[i].tolist(), max_features, max_size) for i in block]
            if not cache:
                arrays, seconds = runner.run(jobs), 0.0
            else:
                key = {"method": "sift", "version": _VERSION, "opencv": cv2.__version__, **params,
                       "files": files_fingerprint([paths[i] for i in block]),
                       "boxes": None if boxes is None else boxes[block.start:block.stop].round(2).tolist()}
                before = bar.n
                arrays, seconds = cached_arrays("sift", key, lambda jobs=jobs: runner.run(jobs))
                if bar.n == before:  # a cache hit: the bar jumps over the block
                    bar.update(len(block))
            parts.append(LocalFeatures(arrays["kp"], arrays["desc"], arrays["offsets"]))
            saved += seconds
    finally:
        bar.close()
        runner.close()
    if not parts:
        return LocalFeatures(np.zeros((0, 4), np.float32), np.zeros((0, 128), np.uint8), np.zeros(1, np.int64)), 0.0
    return LocalFeatures.concatenate(parts), saved


# --------------------------------------------------------------------------
# Matching two sets of descriptors
# --------------------------------------------------------------------------

def squared_distances(X: np.ndarray, Y: np.ndarray, y2: np.ndarray | None = None) -> np.ndarray:
    """``(M, N) float32`` squared Euclidean distances between the rows of ``X (M, D)`` and ``Y (N, D)``.

    By ``|x|^2 - 2 x.y + |y|^2``: one matrix product, the fastest way on a CPU (BLAS), into one
    ``(M, N)`` array updated in place. ``y2 (N,)``, the squared norms of ``Y``, may be passed when
    they are kept (an index keeps its database's, :mod:`coursekit.ann`). Rounding can make tiny
    distances negative: they are clipped at 0.
    """
    X = np.asarray(X, dtype=np.float32)
    Y = np.asarray(Y, dtype=np.float32)
    if y2 is None:
        y2 = np.einsum("nd,nd->n", Y, Y)
    # D[i, j] = sum_k (X[i, k] - Y[j, k]) ** 2   for i in range(M) for j in range(N)
    D = X @ Y.T
    D *= -2.0
    D += y2[None, :]
    D += np.einsum("md,md->m", X, X)[:, None]
    return np.maximum(D, 0.0, out=D)


def two_nearest(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nearest row of ``Y`` for each row of ``X`` and the distances to
    the nearest and the second nearest.

    Returns ``j1 (M,) int64``, ``d1 (M,) float32`` and ``d2 (M,) float32``
    (Euclidean distances, not squared; ``d2`` is ``inf`` when ``Y`` has one row).
    """
    D = squared_distances(X, Y)
    if D.shape[1] == 0:
        raise ValueError("cannot match against an empty set of descriptors")
    rows = np.arange(D.shape[0])
    j1 = D.argmin(axis=1)
    d1 = D[rows, j1]
    D[rows, j1] = np.inf  # hide the nearest: the minimum of what remains is the second nearest
    d2 = D.min(axis=1)
    return j1, np.sqrt(d1), np.sqrt(d2)


def match_nn(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Every row ``i`` of ``X`` with its nearest row ``j`` of ``Y``: ``(M, 2) int64``."""
    if len(X) == 0 or len(Y) == 0:
        return np.zeros((0, 2), np.int64)
    j1 = squared_distances(X, Y).argmin(axis=1)
    return np.stack([np.arange(len(X)), j1], axis=1).astype(np.int64)


def ratio_test(X: np.ndarray, Y: np.ndarray, ratio: float = 0.8) -> np.ndarray:
    """Nearest-neighbour matches that pass Lowe's ratio test: ``(P, 2) int64``.

    Lowe, IJCV 2004, section 7.1: keep ``(i, j)``, ``j`` the nearest row of
    ``Y`` to row ``i`` of ``X``, when ``d1 < ratio * d2``: the nearest is
    clearly nearer than the second nearest (Euclidean distances). A match
    whose descriptor is as close to another one is ambiguous, and most such
    matches are wrong. ``ratio=0.8`` is Lowe's choice. Pairs are sorted by
    ``i``; with fewer than 2 rows in ``Y`` there is no second neighbour and
    no match.
    """
    if len(X) == 0 or len(Y) < 2:
        return np.zeros((0, 2), np.int64)
    j1, d1, d2 = two_nearest(X, Y)
    keep = np.flatnonzero(d1 < ratio * d2)
    return np.stack([keep, j1[keep]], axis=1).astype(np.int64)


def one_to_one(pairs: np.ndarray, dist: np.ndarray | None = None) -> np.ndarray:
    """At most one match per database keypoint: ``(P, 2) int64 -> (P', 2) int64``, sorted by query row.

    Many query keypoints can pass the ratio test onto the same database
    keypoint (a repeated texture, a blob that many descriptors resemble).
    Counted one by one they make an image look more similar than it is, and
    RANSAC counts them all as inliers of any model through that one point.
    Each database keypoint keeps its nearest match (smallest ``dist (P,)``;
    the first in ``pairs`` when ``dist`` is ``None``).
    """
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    order = np.argsort(dist, kind="stable") if dist is not None else np.arange(len(pairs))
    # for j in unique(pairs[:, 1]): keep the first pair (in ``order``) whose database row is j
    _, first = np.unique(pairs[order, 1], return_index=True)
    return pairs[np.sort(order[first])]


def mutual_nn(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Mutual nearest neighbours: ``(i, j)`` where ``j`` is the nearest row of
    ``Y`` to ``X[i]`` and ``i`` the nearest row of ``X`` to ``Y[j]``.
    ``(P, 2) int64``, sorted by ``i``."""
    if len(X) == 0 or len(Y) == 0:
        return np.zeros((0, 2), np.int64)
    D = squared_distances(X, Y)
    j_of_i = D.argmin(axis=1)   # for i in range(M): nearest j
    i_of_j = D.argmin(axis=0)   # for j in range(N): nearest i
    keep = np.flatnonzero(i_of_j[j_of_i] == np.arange(len(X)))
    return np.stack([keep, j_of_i[keep]], axis=1).astype(np.int64)


# --------------------------------------------------------------------------
# Matching one image against many
# --------------------------------------------------------------------------

@dataclass
class PaddedBlock:
    """The descriptors of ``B`` images in one array, for matching them all at once.

    ``ids (B,) int64``: the images. ``Y (B, K, 128) float32``: image ``b``'s
    descriptors in ``Y[b, :counts[b]]``, zeros after. ``y2 (B, K) float32``:
    their squared norms, ``+inf`` on the padding (so a padded row is never
    a nearest neighbour). ``counts (B,) int64``.
    """

    ids: np.ndarray
    Y: np.ndarray
    y2: np.ndarray
    counts: np.ndarray


def pad_features(feats: LocalFeatures, ids: Sequence[int] | np.ndarray, root: bool = True,
                 max_rows: int = 65536) -> list[PaddedBlock]:
    """Group images ``ids`` of ``feats`` into :class:`PaddedBlock` s of at most
    ``max_rows`` padded descriptor rows each (images with fewer than 2
    keypoints are left out: they pass no ratio test).

    Images are sorted by keypoint count first, so that images in a block
    have similar counts and little padding is wasted.
    """
    ids = np.asarray(ids, dtype=np.int64)
    counts = feats.counts[ids]
    ids, counts = ids[counts >= 2], counts[counts >= 2]
    order = np.argsort(counts, kind="stable")
    ids, counts = ids[order], counts[order]
    blocks, start = [], 0
    while start < len(ids):
        stop = start + 1
        while stop < len(ids) and (stop + 1 - start) * counts[stop] <= max_rows:
            stop += 1
        blocks.append(_pad(feats, ids[start:stop], counts[start:stop], root))
        start = stop
    return blocks


def _pad(feats: LocalFeatures, ids: np.ndarray, counts: np.ndarray, root: bool) -> PaddedBlock:
    B, K = len(ids), int(counts.max())
    b = np.repeat(np.arange(B), counts)                         # block image of each row
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)  # row within its image
    rows = np.repeat(feats.offsets[ids], counts) + k           # rows of feats.desc
    desc = feats.desc[rows].astype(np.float32)
    desc = rootsift(desc) if root else desc
    Y = np.zeros((B, K, desc.shape[1]), np.float32)
    Y[b, k] = desc
    y2 = np.full((B, K), np.inf, np.float32)
    y2[b, k] = (desc * desc).sum(1)
    return PaddedBlock(ids, Y, y2, counts)


def nearest_many(X: np.ndarray, blocks: Sequence[PaddedBlock]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The two nearest descriptors of every image of ``blocks`` to each row of ``X (M, 128)``, all images at once.

    Returns ``ids (n,) int64`` (the images, in block order), ``nn (M, n)
    int64`` (the index of the nearest descriptor within image ``ids[n]``),
    and ``d1, d2 (M, n) float32``: the Euclidean distances to the nearest
    and the second nearest descriptor of that image, as :func:`two_nearest`
    gives them image by image.
    """
    X = np.asarray(X, dtype=np.float32)
    x2 = (X * X).sum(1)[:, None]
    ids, nns, d1s, d2s = [], [], [], []
    for blk in blocks:
        B, K, D = blk.Y.shape
        # d2[i, b, k] = |x_i|^2 + |y_bk|^2 - 2 x_i . y_bk   for every i, every image b, every descriptor k
        # (|x_i|^2 is the same for all b, k: it is added to the two smallest only)
        d2 = ((-2 * X) @ blk.Y.reshape(B * K, D).T).reshape(len(X), B, K)
        d2 += blk.y2
        j1 = d2.argmin(axis=2)                                       # (M, B) nearest within each image
        first = np.take_along_axis(d2, j1[:, :, None], axis=2)[:, :, 0]
        np.put_along_axis(d2, j1[:, :, None], np.inf, axis=2)       # hide it ...
        second = d2.min(axis=2)                                      # ... to find the second nearest
        ids.append(blk.ids)
        nns.append(j1)
        d1s.append(np.sqrt(np.maximum(first + x2, 0)))
        d2s.append(np.sqrt(np.maximum(second + x2, 0)))
    if not blocks:
        empty = np.zeros((len(X), 0), np.float32)
        return np.zeros(0, np.int64), np.zeros((len(X), 0), np.int64), empty, empty
    return (np.concatenate(ids), np.concatenate(nns, axis=1), np.concatenate(d1s, axis=1),
            np.concatenate(d2s, axis=1))


def one_to_one_mask(nn: np.ndarray, ok: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """:func:`one_to_one` for every image at once: ``ok (M, n) bool`` with, in each column, only the
    nearest (smallest ``dist (M, n)``) of the matches that share a database keypoint ``nn (M, n)``
    kept; the first row among equal distances."""
    i, c = np.nonzero(ok)                       # the matches, row by row
    # for each column c and keypoint j = nn[i, c]: keep the match of smallest dist[i, c]
    order = np.lexsort((i, dist[i, c], nn[i, c], c))
    key = np.stack([c[order], nn[i, c][order]], axis=1)
    first = np.ones(len(order), bool)
    first[1:] = (key[1:] != key[:-1]).any(axis=1)
    out = np.zeros_like(ok, dtype=bool)
    out[i[order[first]], c[order[first]]] = True
    return out


def ratio_mask(nn: np.ndarray, d1: np.ndarray, d2: np.ndarray, ratio: float = 0.8,
               one_to_one: bool = True) -> np.ndarray:
    """Which of :func:`nearest_many`'s nearest neighbours are matches: ``(M, n) bool``, those that pass
    ``d1 < ratio * d2`` and, with ``one_to_one``, only the nearest of those that share a database
    keypoint (:func:`one_to_one_mask`)."""
    ok = d1 < ratio * d2
    return one_to_one_mask(nn, ok, d1) if one_to_one else ok


def ratio_matches_many(X: np.ndarray, blocks: Sequence[PaddedBlock], ratio: float = 0.8,
                       one_to_one: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lowe's ratio test of ``X (M, 128)`` against every image of ``blocks`` at once.

    For each row ``i`` of ``X`` and each image ``n``: the nearest descriptor
    of the image, and whether it passes ``d1 < ratio * d2`` within that
    image (:func:`nearest_many`). With ``one_to_one``, each database
    keypoint then keeps only its nearest match (:func:`one_to_one`): many
    query keypoints passing onto one database keypoint count once.
    Returns ``ids (n,) int64`` (the images, in block order), ``nn (M, n)
    int64`` (the index of the nearest descriptor within image ``ids[n]``)
    and ``ok (M, n) bool``. The matches of image ``ids[n]`` are
    ``i = flatnonzero(ok[:, n])``, ``j = nn[i, n]``, as :func:`ratio_test`
    (then :func:`one_to_one` with the distances) would give them, and
    ``ok.sum(0)`` counts them.
    """
    ids, nn, d1, d2 = nearest_many(X, blocks)
    return ids, nn, ratio_mask(nn, d1, d2, ratio, one_to_one)


def matches_per_image(ids: np.ndarray, nn: np.ndarray, ok: np.ndarray, images: Sequence[int]) -> list[np.ndarray]:
    """The ratio-test matches of each of ``images``, from what :func:`ratio_matches_many` returned.

    ``ids (n,)``, ``nn (M, n)``, ``ok (M, n)`` -> one ``(m, 2) int64`` array
    per image of ``images``, rows ``(i, j)``: descriptor ``i`` of the query
    side matches descriptor ``j`` of that image. An image missing from
    ``ids`` (no descriptors) has no matches.
    """
    column = {int(image): c for c, image in enumerate(ids)}     # image -> its column of nn and ok
    out = []
    for image in images:
        c = column.get(int(image))
        rows = np.flatnonzero(ok[:, c]) if c is not None else np.zeros(0, np.int64)
        out.append(np.stack([rows, nn[rows, c]], axis=1).astype(np.int64) if c is not None
                   else np.zeros((0, 2), np.int64))
    return out
