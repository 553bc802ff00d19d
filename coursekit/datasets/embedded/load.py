"""Loading the ``embedded`` benchmark (building it into the cache first when needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...cache import cache_root
from ..base import Dataset, DatasetError, GroundTruth
from .build import VERSION, VERSIONS, build_embedded


def default_root(seed: int = 0, version: int = VERSION) -> Path:
    """``cache_root() / "embedded-v{version}-seed{seed}"``."""
    return cache_root() / f"embedded-v{version}-seed{seed}"


def dataset_name(version: int) -> str:
    """The name a version loads under: ``"embedded"`` (:data:`VERSION`) or ``"embedded-v{version}"``."""
    return "embedded" if version == VERSION else f"embedded-v{version}"


def _corrupt(root: Path, problem: str) -> DatasetError:
    """The error for an incomplete or corrupt build at ``root``, naming ``problem`` and the fix."""
    return DatasetError(
        f"dataset 'embedded' at {root}: {problem}. The folder is incomplete or corrupt: "
        f"delete it and build it again (load_embedded() rebuilds its default cache folder by "
        f"itself; build_embedded(path, seed) builds any other)."
    )


def load_embedded(root: Path | None = None, seed: int = 0, version: int = VERSION) -> Dataset:
    """The ``embedded`` benchmark as a :class:`Dataset` (built first if needed).

    ``root=None`` uses :func:`default_root` ``(seed, version)`` and builds
    it there when it is absent (once). An explicit ``root`` must hold a
    complete build of ``version``; ``seed`` then only matters for the
    default folder. A version other than :data:`VERSION` is named
    ``embedded-v{version}``. Raises :class:`DatasetError` naming
    the problem when the folder is incomplete or corrupt.
    """
    if version not in VERSIONS:
        raise ValueError(f"embedded: no version {version!r}; the versions are {', '.join(map(str, VERSIONS))}")
    if root is None:
        root = default_root(seed, version)
        if not root.exists():
            print(f"embedded: building the dataset (version {version}, seed {seed}) into {root} ...", flush=True)
            try:
                build_embedded(root, seed=seed, version=version)
            except FileExistsError:  # another process built it meanwhile
                pass
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"dataset 'embedded': {root} does not exist. Build it with "
            f"`build_embedded(Path('{root}'))`, or leave root unset to use the cache."
        )
    gt_path = root / "groundtruth.json"
    if not gt_path.is_file():
        raise _corrupt(root, "groundtruth.json is missing")
    try:
        meta = json.loads(gt_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise _corrupt(root, f"groundtruth.json cannot be read ({e})") from None
    if not isinstance(meta, dict):
        raise _corrupt(root, "groundtruth.json is not a JSON object")
    required = ("version", "db", "queries", "train", "gnd", "bbx", "db_labels", "query_labels", "train_labels")
    absent = [k for k in required if k not in meta]
    if absent:
        raise _corrupt(root, f"groundtruth.json lacks {', '.join(absent)}")
    if meta["version"] != version:
        if meta["version"] in VERSIONS:
            raise DatasetError(f"dataset 'embedded' at {root} was built by generator version {meta['version']}, "
                               f"not {version}: load it with load_embedded(root, version={meta['version']}) "
                               f"(or load_dataset('{dataset_name(meta['version'])}', root))")
        raise _corrupt(root, f"it was built by generator version {meta['version']}, this is version {version}")
    for key in ("db", "queries", "train"):
        gone = [f for f in meta[key] if not (root / f).is_file()]
        if gone:
            raise _corrupt(root, f"{len(gone)} of its {len(meta[key])} '{key}' images are missing "
                                 f"(first: {gone[0]})")
    try:
        return Dataset(
            name=dataset_name(version),
            root=root,
            db=[root / f for f in meta["db"]],
            queries=[root / f for f in meta["queries"]],
            gnd=[GroundTruth(np.asarray(g["easy"], np.int64), np.asarray(g["hard"], np.int64),
                             np.asarray(g["junk"], np.int64)) for g in meta["gnd"]],
            bbx=np.asarray(meta["bbx"], np.float32),
            protocol="revisited",
            db_labels=np.asarray(meta["db_labels"], np.int64),
            query_labels=np.asarray(meta["query_labels"], np.int64),
            train=[root / f for f in meta["train"]],
            train_labels=np.asarray(meta["train_labels"], np.int64),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise _corrupt(root, f"groundtruth.json is inconsistent ({e})") from None
