"""The main job (``make course``): run the course and write its report.

1. executes every notebook in ``solutions/`` in order, into ``OUT/``
   (a notebook whose source and whose package code are unchanged since its
   last run is not executed again);
2. runs every method of :mod:`coursekit.methods` on every dataset present
   (features come from the disk cache after the first run);
3. writes ``OUT/report.json`` and ``OUT/REPORT.md``: mAP per method per
   dataset, with the time each took on this machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

from . import __version__
from .datasets import DATASET_NAMES, DatasetError, load_dataset
from .methods import METHODS, evaluate_method

__all__ = ["run_course", "present_datasets", "write_report", "package_digest"]

REPO = Path(__file__).resolve().parents[1]


def package_digest() -> str:
    """A digest of coursekit's source: executed notebooks are redone when it changes."""
    h = hashlib.sha256()
    for path in sorted((REPO / "coursekit").rglob("*.py")):
        h.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def present_datasets() -> list[str]:
    """``embedded`` and every other dataset whose files are under the data root."""
    names = ["embedded"]
    for name in DATASET_NAMES:
        if name in ("embedded", "folder"):
            continue
        try:
            load_dataset(name)
        except DatasetError:
            continue
        names.append(name)
    return names


def _execute_notebooks(out: Path, timeout: int) -> list[dict]:
    """Execute ``solutions/*.ipynb`` in order into ``out``; skip unchanged ones."""
    from .grading import execute_notebook

    records = []
    solutions = sorted((REPO / "solutions").glob("[0-9][0-9]*.ipynb"))
    for src in solutions:
        dest = out / src.name
        stamp = out / f".{src.stem}.stamp"
        key = json.dumps({"notebook": hashlib.sha256(src.read_bytes()).hexdigest(),
                          "package": package_digest(),
                          "env": {k: os.environ.get(k) for k in ("COURSEKIT_DATASET", "COURSEKIT_DATA",
                                                                 "COURSEKIT_FAST")}})
        if dest.exists() and stamp.exists() and stamp.read_text() == key:
            print(f"[course] {src.name}: unchanged since its last run, kept", flush=True)
            records.append({"notebook": src.name, "status": "unchanged", "seconds": None})
            continue
        print(f"[course] executing {src.name} ...", flush=True)
        start = time.perf_counter()
        error = execute_notebook(src, dest, timeout=timeout)
        seconds = round(time.perf_counter() - start, 1)
        if error:
            print(f"[course] {src.name} FAILED after {seconds} s: {error}", flush=True)
            records.append({"notebook": src.name, "status": "failed", "error": error, "seconds": seconds})
            stamp.unlink(missing_ok=True)
        else:
            print(f"[course] {src.name}: done in {seconds} s", flush=True)
            stamp.write_text(key)
            records.append({"notebook": src.name, "status": "ok", "seconds": seconds})
    return records


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def write_report(out: Path, report: dict) -> None:
    """Write ``report.json`` and a readable ``REPORT.md`` into ``out``."""
    (out / "report.json").write_text(json.dumps(report, indent=1))
    lines = ["# Course report", "",
             f"Generated {report['generated']} by `python -m coursekit course` (coursekit {report['version']}) "
             f"on {report['machine']}.", "",
             "mAP is the mean average precision with junk images removed, computed with the trapezoid AP of "
             "the Oxford / revisited Oxford code; on datasets with the revisited protocol it is the Medium "
             "protocol, and E / M / H are the Easy, Medium and Hard mAPs. mP@10 follows the revisited code "
             "(precision at min(10, rank of the last positive)). N-S is UKBench's score out of 4. "
             "Time is the method's wall time on this machine, feature extraction included "
             "(for cached features, the time measured when they were computed).", ""]
    for name, info in report["datasets"].items():
        lines += [f"## {name}", "", f"{info['n_db']} database images, {info['n_queries']} queries.", ""]
        rows = [r for r in report["results"] if r["dataset"] == name]
        revisited = any("map_easy" in r for r in rows)
        ns = any("ns_score" in r for r in rows)
        head = ["method", "mAP"] + (["E", "M", "H"] if revisited else []) + ["mP@10"] + (["N-S"] if ns else [])
        head += ["time (s)"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            if "error" in r:
                lines.append(f"| {r['method']} | failed: {r['error']} |" + " |" * (len(head) - 2))
                continue
            cells = [r["method"], _fmt(r["map"])]
            if revisited:
                cells += [_fmt(r.get("map_easy")), _fmt(r.get("map_medium")), _fmt(r.get("map_hard"))]
            cells.append(_fmt(r["mp@10"]))
            if ns:
                cells.append(_fmt(r.get("ns_score")))
            cells.append(f"{r['seconds']:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if report["absent"]:
        lines += ["Datasets not present (fetch with `python data_scripts/get.py NAME`): "
                  + ", ".join(report["absent"]) + ".", ""]
    if report["notebooks"]:
        lines += ["## Notebooks", "", "| notebook | status | time (s) |", "|---|---|---|"]
        for nb in report["notebooks"]:
            seconds = "–" if nb["seconds"] is None else f"{nb['seconds']:.1f}"
            lines.append(f"| {nb['notebook']} | {nb['status']} | {seconds} |")
        lines.append("")
    (out / "REPORT.md").write_text("\n".join(lines))


def run_course(out: Path, datasets: list[str] | None = None, notebooks: bool = True, timeout: int = 1800) -> int:
    """Run the whole course into ``out``; returns an exit code (1 if anything failed)."""
    out.mkdir(parents=True, exist_ok=True)
    names = datasets or present_datasets()
    absent = [n for n in DATASET_NAMES if n not in names and n != "folder"] if not datasets else []
    nb_records = _execute_notebooks(out, timeout) if notebooks else []

    results, info = [], {}
    for name in names:
        ds = load_dataset(name)
        info[name] = {"n_db": ds.n_db, "n_queries": ds.n_queries, "root": str(ds.root)}
        for method in METHODS:
            print(f"[course] {method} on {name} ...", flush=True)
            try:
                results.append(evaluate_method(method, ds, progress=sys.stderr.isatty()))
            except Exception as err:  # one broken method must not hide the others' results
                results.append({"dataset": name, "method": method, "error": f"{type(err).__name__}: {err}"})
    report = {
        "generated": time.strftime("%Y-%m-%d %H:%M"),
        "version": __version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "datasets": info,
        "absent": absent,
        "results": results,
        "notebooks": nb_records,
    }
    write_report(out, report)
    print(f"[course] wrote {out / 'REPORT.md'} and {out / 'report.json'}")
    failed = [r for r in results if "error" in r] + [n for n in nb_records if n["status"] == "failed"]
    return 1 if failed else 0
