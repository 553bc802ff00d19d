"""data_scripts/make_ukbench.py: UKBench-format groups from COIL-100 and SMVS, loadable as `ukbench`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import load_data_script
from coursekit.datasets import load_dataset

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="module")
def mk():
    return load_data_script("make_ukbench")


def _jpeg(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(path)


@pytest.fixture
def sources(tmp_path):
    coil, smvs = tmp_path / "coil100", tmp_path / "smvs"
    for obj in (1, 2, 3):
        for angle in range(0, 360, 5):
            if not (obj == 2 and angle in (30, 35)):          # object 2 misses two views, as in the real set
                _jpeg(coil / f"obj{obj}__{angle}.jpg", obj)
    _jpeg(coil / "obj9__0.jpg", 9)                               # too few views for a group
    for phone in ("Canon", "Droid", "E63", "Palm"):
        for cover in (1, 2):
            _jpeg(smvs / phone / f"{cover:03d}.jpg", 100 + cover)
    _jpeg(smvs / "Canon" / "003.jpg", 103)                       # one phone only: left out
    return coil, smvs


def test_groups_are_the_phones_of_a_cover_and_spaced_views_of_an_object(mk, sources):
    coil, smvs = sources
    assert [[p.parent.name + "/" + p.name for p in g] for g in mk.smvs_groups(smvs)] == [
        [f"{phone}/{c:03d}.jpg" for phone in mk.PHONES] for c in (1, 2)]
    groups = mk.coil_groups(coil, step=30, seed=0)
    assert len(groups) == 3                                      # object 9 has one view
    for g in groups:
        angles = [int(p.stem.split("__")[1]) for p in g]
        assert len({p.stem.split("__")[0] for p in g}) == 1 and len(set(angles)) == 4
        gaps = [(b - a) % 360 for a, b in zip(angles, angles[1:])]
        assert all(25 <= gap <= 35 for gap in gaps), angles      # 30 apart, or the nearest view it has
    assert mk.coil_groups(coil, step=30, seed=0) == groups       # seeded


def test_the_folder_loads_as_ukbench_and_is_never_overwritten(mk, sources, tmp_path, capsys):
    coil, smvs = sources
    out = tmp_path / "ukb"
    assert mk.main([str(out), "--coil-root", str(coil), "--smvs-root", str(smvs)]) == 0
    ds = load_dataset("ukbench", root=out)
    assert ds.n_db == 4 * (2 + 3) and ds.db_labels.tolist() == np.repeat(np.arange(5), 4).tolist()
    record = json.loads((out / "groups.json").read_text())
    assert record["sources"] == ["smvs", "coil100"] and len(record["groups"]) == 5
    first = [Image.open(p).getpixel((0, 0))[0] for p in ds.db[:8]]
    assert first == [101] * 4 + [102] * 4                         # the pixels of the covers' photos
    before = sorted(p.name for p in out.iterdir())
    assert mk.main([str(out), "--coil-root", str(coil), "--smvs-root", str(smvs)]) == 2
    assert "already exists" in capsys.readouterr().err and sorted(p.name for p in out.iterdir()) == before
    assert mk.main([str(tmp_path / "x"), "--coil-root", str(tmp_path / "none"), "--sources", "coil100"]) == 2
    assert "no files obj{N}__{angle}.jpg" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.building").exists()


@pytest.mark.skipif(not (SHARED / "coil100").is_dir() or not (SHARED / "smvs_dvd_covers").is_dir(),
                    reason="../shared/datasets (COIL-100 and SMVS) is not here")
def test_the_real_sets_give_100_groups_each(mk, tmp_path):
    out = tmp_path / "ukb"
    assert mk.main([str(out), "--coil-root", str(SHARED / "coil100"),
                    "--smvs-root", str(SHARED / "smvs_dvd_covers")]) == 0
    ds = load_dataset("ukbench", root=out)
    assert ds.n_db == 800 and ds.ns_group_size == 4
    if os.name == "posix":
        assert (out / "ukbench00000.jpg").stat().st_nlink >= 1
