"""Inverted-file scoring against dense matrix scoring, same data, same run.

    .venv/bin/python benchmarks/bench_bow.py [--db 1000] [--queries 100]

For vocabularies of 1k, 10k and 100k words, both paths score the same
tf-idf vectors (checked equal); the time of scoring alone is compared (the
database is indexed and the queries weighted once, outside the timing, for
both paths). Word ids are drawn from a Zipf-like law, as visual words are.

Two ways to ask: one query at a time, as a search engine answers a user
(the dense path is then a vector-matrix product that must read the whole
``(K, N)`` matrix), and all queries in one product (the dense path becomes
a matrix-matrix product, BLAS's best case, which reuses each number it
reads). What decides the winner is density: the fraction of the vocabulary
present in an image (about descriptors per image / words). Posting lists
pay when rows are sparse; the table shows 500 and 1000 descriptors per
image to make the crossover visible.

Both paths run on one thread (scipy's sparse product has no other; BLAS is
held to one with threadpoolctl), so the ratio compares algorithms, not
core counts, and does not swing when other work shares the machine.
"""

import argparse

import numpy as np
from threadpoolctl import threadpool_limits

from coursekit.bow import InvertedFile, word_counts
from coursekit.timing import best_of


def zipf_words(rng, k, n):
    p = 1.0 / np.arange(1, k + 1) ** 0.8
    return rng.choice(k, size=n, p=p / p.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{args.db} database images, {args.queries} queries; times per query")
    print(f"{'':28s} {'one query at a time':^38s} {'all queries in one product':^38s}")
    print(f"{'descriptors':>11s} {'words':>7s} {'density':>8s} " + 2 * f"{'inverted':>10s} {'dense':>10s} {'dense/inv':>11s}     ")
    for per_image in (500, 1000):
        for k in (1_000, 10_000, 100_000):
            db = word_counts([zipf_words(rng, k, per_image) for _ in range(args.db)], k)
            q = word_counts([zipf_words(rng, k, per_image) for _ in range(args.queries)], k)
            inv = InvertedFile.build(db)
            q_vec = inv.query_vectors(q)                   # (Q, K) sparse, weighted once for both paths
            dense_db = inv.postings.toarray()              # (K, N) float32, built once like the index
            dense_q = q_vec.toarray()                      # (Q, K)
            rows = [q_vec[i] for i in range(q_vec.shape[0])]
            # one at a time: how a search engine answers; a vector-matrix product for the dense path
            t1_sparse, s1 = best_of(lambda: [inv.score(r) for r in rows], 3)
            t1_dense, d1 = best_of(lambda: [dense_q[i] @ dense_db for i in range(len(rows))], 3)
            # batched: the dense path becomes one matrix-matrix product, BLAS's best case
            tb_sparse, sb = best_of(lambda: inv.score(q_vec), 3)
            tb_dense, db_ = best_of(lambda: dense_q @ dense_db, 3)
            assert np.allclose(np.vstack(s1), np.vstack(d1), atol=1e-5) and np.allclose(sb, db_, atol=1e-5)
            density = db.nnz / (db.shape[0] * k)
            line = f"{per_image:>11d} {k:>7d} {density:>8.1%} "
            for t_s, t_d in ((t1_sparse, t1_dense), (tb_sparse, tb_dense)):
                n = len(rows)
                line += f"{t_s / n * 1e3:>7.3f} ms {t_d / n * 1e3:>7.3f} ms {t_d / t_s:>10.1f}x     "
            print(line)


if __name__ == "__main__":
    with threadpool_limits(1):
        main()
