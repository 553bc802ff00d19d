"""``embedded``: the course's default benchmark, built offline in seconds.

Why a synthetic benchmark?
--------------------------
The real instance-retrieval benchmarks (revisited Oxford and Paris, Holidays,
UKBench...) have to be downloaded. The course must also run without a
network, in CI and on a laptop, so its default dataset is *built* from the
real photographs that the installed packages already ship:

* object photos: ``astronaut``, ``chelsea`` (a cat), ``coffee`` from
  scikit-image, ``china`` and ``flower`` from scikit-learn and
  ``grace_hopper`` from matplotlib give the **query objects**;
* ``motorcycle_left``, ``rocket``, ``ihc`` and ``hubble_deep_field`` from
  scikit-image give the **training objects** (other photos, so that nothing
  learned on the training split has seen a test object);
* scikit-image's grey-level photos and textures (``camera``, ``coins``,
  ``moon``, ``brick``, ``grass``, ``gravel``, ``page``, ``text``, ``cell``,
  ``clock_motion``; tinted with random two-colour ramps) and the colour
  ``retina`` photo give the **backgrounds**, clutter and occluders. No
  background photo is ever the source of an object, so an object never
  appears by accident in another image's background.

What an "object" is
-------------------
Each object photo is cut into a grid of cells of about 120 px (a 3 px
margin between neighbours: different objects never overlap in their
source). A cell with too little texture (sky, out-of-focus background) is
dropped. The object is the cell's pixels under a mask: the whole rectangle,
an ellipse or a random polygon. A few textured cells that would be
near-duplicates of others (plain wood grain, a second piece of star-spangled
flag, blue backdrop) are kept out of the queries: they are pasted as
**clutter** into the test images (distractors above all), where they act as
hard negatives. The
catalogue of objects is the same for every seed (:func:`object_catalogue`);
the seed changes every rendering.

How an image is rendered
------------------------
Every image is 480x360 (landscape) or 360x480 (portrait, one in four). A
background is a random crop of a background photo (flipped or not, blurred
or not, tinted), resized to the image. Clutter is pasted on it (0 or 1 item
behind an object; 1 item of an object's size plus 0-2 small ones in a
distractor), then the object itself through a homography that models a
pinhole camera looking at a planar object:

* ``size``: longer side of the object in pixels before the tilt
  (the *scale*),
* ``tilt`` (degrees) about an in-plane axis at ``tilt_axis`` degrees, the
  camera ``distance`` object sizes away (the *viewpoint change*; a closer
  camera means a stronger perspective),
* ``rotation``: in-plane rotation in degrees,
* ``center``: where it lands; it may stick out of the frame (truncation).

Then an occluder (a textured random polygon) may cover part of it, and the
whole image goes through a "camera": gain, gamma and per-channel gains
(illumination and colour shift), Gaussian blur, Gaussian noise and JPEG
compression at a random quality. Every parameter is stored per image in
``groundtruth.json`` (``db_records``, ``query_records``, ``train_records``),
with ``homography``: the 3x3 matrix from the object's pixels (its box in
the source photo, origin at the box's top-left corner) to the image's, and
``bbx``: the box of the projected object in the image.

Ground truth: the revisited protocol
------------------------------------
The dataset follows revisited Oxford and Paris (Radenovic et al., CVPR
2018): for every query, the database renderings of its object are *easy*,
*hard* or *junk*, from measured rendering parameters:

* ``visible`` = object pixels visible in the image (not occluded, inside
  the frame) / pixels of the whole projected object;
* ``area`` = visible object pixels / image pixels;
* ``scale`` = sqrt(projected object area / the query's projected object area).

*junk* when ``visible < 0.30`` or ``area < 0.012`` (the object is barely
there: it is neither right nor wrong to retrieve it). Otherwise *hard* when
any of ``visible < 0.65``, ``tilt > 45``, ``|rotation| > 60``, ``scale``
outside ``[1/2, 2]``, ``area < 0.04`` or ``blur sigma > 2``. Otherwise
*easy*. Every query has at least one easy positive. The evaluation modes
are then Easy (positives easy, hard ignored), Medium (easy and hard) and
Hard (positives hard, easy ignored).

Queries are separate renderings (mild viewpoint, no occlusion, fully in the
frame) with a box ``bbx = x1, y1, x2, y2`` around the projected object; they
are not in the database. Distractors are background images with clutter but
no query object (``db_labels == -1``). The training split is the training
objects rendered the same way (no junk), with their object ids as labels;
its ids never occur in the database.

Difficulty knobs
----------------
``_TARGETS`` (the share of easy / hard / junk renderings), the sampling
ranges in ``_draw_geometry`` (hard renderings get one or two strong factors
among tilt 50-68 degrees, rotation 70-180 degrees, zoom out 2.1-3.2x or in
2.1-2.8x, 40-62 % occlusion and truncation) and ``_draw_camera``, and the
thresholds ``THRESHOLDS``. With seed 0 (68 queries, 666 database images),
measured with junk removed from the ranking, Easy / Medium / Hard mAP:

* chance (random rankings): about 0.9 / 1.1 / 0.7 %;
* joint HSV colour histogram 8x8x8, Hellinger, queries cropped to their
  box: 11 / 12 / 8 %;
* off-the-shelf EfficientNet-Lite0 (ImageNet), last convolutional map,
  GeM p=3, longer side 448, queries cropped: 63 / 50 / 15 %.

Most of the CNN's false positives are other objects of the same photo
(another patch of cat fur or of the pagoda): the benchmark's hard negatives.

Layout on disk (``cache_root() / "embedded-v{VERSION}-seed{seed}"``)::

    db/000000.jpg ...        database images (shuffled order)
    queries/000000.jpg ...   query images
    train/000000.jpg ...     training images
    groundtruth.json         everything :func:`load_embedded` needs, plus the
                             generator version, the seed, the object
                             catalogue and every image's rendering record

The same seed gives byte-identical files with the same versions of NumPy,
SciPy, OpenCV and Pillow (JPEG encoding and decoding, warps and blurs are
library code).
"""

from __future__ import annotations

import colorsys
import importlib.resources
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cache import cache_root
from .base import Dataset, DatasetError, GroundTruth

__all__ = ["VERSION", "THRESHOLDS", "build_embedded", "load_embedded", "object_catalogue", "default_root"]

#: Generator version: bump it whenever the output for a given seed changes.
VERSION = 1

#: Image sizes (width, height); a quarter of the images are portrait.
LANDSCAPE = (480, 360)
PORTRAIT = (360, 480)

#: Difficulty thresholds (see the module docstring).
THRESHOLDS = {
    "junk_visible": 0.30,   # visible < this -> junk
    "junk_area": 0.012,     # area < this -> junk
    "hard_visible": 0.65,   # visible < this -> hard
    "hard_tilt": 45.0,      # tilt (deg) > this -> hard
    "hard_rotation": 60.0,  # |rotation| (deg) > this -> hard
    "hard_scale": 2.0,      # scale > this or < 1/this -> hard
    "hard_area": 0.04,      # area < this -> hard
    "hard_blur": 2.0,       # blur sigma (px) > this -> hard
}

#: Database renderings per query object: first one always easy, the others
#: easy / hard / junk with these probabilities.
_N_POSITIVES = (5, 7)  # inclusive range
_TARGETS = {"easy": 0.45, "hard": 0.40, "junk": 0.15}
_N_DISTRACTORS = 260
_N_TRAIN_RENDERINGS = 6
_TRAIN_TARGETS = {"easy": 0.6, "hard": 0.4}

# ----------------------------------------------------------------------------
# Source photographs
# ----------------------------------------------------------------------------

# name -> (package, path inside the package, role, resize factor)
_SOURCES = {
    "astronaut": ("skimage", "data/astronaut.png", "query", 1.0),
    "chelsea": ("skimage", "data/chelsea.png", "query", 1.0),
    "coffee": ("skimage", "data/coffee.png", "query", 1.0),
    "china": ("sklearn.datasets", "images/china.jpg", "query", 1.0),
    "flower": ("sklearn.datasets", "images/flower.jpg", "query", 1.0),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "query", 1.0),
    "motorcycle_left": ("skimage", "data/motorcycle_left.png", "train", 1.0),
    "rocket": ("skimage", "data/rocket.jpg", "train", 1.0),
    "ihc": ("skimage", "data/ihc.png", "train", 1.0),
    "hubble_deep_field": ("skimage", "data/hubble_deep_field.jpg", "train", 0.6),
    "retina": ("skimage", "data/retina.jpg", "background", 0.5),
    "camera": ("skimage", "data/camera.png", "background", 1.0),
    "coins": ("skimage", "data/coins.png", "background", 1.0),
    "moon": ("skimage", "data/moon.png", "background", 1.0),
    "brick": ("skimage", "data/brick.png", "background", 1.0),
    "grass": ("skimage", "data/grass.png", "background", 1.0),
    "gravel": ("skimage", "data/gravel.png", "background", 1.0),
    "page": ("skimage", "data/page.png", "background", 1.0),
    "text": ("skimage", "data/text.png", "background", 1.0),
    "cell": ("skimage", "data/cell.png", "background", 1.0),
    "clock_motion": ("skimage", "data/clock_motion.png", "background", 1.0),
}
# motorcycle_right is deliberately unused: it shows the same scene as
# motorcycle_left.

_CELL = 120           # target grid cell size in source pixels
_MARGIN = 3           # gap kept between neighbouring objects
_MIN_GRADIENT = 25.0  # mean Sobel magnitude of a textured cell
_MIN_COLOUR_STD = 12.0
# Textured cells (source, row, column) kept out of the queries because
# another query looks almost the same; they become distractor clutter.
_NOT_QUERIES = {
    ("astronaut", 2, 3),                               # mostly black
    ("coffee", 0, 0), ("coffee", 0, 4), ("coffee", 1, 4),  # plain wood grain
    ("coffee", 2, 0), ("coffee", 2, 4),
    ("china", 3, 4),                                   # foliage again
    ("grace_hopper", 1, 0),                            # stars again
    ("grace_hopper", 2, 3),                            # blue backdrop
}
# At most this many training objects per source (the most textured cells).
_MAX_TRAIN_PER_SOURCE = {"ihc": 10, "hubble_deep_field": 10}
_CATALOGUE_SEED = 20180618  # fixed: the catalogue does not depend on the seed


def _source_file(name: str) -> Path:
    package, rel, _, _ = _SOURCES[name]
    if package == "matplotlib":
        import matplotlib

        path = Path(matplotlib.get_data_path()) / Path(rel).relative_to("mpl-data")
    else:
        path = Path(str(importlib.resources.files(package))) / rel
    if not path.is_file():
        raise DatasetError(
            f"dataset 'embedded': the source photo {path} is missing; it ships with "
            f"the '{package.split('.')[0]}' package. Reinstall that package."
        )
    return path


def _read_source(name: str) -> np.ndarray:
    """A source photo: ``(H, W, 3) uint8`` RGB, or ``(H, W) uint8`` for grey ones."""
    import cv2
    from PIL import Image

    with Image.open(_source_file(name)) as im:
        im.load()
        if im.mode in ("1", "L", "I;16", "I", "F"):
            arr = np.asarray(im.convert("L"))
        else:
            arr = np.asarray(im.convert("RGB"))
    factor = _SOURCES[name][3]
    if factor != 1.0:
        arr = cv2.resize(arr, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(arr)


# ----------------------------------------------------------------------------
# The object catalogue
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    """One object of the catalogue.

    ``id`` is the label used in ``db_labels``, ``query_labels`` and
    ``train_labels``; ``split`` is ``"query"``, ``"train"`` or ``"clutter"``;
    ``box`` is ``x0, y0, x1, y1`` in the (resized) source photo; ``shape`` is
    the mask: ``"rect"``, ``"ellipse"`` or ``"polygon"``; ``cell`` the grid
    row and column.
    """

    id: int
    split: str
    source: str
    cell: tuple[int, int]
    box: tuple[int, int, int, int]
    shape: str

    def as_dict(self) -> dict:
        return {"id": self.id, "split": self.split, "source": self.source,
                "cell": list(self.cell), "box": list(self.box), "shape": self.shape}


def _textured_cells(name: str, img: np.ndarray) -> list[tuple[int, int, tuple[int, int, int, int], float]]:
    """Grid cells of a photo with enough texture: ``(row, col, box, score)``."""
    import cv2

    h, w = img.shape[:2]
    nx, ny = max(1, round(w / _CELL)), max(1, round(h / _CELL))
    xs = np.linspace(0, w, nx + 1).astype(int)
    ys = np.linspace(0, h, ny + 1).astype(int)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    cells = []
    for r in range(ny):
        for c in range(nx):
            x0, x1, y0, y1 = xs[c], xs[c + 1], ys[r], ys[r + 1]
            g = float(grad[y0:y1, x0:x1].mean())
            s = float(img[y0:y1, x0:x1].reshape(-1, 3).std(0).mean())
            if g >= _MIN_GRADIENT and s >= _MIN_COLOUR_STD:
                box = (int(x0) + _MARGIN, int(y0) + _MARGIN, int(x1) - _MARGIN, int(y1) - _MARGIN)
                cells.append((r, c, box, g))
    return cells


def object_catalogue(sources: dict[str, np.ndarray] | None = None) -> list[ObjectInfo]:
    """Every object of the benchmark, the same for every seed.

    Ids are ``0 .. Q-1`` for the query objects, then the training objects,
    then the clutter objects (never labelled in the dataset).
    """
    sources = sources if sources is not None else {n: _read_source(n) for n in _SOURCES
                                                   if _SOURCES[n][2] != "background"}
    rng = np.random.default_rng(_CATALOGUE_SEED)
    query, train, clutter = [], [], []
    for name, (_, _, role, _) in _SOURCES.items():
        if role == "background":
            continue
        cells = _textured_cells(name, sources[name])
        if role == "train" and name in _MAX_TRAIN_PER_SOURCE:
            keep = sorted(cells, key=lambda t: -t[3])[: _MAX_TRAIN_PER_SOURCE[name]]
            cells = [t for t in cells if t in keep]
        for r, c, box, _ in cells:
            shape = ("rect", "ellipse", "polygon")[int(rng.choice(3, p=[0.3, 0.3, 0.4]))]
            entry = (name, (r, c), box, shape)
            if role == "train":
                train.append(entry)
            elif (name, r, c) in _NOT_QUERIES:
                clutter.append(entry)
            else:
                query.append(entry)
    out = []
    for split, entries in (("query", query), ("train", train), ("clutter", clutter)):
        for name, cell, box, shape in entries:
            out.append(ObjectInfo(len(out), split, name, cell, box, shape))
    return out


def _shape_mask(shape: str, w: int, h: int, key: int) -> np.ndarray:
    """Anti-aliased mask ``(h, w) uint8`` of an object shape (0 or 255 inside)."""
    import cv2

    if shape == "rect":
        return np.full((h, w), 255, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    if shape == "ellipse":
        t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        pts = np.stack([(w - 1) / 2 * (1 + np.cos(t)), (h - 1) / 2 * (1 + np.sin(t))], 1)
    else:
        rng = np.random.default_rng([_CATALOGUE_SEED, key])
        pts = _blob(rng, (w - 1) / 2, (h - 1) / 2, (w - 1) / 2, (h - 1) / 2, rmin=0.7)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return mask


def _blob(rng, cx, cy, rx, ry, rmin=0.55, n=None) -> np.ndarray:
    """A random star-shaped polygon ``(n, 2) float64`` around ``(cx, cy)``."""
    n = int(rng.integers(6, 11)) if n is None else n
    ang = (np.arange(n) + rng.uniform(-0.35, 0.35, n)) * (2 * np.pi / n) + rng.uniform(0, 2 * np.pi)
    rad = rng.uniform(rmin, 1.0, n)
    return np.stack([cx + rx * rad * np.cos(ang), cy + ry * rad * np.sin(ang)], 1)


# ----------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------


class _Assets:
    """Source photos, object patches and masks, loaded once per build."""

    def __init__(self) -> None:
        self.src = {name: _read_source(name) for name in _SOURCES}
        self.catalogue = object_catalogue(self.src)
        self.patches: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for o in self.catalogue:
            x0, y0, x1, y1 = o.box
            patch = np.ascontiguousarray(self.src[o.source][y0:y1, x0:x1])
            self.patches[o.id] = (patch, _shape_mask(o.shape, x1 - x0, y1 - y0, o.id))
        self.backgrounds = [n for n, v in _SOURCES.items() if v[2] == "background"]
        self.clutter_ids = [o.id for o in self.catalogue if o.split == "clutter"]


def _u(rng, lo, hi) -> float:
    return float(rng.uniform(lo, hi))


def _colour(h, s, v) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32) * 255


def _tinted(rng, src: np.ndarray, out_w: int, out_h: int, record: dict | None = None) -> np.ndarray:
    """A random crop of a source photo resized to ``out_w x out_h``, coloured: ``(h, w, 3) uint8``."""
    import cv2

    sh, sw = src.shape[:2]
    aspect = out_w / out_h
    max_w = min(sw, sh * aspect)
    cw = max_w * _u(rng, 0.35, 1.0)
    ch = cw / aspect
    x0, y0 = _u(rng, 0, sw - cw), _u(rng, 0, sh - ch)
    crop = src[int(y0): int(y0 + ch), int(x0): int(x0 + cw)]
    flip = bool(rng.random() < 0.5)
    if flip:
        crop = crop[:, ::-1]
    interp = cv2.INTER_AREA if crop.shape[1] > out_w else cv2.INTER_LINEAR
    crop = cv2.resize(np.ascontiguousarray(crop), (out_w, out_h), interpolation=interp)
    if crop.ndim == 2:  # two-colour ramp: dark colour -> light colour
        hue = _u(rng, 0, 1)
        lo = _colour(hue + _u(rng, -0.15, 0.15), _u(rng, 0.2, 0.9), _u(rng, 0.0, 0.35))
        hi = _colour(hue + _u(rng, -0.15, 0.15), _u(rng, 0.1, 0.7), _u(rng, 0.6, 1.0))
        lut = (lo[None, :] + (hi - lo)[None, :] * (np.arange(256, dtype=np.float32)[:, None] / 255))
        lut = np.clip(np.round(lut), 0, 255).astype(np.uint8)
        out = cv2.LUT(cv2.merge([crop, crop, crop]), lut.reshape(256, 1, 3))
        tint = {"low": np.round(lo.astype(np.float64), 1).tolist(), "high": np.round(hi.astype(np.float64), 1).tolist()}
    else:
        gains = 2.0 ** rng.uniform(-0.5, 0.5, 3)
        perm = rng.permutation(3)
        out = np.clip(crop[..., perm].astype(np.float32) * gains.astype(np.float32), 0, 255).astype(np.uint8)
        tint = {"channels": perm.tolist(), "gains": np.round(gains, 3).tolist()}
    if record is not None:
        record.update({"crop": [round(x0, 1), round(y0, 1), round(cw, 1), round(ch, 1)],
                       "flip": flip, "tint": tint})
    return out


def _background(rng, assets: _Assets, w: int, h: int) -> tuple[np.ndarray, dict]:
    name = assets.backgrounds[int(rng.integers(len(assets.backgrounds)))]
    rec: dict = {"source": name}
    img = _tinted(rng, assets.src[name], w, h, rec)
    sigma = _u(rng, 1.0, 3.0) if rng.random() < 0.3 else 0.0
    if sigma:
        import cv2

        img = cv2.GaussianBlur(img, (0, 0), sigma)
    rec["blur"] = round(sigma, 2)
    return img, rec


def _projected_corners(w, h, size, tilt, tilt_axis, rotation, distance) -> np.ndarray:
    """Corners ``(4, 2)`` of a ``w x h`` plane seen by a pinhole camera, centred at 0.

    The plane is scaled so its longer side is ``size`` px, tilted by ``tilt``
    degrees about the in-plane axis at ``tilt_axis`` degrees, rotated by
    ``rotation`` degrees in the image plane and seen from ``distance * size``
    px with a focal length of the same value (so an untilted plane keeps its
    size).
    """
    s = size / max(w, h)
    p = np.array([[-w / 2, -h / 2, 0], [w / 2, -h / 2, 0], [w / 2, h / 2, 0], [-w / 2, h / 2, 0]]) * s
    a, t, r = np.radians(tilt_axis), np.radians(tilt), np.radians(rotation)
    k = np.array([np.cos(a), np.sin(a), 0.0])
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot_tilt = np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * kx @ kx  # Rodrigues
    rot_z = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    q = p @ (rot_z @ rot_tilt).T
    d = distance * size
    return d * q[:, :2] / (d + q[:, 2:3])


def _warp(patch, mask, corners, center, w, h):
    """Warp an object into a ``w x h`` canvas.

    Returns the warped patch ``(h, w, 3) uint8``, its mask ``(h, w) uint8``,
    the area in pixels of the whole projected mask (in the frame or not) and
    the homography ``(3, 3)`` from the patch's pixel coordinates to the image.
    """
    import cv2

    ph, pw = ph0, pw0 = mask.shape
    dst = (corners + np.asarray(center)[None, :]).astype(np.float32)
    # shrink the patch first when it is drawn much smaller (anti-aliasing)
    side = max(np.ptp(dst[:, 0]), np.ptp(dst[:, 1]))
    if side < 0.7 * max(pw, ph):
        f = max(side / max(pw, ph), 0.05)
        nw, nh = max(2, round(pw * f)), max(2, round(ph * f))
        patch = cv2.resize(patch, (nw, nh), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_AREA)
        ph, pw = nh, nw
    src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    hom = cv2.getPerspectiveTransform(src, dst)
    img = cv2.warpPerspective(patch, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m = cv2.warpPerspective(mask, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    # area of the whole projected mask, inside the frame or not:
    # sum of mask * |det J|, with det J = det(H) / w(x, y)^3 for a homography
    ys, xs = np.mgrid[0:ph, 0:pw].astype(np.float64) + 0.5
    den = hom[2, 0] * xs + hom[2, 1] * ys + hom[2, 2]
    full = float(np.sum(mask / 255.0 * np.abs(np.linalg.det(hom) / den**3)))
    return img, m, full, hom @ np.diag([pw / pw0, ph / ph0, 1.0])


def _paste(canvas: np.ndarray, img: np.ndarray, mask: np.ndarray) -> None:
    """Alpha-blend ``img`` onto ``canvas`` (both uint8) in place, where ``mask`` > 0."""
    import cv2

    x0, y0, bw, bh = cv2.boundingRect(mask)
    if bw == 0 or bh == 0:
        return
    x1, y1 = x0 + bw, y0 + bh
    a = mask[y0:y1, x0:x1, None].astype(np.float32) / 255.0
    c = canvas[y0:y1, x0:x1].astype(np.float32)
    canvas[y0:y1, x0:x1] = np.round(c + a * (img[y0:y1, x0:x1].astype(np.float32) - c)).astype(np.uint8)


def _clutter(rng, assets: _Assets, canvas: np.ndarray, use_objects: bool,
             size: tuple[float, float] = (0.2, 0.5), p_object: float = 0.5) -> dict:
    """Paste one clutter item: a non-query object or a tinted texture blob.

    ``size`` is the range of its longer side as a fraction of the image's
    shorter side; ``p_object`` the probability of a non-query object.
    """
    h, w = canvas.shape[:2]
    if use_objects and assets.clutter_ids and rng.random() < p_object:
        oid = assets.clutter_ids[int(rng.integers(len(assets.clutter_ids)))]
        patch, mask = assets.patches[oid]
        rec: dict = {"object": oid}
    else:
        name = assets.backgrounds[int(rng.integers(len(assets.backgrounds)))]
        pw, ph = int(rng.integers(80, 161)), int(rng.integers(80, 161))
        patch = _tinted(rng, assets.src[name], pw, ph)
        import cv2

        mask = np.zeros((ph, pw), np.uint8)
        pts = _blob(rng, (pw - 1) / 2, (ph - 1) / 2, (pw - 1) / 2, (ph - 1) / 2, rmin=0.6)
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        rec = {"texture": name}
    size = _u(rng, *size) * min(w, h)
    geo = {"size": size, "tilt": _u(rng, 0, 40), "tilt_axis": _u(rng, 0, 180),
           "rotation": _u(rng, -180, 180), "distance": _u(rng, 1.5, 3.0)}
    corners = _projected_corners(mask.shape[1], mask.shape[0], **geo)
    center = (_u(rng, 0, w), _u(rng, 0, h))
    img, m, _, _ = _warp(patch, mask, corners, center, w, h)
    _paste(canvas, img, m)
    rec.update({k: round(v, 2) for k, v in geo.items()})
    rec["center"] = [round(center[0], 1), round(center[1], 1)]
    return rec


def _draw_geometry(rng, target: str, query_size: float, short: int) -> tuple[dict, dict]:
    """Geometry of one object rendering for a difficulty target.

    Returns the homography parameters (see :func:`_projected_corners`) and
    the placement plan: ``fit`` (shrink it to fit the frame), ``in_frame``
    (about that fraction of its box stays in the frame) and ``occlusion``
    (the fraction an occluder should cover).
    """
    geo = {"tilt": _u(rng, 0, 35), "tilt_axis": _u(rng, 0, 180), "rotation": _u(rng, -30, 30),
           "distance": _u(rng, 1.5, 3.0), "size": query_size * 2.0 ** _u(rng, -0.6, 0.6)}
    plan = {"in_frame": 1.0, "occlusion": _u(rng, 0.05, 0.25) if rng.random() < 0.35 else 0.0,
            "fit": True}
    if target == "hard":
        factors = ["tilt", "rotation", "scale", "occlusion", "truncation"]
        k = 1 if rng.random() < 0.6 else 2
        for f in rng.choice(factors, size=k, replace=False):
            if f == "tilt":
                geo["tilt"] = _u(rng, 50, 68)
            elif f == "rotation":
                geo["rotation"] = _u(rng, 70, 180) * (1 if rng.random() < 0.5 else -1)
            elif f == "scale":
                if rng.random() < 0.6:
                    geo["size"] = query_size * 2.0 ** _u(rng, -1.7, -1.1)
                else:  # zoomed in: allowed to stick out of the frame
                    geo["size"] = query_size * 2.0 ** _u(rng, 1.1, 1.5)
                    plan["fit"] = False
            elif f == "occlusion":
                plan["occlusion"] = _u(rng, 0.4, 0.62)
            else:
                plan["in_frame"] = _u(rng, 0.4, 0.6)
    elif target == "junk":
        if rng.random() < 0.5:
            geo["size"] = _u(rng, 26, 50)
        elif rng.random() < 0.5:
            plan["in_frame"] = _u(rng, 0.08, 0.25)
        else:
            plan["occlusion"] = _u(rng, 0.78, 0.95)
    geo["size"] = float(min(geo["size"], 1.5 * short))
    return geo, plan


def _draw_camera(rng, level: str) -> dict:
    """Photometric parameters: ``mild`` (queries), ``easy`` or ``hard``."""
    span = {"mild": (0.25, 0.15, 0.06, 0.8, 3.0, (75, 96)),
            "easy": (0.5, 0.3, 0.12, 1.5, 5.0, (55, 96)),
            "hard": (0.8, 0.45, 0.2, 2.6, 10.0, (35, 91))}[level]
    g, gm, ch, blur_max, noise_max, q = span
    blur = _u(rng, 0.3, blur_max) if rng.random() < 0.5 else 0.0
    return {"gain": round(2.0 ** _u(rng, -g, g), 3), "gamma": round(2.0 ** _u(rng, -gm, gm), 3),
            "channels": np.round(2.0 ** rng.uniform(-ch, ch, 3), 3).tolist(),
            "blur": round(blur, 2), "noise": round(_u(rng, 0, noise_max), 2),
            "jpeg_quality": int(rng.integers(q[0], q[1]))}


_NORMAL_TABLE: np.ndarray | None = None


def _normal_table() -> np.ndarray:
    """Quantiles of the standard normal at ``(i + 0.5) / 65536``, ``(65536,) float32``."""
    global _NORMAL_TABLE
    if _NORMAL_TABLE is None:
        from scipy.special import ndtri

        _NORMAL_TABLE = ndtri((np.arange(65536) + 0.5) / 65536).astype(np.float32)
    return _NORMAL_TABLE


def _apply_camera(rng, img: np.ndarray, cam: dict) -> np.ndarray:
    import cv2

    x = np.arange(256, dtype=np.float64) / 255.0
    lut = np.stack([np.clip(255.0 * cam["gain"] * c * x ** cam["gamma"], 0, 255) for c in cam["channels"]], -1)
    out = cv2.LUT(img, np.round(lut).astype(np.uint8).reshape(256, 1, 3))
    if cam["blur"] > 0:
        out = cv2.GaussianBlur(out, (0, 0), cam["blur"])
    if cam["noise"] > 0:
        # Gaussian noise through a 16-bit inverse-CDF table: 3x faster than
        # rng.standard_normal and as Gaussian as an image needs
        noisy = _normal_table()[rng.integers(0, 65536, out.shape, dtype=np.uint16)]
        noisy *= np.float32(cam["noise"])
        noisy += out
        np.clip(noisy, 0, 255, out=noisy)
        out = np.rint(noisy).astype(np.uint8)
    return out


def _occluder(rng, assets: _Assets, canvas, obj_mask, full_area, target) -> tuple[np.ndarray, dict]:
    """Cover about ``target`` of the object's projected area with a textured blob.

    Returns the occluder mask (uint8) and its record. The blob slides along
    a random direction from the object's centre until the covered fraction
    is as close to ``target`` as a bisection gets it.
    """
    import cv2

    h, w = canvas.shape[:2]
    ys, xs = np.nonzero(obj_mask > 127)
    cy, cx = ys.mean(), xs.mean()
    radius = max(np.ptp(xs), np.ptp(ys)) / 2 + 1
    r = radius * _u(rng, max(0.6, target + 0.3), max(1.1, target + 0.6))  # big enough to reach target
    shape = _blob(rng, 0, 0, r * _u(rng, 0.7, 1.3), r * _u(rng, 0.7, 1.3), rmin=0.6)
    ang = _u(rng, 0, 2 * np.pi)
    direction = np.array([np.cos(ang), np.sin(ang)])
    objf = obj_mask.astype(np.float32) / 255.0

    def blob_mask(d):
        m = np.zeros((h, w), np.uint8)
        pts = shape + np.array([cx, cy]) + d * direction
        cv2.fillPoly(m, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        return m

    def covered(d):
        return float(np.sum(objf * blob_mask(d)) / 255.0 / full_area)

    lo, hi = 0.0, radius + 1.6 * r  # covered(lo) is large, covered(hi) is ~0
    for _ in range(12):
        mid = (lo + hi) / 2
        if covered(mid) > target:
            lo = mid
        else:
            hi = mid
    d = (lo + hi) / 2
    m = blob_mask(d)
    bb = cv2.boundingRect(m)
    name = assets.backgrounds[int(rng.integers(len(assets.backgrounds)))]
    tex = np.zeros_like(canvas)
    x, y, bw, bh = bb
    if bw > 0 and bh > 0:
        tex[y:y + bh, x:x + bw] = _tinted(rng, assets.src[name], bw, bh)
    _paste(canvas, tex, m)
    return m, {"texture": name, "offset": round(d, 1), "direction": round(float(np.degrees(ang)), 1)}


def _render_object(rng, assets: _Assets, oid: int, geo: dict, plan: dict, w: int, h: int,
                   use_clutter_objects: bool, n_clutter: int) -> tuple[np.ndarray, dict]:
    """Background + clutter + object (+ occluder); returns the image before the camera."""
    canvas, bg = _background(rng, assets, w, h)
    clutter = [_clutter(rng, assets, canvas, use_clutter_objects) for _ in range(n_clutter)]
    patch, mask = assets.patches[oid]
    corners = _projected_corners(mask.shape[1], mask.shape[0], **geo)
    x0, y0 = corners.min(0)
    x1, y1 = corners.max(0)
    bw, bh = x1 - x0, y1 - y0
    if plan.get("fit", True) and (bw > 0.95 * w or bh > 0.95 * h):  # shrink to fit the frame
        geo = {**geo, "size": geo["size"] * min(0.95 * w / bw, 0.95 * h / bh)}
        corners = _projected_corners(mask.shape[1], mask.shape[0], **geo)
        x0, y0 = corners.min(0)
        x1, y1 = corners.max(0)
        bw, bh = x1 - x0, y1 - y0
    if plan["in_frame"] < 1.0:
        # slide out through a random side until about in_frame of the box is left
        side = int(rng.integers(4))
        keep = plan["in_frame"]
        cx = _u(rng, -x0, w - x1) if bw < w else w / 2 - (x0 + x1) / 2
        cy = _u(rng, -y0, h - y1) if bh < h else h / 2 - (y0 + y1) / 2
        if side == 0:
            cx = -x0 - (1 - keep) * bw
        elif side == 1:
            cx = w - x1 + (1 - keep) * bw
        elif side == 2:
            cy = -y0 - (1 - keep) * bh
        else:
            cy = h - y1 + (1 - keep) * bh
    else:
        cx = _u(rng, -x0, w - x1) if bw < w else w / 2 - (x0 + x1) / 2
        cy = _u(rng, -y0, h - y1) if bh < h else h / 2 - (y0 + y1) / 2
    img, m, full, hom = _warp(patch, mask, corners, (cx, cy), w, h)
    _paste(canvas, img, m)
    rec = {"object": oid, "background": bg, "clutter": clutter,
           **{k: round(float(v), 2) for k, v in geo.items()},
           "center": [round(float(cx), 1), round(float(cy), 1)],
           "homography": np.round(hom, 6).tolist(), "occluder": None}
    vis_mask = m.astype(np.float32) / 255.0
    if plan["occlusion"] > 0 and m.max() > 127:
        occ, rec["occluder"] = _occluder(rng, assets, canvas, m, full, plan["occlusion"])
        vis_mask = vis_mask * (1.0 - occ.astype(np.float32) / 255.0)
    visible_px = float(vis_mask.sum())
    rec["projected_area"] = round(full, 1)
    rec["visible"] = round(min(1.0, visible_px / max(full, 1e-6)), 4)
    rec["area"] = round(visible_px / (w * h), 4)
    ys, xs = np.nonzero(m > 127)
    rec["bbx"] = ([int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
                  if xs.size else [0, 0, 0, 0])
    return canvas, rec


def _difficulty(rec: dict, query_area: float) -> str:
    t = THRESHOLDS
    scale = float(np.sqrt(rec["projected_area"] / query_area))
    rec["scale"] = round(scale, 3)
    rot = abs((rec["rotation"] + 180) % 360 - 180)
    if rec["visible"] < t["junk_visible"] or rec["area"] < t["junk_area"]:
        return "junk"
    if (rec["visible"] < t["hard_visible"] or rec["tilt"] > t["hard_tilt"] or rot > t["hard_rotation"]
            or not (1 / t["hard_scale"] <= scale <= t["hard_scale"]) or rec["area"] < t["hard_area"]
            or rec["camera"]["blur"] > t["hard_blur"]):
        return "hard"
    return "easy"


def _image_size(rng) -> tuple[int, int]:
    return PORTRAIT if rng.random() < 0.25 else LANDSCAPE


def _write_jpeg(path: Path, img: np.ndarray, quality: int) -> None:
    from PIL import Image

    Image.fromarray(img).save(path, format="JPEG", quality=int(quality), optimize=False,
                              progressive=False, subsampling=2)


def _render_query(rng, assets, oid):
    w, h = _image_size(rng)
    short = min(w, h)
    geo = {"tilt": _u(rng, 0, 15), "tilt_axis": _u(rng, 0, 180), "rotation": _u(rng, -10, 10),
           "distance": _u(rng, 2.0, 3.0), "size": _u(rng, 0.45, 0.7) * short}
    img, rec = _render_object(rng, assets, oid, geo, {"in_frame": 1.0, "occlusion": 0.0}, w, h,
                              True, int(rng.integers(0, 2)))
    rec["camera"] = _draw_camera(rng, "mild")
    return _apply_camera(rng, img, rec["camera"]), rec


def _render_positive(rng, assets, oid, target, query_rec, use_clutter_objects=True):
    w, h = _image_size(rng)
    geo, plan = _draw_geometry(rng, target, query_rec["size"], min(w, h))
    img, rec = _render_object(rng, assets, oid, geo, plan, w, h, use_clutter_objects,
                              int(rng.integers(0, 2)))
    rec["camera"] = _draw_camera(rng, "hard" if target == "hard" else "easy")
    rec["target"] = target
    rec["difficulty"] = _difficulty(rec, query_rec["projected_area"])
    return _apply_camera(rng, img, rec["camera"]), rec


def _render_distractor(rng, assets):
    w, h = _image_size(rng)
    canvas, bg = _background(rng, assets, w, h)
    # one item of an object's size (half the time a non-query object), 0-2 small ones
    clutter = [_clutter(rng, assets, canvas, True) for _ in range(int(rng.integers(0, 3)))]
    clutter.append(_clutter(rng, assets, canvas, True, size=(0.3, 0.75), p_object=0.5))
    cam = _draw_camera(rng, "easy" if rng.random() < 0.6 else "hard")
    return _apply_camera(rng, canvas, cam), {"object": -1, "background": bg, "clutter": clutter, "camera": cam}


# ----------------------------------------------------------------------------
# Build and load
# ----------------------------------------------------------------------------


def default_root(seed: int = 0) -> Path:
    """``cache_root() / "embedded-v{VERSION}-seed{seed}"``."""
    return cache_root() / f"embedded-v{VERSION}-seed{seed}"


def _choice(rng, probs: dict) -> str:
    keys = list(probs)
    return keys[int(rng.choice(len(keys), p=np.array([probs[k] for k in keys])))]


def _plan(plan_rng, catalogue: list[ObjectInfo]) -> list[tuple[str, int, str]]:
    """The images to render, in order: ``(kind, object id, difficulty target)``.

    ``kind`` is ``"query"``, ``"db"``, ``"train"`` or ``"reference"`` (a
    query-like rendering of a training object, never written: the scale of
    its training renderings is measured against it).
    """
    jobs: list[tuple[str, int, str]] = []
    for o in catalogue:
        if o.split == "query":
            n = int(plan_rng.integers(_N_POSITIVES[0], _N_POSITIVES[1] + 1))
            jobs.append(("query", o.id, "query"))
            jobs.append(("db", o.id, "first"))  # must come out easy
            jobs += [("db", o.id, _choice(plan_rng, _TARGETS)) for _ in range(n - 1)]
    jobs += [("db", -1, "distractor")] * _N_DISTRACTORS
    for o in catalogue:
        if o.split == "train":
            jobs.append(("reference", o.id, "query"))
            jobs += [("train", o.id, _choice(plan_rng, _TRAIN_TARGETS)) for _ in range(_N_TRAIN_RENDERINGS)]
    return jobs


def _render_job(rng, assets: _Assets, kind: str, oid: int, target: str, ref: dict[int, dict]):
    """Render one planned image: ``(image (h, w, 3) uint8, record)``."""
    if kind in ("query", "reference"):
        return _render_query(rng, assets, oid)
    if oid < 0:
        return _render_distractor(rng, assets)
    for _ in range(100):
        if kind == "db":
            img, rec = _render_positive(rng, assets, oid, "easy" if target == "first" else target, ref[oid])
            if target != "first" or rec["difficulty"] == "easy":
                break
        else:  # training images: no junk, and clutter from the background photos only
            img, rec = _render_positive(rng, assets, oid, target, ref[oid], use_clutter_objects=False)
            if rec["difficulty"] != "junk":
                break
    return img, rec


def build_embedded(out_dir: Path, seed: int = 0, progress: bool = True) -> Path:
    """Build the benchmark into ``out_dir`` (which must not exist yet); return it.

    Everything is written into a temporary sibling folder that is renamed to
    ``out_dir`` at the very end, so an interrupted build never looks
    complete. About 10-20 s on one core, about 22 MB: 68 queries, 666
    database images (408 renderings of the query objects, 258 distractors)
    and 312 training images for seed 0.

    Randomness: ``np.random.SeedSequence([seed, VERSION])`` draws the plan
    (how many renderings of each object, their difficulty targets, the
    shuffled database order) and gives every image its own child generator,
    so each image depends only on the seed and its place in the plan. The
    same seed gives byte-identical files (same library versions).
    """
    import cv2
    from tqdm.auto import tqdm

    out_dir = Path(out_dir).expanduser()
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; delete it to rebuild the embedded dataset")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # small images: threads cost more than they save
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o755)
        for sub in ("db", "queries", "train"):
            (tmp / sub).mkdir()
        assets = _Assets()
        plan_ss, image_ss = np.random.SeedSequence([int(seed), VERSION]).spawn(2)
        plan_rng = np.random.default_rng(plan_ss)
        jobs = _plan(plan_rng, assets.catalogue)
        n_db = sum(kind == "db" for kind, _, _ in jobs)
        db_index = iter(plan_rng.permutation(n_db).tolist())  # shuffled database order
        db_recs: list[dict] = [{}] * n_db
        q_recs: list[dict] = []
        t_recs: list[dict] = []
        ref: dict[int, dict] = {}  # query (or reference) record of every object
        bar = tqdm(total=sum(kind != "reference" for kind, _, _ in jobs), desc="embedded",
                   unit="img", disable=not progress, leave=False)
        for (kind, oid, target), ss in zip(jobs, image_ss.spawn(len(jobs))):
            img, rec = _render_job(np.random.default_rng(ss), assets, kind, oid, target, ref)
            if kind in ("query", "reference"):
                ref[oid] = rec
            if kind == "reference":
                continue
            if kind == "query":
                rec["file"] = f"queries/{len(q_recs):06d}.jpg"
                q_recs.append(rec)
            elif kind == "train":
                rec["file"] = f"train/{len(t_recs):06d}.jpg"
                t_recs.append(rec)
            else:
                i = next(db_index)
                rec["file"] = f"db/{i:06d}.jpg"
                db_recs[i] = rec
            _write_jpeg(tmp / rec["file"], img, rec["camera"]["jpeg_quality"])
            bar.update(1)
        bar.close()

        gnd = []
        for q in q_recs:
            g: dict[str, list[int]] = {"easy": [], "hard": [], "junk": []}
            for i, r in enumerate(db_recs):
                if r["object"] == q["object"]:
                    g[r["difficulty"]].append(i)
            gnd.append(g)
        meta = {
            "name": "embedded",
            "version": VERSION,
            "seed": int(seed),
            "protocol": "revisited",
            "thresholds": THRESHOLDS,
            "objects": [o.as_dict() for o in assets.catalogue],
            "db": [r["file"] for r in db_recs],
            "queries": [r["file"] for r in q_recs],
            "train": [r["file"] for r in t_recs],
            "db_labels": [int(r["object"]) for r in db_recs],
            "query_labels": [int(r["object"]) for r in q_recs],
            "train_labels": [int(r["object"]) for r in t_recs],
            "bbx": [r["bbx"] for r in q_recs],
            "gnd": gnd,
            "db_records": db_recs,
            "query_records": q_recs,
            "train_records": t_recs,
        }
        text = json.dumps(meta, indent=1)
        (tmp / "groundtruth.json").write_text(text + "\n", encoding="utf-8")
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not (out_dir / "groundtruth.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished it first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        cv2.setNumThreads(threads)
    if progress:
        print(f"embedded: {len(q_recs)} queries, {n_db} database and {len(t_recs)} training images "
              f"in {time.perf_counter() - t0:.1f} s -> {out_dir}", flush=True)
    return out_dir


def _corrupt(root: Path, problem: str) -> DatasetError:
    return DatasetError(
        f"dataset 'embedded' at {root}: {problem}. The folder is incomplete or corrupt: "
        f"delete it and build it again (load_embedded() rebuilds its default cache folder by "
        f"itself; build_embedded(path, seed) builds any other)."
    )


def load_embedded(root: Path | None = None, seed: int = 0) -> Dataset:
    """The ``embedded`` benchmark as a :class:`Dataset` (built first if needed).

    ``root=None`` uses :func:`default_root` ``(seed)`` and builds it there
    when it is absent (10-20 s, once). An explicit ``root`` must hold a
    complete build; ``seed`` then only matters for the default folder.
    Raises :class:`DatasetError` naming the problem when the folder is
    incomplete or corrupt.
    """
    if root is None:
        root = default_root(seed)
        if not root.exists():
            print(f"embedded: building the dataset (seed {seed}) into {root} ...", flush=True)
            try:
                build_embedded(root, seed=seed)
            except FileExistsError:  # another process built it meanwhile
                pass
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"dataset 'embedded': {root} does not exist. Build it with "
            f"`build_embedded(Path('{root}'))`, or leave root unset to use the cache."
        )
    gt_path = root / "groundtruth.json"
    if not gt_path.is_file():
        raise _corrupt(root, "groundtruth.json is missing")
    try:
        meta = json.loads(gt_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise _corrupt(root, f"groundtruth.json cannot be read ({e})") from None
    if not isinstance(meta, dict):
        raise _corrupt(root, "groundtruth.json is not a JSON object")
    required = ("version", "db", "queries", "train", "gnd", "bbx", "db_labels", "query_labels", "train_labels")
    absent = [k for k in required if k not in meta]
    if absent:
        raise _corrupt(root, f"groundtruth.json lacks {', '.join(absent)}")
    if meta["version"] != VERSION:
        raise _corrupt(root, f"it was built by generator version {meta['version']}, this is version {VERSION}")
    for key in ("db", "queries", "train"):
        gone = [f for f in meta[key] if not (root / f).is_file()]
        if gone:
            raise _corrupt(root, f"{len(gone)} of its {len(meta[key])} '{key}' images are missing "
                                 f"(first: {gone[0]})")
    try:
        return Dataset(
            name="embedded",
            root=root,
            db=[root / f for f in meta["db"]],
            queries=[root / f for f in meta["queries"]],
            gnd=[GroundTruth(np.asarray(g["easy"], np.int64), np.asarray(g["hard"], np.int64),
                             np.asarray(g["junk"], np.int64)) for g in meta["gnd"]],
            bbx=np.asarray(meta["bbx"], np.float32),
            protocol="revisited",
            db_labels=np.asarray(meta["db_labels"], np.int64),
            query_labels=np.asarray(meta["query_labels"], np.int64),
            train=[root / f for f in meta["train"]],
            train_labels=np.asarray(meta["train_labels"], np.int64),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise _corrupt(root, f"groundtruth.json is inconsistent ({e})") from None
