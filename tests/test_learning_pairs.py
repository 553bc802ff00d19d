"""Matching pairs without labels: BoW short lists verified by RANSAC, their connected components, their quality.

A tiny training split of photographs, each object seen as two or three warped views (and two photographs
seen once): the matching pairs are known, and the labels are never given to ``verified_pairs``.
"""

import dataclasses
from itertools import combinations

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from coursekit.datasets import Dataset, GroundTruth
from coursekit.learning import pairs as pairs_module
from coursekit.learning.pairs import VerifiedPairs, pair_quality, pseudo_labels, verified_pairs
from test_local import H_WARP

SMALL = dict(k=4, n_words=100, progress=False)    # a 100-word vocabulary: k-means on a few thousand descriptors


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSEKIT_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def _rotation(degrees, scale, w=400, h=300):
    return np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), degrees, scale), [0, 0, 1]])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """12 training images: 4 objects in 2 or 3 views (the crop, a perspective warp, a rotation), 2 singletons."""
    root = tmp_path_factory.mktemp("tiny")
    grey = lambda a: np.repeat(a[:, :, None], 3, axis=2)  # noqa: E731
    objects = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
    warps = [np.eye(3), H_WARP, _rotation(15, 0.85)]
    images, labels = [], []
    for label, photo in enumerate(objects):
        crop = np.ascontiguousarray(photo[:300, :400])
        for H in warps[:3 if label % 2 == 0 else 2]:
            images.append(cv2.warpPerspective(crop, H, (400, 300)))
            labels.append(label)
    for label, photo in enumerate([grey(skdata.camera()), skdata.immunohistochemistry()], start=len(objects)):
        images.append(np.ascontiguousarray(photo[100:400, :400]))
        labels.append(label)
    order = np.random.default_rng(0).permutation(len(images))         # objects' views not next to each other
    paths = []
    for n, i in enumerate(order):
        paths.append(root / f"train{n:02d}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(images[i], cv2.COLOR_RGB2BGR))
    return Dataset("tiny", root, [paths[0]], [paths[1]], [GroundTruth(np.array([0]))], train=paths,
                   train_labels=np.array(labels)[order])


def _true_pairs(labels):
    return {(i, j) for i, j in combinations(range(len(labels)), 2) if labels[i] == labels[j]}


def test_verified_pairs_are_the_true_matches(tiny):
    found = verified_pairs(tiny, min_inliers=15, **SMALL)
    assert isinstance(found, VerifiedPairs) and found.n_images == 12 and found.min_inliers == 15
    assert found.pairs.dtype == np.int64 and found.pairs.shape == (len(found), 2)
    assert found.inliers.dtype == np.int64 and found.inliers.shape == (len(found),)
    assert (found.pairs[:, 0] < found.pairs[:, 1]).all()                       # each unordered pair once, sorted
    assert len(np.unique(found.pairs, axis=0)) == len(found)
    assert np.array_equal(found.pairs, found.pairs[np.lexsort(found.pairs.T[::-1])])
    assert (found.inliers >= 15).all()
    # 2 objects x 3 pairs + 2 objects x 1 pair: all found, and nothing else
    assert {tuple(p) for p in found.pairs.tolist()} == _true_pairs(tiny.train_labels)
    # every candidate, wrong ones included, with min_inliers=0; above() filters them back
    every = verified_pairs(tiny, min_inliers=0, **SMALL)
    assert len(every) > len(found) and (every.inliers < 15).any()
    again = every.above(15)
    assert np.array_equal(again.pairs, found.pairs) and np.array_equal(again.inliers, found.inliers)
    wrong = tiny.train_labels[every.pairs[:, 0]] != tiny.train_labels[every.pairs[:, 1]]
    assert every.inliers[wrong].max() < every.inliers[~wrong].min()


def test_labels_are_never_read_and_results_are_seeded(tiny, tmp_path, monkeypatch):
    found = verified_pairs(tiny, min_inliers=0, **SMALL)
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "another-cache"))   # computed again from scratch
    unlabelled = dataclasses.replace(tiny, train_labels=None)
    again = verified_pairs(unlabelled, min_inliers=0, **SMALL)
    assert again.cached_seconds == 0.0
    for name in ("pairs", "inliers", "matches", "scores"):
        assert np.array_equal(getattr(found, name), getattr(again, name)), name


def test_the_cache_is_keyed_by_every_parameter(tiny, monkeypatch):
    calls = []
    verify = pairs_module._verify_pairs
    monkeypatch.setattr(pairs_module, "_verify_pairs", lambda *a, **kw: calls.append(1) or verify(*a, **kw))
    first = verified_pairs(tiny, ratio=0.75, **SMALL)
    assert len(calls) == 1
    second = verified_pairs(tiny, ratio=0.75, **SMALL)
    assert len(calls) == 1 and second.cached_seconds > 0 and np.array_equal(first.pairs, second.pairs)
    verified_pairs(tiny, ratio=0.75, min_inliers=30, **SMALL)                 # a filter of the cached candidates
    assert len(calls) == 1
    verified_pairs(tiny, ratio=0.7, **SMALL)
    verified_pairs(tiny, ratio=0.75, threshold=4.0, **SMALL)
    verified_pairs(tiny, ratio=0.75, **{**SMALL, "k": 3})
    assert len(calls) == 4


def test_verified_pairs_refuses_what_it_cannot_do(tiny):
    with pytest.raises(ValueError, match="split"):
        verified_pairs(tiny, split="queries", **SMALL)
    with pytest.raises(ValueError, match="1 images"):
        verified_pairs(tiny, split="db", **SMALL)
    with pytest.raises(ValueError, match="k must"):
        verified_pairs(tiny, **{**SMALL, "k": 0})


# ----------------------------------------------------------------------------------------------------- pseudo-labels


def test_pseudo_labels_of_a_hand_made_graph():
    pairs = np.array([[0, 1], [2, 1], [5, 4], [3, 3], [1, 0]])      # either order, a self-pair, a repeat
    assert pseudo_labels(7, pairs).tolist() == [0, 0, 0, 1, 2, 2, 3]
    assert pseudo_labels(3, np.zeros((0, 2), np.int64)).tolist() == [0, 1, 2]
    assert pseudo_labels(4, [[3, 0]]).dtype == np.int64
    with pytest.raises(ValueError):
        pseudo_labels(3, [[0, 3]])
    with pytest.raises(ValueError):
        pseudo_labels(3, [[0, 1, 2]])


def _union_find(n, pairs):
    """Components by union-find, numbered in the order of their smallest image: the loop transcription."""
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    names, out = {}, []
    for i in range(n):
        out.append(names.setdefault(root(i), len(names)))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_pseudo_labels_equal_union_find(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    pairs = rng.integers(0, n, (int(rng.integers(0, 2 * n)), 2))
    assert pseudo_labels(n, pairs).tolist() == _union_find(n, pairs.tolist())


# ------------------------------------------------------------------------------------------------------- quality


def test_pair_quality_of_a_hand_made_case():
    labels = np.array([0, 0, 0, 1, 1, 2])
    pairs = np.array([[0, 1], [1, 3], [4, 5]])          # right, wrong, wrong: components {0, 1, 3}, {2}, {4, 5}
    q = pair_quality(pairs, labels)
    assert q == {"n_pairs": 3, "precision": pytest.approx(1 / 3), "images_paired": pytest.approx(5 / 6),
                 "n_components": 2, "n_singletons": 1, "purity": pytest.approx(3 / 5), "merged": 2,
                 "positive_precision": 0.25, "positive_recall": 0.25, "labels_covered": 1, "n_labels": 3}
    perfect = pair_quality(np.array([[0, 1], [1, 2], [3, 4]]), labels)
    assert perfect["precision"] == perfect["purity"] == perfect["positive_precision"] == 1.0
    assert perfect["positive_recall"] == 1.0 and perfect["merged"] == 0 and perfect["labels_covered"] == 2
    assert np.isnan(pair_quality(np.zeros((0, 2), np.int64), labels)["precision"])


@pytest.mark.parametrize("seed", range(3))
def test_pair_quality_against_loops(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 8, 40)
    pairs = rng.integers(0, 40, (30, 2))
    q = pair_quality(pairs, labels)
    pseudo = _union_find(40, pairs.tolist())
    both = same_pseudo = same_true = 0
    for i, j in combinations(range(40), 2):
        same_pseudo += pseudo[i] == pseudo[j]
        same_true += labels[i] == labels[j]
        both += pseudo[i] == pseudo[j] and labels[i] == labels[j]
    members = {c: [labels[i] for i in range(40) if pseudo[i] == c] for c in set(pseudo)}
    big = [m for m in members.values() if len(m) >= 2]
    assert q["precision"] == pytest.approx(np.mean([labels[i] == labels[j] for i, j in pairs]))
    assert q["positive_precision"] == pytest.approx(both / same_pseudo)
    assert q["positive_recall"] == pytest.approx(both / same_true)
    assert q["purity"] == pytest.approx(sum(max(m.count(v) for v in m) for m in big) / sum(len(m) for m in big))
    assert q["merged"] == sum(len(set(m)) > 1 for m in big)
    assert q["n_components"] == len(big) and q["n_singletons"] == len(members) - len(big)
    assert q["labels_covered"] == len({v for m in big for v in m if m.count(v) >= 2})
