"""Building the ``embedded`` benchmark: render the plan, write the images and ``groundtruth.json``."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .catalogue import ObjectInfo
from .plan import plan_images
from .render import THRESHOLDS, Assets, render_job

#: The generator's versions. A version's output for a given seed never changes: a change is a new version.
#: 1: each background a crop of one of 11 photos, 5-7 independent renderings per query object;
#: 2: dead-leaves backgrounds that no two images share, 8-10 views per query object along walks.
VERSIONS = (1, 2)
#: The version that the name ``embedded`` loads; the others load as ``embedded-v{n}``.
VERSION = 2


def build_embedded(out_dir: Path, seed: int = 0, progress: bool = True, version: int = VERSION) -> Path:
    """Build the benchmark into ``out_dir`` (which must not exist yet); return it.

    Everything is written into a temporary sibling folder that is renamed to
    ``out_dir`` at the very end, so an interrupted build never looks
    complete. ``version``: one of :data:`VERSIONS` (see
    :mod:`coursekit.datasets.embedded`); version 2 with seed 0 has 68
    queries, 712 database images (622 views of the query objects, 90
    distractors) and 312 training images; version 1 had 666 database images
    (408 renderings of the query objects, 258 distractors).

    Randomness: ``np.random.SeedSequence([seed, version])`` draws the plan
    (how many renderings of each object, their difficulty targets, the
    shuffled database order) and gives every image its own child generator,
    so each image depends only on the seed and its place in the plan. The
    same seed gives byte-identical files (same library versions).
    """
    import cv2

    if version not in VERSIONS:
        raise ValueError(f"embedded: no version {version!r}; the versions are {', '.join(map(str, VERSIONS))}")
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; delete it to rebuild the embedded dataset")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # small images: threads cost more than they save
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o755)
        catalogue, db_recs, q_recs, t_recs = _render_all(tmp, seed, progress, version)
        _write_groundtruth(tmp / "groundtruth.json", _metadata(seed, catalogue, db_recs, q_recs, t_recs, version))
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        cv2.setNumThreads(threads)
    if progress:
        print(f"embedded v{version}: {len(q_recs)} queries, {len(db_recs)} database and {len(t_recs)} training images "
              f"in {time.perf_counter() - t0:.1f} s -> {out_dir}", flush=True)
    return out_dir


def _file_names(jobs: list[tuple], db_slots: list[int]) -> list[str | None]:
    """Each job's image file relative to the build folder (``None`` for a reference, never written)."""
    db_index = iter(db_slots)  # shuffled database order
    counts = {"query": 0, "train": 0}
    names: list[str | None] = []
    for kind, *_ in jobs:
        if kind == "reference":
            names.append(None)
        elif kind == "db":
            names.append(f"db/{next(db_index):06d}.jpg")
        else:
            names.append(f"{'queries' if kind == 'query' else 'train'}/{counts[kind]:06d}.jpg")
            counts[kind] += 1
    return names


def _render_and_write(assets: Assets, task: tuple) -> dict:
    """Render one job and write its JPEG: ``task = (folder, file, job, seed sequence, ref)``."""
    folder, file, (kind, oid, target, pose), ss, ref = task
    img, rec = render_job(np.random.default_rng(ss), assets, kind, oid, target, ref, pose)
    rec["file"] = file
    _write_jpeg(Path(folder) / file, img, rec["camera"]["jpeg_quality"])
    return rec


def _workers() -> int:
    """Threads for the build: the CPUs this process may use, at most 4."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(4, n))


def _render_all(folder: Path, seed: int, progress: bool,
                version: int = VERSION) -> tuple[list[ObjectInfo], list[dict], list[dict], list[dict]]:
    """Render every planned image into ``folder`` (``db/``, ``queries/``, ``train/``).

    Returns the object catalogue and the records of the database images (in
    database order), the queries and the training images; each record's
    ``file`` is the image's path relative to ``folder``.

    Two phases: the queries and references here (every other rendering is
    measured against its object's), then the rest in :func:`_workers`
    threads. Each image draws from its own generator, so the files are
    the same whatever the number of processes.
    """
    from concurrent.futures import ThreadPoolExecutor
    from functools import partial

    from tqdm.auto import tqdm

    for sub in ("db", "queries", "train"):
        (folder / sub).mkdir()
    assets = Assets(version)
    plan_ss, image_ss = np.random.SeedSequence([int(seed), int(version)]).spawn(2)
    jobs, db_slots = plan_images(np.random.default_rng(plan_ss), assets.catalogue, version)
    seqs = image_ss.spawn(len(jobs))
    files = _file_names(jobs, db_slots)
    records: list[dict | None] = [None] * len(jobs)
    bar = tqdm(total=sum(f is not None for f in files), desc=f"embedded v{version}",
               unit="img", disable=not progress, leave=False)
    ref: dict[int, dict] = {}  # query (or reference) record of every object
    for k, (kind, oid, target, pose) in enumerate(jobs):
        if kind in ("query", "reference"):
            img, ref[oid] = render_job(np.random.default_rng(seqs[k]), assets, kind, oid, target, ref, pose)
            if files[k] is not None:
                records[k] = {**ref[oid], "file": files[k]}
                _write_jpeg(folder / files[k], img, ref[oid]["camera"]["jpeg_quality"])
                bar.update(1)
    rest = [k for k, job in enumerate(jobs) if job[0] not in ("query", "reference")]
    tasks = [(str(folder), files[k], jobs[k], seqs[k], {jobs[k][1]: ref[jobs[k][1]]} if jobs[k][1] >= 0 else {})
             for k in rest]
    # threads, not processes: OpenCV, NumPy's FFT and Pillow's JPEG encoder release the GIL, and a
    # process pool would re-run a caller's script that lacks `if __name__ == "__main__"`
    with ThreadPoolExecutor(_workers()) as pool:
        for k, rec in zip(rest, pool.map(partial(_render_and_write, assets), tasks)):
            records[k] = rec
            bar.update(1)
    bar.close()
    db_recs: list[dict] = [{}] * len(db_slots)
    q_recs: list[dict] = []
    t_recs: list[dict] = []
    for (kind, *_), rec in zip(jobs, records):
        if kind == "query":
            q_recs.append(rec)
        elif kind == "train":
            t_recs.append(rec)
        elif kind == "db":
            db_recs[int(rec["file"][3:9])] = rec
    return assets.catalogue, db_recs, q_recs, t_recs


def _write_jpeg(path: Path, img: np.ndarray, quality: int) -> None:
    """Write an ``(h, w, 3) uint8`` RGB image as a baseline JPEG (4:2:0) at ``quality``."""
    from PIL import Image

    Image.fromarray(img).save(path, format="JPEG", quality=int(quality), optimize=False,
                              progressive=False, subsampling=2)


def _ground_truth(q_recs: list[dict], db_recs: list[dict]) -> list[dict[str, list[int]]]:
    """Per query, the database indices of its object's ``easy``, ``hard`` and ``junk`` renderings."""
    gnd = []
    for q in q_recs:
        g: dict[str, list[int]] = {"easy": [], "hard": [], "junk": []}
        for i, r in enumerate(db_recs):
            if r["object"] == q["object"]:
                g[r["difficulty"]].append(i)
        gnd.append(g)
    return gnd


def _metadata(seed: int, catalogue: list[ObjectInfo], db_recs: list[dict], q_recs: list[dict],
              t_recs: list[dict], version: int = VERSION) -> dict:
    """Everything ``groundtruth.json`` holds, in its order (see :mod:`coursekit.datasets.embedded`)."""
    return {
        "name": "embedded",
        "version": int(version),
        "seed": int(seed),
        "protocol": "revisited",
        "thresholds": THRESHOLDS,
        "objects": [o.as_dict() for o in catalogue],
        "db": [r["file"] for r in db_recs],
        "queries": [r["file"] for r in q_recs],
        "train": [r["file"] for r in t_recs],
        "db_labels": [int(r["object"]) for r in db_recs],
        "query_labels": [int(r["object"]) for r in q_recs],
        "train_labels": [int(r["object"]) for r in t_recs],
        "bbx": [r["bbx"] for r in q_recs],
        "gnd": _ground_truth(q_recs, db_recs),
        "db_records": db_recs,
        "query_records": q_recs,
        "train_records": t_recs,
    }


def _write_groundtruth(path: Path, meta: dict) -> None:
    """Write the metadata as indented JSON (one space), UTF-8, with a final newline."""
    text = json.dumps(meta, indent=1)
    path.write_text(text + "\n", encoding="utf-8")


def _publish(tmp: Path, out_dir: Path) -> None:
    """Rename the finished build ``tmp`` to ``out_dir``; drop it if another process got there first."""
    try:
        os.rename(tmp, out_dir)
    except OSError:
        if not (out_dir / "groundtruth.json").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished it first
