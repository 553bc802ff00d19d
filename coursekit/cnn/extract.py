"""From images to pooled CNN vectors: resizing, batching by size, multi-scale, and an on-disk cache.

    X = pooled_descriptors(images, load_backbone(), size=480, scales=(1.0,))   # {"mac": (N, C), "gem": ...}
    arrays, saved = dataset_descriptors(ds, "db")                               # the same, cached on disk

Each image is resized so that its longer side is ``size * scale`` pixels
(aspect kept), normalised as the backbone was trained, and run through the
network under ``torch.inference_mode()``; its last convolutional map is
pooled by every function of :data:`POOLINGS` at once (pooling is cheap, the
network is not). Several scales (Radenovic, Tolias and Chum, TPAMI 2018
use 1, 1/sqrt 2 and 1/2) are combined by summing the L2-normalised vector
of each scale. Vectors are returned unnormalised for one scale, so that
the caller decides (the methods L2-normalise, whiten, normalise again).

Images of the same resized shape are run as one batch of at most
``batch_size``. The default is 1: on the course's 2-core CPU,
EfficientNet-Lite0 at 480 pixels ran 17.6 images/s one at a time and 4.6
in batches of 8; batches pay on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from . import pooling
from .backbones import Backbone

__all__ = ["POOLINGS", "resize_longer", "to_tensor", "pooled_descriptors", "fc_descriptors", "dataset_descriptors",
           "dataset_fc_codes", "set_threads", "plain_loop", "measure_throughput"]

# pooling name -> function of a (B, C, H, W) map; every one is computed in one pass of the network
POOLINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mac": pooling.mac,
    "spoc": pooling.spoc,
    "gem": pooling.gem,
    "rmac": pooling.rmac,
    "crow": pooling.crow,
}


def set_threads(n: int | None = None) -> int:
    """Use ``n`` CPU threads for torch (default: the cores this process may use); returns the number set."""
    import os

    if n is None:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, int(n)))
    return torch.get_num_threads()


def resize_longer(image: np.ndarray, size: int) -> np.ndarray:
    """``(H, W, 3) uint8`` resized (bilinear, aspect kept) so that ``max(H, W) == size``."""
    H, W = image.shape[:2]
    scale = size / max(H, W)
    shape = (max(1, round(W * scale)), max(1, round(H * scale)))
    return np.asarray(Image.fromarray(image).resize(shape, Image.BILINEAR))


def to_tensor(image: np.ndarray, backbone: Backbone) -> torch.Tensor:
    """``(H, W, 3) uint8`` -> ``(3, H, W) float32``, in [0, 1] then normalised by the backbone's mean and std."""
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)  # a writable copy
    mean = torch.tensor(backbone.mean).view(3, 1, 1)
    std = torch.tensor(backbone.std).view(3, 1, 1)
    return (x - mean) / std


def _batches(shapes: list[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices grouped by equal shape, in chunks of at most ``batch_size``, in first-seen order."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(shapes):
        groups.setdefault(s, []).append(i)
    return [ids[s:s + batch_size] for ids in groups.values() for s in range(0, len(ids), batch_size)]


def pooled_descriptors(images: Sequence[np.ndarray] | Sequence[Callable[[], np.ndarray]], backbone: Backbone,
                       size: int = 480, scales: Sequence[float] = (1.0,), poolings: Sequence[str] = tuple(POOLINGS),
                       batch_size: int = 1, progress: bool = False, desc: str = "cnn") -> dict[str, np.ndarray]:
    """Every pooling of every image: ``{pooling: (N, C) float32}``.

    ``images``: ``(H, W, 3) uint8`` arrays, or functions that load one (so
    that a dataset is not held in memory at once). See the module's
    docstring for sizes, scales and batches.
    """
    unknown = set(poolings) - set(POOLINGS)
    if unknown:
        raise ValueError(f"unknown pooling {sorted(unknown)}; known: {', '.join(POOLINGS)}")
    if size < 32 or not scales or min(scales) <= 0:
        raise ValueError(f"size must be >= 32 pixels and scales positive; got size={size}, scales={scales}")
    N = len(images)
    out = {p: np.zeros((N, backbone.channels), np.float32) for p in poolings}
    bar = tqdm(total=N * len(scales), desc=desc, disable=not progress)
    with torch.inference_mode():
        for scale in scales:
            side = max(32, round(size * scale))
            # resize everything of this scale first (cheap), then run the network by batches of one shape
            for chunk in range(0, N, 256):
                ids = range(chunk, min(N, chunk + 256))
                resized = [resize_longer(images[i]() if callable(images[i]) else images[i], side) for i in ids]
                for group in _batches([r.shape[:2] for r in resized], batch_size):
                    x = torch.stack([to_tensor(resized[j], backbone) for j in group])
                    fmap = backbone.feature_map(x)
                    rows = [chunk + j for j in group]
                    for p in poolings:
                        v = POOLINGS[p](fmap).float().numpy()
                        if len(scales) > 1:
                            v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
                        out[p][rows] += v
                    bar.update(len(group))
    bar.close()
    return out


def fc_descriptors(images, backbone: Backbone, progress: bool = False, desc: str = "cnn fc") -> np.ndarray:
    """The network's own global vector (:meth:`Backbone.fc_code`) of each image squashed to 224 x 224, as
    the "neural codes" of Babenko et al. (ECCV 2014): ``(N, D) float32``."""
    rows = []
    with torch.inference_mode():
        for im in tqdm(images, desc=desc, disable=not progress):
            im = im() if callable(im) else im
            x = to_tensor(np.asarray(Image.fromarray(im).resize((224, 224), Image.BILINEAR)), backbone)
            rows.append(backbone.fc_code(x[None]).float().numpy()[0])
    return np.stack(rows).astype(np.float32)


def _split_images(ds, split: str):
    """The split's paths as loaders (queries cropped to their boxes) and the part of a cache key naming them."""
    from ..cache import files_fingerprint
    from ..images import crop, load_image

    paths, boxes = {"db": (ds.db, None), "queries": (ds.queries, ds.bbx), "train": (ds.train, None)}[split]

    def loader(i):
        if boxes is None:
            return lambda: load_image(paths[i])
        return lambda: crop(load_image(paths[i]), boxes[i])

    key = {"dataset": ds.name, "split": split, "files": files_fingerprint(paths),
           "bbx": None if boxes is None else boxes.round(2).tolist()}
    return [loader(i) for i in range(len(paths))], key


def _weights_key(backbone: Backbone):
    """The backbone's weights for a cache key: ``"random"``, or the file's name, size and modification time."""
    from pathlib import Path

    path = Path(backbone.weights)
    if backbone.weights == "random" or not path.is_file():
        return backbone.weights
    stat = path.stat()
    return [path.name, stat.st_size, int(stat.st_mtime)]


def dataset_descriptors(ds, split: str, backbone: Backbone, size: int = 480, scales: Sequence[float] = (1.0,),
                        batch_size: int = 1, progress: bool = True) -> tuple[dict[str, np.ndarray], float]:
    """:func:`pooled_descriptors` of a split of ``ds`` (``"db"``, ``"queries"``, cropped to their boxes, or
    ``"train"``), cached on disk: ``({pooling: (N, C) float32}, seconds saved)``.

    The key names the backbone and its weights file (name, size and
    modification time), the image size, the scales, the dataset's files and
    boxes, and the poolings: a changed parameter never reuses stale vectors.
    """
    from ..cache import cached_arrays

    images, split_key = _split_images(ds, split)
    key = {"what": "cnn descriptors", "backbone": backbone.name, "weights": _weights_key(backbone), "size": size,
           "scales": [float(s) for s in scales], "poolings": list(POOLINGS), **split_key, "version": 1}
    pooled, saved = cached_arrays("cnn", key, lambda: pooled_descriptors(
        images, backbone, size, scales, batch_size=batch_size, progress=progress,
        desc=f"{backbone.name}: {ds.name} {split}"))
    return {p: pooled[p] for p in POOLINGS}, saved


def dataset_fc_codes(ds, split: str, backbone: Backbone, progress: bool = True) -> tuple[np.ndarray, float]:
    """:func:`fc_descriptors` of a split of ``ds``, cached on disk (keyed as :func:`dataset_descriptors`, without
    size and scales): ``((N, D) float32, seconds saved)``."""
    from ..cache import cached_arrays

    images, split_key = _split_images(ds, split)
    key = {"what": "cnn fc codes", "backbone": backbone.name, "weights": _weights_key(backbone), **split_key,
           "version": 1}
    arrays, saved = cached_arrays("cnn", key, lambda: {"fc": fc_descriptors(
        images, backbone, progress, desc=f"{backbone.name} fc: {ds.name} {split}")})
    return arrays["fc"], saved


def plain_loop(images: Sequence[np.ndarray], backbone: Backbone, size: int = 480) -> np.ndarray:
    """The reference for :func:`measure_throughput`: what a student would write. For each image: resize, normalise,
    the network under ``torch.no_grad()``, GeM. ``(N, C) float32``."""
    out = []
    with torch.no_grad():
        for im in images:
            x = to_tensor(resize_longer(im, size), backbone)[None]
            out.append(pooling.gem(backbone.feature_map(x))[0].numpy())
    return np.stack(out).astype(np.float32)


def measure_throughput(images: Sequence[np.ndarray], backbone: Backbone, size: int = 480,
                       batch_sizes: Sequence[int] = (1, 4), repeat: int = 2) -> list[dict]:
    """Images per second of :func:`plain_loop` and of :func:`pooled_descriptors` (every pooling) for each batch
    size, on the same images in the same run; the best of ``repeat`` runs each, after one warm-up image.
    Returns ``[{"path", "batch_size", "images_per_s", "ratio"}]``, ``ratio`` to the plain loop (> 1: faster).
    Raises if coursekit's GeM differs from the plain loop's (the comparison would be meaningless)."""
    import time

    def best(fn):
        times, result = [], None
        for _ in range(repeat):
            start = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - start)
        return min(times), result

    plain_loop(images[:1], backbone, size)
    t_plain, ref = best(lambda: plain_loop(images, backbone, size))
    rows = [{"path": "plain loop (GeM)", "batch_size": 1, "images_per_s": len(images) / t_plain, "ratio": 1.0}]
    for b in batch_sizes:
        t, out = best(lambda: pooled_descriptors(images, backbone, size, batch_size=b))
        if not np.allclose(out["gem"], ref, rtol=1e-3, atol=1e-4):
            raise AssertionError("coursekit's GeM differs from the plain loop's")
        rows.append({"path": "coursekit (5 poolings)", "batch_size": b, "images_per_s": len(images) / t,
                     "ratio": t_plain / t})
    return rows
