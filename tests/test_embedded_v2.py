"""Version 2 of the embedded benchmark: dead-leaves backgrounds that no two images share, views along walks."""

from __future__ import annotations

import io
import json
import time
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from coursekit.datasets import load_dataset
from coursekit.datasets.base import DatasetError
from coursekit.datasets.embedded import VERSION, build_embedded, load_embedded
from coursekit.datasets.embedded.plan import _V2_DISTRACTORS, _V2_STEP, _V2_VIEWS, plan_images, walk_poses
from coursekit.datasets.embedded.render import Assets, fractal_noise, render_job

from test_embedded import documented_difficulty

NAME = "embedded" if VERSION == 2 else "embedded-v2"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("embedded-v2") / "seed0"
    t0 = time.perf_counter()
    build_embedded(root, seed=0, progress=False, version=2)
    return root, time.perf_counter() - t0


@pytest.fixture(scope="module")
def meta(built):
    return json.loads((built[0] / "groundtruth.json").read_text())


def test_build_time(built):
    assert built[1] < 60, f"build took {built[1]:.1f} s"


def test_views_per_query_object_and_distractors(meta):
    assert meta["version"] == 2 and meta["seed"] == 0
    views = Counter(label for label in meta["db_labels"] if label >= 0)
    assert sorted(views) == sorted(meta["query_labels"])
    assert all(_V2_VIEWS[0] <= n <= _V2_VIEWS[1] for n in views.values())
    assert 8 <= np.mean(list(views.values())) <= 10
    assert meta["db_labels"].count(-1) == _V2_DISTRACTORS


def test_every_query_has_an_easy_positive_and_each_difficulty_occurs(meta):
    assert all(len(g["easy"]) >= 1 for g in meta["gnd"])
    difficulties = Counter(r["difficulty"] for r in meta["db_records"] if r["object"] >= 0)
    n = sum(difficulties.values())
    assert difficulties["easy"] > 0.3 * n and difficulties["hard"] > 0.15 * n and 0 < difficulties["junk"] < 0.15 * n
    assert all(r["difficulty"] != "junk" for r in meta["train_records"])


def test_difficulty_follows_the_documented_thresholds(meta):
    for r in meta["db_records"]:
        if r["object"] >= 0:
            assert r["difficulty"] == documented_difficulty(r)


def test_backgrounds_are_dead_leaves_named_by_their_main_photo(meta):
    for r in meta["db_records"] + meta["query_records"] + meta["train_records"]:
        bg = r["background"]
        assert bg["model"] == "dead leaves" and len(bg["layers"]) == 5 and bg["leaves"] > 10
        assert sum(layer["cover"] for layer in bg["layers"]) == pytest.approx(1.0, abs=1e-3)
        photos = Counter()
        for layer in bg["layers"]:
            if layer["source"] != "noise":
                photos[layer["source"]] += layer["cover"]
        if photos:  # the covers are rounded to 4 decimals: a tie within that goes either way
            assert photos[bg["source"]] >= max(photos.values()) - 1e-3
    sources = Counter(r["background"]["source"] for r in meta["db_records"])
    assert len(sources) >= 10 and max(sources.values()) < 0.2 * len(meta["db_records"])


def test_views_walk_from_the_query(meta):
    """Each step of a walk is small; its views drift away from the query's pose."""
    poses = [r["pose"] for r in meta["db_records"] if r["object"] >= 0]
    assert all(set(p) == {"tilt", "tilt_axis", "rotation", "scale", "light", "walk", "step"} for p in poses)
    rng = np.random.default_rng(0)
    steps, drift = [], {1: [], 6: []}
    for _ in range(300):
        walk = walk_poses(rng, 10)
        assert sorted((p["walk"], p["step"]) for p in walk) == [(p["walk"], p["step"]) for p in walk]
        for a, b in zip(walk, walk[1:]):
            if b["walk"] == a["walk"]:
                assert b["step"] == a["step"] + 1
                steps.append(abs((b["rotation"] - a["rotation"] + 180) % 360 - 180))
        for p in walk:
            if p["step"] in drift:
                drift[p["step"]].append(abs(p["rotation"]))
    # one step in rotation is N(0, s): its absolute value has median 0.674 s
    assert np.median(steps) == pytest.approx(_V2_STEP["rotation"] * 0.674, rel=0.15)
    assert np.median(drift[6]) > 2 * np.median(drift[1])              # sqrt(6) times one step


def test_an_image_depends_only_on_the_seed_and_its_place(built, meta):
    """Rendering a job again from its own generator gives the same JPEG bytes as the build wrote."""
    assets = Assets(2)
    plan_ss, image_ss = np.random.SeedSequence([0, 2]).spawn(2)
    jobs, db_slots = plan_images(np.random.default_rng(plan_ss), assets.catalogue, 2)
    seqs = image_ss.spawn(len(jobs))
    query = render_job(np.random.default_rng(seqs[0]), assets, *jobs[0][:3], {}, jobs[0][3])
    assert jobs[0][0] == "query"
    for k in (1, 2):
        img, rec = render_job(np.random.default_rng(seqs[k]), assets, *jobs[k][:3], {jobs[k][1]: query[1]},
                              jobs[k][3])
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(rec["camera"]["jpeg_quality"]), optimize=False,
                                  progressive=False, subsampling=2)
        assert buf.getvalue() == (built[0] / "db" / f"{db_slots[k - 1]:06d}.jpg").read_bytes()


def test_fractal_noise_has_the_asked_spectrum():
    rng = np.random.default_rng(0)
    slopes = []
    for beta in (1.5, 2.5):
        x = fractal_noise(rng, 256, 256, beta).astype(np.float64)
        power = np.abs(np.fft.rfft2(x - x.mean())) ** 2
        f = np.hypot(np.fft.rfftfreq(256)[None, :], np.fft.fftfreq(256)[:, None])
        keep = (f > 0.02) & (f < 0.3)
        slopes.append(np.polyfit(np.log(f[keep]), np.log(power[keep]), 1)[0])
    assert slopes[0] == pytest.approx(-1.5, abs=0.3) and slopes[1] == pytest.approx(-2.5, abs=0.3)


def test_it_loads_under_its_name_and_a_wrong_version_says_which(built):
    ds = load_dataset(NAME, root=built[0])
    assert ds.name == NAME and ds.n_queries == 68
    other = 1 if VERSION == 2 else VERSION
    with pytest.raises(DatasetError, match="version=2"):
        load_embedded(built[0], version=other)
    with pytest.raises(ValueError, match="no version 7"):
        load_embedded(built[0], version=7)


def test_the_report_shows_that_neighbours_follow_the_object_not_the_background(tmp_path):
    """The default build, as the notebooks load it (GeM's vectors computed here are the ones they then read from the
    cache): positives per query as on a landmark set, and GeM's nearest neighbours drawn by the object."""
    from coursekit.course.report import dataset_audit, write_report

    ds = load_dataset(NAME)
    a = dataset_audit(ds)
    assert 7 <= a["positives"] <= 15 and a["easy"] >= 1 and a["hard"] > 0
    assert a["background"] <= 2 * a["background_chance"], a       # version 1: 54.6% against 9.0%
    assert a["object"] > a["background"] and a["object"] > 10 * a["object_chance"], a
    assert 0 < a["purity"] <= 1 and a["edges"] > 0 and a["k"] == 10
    report = {"generated": "now", "version": "x", "machine": "here", "absent": [], "notebooks": [], "results": [],
              "datasets": {NAME: {"n_db": ds.n_db, "n_queries": ds.n_queries}}, "audit": {NAME: a}}
    write_report(tmp_path, report)
    md = (tmp_path / "REPORT.md").read_text()
    assert "### The dataset" in md
    assert f"{100 * a['background']:.1f}% share its background source (chance {100 * a['background_chance']:.1f}%)" in md


def test_a_dataset_without_background_records_has_no_audit(tmp_path):
    from coursekit.course.report import dataset_audit
    from coursekit.datasets.embedded.audit import background_sources

    class Plain:
        root, n_db = tmp_path, 3
    assert dataset_audit(Plain()) is None and background_sources(tmp_path) is None
    (tmp_path / "groundtruth.json").write_text(json.dumps({"db_records": [{"background": {"photo": "x"}}]}))
    assert background_sources(tmp_path) is None
