import numpy as np
import pytest
from oracles import random_benchmark, revisited_compute_map

from coursekit.datasets import Dataset, GroundTruth
from coursekit.evaluation import (
    average_precision,
    average_precisions,
    evaluate,
    mean_average_precision,
    mean_precision_at_k,
    ns_score,
    pr_curve,
    precision_at_k,
    protocol_gnd,
    ranks_from_similarities,
    recall_at_k,
    revisited_map,
)

LECTURE = np.array([c == "T" for c in "T T F T F F T F T T F F".split()])


@pytest.mark.parametrize("kind, expected", [("plain", 0.7462), ("interpolated", 0.7583), ("trapezoid", 0.7249)])
def test_lecture_example(kind, expected):
    assert average_precision(LECTURE, 6, kind=kind) == pytest.approx(expected, abs=5e-5)


def test_lecture_example_by_hand():
    precisions = [1 / 1, 2 / 2, 3 / 4, 4 / 7, 5 / 9, 6 / 10]
    assert average_precision(LECTURE, 6) == pytest.approx(np.mean(precisions))
    # an unretrieved positive counts zero
    assert average_precision(LECTURE, 7) == pytest.approx(np.sum(precisions) / 7)


def test_precision_recall_at_k():
    assert precision_at_k(LECTURE, 4) == 0.75
    assert precision_at_k(LECTURE, 20) == 6 / 20
    assert recall_at_k(LECTURE, 4, 6) == 0.5
    assert recall_at_k(LECTURE, 12) == 1.0
    recall, precision = pr_curve(LECTURE, 6)
    assert recall[-1] == 1.0 and precision[3] == 0.75 and recall.shape == (12,)


def test_bad_inputs():
    with pytest.raises(ValueError, match="n_relevant"):
        average_precision(np.zeros(5, bool))
    with pytest.raises(ValueError, match="kind"):
        average_precision(LECTURE, kind="11-point")
    with pytest.raises(ValueError, match="1-D"):
        average_precision(np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="k must"):
        precision_at_k(LECTURE, 0)
    with pytest.raises(ValueError, match="n_queries"):
        average_precisions(np.zeros((3, 4), int), [GroundTruth(np.array([0]))])


@pytest.mark.parametrize("kind", ["plain", "interpolated", "trapezoid"])
def test_perfect_ranking_is_one(kind):
    labels = np.r_[np.ones(5, bool), np.zeros(20, bool)]
    assert average_precision(labels, kind=kind) == pytest.approx(1.0)


def test_orderings_between_definitions():
    rng = np.random.default_rng(0)
    for _ in range(200):
        labels = rng.random(30) < 0.3
        if not labels.any():
            continue
        plain = average_precision(labels)
        assert average_precision(labels, kind="trapezoid") <= plain + 1e-12
        assert average_precision(labels, kind="interpolated") >= plain - 1e-12


def test_map_matches_revisited_transcription():
    rng = np.random.default_rng(1)
    ranks, gnd, dicts = random_benchmark(300, 400, rng, empty_every=37)
    ref_map, ref_aps, ref_pr, _ = revisited_compute_map(ranks.T, dicts, kappas=[1, 5, 10])
    aps = average_precisions(ranks, gnd, kind="trapezoid")
    np.testing.assert_allclose(aps, ref_aps, rtol=1e-12, atol=1e-12)  # NaN where empty, in both
    assert mean_average_precision(ranks, gnd, kind="trapezoid") == pytest.approx(ref_map, abs=1e-12)
    for k, ref in zip([1, 5, 10], ref_pr):
        assert mean_precision_at_k(ranks, gnd, k) == pytest.approx(ref, abs=1e-12)


def test_junk_is_removed_not_counted():
    # positives at 0 and 3, junk at 1 and 2: with junk removed the ranking is perfect
    gnd = [GroundTruth(np.array([10, 13]), junk=np.array([11, 12]))]
    ranks = np.array([[10, 11, 12, 13, 14, 15]])
    assert mean_average_precision(ranks, gnd) == 1.0
    without_junk = [GroundTruth(np.array([10, 13]))]
    assert mean_average_precision(ranks, without_junk) == pytest.approx((1 + 2 / 4) / 2)


def test_queries_without_positives_are_excluded():
    gnd = [GroundTruth(np.array([0])), GroundTruth(np.zeros(0, np.int64))]
    ranks = np.array([[0, 1, 2], [2, 1, 0]])
    aps = average_precisions(ranks, gnd)
    assert aps[0] == 1.0 and np.isnan(aps[1])
    assert mean_average_precision(ranks, gnd) == 1.0


def test_revisited_protocols():
    gnd = [GroundTruth(easy=np.array([0]), hard=np.array([2]), junk=np.array([1]))]
    ranks = np.array([[2, 1, 0, 3]])  # hard first, then junk, then easy
    easy = protocol_gnd(gnd, "easy")[0]
    assert list(easy.positives) == [0] and set(easy.junk) == {1, 2}
    result = revisited_map(ranks, gnd, kind="plain")
    assert result["easy"] == 1.0  # hard and junk removed: easy is first
    assert result["hard"] == 1.0
    assert result["medium"] == pytest.approx((1 + 2 / 2) / 2)  # hard at 1, easy at 2 after junk removal


def test_ns_score():
    db_labels = np.repeat(np.arange(3), 4)
    ranks = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],     # all four of group 0
                      [4, 0, 5, 8, 6, 7, 1, 2, 3, 9, 10, 11]])    # two of group 1
    assert ns_score(ranks, db_labels, np.array([0, 1])) == pytest.approx(3.0)


def test_ranks_from_similarities():
    sims = np.array([[0.1, 0.9, 0.5, 0.9], [1.0, 0.0, 0.0, 0.5]])
    ranks = ranks_from_similarities(sims)
    assert ranks.tolist() == [[1, 3, 2, 0], [0, 3, 1, 2]]  # ties in database order
    assert ranks_from_similarities(sims, k=2).tolist() == [[1, 3], [0, 3]]
    with pytest.raises(ValueError, match="NaN"):
        ranks_from_similarities(np.array([[np.nan, 1.0]]))


def test_truncated_ranking_counts_missing_positives_as_zero():
    gnd = [GroundTruth(np.array([0, 5]))]
    assert mean_average_precision(np.array([[0, 1, 2]]), gnd) == pytest.approx(0.5)


def test_evaluate_on_a_dataset(tmp_path):
    paths = [tmp_path / f"{i}.jpg" for i in range(8)]
    ds = Dataset("toy", tmp_path, paths, paths[:2],
                 [GroundTruth(np.array([1, 2, 3]), junk=np.array([0])), GroundTruth(np.array([0, 2, 3]), junk=np.array([1]))],
                 db_labels=np.array([0, 0, 0, 0, 1, 1, 1, 1]), query_labels=np.array([0, 0]), ns_group_size=4)
    ranks = np.array([[0, 1, 2, 3, 4, 5, 6, 7], [1, 4, 0, 2, 3, 5, 6, 7]])
    out = evaluate(ranks, ds)
    # query 0: junk removed, perfect. Query 1: junk removed, positives at 1, 2, 3 (trapezoid AP).
    second = np.mean([(0 / 1 + 1 / 2) / 2, (1 / 2 + 2 / 3) / 2, (2 / 3 + 3 / 4) / 2])
    assert out["map"] == pytest.approx((1 + second) / 2)
    assert out["mp@10"] == pytest.approx((1 + 3 / 4) / 2)
    assert out["ns_score"] == pytest.approx((4 + 3) / 2)
    assert "map_easy" not in out
