"""The dataset audit: neighbours that share a background, show the object, and the mutual kNN graph."""

import itertools

import numpy as np
import pytest

from coursekit.datasets.embedded.audit import mutual_knn_purity, neighbour_shares


def _clusters(groups, seed=0, spread=0.05):
    """Unit vectors around one random centre per group id: ``(N, 16) float32``."""
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups)
    centres = rng.standard_normal((groups.max() + 1, 16))
    X = centres[groups] + spread * rng.standard_normal((len(groups), 16))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def _loop_shares(X, labels, sources, k):
    """The definition, one image and one neighbour at a time."""
    n = len(labels)
    bg, obj, n_obj = 0, 0, 0
    for i in range(n):
        sims = [(float(X[i] @ X[j]), j) for j in range(n) if j != i]
        nn = [j for _, j in sorted(sims, key=lambda t: -t[0])[:k]]
        bg += sum(sources[j] == sources[i] for j in nn)
        if labels[i] >= 0:
            obj += sum(labels[j] == labels[i] for j in nn)
            n_obj += k
    pairs = list(itertools.permutations(range(n), 2))
    chance_bg = sum(sources[i] == sources[j] for i, j in pairs) / len(pairs)
    with_obj = [i for i in range(n) if labels[i] >= 0]
    chance_obj = sum(labels[i] == labels[j] for i in with_obj for j in range(n) if j != i) / (len(with_obj) * (n - 1))
    return {"background": bg / (n * k), "background_chance": chance_bg, "object": obj / n_obj,
            "object_chance": chance_obj}


def test_neighbours_that_follow_the_background_are_caught():
    sources = ["a", "b", "c"] * 8                                   # 24 images, 3 backgrounds
    labels = np.repeat(np.arange(6), 4)                             # 6 objects, 4 views each
    X = _clusters([ord(s) - ord("a") for s in sources])             # the vectors see only the background
    shares = neighbour_shares(X, labels, sources, k=5)
    assert shares["background"] == 1.0
    assert shares["background_chance"] == pytest.approx(7 / 23)     # 7 others of one's 8, among 23
    assert shares["object"] < 0.5


def test_neighbour_shares_follow_the_definition():
    rng = np.random.default_rng(1)
    labels = rng.integers(-1, 5, 40)
    sources = [str(s) for s in rng.integers(0, 4, 40)]
    X = _clusters(np.where(labels >= 0, labels, 5), spread=0.8)
    got = neighbour_shares(X, labels, sources, k=4)
    want = _loop_shares(X, labels, sources, 4)
    assert got == pytest.approx(want)


def test_mutual_knn_purity_follows_the_definition():
    rng = np.random.default_rng(2)
    labels = rng.integers(-1, 6, 50)
    X = _clusters(np.where(labels >= 0, labels, 6), spread=0.9)
    got = mutual_knn_purity(X, labels, k=5)
    S = X @ X.T
    np.fill_diagonal(S, -np.inf)
    knn = [set(np.argsort(-S[i], kind="stable")[:5]) for i in range(50)]
    edges = [(i, j) for i in range(50) for j in range(i + 1, 50) if j in knn[i] and i in knn[j]]
    touching = [(i, j) for i, j in edges if labels[i] >= 0 or labels[j] >= 0]
    pure = [(i, j) for i, j in touching if labels[i] == labels[j]]
    linked = {i for e in pure for i in e}
    with_obj = [i for i in range(50) if labels[i] >= 0]
    assert got["edges"] == len(touching)
    assert got["purity"] == pytest.approx(len(pure) / len(touching))
    assert got["isolated"] == pytest.approx(1 - sum(i in linked for i in with_obj) / len(with_obj))


def test_mismatched_inputs_are_refused():
    X = _clusters([0, 1, 2, 3])
    with pytest.raises(ValueError, match="must match"):
        neighbour_shares(X, [0, 1, 2, 3], ["a", "b"], k=2)
    with pytest.raises(ValueError, match="N > k"):
        mutual_knn_purity(X, [0, 1, 2, 3], k=4)
