"""Nearest-neighbour indexes (coursekit.ann): exactness where a method promises it, the properties
the PQ family must have, seeding, shapes and refusals. Small data: the whole file runs in seconds."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from coursekit.ann import (ExactIndex, IVFPQIndex, KDTreeIndex, LOPQIndex, LSHIndex, MultiIndexPQIndex, OPQIndex,
                           PQIndex, VQIndex, adc_distances, adc_tables, build_kdtree, hamming_distances,
                           hamming_distances_lut, kmeans, lsh_codes, multi_index_cells, pq_decode, pq_encode,
                           procrustes, random_hyperplanes, recall_at, sdc_tables, sweep, synthetic_vectors, top_k,
                           train_codebooks, train_opq, true_neighbours)
from coursekit.ann.base import concat_ranges


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small matrix products are slower on 2 BLAS threads than on one, and results are then reproducible."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def data():
    """Clustered vectors with a decaying spectrum: 4,000 database, 200 queries, 2,000 training, D = 16."""
    X = synthetic_vectors(6200, d=16, n_clusters=40, seed=0)
    return X[:4000], X[4000:4200], X[4200:]


def brute_force(X_db, X_q, k):
    """Squared distances in float64 and a stable sort: the reference."""
    d = ((X_q[:, None, :].astype(np.float64) - X_db[None].astype(np.float64)) ** 2).sum(-1)
    I = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, I, axis=1), I


# --------------------------------------------------------------------------- helpers

def test_top_k_and_concat_ranges():
    D = np.array([[3.0, 1.0, 2.0, 0.5], [9.0, 8.0, 7.0, 6.0]], np.float32)
    vals, cols = top_k(D, 2)
    np.testing.assert_array_equal(cols, [[3, 1], [3, 2]])
    np.testing.assert_array_equal(vals, [[0.5, 1.0], [6.0, 7.0]])
    vals, cols = top_k(D, 2, largest=True)
    np.testing.assert_array_equal(cols, [[0, 2], [0, 1]])
    vals, cols = top_k(D[:, :1], 3)                                      # fewer columns than k: padded
    np.testing.assert_array_equal(cols, [[0, -1, -1], [0, -1, -1]])
    assert np.isinf(vals[:, 1:]).all()
    np.testing.assert_array_equal(concat_ranges([5, 0, 9], [2, 0, 3]), [5, 6, 9, 10, 11])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
@pytest.mark.parametrize("k", [1, 10, 150])
def test_top_k_on_long_rows_equals_a_full_sort(dtype, k):
    rng = np.random.default_rng(k)
    D = (rng.random((30, 5000)) * 50).astype(dtype)         # uint16: many ties, as Hamming distances have
    D[3, ::7] = D[3, 0]                                      # a long run of equal values
    for largest in (False, True):
        vals, cols = top_k(D, k, largest)                    # 5000 >= 32 k: the threshold path
        ref = np.sort(D.astype(np.float64), axis=1)
        ref = ref[:, ::-1][:, :k] if largest else ref[:, :k]
        np.testing.assert_array_equal(vals, ref.astype(np.float32))
        np.testing.assert_array_equal(np.take_along_axis(D, cols, axis=1).astype(np.float32), vals)
        assert all(len(set(row)) == k for row in cols)


def test_top_k_on_long_rows_of_padding_returns():
    """Rows mostly inf (an inverted file's padded candidates): the threshold keeps every entry, so
    the selection must fall back to argpartition rather than call itself again on the same rows."""
    D = np.full((3, 8192), np.inf, np.float32)
    D[0, :5] = [4, 3, 2, 1, 0]
    D[1, 100] = 7
    vals, cols = top_k(D, 100)
    assert cols[0, :5].tolist() == [4, 3, 2, 1, 0] and (cols[0, 5:] == -1).all()
    assert cols[1, 0] == 100 and vals[1, 0] == 7 and (cols[1, 1:] == -1).all() and (cols[2] == -1).all()


def test_recall_at_counts_the_true_neighbour_in_the_first_r():
    I = np.array([[4, 1, 2], [0, 3, 9], [7, 8, 5]])
    assert recall_at(I, np.array([4, 3, 6]), ranks=(1, 2, 3)) == {1: 1 / 3, 2: 2 / 3, 3: 2 / 3}
    with pytest.raises(ValueError, match="larger k"):
        recall_at(I, np.array([4, 3, 6]), ranks=(10,))


def test_kmeans_reaches_the_inertia_of_scikit_learn():
    from sklearn.cluster import KMeans

    X = synthetic_vectors(3000, d=8, n_clusters=20, seed=1)
    C = kmeans(X, 32, seed=0, n_iter=25)
    ours = ((X - C[np.argmin(((X[:, None] - C[None]) ** 2).sum(-1), axis=1)]) ** 2).sum()
    theirs = KMeans(32, init="random", n_init=1, max_iter=25, tol=0, random_state=0).fit(X).inertia_
    assert ours <= 1.03 * theirs, (ours, theirs)
    np.testing.assert_array_equal(C, kmeans(X, 32, seed=0, n_iter=25))      # seeded
    with pytest.raises(ValueError, match="at least k=64"):
        kmeans(X[:50], 64)


# --------------------------------------------------------------------------- exact and k-d tree

@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_exact_search_equals_brute_force(data, metric):
    X_db, X_q, _ = data
    D, I = ExactIndex(metric, chunk=37).add(X_db).search(X_q, 10)           # several query blocks
    if metric == "l2":
        D_ref, I_ref = brute_force(X_db, X_q, 10)
    else:
        s = X_q.astype(np.float64) @ X_db.T.astype(np.float64)
        I_ref = np.argsort(-s, axis=1, kind="stable")[:, :10]
        D_ref = np.take_along_axis(s, I_ref, axis=1)
    np.testing.assert_array_equal(I, I_ref)
    np.testing.assert_allclose(D, D_ref, rtol=1e-4, atol=1e-4)


def test_kdtree_structure():
    X = synthetic_vectors(1000, d=5, seed=2)
    t = build_kdtree(X, leaf_size=10)
    assert sorted(t["perm"]) == list(range(1000))
    inner = np.flatnonzero(t["left"] >= 0)
    assert (t["end"][t["left"] < 0] - t["start"][t["left"] < 0]).max() <= 10
    for n in inner:
        l, r, d, c = t["left"][n], t["right"][n], t["dim"][n], t["cut"][n]
        assert t["start"][l] == t["start"][n] and t["end"][l] == t["start"][r] and t["end"][r] == t["end"][n]
        assert (X[t["perm"][t["start"][l]:t["end"][l]], d] <= c).all()
        assert (X[t["perm"][t["start"][r]:t["end"][r]], d] >= c).all()
    for n in range(len(t["start"])):                                          # boxes hold their points
        pts = X[t["perm"][t["start"][n]:t["end"][n]]]
        assert (pts >= t["lo"][n]).all() and (pts <= t["hi"][n]).all()


def test_kdtree_without_budget_is_exact_and_agrees_with_sklearn():
    from sklearn.neighbors import KDTree

    X = synthetic_vectors(3200, d=6, seed=3)
    X_db, X_q = X[:3000], X[3000:]
    dist, ids = KDTree(X_db, leaf_size=10).query(X_q, k=8)
    for n_trees in (1, 3):
        D, I = KDTreeIndex(leaf_size=10, n_trees=n_trees, seed=1).add(X_db).search(X_q, 8)
        np.testing.assert_array_equal(I, ids)
        np.testing.assert_allclose(D, dist ** 2, rtol=1e-4, atol=1e-5)


def test_kdtree_budget_is_respected_and_approximate(data):
    X_db, X_q, _ = data
    index = KDTreeIndex(leaf_size=16, max_leaves=2).add(X_db)
    D, I = index.search(X_q, 10)
    assert index.leaves_visited == 2 * len(X_q)                 # a leaf holds >= k = 10 points: the budget binds
    exact = true_neighbours(X_db, X_q, 1)[:, 0]
    r = recall_at(I, exact, (1,))[1]
    assert 0.2 < r < 1.0, r                                     # approximate, but not useless
    assert (np.diff(D, axis=1) >= 0).all() and (I >= 0).all()


# --------------------------------------------------------------------------- LSH

@pytest.mark.parametrize("n_bytes", [1, 3, 8, 12])
def test_hamming_distances_equal_a_bitwise_reference(n_bytes):
    rng = np.random.default_rng(n_bytes)
    A = rng.integers(0, 256, (20, n_bytes), dtype=np.uint8)
    B = rng.integers(0, 256, (70, n_bytes), dtype=np.uint8)
    bits_a, bits_b = np.unpackbits(A, axis=1), np.unpackbits(B, axis=1)
    ref = np.array([[sum(int(x != y) for x, y in zip(a, b)) for b in bits_b] for a in bits_a])
    np.testing.assert_array_equal(hamming_distances(A, B), ref)
    np.testing.assert_array_equal(hamming_distances_lut(A, B), ref)


def test_lsh_codes_are_the_signs_of_the_projections(data):
    X_db, _, _ = data
    P = random_hyperplanes(16, 20, seed=4)
    np.testing.assert_allclose(P @ P.T, np.eye(16), atol=1e-5)             # n_bits > D: a tight frame
    m = X_db.mean(axis=0)
    codes = lsh_codes(X_db[:50], P, m)
    assert codes.shape == (50, 3) and codes.dtype == np.uint8
    bits = np.unpackbits(codes, axis=1)[:, :20]
    np.testing.assert_array_equal(bits, ((X_db[:50] - m) @ P > 0).astype(np.uint8))
    assert not np.unpackbits(codes, axis=1)[:, 20:].any()                    # padding bits stay 0
    P8 = random_hyperplanes(16, 8, seed=4)
    np.testing.assert_allclose(P8.T @ P8, np.eye(8), atol=1e-5)             # orthonormal when n_bits <= D


def test_lsh_ranks_by_hamming_distance(data):
    X_db, X_q, _ = data
    index = LSHIndex(n_bits=24, n_tables=2, seed=0).train(X_db).add(X_db)
    D, I = index.search(X_q, 20)
    qc, dbc = index.encode(X_q), index.codes
    H = hamming_distances(qc[0], dbc[0]) + hamming_distances(qc[1], dbc[1])  # summed over the tables
    np.testing.assert_array_equal(D, np.take_along_axis(H, I, axis=1))
    np.testing.assert_array_equal(D[:, 0], H.min(axis=1))
    assert (np.diff(D, axis=1) >= 0).all()


def test_lsh_reranking_is_exact_on_its_candidates(data):
    X_db, X_q, _ = data
    full = LSHIndex(n_bits=16, n_tables=1, n_candidates=len(X_db)).train(X_db).add(X_db)
    D, I = full.search(X_q, 5)                                  # every vector a candidate: exact search
    D_ref, I_ref = brute_force(X_db, X_q, 5)
    np.testing.assert_array_equal(I, I_ref)
    np.testing.assert_allclose(D, D_ref, rtol=1e-4, atol=1e-4)
    one = LSHIndex(n_bits=32, n_tables=1, n_candidates=50).train(X_db).add(X_db)
    four = LSHIndex(n_bits=32, n_tables=4, n_candidates=50).train(X_db).add(X_db)
    exact = I_ref[:, 0]
    assert recall_at(four.search(X_q, 1)[1], exact, (1,))[1] > recall_at(one.search(X_q, 1)[1], exact, (1,))[1]


# --------------------------------------------------------------------------- PQ family

def test_adc_distance_equals_the_exact_distance_to_the_decoded_vector(data):
    X_db, X_q, X_tr = data
    books = train_codebooks(X_tr, M=4, nbits=6, seed=0)
    codes = pq_encode(X_db, books)
    assert codes.shape == (len(X_db), 4) and codes.dtype == np.uint8 and codes.max() < 64
    T = adc_tables(X_q, books)
    assert T.shape == (len(X_q), 4, 64) and T.dtype == np.float32
    decoded = pq_decode(codes, books)
    exact = ((X_q[:, None, :].astype(np.float64) - decoded[None]) ** 2).sum(-1)
    np.testing.assert_allclose(adc_distances(T, codes), exact, rtol=1e-4, atol=1e-4)
    # and the codes are the nearest centroids, block by block
    for m in range(4):
        block = X_db[:, 4 * m:4 * m + 4]
        near = np.argmin(((block[:, None] - books[m][None]) ** 2).sum(-1), axis=1)
        np.testing.assert_array_equal(codes[:, m], near)


def test_sdc_distance_is_the_distance_between_decoded_vectors(data):
    X_db, X_q, X_tr = data
    index = PQIndex(M=4, nbits=6, mode="sdc").train(X_tr).add(X_db)
    D, I = index.search(X_q, 5)
    q_hat = index.decode(index.encode(X_q))
    db_hat = index.decode(index.codes)
    ref = ((q_hat[:, None, :].astype(np.float64) - db_hat[I]) ** 2).sum(-1)
    np.testing.assert_allclose(D, ref, rtol=1e-4, atol=1e-4)
    S = sdc_tables(index.codebooks)
    np.testing.assert_allclose(S, S.transpose(0, 2, 1), atol=1e-5)
    assert np.allclose(np.diagonal(S, axis1=1, axis2=2), 0, atol=1e-5)


def test_pq_with_one_subquantizer_of_256_centroids_is_kmeans_vq(data):
    X_db, X_q, X_tr = data
    vq = VQIndex(256, seed=5).train(X_tr).add(X_db)
    pq = PQIndex(M=1, nbits=8, seed=5).train(X_tr).add(X_db)
    np.testing.assert_array_equal(pq.codebooks[0], vq.centroids)
    np.testing.assert_array_equal(vq.centroids, kmeans(X_tr, 256, seed=5))
    nearest = np.argmin(((X_db[:, None] - vq.centroids[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(vq.codes, nearest)
    np.testing.assert_array_equal(pq.codes[:, 0], nearest)
    (D1, I1), (D2, I2) = vq.search(X_q, 10), pq.search(X_q, 10)
    np.testing.assert_allclose(D1, D2, rtol=1e-4, atol=1e-4)
    for D, I in ((D1, I1), (D2, I2)):           # cells tie, so the ids are checked through their distances
        np.testing.assert_allclose(D, ((X_q[:, None] - vq.centroids[vq.codes[I]]) ** 2).sum(-1), rtol=1e-4, atol=1e-4)


def test_procrustes_recovers_a_rotation():
    rng = np.random.default_rng(8)
    A = rng.normal(size=(500, 12))
    R0 = np.linalg.qr(rng.normal(size=(12, 12)))[0]
    np.testing.assert_allclose(procrustes(A, A @ R0), R0, atol=1e-5)
    noisy = procrustes(A, A @ R0 + 0.1 * rng.normal(size=(500, 12)))
    np.testing.assert_allclose(noisy.T @ noisy, np.eye(12), atol=1e-5)     # still a rotation
    assert np.abs(noisy - R0).max() < 0.05


def test_opq_error_never_rises_from_one_iteration_to_the_next():
    X = synthetic_vectors(2000, d=16, n_clusters=10, seed=9) @ np.random.default_rng(9).normal(size=(16, 16))
    X = X.astype(np.float32)
    errors = []
    for n_iter in (0, 1, 2, 4):
        R, books = train_opq(X, M=4, nbits=5, n_iter=n_iter, init="identity", seed=0)
        Y = X @ R
        errors.append(((Y - pq_decode(pq_encode(Y, books), books)) ** 2).sum(1).mean())
    assert all(b <= a * (1 + 1e-5) for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.97 * errors[0], errors


@pytest.mark.parametrize("seed", [0, 1])
def test_opq_never_has_larger_quantization_error_than_pq(seed):
    rng = np.random.default_rng(seed)
    # correlated coordinates: mixing makes the PQ split cut through dependent dimensions
    X = synthetic_vectors(3000, d=16, n_clusters=10, seed=seed) @ rng.normal(size=(16, 16)).astype(np.float32)
    pq = PQIndex(M=4, nbits=5, seed=seed).train(X)
    # from the identity, OPQ starts at PQ and every alternation can only lower the error: guaranteed
    opq = OPQIndex(M=4, nbits=5, n_opq_iter=6, init="identity", seed=seed).train(X)
    np.testing.assert_allclose(opq.R.T @ opq.R, np.eye(16), atol=1e-4)      # a rotation
    e_pq, e_opq = pq.quantization_error(X), opq.quantization_error(X)
    assert e_opq <= e_pq * (1 + 1e-5), (e_opq, e_pq)
    assert e_opq < 0.95 * e_pq, (e_opq, e_pq)                                  # and here it helps
    # from faiss's random start (our default), no guarantee, but on these data it must win too
    e_default = OPQIndex(M=4, nbits=5, n_opq_iter=20, seed=seed).train(X).quantization_error(X)
    assert e_default < e_pq, (e_default, e_pq)


def assert_exhaustive(D, I, decoded, ids, X_q, k=10):
    """``(D, I)`` is an exhaustive search of the ``decoded`` vectors (row ``r`` has id ``ids[r]``):
    the ``k`` smallest distances, and each returned id at its reported distance. Vectors with
    the same code tie exactly, so ids are checked through their distances, not their order."""
    D_ref, _ = brute_force(decoded, X_q, k)
    np.testing.assert_allclose(D, D_ref, rtol=1e-4, atol=1e-3)
    row_of = np.empty(len(ids), np.int64)
    row_of[ids] = np.arange(len(ids))
    own = ((X_q[:, None, :].astype(np.float64) - decoded[row_of[I]]) ** 2).sum(-1)
    np.testing.assert_allclose(D, own, rtol=1e-4, atol=1e-3)


def _decoded_ivf(index):
    inv = index.invlists
    return inv.ids, index.coarse[inv.lists] + pq_decode(inv.codes, index.codebooks)


def test_ivf_visiting_every_list_equals_exhaustive_adc(data):
    X_db, X_q, X_tr = data
    index = IVFPQIndex(nlist=16, M=4, nbits=6, nprobe=16).train(X_tr).add(X_db)
    D, I = index.search(X_q, 10)
    ids, decoded = _decoded_ivf(index)
    assert_exhaustive(D, I, decoded, ids, X_q)          # ADC = exact distance to c_l + decoded residual
    # fewer lists: a subset of the candidates, so never a better k-th distance
    index.nprobe = 2
    D2, I2 = index.search(X_q, 10)
    assert (D2[:, -1] >= D[:, -1] - 1e-4).all()
    exact = true_neighbours(X_db, X_q)[:, 0]
    assert recall_at(I2, exact, (10,))[10] < recall_at(I, exact, (10,))[10]


def test_multi_index_cells_are_the_smallest_sums():
    rng = np.random.default_rng(6)
    d1, d2 = rng.random((7, 12)).astype(np.float32), rng.random((7, 12)).astype(np.float32)
    dist, cells = multi_index_cells(d1, d2, 10)
    sums = (d1[:, :, None] + d2[:, None, :]).reshape(7, 144)
    np.testing.assert_array_equal(cells, np.argsort(sums, axis=1, kind="stable")[:, :10])
    np.testing.assert_allclose(dist, np.sort(sums, axis=1)[:, :10], rtol=1e-6)


def test_multi_index_visiting_every_cell_equals_exhaustive_adc(data):
    X_db, X_q, X_tr = data
    index = MultiIndexPQIndex(nbits_coarse=3, M=4, nbits=6, nprobe=64).train(X_tr).add(X_db)
    D, I = index.search(X_q, 10)
    inv = index.invlists
    decoded = index._centroids(inv.lists) + pq_decode(inv.codes, index.codebooks)
    assert_exhaustive(D, I, decoded, inv.ids, X_q)


def test_lopq_visiting_every_list_equals_exhaustive_adc(data):
    X_db, X_q, X_tr = data
    index = LOPQIndex(nlist=4, M=4, nbits=5, nprobe=4, n_opq_iter=2, min_points=200).train(X_tr).add(X_db)
    assert index.local.all()
    D, I = index.search(X_q, 10)
    inv = index.invlists
    decoded = np.empty((len(inv.ids), 16), np.float32)
    for l in range(4):                                          # c_l + decoded residual, rotated back
        r = slice(inv.offsets[l], inv.offsets[l + 1])
        decoded[r] = index.coarse[l] + pq_decode(inv.codes[r], index.codebooks[l]) @ index.rotations[l].T
    assert_exhaustive(D, I, decoded, inv.ids, X_q)


# --------------------------------------------------------------------------- every class

def _make(name, seed):
    return {
        "exact": lambda: ExactIndex(),
        "kdtree": lambda: KDTreeIndex(leaf_size=16, n_trees=2, max_leaves=4, seed=seed),
        "lsh": lambda: LSHIndex(n_bits=32, n_tables=2, n_candidates=30, seed=seed),
        "vq": lambda: VQIndex(64, seed=seed),
        "pq": lambda: PQIndex(M=4, nbits=6, seed=seed),
        "opq": lambda: OPQIndex(M=4, nbits=6, n_opq_iter=2, init="random", seed=seed),
        "ivfpq": lambda: IVFPQIndex(nlist=8, M=4, nbits=6, nprobe=3, seed=seed),
        "imi": lambda: MultiIndexPQIndex(nbits_coarse=3, M=4, nbits=6, nprobe=8, seed=seed),
        "lopq": lambda: LOPQIndex(nlist=4, M=4, nbits=5, nprobe=2, n_opq_iter=1, seed=seed),
    }[name]()


ALL = ["exact", "kdtree", "lsh", "vq", "pq", "opq", "ivfpq", "imi", "lopq"]


@pytest.fixture(scope="module")
def built(data):
    X_db, X_q, X_tr = data
    return {name: _make(name, 0).train(X_tr).add(X_db) for name in ALL}


@pytest.mark.parametrize("name", ALL)
def test_shapes_dtypes_and_order(built, data, name):
    X_db, X_q, _ = data
    index = built[name]
    D, I = index.search(X_q[:30], 7)
    assert D.shape == I.shape == (30, 7) and D.dtype == np.float32 and I.dtype == np.int64
    assert ((I >= 0) & (I < len(X_db))).all()
    assert (np.diff(D, axis=1) >= 0).all()
    assert all(len(set(row)) == 7 for row in I)                 # no vector twice
    assert len(index) == len(X_db) and index.memory_per_vector > 0


@pytest.mark.parametrize("name", ALL[1:])
def test_same_seed_same_result_other_seed_other_result(built, data, name):
    X_db, X_q, X_tr = data
    again = _make(name, 0).train(X_tr).add(X_db)
    other = _make(name, 1).train(X_tr).add(X_db)
    D0, I0 = built[name].search(X_q, 10)
    D1, I1 = again.search(X_q, 10)
    np.testing.assert_array_equal(I0, I1)
    np.testing.assert_array_equal(D0, D1)
    assert not np.array_equal(other.search(X_q, 10)[1], I0)


def test_sweep_measures_each_value_and_restores_the_parameter(built, data):
    X_db, X_q, _ = data
    index = built["ivfpq"]
    points = sweep(index, "nprobe", [1, 8], X_q, true_neighbours(X_db, X_q)[:, 0], ranks=(1, 10))
    assert [p["nprobe"] for p in points] == [1, 8] and index.nprobe == 3
    assert set(points[0]) == {"nprobe", "recall@1", "recall@10", "seconds", "ms_per_query", "bytes_per_vector"}
    assert points[1]["recall@10"] > points[0]["recall@10"]                   # 8 of 8 lists against 1
    with pytest.raises(ValueError, match="no parameter 'nlists'"):
        sweep(index, "nlists", [1], X_q, np.zeros(len(X_q), int))


def test_memory_per_vector():
    X = synthetic_vectors(600, d=32, seed=7)
    assert ExactIndex().add(X).memory_per_vector == 128
    assert PQIndex(M=8, nbits=4).train(X).memory_per_vector == 4
    assert IVFPQIndex(nlist=4, M=8, nbits=8).train(X).memory_per_vector == 16   # code + int64 id
    assert LSHIndex(n_bits=64, n_tables=3).train(X).memory_per_vector == 24
    assert LSHIndex(n_bits=64, n_candidates=10).train(X).memory_per_vector == 8 + 128


# --------------------------------------------------------------------------- refusals

def test_bad_input_is_refused_with_a_message_naming_the_fix(data):
    X_db, X_q, X_tr = data
    with pytest.raises(ValueError, match=r"call index.train\(X_train\)"):
        PQIndex(M=4).search(X_q, 5)                                   # search before train
    with pytest.raises(ValueError, match=r"train\(X_train\) first"):
        PQIndex(M=4).add(X_db)                                        # add before train
    trained = PQIndex(M=4, nbits=4).train(X_tr)
    with pytest.raises(ValueError, match=r"call index.add\(X_db\)"):
        trained.search(X_q, 5)                                        # search before add
    with pytest.raises(ValueError, match=r"ExactIndex is empty"):
        ExactIndex().search(X_q, 5)
    trained.add(X_db)
    with pytest.raises(ValueError, match="D=8 columns but the index works in D=16"):
        trained.search(X_q[:, :8], 5)                                 # wrong D at search
    with pytest.raises(ValueError, match="D=8 columns"):
        trained.add(X_db[:, :8])                                      # wrong D at add
    with pytest.raises(ValueError, match=r"k=5000 is larger than the 4000 vectors.*k <= 4000"):
        trained.search(X_q, 5000)
    with pytest.raises(ValueError, match="positive integer"):
        trained.search(X_q, 0)
    with pytest.raises(ValueError, match=r"X_q\[None, :\]"):
        trained.search(X_q[0], 5)                                     # one vector, not a matrix
    bad = X_q.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        trained.search(bad, 5)
    with pytest.raises(ValueError, match="not divisible by M=5"):
        PQIndex(M=5).train(X_tr)
    with pytest.raises(ValueError, match="train before add"):
        trained.train(X_tr)
    with pytest.raises(ValueError, match="at least k=256 training vectors"):
        PQIndex(M=4, nbits=8).train(X_tr[:100])
    with pytest.raises(ValueError, match="mode must be"):
        PQIndex(mode="fast")
    with pytest.raises(ValueError, match="M must be even"):
        MultiIndexPQIndex(M=3)
