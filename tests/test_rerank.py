"""Query expansion, database-side augmentation and diffusion (coursekit.rerank)."""

import numpy as np
import pytest
import scipy.sparse as sp

from coursekit import rerank
from coursekit.datasets import GroundTruth
from coursekit.evaluation import mean_average_precision, ranks_from_similarities


def unit(X):
    X = np.asarray(X, np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def random_unit(n, d, seed=0):
    return unit(np.random.default_rng(seed).normal(size=(n, d)))


def arcs(n_objects=12, per_object=40, d=32, arc=1.6, noise=0.03, seed=0):
    """Objects that are curves: object ``o``'s images lie along the great-circle arc
    ``cos(t) a_o + sin(t) b_o``, ``t`` in ``[0, arc]``. Each query is at ``t = 0`` and must find its whole arc;
    the far end of its arc is less similar to it (cos 1.6 < 0) than other objects' images are (about 0 +- 0.18),
    so the plain ranking fails and following the curve succeeds. Returns X_db, X_q, gnd."""
    rng = np.random.default_rng(seed)
    X_db, X_q, gnd = [], [], []
    for o in range(n_objects):
        a, b = np.linalg.qr(rng.normal(size=(d, 2)))[0].T
        t = np.sort(rng.uniform(0.05, arc, per_object))
        X_db.append(np.cos(t)[:, None] * a + np.sin(t)[:, None] * b + noise * rng.normal(size=(per_object, d)))
        X_q.append(a + noise * rng.normal(size=d))
        gnd.append(GroundTruth(np.arange(o * per_object, (o + 1) * per_object), np.zeros(0, np.int64),
                               np.zeros(0, np.int64)))
    return unit(np.vstack(X_db)), unit(np.vstack(X_q)), gnd


def mean_ap(scores, gnd):
    return mean_average_precision(ranks_from_similarities(scores), gnd)


# ------------------------------------------------------------------------------------------------ neighbours

def test_nearest_gives_the_exact_neighbours_best_first_in_any_block_size():
    X, Q = random_unit(200, 16, 1), random_unit(30, 16, 2)
    order = np.argsort(-(Q @ X.T), axis=1)[:, :7]
    for chunk in (None, 1, 7, 1000):
        sims, ids = rerank.nearest(Q, X, 7, chunk=chunk)
        assert np.array_equal(ids, order)
        assert np.allclose(sims, np.take_along_axis(Q @ X.T, order, axis=1), atol=1e-6)
    assert rerank.nearest(Q, X[:3], 10)[1].shape == (30, 3)          # k capped at N


def test_inputs_with_other_dimensions_or_nans_are_refused_by_name():
    with pytest.raises(ValueError, match="dimensions"):
        rerank.alpha_query_expansion(random_unit(3, 8), random_unit(10, 16))
    bad = random_unit(10, 8)
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rerank.database_augmentation(bad)
    with pytest.raises(ValueError, match="2-D"):
        rerank.nearest(np.ones(8), random_unit(10, 8), 2)


# ------------------------------------------------------------------------------------------ query expansion

def test_expansion_with_weight_zero_is_the_identity():
    X, Q = random_unit(50, 8, 3), random_unit(5, 8, 4)
    ids = np.zeros((5, 1), np.int64)
    assert np.allclose(rerank.expand(Q, X, ids, np.zeros((5, 1))), Q, atol=1e-6)
    # alpha-QE with one neighbour that is no more similar than orthogonal gives it weight 0: the query is unchanged
    q = np.zeros((1, 8), np.float32)
    q[0, 0] = 1
    db = np.zeros((4, 8), np.float32)
    db[:, 1] = 1
    db[:, 0] = [-0.5, -0.2, 0.0, -0.9]
    db = unit(db)
    assert np.allclose(rerank.alpha_query_expansion(q, db, k=1, alpha=3.0), q)
    assert np.allclose(rerank.alpha_query_expansion(Q, X, k=0), Q, atol=1e-6)


def test_query_expansion_follows_its_formula():
    X, Q = random_unit(60, 8, 5), random_unit(4, 8, 6)
    for alpha in (0.0, 3.0):
        got = rerank.alpha_query_expansion(Q, X, k=4, alpha=alpha)
        for q in range(4):
            s = X @ Q[q]
            top = np.argsort(-s)[:4]
            w = np.ones(4) if alpha == 0 else np.maximum(s[top], 0) ** alpha
            want = Q[q] + (w[:, None] * X[top]).sum(axis=0)
            assert np.allclose(got[q], want / np.linalg.norm(want), atol=1e-5)
    assert np.allclose(rerank.average_query_expansion(Q, X, k=4), rerank.alpha_query_expansion(Q, X, 4, 0.0))


def test_verified_expansion_adds_exactly_the_verified_images():
    X, Q = random_unit(30, 6, 13), random_unit(3, 6, 14)
    verified = np.zeros((3, 30), bool)
    verified[0, [4, 9]] = True
    verified[2, 29] = True
    got = rerank.verified_query_expansion(Q, X, verified)
    assert np.allclose(got[0], unit([Q[0] + X[4] + X[9]])[0], atol=1e-6)
    assert np.allclose(got[1], Q[1], atol=1e-6)                      # nothing verified: unchanged
    assert np.allclose(got[2], unit([Q[2] + X[29]])[0], atol=1e-6)
    with pytest.raises(ValueError, match="verified must be"):
        rerank.verified_query_expansion(Q, X, verified.T)


def test_database_augmentation_averages_each_vector_with_its_k_nearest_others():
    X = random_unit(40, 6, 7)
    X = np.vstack([X, X[:1]])                            # an exact duplicate of vector 0: it must count as another
    got = rerank.database_augmentation(X, k=3, alpha=3.0)
    for i in range(len(X)):
        s = X @ X[i]
        others = [j for j in np.argsort(-s, kind="stable") if j != i][:3]
        want = X[i] + sum(max(s[j], 0) ** 3 * X[j] for j in others)
        assert np.allclose(got[i], want / np.linalg.norm(want), atol=1e-5), i
    assert np.allclose(rerank.database_augmentation(X, k=0), X, atol=1e-6)


def test_query_expansion_pulls_in_the_rest_of_a_cluster():
    X_db, X_q, gnd = arcs(arc=1.4, seed=1)      # mAP 0.914 -> 0.966 when written
    before = mean_ap(X_q @ X_db.T, gnd)
    after = mean_ap(rerank.alpha_query_expansion(X_q, X_db, k=5) @ X_db.T, gnd)
    assert after > before + 0.02, (before, after)


# --------------------------------------------------------------------------------------------------- graph

def brute_force_mutual_graph(X, k, gamma):
    S = X @ X.T
    knn = [set(np.argsort(-S[i], kind="stable")[:k]) for i in range(len(X))]
    A = np.zeros_like(S)
    for i in range(len(X)):
        for j in range(len(X)):
            if i != j and j in knn[i] and i in knn[j]:
                A[i, j] = max(S[i, j], 0) ** gamma
    return A


def test_the_affinity_is_the_mutual_knn_graph():
    X = random_unit(80, 5, 8)
    A = rerank.knn_affinity(X, k=6, gamma=3)
    assert sp.issparse(A) and A.dtype == np.float32
    dense = A.toarray()
    assert np.allclose(dense, dense.T)
    assert (dense >= 0).all() and (np.diag(dense) == 0).all()
    assert np.allclose(dense, brute_force_mutual_graph(X, 6, 3), atol=1e-6)
    assert 0 < A.nnz < 80 * 5                            # mutual: fewer edges than the k-1 per vertex


def test_the_normalised_affinity_has_its_spectrum_in_minus_one_one_and_survives_isolated_vertices():
    X = random_unit(60, 4, 9)
    A = rerank.knn_affinity(X, k=5).toarray()
    A[3, :] = A[:, 3] = 0                                # a vertex with no edge
    S = rerank.normalized_affinity(sp.csr_matrix(A)).toarray()
    assert np.isfinite(S).all() and (S[3] == 0).all()
    eig = np.linalg.eigvalsh(S.astype(np.float64))
    assert eig.min() >= -1 - 1e-5 and eig.max() <= 1 + 1e-5
    assert eig.max() > 0.99                              # the top eigenvalue of a graph's S is 1
    d = A.sum(axis=1)
    i, j = np.argwhere(A > 0)[0]
    assert np.isclose(S[i, j], A[i, j] / np.sqrt(d[i] * d[j]), rtol=1e-5)


# -------------------------------------------------------------------------------------------------- solvers

@pytest.mark.parametrize("n", [5, 40, 300])
def test_conjugate_gradient_and_the_iteration_match_a_dense_solve(n):
    X = random_unit(n, 6, n)
    S = rerank.normalized_affinity(rerank.knn_affinity(X, k=min(10, n)))
    Y = np.random.default_rng(n).random((n, 3)).astype(np.float32)
    exact = rerank.dense_diffusion(S, Y, 0.9)
    assert np.allclose(exact, np.linalg.solve(np.eye(n) - 0.9 * S.toarray().astype(float), Y), atol=1e-4)
    cg = rerank.diffuse(S, Y, 0.9, "cg", tol=1e-7, maxiter=n + 50)
    assert np.allclose(cg, exact, rtol=1e-3, atol=1e-4)
    it = rerank.diffuse(S, Y, 0.9, "iterative", maxiter=300)
    assert np.allclose(it, exact, rtol=1e-3, atol=1e-4)
    one = rerank.diffuse(S, Y[:, 0], 0.9, "cg", tol=1e-7, maxiter=n + 50)          # a vector, not a matrix
    assert one.shape == (n,) and np.allclose(one, cg[:, 0], atol=1e-5)


def test_conjugate_gradient_solves_columns_independently_and_stops_at_its_tolerance():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(30, 30))
    M = M @ M.T + 30 * np.eye(30)                        # symmetric positive definite
    B = rng.normal(size=(30, 4)).astype(np.float32)
    B[:, 2] = 0                                          # a zero right-hand side: the answer 0, at once
    X = rerank.conjugate_gradient(lambda P: (M @ P).astype(np.float32), B, tol=1e-6, maxiter=100)
    assert np.allclose(X, np.linalg.solve(M, B), atol=1e-4) and (X[:, 2] == 0).all()
    calls = []
    rerank.conjugate_gradient(lambda P: calls.append(1) or (M @ P).astype(np.float32), B, tol=1e-6, maxiter=3)
    assert len(calls) == 3


def test_alpha_zero_leaves_the_query_vector_and_so_the_first_ranking():
    X_db, X_q, _ = arcs(n_objects=4, per_object=20, seed=2)
    S = rerank.normalized_affinity(rerank.knn_affinity(X_db, k=8))
    Y = rerank.query_vector(X_q, X_db, k=10)
    for solver in ("cg", "iterative", "dense"):
        assert np.allclose(rerank.diffuse(S, Y, 0.0, solver), Y, atol=1e-6)
    scores = rerank.diffusion(X_q, X_db, k=8, k_q=10, alpha=0.0, A=rerank.knn_affinity(X_db, k=8))
    plain = X_q @ X_db.T
    assert np.array_equal(ranks_from_similarities(scores), ranks_from_similarities(plain))


def test_bad_solver_settings_are_refused():
    S = rerank.normalized_affinity(rerank.knn_affinity(random_unit(10, 3), k=3))
    with pytest.raises(ValueError, match="alpha"):
        rerank.diffuse(S, np.ones((10, 1)), 1.0)
    with pytest.raises(ValueError, match="solver"):
        rerank.diffuse(S, np.ones((10, 1)), 0.5, "magic")
    with pytest.raises(ValueError, match="rows"):
        rerank.diffuse(S, np.ones((9, 1)), 0.5)


# ------------------------------------------------------------------------------------------------ diffusion

def test_query_vector_keeps_the_k_best_similarities_cubed():
    X_db, X_q = random_unit(50, 6, 10), random_unit(3, 6, 11)
    Y = rerank.query_vector(X_q, X_db, k=4, gamma=3)
    for q in range(3):
        s = X_db @ X_q[q]
        top = np.argsort(-s)[:4]
        want = np.zeros(50)
        want[top] = np.maximum(s[top], 0) ** 3
        assert np.allclose(Y[:, q], want, atol=1e-6)


def test_diffusion_follows_the_manifold_where_the_straight_line_fails():
    X_db, X_q, gnd = arcs(arc=2.0, seed=3)                 # mAP 0.673 plain, 0.727 alpha-QE, 0.978 diffused
    plain = mean_ap(X_q @ X_db.T, gnd)
    expanded = mean_ap(rerank.alpha_query_expansion(X_q, X_db) @ X_db.T, gnd)
    diffused = mean_ap(rerank.diffusion(X_q, X_db, k=10, k_q=5, A=rerank.knn_affinity(X_db, k=10)), gnd)
    assert plain < 0.8 and diffused > max(plain, expanded) + 0.15, (plain, expanded, diffused)


def test_diffusion_agrees_with_a_transcription_of_the_published_code():
    from oracles import iscen_diffusion

    X_db, X_q, gnd = arcs(n_objects=10, per_object=30, seed=4)
    ours = rerank.diffusion(X_q, X_db, k=10, k_q=5, A=rerank.knn_affinity(X_db, k=10))
    theirs = iscen_diffusion(X_db, X_q, k=10, kq=5)
    assert abs(mean_ap(ours, gnd) - mean_ap(theirs, gnd)) < 0.005
    reached = theirs != 0
    assert np.array_equal(ours > -1, reached)                                # the same images reached
    assert np.allclose(ours[reached], theirs[reached], rtol=1e-3, atol=1e-5)


def test_truncation_to_the_whole_database_is_plain_diffusion_and_a_short_list_stays_close():
    X_db, X_q, gnd = arcs(seed=5)
    A = rerank.knn_affinity(X_db, k=10)
    full = rerank.diffusion(X_q, X_db, k_q=5, A=A)
    assert np.allclose(rerank.diffusion(X_q, X_db, k_q=5, A=A, truncate=len(X_db) + 1), full)
    short = rerank.diffusion(X_q, X_db, k_q=5, A=A, truncate=200)
    assert short.shape == full.shape
    assert mean_ap(short, gnd) > mean_ap(X_q @ X_db.T, gnd)


def test_the_graph_is_cached_by_its_vectors(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path))
    X = random_unit(100, 8, 12)
    A = rerank.diffusion_graph(X, k=6)
    assert (A != rerank.knn_affinity(X, k=6)).nnz == 0
    assert len(list((tmp_path / "graphs").glob("*.npz"))) == 1
    assert (rerank.diffusion_graph(X, k=6) != A).nnz == 0                 # loaded
    rerank.diffusion_graph(X[:-1], k=6)                                   # other vectors: another entry
    rerank.diffusion_graph(X, k=7)
    assert len(list((tmp_path / "graphs").glob("*.npz"))) == 3


def test_on_real_descriptors_the_map_matches_the_published_algorithm():
    """The issue's reference check, on the embedded set's GeM vectors (cached by notebooks 07-09; about 40 s
    of CNN extraction when run alone): the same mAP, within 0.005, as the transcription of Iscen et al."""
    from oracles import iscen_diffusion

    from coursekit import methods
    from coursekit.datasets import load_dataset
    from coursekit.evaluation import evaluate

    ds = load_dataset("embedded")
    r = methods.gem(ds, progress=False)
    ours = evaluate(ranks_from_similarities(rerank.diffusion(r.X_q, r.X_db, A=rerank.knn_affinity(r.X_db))), ds)
    theirs = evaluate(ranks_from_similarities(iscen_diffusion(r.X_db.astype(np.float64),
                                                              r.X_q.astype(np.float64))), ds)
    assert abs(ours["map"] - theirs["map"]) <= 0.005
    assert ours["map"] != pytest.approx(evaluate(ranks_from_similarities(r.sims), ds)["map"], abs=0.01)


# ------------------------------------------------------------------------------------------ regional diffusion

def test_gmp_weights_solve_each_images_system():
    V = random_unit(23, 5, 15)
    starts = np.array([0, 4, 5, 13])                      # images of 4, 1, 8 and 10 regions
    got = rerank.gmp_weights(V, starts, lam=0.5)
    for a, b in zip(starts, list(starts[1:]) + [len(V)]):
        Vi = V[a:b].astype(np.float64)
        want = np.linalg.solve(Vi @ Vi.T + 0.5 * np.eye(b - a), np.ones(b - a))
        assert np.allclose(got[a:b], want, rtol=1e-4, atol=1e-5)
    # a region repeated in its image weighs less than a region unlike the others
    W = np.vstack([V[:1], V[:1], V[:1], V[1:2]])
    w = rerank.gmp_weights(W, np.array([0]))
    assert w[3] > w[0]


def test_regional_diffusion_with_one_region_per_image_is_global_diffusion():
    X_db, X_q, gnd = arcs(n_objects=6, per_object=25, seed=6)
    first = X_q @ X_db.T
    starts_db, starts_q = np.arange(len(X_db)), np.arange(len(X_q))
    regional = rerank.regional_diffusion(X_q, starts_q, X_db, starts_db, first, k=10, k_q=5)
    plain = rerank.diffusion(X_q, X_db, k=10, k_q=5, A=rerank.knn_affinity(X_db, k=10))
    reached = plain > -1
    assert np.array_equal(regional > -1, reached)
    assert np.allclose(regional[reached] * 2, plain[reached], rtol=1e-4, atol=1e-6)   # gmp weight 1 / (1 + 1)
    with pytest.raises(ValueError, match="first must be"):
        rerank.regional_diffusion(X_q, starts_q, X_db, starts_db, first.T, k=10, k_q=5)


def test_regional_diffusion_finds_an_object_that_is_one_region_among_clutter():
    rng = np.random.default_rng(7)
    objects, clutter = random_unit(5, 32, 16), random_unit(40, 32, 17)
    regions, starts, labels = [], [], []
    for i in range(60):                                    # each image: its object once, and 4 clutter regions
        starts.append(len(regions))
        labels.append(i % 5)
        regions.append(objects[i % 5] + 0.1 * rng.normal(size=32))
        regions += list(clutter[rng.choice(40, 4, replace=False)])
    V_db = unit(np.array(regions))
    V_q = unit(objects + 0.1 * rng.normal(size=(5, 32)))     # the queries: the object alone, one region each
    X_db = unit(np.add.reduceat(V_db, starts, axis=0))       # global vectors: clutter weighs four times more
    gnd = [GroundTruth(np.flatnonzero(np.array(labels) == o), np.zeros(0, np.int64), np.zeros(0, np.int64))
           for o in range(5)]
    first = V_q @ X_db.T
    regional = rerank.regional_diffusion(V_q, np.arange(5), V_db, np.array(starts), first, k=10, k_q=10)
    whole = rerank.diffusion(V_q, X_db, k=10, k_q=5, A=rerank.knn_affinity(X_db, 10))
    # when written: 0.838 as is, 0.34 diffused image by image (the clutter links the images), 1.0 by regions
    assert mean_ap(regional, gnd) > 0.95 and mean_ap(regional, gnd) > max(mean_ap(first, gnd), mean_ap(whole, gnd))
