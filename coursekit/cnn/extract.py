"""From images to pooled CNN vectors: resizing, batching by size, multi-scale, and an on-disk cache.

    X = pooled_descriptors(images, load_backbone(), size=480, scales=(1.0,))   # {"mac": (N, C), "gem": ...}
    arrays, saved = dataset_descriptors(ds, "db")                               # the same, cached on disk

Each image is resized so that its longer side is ``size * scale`` pixels
(aspect kept), normalised as the backbone was trained, and run through the
network under ``torch.inference_mode()``; its last convolutional map is
pooled by every function of :data:`POOLINGS` at once (pooling is cheap, the
network is not). Several scales (Radenovic, Tolias and Chum, TPAMI 2018
use 1, 1/sqrt 2 and 1/2) are combined by summing the L2-normalised vector
of each scale.

A query with a box is resized as a whole image would be, then cropped
to its box: the object keeps the scale it would have in a database
image, as in Radenovic et al.'s code, which shrinks an image too large
but never enlarges a crop. Cutting the box first and resizing the crop
to ``size`` would enlarge the object (several times for small boxes),
and a CNN's filters have a fixed size in pixels: enlarged crops lose much
of GeM's mAP against crops at the database's scale (measured in notebook
07). Vectors are returned unnormalised for one scale, so that
the caller decides (the methods L2-normalise, whiten, normalise again).

A crop (or a whole image) whose shorter side comes out under :data:`MIN_SIDE`
pixels, as a small query box does in a large photograph, is enlarged
(bilinear, aspect kept) until that side is :data:`MIN_SIDE`: below it the
network cannot run at all. It is the only enlargement; the number of
queries it touched is printed when their vectors are computed.

Images of the same resized shape are run as one batch of at most
``batch_size``. The default is 1: on the course's 2-core CPU,
EfficientNet-Lite0 at 480 pixels ran 17.6 images/s one at a time and 4.6
in batches of 8; batches pay on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from . import pooling
from .backbones import Backbone

__all__ = ["POOLINGS", "MIN_SIDE", "resize_longer", "to_tensor", "feature_maps", "pooled_descriptors", "regional_macs",
           "fc_descriptors", "dataset_descriptors", "dataset_fc_codes", "dataset_regional_macs", "set_threads", "plain_loop", "measure_throughput",
           "batches", "split_images", "weights_key", "report_upsampled"]

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

# The shortest side the course's networks accept: each halves its input five times (stride 32), and
# EfficientNet-Lite0's 5 x 5 depthwise convolutions fail on less (31 px fails, 32 runs: a 1 x 6 map at 32 x 200).
MIN_SIDE = 32


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


def _resized(image: np.ndarray, side: int, box) -> tuple[np.ndarray, bool]:
    """The image with its longer side resized to ``side``, then cropped to ``box`` (given in the image's pixels),
    then, if its shorter side is under :data:`MIN_SIDE`, enlarged to it (aspect kept); and whether it was."""
    from ..images import crop

    out = resize_longer(image, side)
    if box is not None:
        fy, fx = out.shape[0] / image.shape[0], out.shape[1] / image.shape[1]
        x1, y1, x2, y2 = np.asarray(box, np.float64)
        out = crop(out, (x1 * fx, y1 * fy, x2 * fx, y2 * fy))
    h, w = out.shape[:2]
    if min(h, w) >= MIN_SIDE:
        return out, False
    scale = MIN_SIDE / min(h, w)
    shape = (max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale)))     # PIL: (width, height)
    return np.asarray(Image.fromarray(out).resize(shape, Image.BILINEAR)), True


def batches(shapes: list[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices into ``shapes`` (a list of ``(h, w)``) grouped by equal shape, in chunks of at most ``batch_size``,
    in first-seen order: a list of lists of ints, each one batch."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(shapes):
        groups.setdefault(s, []).append(i)
    return [ids[s:s + batch_size] for ids in groups.values() for s in range(0, len(ids), batch_size)]


def _check_inputs(images, size: int, scales: Sequence[float], boxes) -> None:
    if size < 32 or not scales or min(scales) <= 0:
        raise ValueError(f"size must be >= 32 pixels and scales positive; got size={size}, scales={scales}")
    if boxes is not None and np.shape(boxes) != (len(images), 4):
        raise ValueError(f"boxes must be (N, 4) = ({len(images)}, 4), one (x1, y1, x2, y2) per image; "
                         f"got {np.shape(boxes)}")


def feature_maps(images: Sequence[np.ndarray] | Sequence[Callable[[], np.ndarray]], backbone: Backbone, side: int,
                 boxes: np.ndarray | None = None, batch_size: int = 1,
                 forward: Callable[[torch.Tensor], torch.Tensor] | None = None, upsampled: set | None = None):
    """Yield ``(rows, fmap)``: the last convolutional maps ``(b, C, h, w)`` of the images ``rows`` (a list of
    indices into ``images``), each image resized so that its longer side is ``side`` (then cropped to its box,
    and enlarged to :data:`MIN_SIDE` if it is smaller: their indices are added to ``upsampled``), batched by
    equal shape. ``forward``: what to run on the normalised batch instead of ``backbone.feature_map`` (e.g.
    the frozen trunk of :func:`coursekit.learning.finetune.split_backbone`). Call it under
    ``torch.inference_mode()``."""
    forward = backbone.feature_map if forward is None else forward
    N = len(images)
    for chunk in range(0, N, 256):     # resize a chunk first (cheap), then run the network by batches of one shape
        ids = range(chunk, min(N, chunk + 256))
        resized = []
        for i in ids:
            image, enlarged = _resized(images[i]() if callable(images[i]) else images[i], side,
                                       None if boxes is None else boxes[i])
            resized.append(image)
            if enlarged and upsampled is not None:
                upsampled.add(i)
        for group in batches([r.shape[:2] for r in resized], batch_size):
            x = torch.stack([to_tensor(resized[j], backbone) for j in group])
            yield [chunk + j for j in group], forward(x)


def pooled_descriptors(images: Sequence[np.ndarray] | Sequence[Callable[[], np.ndarray]], backbone: Backbone,
                       size: int = 480, scales: Sequence[float] = (1.0,), poolings: Sequence[str] = tuple(POOLINGS),
                       batch_size: int = 1, boxes: np.ndarray | None = None, progress: bool = False,
                       desc: str = "cnn", upsampled: set | None = None) -> dict[str, np.ndarray]:
    """Every pooling of every image: ``{pooling: (N, C) float32}``.

    ``images``: ``(H, W, 3) uint8`` arrays, or functions that load one (so
    that a dataset is not held in memory at once). ``boxes``: ``(N, 4)``
    ``(x1, y1, x2, y2)`` in each image's pixels, or None: each image is
    resized whole, then cropped to its box. See the module's docstring for
    sizes, scales, boxes and batches. ``upsampled``: a set that receives
    the indices of the images enlarged to :data:`MIN_SIDE` at some scale.
    """
    unknown = set(poolings) - set(POOLINGS)
    if unknown:
        raise ValueError(f"unknown pooling {sorted(unknown)}; known: {', '.join(POOLINGS)}")
    _check_inputs(images, size, scales, boxes)
    N = len(images)
    out = {p: np.zeros((N, backbone.channels), np.float32) for p in poolings}
    bar = tqdm(total=N * len(scales), desc=desc, disable=not progress)
    with torch.inference_mode():
        for scale in scales:
            for rows, fmap in feature_maps(images, backbone, max(32, round(size * scale)), boxes, batch_size,
                                           upsampled=upsampled):
                for p in poolings:
                    v = POOLINGS[p](fmap).float().numpy()
                    if len(scales) > 1:
                        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
                    out[p][rows] += v
                bar.update(len(rows))
    bar.close()
    return out


def regional_macs(images: Sequence[np.ndarray] | Sequence[Callable[[], np.ndarray]], backbone: Backbone,
                  size: int = 480, L: int = 3, boxes: np.ndarray | None = None, progress: bool = False,
                  desc: str = "cnn regions", upsampled: set | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The L2-normalised MACs of every R-MAC region of every image (:func:`coursekit.cnn.pooling.rmac_regions`),
    for whitening regions before their sum (Tolias, Sicre and Jegou, ICLR 2016).

    Returns ``(V (R_total, C) float32, starts (N,) int64)``: the regions of
    image ``i`` are the rows ``starts[i]`` up to ``starts[i + 1]`` (or the
    end); every image has at least one.
    """
    _check_inputs(images, size, (1.0,), boxes)
    parts: list[np.ndarray | None] = [None] * len(images)
    with torch.inference_mode():
        for rows, fmap in tqdm(feature_maps(images, backbone, size, boxes, upsampled=upsampled), total=len(images),
                               desc=desc, disable=not progress):
            r = pooling.regional_mac(fmap, pooling.rmac_regions(fmap.shape[-2], fmap.shape[-1], L))   # (b, R, C)
            r = (r / (r.norm(dim=-1, keepdim=True) + 1e-6)).float().numpy()
            for i, v in zip(rows, r):
                parts[i] = v
    counts = np.array([len(v) for v in parts], np.int64)
    return np.concatenate(parts).astype(np.float32), np.concatenate([[0], np.cumsum(counts)[:-1]])


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


def split_images(ds, split: str):
    """The images of ``split`` (``"db"``, ``"queries"`` or ``"train"``) of ``ds`` as loaders (callables returning
    ``(H, W, 3) uint8``), their boxes (queries only: ``(N, 4) float``; else None) and the part of a cache key
    naming them (a JSON-able dict)."""
    from ..cache import files_fingerprint
    from ..images import load_image

    paths, boxes = {"db": (ds.db, None), "queries": (ds.queries, ds.bbx), "train": (ds.train, None)}[split]
    key = {"dataset": ds.name, "split": split, "files": files_fingerprint(paths),
           "bbx": None if boxes is None else boxes.round(2).tolist()}
    return [lambda p=p: load_image(p) for p in paths], boxes, key


def weights_key(backbone: Backbone):
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

    images, boxes, split_key = split_images(ds, split)
    key = {"what": "cnn descriptors", "backbone": backbone.name, "weights": weights_key(backbone), "size": size,
           "scales": [float(s) for s in scales], "poolings": list(POOLINGS), **split_key, "version": 2}
    upsampled: set = set()

    def compute() -> dict[str, np.ndarray]:
        out = pooled_descriptors(images, backbone, size, scales, batch_size=batch_size, boxes=boxes,
                                 progress=progress, desc=f"{backbone.name}: {ds.name} {split}", upsampled=upsampled)
        report_upsampled(ds, split, upsampled, size)
        return out

    pooled, saved = cached_arrays("cnn", key, compute)
    return {p: pooled[p] for p in POOLINGS}, saved


def report_upsampled(ds, split: str, upsampled: set, size: int) -> None:
    """Print (once, when the vectors are computed) how many images of ``split`` came out under :data:`MIN_SIDE`
    pixels at ``size`` (small query boxes, thin images) and were enlarged to it, naming the first few."""
    if not upsampled:
        return
    names = {"db": ds.db, "queries": ds.queries, "train": ds.train}[split]
    which = ", ".join(f"{i} ({Path(names[i]).name})" for i in sorted(upsampled)[:5]) + (
        " ..." if len(upsampled) > 5 else "")
    what = "query boxes" if split == "queries" else f"{split} images"
    tqdm.write(f"{ds.name}: {len(upsampled)} of {len(names)} {what} came out under {MIN_SIDE} px at {size} px "
               f"(or a smaller scale) and were enlarged to {MIN_SIDE} px, the smallest the network accepts: {which}")


def dataset_fc_codes(ds, split: str, backbone: Backbone, progress: bool = True) -> tuple[np.ndarray, float]:
    """:func:`fc_descriptors` of a split of ``ds``, cached on disk (keyed as :func:`dataset_descriptors`, without
    size and scales): ``((N, D) float32, seconds saved)``."""
    from ..cache import cached_arrays

    from ..images import crop

    images, boxes, split_key = split_images(ds, split)
    if boxes is not None:         # the crop is the query: it is squashed to 224 x 224 as a whole image is
        images = [lambda f=f, b=b: crop(f(), b) for f, b in zip(images, boxes)]
    key = {"what": "cnn fc codes", "backbone": backbone.name, "weights": weights_key(backbone), **split_key,
           "version": 1}
    arrays, saved = cached_arrays("cnn", key, lambda: {"fc": fc_descriptors(
        images, backbone, progress, desc=f"{backbone.name} fc: {ds.name} {split}")})
    return arrays["fc"], saved


def dataset_regional_macs(ds, split: str, backbone: Backbone, size: int = 480, L: int = 3,
                          progress: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`regional_macs` of a split of ``ds``, cached on disk (keyed as :func:`dataset_descriptors`, with
    ``L``; stored as float16, half the space, which whitening does not notice): ``(V, starts, seconds saved)``."""
    from ..cache import cached_arrays

    images, boxes, split_key = split_images(ds, split)
    key = {"what": "cnn regional macs", "backbone": backbone.name, "weights": weights_key(backbone), "size": size,
           "L": L, **split_key, "version": 1}

    def compute():
        upsampled: set = set()
        V, starts = regional_macs(images, backbone, size, L, boxes, progress,
                                  desc=f"{backbone.name} regions: {ds.name} {split}", upsampled=upsampled)
        report_upsampled(ds, split, upsampled, size)
        return {"V": V.astype(np.float16), "starts": starts}

    arrays, saved = cached_arrays("cnn", key, compute)
    return arrays["V"].astype(np.float32), arrays["starts"], saved


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
    from ..timing import best_of

    plain_loop(images[:1], backbone, size)
    t_plain, ref = best_of(lambda: plain_loop(images, backbone, size), repeat)
    rows = [{"path": "plain loop (GeM)", "batch_size": 1, "images_per_s": len(images) / t_plain, "ratio": 1.0}]
    for b in batch_sizes:
        t, out = best_of(lambda: pooled_descriptors(images, backbone, size, batch_size=b), repeat)
        if not np.allclose(out["gem"], ref, rtol=1e-3, atol=1e-4):
            raise AssertionError("coursekit's GeM differs from the plain loop's")
        rows.append({"path": "coursekit (5 poolings)", "batch_size": b, "images_per_s": len(images) / t,
                     "ratio": t_plain / t})
    return rows
