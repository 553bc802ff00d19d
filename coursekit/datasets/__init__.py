"""Datasets: one :class:`Dataset` structure, one loader per dataset family.

>>> ds = load_dataset("embedded")          # built offline, the default
>>> ds = load_dataset("ukbench", root="~/data/ukbench")

``root`` is the dataset's own folder; without it, the loader looks in
``data_root() / FOLDER`` (``$COURSEKIT_DATA``, default ``~/coursekit-data``).
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from .base import Dataset, DatasetError, GroundTruth, data_root, missing
from .coil import load_coil100
from .embedded import VERSION as EMBEDDED_VERSION
from .embedded import VERSIONS as EMBEDDED_VERSIONS
from .embedded import build_embedded, load_embedded
from .folder import load_folder
from .holidays import load_holidays
from .oxford import load_oxford5k, load_paris6k, load_roxford5k, load_rparis6k
from .smvs import load_smvs
from .ukbench import load_ukbench

__all__ = [
    "Dataset", "DatasetError", "GroundTruth", "data_root", "missing", "load_dataset",
    "DATASET_NAMES", "default_dataset_name", "build_embedded", "load_embedded", "load_coil100",
    "load_smvs", "load_ukbench", "load_holidays", "load_oxford5k", "load_paris6k",
    "load_roxford5k", "load_rparis6k", "load_folder", "present_datasets",
]

# name -> (loader, one line for `python -m coursekit datasets`)
_LOADERS = {
    "embedded": (load_embedded, "built offline from photos that installed packages ship"),
    **{f"embedded-v{v}": (partial(load_embedded, version=v), f"version {v} of the embedded set")
       for v in EMBEDDED_VERSIONS if v != EMBEDDED_VERSION},
    "coil100": (load_coil100, "COIL-100 objects on a turntable (Nene et al. 1996)"),
    "smvs": (load_smvs, "Stanford Mobile Visual Search DVD covers: phone photos against scans"),
    "ukbench": (load_ukbench, "UKBench groups of 4 (Nister and Stewenius 2006), N-S score"),
    "holidays": (load_holidays, "INRIA Holidays scenes (Jegou et al. 2008)"),
    "oxford5k": (load_oxford5k, "Oxford Buildings (Philbin et al. 2007)"),
    "paris6k": (load_paris6k, "Paris (Philbin et al. 2008)"),
    "roxford5k": (load_roxford5k, "revisited Oxford, Easy/Medium/Hard (Radenovic et al. 2018)"),
    "rparis6k": (load_rparis6k, "revisited Paris, Easy/Medium/Hard (Radenovic et al. 2018)"),
    "folder": (load_folder, "your own photos: one sub-folder per object or place (needs --root)"),
}
DATASET_NAMES = tuple(_LOADERS)


def default_dataset_name() -> str:
    """``$COURSEKIT_DATASET`` when set, else ``"embedded"``: the notebooks' dataset."""
    return os.environ.get("COURSEKIT_DATASET", "embedded")


def describe_datasets() -> dict[str, str]:
    """Each dataset name with its one-line description."""
    return {name: line for name, (_, line) in _LOADERS.items()}


def load_dataset(name: str | None = None, root: str | Path | None = None) -> Dataset:
    """Load a dataset by name (default: :func:`default_dataset_name`).

    Raises :class:`DatasetError` when files are missing (the message names the
    file and the command that fetches it) and :class:`ValueError` for an
    unknown name.
    """
    name = name or default_dataset_name()
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASET_NAMES)}")
    loader = _LOADERS[name][0]
    return loader(Path(root).expanduser() if root is not None else None)


def present_datasets() -> list[str]:
    """``embedded`` and every other dataset whose files are under the data root."""
    names = ["embedded"]
    for name in DATASET_NAMES:
        if name.startswith("embedded") or name == "folder":  # built on first use / needs a root
            continue
        try:
            load_dataset(name)
        except DatasetError:
            continue
        names.append(name)
    return names
