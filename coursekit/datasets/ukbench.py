"""UKBench (University of Kentucky recognition benchmark): groups of 4 photos."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .base import Dataset, DatasetError, GroundTruth, data_root
from .files import numbered_images, require_dir

__all__ = ["load_ukbench"]

NAME = "ukbench"
FOLDER = "ukbench"
GROUP = 4

_FILE = re.compile(r"^ukbench(\d{5})\.jpe?g$", re.IGNORECASE)


def load_ukbench(root: str | Path | None = None) -> Dataset:
    """Load UKBench: groups of 4 photos of the same object.

    Nister and Stewenius, "Scalable Recognition with a Vocabulary Tree",
    CVPR 2006. Files ``ukbench00000.jpg`` ... (10,200 on the full set, 2,550
    groups), found recursively under ``root`` (default
    ``data_root() / "ukbench"``; the archive puts them in ``full/``). Image
    ``i`` belongs to group ``i // 4``.

    Any prefix of whole groups is a valid set (e.g. the first 1,000 images):
    the indices must run 0..n-1 without a gap, with ``n`` a multiple of 4.

    - database and queries: every image, in index order;
    - positives (``easy``): the 3 other images of its group; ``junk``: the
      query itself;
    - ``ns_group_size = 4``: the N-S score (the mean number of the group's 4
      images in the top 4, the query included) is the dataset's own measure;
    - ``db_labels`` / ``query_labels``: the group.
    """
    root = Path(root).expanduser() if root is not None else data_root() / FOLDER
    require_dir(root, NAME)

    by_index = numbered_images(root, _FILE, NAME, "ukbench00000.jpg, ukbench00001.jpg, ...")
    idx = np.array(sorted(by_index), dtype=np.int64)
    n_expected = int(-(-(idx[-1] + 1) // GROUP) * GROUP)  # through the end of the last group
    if idx.size != n_expected:
        present = np.zeros(n_expected, dtype=bool)
        present[idx] = True
        absent = np.flatnonzero(~present)
        raise DatasetError(
            f"dataset '{NAME}': ukbench{absent[0]:05d}.jpg is missing under {root} "
            f"({absent.size} of images 0..{n_expected - 1} missing; UKBench needs whole "
            f"groups of {GROUP} numbered from 0 without a gap)."
        )
    db = [by_index[i] for i in idx.tolist()]
    n = len(db)
    labels = np.arange(n, dtype=np.int64) // GROUP
    members = labels[:, None] * GROUP + np.arange(GROUP)[None, :]  # (n, 4)
    others = members[members != np.arange(n)[:, None]].reshape(n, GROUP - 1)
    gnd = [GroundTruth(easy=others[i], junk=np.array([i], dtype=np.int64)) for i in range(n)]
    return Dataset(
        name=NAME,
        root=root,
        db=db,
        queries=list(db),
        gnd=gnd,
        db_labels=labels,
        query_labels=labels.copy(),
        ns_group_size=GROUP,
    )
