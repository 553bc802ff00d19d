"""The methods of notebooks 03 and 04 end to end: bow, bow_sv, vlad, fisher; whitening and indexes of notebooks 05-06.

A tiny dataset of photographs with a training split of other photographs;
the queries are warped views of two database images.
"""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from skimage import data as skdata

from coursekit import aggregation, local
from coursekit.bow import dataset_vocabulary
from coursekit.datasets import Dataset, GroundTruth
from coursekit.evaluation import ranks_from_similarities
from coursekit.methods import (METHODS, bow, bow_sv, color_hist, evaluate_method, fisher, index_ranks, neighbour_recall,
                               run_method, vlad, whitened)
from coursekit.whitening import fit_pca_whitening, fit_shrunk_whitening
from test_local import warped


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """One cache for the module: SIFT of the tiny dataset is extracted once."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSEKIT_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def _write(path, rgb):
    cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("tiny")
    grey = lambda a: np.repeat(a[:, :, None], 3, axis=2)  # noqa: E731
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket(), grey(skdata.camera())]
    db = [_write(tmp_path / f"db{k}.png", img[:300, :400]) for k, img in enumerate(photos)]
    queries = [_write(tmp_path / f"q{k}.png", warped(np.ascontiguousarray(photos[k][:300, :400]))) for k in (1, 3)]
    train = [_write(tmp_path / f"train{k}.png", img) for k, img in
             enumerate([skdata.immunohistochemistry(), grey(skdata.moon()), skdata.hubble_deep_field()[:400, :400],
                        grey(skdata.brick()), grey(skdata.text())])]
    gnd = [GroundTruth(np.array([1])), GroundTruth(np.array([3]))]
    return Dataset("tiny", tmp_path, db, queries, gnd, train=train)


SMALL = {bow: dict(k=100), bow_sv: dict(k=100, top=3), vlad: dict(k=8), fisher: dict(k=4, d=16)}


def test_methods_are_registered():
    for name in ("bow", "bow_sv", "vlad", "fisher"):
        assert METHODS[name][0].__name__ == name


@pytest.mark.parametrize("method", list(SMALL), ids=lambda m: m.__name__)
def test_every_method_finds_the_warped_image(dataset, method):
    result = method(dataset, progress=False, **SMALL[method])
    assert result.sims.shape == (2, 5) and np.isfinite(result.sims).all()
    assert ranks_from_similarities(result.sims)[:, 0].tolist() == [1, 3]


def test_bow_equals_dense_tfidf_cosine_computed_from_scratch(dataset):
    """Words by brute-force nearest centroid, tf^alpha * log(N / n_k), L2, dot product: no coursekit.bow."""
    k, alpha = 100, 0.5
    C, _ = dataset_vocabulary(dataset, k, progress=False)
    fdb, _ = local.extract_sift(dataset.db, max_features=500, progress=False)
    fq, _ = local.extract_sift(dataset.queries, max_features=500, progress=False)

    def tf(feats):
        return np.stack([np.bincount(cdist(feats.descriptors(i), C, "sqeuclidean").argmin(1), minlength=k)
                         for i in range(len(feats))]).astype(np.float64)

    tf_db, tf_q = tf(fdb), tf(fq)
    n_k = (tf_db > 0).sum(0)
    w = np.where(n_k > 0, np.log(len(tf_db) / np.maximum(n_k, 1)), 0.0)

    def vectors(t):
        v = t ** alpha * w
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    expected = vectors(tf_q) @ vectors(tf_db).T
    got = bow(dataset, k=k, alpha=alpha, progress=False).sims
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_bow_sv_reranks_only_the_top_and_keeps_the_first_stage(dataset):
    first = bow(dataset, k=100, progress=False).sims
    result = bow_sv(dataset, k=100, top=3, progress=False)
    np.testing.assert_allclose(result.first_stage, first)
    a, b = ranks_from_similarities(first), ranks_from_similarities(result.sims)
    assert (np.sort(a[:, :3], axis=1) == np.sort(b[:, :3], axis=1)).all()
    assert (a[:, 3:] == b[:, 3:]).all()


def test_the_second_run_reads_words_and_vocabulary_from_the_cache(dataset):
    first = bow(dataset, k=90, progress=False)      # a vocabulary no other test learns
    second = bow(dataset, k=90, progress=False)
    np.testing.assert_array_equal(first.sims, second.sims)
    assert second.cached_seconds > first.cached_seconds


def test_vlad_and_fisher_vectors_are_the_documented_pipelines(dataset):
    r = vlad(dataset, k=8, progress=False)
    C, _ = dataset_vocabulary(dataset, 8, progress=False)
    fq, _ = local.extract_sift(dataset.queries, max_features=500, progress=False)
    v = aggregation.vlad(fq.descriptors(0), C)
    expected = aggregation.l2_normalize(aggregation.intra_normalize(aggregation.power_normalize(v), 8))
    np.testing.assert_allclose(r.X_q[0], expected, atol=1e-6)
    assert r.X_db.shape == (5, 8 * 128)
    np.testing.assert_allclose(np.linalg.norm(r.X_db, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(r.sims, r.X_q @ r.X_db.T, atol=1e-6)

    f = fisher(dataset, k=4, d=16, progress=False)
    assert f.X_db.shape == (5, 2 * 4 * 16) and f.X_q.shape == (2, 2 * 4 * 16)
    np.testing.assert_allclose(np.linalg.norm(f.X_q, axis=1), 1, atol=1e-5)


def test_a_vocabulary_larger_than_the_training_descriptors_is_refused(dataset):
    with pytest.raises(ValueError, match=r"k=1000000 words needs at least 1000000 .* pass a smaller k"):
        dataset_vocabulary(dataset, 1_000_000, progress=False)


def test_with_train_adds_training_vectors_made_by_the_same_pipeline(dataset):
    r = vlad(dataset, k=8, progress=False, with_train=True)
    assert r.X_train.shape == (5, 8 * 128)
    C, _ = dataset_vocabulary(dataset, 8, progress=False)
    ftr, _ = local.extract_sift(dataset.train, max_features=500, progress=False)
    v = aggregation.vlad(ftr.descriptors(2), C)
    expected = aggregation.l2_normalize(aggregation.intra_normalize(aggregation.power_normalize(v), 8))
    np.testing.assert_allclose(r.X_train[2], expected, atol=1e-6)
    assert vlad(dataset, k=8, progress=False).X_train is None  # not asked for: not computed


def test_colour_training_vectors_are_cached_apart_from_the_database(dataset):
    plain = color_hist(dataset, progress=False)
    both = color_hist(dataset, progress=False, with_train=True)
    np.testing.assert_array_equal(plain.X_db, both.X_db)
    assert both.X_train.shape == (5, 16 ** 3)
    np.testing.assert_allclose(np.linalg.norm(both.X_train, axis=1), 1, atol=1e-5)
    again = color_hist(dataset, progress=False, with_train=True)
    assert again.cached_seconds >= both.cached_seconds and again.cached_seconds > 0


def test_whitening_is_learned_on_the_training_vectors_only(dataset):
    r = vlad(dataset, k=8, progress=False, with_train=True)
    w = whitened(r, d=3)
    W = fit_pca_whitening(r.X_train, 3)
    np.testing.assert_allclose(w.X_db, W.apply(r.X_db), atol=1e-6)
    np.testing.assert_allclose(w.sims, w.X_q @ w.X_db.T, atol=1e-6)
    assert w.X_db.shape == (5, 3) and w.X_train.shape == (5, 3)
    full = whitened(r)                         # by default every dimension, whitened by the shrunk covariance
    np.testing.assert_allclose(full.X_q, fit_shrunk_whitening(r.X_train, 1e-3).apply(r.X_q), atol=1e-6)
    assert full.X_db.shape == (5, 8 * 128)
    with pytest.raises(ValueError, match="with_train=True"):
        whitened(vlad(dataset, k=8, progress=False))


def test_whitening_or_an_index_needs_global_vectors_and_a_training_split(dataset):
    with pytest.raises(ValueError, match="no global vectors"):
        run_method("sift_match", dataset, progress=False, whiten=True)
    no_train = Dataset("tiny", dataset.root, dataset.db, dataset.queries, dataset.gnd)
    with pytest.raises(ValueError, match="has none"):
        run_method("color_hist", no_train, progress=False, whiten=True)
    with pytest.raises(ValueError, match="pass it with whiten"):
        run_method("color_hist", dataset, progress=False, dim=3)


def test_index_ranks_put_what_the_index_did_not_return_last_in_database_order():
    I = np.array([[3, 1, -1, -1], [0, 1, 2, 3]])
    np.testing.assert_array_equal(index_ranks(I, 5), [[3, 1, 0, 2, 4], [0, 1, 2, 3, 4]])


def test_neighbour_recall_skips_copies_of_the_query_and_accepts_ties():
    D = np.array([[0.0, 0.5, 0.2, 0.2, 0.9],     # query 0 is database image 0; images 2 and 3 tie
                  [0.3, 0.1, 0.4, 0.8, 0.7]])
    assert neighbour_recall(D, np.array([[0, 3, 1], [1, 0, 2]]), ranks=(1,)) == {1: 1.0}
    assert neighbour_recall(D, np.array([[0, 1, 2], [0, 1, 2]]), ranks=(1, 2)) == {1: 0.0, 2: 1.0}
    assert neighbour_recall(D, np.array([[1, -1, -1], [2, 3, -1]]), ranks=(1, 3)) == {1: 0.0, 3: 0.0}


def test_evaluate_through_an_index(dataset):
    exact = evaluate_method("color_hist", dataset, progress=False, index="exact")
    assert exact["map"] == exact["exact_map"] == 1.0
    assert exact["recall@1"] == 1.0 and exact["index_trained_on"] == "train"
    assert exact["bytes_per_vector"] == 4 * 16 ** 3
    pq = evaluate_method("color_hist", dataset, progress=False, index="pq", M=8, nbits=2)
    assert pq["bytes_per_vector"] == 8 * 2 / 8 and pq["index"].startswith("PQIndex(M=8, nbits=2")
    assert 0 <= pq["recall@1"] <= 1 and "recall@10" not in pq  # only 5 database images
    with pytest.raises(ValueError, match=r"nbits=8 learns 256 centroids per block from 5 training vectors"):
        evaluate_method("color_hist", dataset, progress=False, index="pq")


def test_descriptor_search_measures_every_index_and_the_report_shows_it(dataset, tmp_path):
    from coursekit.course.report import SEARCH_CONFIGS, descriptor_search, write_report

    search = descriptor_search(dataset, n_db=1500, n_queries=200, n_train=3000)  # the database has 1738
    assert search["n_db"] == 1500 and search["n_queries"] == 200 and search["train_split"] == "train"
    rows = {r["index"]: r for r in search["rows"]}
    assert list(rows) == list(SEARCH_CONFIGS)
    assert rows["exact"]["recall@1"] == 1.0 and rows["exact"]["bytes_per_vector"] == 4 * 128
    assert rows["pq"]["bytes_per_vector"] == 16 and 0.3 < rows["pq"]["recall@100"] <= 1.0
    assert rows["pq"]["recall@1"] <= rows["pq"]["recall@10"] <= rows["pq"]["recall@100"]
    assert "skipped" in rows["ivfpq"]  # 3000 training vectors are too few for 1024 lists
    report = {"generated": "now", "version": "x", "machine": "here", "absent": [], "notebooks": [], "results": [],
              "datasets": {"tiny": {"n_db": 5, "n_queries": 2}}, "search": {"tiny": search}, "indexed": {"tiny": []}}
    write_report(tmp_path, report)
    md = (tmp_path / "REPORT.md").read_text()
    assert "### tiny: nearest-neighbour search on RootSIFT descriptors" in md
    assert "| exact |  | 1.000 | 1.000 | 1.000 |" in md and "| ivfpq | skipped: nlist=1024 needs 39,936" in md


def test_vlad_and_fisher_vectors_are_cached_per_split_and_keyed_by_what_was_learned(dataset):
    first = vlad(dataset, k=8, progress=False, with_train=True)
    files = set((Path(os.environ["COURSEKIT_CACHE"]) / "features").glob("*.npz"))
    again = vlad(dataset, k=8, progress=False, with_train=True)
    np.testing.assert_array_equal(first.X_train, again.X_train)
    assert set((Path(os.environ["COURSEKIT_CACHE"]) / "features").glob("*.npz")) == files   # nothing new
    other = vlad(dataset, k=6, progress=False)                    # another vocabulary: other vectors
    assert other.X_db.shape == (5, 6 * 128)
    f = fisher(dataset, k=4, d=16, progress=False)
    assert f.X_db.shape == (5, 2 * 4 * 16)
