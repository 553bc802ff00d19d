"""Listing a dataset's files and building group ground truth: the small
helpers every loader of :mod:`coursekit.datasets` shares. None of them opens
an image.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..images import IMAGE_SUFFIXES, is_image_name, walk_images
from .base import DatasetError, GroundTruth, missing

__all__ = ["IMAGE_SUFFIXES", "is_image", "require_dir", "image_files", "numbered_images", "group_ground_truth"]

def is_image(name: str) -> bool:
    """Whether a file name is an image: :data:`coursekit.images.IMAGE_SUFFIXES` (the one list every
    reader uses, any case), not hidden."""
    return is_image_name(name)


def require_dir(path: Path, name: str) -> Path:
    """``path`` if it is a folder, else the dataset's missing-file error."""
    if not path.is_dir():
        raise missing(path, name)
    return path


def image_files(root: Path, seen: set[tuple[int, int]] | None = None) -> list[Path]:
    """Every image file under ``root``, recursively, sorted by relative path.

    Follows symbolic links (datasets are often linked in), each real folder
    once (:func:`coursekit.images.walk_images`: a link loop adds nothing);
    ``seen`` shares the visited folders between walks. Skips hidden files and
    folders. Never opens a file.
    """
    return walk_images(Path(root), follow_links=True, seen=seen)


def group_ground_truth(labels: np.ndarray, query_idx: np.ndarray) -> list[GroundTruth]:
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


def numbered_images(folder: Path, pattern: re.Pattern, name: str, example: str) -> dict[int, Path]:
    """The image files under ``folder`` whose name matches ``pattern``, by the
    number its first group captures: ``{number: path}``.

    An image stored twice, or no matching file at all, is a :class:`DatasetError`
    (``example`` names the expected file names in the message).
    """
    by_number: dict[int, Path] = {}
    for path in image_files(folder):
        m = pattern.match(path.name)
        if not m:
            continue
        k = int(m.group(1))
        if k in by_number:
            raise DatasetError(
                f"dataset '{name}': image {m.group(1)} is there twice: {by_number[k]} and {path}. "
                f"Keep one copy of the images under {folder}."
            )
        by_number[k] = path
    if not by_number:
        raise DatasetError(f"dataset '{name}': no files named {example} found under {folder}.")
    return by_number
