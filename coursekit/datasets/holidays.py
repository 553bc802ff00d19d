"""INRIA Holidays: personal holiday photos, in groups of the same scene."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .base import Dataset, GroundTruth, data_root
from .files import numbered_images, require_dir

__all__ = ["load_holidays"]

NAME = "holidays"
FOLDER = "holidays"

_FILE = re.compile(r"^(\d{6})\.jpe?g$", re.IGNORECASE)


def load_holidays(root: str | Path | None = None) -> Dataset:
    """Load INRIA Holidays.

    Jegou, Douze and Schmid, "Hamming Embedding and Weak Geometric Consistency
    for Large Scale Image Search", ECCV 2008. 1,491 photos ``NNNNNN.jpg``
    (6 digits), found under ``root/jpg/`` when that folder exists, else
    recursively under ``root`` (default ``data_root() / "holidays"``).
    Photos ``NNNN00.jpg`` ... ``NNNN99.jpg`` show the same scene: the group is
    ``number // 100``.

    Official protocol:

    - database: all images, sorted by number (1,491);
    - queries: the first image (smallest number) of each group (500); each is
      also a database image (a group reduced to its query has no positive and
      is left out of the queries);
    - positives (``easy``): the other images of the group; ``junk``: the query
      itself (the evaluation removes it from the ranking);
    - ``db_labels`` / ``query_labels``: the group.

    Some photos are stored rotated (no EXIF fix); the loader lists files and
    never opens them.
    """
    root = Path(root).expanduser() if root is not None else data_root() / FOLDER
    require_dir(root, NAME)
    where = root / "jpg" if (root / "jpg").is_dir() else root

    by_number = numbered_images(where, _FILE, NAME, "NNNNNN.jpg (6 digits, e.g. 100000.jpg)")
    numbers = np.array(sorted(by_number), dtype=np.int64)
    db = [by_number[k] for k in numbers.tolist()]
    labels = numbers // 100
    # First image of each group (numbers are sorted), and where each group ends.
    first = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    end = np.r_[first[1:], labels.size]
    keep = end - first >= 2
    first, end = first[keep], end[keep]
    gnd = [
        GroundTruth(easy=np.arange(s + 1, e, dtype=np.int64), junk=np.array([s], dtype=np.int64))
        for s, e in zip(first.tolist(), end.tolist())
    ]
    return Dataset(
        name=NAME,
        root=root,
        db=db,
        queries=[db[i] for i in first.tolist()],
        gnd=gnd,
        db_labels=labels,
        query_labels=labels[first],
    )
