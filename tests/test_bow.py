import numpy as np
import pytest
import scipy.sparse as sp

from coursekit.bow import InvertedFile, assign, burstiness, idf, tfidf, train_vocabulary, word_counts


def test_assign_matches_brute_force():
    rng = np.random.default_rng(0)
    X, C = rng.normal(size=(500, 16)).astype(np.float32), rng.normal(size=(40, 16)).astype(np.float32)
    brute = np.argmin(((X[:, None, :] - C[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(assign(X, C, chunk=64), brute)
    with pytest.raises(ValueError, match="share D"):
        assign(X, C[:, :8])


def test_train_vocabulary_is_seeded_and_finds_clusters():
    rng = np.random.default_rng(1)
    centers = rng.normal(scale=10, size=(5, 4))
    X = (centers[rng.integers(0, 5, 2000)] + rng.normal(size=(2000, 4))).astype(np.float32)
    C1, C2 = train_vocabulary(X, 5, seed=3), train_vocabulary(X, 5, seed=3)
    np.testing.assert_array_equal(C1, C2)
    nearest = np.sort(np.linalg.norm(C1[:, None] - centers[None], axis=-1).min(axis=0))
    assert nearest.max() < 0.5  # every true centre found


def test_word_counts_and_idf():
    counts = word_counts([np.array([0, 0, 2]), np.array([2]), np.array([], int)], k=4)
    assert counts.toarray().tolist() == [[2, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    w = idf(counts)
    np.testing.assert_allclose(w, [np.log(3 / 1), 0, np.log(3 / 2), 0], rtol=1e-6)


def test_inverted_file_equals_dense_tfidf_cosine():
    rng = np.random.default_rng(2)
    K, N, Q = 300, 80, 12
    db = word_counts([rng.integers(0, K, rng.integers(5, 60)) for _ in range(N)], K)
    q = word_counts([rng.integers(0, K, rng.integers(5, 60)) for _ in range(Q)], K)
    inv = InvertedFile.build(db)
    sims = inv.search(q)

    # dense, straight from the definitions
    D, Qd = db.toarray().astype(np.float64), q.toarray().astype(np.float64)
    n_k = (D > 0).sum(axis=0)
    w = np.where(n_k > 0, np.log(N / np.maximum(n_k, 1)), 0)
    Dw, Qw = D * w, Qd * w
    Dw /= np.maximum(np.linalg.norm(Dw, axis=1, keepdims=True), 1e-12)
    Qw /= np.maximum(np.linalg.norm(Qw, axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(sims, Qw @ Dw.T, atol=1e-5)


def test_tfidf_rows_are_unit_and_burstiness_is_a_power_law():
    counts = sp.csr_matrix(np.array([[4.0, 1.0, 0.0], [0.0, 9.0, 1.0]]))
    m = tfidf(counts, np.ones(3, np.float32))
    np.testing.assert_allclose(np.linalg.norm(m.toarray(), axis=1), 1, rtol=1e-6)
    assert burstiness(counts, 0.5).toarray().tolist() == [[2, 1, 0], [0, 3, 1]]
    assert counts.toarray()[0, 0] == 4  # the input is not changed


def test_inverted_file_with_burstiness_ranks_a_self_match_first():
    rng = np.random.default_rng(3)
    db = word_counts([rng.integers(0, 200, 50) for _ in range(30)], 200)
    inv = InvertedFile.build(db, alpha=0.5)
    sims = inv.search(db[:5])
    assert (sims.argmax(axis=1) == np.arange(5)).all()
    np.testing.assert_allclose(sims[np.arange(5), np.arange(5)], 1, rtol=1e-5)
