"""Your own photos as a retrieval dataset: one sub-folder per object or place."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..images import IMAGE_SUFFIXES
from .base import Dataset, DatasetError
from .files import group_ground_truth, image_files, require_dir

__all__ = ["load_folder", "folder_classes"]

NAME = "folder"

def _class_folders(root: Path) -> list[tuple[str, list[Path]]]:
    """``(class name, sorted image paths)`` for every sub-folder that holds images."""
    subdirs = sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: d.name,
    )
    if not subdirs:
        raise DatasetError(
            f"dataset '{NAME}': {root} has no sub-folders. Expected one sub-folder per "
            f"object or place (root/<class>/*.jpg), each with at least two photos."
        )
    # each real folder once, over all classes: a link to the root or to another class ("ln -s .. up")
    # neither loops nor mixes classes; the root and every class folder belong to themselves only
    key = {p: (st.st_dev, st.st_ino) for p, st in ((p, os.stat(p)) for p in (root, *subdirs))}
    seen, walked, classes = set(key.values()), set(), []
    for d in subdirs:
        if key[d] in walked:  # a second link to a class folder already read: its images are counted
            continue
        walked.add(key[d])
        seen.discard(key[d])  # its own walk enters it, once
        classes.append((d.name, image_files(d, seen)))
    classes = [(c, files) for c, files in classes if files]
    if not classes:
        raise DatasetError(
            f"dataset '{NAME}': no images ({', '.join(IMAGE_SUFFIXES)}, any case) found in the "
            f"sub-folders of {root}. Expected root/<class>/*.jpg."
        )
    return classes


def folder_classes(root: str | Path) -> list[str]:
    """The class names of :func:`load_folder`, in label order (label ``k`` is
    ``folder_classes(root)[k]``): the sub-folders of ``root`` that hold images,
    sorted by name."""
    root = require_dir(Path(root).expanduser(), NAME)
    return [c for c, _ in _class_folders(root)]


def load_folder(root: str | Path | None = None) -> Dataset:
    """Load your own photos: ``root/<class>/**/*.jpg`` (or any of :data:`coursekit.images.IMAGE_SUFFIXES`).

    One sub-folder of ``root`` per object or place (its name is the class;
    images in nested folders below it count too; files directly in ``root``
    are ignored).

    Protocol (the course's convention for a user's folder):

    - database: every image, class by class (classes sorted by name), each
      class's images sorted by relative path;
    - queries: every database image whose class has at least two images
      (an image alone in its class has no positive: it stays in the database
      as a distractor but is not a query);
    - positives (``easy``): the other images of the query's class; ``junk``:
      the query image itself;
    - labels: the class index; the names are :func:`folder_classes`.

    There is no paper for this one: it is the layout of
    ``torchvision.datasets.ImageFolder``, used for retrieval.
    """
    if root is None:
        raise DatasetError(
            f"dataset '{NAME}' needs the folder that holds your photos: pass --root "
            f"(or root=...) pointing at a folder with one sub-folder per object or place."
        )
    root = require_dir(Path(root).expanduser(), NAME)
    classes = _class_folders(root)
    db: list[Path] = []
    labels: list[int] = []
    for k, (_, files) in enumerate(classes):
        db.extend(files)
        labels.extend([k] * len(files))
    db_labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(db_labels, minlength=len(classes))
    query_idx = np.flatnonzero(counts[db_labels] >= 2)
    if query_idx.size == 0:
        raise DatasetError(
            f"dataset '{NAME}': no class under {root} has two or more images, so no query "
            f"has a positive. Put at least two photos of the same object in one sub-folder."
        )
    return Dataset(
        name=NAME,
        root=root,
        db=db,
        queries=[db[i] for i in query_idx],
        gnd=group_ground_truth(db_labels, query_idx),
        db_labels=db_labels,
        query_labels=db_labels[query_idx],
    )
