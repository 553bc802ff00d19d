import numpy as np
import pytest
import torch

from coursekit.learning.mining import hard_negatives, positive_pairs, random_negatives


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered(seed, n_labels=12, per_label=6, D=16, spread=0.4):
    """Images of ``n_labels`` objects: ``per_label`` noisy views of each object's centre."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_labels, D))
    labels = np.repeat(np.arange(n_labels), per_label)
    X = unit(centres[labels] + spread * rng.normal(size=(len(labels), D)))
    return X, labels


def brute_force(q, pool, ql, pl, n, one_per_label):
    """A direct transcription of the rule: walk each ranking, skip the query's label (and seen labels)."""
    out = []
    for i in range(len(q)):
        sims = pool @ q[i]
        ranking = sorted(range(len(pool)), key=lambda j: (-sims[j], j))
        seen, row = {ql[i]}, []
        for j in ranking:
            if pl[j] == ql[i] or (one_per_label and pl[j] in seen):
                continue
            row.append(j)
            seen.add(pl[j])
            if len(row) == n:
                break
        out.append(row)
    return np.array(out)


@pytest.mark.parametrize("one_per_label", [True, False])
def test_hard_negatives_agree_with_a_loop(one_per_label):
    X, labels = clustered(0)
    q, ql = X[::5], labels[::5]                  # queries drawn from the pool itself
    got = hard_negatives(q, X, ql, labels, n=4, one_per_label=one_per_label)
    assert got.shape == (len(q), 4) and got.dtype == np.int64
    np.testing.assert_array_equal(got, brute_force(q, X, ql, labels, 4, one_per_label))


def test_hard_negatives_never_share_the_query_label_and_one_per_label():
    X, labels = clustered(1, n_labels=10, per_label=8, spread=1.0)
    neg = hard_negatives(X, X, labels, labels, n=6)
    assert not (labels[neg] == labels[:, None]).any()
    assert all(len(set(row)) == 6 for row in labels[neg])          # six different labels per query
    sims = np.sum(X[:, None] * X[neg], axis=2)
    assert (np.diff(sims, axis=1) <= 1e-6).all()                   # most similar first
    # without the rule, a look-alike object fills several slots
    loose = hard_negatives(X, X, labels, labels, n=6, one_per_label=False)
    assert not (labels[loose] == labels[:, None]).any()
    assert any(len(set(row)) < 6 for row in labels[loose])


def test_hard_negatives_are_harder_than_random_ones():
    X, labels = clustered(2, n_labels=20, per_label=5, spread=0.6)
    hard = hard_negatives(X, X, labels, labels, n=5)
    rand = random_negatives(labels, labels, n=5, seed=0)
    sim_hard = np.sum(X[:, None] * X[hard], axis=2).mean()
    sim_rand = np.sum(X[:, None] * X[rand], axis=2).mean()
    assert sim_hard > sim_rand + 0.2, (sim_hard, sim_rand)


def test_hard_negatives_take_torch_tensors_and_string_labels():
    X, labels = clustered(3)
    names = np.array([f"obj{k:02d}" for k in labels])
    a = hard_negatives(torch.from_numpy(X), torch.from_numpy(X), names, names, n=3)
    b = hard_negatives(X, X, labels, labels, n=3)
    np.testing.assert_array_equal(a, b)


def test_too_few_negatives_raise_and_say_how_many():
    X, labels = clustered(4, n_labels=3, per_label=4)
    with pytest.raises(ValueError, match=r"query 0 has 2 candidate.*n=3.*12 of 12.*one_per_label=False"):
        hard_negatives(X, X, labels, labels, n=3)
    assert hard_negatives(X, X, labels, labels, n=3, one_per_label=False).shape == (12, 3)
    with pytest.raises(ValueError, match=r"has 8 candidate.*n=9"):
        hard_negatives(X, X, labels, labels, n=9, one_per_label=False)
    with pytest.raises(ValueError, match=r"has 8 candidate.*n=9"):
        random_negatives(labels, labels, n=9, seed=0)
    # the query that lacks negatives is named, wherever it is
    with pytest.raises(ValueError, match=r"query 7 has 0 candidate.*\(1 of 8 queries"):
        random_negatives(np.r_[np.zeros(7, int), 5], np.full(4, 5), n=1, seed=0)
    with pytest.raises(ValueError, match=r"\(12, 16\).*\(12, 8\)"):
        hard_negatives(X, X[:, :8], labels, labels)


def test_random_negatives_are_valid_distinct_and_seeded():
    X, labels = clustered(5, n_labels=6, per_label=5)
    a = random_negatives(labels, labels, n=25, seed=7)          # every other-label item, in a random order
    assert a.shape == (30, 25) and a.dtype == np.int64
    assert not (labels[a] == labels[:, None]).any()
    assert all(len(set(row)) == 25 for row in a)
    np.testing.assert_array_equal(a, random_negatives(labels, labels, n=25, seed=7))
    assert not np.array_equal(a, random_negatives(labels, labels, n=25, seed=8))
    # uniform: over many queries of one label, each candidate is drawn about equally often
    ql = np.zeros(3000, dtype=int)
    counts = np.bincount(random_negatives(ql, labels, n=2, seed=1).ravel(), minlength=30)
    assert counts[:5].sum() == 0 and counts[5:].min() > 180 and counts[5:].max() < 300   # expected 240 each


def test_positive_pairs():
    labels = np.array([3, 1, 3, 2, 1, 3, 3, 9])          # label 2 and 9 alone; 3 has four images
    pairs = positive_pairs(labels, seed=0)
    assert pairs.dtype == np.int64 and pairs.shape == (6, 2)
    np.testing.assert_array_equal(pairs[:, 0], [0, 1, 2, 4, 5, 6])
    assert (labels[pairs[:, 0]] == labels[pairs[:, 1]]).all() and (pairs[:, 0] != pairs[:, 1]).all()
    np.testing.assert_array_equal(pairs, positive_pairs(labels, seed=0))
    many = positive_pairs(labels, seed=1, per_image=5)    # capped at the g - 1 others: 3 each for label 3
    assert len(many) == 4 * 3 + 2 * 1
    assert (labels[many[:, 0]] == labels[many[:, 1]]).all() and (many[:, 0] != many[:, 1]).all()
    assert len({tuple(p) for p in many}) == len(many)     # distinct partners
    assert positive_pairs(np.arange(5), seed=0).shape == (0, 2)


def test_positive_pairs_draw_partners_uniformly():
    labels = np.zeros(5, dtype=int)
    draws = np.concatenate([positive_pairs(labels, seed=s)[:1, 1] for s in range(800)])
    counts = np.bincount(draws, minlength=5)            # image 0's partner: 1..4, 200 each expected
    assert counts[0] == 0 and counts[1:].min() > 150 and counts[1:].max() < 250
    assert not np.array_equal(positive_pairs(np.repeat(np.arange(20), 4), seed=0),
                              positive_pairs(np.repeat(np.arange(20), 4), seed=1))
