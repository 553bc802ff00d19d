"""Listing a dataset's files and building group ground truth: the small
helpers every loader of :mod:`coursekit.datasets` shares. None of them opens
an image.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .base import DatasetError, GroundTruth, missing

__all__ = ["IMAGE_SUFFIXES", "is_image", "require_dir", "image_files", "numbered_images", "group_ground_truth"]

# The suffixes every loader accepts as images (matched case-insensitively).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def require_dir(path: Path, name: str) -> Path:
    """``path`` if it is a folder, else the dataset's missing-file error."""
    if not path.is_dir():
        raise missing(path, name)
    return path


def image_files(root: Path) -> list[Path]:
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
            if is_image(f):
                found.append(((rel / f).as_posix(), Path(dirpath) / f))
    found.sort(key=lambda t: t[0])
    return [p for _, p in found]


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
