"""Stanford Mobile Visual Search, DVD covers: phone photos against clean scans."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import numpy as np

from .base import Dataset, DatasetError, GroundTruth, data_root, missing

__all__ = ["load_smvs", "PHONES"]

NAME = "smvs"
FOLDER = "smvs_dvd_covers"
REFERENCE = "Reference"
PHONES = ("Canon", "Droid", "E63", "Palm")

_FILE = re.compile(r"^(\d+)\.(?:jpe?g|png)$", re.IGNORECASE)


def _numbered(folder: Path) -> dict[int, Path]:
    """``{number: path}`` for the ``NNN.jpg`` files directly in ``folder``."""
    out: dict[int, Path] = {}
    for p in sorted(folder.iterdir(), key=lambda p: p.name):
        m = _FILE.match(p.name)
        if m and p.is_file():
            out.setdefault(int(m.group(1)), p)
    return out


def _find_base(root: Path) -> Path:
    """The folder holding ``Reference/``: ``root`` itself or one level down."""
    if not root.is_dir():
        raise missing(root, NAME)
    if (root / REFERENCE).is_dir():
        return root
    below = sorted(d for d in root.iterdir() if d.is_dir() and (d / REFERENCE).is_dir())
    if len(below) == 1:
        return below[0]
    preferred = [d for d in below if d.name.lower() in ("dvd_covers", "dvd-covers", "dvdcovers")]
    if len(preferred) == 1:
        return preferred[0]
    if below:
        raise DatasetError(
            f"dataset '{NAME}': several folders under {root} hold a {REFERENCE}/ folder "
            f"({', '.join(d.name for d in below)}); point --root at the DVD covers one."
        )
    raise missing(root / REFERENCE, NAME)


def load_smvs(root: str | Path | None = None, phones: Iterable[str] = PHONES) -> Dataset:
    """Load the DVD-cover category of the Stanford Mobile Visual Search data set.

    Chandrasekhar, Chen, Tsai, Cheung, Chen, Takacs, Reznik, Vedantham,
    Grzeszczuk, Bach and Girod, "The Stanford Mobile Visual Search Data Set",
    ACM Multimedia Systems Conference (MMSys), 2011.

    Layout (at ``root``, default ``data_root() / "smvs_dvd_covers"``, or one
    folder below it, e.g. ``root/dvd_covers/``): ``Reference/NNN.jpg`` are
    clean scans of the covers; ``Canon/``, ``Droid/``, ``E63/``, ``Palm/``
    each hold a phone photo ``NNN.jpg`` of the same cover.

    - database: the reference scans, sorted by number (100 on the full set);
    - queries: the photos of the selected ``phones``, phone by phone (in the
      order given), then by number (400 on the full set); a photo missing from
      a phone folder is simply not a query;
    - positives (``easy``): the one reference with the same number; no junk;
    - ``db_labels`` / ``query_labels``: the cover number.

    Raises :class:`DatasetError` when a folder is missing or a photo has no
    reference scan with its number.
    """
    root = Path(root).expanduser() if root is not None else data_root() / FOLDER
    phones = (phones,) if isinstance(phones, str) else tuple(phones)
    if not phones:
        raise ValueError(f"phones must name at least one of {', '.join(PHONES)}")
    base = _find_base(root)

    refs = _numbered(base / REFERENCE)
    if not refs:
        raise DatasetError(
            f"dataset '{NAME}': no files named NNN.jpg (e.g. 001.jpg) found in {base / REFERENCE}."
        )
    numbers = sorted(refs)
    db = [refs[n] for n in numbers]
    db_labels = np.asarray(numbers, dtype=np.int64)
    row_of = {n: i for i, n in enumerate(numbers)}

    queries: list[Path] = []
    q_labels: list[int] = []
    for phone in phones:
        folder = base / phone
        if not folder.is_dir():
            raise missing(folder, NAME)
        photos = _numbered(folder)
        orphans = sorted(set(photos) - set(refs))
        if orphans:
            raise DatasetError(
                f"dataset '{NAME}': {photos[orphans[0]]} has no reference scan "
                f"{base / REFERENCE}/{orphans[0]:03d}.jpg"
                + (f" (nor have {len(orphans) - 1} other photos of {phone})" if len(orphans) > 1 else "")
                + "."
            )
        for n in sorted(photos):
            queries.append(photos[n])
            q_labels.append(n)
    if not queries:
        raise DatasetError(
            f"dataset '{NAME}': no phone photos NNN.jpg found in "
            f"{', '.join(str(base / p) for p in phones)}."
        )
    gnd = [GroundTruth(easy=np.array([row_of[n]], dtype=np.int64)) for n in q_labels]
    return Dataset(
        name=NAME,
        root=base,
        db=db,
        queries=queries,
        gnd=gnd,
        db_labels=db_labels,
        query_labels=np.asarray(q_labels, dtype=np.int64),
    )
