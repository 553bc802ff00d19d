"""Your own photos as a retrieval dataset: one sub-folder per object or place.

The small file-listing helpers at the top are shared by the other loaders of
:mod:`coursekit.datasets`; none of them opens an image.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import Dataset, DatasetError, GroundTruth, missing

__all__ = ["load_folder", "folder_classes"]

NAME = "folder"

# The suffixes every loader accepts as images (matched case-insensitively).
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _is_image(name: str) -> bool:
    return name.lower().endswith(_IMAGE_SUFFIXES) and not name.startswith(".")


def _require_dir(path: Path, name: str) -> Path:
    """``path`` if it is a folder, else the dataset's missing-file error."""
    if not path.is_dir():
        raise missing(path, name)
    return path


def _image_files(root: Path) -> list[Path]:
    """Every image file under ``root``, recursively, sorted by relative path.

    Follows symbolic links (datasets are often linked in); skips hidden files
    and folders. Never opens a file.
    """
    root = Path(root)
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root)
        for f in filenames:
            if _is_image(f):
                found.append(((rel / f).as_posix(), Path(dirpath) / f))
    found.sort(key=lambda t: t[0])
    return [p for _, p in found]


def _group_ground_truth(labels: np.ndarray, query_idx: np.ndarray) -> list[GroundTruth]:
    """Ground truth where a query is a database image and its positives are
    the other database images with the same label; the query itself is junk.

    Vectorised: one stable sort of the labels, then each query's group is a
    slice of it.
    """
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, labels[query_idx], side="left")
    ends = np.searchsorted(sorted_labels, labels[query_idx], side="right")
    gnd = []
    for qi, s, e in zip(query_idx.tolist(), starts.tolist(), ends.tolist()):
        group = order[s:e]
        gnd.append(GroundTruth(easy=group[group != qi], junk=np.array([qi], dtype=np.int64)))
    return gnd


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
    classes = [(d.name, _image_files(d)) for d in subdirs]
    classes = [(c, files) for c, files in classes if files]
    if not classes:
        raise DatasetError(
            f"dataset '{NAME}': no images (.jpg, .jpeg, .png) found in the sub-folders of {root}. "
            f"Expected root/<class>/*.jpg."
        )
    return classes


def folder_classes(root: str | Path) -> list[str]:
    """The class names of :func:`load_folder`, in label order (label ``k`` is
    ``folder_classes(root)[k]``): the sub-folders of ``root`` that hold images,
    sorted by name."""
    root = _require_dir(Path(root).expanduser(), NAME)
    return [c for c, _ in _class_folders(root)]


def load_folder(root: str | Path | None = None) -> Dataset:
    """Load your own photos: ``root/<class>/**/*.{jpg,jpeg,png}``.

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
    root = _require_dir(Path(root).expanduser(), NAME)
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
        gnd=_group_ground_truth(db_labels, query_idx),
        db_labels=db_labels,
        query_labels=db_labels[query_idx],
    )
