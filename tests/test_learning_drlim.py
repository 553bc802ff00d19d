"""DrLIM on scikit-learn's digits: pairs of the asked kind, a seeded map that separates the digits."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from coursekit.learning.drlim import digits, embed, make_net, pair_batch, train_embedding
from coursekit.learning.losses import contrastive_loss


def test_pairs_are_of_the_kind_they_say():
    labels = np.repeat(np.arange(5), 4)
    i, j, y = pair_batch(labels, 500, np.random.default_rng(0), positive_fraction=0.3)
    assert ((labels[i] == labels[j]) == (y == 1)).all() and (i != j).all()
    assert 0.2 < y.mean() < 0.4
    with pytest.raises(ValueError, match="both kinds"):
        pair_batch(np.zeros(6, int), 10, np.random.default_rng(0))


def test_the_learned_plane_separates_digits_it_never_saw():
    X, labels = digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32 and 0 <= X.min() and X.max() <= 1
    train, test = np.arange(len(X)) % 3 != 0, np.arange(len(X)) % 3 == 0
    net, history = train_embedding(X[train], labels[train], contrastive_loss, epochs=3, snapshots=X[test],
                                   progress=False)
    assert [h["epoch"] for h in history] == [0, 1, 2, 3] and history[-1]["Z"].shape == (test.sum(), 2)
    assert history[-1]["loss"] < 0.3 * history[0]["loss"]

    def knn(Z_train, Z_test):
        return KNeighborsClassifier(5).fit(Z_train, labels[train]).score(Z_test, labels[test])

    assert knn(embed(net, X[train]), history[-1]["Z"]) > 0.85
    untrained = make_net()
    assert knn(embed(untrained, X[train]), embed(untrained, X[test])) < 0.7
    _, again = train_embedding(X[train], labels[train], contrastive_loss, epochs=1, progress=False)
    assert again[1]["loss"] == history[1]["loss"]                  # the same seed, the same first epoch


def test_making_the_network_leaves_the_callers_random_state_alone():
    import torch

    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    first = make_net(seed=1)
    assert torch.equal(torch.rand(3), expected)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), make_net(seed=1).parameters()))
