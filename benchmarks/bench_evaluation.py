"""Vectorised mAP against the revisited-Oxford reference loop, same data, same run.

    .venv/bin/python benchmarks/bench_evaluation.py [--queries 5000] [--db 10000]

Prints both times, the ratio, and checks that both give the same mAP.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from oracles import random_benchmark, revisited_compute_map  # noqa: E402

from coursekit.evaluation import mean_average_precision, mean_precision_at_k  # noqa: E402
from coursekit.timing import timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--db", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    ranks, gnd, dicts = random_benchmark(args.queries, args.db, rng, max_pos=50, max_junk=20)
    print(f"{args.queries} queries x {args.db} database images, up to 50 positives and 20 junk each")

    start = time.perf_counter()
    ours = mean_average_precision(ranks, gnd, kind="trapezoid")
    ours_p10 = mean_precision_at_k(ranks, gnd, 10)
    t_ours = time.perf_counter() - start

    ranks_t = np.ascontiguousarray(ranks.T)  # the reference takes (n_db, n_queries)
    t_ref, (ref, _, ref_pr, _) = timed(lambda: revisited_compute_map(ranks_t, dicts, kappas=[10]))

    print(f"coursekit.evaluation (vectorised): {t_ours:7.2f} s   mAP {ours:.6f}  mP@10 {ours_p10:.6f}")
    print(f"revisited compute_map (reference): {t_ref:7.2f} s   mAP {ref:.6f}  mP@10 {ref_pr[0]:.6f}")
    print(f"speed-up: {t_ref / t_ours:.1f}x   agreement: {abs(ours - ref) < 1e-9 and abs(ours_p10 - ref_pr[0]) < 1e-9}")


if __name__ == "__main__":
    main()
