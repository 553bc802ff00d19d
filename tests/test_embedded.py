"""The embedded benchmark: structure, ground truth, determinism, errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coursekit.datasets.base import DatasetError
from coursekit.datasets.embedded import (
    THRESHOLDS,
    VERSION,
    build_embedded,
    default_root,
    load_embedded,
)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("embedded") / "seed0"
    t0 = time.perf_counter()
    build_embedded(root, seed=0, progress=False)
    return root, time.perf_counter() - t0


@pytest.fixture(scope="module")
def ds(built):
    return load_embedded(built[0])


@pytest.fixture(scope="module")
def meta(built):
    return json.loads((built[0] / "groundtruth.json").read_text())


def test_build_time(built):
    # about 10-20 s on two cores; the issue asks for under a minute
    assert built[1] < 60, f"build took {built[1]:.1f} s"


def test_counts_and_layout(built, ds):
    root = built[0]
    assert ds.name == "embedded" and ds.protocol == "revisited"
    assert 50 <= ds.n_queries <= 70
    assert 400 <= ds.n_db <= 1000
    assert len(ds.train) >= 40 * 5
    assert len(set(ds.train_labels.tolist())) >= 40
    assert all(p.parent == root / "db" and p.suffix == ".jpg" for p in ds.db)
    assert all(p.parent == root / "queries" for p in ds.queries)
    assert all(p.parent == root / "train" for p in ds.train)
    assert not set(ds.queries) & set(ds.db)
    assert not set(ds.train) & (set(ds.db) | set(ds.queries))
    n_files = sum(1 for p in root.rglob("*.jpg"))
    assert n_files == ds.n_db + ds.n_queries + len(ds.train)
    # no leftover temporary build folder next to it
    assert not [p for p in root.parent.iterdir() if ".building-" in p.name]


def test_images_are_jpegs_of_the_right_size(ds):
    for p in ds.db[:20] + ds.queries[:5] + ds.train[:5]:
        with Image.open(p) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            assert sorted(im.size) == [360, 480]


def test_ground_truth(ds):
    n_distractors = int((ds.db_labels == -1).sum())
    assert n_distractors >= 90
    assert len(set(ds.query_labels.tolist())) == ds.n_queries  # one query per object
    for q, g in enumerate(ds.gnd):
        assert len(g.easy) >= 1, f"query {q} has no easy positive"
        every = np.concatenate([g.easy, g.hard, g.junk])
        assert len(set(every.tolist())) == len(every)  # disjoint lists
        # exactly the database renderings of the query's object
        assert sorted(every.tolist()) == np.flatnonzero(ds.db_labels == ds.query_labels[q]).tolist()
    totals = {k: sum(len(getattr(g, k)) for g in ds.gnd) for k in ("easy", "hard", "junk")}
    assert totals["hard"] > 0.15 * sum(totals.values())
    assert totals["junk"] > 0


def documented_difficulty(r: dict) -> str:
    """A database record's difficulty from its measured parameters, by the rule the module's docstring states."""
    t = THRESHOLDS
    junk = r["visible"] < t["junk_visible"] or r["area"] < t["junk_area"]
    rot = abs((r["rotation"] + 180) % 360 - 180)
    hard = (r["visible"] < t["hard_visible"] or r["tilt"] > t["hard_tilt"]
            or rot > t["hard_rotation"] or r["area"] < t["hard_area"]
            or not 1 / t["hard_scale"] <= r["scale"] <= t["hard_scale"]
            or r["camera"]["blur"] > t["hard_blur"])
    return "junk" if junk else "hard" if hard else "easy"


def test_difficulty_follows_the_documented_thresholds(meta):
    for r in meta["db_records"]:
        if r["object"] >= 0:
            assert r["difficulty"] == documented_difficulty(r)


def test_query_boxes(ds):
    assert ds.bbx.shape == (ds.n_queries, 4) and ds.bbx.dtype == np.float32
    for p, (x1, y1, x2, y2) in zip(ds.queries, ds.bbx):
        with Image.open(p) as im:
            w, h = im.size
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert (x2 - x1) >= 40 and (y2 - y1) >= 40


def test_train_split_is_disjoint(ds, meta):
    objects = {o["id"]: o for o in meta["objects"]}
    test_ids = set(ds.query_labels.tolist())
    train_ids = set(ds.train_labels.tolist())
    assert not test_ids & train_ids
    assert not train_ids & set(ds.db_labels.tolist())
    # training objects come from other photos than the test objects
    assert not {objects[i]["source"] for i in test_ids} & {objects[i]["source"] for i in train_ids}
    # and no training image holds a test-photo clutter object
    for r in meta["train_records"]:
        assert all("texture" in c for c in r["clutter"])


def test_objects_do_not_overlap_in_their_source(meta):
    by_source: dict[str, list] = {}
    for o in meta["objects"]:
        by_source.setdefault(o["source"], []).append(o["box"])
    for boxes in by_source.values():
        b = np.array(boxes)
        for i in range(len(b)):
            for j in range(i + 1, len(b)):
                overlap_x = min(b[i][2], b[j][2]) - max(b[i][0], b[j][0])
                overlap_y = min(b[i][3], b[j][3]) - max(b[i][1], b[j][1])
                assert overlap_x <= 0 or overlap_y <= 0


def test_metadata(meta):
    assert meta["version"] == VERSION and meta["seed"] == 0
    assert len(meta["db_records"]) == len(meta["db"])
    r = next(r for r in meta["db_records"] if r["object"] >= 0)
    for key in ("homography", "tilt", "rotation", "size", "visible", "area", "scale", "camera", "background"):
        assert key in r
    assert np.asarray(r["homography"]).shape == (3, 3)


@pytest.mark.slow
def test_same_seed_is_byte_identical_and_other_seed_differs(built, tmp_path):
    again = build_embedded(tmp_path / "again", seed=0, progress=False)
    assert _hashes(again) == _hashes(built[0])
    other = build_embedded(tmp_path / "other", seed=1, progress=False)
    h0, h1 = _hashes(built[0]), _hashes(other)
    assert h0["groundtruth.json"] != h1["groundtruth.json"]
    same = sum(h0.get(k) == v for k, v in h1.items())
    assert same == 0


def test_build_refuses_an_existing_folder(built):
    with pytest.raises(FileExistsError):
        build_embedded(built[0], progress=False)


def test_incomplete_folder_raises_a_clear_error(built, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(built[0], broken)
    meta = json.loads((broken / "groundtruth.json").read_text())
    (broken / meta["db"][3]).unlink()
    with pytest.raises(DatasetError, match=r"(?s)missing.*delete it"):
        load_embedded(broken)

    (broken / "groundtruth.json").write_text("{not json")
    with pytest.raises(DatasetError, match="groundtruth.json"):
        load_embedded(broken)

    (broken / "groundtruth.json").unlink()
    with pytest.raises(DatasetError, match="groundtruth.json is missing"):
        load_embedded(broken)

    with pytest.raises(DatasetError, match="does not exist"):
        load_embedded(tmp_path / "nowhere")


def test_default_root_uses_the_cache(monkeypatch, tmp_path, built):
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path))
    assert default_root(3) == tmp_path / f"embedded-v{VERSION}-seed3"
    # a default root that already holds a build is loaded, not rebuilt
    shutil.copytree(built[0], default_root(0))
    ds = load_embedded()
    assert ds.root == default_root(0) and ds.n_queries > 0


def test_load_dataset_knows_it(built):
    from coursekit.datasets import load_dataset

    ds = load_dataset("embedded", root=built[0])
    assert ds.name == "embedded"
