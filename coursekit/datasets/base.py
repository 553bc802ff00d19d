"""The one dataset structure of the course.

Every loader in :mod:`coursekit.datasets` returns a :class:`Dataset`: the
database images, the query images (with their boxes, when the dataset has
them) and, for every query, its ground truth as three lists of database
indices: ``easy`` and ``hard`` positives and ``junk`` (images that are
neither counted as right nor as wrong, and are removed from the ranking
before AP is computed).

This is the format of the revisited Oxford and Paris ground truth
(Radenovic et al., "Revisiting Oxford and Paris: large-scale image retrieval
benchmarking", CVPR 2018). Datasets without a difficulty split put all their
positives in ``easy`` and leave ``hard`` empty; then "positives" is simply
``easy``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["GroundTruth", "Dataset", "DatasetError", "data_root", "missing"]


class DatasetError(FileNotFoundError):
    """A dataset is missing or does not have the layout its loader expects.

    The message names the missing file or folder and the command that
    fetches the dataset.
    """


def data_root() -> Path:
    """The folder that holds downloaded datasets.

    ``$COURSEKIT_DATA`` when set, else ``~/coursekit-data``. Each dataset
    lives in its own sub-folder (``coil100``, ``smvs_dvd_covers``,
    ``ukbench``, ...), as ``data_scripts/get.py`` writes it.
    """
    env = os.environ.get("COURSEKIT_DATA")
    return Path(env).expanduser() if env else Path.home() / "coursekit-data"


def missing(what: Path | str, name: str, hint: str | None = None) -> DatasetError:
    """The error for a missing dataset file, naming the file and the fix."""
    fix = hint or f"python data_scripts/get.py {name}"
    return DatasetError(
        f"dataset '{name}': {what} is missing. Fetch the dataset with `{fix}`, "
        f"or point --root (or $COURSEKIT_DATA) at the folder that holds it."
    )


def check_boxes(name: str, queries: list, bbx: np.ndarray, fix: str) -> None:
    """Raise a :class:`DatasetError` naming the first query whose box ``(x1, y1, x2, y2)`` cannot be cropped:
    not finite, empty or reversed, or, where the image's header can be read, outside the image. ``fix``: what
    to do about it (the ground-truth file to correct). Boxes that only overhang the image are clipped later
    (:func:`coursekit.images.crop`) and pass."""
    for i, (path, box) in enumerate(zip(queries, np.asarray(bbx, dtype=np.float64))):
        x1, y1, x2, y2 = box
        problem = None
        if not np.isfinite(box).all():
            problem = "has a coordinate that is not a number"
        elif not (x2 > x1 and y2 > y1):
            problem = "is empty or reversed (need x2 > x1 and y2 > y1)"
        else:
            try:
                from PIL import Image

                with Image.open(path) as im:                 # the header only
                    width, height = im.size
            except Exception:                                # unreadable here: the image's own check says why
                width = height = None
            if width is not None and (x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height):
                problem = f"lies outside the image ({width} x {height} pixels)"
        if problem:
            raise DatasetError(f"dataset '{name}': query {i} ({Path(path).name}) has the box (x1, y1, x2, y2) = "
                               f"({x1:g}, {y1:g}, {x2:g}, {y2:g}), which {problem}. {fix}")


def _as_index(a, n_db: int, what: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64).reshape(-1)
    if a.size and (a.min() < 0 or a.max() >= n_db):
        raise ValueError(f"{what}: index out of range for a database of {n_db} images")
    return a


@dataclass(frozen=True)
class GroundTruth:
    """Ground truth of one query, as database indices ``(k,) int64``.

    ``easy`` and ``hard`` are the positives (``hard`` is empty where the
    dataset has no difficulty split); ``junk`` images are ignored by the
    evaluation.
    """

    easy: np.ndarray
    hard: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    junk: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def positives(self) -> np.ndarray:
        """All positives, easy then hard, ``(k,) int64``."""
        return np.concatenate([self.easy, self.hard])


@dataclass
class Dataset:
    """An instance-retrieval dataset.

    Attributes
    ----------
    name : the dataset's name as the CLI knows it (``"embedded"``, ``"ukbench"``...).
    root : the folder it was read from.
    db : ``N`` database image paths, in a stable order (index ``i`` is row ``i``
        of every ``X_db``).
    queries : ``Q`` query image paths. A query may also be a database image
        (UKBench, COIL-100, Holidays); then that database image is junk for it.
    gnd : ``Q`` :class:`GroundTruth`, one per query.
    bbx : ``(Q, 4) float32`` query boxes ``x1, y1, x2, y2`` in the pixels of
        the query image, or ``None`` when queries are whole images.
    protocol : ``"standard"`` (positives and junk) or ``"revisited"``
        (Easy / Medium / Hard, from the easy/hard split).
    db_labels, query_labels : ``(N,)`` and ``(Q,) int64`` object or group ids
        where the dataset has them, else ``None``.
    ns_group_size : for UKBench-style data, the size of every group (4): the
        N-S score is then the mean number of group images in the top 4.
    train, train_labels : an optional disjoint training split (image paths and
        ``(T,) int64`` object ids) for learning vocabularies, whitening and
        networks. Never overlaps the database or the queries.
    """

    name: str
    root: Path
    db: list[Path]
    queries: list[Path]
    gnd: list[GroundTruth]
    bbx: np.ndarray | None = None
    protocol: str = "standard"
    db_labels: np.ndarray | None = None
    query_labels: np.ndarray | None = None
    ns_group_size: int | None = None
    train: list[Path] = field(default_factory=list)
    train_labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.db = [Path(p) for p in self.db]
        self.queries = [Path(p) for p in self.queries]
        self.train = [Path(p) for p in self.train]
        n, q = len(self.db), len(self.queries)
        if n == 0:
            raise DatasetError(f"dataset '{self.name}' at {self.root}: no database images found")
        if q == 0:
            raise DatasetError(f"dataset '{self.name}' at {self.root}: no query images found")
        if len(self.gnd) != q:
            raise ValueError(f"dataset '{self.name}': {q} queries but {len(self.gnd)} ground-truth entries")
        self.gnd = [
            GroundTruth(
                _as_index(g.easy, n, f"query {i} easy"),
                _as_index(g.hard, n, f"query {i} hard"),
                _as_index(g.junk, n, f"query {i} junk"),
            )
            for i, g in enumerate(self.gnd)
        ]
        if self.bbx is not None:
            self.bbx = np.asarray(self.bbx, dtype=np.float32)
            if self.bbx.shape != (q, 4):
                raise ValueError(f"dataset '{self.name}': bbx has shape {self.bbx.shape}, expected ({q}, 4)")
        if self.protocol not in ("standard", "revisited"):
            raise ValueError(f"protocol must be 'standard' or 'revisited', not {self.protocol!r}")
        for attr, length in (("db_labels", n), ("query_labels", q), ("train_labels", len(self.train))):
            value = getattr(self, attr)
            if value is not None:
                value = np.asarray(value, dtype=np.int64)
                if value.shape != (length,):
                    raise ValueError(f"dataset '{self.name}': {attr} has shape {value.shape}, expected ({length},)")
                setattr(self, attr, value)

    @property
    def n_db(self) -> int:
        return len(self.db)

    @property
    def n_queries(self) -> int:
        return len(self.queries)

    def __repr__(self) -> str:
        extra = f", train={len(self.train)}" if self.train else ""
        box = ", boxes" if self.bbx is not None else ""
        return (
            f"Dataset({self.name!r}, db={self.n_db}, queries={self.n_queries}{box}"
            f"{extra}, protocol={self.protocol!r}, root={str(self.root)!r})"
        )
