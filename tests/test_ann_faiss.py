"""Our indexes against faiss, the industry reference, on the same data: recall@10 within 0.02.

The synthetic comparison is fast (about a minute on 2 cores); the one on 100k real RootSIFT
descriptors of COIL-100 is marked ``real_data`` and ``slow`` (it extracts SIFT on a cold cache).
Timings are not asserted here (the machine may be shared); benchmarks/bench_ann.py prints them.
"""

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from coursekit.ann import synthetic_vectors, true_neighbours  # noqa: E402
from coursekit.ann.compare import compare  # noqa: E402

TOLERANCE = 0.02


@pytest.fixture(scope="module")
def synthetic():
    """32-D clustered vectors: 10,000 training, 20,000 database, 2,000 queries."""
    X = synthetic_vectors(32_000, d=32, n_clusters=100, seed=0)
    X_tr, X_db, X_q = X[:10_000], X[10_000:30_000], X[30_000:]
    return X_tr, X_db, X_q, true_neighbours(X_db, X_q, 1)[:, 0]


def mean_recall(config, data, seeds, **params):
    """recall@10 ours and faiss's, averaged over ``seeds``. Random starts (LSH's hyperplanes, OPQ's first
    rotation) differ from draw to draw as much as the tolerance: both sides get the same seeds."""
    X_tr, X_db, X_q, gt = data
    runs = [compare(config, X_tr, X_db, X_q, gt, repeat=1, seed=s, faiss_seed=s, **params) for s in seeds]
    return (np.mean([r["ours"]["recall@10"] for r in runs]), np.mean([r["faiss"]["recall@10"] for r in runs]))


SYNTHETIC_CONFIGS = [
    ("pq", {"M": 8}, [0]),
    ("opq", {"M": 8, "n_opq_iter": 20}, [0]),
    ("ivfpq", {"nlist": 64, "M": 8, "nprobe": 8}, [0]),
    ("imi", {"nbits_coarse": 5, "M": 8, "nprobe": 32}, [0]),
    ("lsh", {"n_bits": 64}, range(5)),
    ("lsh_rerank", {"n_bits": 32, "n_candidates": 200}, range(5)),
]


@pytest.mark.parametrize("config, params, seeds", SYNTHETIC_CONFIGS, ids=[c[0] for c in SYNTHETIC_CONFIGS])
def test_recall_at_10_matches_faiss_on_synthetic_vectors(synthetic, config, params, seeds):
    ours, theirs = mean_recall(config, synthetic, seeds, **params)
    assert 0.3 < theirs < 0.999, theirs                          # a configuration where recall can differ
    assert abs(ours - theirs) <= TOLERANCE, f"{config}: recall@10 ours {ours:.3f}, faiss {theirs:.3f}"


def test_exact_search_matches_faiss_exactly(synthetic):
    X_tr, X_db, X_q, gt = synthetic
    r = compare("exact", X_tr, X_db, X_q[:200], gt[:200], repeat=1)
    assert r["ours"]["recall@1"] == r["faiss"]["recall@1"] == 1.0


@pytest.fixture(scope="module")
def coil_rootsift(shared_datasets):
    """100,000 database and 20,000 training RootSIFT vectors from COIL-100's training objects, 4,000 queries from
    the other objects. Cold cache: SIFT of 3,568 + 3,600 small images, about 15 s on 2 cores; then cached."""
    from coursekit.datasets import load_dataset
    from coursekit.local import extract_sift, rootsift

    ds = load_dataset("coil100", root=shared_datasets / "coil100")
    train, _ = extract_sift(ds.train, progress=False)
    other, _ = extract_sift(ds.db, progress=False)
    rng = np.random.default_rng(0)
    A = train.desc[rng.permutation(len(train.desc))]
    prep = lambda X: rootsift(X.astype(np.float32))
    X_db, X_tr = prep(A[:100_000]), prep(A[100_000:120_000])
    X_q = prep(other.desc[rng.choice(len(other.desc), 4000, replace=False)])
    return X_tr, X_db, X_q, true_neighbours(X_db, X_q, 1)[:, 0]


REAL_CONFIGS = [
    ("pq", {"M": 16}, [0]),
    ("opq", {"M": 16, "n_opq_iter": 20}, [0]),
    ("ivfpq", {"nlist": 256, "M": 16, "nprobe": 8}, [0]),
    ("lsh", {"n_bits": 256}, range(3)),
]


@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.parametrize("config, params, seeds", REAL_CONFIGS, ids=[c[0] for c in REAL_CONFIGS])
def test_recall_at_10_matches_faiss_on_real_rootsift(coil_rootsift, config, params, seeds):
    ours, theirs = mean_recall(config, coil_rootsift, seeds, **params)
    assert 0.3 < theirs < 0.999, theirs
    assert abs(ours - theirs) <= TOLERANCE, f"{config}: recall@10 ours {ours:.3f}, faiss {theirs:.3f}"
