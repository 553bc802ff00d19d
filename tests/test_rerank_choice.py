"""Re-ranking settings chosen from the data (coursekit.rerank_choice), never from the test queries' labels."""

import numpy as np
import pytest

from coursekit import rerank
from coursekit import rerank_choice as rc
from coursekit.datasets import Dataset, GroundTruth
from coursekit.methods import Retrieval, evaluate_method, reranked, rerank_settings
from coursekit.methods import running


def _views(n_objects, per_object, rng, categories, noise=0.3, spread=0.4):
    """``n_objects`` clusters of ``per_object`` L2-normalised views; each object's centre near one of
    ``categories`` (so that other objects of its kind come next, as on real photos): ``(X, labels)``."""
    centres = categories[rng.integers(len(categories), size=n_objects)]
    centres = centres + spread * rng.standard_normal(centres.shape)
    labels = np.repeat(np.arange(n_objects), per_object)
    X = centres[labels] + noise * rng.standard_normal((len(labels), centres.shape[1]))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), labels


@pytest.fixture(scope="module")
def synthetic():
    """A database of 40 objects x 5 views of 6 kinds, one new view of each object as a query, and a training
    split of 30 other objects x 6 views: a handful of views of each object, as in a UKBench-like folder."""
    rng = np.random.default_rng(0)
    categories = rng.standard_normal((6, 32))
    X_db, db_labels = _views(40, 5, rng, categories)
    X_train, train_labels = _views(30, 6, rng, categories)
    X_q = X_db[::5] + 0.3 * rng.standard_normal(X_db[::5].shape).astype(np.float32)
    X_q /= np.linalg.norm(X_q, axis=1, keepdims=True)
    gnd = [GroundTruth(np.flatnonzero(db_labels == q)) for q in range(40)]
    ds = Dataset(name="synthetic", root=".", db=[f"db{i}.jpg" for i in range(len(X_db))],
                 queries=[f"q{i}.jpg" for i in range(40)], gnd=gnd, db_labels=db_labels,
                 query_labels=np.arange(40), train=[f"t{i}.jpg" for i in range(len(X_train))],
                 train_labels=train_labels)
    return ds, Retrieval(X_q @ X_db.T, X_db, X_q, X_train=X_train)


def test_training_task_holds_out_one_image_per_object():
    labels = np.array([0, 0, 0, 1, 1, 2])                     # object 2 has one image: no query
    X = np.eye(6, dtype=np.float32)
    X_q, X_db, gnd = rc.training_task(X, labels)
    assert X_q.tolist() == X[[0, 3]].tolist() and X_db.tolist() == X[[1, 2, 4, 5]].tolist()
    assert [g.positives.tolist() for g in gnd] == [[0, 1], [2]]
    with pytest.raises(ValueError, match="no object with two images"):
        rc.training_task(X[:3], np.array([0, 1, 2]))


def test_reciprocity_is_its_definition(synthetic):
    """rho[k - 1] = mean over images of |{j in N_k(i) : i in N_k(j)}| / k, written as loops."""
    X = synthetic[1].X_db[:60]
    K = 8
    order = np.argsort(-(X @ X.T), axis=1, kind="stable")
    lists = [[j for j in order[i] if j != i][:K] for i in range(len(X))]
    expected = [np.mean([sum(i in lists[j][:k] for j in lists[i][:k]) / k for i in range(len(X))])
                for k in range(1, K + 1)]
    np.testing.assert_allclose(rc.reciprocity(X, K), expected)


@pytest.mark.parametrize("per_object", [2, 4, 5, 9])
def test_views_per_image_finds_the_group_size(per_object):
    """Reciprocity peaks at the number of other views, where the largest drop in similarity would find the
    objects' kinds instead."""
    rng = np.random.default_rng(per_object)
    X, _ = _views(40, per_object, rng, rng.standard_normal((6, 32)))
    assert rc.views_per_image(X) == per_object - 1
    with pytest.raises(ValueError, match="too few"):
        rc.views_per_image(X[:2])


def test_one_view_per_object_has_no_peak_and_re_ranks_nothing():
    """A database of distinct objects (SMVS: one scan per cover): reciprocity keeps rising, no views are
    found, and the settings leave the first ranking as it is."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 32)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    rho = rc.reciprocity(X)
    assert np.argmax(rho) == len(rho) - 1 and rc.views_per_image(X) == 0
    for how in rc.PAPER:
        settings = rc.from_views(how, 0)
        sims, X_q, X_db = rerank.apply(X[:5], X, how, **settings)
        np.testing.assert_allclose(sims, X[:5] @ X.T, atol=1e-6)


def test_from_views_sets_the_sizes_and_the_training_splits_exponents():
    assert rc.from_views("diffusion", 4) == {"k": 5, "k_q": 4, "alpha": 0.9}   # itself and 4 others
    assert rc.from_views("diffusion", 1) == {"k": 2, "k_q": 1, "alpha": 0.9}
    assert rc.from_views("diffusion", 0) == {"k": 1, "k_q": 0, "alpha": 0.9}
    assert rc.from_views("alpha_qe", 3) == {"n": 3, "qe_alpha": 1.0}
    assert rc.from_views("aqe_dba", 3) == {"n": 3}


def test_settings_of_fills_in_the_papers_and_refuses_what_a_method_does_not_take():
    assert rc.settings_of("diffusion", k=4) == {"k": 4, "k_q": rerank.QUERY_K, "alpha": rerank.ALPHA}
    assert rc.settings_of("aqe") == {"n": rerank.QE_K}
    with pytest.raises(ValueError, match="takes n, not k"):
        rc.settings_of("aqe", k=4)
    with pytest.raises(ValueError, match="unknown re-ranking"):
        rc.settings_of("dqe")


def test_choose_on_training_returns_the_grid_best(synthetic):
    ds, result = synthetic
    settings, tried = rc.choose_on_training(result.X_train, ds.train_labels, "aqe")
    assert [s for s, _ in tried] == [{"n": n} for n in rc.GRID["n"]]
    assert tried[0] == ({"n": 0}, rc.task_map(*rc.training_task(result.X_train, ds.train_labels), None))  # as is
    best = max(score for _, score in tried)
    assert [score for s, score in tried if s == settings] == [best]
    # the task's own mAP, recomputed by hand for the chosen n
    X_q, X_db, gnd = rc.training_task(result.X_train, ds.train_labels)
    assert rc.task_map(X_q, X_db, gnd, "aqe", **settings) == pytest.approx(best)
    _, tried = rc.choose_on_training(result.X_train, ds.train_labels, "diffusion")
    assert sum(s["k_q"] == 0 for s, _ in tried) == 1            # the first ranking, tried once


@pytest.mark.parametrize("how", list(rc.PAPER))
def test_the_shared_grid_equals_each_setting_run_alone(synthetic, how):
    """choose_on_training shares its searches and solves across the grid; every mAP it reports equals the
    re-ranking run on its own with those settings (rerank.apply through task_map)."""
    ds, result = synthetic
    X_q, X_db, gnd = rc.training_task(result.X_train, ds.train_labels)
    _, tried = rc.choose_on_training(result.X_train, ds.train_labels, how)
    assert [s for s, _ in tried] == rc.grid_of(how, len(X_db))
    alone = [rc.task_map(X_q, X_db, gnd, how, **s) for s, _ in tried]
    np.testing.assert_allclose([score for _, score in tried], alone, atol=1e-6)
    assert len(set(np.round(alone, 6))) > 3          # the grid's settings do differ on this data


@pytest.mark.parametrize("how", ["aqe", "alpha_qe_dba", "diffusion"])
def test_auto_never_reads_the_test_queries_labels(synthetic, monkeypatch, tmp_path, how):
    """The same settings whatever the test queries' ground truth says: scrambled, or emptied."""
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path))
    ds, result = synthetic
    rng = np.random.default_rng(1)
    scrambled = Dataset(name=ds.name, root=ds.root, db=ds.db, queries=ds.queries,
                        gnd=[GroundTruth(rng.choice(ds.n_db, 3, replace=False)) for _ in ds.gnd],
                        db_labels=rng.permutation(ds.db_labels), query_labels=rng.permutation(ds.query_labels),
                        train=ds.train, train_labels=ds.train_labels)
    chosen, line = rerank_settings(how, result, ds)
    assert "training split" in line
    assert rerank_settings(how, result, scrambled)[0] == chosen
    # without a training split: from the database, again blind to the queries
    no_train = Retrieval(result.sims, result.X_db, result.X_q)
    from_db, line = rerank_settings(how, no_train, ds)
    assert "from the database" in line and rerank_settings(how, no_train, scrambled)[0] == from_db


def test_given_settings_take_the_papers_for_the_rest(synthetic):
    ds, result = synthetic
    settings, line = rerank_settings("diffusion", result, ds, k=7, k_q=None)
    assert settings == {"k": 7, "k_q": rerank.QUERY_K, "alpha": rerank.ALPHA} and "given" in line


def test_auto_beats_the_papers_settings_where_objects_have_few_views(synthetic, monkeypatch, tmp_path):
    """On 5 views per object, the paper's 50-NN graph and 10 query neighbours join other objects; the settings
    chosen on the training split (6 views per object) do better, and no worse than the first ranking."""
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path))
    ds, result = synthetic
    monkeypatch.setattr(running, "run_method", lambda *a, **k: result)
    auto = evaluate_method("gem", ds, progress=False, rerank="diffusion")
    paper = evaluate_method("gem", ds, progress=False, rerank="diffusion",
                            rerank_given=dict(rc.PAPER["diffusion"]))
    assert auto["map"] > paper["map"] and auto["map"] >= auto["first_map"]
    assert "chosen on the training split" in auto["rerank_settings"]
    assert paper["rerank_settings"].startswith("k=50 k_q=10 alpha=0.99")


def test_reranked_with_settings_equals_the_functions(synthetic):
    ds, result = synthetic
    out = reranked(result, "alpha_qe", n=3, qe_alpha=1.0)
    expected = rerank.alpha_query_expansion(result.X_q, result.X_db, 3, 1.0)
    np.testing.assert_allclose(out.X_q, expected, atol=1e-6)
    np.testing.assert_allclose(out.sims, expected @ result.X_db.T, atol=1e-6)


@pytest.mark.parametrize("n_pos", [3, 40])          # few positives: counted; many: sorted
def test_task_maps_equal_the_course_ap_with_ties(n_pos):
    """rerank_choice's mAP of stacked settings (ranks of the positives only) equals the course's trapezoid AP
    of each block, ties broken in database order, on both of its paths."""
    from coursekit.evaluation import average_precisions, ranks_from_similarities

    rng = np.random.default_rng(3)
    Q, N, groups = 6, 120, 3
    sims = np.round(rng.random((groups * Q, N)), 1).astype(np.float32)       # 11 levels: many ties
    gnd = [GroundTruth(rng.choice(N, rng.integers(1, n_pos + 1), replace=False)) for _ in range(Q)]
    expected = [np.mean(average_precisions(ranks_from_similarities(sims[g * Q:(g + 1) * Q]), gnd, kind="trapezoid"))
                for g in range(groups)]
    np.testing.assert_allclose(rc._maps(sims, gnd, groups), expected, atol=1e-12)
