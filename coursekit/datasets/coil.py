"""COIL-100: 100 objects on a turntable, one view every 5 degrees."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .base import Dataset, DatasetError, data_root
from .files import group_ground_truth, image_files, require_dir

__all__ = ["load_coil100"]

NAME = "coil100"
FOLDER = "coil100"

_FILE = re.compile(r"^obj(\d+)__(\d+)\.(?:png|jpe?g)$", re.IGNORECASE)

TRAIN_OBJECTS = range(1, 51)   # objects 1-50: training split
TEST_OBJECTS = range(51, 101)  # objects 51-100: database and queries
QUERY_ANGLES = (0, 90, 180, 270)


def _angle_gap(a: np.ndarray, b: int) -> np.ndarray:
    d = np.abs(a - b) % 360
    return np.minimum(d, 360 - d)


def load_coil100(root: str | Path | None = None) -> Dataset:
    """Load COIL-100 with the course's object-disjoint retrieval protocol.

    Nene, Nayar and Murase, "Columbia Object Image Library (COIL-100)",
    Technical Report CUCS-006-96, Columbia University, 1996: 100 objects on a
    turntable, photographed every 5 degrees (72 views each; some copies miss a
    few views). Files ``obj{N}__{angle}.png`` (or ``.jpg``), found recursively
    under ``root`` (default ``data_root() / "coil100"``).

    COIL-100 has no official retrieval protocol; this one is **our
    convention**:

    - training split (``train``, ``train_labels`` = object id): every view of
      objects 1-50, for learning vocabularies, whitening or networks;
    - database: every view of objects 51-100, sorted by object then angle;
    - queries: for each test object, its views nearest 0, 90, 180 and 270
      degrees among those that exist (ties go to the smaller angle), so at
      most 200 queries; every query is also a database image;
    - positives (``easy``): all other views of the same object; ``junk``: the
      query image itself;
    - ``db_labels`` / ``query_labels``: the object id.

    Never opens an image (object 1 is 32x32 in some copies: that is the image
    reader's business).
    """
    root = Path(root).expanduser() if root is not None else data_root() / FOLDER
    require_dir(root, NAME)

    views: dict[tuple[int, int], Path] = {}
    for path in image_files(root):
        m = _FILE.match(path.name)
        if m:
            views.setdefault((int(m.group(1)), int(m.group(2))), path)
    if not views:
        raise DatasetError(
            f"dataset '{NAME}': no files named obj{{N}}__{{angle}}.png (or .jpg), "
            f"e.g. obj1__0.png, found under {root}."
        )
    keys = sorted(views)
    obj = np.array([k[0] for k in keys], dtype=np.int64)
    ang = np.array([k[1] for k in keys], dtype=np.int64)
    paths = [views[k] for k in keys]

    test = (obj >= TEST_OBJECTS.start) & (obj < TEST_OBJECTS.stop)
    train = (obj >= TRAIN_OBJECTS.start) & (obj < TRAIN_OBJECTS.stop)
    if not test.any():
        raise DatasetError(
            f"dataset '{NAME}': no views of objects {TEST_OBJECTS.start}-{TEST_OBJECTS.stop - 1} "
            f"(the test objects) found under {root}; found objects {obj.min()}-{obj.max()}."
        )
    db_idx = np.flatnonzero(test)
    db = [paths[i] for i in db_idx]
    db_obj, db_ang = obj[db_idx], ang[db_idx]

    query_idx: list[int] = []
    for o in np.unique(db_obj).tolist():
        rows = np.flatnonzero(db_obj == o)  # sorted by angle
        chosen: list[int] = []
        for target in QUERY_ANGLES:
            # argmin picks the first minimum: the smaller angle on a tie.
            r = int(rows[np.argmin(_angle_gap(db_ang[rows], target))])
            if r not in chosen:
                chosen.append(r)
        query_idx.extend(chosen)
    q = np.asarray(query_idx, dtype=np.int64)

    train_idx = np.flatnonzero(train)
    return Dataset(
        name=NAME,
        root=root,
        db=db,
        queries=[db[i] for i in q],
        gnd=group_ground_truth(db_obj, q),
        db_labels=db_obj,
        query_labels=db_obj[q],
        train=[paths[i] for i in train_idx],
        train_labels=obj[train_idx],
    )
