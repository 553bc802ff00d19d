"""Inverted-file scoring against dense matrix scoring, same data, same run.

    .venv/bin/python benchmarks/bench_bow.py [--db 1000] [--queries 100]

For vocabularies of 1k, 10k and 100k words, both paths score the same
tf-idf vectors (checked equal); the time of scoring alone is compared (the
database is indexed and the queries weighted once, outside the timing, for
both paths). Word ids are drawn from a Zipf-like law, as visual words are.

What decides the winner is density: the fraction of the vocabulary present in
an image (about descriptors per image / words). Dense BLAS is so fast that
posting lists only pay when rows are sparse; the table shows 500 and 1000
descriptors per image to make the crossover visible.
"""

import argparse
import time

import numpy as np

from coursekit.bow import InvertedFile, word_counts


def zipf_words(rng, k, n):
    p = 1.0 / np.arange(1, k + 1) ** 0.8
    return rng.choice(k, size=n, p=p / p.sum())


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{args.db} database images, {args.queries} queries")
    print(f"{'descriptors':>11s} {'words':>8s} {'density':>8s} {'inverted file':>14s} {'dense':>10s} {'dense / inverted':>17s}")
    for per_image in (500, 1000):
        for k in (1_000, 10_000, 100_000):
            db = word_counts([zipf_words(rng, k, per_image) for _ in range(args.db)], k)
            q = word_counts([zipf_words(rng, k, per_image) for _ in range(args.queries)], k)
            inv = InvertedFile.build(db)
            q_vec = inv.query_vectors(q)                   # (Q, K) sparse, weighted once for both paths
            dense_db = inv.postings.toarray()              # (K, N) float32, built once like the index
            dense_q = q_vec.toarray()                      # (Q, K)
            t_sparse, s_sparse = best_of(lambda: inv.score(q_vec))
            t_dense, s_dense = best_of(lambda: dense_q @ dense_db)
            assert np.allclose(s_sparse, s_dense, atol=1e-5)
            density = db.nnz / (db.shape[0] * k)
            print(f"{per_image:>11d} {k:>8d} {density:>8.1%} {t_sparse * 1e3:>11.1f} ms {t_dense * 1e3:>7.1f} ms "
                  f"{t_dense / t_sparse:>16.1f}x")

if __name__ == "__main__":
    main()
