"""The grader on a class: a folder of submissions of one notebook, against plain execution, same run.

    .venv/bin/python benchmarks/bench_grade.py [--n 30] [--notebook tests/fixtures/notebooks/00_solution.ipynb]
                                               [--jobs 1 2]

The peer is what the grader used to cost: executing each notebook in a fresh kernel with nbclient
(:func:`coursekit.course.grading.execute_notebook`), its own check cells included, which is where the old
in-kernel grader spent its time. The grader today executes the notebook in a fenced kernel, copies the
functions out after every cell, and checks each exercise in a fresh sandboxed process. Printed: seconds
for the class and per submission, and the ratio to the peer (the issue's bound: 2x).
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coursekit.course import grading  # noqa: E402
from coursekit.timing import timed  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="submissions in the class (copies of --notebook)")
    parser.add_argument("--notebook", default=str(REPO / "tests" / "fixtures" / "notebooks" / "00_solution.ipynb"))
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="the grader's --jobs to time")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-grade-") as tmp:
        folder = Path(tmp) / "class"
        folder.mkdir()
        for i in range(args.n):
            shutil.copy(args.notebook, folder / f"student{i:03d}.ipynb")
        grading.grade_notebook(folder / "student000.ipynb", timeout=120)  # warm the caches and imports once

        start = time.perf_counter()
        for nb in sorted(folder.glob("*.ipynb")):
            error = grading.execute_notebook(nb, Path(tmp) / "executed" / nb.name, timeout=120)
            if error:
                print(f"the peer failed on {nb.name}: {error}", file=sys.stderr)
                return 1
        peer = time.perf_counter() - start
        print(f"{args.n} submissions of {Path(args.notebook).name}")
        print(f"{'how':<34} {'s':>8} {'s/submission':>13} {'ratio':>7}")
        print(f"{'execution alone (nbclient, peer)':<34} {peer:8.1f} {peer / args.n:13.2f} {1.0:7.2f}")
        for jobs in args.jobs:
            seconds, results = timed(lambda: grading.grade_paths([folder], timeout=120, jobs=jobs))
            full = sum(r.points == r.max_points > 0 for r in results)
            print(f"{f'grader, --jobs {jobs} ({full}/{args.n} full marks)':<34} {seconds:8.1f} "
                  f"{seconds / args.n:13.2f} {seconds / peer:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
