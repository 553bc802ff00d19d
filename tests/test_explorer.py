"""The query explorer, driven headless: set widget values, read ``explorer.result``.

On the embedded dataset with cheap methods (colour histograms; GeM, whose
features the first run extracts once into the disk cache).
"""

import numpy as np
import pytest

from coursekit import explorer as explorer_module
from coursekit.datasets import load_dataset
from coursekit.evaluation import average_precisions, evaluate, ranks_from_similarities
from coursekit.explorer import Explorer, usable_methods
from coursekit.methods import rerank_settings, reranked, run_method


@pytest.fixture(scope="module")
def ds():
    return load_dataset("embedded")


@pytest.fixture(scope="module")
def colour_sims(ds):
    return run_method("color_hist", ds, progress=False).sims


@pytest.fixture(scope="module")
def gem(ds):
    return run_method("gem", ds, progress=False)


def make(**kwargs) -> Explorer:
    kwargs = {"datasets": ["embedded"], "method": "color_hist", "draw": False, **kwargs}
    return Explorer(**kwargs)


def test_default_state_and_figure(ds):
    ex = Explorer(datasets=["embedded"])               # the defaults, drawn
    assert ex.state == {"dataset": "embedded", "method": "gem", "rerank": None, "k": 8, "query": 0}
    r = ex.result
    assert r.error is None
    assert r.ranking.shape == (8,) and r.ranking.dtype == np.int64
    assert len(r.kinds) == 8 and 0 <= r.ap <= 1 and 0 < r.map <= 1
    assert r.computed["methods"] == 1
    assert "gem_finetuned" in ex.method.options        # the embedded set has a labelled training split
    assert not ex.rerank.disabled
    (shown,) = ex.output.outputs
    assert shown["output_type"] == "display_data" and shown["data"]["image/png"]
    assert "mAP" in ex.message.value
    assert len(ex._thumbs.children) == explorer_module.PAGE


def test_k_changes_the_ranking_without_recomputing():
    ex = make(k=8)
    before = ex.result
    ex.k.value = 5
    after = ex.result
    assert len(after.ranking) == 5 and len(after.kinds) == 5
    np.testing.assert_array_equal(after.ranking, before.ranking[:5])
    assert after.computed["methods"] == before.computed["methods"] == 1
    assert after.computed["from_memory"] == before.computed["from_memory"] + 1
    ex.k.value = 12
    assert len(ex.result.ranking) == 12 and ex.result.computed["methods"] == 1


def test_query_ap_is_the_evaluation_s(ds, colour_sims):
    aps = average_precisions(ranks_from_similarities(colour_sims), ds.gnd, kind="trapezoid")
    q = int(np.flatnonzero(np.abs(aps - aps[0]) > 0.05)[0])      # a query whose AP differs from query 0's
    ex = make()
    assert ex.result.ap == aps[0]
    ex.query.value = q
    assert ex.state["query"] == q
    assert ex.result.ap == aps[q] and ex.result.ap != pytest.approx(aps[0])
    assert ex.result.map == evaluate(ranks_from_similarities(colour_sims), ds)["map"]
    assert ex.result.computed["methods"] == 1
    np.testing.assert_array_equal(ex.result.ranking, ranks_from_similarities(colour_sims)[q, :8])


def test_kinds_and_curve_agree_with_the_ground_truth(ds, gem):
    from coursekit.explorer import MAX_K

    ranks = ranks_from_similarities(gem.sims)
    # a query whose top k holds a positive, a junk and a wrong image, so that every mark is checked (the
    # embedded set has few junk images: the smallest k that shows one)
    q, k = next((q, k) for k in range(8, MAX_K + 1) for q in range(ds.n_queries)
                if np.isin(ranks[q, :k], ds.gnd[q].positives).any() and np.isin(ranks[q, :k], ds.gnd[q].junk).any())
    ex = make(method="gem", k=k, query=q)
    g = ds.gnd[q]
    expected = ["positive" if i in g.positives else "junk" if i in g.junk else "wrong" for i in ranks[q, :k]]
    assert ex.result.kinds == expected
    assert set(ex.result.kinds) == {"positive", "junk", "wrong"}
    # the PR curve runs over the whole ranking, junk removed, to recall 1
    n_pos, n_junk = len(np.unique(g.positives)), len(np.setdiff1d(g.junk, g.positives))
    assert ex.result.recall.shape == (ds.n_db - n_junk,) == ex.result.precision.shape
    assert ex.result.recall[-1] == 1.0
    assert ex.result.precision[-1] == pytest.approx(n_pos / (ds.n_db - n_junk))
    first = expected.index("positive")                # on the curve, junk removed: recall 1 / n_pos there
    assert ex.result.recall[first - expected[:first].count("junk")] == pytest.approx(1 / n_pos)

def test_rerank_gives_the_map_of_reranked_with_the_settings_evaluate_chooses(ds, gem):
    ex = make(method="gem")
    plain = ex.result.map
    ex.rerank.value = "aqe"
    trained = run_method("gem", ds, progress=False, with_train=True)
    settings, chosen = rerank_settings("aqe", trained, ds)          # on the training split, as evaluate does
    assert "chosen on the training split" in chosen
    again = reranked(trained, "aqe", **settings).sims
    expected = evaluate(ranks_from_similarities(again), ds)["map"]
    assert ex.state["rerank"] == "aqe"
    assert ex.result.map == expected and ex.result.map != plain
    assert ex.settings["embedded", "gem", "aqe"].endswith(f"({chosen})") and chosen in ex.message.value
    assert ex.result.computed["methods"] == 1 and ex.result.computed["reranks"] == 1
    ex.rerank.value = "none"                           # both kept in memory: nothing recomputed
    assert ex.result.map == plain
    ex.rerank.value = "aqe"
    ex.query.value = 3
    assert ex.result.computed["reranks"] == 1 and ex.result.computed["methods"] == 1
    aps = average_precisions(ranks_from_similarities(again), ds.gnd, kind="trapezoid")
    assert ex.result.ap == aps[3]


def test_non_global_method_disables_reranking():
    ex = make(method="color_hist", rerank="alpha_qe")
    assert ex.state["rerank"] == "alpha_qe" and not ex.rerank.disabled
    ex.method.value = "color_inter"                    # a histogram intersection: no global vectors
    assert ex.rerank.disabled and ex.state["rerank"] is None
    assert ex.result.error is None and ex.result.method == "color_inter" and ex.result.rerank is None
    ex.method.value = "color_hist"
    assert not ex.rerank.disabled
    assert ex.result.computed["methods"] == 2         # color_hist's retrieval was kept


def test_failing_method_shows_its_message(monkeypatch):
    ex = make()

    def broken(name, ds, **kwargs):
        raise RuntimeError(f"boom: {name} has no weights")

    monkeypatch.setattr(explorer_module, "run_method", broken)
    ex.method.value = "gist"                           # not in memory: run_method is called, and fails
    assert ex.result.error is not None and "boom: gist has no weights" in ex.result.error
    assert ex.result.ranking.size == 0
    (shown,) = ex.output.outputs
    assert shown["output_type"] == "stream" and "boom: gist has no weights" in shown["text"]
    assert "boom" in ex.message.value
    ex.method.value = "color_hist"                     # the widget still works, from memory
    assert ex.result.error is None and len(ex.result.ranking) == 8


def test_absent_dataset_names_the_fetch_command(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    ex = make(datasets=["embedded", "oxford5k"])
    ex.dataset.value = "oxford5k"
    assert "python data_scripts/get.py oxford5k" in ex.result.error
    assert "get.py oxford5k" in ex.output.outputs[0]["text"]
    ex.dataset.value = "embedded"
    assert ex.result.error is None and ex.result.computed["methods"] == 1


def test_thumbnails_pick_the_query(ds):
    ex = make()
    buttons = [cell.children[1] for cell in ex._thumbs.children]
    assert [b.description for b in buttons] == [str(q) for q in range(explorer_module.PAGE)]
    assert buttons[0].button_style == "info"
    buttons[3].click()
    assert ex.state["query"] == 3 and ex.result.query == 3
    assert buttons[3].button_style == "info" and buttons[0].button_style == ""
    ex._next.click()                                   # the next page of thumbnails
    assert ex._thumbs.children[0].children[1].description == str(explorer_module.PAGE)
    ex.query.value = ds.n_queries - 1                  # the last page follows the query
    assert ex._thumbs.children[-1].children[1].description == str(ds.n_queries - 1)


def test_usable_methods(ds, monkeypatch, tmp_path):
    assert "gem_finetuned" in usable_methods(ds)
    no_train = load_dataset("embedded")
    no_train.train, no_train.train_labels = [], None
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path))
    assert "gem_finetuned" not in usable_methods(no_train)      # no checkpoint: not offered
    (tmp_path / "finetune").mkdir()
    (tmp_path / "finetune" / "embedded-0123.pt").write_bytes(b"")
    assert usable_methods(no_train)["gem_finetuned"] == {"train_on": "embedded"}
