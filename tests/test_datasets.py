"""The dataset loaders, on tiny trees in the real layouts, then on the real data.

The loaders never open an image, so the tiny trees hold empty files.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from coursekit.datasets import DatasetError, load_dataset
from coursekit.datasets.coil import load_coil100
from coursekit.datasets.folder import folder_classes, load_folder
from coursekit.datasets.holidays import load_holidays
from coursekit.datasets.oxford import (
    PARIS_CORRUPTED,
    load_oxford5k,
    load_paris6k,
    load_roxford5k,
    load_rparis6k,
)
from coursekit.datasets.smvs import load_smvs
from coursekit.datasets.ukbench import load_ukbench

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def names(paths) -> list[str]:
    return [p.name for p in paths]


def eq(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


def assert_missing(exc: pytest.ExceptionInfo, what: str, name: str) -> None:
    msg = str(exc.value)
    assert what in msg, msg
    assert f"python data_scripts/get.py {name}" in msg, msg


# --------------------------------------------------------------------- COIL-100


def make_coil(root: Path) -> None:
    for o in (1, 2):
        for a in (0, 5):
            touch(root / f"obj{o}__{a}.png")
    for a in range(0, 360, 5):  # a full object, in a sub-folder, JPEG
        touch(root / "sub" / f"obj51__{a}.jpg")
    for a in (355, 270, 180, 95, 85, 5):  # no 0 nor 90: ties go to the smaller angle
        touch(root / f"obj52__{a}.PNG")
    touch(root / "notes.txt")
    touch(root / "other.jpg")


def test_coil100_protocol(tmp_path):
    make_coil(tmp_path)
    ds = load_coil100(tmp_path)
    assert ds.name == "coil100" and ds.protocol == "standard" and ds.bbx is None
    assert ds.n_db == 72 + 6
    # numeric order: object, then angle
    assert names(ds.db[:3]) == ["obj51__0.jpg", "obj51__5.jpg", "obj51__10.jpg"]
    assert names(ds.db[72:]) == [f"obj52__{a}.PNG" for a in (5, 85, 95, 180, 270, 355)]
    assert names(ds.queries) == [
        "obj51__0.jpg", "obj51__90.jpg", "obj51__180.jpg", "obj51__270.jpg",
        "obj52__5.PNG", "obj52__85.PNG", "obj52__180.PNG", "obj52__270.PNG",
    ]
    assert eq(ds.db_labels, [51] * 72 + [52] * 6)
    assert eq(ds.query_labels, [51] * 4 + [52] * 4)
    # query 1 is obj51__90 = db row 18
    assert eq(ds.gnd[1].easy, [i for i in range(72) if i != 18])
    assert eq(ds.gnd[1].junk, [18]) and ds.gnd[1].hard.size == 0
    # query 4 is obj52__5 = db row 72
    assert eq(ds.gnd[4].easy, [73, 74, 75, 76, 77]) and eq(ds.gnd[4].junk, [72])
    assert names(ds.train) == ["obj1__0.png", "obj1__5.png", "obj2__0.png", "obj2__5.png"]
    assert eq(ds.train_labels, [1, 1, 2, 2])
    assert not set(ds.train) & set(ds.db)


def test_coil100_errors(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_coil100(tmp_path / "nowhere")
    assert_missing(e, str(tmp_path / "nowhere"), "coil100")
    touch(tmp_path / "wrong" / "cat.jpg")
    with pytest.raises(DatasetError, match=r"no files named obj\{N\}__\{angle\}") as e:
        load_coil100(tmp_path / "wrong")
    assert str(tmp_path / "wrong") in str(e.value)
    touch(tmp_path / "train_only" / "obj3__0.png")
    with pytest.raises(DatasetError, match="objects 51-100"):
        load_coil100(tmp_path / "train_only")


def test_default_root_is_data_root(tmp_path, monkeypatch):
    make_coil(tmp_path / "coil100")
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    assert load_coil100().root == tmp_path / "coil100"
    assert load_dataset("coil100").n_db == 78
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "empty"))
    with pytest.raises(DatasetError) as e:
        load_dataset("ukbench")
    assert_missing(e, str(tmp_path / "empty" / "ukbench"), "ukbench")


# ------------------------------------------------------------------------- SMVS


def make_smvs(base: Path) -> None:
    for n in (1, 2, 3):
        touch(base / "Reference" / f"{n:03d}.jpg")
        touch(base / "Canon" / f"{n:03d}.jpg")
    touch(base / "Droid" / "002.jpg")
    touch(base / "E63" / "001.jpg")
    touch(base / "Palm" / "003.jpg")
    touch(base / "Palm" / "Thumbs.db")


def test_smvs_protocol(tmp_path):
    make_smvs(tmp_path / "dvd_covers")  # one level down
    ds = load_smvs(tmp_path)
    assert ds.root == tmp_path / "dvd_covers"
    assert [p.relative_to(ds.root).as_posix() for p in ds.db] == [
        "Reference/001.jpg", "Reference/002.jpg", "Reference/003.jpg"]
    assert [p.relative_to(ds.root).as_posix() for p in ds.queries] == [
        "Canon/001.jpg", "Canon/002.jpg", "Canon/003.jpg", "Droid/002.jpg", "E63/001.jpg", "Palm/003.jpg"]
    assert [g.easy.tolist() for g in ds.gnd] == [[0], [1], [2], [1], [0], [2]]
    assert all(g.junk.size == 0 and g.hard.size == 0 for g in ds.gnd)
    assert eq(ds.db_labels, [1, 2, 3]) and eq(ds.query_labels, [1, 2, 3, 2, 1, 3])

    ds = load_smvs(tmp_path / "dvd_covers", phones=("Droid", "Canon"))  # at root, phone order kept
    assert [p.relative_to(ds.root).as_posix() for p in ds.queries] == [
        "Droid/002.jpg", "Canon/001.jpg", "Canon/002.jpg", "Canon/003.jpg"]
    assert [g.easy.tolist() for g in ds.gnd] == [[1], [0], [1], [2]]


def test_smvs_errors(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_smvs(tmp_path / "nowhere")
    assert_missing(e, str(tmp_path / "nowhere"), "smvs")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError) as e:
        load_smvs(tmp_path / "empty")
    assert_missing(e, str(tmp_path / "empty" / "Reference"), "smvs")

    make_smvs(tmp_path / "a")
    with pytest.raises(DatasetError) as e:
        load_smvs(tmp_path / "a", phones=("Canon", "iPhone"))
    assert_missing(e, str(tmp_path / "a" / "iPhone"), "smvs")

    touch(tmp_path / "a" / "E63" / "007.jpg")
    with pytest.raises(DatasetError, match="007") as e:
        load_smvs(tmp_path / "a")
    assert str(tmp_path / "a" / "E63" / "007.jpg") in str(e.value)


# ---------------------------------------------------------------------- UKBench


def make_ukbench(root: Path, n: int) -> None:
    for i in range(n):
        touch(root / "full" / f"ukbench{i:05d}.jpg")
    touch(root / "README.txt")


def test_ukbench_protocol(tmp_path):
    make_ukbench(tmp_path, 8)
    ds = load_ukbench(tmp_path)
    assert names(ds.db) == [f"ukbench{i:05d}.jpg" for i in range(8)]
    assert ds.queries == ds.db and ds.ns_group_size == 4
    assert eq(ds.db_labels, [0, 0, 0, 0, 1, 1, 1, 1]) and eq(ds.query_labels, ds.db_labels)
    assert eq(ds.gnd[0].easy, [1, 2, 3]) and eq(ds.gnd[0].junk, [0])
    assert eq(ds.gnd[6].easy, [4, 5, 7]) and eq(ds.gnd[6].junk, [6])


def test_ukbench_errors(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_ukbench(tmp_path / "nowhere")
    assert_missing(e, str(tmp_path / "nowhere"), "ukbench")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no files named ukbench00000.jpg"):
        load_ukbench(tmp_path / "empty")
    make_ukbench(tmp_path / "gap", 8)
    (tmp_path / "gap" / "full" / "ukbench00005.jpg").unlink()
    with pytest.raises(DatasetError, match="ukbench00005.jpg is missing"):
        load_ukbench(tmp_path / "gap")
    make_ukbench(tmp_path / "partial", 6)
    with pytest.raises(DatasetError, match="ukbench00006.jpg is missing"):
        load_ukbench(tmp_path / "partial")
    make_ukbench(tmp_path / "twice", 4)
    touch(tmp_path / "twice" / "copy" / "ukbench00002.jpg")
    with pytest.raises(DatasetError, match="twice"):
        load_ukbench(tmp_path / "twice")


# --------------------------------------------------------------------- Holidays


def test_holidays_protocol(tmp_path):
    for n in (100002, 100000, 100001, 100101, 100100, 100200):
        touch(tmp_path / "jpg" / f"{n}.jpg")
    touch(tmp_path / "jpg" / "12345.jpg")  # not 6 digits: ignored
    ds = load_holidays(tmp_path)
    assert names(ds.db) == ["100000.jpg", "100001.jpg", "100002.jpg", "100100.jpg", "100101.jpg", "100200.jpg"]
    # 1002xx has no other image: no positive, so not a query
    assert names(ds.queries) == ["100000.jpg", "100100.jpg"]
    assert eq(ds.gnd[0].easy, [1, 2]) and eq(ds.gnd[0].junk, [0])
    assert eq(ds.gnd[1].easy, [4]) and eq(ds.gnd[1].junk, [3])
    assert eq(ds.db_labels, [1000, 1000, 1000, 1001, 1001, 1002]) and eq(ds.query_labels, [1000, 1001])


def test_holidays_errors(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_holidays(tmp_path / "nowhere")
    assert_missing(e, str(tmp_path / "nowhere"), "holidays")
    touch(tmp_path / "x" / "photo.jpg")
    with pytest.raises(DatasetError, match=r"no files named NNNNNN\.jpg"):
        load_holidays(tmp_path / "x")


# -------------------------------------------------------------- Oxford / Paris


def make_oxford(root: Path, gt_dir: str = "gt") -> None:
    for s in ("all_souls_000001", "all_souls_000013", "balliol_000001", "bodleian_000002", "random_000001"):
        touch(root / "jpg" / f"{s}.jpg")
    gt = root / gt_dir
    # written in reverse order: the loader sorts by file name
    touch(gt / "bodleian_1_query.txt", "oxc1_bodleian_000002 10.0 20.5 30.0 40.0\n")
    touch(gt / "bodleian_1_good.txt", "bodleian_000002\n")
    touch(gt / "bodleian_1_ok.txt", "")
    touch(gt / "bodleian_1_junk.txt", "random_000001\nall_souls_000001\n")
    touch(gt / "all_souls_1_query.txt", "oxc1_all_souls_000013 136.5 34.1 648.5 955.7\n")
    touch(gt / "all_souls_1_good.txt", "all_souls_000013\nall_souls_000001\n")
    touch(gt / "all_souls_1_ok.txt", "balliol_000001\n")
    touch(gt / "all_souls_1_junk.txt", "")


def test_oxford5k_protocol(tmp_path):
    make_oxford(tmp_path)
    ds = load_oxford5k(tmp_path)
    assert ds.name == "oxford5k" and ds.protocol == "standard"
    assert [p.stem for p in ds.db] == [
        "all_souls_000001", "all_souls_000013", "balliol_000001", "bodleian_000002", "random_000001"]
    assert [p.stem for p in ds.queries] == ["all_souls_000013", "bodleian_000002"]
    assert np.allclose(ds.bbx, [[136.5, 34.1, 648.5, 955.7], [10.0, 20.5, 30.0, 40.0]])
    assert ds.bbx.dtype == np.float32
    assert eq(ds.gnd[0].easy, [0, 1, 2]) and ds.gnd[0].junk.size == 0  # good + ok; query not added to junk
    assert eq(ds.gnd[1].easy, [3]) and eq(ds.gnd[1].junk, [0, 4])
    assert ds.db_labels is None


def test_oxford5k_gt_in_root(tmp_path):
    make_oxford(tmp_path, gt_dir=".")
    ds = load_oxford5k(tmp_path)
    assert ds.n_queries == 2 and eq(ds.gnd[1].junk, [0, 4])


def test_oxford5k_errors(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_oxford5k(tmp_path / "nowhere")
    assert_missing(e, str(tmp_path / "nowhere"), "oxford5k")
    touch(tmp_path / "a" / "jpg" / "x.jpg")
    with pytest.raises(DatasetError) as e:
        load_oxford5k(tmp_path / "a")
    assert_missing(e, str(tmp_path / "a" / "gt"), "oxford5k")

    make_oxford(tmp_path / "b")
    (tmp_path / "b" / "gt" / "all_souls_1_ok.txt").unlink()
    with pytest.raises(DatasetError) as e:
        load_oxford5k(tmp_path / "b")
    assert_missing(e, str(tmp_path / "b" / "gt" / "all_souls_1_ok.txt"), "oxford5k")

    make_oxford(tmp_path / "c")
    (tmp_path / "c" / "jpg" / "balliol_000001.jpg").unlink()
    with pytest.raises(DatasetError, match="balliol_000001.jpg") as e:
        load_oxford5k(tmp_path / "c")
    assert "get.py oxford5k" in str(e.value)


def test_paris6k_subfolders_and_corrupted(tmp_path):
    corrupt_present, corrupt_absent = sorted(PARIS_CORRUPTED)[:2]
    assert len(PARIS_CORRUPTED) == 20
    for s in ("paris_defense_000001", "paris_defense_000002"):
        touch(tmp_path / "jpg" / "paris" / "defense" / f"{s}.jpg")
    touch(tmp_path / "jpg" / "paris" / "louvre" / "paris_louvre_000001.jpg")
    touch(tmp_path / "jpg" / "paris" / "louvre" / f"{corrupt_present}.jpg", "<html>302 Found</html>")
    gt = tmp_path / "gt"
    touch(gt / "defense_1_query.txt", "paris_defense_000002 1 2 3 4\n")
    touch(gt / "defense_1_good.txt", f"paris_defense_000001\n{corrupt_absent}\n")
    touch(gt / "defense_1_ok.txt", "paris_defense_000002\n")
    touch(gt / "defense_1_junk.txt", f"{corrupt_present}\nparis_louvre_000001\n")
    ds = load_paris6k(tmp_path)
    assert [p.stem for p in ds.db] == ["paris_defense_000001", "paris_defense_000002", "paris_louvre_000001"]
    assert [p.relative_to(tmp_path).as_posix() for p in ds.queries] == [
        "jpg/paris/defense/paris_defense_000002.jpg"]
    assert eq(ds.bbx, [[1, 2, 3, 4]])
    assert eq(ds.gnd[0].easy, [0, 1]) and eq(ds.gnd[0].junk, [2])


def make_revisited(root: Path, name: str, sub: str = "") -> dict:
    imlist = ["z_000003", "a_000001", "m_000002"]  # not sorted: the pickle's order is kept
    qimlist = ["q_000010", "q_000011"]
    for s in imlist + qimlist:
        touch(root / "jpg" / sub / f"{s}.jpg")
    cfg = {
        "imlist": imlist,
        "qimlist": qimlist,
        "gnd": [
            {"bbx": [1.5, 2.0, 30.0, 40.0], "easy": np.array([2]), "hard": np.array([0]), "junk": np.array([], dtype=int)},
            {"bbx": np.array([0.0, 0.0, 10.0, 10.0]), "easy": [1, 0], "hard": [], "junk": [2]},
        ],
    }
    with open(root / f"gnd_{name}.pkl", "wb") as f:
        pickle.dump(cfg, f)
    return cfg


def test_roxford5k_protocol(tmp_path):
    make_revisited(tmp_path, "roxford5k")
    ds = load_roxford5k(tmp_path)
    assert ds.name == "roxford5k" and ds.protocol == "revisited"
    assert [p.relative_to(tmp_path).as_posix() for p in ds.db] == [
        "jpg/z_000003.jpg", "jpg/a_000001.jpg", "jpg/m_000002.jpg"]
    assert names(ds.queries) == ["q_000010.jpg", "q_000011.jpg"]
    assert np.allclose(ds.bbx, [[1.5, 2.0, 30.0, 40.0], [0, 0, 10, 10]])
    assert eq(ds.gnd[0].easy, [2]) and eq(ds.gnd[0].hard, [0]) and ds.gnd[0].junk.size == 0
    assert eq(ds.gnd[1].easy, [1, 0]) and ds.gnd[1].hard.size == 0 and eq(ds.gnd[1].junk, [2])
    assert eq(ds.gnd[1].positives, [1, 0])


def test_rparis6k_subfolders(tmp_path):
    make_revisited(tmp_path, "rparis6k", sub="paris/defense")
    ds = load_rparis6k(tmp_path)
    assert ds.n_db == 3 and ds.n_queries == 2 and ds.protocol == "revisited"


def test_revisited_errors(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_roxford5k(tmp_path / "nowhere")
    assert_missing(e, str(tmp_path / "nowhere"), "roxford5k")
    (tmp_path / "a").mkdir()
    with pytest.raises(DatasetError) as e:
        load_roxford5k(tmp_path / "a")
    assert_missing(e, str(tmp_path / "a" / "gnd_roxford5k.pkl"), "roxford5k")
    make_revisited(tmp_path / "b", "rparis6k")
    (tmp_path / "b" / "jpg" / "m_000002.jpg").unlink()
    with pytest.raises(DatasetError) as e:
        load_rparis6k(tmp_path / "b")
    assert_missing(e, str(tmp_path / "b" / "jpg" / "m_000002.jpg"), "rparis6k")
    with open(tmp_path / "a" / "gnd_roxford5k.pkl", "wb") as f:
        pickle.dump({"imlist": []}, f)
    with pytest.raises(DatasetError, match="qimlist"):
        load_roxford5k(tmp_path / "a")


# ----------------------------------------------------------------------- folder


def test_folder_protocol(tmp_path):
    for rel in ("cats/a.jpg", "cats/b.png", "cats/sub/c.JPEG", "dogs/x.jpg", "dogs/y.jpg",
                "lonely/z.jpg", "loose.jpg", ".hidden/h.jpg", "cats/notes.txt"):
        touch(tmp_path / rel)
    (tmp_path / "empty").mkdir()
    ds = load_folder(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in ds.db] == [
        "cats/a.jpg", "cats/b.png", "cats/sub/c.JPEG", "dogs/x.jpg", "dogs/y.jpg", "lonely/z.jpg"]
    assert ds.queries == ds.db[:5]  # lonely/z.jpg has no positive
    assert folder_classes(tmp_path) == ["cats", "dogs", "lonely"]
    assert eq(ds.db_labels, [0, 0, 0, 1, 1, 2]) and eq(ds.query_labels, [0, 0, 0, 1, 1])
    assert eq(ds.gnd[1].easy, [0, 2]) and eq(ds.gnd[1].junk, [1])
    assert eq(ds.gnd[4].easy, [3]) and eq(ds.gnd[4].junk, [4])


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="--root"):
        load_folder(None)
    with pytest.raises(DatasetError, match="--root"):
        load_dataset("folder")
    with pytest.raises(DatasetError) as e:
        load_folder(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no sub-folders"):
        load_folder(tmp_path / "empty")
    touch(tmp_path / "flat" / "a.jpg")
    with pytest.raises(DatasetError, match="no sub-folders"):
        load_folder(tmp_path / "flat")
    touch(tmp_path / "noimg" / "a" / "readme.txt")
    with pytest.raises(DatasetError, match="no images"):
        load_folder(tmp_path / "noimg")
    touch(tmp_path / "single" / "a" / "1.jpg")
    touch(tmp_path / "single" / "b" / "2.jpg")
    with pytest.raises(DatasetError, match="two or more images"):
        load_folder(tmp_path / "single")


def four_photos(root: Path) -> None:
    for rel in ("a/1.jpg", "a/2.jpg", "b/3.jpg", "b/4.jpg"):
        touch(root / rel)


def test_folder_link_to_itself_adds_no_image(tmp_path):
    four_photos(tmp_path)
    (tmp_path / "b" / "loop").symlink_to(".")  # was 84 images and mAP 1.0
    ds = load_folder(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in ds.db] == ["a/1.jpg", "a/2.jpg", "b/3.jpg", "b/4.jpg"]


def test_folder_link_to_the_root_neither_loops_nor_mixes_classes(tmp_path):
    four_photos(tmp_path)
    (tmp_path / "a" / "up").symlink_to("..")  # was 1,804 images with classes mixed
    ds = load_folder(tmp_path)
    assert ds.n_db == 4 and eq(ds.db_labels, [0, 0, 1, 1])
    assert [p.parent.name for p in ds.db] == ["a", "a", "b", "b"]


def test_folder_two_links_to_one_folder_count_its_photos_once(tmp_path):
    four_photos(tmp_path / "photos")
    elsewhere = tmp_path / "elsewhere"
    touch(elsewhere / "5.jpg")
    (tmp_path / "photos" / "a" / "more").symlink_to(elsewhere)   # a linked-in folder is followed
    (tmp_path / "photos" / "b" / "again").symlink_to(elsewhere)  # ... once
    (tmp_path / "photos" / "c").symlink_to(tmp_path / "photos" / "b")  # a class linked twice
    ds = load_folder(tmp_path / "photos")
    assert [p.relative_to(tmp_path / "photos").as_posix() for p in ds.db] == [
        "a/1.jpg", "a/2.jpg", "a/more/5.jpg", "b/3.jpg", "b/4.jpg"]


def test_folder_reads_every_suffix_index_build_reads(tmp_path):
    from coursekit.images import IMAGE_SUFFIXES

    for i, suffix in enumerate(IMAGE_SUFFIXES):
        touch(tmp_path / "c" / f"{i}{suffix.upper() if i % 2 else suffix}")
    ds = load_folder(tmp_path)
    assert sorted(p.suffix.lower() for p in ds.db) == sorted(IMAGE_SUFFIXES)
    assert {".webp", ".bmp", ".tif", ".gif"} <= {p.suffix.lower() for p in ds.db}


# -------------------------------------------------------------------- real data


def shared(folder: str) -> Path:
    path = SHARED / folder
    if not path.is_dir():
        pytest.skip(f"real dataset not available: {path} is absent")
    return path


@pytest.mark.real_data
def test_real_coil100():
    root = shared("coil100")
    ds = load_coil100(root)
    files = [p for p in root.rglob("*") if re.match(r"obj(\d+)__\d+\.(png|jpg)$", p.name, re.I)]
    objs = np.array([int(re.match(r"obj(\d+)__", p.name).group(1)) for p in files])
    assert len(np.unique(ds.db_labels)) == 50 and set(ds.db_labels.tolist()) == set(range(51, 101))
    assert ds.n_db == int(((objs >= 51) & (objs <= 100)).sum())
    assert len(ds.train) == int(((objs >= 1) & (objs <= 50)).sum())
    assert ds.n_queries <= 200
    assert min(g.easy.size for g in ds.gnd) >= 60
    assert all(eq(g.junk, [ds.db.index(q)]) for g, q in zip(ds.gnd[:8], ds.queries[:8]))


@pytest.mark.real_data
def test_real_smvs():
    ds = load_smvs(shared("smvs_dvd_covers"))
    assert ds.n_db == 100 and ds.n_queries == 400
    assert all(g.easy.size == 1 and g.junk.size == 0 for g in ds.gnd)
    assert eq(ds.db_labels[np.concatenate([g.easy for g in ds.gnd])], ds.query_labels)


def test_a_crafted_revisited_ground_truth_runs_no_code(tmp_path):
    """`python -m coursekit datasets` loads every dataset: a crafted gnd pickle must not run anything."""
    make_revisited(tmp_path, "roxford5k")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    (tmp_path / "gnd_roxford5k.pkl").write_bytes(pickle.dumps({"imlist": [], "qimlist": [], "gnd": [Evil()]}))
    with pytest.raises(DatasetError) as e:
        load_roxford5k(tmp_path)
    assert not marker.exists()
    assert str(tmp_path / "gnd_roxford5k.pkl") in str(e.value) and "get.py roxford5k" in str(e.value)


def test_a_truncated_revisited_ground_truth_says_to_fetch_it_again(tmp_path):
    make_revisited(tmp_path, "rparis6k")
    pkl = tmp_path / "gnd_rparis6k.pkl"
    pkl.write_bytes(pkl.read_bytes()[:40])
    with pytest.raises(DatasetError, match="cannot be read as a pickle.*get.py rparis6k"):
        load_rparis6k(tmp_path)


@pytest.mark.parametrize("box, problem", [([30.0, 40.0, 10.0, 50.0], "is empty or reversed"),
                                          ([5.0, 5.0, 5.0, 20.0], "is empty or reversed"),
                                          ([float("nan"), 0.0, 10.0, 10.0], "not a number"),
                                          ([200.0, 10.0, 260.0, 30.0], "lies outside the image (64 x 48 pixels)")])
def test_a_degenerate_query_box_is_named_with_the_fix(tmp_path, box, problem):
    """A query box that cannot be cropped stops the loader with the query, the box, the problem and the fix;
    a box that only overhangs the image loads (it is clipped when cropped)."""
    from PIL import Image

    cfg = make_revisited(tmp_path, "roxford5k")
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "jpg" / "q_000011.jpg", format="JPEG")
    cfg["gnd"][1]["bbx"] = box
    with open(tmp_path / "gnd_roxford5k.pkl", "wb") as f:
        pickle.dump(cfg, f)
    with pytest.raises(DatasetError) as e:
        load_roxford5k(tmp_path)
    assert "query 1 (q_000011.jpg) has the box" in str(e.value) and problem in str(e.value)
    assert "Correct its 'bbx' in" in str(e.value) and "get.py roxford5k" in str(e.value)
    cfg["gnd"][1]["bbx"] = [50.0, 40.0, 90.0, 70.0]                           # overhangs the 64 x 48 image
    with open(tmp_path / "gnd_roxford5k.pkl", "wb") as f:
        pickle.dump(cfg, f)
    assert load_roxford5k(tmp_path).bbx[1].tolist() == [50.0, 40.0, 90.0, 70.0]
