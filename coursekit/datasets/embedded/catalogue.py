"""The source photographs and the object catalogue of the ``embedded`` benchmark.

Every object is a textured grid cell of a photo that an installed package
ships (see :mod:`coursekit.datasets.embedded`); the catalogue is the same for
every seed.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base import DatasetError


#: Source photos: name -> (package, path inside the package, role, resize factor);
#: role is "query", "train" or "background".
SOURCES = {
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
#: Seed of the catalogue's shapes and polygon masks: fixed, independent of the build's seed.
CATALOGUE_SEED = 20180618


def _source_file(name: str) -> Path:
    """Path of a source photo inside the package that ships it; :class:`DatasetError` when it is missing."""
    package, rel, _, _ = SOURCES[name]
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


def read_source(name: str) -> np.ndarray:
    """A source photo: ``(H, W, 3) uint8`` RGB, or ``(H, W) uint8`` for grey ones."""
    import cv2
    from PIL import Image

    with Image.open(_source_file(name)) as im:
        im.load()
        if im.mode in ("1", "L", "I;16", "I", "F"):
            arr = np.asarray(im.convert("L"))
        else:
            arr = np.asarray(im.convert("RGB"))
    factor = SOURCES[name][3]
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
        """The object as plain JSON values (an entry of ``groundtruth.json``'s ``objects``)."""
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
    sources = sources if sources is not None else {n: read_source(n) for n in SOURCES
                                                   if SOURCES[n][2] != "background"}
    rng = np.random.default_rng(CATALOGUE_SEED)
    query, train, clutter = [], [], []
    for name, (_, _, role, _) in SOURCES.items():
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

