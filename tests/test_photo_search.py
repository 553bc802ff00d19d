"""The capstone's photo search: index build / add, search, the HTML page, and what is refused."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from coursekit import photo_search as ps
from coursekit.cli import main
from coursekit.datasets import load_dataset
from coursekit.whitening import ShrunkWhitening


@pytest.fixture(scope="module")
def db_images():
    return load_dataset("embedded").db


def _make_folder(root: Path, images) -> Path:
    """8 photos, 3 of them in a subfolder, and one broken file."""
    (root / "trip").mkdir(parents=True)
    for i, src in enumerate(images[:8]):
        shutil.copy(src, (root / "trip" if i >= 5 else root) / f"p{i}.jpg")
    (root / "notes.jpg").write_text("this is not a photo")
    return root


@pytest.fixture(scope="module")
def shared(tmp_path_factory, db_images):
    """A folder and its index, built once: tests that change files work on a copy (:func:`photos`)."""
    root = _make_folder(tmp_path_factory.mktemp("shared") / "photos", db_images)
    return root, ps.build_index(root, "gem", progress=False)


@pytest.fixture
def photos(shared, tmp_path):
    """A copy of the shared folder (times kept, so the shared index is valid for it)."""
    root = tmp_path / "photos"
    shutil.copytree(shared[0], root)
    return root


@pytest.fixture
def built(shared, photos):
    """The shared index, its paths moved to the copy."""
    index = shared[1]
    old, new = str(shared[0].resolve()), str(photos.resolve())
    return ps.PhotoIndex(index.vectors.copy(), [p.replace(old, new, 1) for p in index.paths], index.sizes.copy(),
                         index.mtimes.copy(), {**index.meta, "root": new}, None, list(index.skipped))


def test_plan_update_sorts_paths_into_new_changed_and_missing():
    indexed = {"a": (1, 10), "b": (2, 20), "c": (3, 30)}
    found = {"a": (1, 10), "b": (2, 21), "d": (4, 40)}
    assert ps.plan_update(indexed, found) == (["d"], ["b"], ["c"])
    assert ps.plan_update({}, found) == (["a", "b", "d"], [], [])
    assert ps.plan_update(indexed, {}) == ([], [], ["a", "b", "c"])


def test_top_k_agrees_with_a_full_sort_and_breaks_ties_by_index():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 16)).astype(np.float32)
    q = rng.standard_normal(16).astype(np.float32)
    ids, scores = ps.top_k(X, q, 7)
    np.testing.assert_array_equal(ids, np.argsort(-(X @ q), kind="stable")[:7])
    np.testing.assert_allclose(scores, (X @ q)[ids])
    X2 = np.repeat(X[:1], 5, axis=0)                           # five equal scores
    assert ps.top_k(X2, q, 3)[0].tolist() == [0, 1, 2]
    assert len(ps.top_k(X, q, 1000)[0]) == 200
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        ps.top_k(X, q[:5], 3)


def test_build_embeds_every_readable_photo_recursively_and_lists_the_broken_one(built, photos):
    assert len(built) == 8
    assert sum("/trip/" in p for p in built.paths) == 3
    assert [Path(p).name for p, _ in built.skipped] == ["notes.jpg"]
    assert "not an image" in built.skipped[0][1]
    np.testing.assert_allclose(np.linalg.norm(built.vectors, axis=1), 1, atol=1e-5)
    assert built.vectors.dtype == np.float32 and built.vectors.shape == (8, 1280)
    assert built.meta["method"] == "gem" and built.meta["root"] == str(photos.resolve())


def test_an_index_survives_the_round_trip_and_is_never_overwritten_unasked(built, tmp_path):
    path = tmp_path / "idx.npz"
    ps.save_index(built, path)
    back = ps.load_index(path)
    np.testing.assert_array_equal(back.vectors, built.vectors)
    assert back.paths == built.paths and back.meta == built.meta
    with pytest.raises(ps.PhotoIndexError, match="index add"):
        ps.save_index(built, path)
    ps.save_index(built, path, overwrite=True)                  # an index may be replaced when asked
    photo = tmp_path / "holiday.jpg"
    photo.write_bytes(b"\xff\xd8\xff precious")
    with pytest.raises(ps.PhotoIndexError, match="not a coursekit photo index"):
        ps.save_index(built, photo, overwrite=True)             # a user's other file: never
    assert photo.read_bytes() == b"\xff\xd8\xff precious"


def test_another_format_version_or_a_stranger_file_is_refused(built, tmp_path):
    path = tmp_path / "idx.npz"
    ps.save_index(built, path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["meta"] = np.array(json.dumps({**built.meta, "version": 99}))
    np.savez(path, **arrays)
    with pytest.raises(ps.PhotoIndexError, match="version 99.*rebuild"):
        ps.load_index(path)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ps.PhotoIndexError, match="not a coursekit photo index"):
        ps.load_index(tmp_path / "other.npz")
    with pytest.raises(ps.PhotoIndexError, match="index build"):
        ps.load_index(tmp_path / "nowhere.npz")


def test_add_embeds_only_new_and_changed_photos_and_reports_the_missing(built, photos, db_images, monkeypatch):
    shutil.copy(db_images[20], photos / "new.jpg")
    shutil.copy(db_images[21], photos / "p0.jpg")              # p0 edited: other content
    os.utime(photos / "p0.jpg", ns=(1, 1))
    (photos / "trip" / "p7.jpg").unlink()
    embedded = []
    real = ps.embed_images
    monkeypatch.setattr(ps, "embed_images", lambda paths, *a, **k: (embedded.extend(paths), real(paths, *a, **k))[1])
    index, report = ps.add_to_index(built, progress=False)
    assert sorted(p.name for p in embedded) == ["new.jpg", "notes.jpg", "p0.jpg"]   # the broken file is retried
    assert [Path(p).name for p in report["new"]] == ["new.jpg"]
    assert [Path(p).name for p in report["changed"]] == ["p0.jpg"]
    assert [Path(p).name for p in report["missing"]] == ["p7.jpg"]
    assert len(index) == 9                                       # 8 - p0 + p0 + new; the missing one kept
    for name in ("p1.jpg", "p2.jpg"):                            # untouched photos keep their vectors
        i, j = built.paths.index(str(photos.resolve() / name)), index.paths.index(str(photos.resolve() / name))
        np.testing.assert_array_equal(index.vectors[j], built.vectors[i])
    p0 = str(photos.resolve() / "p0.jpg")
    assert index.paths.count(p0) == 1
    fresh = ps.build_index(photos, "gem", progress=False)
    np.testing.assert_allclose(index.vectors[index.paths.index(p0)], fresh.vectors[fresh.paths.index(p0)], atol=1e-5)
    pruned, report = ps.add_to_index(index, prune=True, progress=False)
    assert len(pruned) == 8 and not any(p.endswith("p7.jpg") for p in pruned.paths)


def test_vectors_made_another_way_are_never_mixed(built, photos, tmp_path):
    for field, value in (("size", 512), ("weights", ["other.pth", 1, 2]), ("scales", [1.0, 0.5])):
        changed = ps.PhotoIndex(built.vectors, built.paths, built.sizes, built.mtimes, {**built.meta, field: value})
        with pytest.raises(ps.PhotoIndexError, match=f"{field}: index .*index build"):
            ps.add_to_index(changed, progress=False)
        with pytest.raises(ps.PhotoIndexError, match=field):
            ps.search(changed, photos / "p1.jpg")


def test_search_finds_the_photo_itself_and_marks_a_photo_gone_from_disk(built, photos):
    results = ps.search(built, photos / "p3.jpg", k=4)
    assert [r["rank"] for r in results] == [1, 2, 3, 4]
    assert Path(results[0]["path"]).name == "p3.jpg" and results[0]["score"] == pytest.approx(1, abs=1e-4)
    assert all(a["score"] >= b["score"] for a, b in zip(results, results[1:]))
    assert not any(r["missing"] for r in results)
    from coursekit.images import load_image
    as_array = ps.search(built, load_image(photos / "p3.jpg"), k=4)         # a query already loaded (or cropped)
    assert [r["path"] for r in as_array] == [r["path"] for r in results]
    gone = results[1]["path"]
    Path(gone).unlink()
    again = ps.search(built, photos / "p3.jpg", k=4)
    assert [r["missing"] for r in again] == [False, True, False, False]
    with pytest.raises(ValueError, match="not an image"):
        ps.search(built, photos / "notes.jpg")


def test_search_re_ranks_with_the_index_vectors(built, photos):
    plain = ps.search(built, photos / "p3.jpg", k=8)
    expanded = ps.search(built, photos / "p3.jpg", k=8, rerank="aqe", rerank_given={"n": 2})
    assert sorted(r["path"] for r in plain) == sorted(r["path"] for r in expanded)   # all 8, re-scored
    assert [r["score"] for r in plain] != [r["score"] for r in expanded]
    with pytest.raises(ValueError, match="unknown re-ranking"):
        ps.search(built, photos / "p3.jpg", rerank="magic")


def test_search_re_ranking_settings_are_chosen_from_the_index_or_given(built, photos):
    """By default the settings are chosen from the index's vectors (a folder has no labels): here 8 photos of
    8 objects, where k-reciprocal neighbours show no groups of views, so nothing is re-ranked; given
    settings (the papers' with --rerank-paper) are used as they are."""
    from coursekit import rerank_choice as rc

    settings, chosen = ps.rerank_settings(built, "aqe")
    assert (settings, chosen) == rc.choose("aqe", built.vectors) and "chosen from the database" in chosen
    assert settings == {"n": 0}                                    # no groups: the first ranking
    auto = ps.search(built, photos / "p3.jpg", k=8, rerank="aqe")
    assert [r["score"] for r in auto] == [r["score"] for r in ps.search(built, photos / "p3.jpg", k=8)]
    paper = ps.search(built, photos / "p3.jpg", k=8, rerank="aqe", rerank_given=rc.PAPER["aqe"])
    assert [r["score"] for r in paper] != [r["score"] for r in auto]
    assert ps.rerank_settings(built, "aqe", {"n": 2, "qe_alpha": None}) == ({"n": 2}, "given, the papers' values "
                                                                                      "for the rest")
    with pytest.raises(ValueError, match="takes n, not k"):
        ps.search(built, photos / "p3.jpg", rerank="aqe", rerank_given={"k": 3})


def test_whitening_is_stored_and_applied_to_the_queries_too(built, photos, monkeypatch):
    rng = np.random.default_rng(1)
    W = (rng.standard_normal(1280).astype(np.float32) * 0.01,
         np.linalg.qr(rng.standard_normal((1280, 20)))[0].T.astype(np.float32),
         rng.uniform(0.1, 1, 20).astype(np.float32))
    monkeypatch.setattr(ps, "_learn_whitening", lambda method, dataset, progress: W)
    white = ps.build_index(photos, "gem", whiten="embedded", progress=False)
    np.testing.assert_allclose(white.vectors, ShrunkWhitening(*W).apply(built.vectors), atol=1e-5)
    assert white.meta["whiten"] == "embedded"
    top = ps.search(white, photos / "p2.jpg", k=1)[0]
    assert Path(top["path"]).name == "p2.jpg" and top["score"] == pytest.approx(1, abs=1e-4)


def test_the_html_page_embeds_thumbnails_and_replaces_only_its_own_kind(built, photos, tmp_path):
    results = ps.search(built, photos / "p3.jpg", k=3)
    out = ps.write_html(photos / "p3.jpg", results, tmp_path / "r.html")
    page = out.read_text()
    assert page.count("data:image/jpeg;base64,") == 4 and "p3.jpg" in page and "score 1.000" in page
    ps.write_html(photos / "p3.jpg", results[:1], out)           # an earlier page: replaced
    assert out.read_text().count("<figure>") == 2
    mine = tmp_path / "mine.html"
    mine.write_text("<html>my homepage</html>")
    with pytest.raises(FileExistsError, match="not a page written by"):
        ps.write_html(photos / "p3.jpg", results, mine)
    assert mine.read_text() == "<html>my homepage</html>"


def test_the_command_line_builds_adds_and_searches(photos, tmp_path, capsys, db_images):
    idx = tmp_path / "photos.npz"
    assert main(["index", "build", str(photos), "--out", str(idx)]) == 0
    out = capsys.readouterr().out
    assert "indexed 8 photos with gem" in out and "skipped" in out and "notes.jpg" in out
    assert main(["index", "build", str(photos), "--out", str(idx)]) == 2
    assert "exists: use `index add" in capsys.readouterr().err
    shutil.copy(db_images[30], photos / "trip" / "late.jpg")
    assert main(["index", "add", str(idx)]) == 0
    assert "1 new, 0 changed" in capsys.readouterr().out
    html = tmp_path / "r.html"
    assert main(["search", str(idx), str(photos / "trip" / "late.jpg"), "--k", "3", "--html", str(html)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "1" and lines[0].endswith("late.jpg") and html.exists()
    assert main(["search", str(idx), str(photos / "p1.jpg"), "--k", "3", "--rerank", "alpha_qe"]) == 0
    assert capsys.readouterr().out.startswith("re-ranking alpha_qe: n=0 qe_alpha=1 (chosen from the database: 0 other")
    assert main(["search", str(idx), str(photos / "p1.jpg"), "--k", "3", "--rerank", "aqe", "--rerank-paper"]) == 0
    assert capsys.readouterr().out.startswith("re-ranking aqe: n=5 (given, the papers' values for the rest)")
    assert main(["search", str(tmp_path / "none.npz"), str(photos / "p1.jpg")]) == 2
    assert "no such index file" in capsys.readouterr().err
    assert main(["index", "build", str(tmp_path / "empty"), "--out", str(tmp_path / "e.npz")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_a_non_utf8_photo_name_gives_a_whole_page(photos, tmp_path):
    weird = Path(os.fsdecode(os.fsencode(photos) + b"/caf\xe9.jpg"))
    shutil.copy(photos / "p1.jpg", weird)
    results = [{"rank": 1, "path": str(weird), "score": 1.0, "missing": False}]
    out = ps.write_html(weird, results, tmp_path / "r.html", title=f"{weird.name} in x.npz")
    page = out.read_text("utf-8")
    assert page.count("data:image/jpeg;base64,") == 2 and "caf\ufffd.jpg" in page and "caf%E9.jpg" in page
    assert ps.write_html(photos / "p1.jpg", results, out) == out  # and the next run replaces it


def test_a_page_that_fails_to_be_written_leaves_nothing_behind(photos, tmp_path, monkeypatch):
    results = [{"rank": 1, "path": str(photos / "p1.jpg"), "score": 1.0, "missing": False}]

    def full_disk(*a):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)           # the rename into place fails
    with pytest.raises(OSError):
        ps.write_html(photos / "p1.jpg", results, tmp_path / "r.html")
    assert list(tmp_path.iterdir()) == [photos]


def test_searching_an_index_with_no_photos_says_to_add_some(built, photos, tmp_path, capsys):
    empty = ps.PhotoIndex(built.vectors[:0], [], built.sizes[:0], built.mtimes[:0], built.meta)
    idx = tmp_path / "empty.npz"
    ps.save_index(empty, idx)
    assert main(["search", str(idx), str(photos / "p1.jpg")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(idx) in err and "holds no photos" in err and "index add" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("edit, needle", [
    (lambda a: a.pop("vectors"), "vectors missing"),
    (lambda a: a.update(paths=a["paths"][:-1]), "do not fit together"),
    (lambda a: a.update(vectors=a["vectors"][:, 0]), "do not fit together"),
    (lambda a: a["vectors"].__setitem__((2, 0), np.nan), "not finite numbers"),
])
def test_a_hand_edited_or_nan_index_is_refused_with_the_file_and_the_fix(built, photos, tmp_path, capsys, edit,
                                                                         needle):
    idx = tmp_path / "i.npz"
    ps.save_index(built, idx)
    with np.load(idx) as z:
        arrays = {k: z[k].copy() for k in z.files}
    edit(arrays)
    np.savez(idx, **arrays)
    assert main(["search", str(idx), str(photos / "p1.jpg")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(idx) in err and needle in err and "index build" in err and len(err.splitlines()) == 1
