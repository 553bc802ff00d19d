"""Diffusion: coursekit.rerank against a transcription of Iscen et al.'s published code, same features, same run.

    .venv/bin/python benchmarks/bench_rerank.py [--dataset embedded] [--method gem] [--n 100000] [--d 128]
                                                [--repeat 5]

1. On a dataset's global vectors (the embedded set's GeM by default; any dataset ``load_dataset`` finds, e.g.
   ``--dataset coil100`` with ``COURSEKIT_DATA``): the mAP of both implementations and their times (graph and
   queries together), with the ratio. The transcription (``tests/oracles.py``) loops as the MATLAB code does
   and solves one query at a time with SciPy's ``cg``.
2. At scale: ``--n`` synthetic unit vectors (clusters along random arcs, ``--d`` dimensions): the time to build
   the mutual 50-NN graph (exact search in blocks), then per query, full diffusion (a batch of 100 queries
   solved at once) against truncated diffusion (top 1,000 per query).
3. The choice of each re-ranking's settings (``coursekit.rerank_choice``, on the training split where the dataset
   has one, else from the database; not cached) against the re-ranking it tunes, run with the papers' settings
   on the test queries (diffusion's graph built, not read from the cache): the best of ``--repeat`` runs of
   each, and their ratio. Issue 25 asks for at most 3x on the embedded set.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from oracles import iscen_diffusion  # noqa: E402

from coursekit import methods, rerank  # noqa: E402
from coursekit.datasets import load_dataset  # noqa: E402
from coursekit.evaluation import evaluate, ranks_from_similarities  # noqa: E402
from coursekit.timing import timed  # noqa: E402


def synthetic(n: int, d: int, seed: int = 0, per_arc: int = 100) -> np.ndarray:
    """``(n, d) float32`` unit vectors along ``n / per_arc`` random great-circle arcs, with noise."""
    rng = np.random.default_rng(seed)
    arcs = n // per_arc
    a = rng.normal(size=(arcs, d))
    b = rng.normal(size=(arcs, d))
    t = rng.uniform(0, 1.5, size=(arcs, per_arc, 1))
    X = np.cos(t) * a[:, None] + np.sin(t) * b[:, None] + 0.05 * np.sqrt(d) * rng.normal(size=(arcs, per_arc, d))
    X = X.reshape(-1, d)[:n].astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="embedded")
    parser.add_argument("--method", default="gem")
    parser.add_argument("--n", type=int, default=100_000, help="synthetic database size (0: skip)")
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each timing in part 3 (the best is kept)")
    args = parser.parse_args()

    ds = load_dataset(args.dataset)
    r = methods.run_method(args.method, ds, progress=False)
    print(f"{args.method} on {ds.name}: {ds.n_db} database vectors, {ds.n_queries} queries, {r.X_db.shape[1]}-D")

    rerank.diffusion(r.X_q[:1], r.X_db, A=rerank.knn_affinity(r.X_db))        # a first call pays for imports
    t_ours, ours = timed(lambda: rerank.diffusion(r.X_q, r.X_db, A=rerank.knn_affinity(r.X_db)))
    t_theirs, theirs = timed(lambda: iscen_diffusion(r.X_db.astype(np.float64), r.X_q.astype(np.float64)))
    m_plain = evaluate(ranks_from_similarities(r.sims), ds)["map"]
    m_ours = evaluate(ranks_from_similarities(ours), ds)["map"]
    m_theirs = evaluate(ranks_from_similarities(theirs), ds)["map"]
    print(f"  as is:                                      mAP {m_plain:.4f}")
    print(f"  coursekit.rerank.diffusion:        {t_ours:7.2f} s   mAP {m_ours:.4f}")
    print(f"  transcription of Iscen et al.:     {t_theirs:7.2f} s   mAP {m_theirs:.4f}")
    print(f"  speed-up {t_theirs / t_ours:.1f}x   mAP difference {abs(m_ours - m_theirs):.4f} "
          f"(within 0.005: {abs(m_ours - m_theirs) <= 0.005})")

    if args.n:
        X = synthetic(args.n, args.d)
        Q = X[:: max(1, args.n // 100)][:100] + 0.02 * np.random.default_rng(1).normal(size=(100, args.d))
        Q = (Q / np.linalg.norm(Q, axis=1, keepdims=True)).astype(np.float32)
        print(f"{args.n:,} synthetic {args.d}-D vectors, 100 queries")
        t_graph, A = timed(lambda: rerank.knn_affinity(X, rerank.GRAPH_K))
        print(f"  mutual {rerank.GRAPH_K}-NN graph: {t_graph:.1f} s, {A.nnz // 2:,} edges")
        t_full, full = timed(lambda: rerank.diffusion(Q, X, A=A))
        t_short, short = timed(lambda: rerank.diffusion(Q, X, A=A, truncate=1000))
        same = np.mean([len(np.intersect1d(np.argsort(-full[q])[:100], np.argsort(-short[q])[:100])) / 100
                        for q in range(len(Q))])
        print(f"  full diffusion:      {1e3 * t_full / len(Q):8.1f} ms per query (100 solved together)")
        print(f"  truncated to 1,000:  {1e3 * t_short / len(Q):8.1f} ms per query (one at a time); "
              f"ratio {t_full / t_short:.1f}x; top-100 overlap with full {same:.2f}")

    choice_against_reranking(ds, args.method, args.repeat)


def choice_against_reranking(ds, method: str, repeat: int) -> None:
    """Part 3: the time of each re-ranking's choice of settings against the re-ranking's own, best of ``repeat``."""
    from coursekit import rerank_choice

    r = methods.run_method(method, ds, progress=False, with_train=bool(ds.train))
    on_training = r.X_train is not None and ds.train_labels is not None
    print(f"choosing the settings of each re-ranking of {method} on {ds.name} "
          f"({'on the training split, ' + str(len(r.X_train)) + ' images' if on_training else 'from the database'})"
          f" against the re-ranking itself (papers' settings), best of {repeat}:")

    def best(fn) -> float:
        return min(timed(fn)[0] for _ in range(repeat))

    total = [0.0, 0.0]
    for how in methods.RERANKINGS:
        paper = rerank_choice.PAPER[how]
        t_rerank = best(lambda: rerank.apply(r.X_q, r.X_db, how, cache_graph=False, **paper))
        t_choice = best(lambda: rerank_choice.choose_on_training(r.X_train, ds.train_labels, how) if on_training
                        else rerank_choice.choose_from_database(r.X_db, how))
        total[0] += t_choice
        total[1] += t_rerank
        print(f"  {how:13s} choice {1e3 * t_choice:7.1f} ms   re-ranking {1e3 * t_rerank:7.1f} ms   "
              f"ratio {t_choice / t_rerank:4.1f}x")
    print(f"  all five      choice {1e3 * total[0]:7.1f} ms   re-ranking {1e3 * total[1]:7.1f} ms   "
          f"ratio {total[0] / total[1]:4.1f}x")


if __name__ == "__main__":
    main()
