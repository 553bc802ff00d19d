"""The command line, end to end, on tiny datasets made in temporary folders."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from coursekit.cli import main
from coursekit.methods import GLOBAL_METHODS, METHODS, RERANKINGS
from coursekit.rerank_choice import PAPER

# Colours in the middle of HSV bins (8 x 8 x 8), so JPEG noise keeps them in place.
RED, GREEN, BLUE = (200, 30, 30), (30, 200, 30), (30, 30, 200)


def _image(colours_and_fractions, size=64):
    """A (size, size) image made of vertical bands of the given colours."""
    a = np.zeros((size, size, 3), np.uint8)
    start = 0
    for colour, fraction in colours_and_fractions:
        stop = start + int(round(fraction * size))
        a[:, start:stop] = colour
        start = stop
    return Image.fromarray(a)


@pytest.fixture()
def ukbench(tmp_path, monkeypatch):
    """12 images in 3 groups; image 4 (group 1, green) is 60% red and 40% green.

    With the Hellinger kernel, image 4 is nearer the red group (sqrt .6) than
    its own (sqrt .4): its top 4 is itself and three reds (N-S 1); every other
    query finds its whole group (N-S 4). Expected N-S = (11 * 4 + 1) / 12.
    """
    root = tmp_path / "ukbench" / "full"
    root.mkdir(parents=True)
    colours = [RED] * 4 + [GREEN] * 4 + [BLUE] * 4
    for i, colour in enumerate(colours):
        img = _image([(RED, 0.6), (GREEN, 0.4)]) if i == 4 else _image([(colour, 1.0)])
        img.save(root / f"ukbench{i:05d}.jpg", quality=95)
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))
    return root.parent


def test_evaluate_ukbench_ns_score(ukbench, capsys):
    assert main(["evaluate", "--dataset", "ukbench", "--root", str(ukbench), "--method", "color_hist", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"] == "ukbench" and out["method"] == "color_hist"
    assert out["n_db"] == 12 and out["n_queries"] == 12
    assert out["ns_score"] == pytest.approx((11 * 4 + 1) / 12, abs=1e-4)
    for key in ("map", "mp@10", "seconds"):
        assert key in out
    # image 4's own group (3 other greens) comes after itself and 4 reds: ranks 5, 6, 7 (junk: itself)
    assert out["map"] < 1.0


def test_evaluate_uses_the_cache(ukbench, capsys, tmp_path):
    args = ["evaluate", "--dataset", "ukbench", "--root", str(ukbench), "--method", "color_hist", "--json"]
    main(args)
    first = json.loads(capsys.readouterr().out)
    entries = list((tmp_path / "cache" / "features").glob("*.npz"))
    assert len(entries) == 1
    mtime = entries[0].stat().st_mtime_ns
    main(args)
    second = json.loads(capsys.readouterr().out)
    assert entries[0].stat().st_mtime_ns == mtime  # reused, not rewritten
    assert second["ns_score"] == first["ns_score"]


def test_evaluate_through_an_index_reports_recall_against_exact_search(ukbench, capsys):
    args = ["evaluate", "--dataset", "ukbench", "--root", str(ukbench), "--method", "color_hist", "--json"]
    assert main(args + ["--index", "exact"]) == 0
    exact = json.loads(capsys.readouterr().out)
    assert exact["ns_score"] == exact["exact_ns_score"] and exact["recall@1"] == 1.0
    assert exact["index_trained_on"] == "database"  # ukbench has no training split
    assert main(args + ["--index", "ivfpq", "--pq-m", "8", "--pq-nbits", "2", "--nlist", "3", "--nprobe", "1"]) == 0
    ivf = json.loads(capsys.readouterr().out)
    assert ivf["index"].startswith("IVFPQIndex(nlist=3, M=8, nbits=2, nprobe=1")
    assert ivf["bytes_per_vector"] == 8 * 2 / 8 + 8 and "recall@10" in ivf and 0 <= ivf["recall@10"] <= 1


def test_evaluate_with_re_ranking_reports_both_rankings(ukbench, capsys):
    args = ["evaluate", "--dataset", "ukbench", "--root", str(ukbench), "--method", "color_hist", "--json"]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    for how in ("aqe", "alpha_qe", "aqe_dba", "alpha_qe_dba", "diffusion"):
        assert main(args + ["--rerank", how]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["method"] == f"color_hist+{how}"
        assert out["first_ns_score"] == plain["ns_score"]          # the first ranking, measured alongside
        assert 1 <= out["ns_score"] <= 4


def test_re_ranking_settings_are_chosen_given_or_the_papers(ukbench, capsys):
    """No flag: chosen from the database (ukbench has no training split); a flag: it, and the papers' for the
    rest; --rerank-paper: the papers' settings. Each run says which settings ran."""
    args = ["evaluate", "--dataset", "ukbench", "--root", str(ukbench), "--method", "color_hist", "--json",
            "--rerank", "diffusion"]
    runs = {}
    for name, extra in (("auto", []), ("given", ["--rerank-k", "3", "--rerank-kq", "2"]), ("paper", ["--rerank-paper"]),
                        ("paper_k", ["--rerank-paper", "--rerank-k", "7"])):
        assert main(args + extra) == 0
        runs[name] = json.loads(capsys.readouterr().out)["rerank_settings"]
    assert "chosen from the database" in runs["auto"]
    assert runs["given"].startswith("k=3 k_q=2 alpha=0.99 (given")
    assert runs["paper"].startswith("k=50 k_q=10 alpha=0.99 (given")
    assert runs["paper_k"].startswith("k=7 k_q=10 alpha=0.99 (given")


@pytest.mark.parametrize("extra, needle", [
    (["--rerank", "aqe", "--index", "exact"], "either rerank or index"),
    (["--rerank", "aqe", "--rerank-k", "3"], "--rerank aqe takes no --rerank-k"),
    (["--qe-n", "3"], "need --rerank"),
])
def test_re_ranking_errors_exit_2_with_one_line(ukbench, capsys, extra, needle):
    args = ["evaluate", "--dataset", "ukbench", "--root", str(ukbench), "--method", "color_hist"]
    assert main(args + extra) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_a_method_without_global_vectors_cannot_be_re_ranked_by_them(ukbench):
    from coursekit.datasets import load_dataset
    from coursekit.methods import evaluate_method

    with pytest.raises(ValueError, match="no global vectors"):
        evaluate_method("color_inter", load_dataset("ukbench", ukbench), progress=False, rerank="aqe")


@pytest.mark.parametrize("extra, needle", [
    (["--whiten"], "'ukbench' has none"),
    (["--index", "pq"], "nbits=8 learns 256 centroids per block from 12 training vectors: pass nbits <= 3"),
    (["--index", "pq", "--pq-m", "7", "--pq-nbits", "2"], "M must divide 4096"),
    (["--backbone", "vgg16"], "method 'color_hist' takes no backbone"),
])
def test_whitening_and_index_errors_exit_2_with_one_line(ukbench, capsys, extra, needle):
    args = ["evaluate", "--dataset", "ukbench", "--root", str(ukbench), "--method", "color_hist"]
    assert main(args + extra) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_a_papers_backbone_without_weights_says_how_to_get_them(ukbench, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    args = ["evaluate", "--dataset", "ukbench", "--root", str(ukbench), "--method", "gem", "--backbone", "resnet50"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "resnet50-0676ba61.pth" in err and "--weights PATH" in err and len(err.splitlines()) == 1


def test_table_output(ukbench, capsys):
    assert main(["evaluate", "--dataset", "ukbench", "--root", str(ukbench), "--method", "color_hist"]) == 0
    out = capsys.readouterr().out
    assert "ns_score" in out and "color_hist" in out


@pytest.mark.parametrize("args, needle", [
    (["evaluate", "--dataset", "nope", "--method", "color_hist"], "invalid choice: 'nope'"),
    (["evaluate", "--dataset", "ukbench", "--method", "nope"], "invalid choice: 'nope'"),
    (["evaluate", "--dataset", "ukbench"], "--method"),
    (["evaluate", "--dataset", "ukbench", "--method", "gem", "--rerank", "magic"], "invalid choice: 'magic'"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_one_line(args, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_missing_dataset_exit_2_names_the_fix(tmp_path, capsys):
    code = main(["evaluate", "--dataset", "ukbench", "--root", str(tmp_path / "nowhere"), "--method", "color_hist"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "nowhere" in err and "data_scripts/get.py ukbench" in err and len(err.splitlines()) == 1


def test_methods_lists_color_hist(capsys):
    assert main(["methods"]) == 0
    assert "color_hist" in capsys.readouterr().out


def test_course_report(ukbench, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_DATA", str(ukbench.parent))
    out = tmp_path / "course"
    # ukbench has no training split: the report asks for gem_finetuned trained on the embedded set's, which takes
    # minutes; a stand-in that records what it was asked answers instead (the method has tests of its own)
    import coursekit.methods

    asked = []

    def gem_finetuned(ds, progress=True, with_train=False, train_on=None):
        asked.append(train_on)
        return coursekit.methods.color_hist(ds, progress=progress)

    monkeypatch.setitem(coursekit.methods.METHODS, "gem_finetuned", (gem_finetuned, "stand-in"))
    # flat colour images have no SIFT keypoints: the methods that learn a vocabulary or a GMM fail,
    # say why in the report, and make the exit code 1; the others are measured
    assert main(["course", "--no-notebooks", "--dataset", "ukbench", "--out", str(out)]) == 1
    report = json.loads((out / "report.json").read_text())
    label = {m: m + "(trained on embedded)" * (m == "gem_finetuned") for m in METHODS}
    reranked = [f"{label[m]}+{how}{paper}" for m in METHODS if m in GLOBAL_METHODS for how in RERANKINGS
                for paper in ("", "(paper)")]
    assert [r["method"] for r in report["results"]] == [label[m] for m in METHODS] + reranked  # in order
    assert asked == ["embedded"] * (1 + 2 * len(RERANKINGS))
    errors = {r["method"]: r["error"] for r in report["results"] if "error" in r}
    assert set(errors) == {"bow", "bow_sv", "vlad", "fisher"} | {f"{m}+{how}{paper}" for m in ("vlad", "fisher")
                                                                 for how in RERANKINGS for paper in ("", "(paper)")}
    assert all("have no SIFT keypoints" in e for e in errors.values())
    diffused = next(r for r in report["results"] if r["method"] == "color_hist+diffusion")
    assert diffused["rerank"] == "diffusion" and diffused["first_ns_score"] == pytest.approx(45 / 12, abs=1e-4)
    row = report["results"][0]
    assert row["method"] == "color_hist" and row["ns_score"] == pytest.approx(45 / 12, abs=1e-4)
    md = (out / "REPORT.md").read_text()
    assert "## ukbench" in md and "| color_hist |" in md and "N-S" in md and "| bow | failed: ValueError" in md
    assert "| all | failed: ValueError: the 12 database images of 'ukbench' have no SIFT keypoints" in md
    assert "### ukbench: re-ranking" in md and "| method | as is | aqe paper | aqe auto | alpha_qe paper |" in md
    table = md.split("### ukbench: re-ranking")[1].split("CNN extraction")[0]
    assert re.search(r"\| color_hist \| 0\.\d{3} \| (0\.\d{3} \| ){10}0\.\d\d \|", table)
    assert table.count("have no SIFT keypoints") == 1           # one error, once, with the runs it stopped
    assert "| vlad | – | failed | failed |" in table
    paper = next(r for r in report["results"] if r["method"] == "color_hist+diffusion(paper)")
    assert paper["rerank_settings"].startswith("k=50 k_q=10 alpha=0.99 (given")
    assert "- color_hist: aqe: n=" in table and "chosen from the database" in table   # what auto chose


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "coursekit", "methods"], capture_output=True, text=True)
    assert result.returncode == 0 and "color_hist" in result.stdout


def test_course_executes_only_changed_notebooks(tmp_path, monkeypatch):
    import nbformat

    import coursekit.course.grading
    from coursekit.course.notebooks import REPO, execute_notebooks

    calls = []

    def fake_execute(src, dest, timeout):
        calls.append(src.name)
        nbformat.write(nbformat.v4.new_notebook(), dest)
        return None

    monkeypatch.setattr(coursekit.course.grading, "execute_notebook", fake_execute)
    n = len(list((REPO / "solutions").glob("[0-9][0-9]*.ipynb")))
    first = execute_notebooks(tmp_path, 60)
    assert len(calls) == n and all(r["status"] == "ok" and r["unprinted"] == [] for r in first)
    second = execute_notebooks(tmp_path, 60)
    assert len(calls) == n and all(r["status"] == "unchanged" for r in second)
    monkeypatch.setenv("COURSEKIT_DATASET", "coil100")  # another dataset: run again
    execute_notebooks(tmp_path, 60)
    assert len(calls) == 2 * n


def test_course_records_a_failing_notebook(tmp_path, monkeypatch):
    import coursekit.course.grading
    from coursekit.course.notebooks import execute_notebooks

    monkeypatch.setattr(coursekit.course.grading, "execute_notebook", lambda src, dest, timeout: "cell 3: ValueError: boom")
    records = execute_notebooks(tmp_path, 60)
    assert records and all(r["status"] == "failed" and "boom" in r["error"] for r in records)
    assert not list(tmp_path.glob(".*.stamp"))  # a failed run is never taken as done


def test_report_adds_whitened_global_methods_where_a_training_split_exists(tmp_path):
    from coursekit.course.report import WHITENED, report_runs
    from coursekit.datasets import Dataset, GroundTruth

    images = [tmp_path / f"{i}.png" for i in range(3)]
    plain = Dataset("plain", tmp_path, images, images[:1], [GroundTruth(np.array([0]))])
    trained = Dataset("trained", tmp_path, images, images[:1], [GroundTruth(np.array([0]))], train=images)
    kwargs = {m: {"train_on": "embedded"} if m == "gem_finetuned" else {} for m in METHODS}
    assert report_runs(plain) == [(m, kwargs[m]) for m in METHODS] + [
        (m, {**kwargs[m], "rerank": how, **given}) for m in METHODS if m in GLOBAL_METHODS for how in RERANKINGS
        for given in ({}, {"rerank_given": PAPER[how]})]
    assert report_runs(trained)[:len(METHODS)] == [(m, {}) for m in METHODS]
    assert report_runs(trained)[len(METHODS):len(METHODS) + len(WHITENED)] == [(m, {"whiten": True}) for m in WHITENED]
    assert report_runs(trained)[len(METHODS) + len(WHITENED):] == [
        (m, {"rerank": how, **given}) for m in METHODS if m in GLOBAL_METHODS for how in RERANKINGS
        for given in ({}, {"rerank_given": PAPER[how]})]
    assert set(WHITENED) <= set(GLOBAL_METHODS)


def test_unprinted_numbers_lists_the_prose_numbers_no_output_prints(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    from coursekit.course.notebooks import unprinted_numbers

    nb = new_notebook(cells=[
        new_markdown_cell("GeM reaches 0.483, whitened 0.551; on COIL-100 0.832, and again 0.832. "
                          "alpha = 0.99, $x = 0.125$ and v1.0.123 are not mAPs."),
        new_code_cell("print(m)", outputs=[new_output("stream", name="stdout", text="mAP 0.4831\n")]),
        new_code_cell("m", outputs=[new_output("execute_result", data={"text/plain": "0.55099"},
                                               execution_count=2)]),
        new_markdown_cell("Later prose: 0.484 is stale."),
    ])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert unprinted_numbers(path) == ["0.832", "0.484"]


def test_a_pq_nbits_out_of_reach_of_memory_is_a_usage_error_not_a_memory_error(ukbench, capsys):
    args = ["evaluate", "--dataset", "ukbench", "--root", str(ukbench), "--method", "color_hist", "--index", "pq"]
    with pytest.raises(SystemExit) as e:
        main(args + ["--pq-nbits", "40"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "--pq-nbits: must be between 1 and 16" in err and len(err.splitlines()) == 1


def test_running_out_of_memory_is_one_line_that_says_what_to_lower(ukbench, capsys, monkeypatch):
    import coursekit.methods

    def boom(*a, **k):
        raise MemoryError

    monkeypatch.setattr(coursekit.methods, "evaluate_method", boom)
    assert main(["evaluate", "--dataset", "ukbench", "--root", str(ukbench), "--method", "color_hist"]) == 2
    err = capsys.readouterr().err.strip()
    assert "ran out of memory" in err and "--pq-nbits" in err and len(err.splitlines()) == 1


def test_evaluate_reads_a_folder_with_a_non_utf8_file_name(tmp_path, capsys, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))
    for i, (cls, name) in enumerate([(b"a", b"1.jpg"), (b"a", b"caf\xe9.jpg"), (b"b", b"3.jpg"), (b"b", b"4.jpg")]):
        folder = os.fsencode(tmp_path / "photos") + b"/" + cls
        os.makedirs(folder, exist_ok=True)
        Image.new("RGB", (16, 16), (60 * i, 90, 30)).save(folder + b"/" + name, format="JPEG")
    assert main(["evaluate", "--dataset", "folder", "--root", str(tmp_path / "photos"), "--method", "color_hist",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_db"] == 4


def test_report_says_why_auto_loses():
    """A re-ranking chosen by auto that ends below the first ranking is listed, with the dataset's numbers
    that explain it (its views per object, read from its labels) and the training task's own mAPs."""
    from coursekit.course.report import _rerank_lines, views_shape
    from coursekit.datasets import Dataset, GroundTruth

    ds = Dataset(name="toy", root=".", db=[f"{i}.jpg" for i in range(10)], queries=["a.jpg", "b.jpg"],
                 gnd=[GroundTruth(np.array([0, 1, 2])), GroundTruth(np.array([3]))],
                 train=[f"t{i}.jpg" for i in range(6)], train_labels=np.array([0, 0, 0, 1, 1, 2]))
    shape = views_shape(ds)
    assert shape == {"positives_per_query": 2.0, "distractors": pytest.approx(0.6), "train_views": 2.0}
    chosen = "n=3 (chosen on the training split: 8 settings tried, best mAP 0.338, 0.288 not re-ranked)"
    rows = [{"method": "gem+aqe", "rerank": "aqe", "rerank_paper": False, "map": 0.55, "first_map": 0.59,
             "rerank_settings": chosen, "rerank_seconds": 0.01},
            {"method": "gem+aqe(paper)", "rerank": "aqe", "rerank_paper": True, "map": 0.52, "first_map": 0.59,
             "rerank_seconds": 0.01}]
    text = "\n".join(_rerank_lines("toy", rows, shape))
    assert "Auto below the first ranking: gem aqe (0.590 -> 0.550)." in text
    assert "each training object has 2.0 images" in text and "2.0 positives on average and 60%" in text
    rows[0]["map"] = 0.60                                         # no loss: no explanation
    assert "Why:" not in "\n".join(_rerank_lines("toy", rows, shape))


def test_whitening_learned_on_another_dataset(ukbench, tmp_path, monkeypatch, capsys):
    """--whiten-on: a dataset without a training split whitened as learned on another dataset (here a second
    UKBench folder of mirrored images, which has no training split either: its database then): the same
    vectors as whitened() with those; a dataset never whitens itself."""
    import shutil

    from PIL import Image

    from coursekit.datasets import load_dataset
    from coursekit.methods import run_method, whitened

    other = tmp_path / "data" / "ukbench"
    shutil.copytree(ukbench / "full", other / "full")
    for p in (other / "full").glob("*.jpg"):
        Image.open(p).transpose(Image.FLIP_LEFT_RIGHT).rotate(30).save(p, quality=95)
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "data"))             # where --whiten-on finds it
    ds = load_dataset("ukbench", ukbench)
    got = run_method("gem", ds, progress=False, whiten_on="ukbench")
    learn = run_method("gem", load_dataset("ukbench"), progress=False).X_db  # no training split: its database
    expected = whitened(run_method("gem", ds, progress=False), X_learn=learn)
    np.testing.assert_allclose(got.X_db, expected.X_db, atol=1e-6)
    assert not np.allclose(got.X_db, run_method("gem", ds, progress=False).X_db, atol=1e-3)
    with pytest.raises(ValueError, match="cannot whiten itself"):
        run_method("gem", load_dataset("ukbench"), progress=False, whiten_on="ukbench")
    with pytest.raises(ValueError, match="not both"):
        run_method("gem", ds, progress=False, whiten=True, whiten_on="ukbench")
    with pytest.raises(ValueError, match="makes no global vectors"):
        run_method("sift_match", ds, progress=False, whiten_on="ukbench")
    args = ["evaluate", "--dataset", "ukbench", "--root", str(ukbench), "--method", "gem", "--whiten-on", "ukbench",
            "--json"]
    assert main(args) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert row["method"] == "gem+whiten[on ukbench]" and row["dim"] == 1280 and 0 <= row["ns_score"] <= 4
    assert main(["evaluate", "--dataset", "ukbench", "--method", "gem", "--whiten-on", "ukbench"]) == 2
    assert "cannot whiten itself" in capsys.readouterr().err
