"""The main job (``make course``): run the course and write its report.

1. executes every notebook in ``solutions/`` in order, into ``OUT/``
   (:func:`coursekit.course.notebooks.execute_notebooks`: a notebook whose
   source and whose package code are unchanged since its last run is not
   executed again);
2. runs every method of :mod:`coursekit.methods` on every dataset present
   (features come from the disk cache after the first run);
3. measures nearest-neighbour search on every dataset (notebook 06): each
   index of :mod:`coursekit.ann` on 100,000 of its RootSIFT descriptors
   (:func:`descriptor_search`: recall against exact search, query time,
   memory), and whole-image search through PQ and IVF-PQ
   (:data:`INDEXED`: mAP through the index beside exact search's);
4. writes ``OUT/report.json`` and ``OUT/REPORT.md``: mAP per method per
   dataset, with the time each took on this machine, and the search tables.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..datasets import DATASET_NAMES, load_dataset, present_datasets
from ..methods import GLOBAL_METHODS, METHODS, RERANKINGS, WHITENED_METHODS, evaluate_method
from ..rerank_choice import PAPER
from ..timing import timed
from .notebooks import execute_notebooks

__all__ = ["run_course", "write_report", "report_runs", "descriptor_search", "cnn_throughput", "dataset_audit",
           "WHITENED", "INDEXED", "SEARCH_CONFIGS"]


WHITENED = WHITENED_METHODS    # the methods' table says which (coursekit.methods.table)


def report_runs(ds) -> list[tuple[str, dict]]:
    """What the report measures on ``ds``, in order: every method as it is, then (where the dataset has a training
    split to learn it on) each global method of :data:`WHITENED` whitened with every dimension kept, then every
    global method as it is re-ranked in each way of :data:`coursekit.methods.RERANKINGS`, with the settings
    chosen from the data and with the papers' (``rerank_given``). Without a training split, ``gem_finetuned``
    is the network fine-tuned on the embedded set's (a test across domains)."""
    runs = [(method, {} if ds.train or method != "gem_finetuned" else {"train_on": "embedded"}) for method in METHODS]
    if ds.train:
        runs += [(method, {"whiten": True}) for method in WHITENED]
    runs += [(method, {**kwargs, "rerank": how, **({"rerank_given": dict(PAPER[how])} if paper else {})})
             for method, kwargs in runs[:len(METHODS)] if method in GLOBAL_METHODS
             for how in RERANKINGS for paper in (False, True)]
    return runs


# the indexes of the descriptor search table: coursekit.ann.compare's configurations and a k-d tree forest
SEARCH_CONFIGS = ("exact", "kdtree", "lsh", "lsh_rerank", "pq", "opq", "ivfpq", "imi")
KDTREE = {"leaf_size": 32, "n_trees": 4, "max_leaves": 64}

# whole-image search through an index: (method, evaluate_method's keywords)
INDEXED = [("vlad", {"whiten": True, "dim": 128, "index": "exact"}),
           ("vlad", {"whiten": True, "dim": 128, "index": "pq", "M": 16}),
           ("vlad", {"whiten": True, "dim": 128, "index": "ivfpq", "M": 16, "nprobe": 8})]


def descriptor_search(ds, n_db: int = 100_000, n_queries: int = 1_000, n_train: int = 40_000, seed: int = 0,
                      progress: bool = False) -> dict:
    """Every index of :data:`SEARCH_CONFIGS` on RootSIFT descriptors of ``ds``.

    Database vectors: ``n_db`` descriptors sampled from the database images;
    queries: ``n_queries`` from the query images; training vectors:
    :func:`coursekit.bow.training_descriptors` (the training split, or the
    database images when there is none). Each index is built with the
    parameters of :data:`coursekit.ann.compare.CONFIGS` (the k-d tree with
    :data:`KDTREE`) and searched once, on one BLAS thread; recall@R is the
    fraction of queries whose exact nearest neighbour is among the first R.
    Returns ``{"n_db", "n_queries", "n_train", "train_split", "rows": [...]}``.
    """
    from threadpoolctl import threadpool_limits

    from ..ann import KDTreeIndex, evaluate_index, true_neighbours
    from ..ann.compare import CONFIGS, ours
    from ..bow import training_descriptors
    from ..local import rootsift
    from ..methods import sift_features

    rng = np.random.default_rng(seed)
    fdb, fq, _ = sift_features(ds, 500, progress)
    X_db = rootsift(fdb.desc.astype(np.float32))
    X_q = rootsift(fq.desc.astype(np.float32))
    X_db = X_db[np.sort(rng.choice(len(X_db), min(n_db, len(X_db)), replace=False))]
    X_q = X_q[np.sort(rng.choice(len(X_q), min(n_queries, len(X_q)), replace=False))]
    X_train, source = training_descriptors(ds, n_train, seed, progress)
    rows = []
    with threadpool_limits(1):
        gt = true_neighbours(X_db, X_q, 1)
        for config in SEARCH_CONFIGS:
            if config == "ivfpq" and len(X_train) < 39 * CONFIGS["ivfpq"]["nlist"]:
                rows.append({"index": config, "skipped": f"nlist={CONFIGS['ivfpq']['nlist']} needs "
                                                         f"{39 * CONFIGS['ivfpq']['nlist']:,} training vectors"})
                continue
            index = KDTreeIndex(**KDTREE, seed=seed) if config == "kdtree" else ours(config, seed=seed)
            build, _ = timed(lambda: index.train(X_train).add(X_db))
            params = KDTREE if config == "kdtree" else CONFIGS[config]
            rows.append({"index": config, "params": ", ".join(f"{k}={v}" for k, v in params.items()),
                         **evaluate_index(index, X_q, gt), "build_seconds": build})
    return {"n_db": len(X_db), "n_queries": len(X_q), "n_train": len(X_train), "train_split": source["split"],
            "rows": rows}


def _search_lines(name: str, search: dict, indexed: list[dict]) -> list[str]:
    """The two search tables of one dataset, as Markdown lines."""
    lines = []
    if search:
        lines += [f"### {name}: nearest-neighbour search on RootSIFT descriptors", "",
                  f"{search['n_db']:,} database descriptors, {search['n_queries']:,} query descriptors (from the "
                  f"query images), indexes trained on {search['n_train']:,} descriptors of the "
                  f"{'training split' if search['train_split'] == 'train' else 'database images'}. Recall@R: the "
                  "fraction of queries whose exact nearest neighbour is among the first R results. One thread.", "",
                  "| index | parameters | R@1 | R@10 | R@100 | ms / query | bytes / vector | build (s) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in search["rows"]:
            if "error" in r or "skipped" in r:
                why = f"failed: {r['error']}" if "error" in r else f"skipped: {r['skipped']}"
                lines.append(f"| {r['index']} | {why} | | | | | | |")
                continue
            lines.append(f"| {r['index']} | {r['params']} | {r['recall@1']:.3f} | {r['recall@10']:.3f} | "
                         f"{r['recall@100']:.3f} | {r['ms_per_query']:.3f} | {r['bytes_per_vector']:g} | "
                         f"{r['build_seconds']:.1f} |")
        lines.append("")
    if indexed:
        lines += [f"### {name}: image search through an index", "",
                  "VLAD PCA-whitened to 128-D (learned on the training split), searched through each index; mAP of "
                  "the index's ranking (images it does not return rank last) beside exact search's on the same "
                  "vectors; R@R: the fraction of queries whose exact nearest neighbour (other than the query's own "
                  "copy, where the query is a database image) is among the index's first R.", "", "| index | mAP | exact mAP | R@1 | R@10 | ms / query | bytes / vector |",
                  "|---|---|---|---|---|---|---|"]
        for r in indexed:
            if "error" in r:
                lines.append(f"| {r['index']} | failed: {r['error']} | | | | | |")
                continue
            lines.append(f"| {r['index']} | {_fmt(r['map'])} | {_fmt(r['exact_map'])} | {_fmt(r['recall@1'])} | "
                         f"{_fmt(r.get('recall@10'))} | {r['ms_per_query']:.3f} | {r['bytes_per_vector']:g} |")
        lines.append("")
    return lines


def views_shape(ds) -> dict:
    """How many views of an object the dataset holds, read from its labels for the report (the choice never
    reads them): a query's mean number of positives, the share of database images that are no query's
    positive (distractors), and, where there is a training split, its mean images per object."""
    gnd = [g.positives for g in ds.gnd]
    hit = np.zeros(ds.n_db, bool)
    for p in gnd:
        hit[p] = True
    out = {"positives_per_query": float(np.mean([len(p) for p in gnd])), "distractors": float(1 - hit.mean())}
    if ds.train_labels is not None:
        out["train_views"] = float(np.mean(np.unique(np.asarray(ds.train_labels), return_counts=True)[1]))
    return out


def _why_auto_loses(shape: dict | None, chosen: list[str]) -> str:
    """A paragraph on why settings chosen from the data can lower the test queries' mAP, with the dataset's
    numbers (``shape``: :func:`views_shape`)."""
    if not shape:
        return ""
    here = (f"here a query has {shape['positives_per_query']:.1f} positives on average and "
            f"{shape['distractors']:.0%} of the database images are views of no query's object")
    if any("training split" in c for c in chosen) and "train_views" in shape:
        return ("Why: auto keeps what raised mAP on the training task (the chosen lines give its mAP there beside "
                f"the first ranking's), a different task from the test's: each training object has "
                f"{shape['train_views']:.1f} images and every database image of the task is a view of one of its "
                f"queries' objects; {here}. A setting that helps where every neighbour is somebody's view can "
                "pull in distractors where many are no one's.")
    return (f"Why: auto reads the number of views from the database's k-reciprocal neighbours; {here}, and a "
            "wrong count expands with, or diffuses into, other objects.")


def _rerank_lines(name: str, rows: list[dict], shape: dict | None = None) -> list[str]:
    """The re-ranking tables of one dataset: a row per global method, its mAP as it is and re-ranked each way
    with the papers' settings and with the settings chosen from the data (auto); then what auto chose."""
    if not rows:
        return []
    hows = [h for h in RERANKINGS if any(r["rerank"] == h for r in rows)]
    lines = [f"### {name}: re-ranking (notebook 09)", "",
             "mAP of each global method as it is (the first ranking) and re-ranked with its own vectors: average "
             "query expansion (aqe), weighted by similarity to a power (alpha_qe), each after the same "
             "augmentation of the database (_dba), and diffusion on the database's mutual kNN graph (Iscen et al. "
             "2017, gamma 3). *paper*: the papers' settings (the top 5; exponent 3; a 50-NN graph, 10 query "
             "neighbours, alpha 0.99); *auto*: settings chosen from the data without the test queries "
             "(`coursekit.rerank_choice`: on the training split where there is one, else from the database's "
             "k-reciprocal neighbours), listed in the second table. The last column is the slowest re-ranking's "
             "own time, in seconds.", "",
             "| method | as is | " + " | ".join(f"{h} paper | {h} auto" for h in hows) + " | re-ranking (s) |",
             "|---|" + "---|" * (2 * len(hows) + 2)]
    methods = list(dict.fromkeys(r["method"].split("+", 1)[0] for r in rows if "+" in r["method"]))
    chosen_lines, losses = [], []
    for method in methods:
        mine = {(r["rerank"], r.get("rerank_paper", False)): r for r in rows
                if r["method"].split("+", 1)[0] == method}
        first = next((r.get("first_map") for r in mine.values() if "first_map" in r), None)
        cells = [method, _fmt(first)]
        for h in hows:
            for paper in (True, False):
                r = mine.get((h, paper))
                cells.append(_fmt(r["map"]) if r and "map" in r else ("failed" if r else "–"))
                if r and not paper and "map" in r and first is not None and r["map"] < first:
                    losses.append(f"{method} {h} ({_fmt(first)} -> {_fmt(r['map'])})")
        times = [r["rerank_seconds"] for r in mine.values() if "rerank_seconds" in r]
        cells.append(f"{max(times):.2f}" if times else "–")
        lines.append("| " + " | ".join(cells) + " |")
        auto = [f"{h}: {mine[h, False]['rerank_settings']}" for h in hows if "rerank_settings" in mine.get((h, False), {})]
        if auto:
            chosen_lines.append(f"- {method}: " + "; ".join(auto))
    lines += ["", "What auto chose, and from what:", ""] + chosen_lines
    if losses:
        lines += ["", "Auto below the first ranking: " + ", ".join(losses) + ". "
                  + _why_auto_loses(shape, chosen_lines)]
    errors: dict[str, list[str]] = {}
    for r in rows:
        if "error" in r:
            errors.setdefault(r["error"], []).append(r["method"])
    failed = [f"{', '.join(names)}: {error}" for error, names in errors.items()]
    return lines + ([""] + [f"Failed: {'; '.join(failed)}."] if failed else []) + [""]


def cnn_throughput(ds, n: int = 24, size: int = 480) -> list[dict]:
    """Images per second of CNN extraction on the first ``n`` database images of ``ds``: the default backbone,
    coursekit's path at batch sizes 1 and 4 against a plain loop (:func:`coursekit.cnn.extract.measure_throughput`)."""
    from ..cnn.backbones import load_backbone
    from ..cnn.extract import measure_throughput
    from ..images import load_image

    return measure_throughput([load_image(p) for p in ds.db[:n]], load_backbone(), size, (1, 4))


def dataset_audit(ds, k: int = 10) -> dict | None:
    """What a benchmark's nearest neighbours are made of, for a build that records each image's background source
    (the embedded set; ``None`` for other datasets).

    Positives per query (``positives``, ``easy``, ``hard``: means over the queries) and, from off-the-shelf GeM's
    database vectors (the cached ones that ``gem`` ranks with), of each database image's ``k`` nearest database
    neighbours the share with its background source and with its object, beside chance, and the mutual ``k``-NN
    graph's purity (:func:`coursekit.datasets.embedded.audit.audit`). An artefact of how a synthetic set was made
    shows here: the neighbours follow the background, not the object.
    """
    from ..datasets.embedded.audit import audit, background_sources
    from ..methods.cnn import gem

    sources = background_sources(ds.root)
    if sources is None or len(sources) != ds.n_db:
        return None
    easy = [len(g.easy) for g in ds.gnd]
    hard = [len(getattr(g, "hard", ())) for g in ds.gnd]
    row = {"positives": float(np.mean(easy) + np.mean(hard)), "easy": float(np.mean(easy)),
           "hard": float(np.mean(hard))}
    return {**row, **audit(gem(ds, progress=False).X_db, ds.db_labels, sources, k)}


def _audit_lines(a: dict) -> list[str]:
    if "error" in a:
        return ["### The dataset", "", f"The audit failed: {a['error']}", ""]
    return ["### The dataset", "",
            f"{a['positives']:.1f} positives per query ({a['easy']:.1f} easy, {a['hard']:.1f} hard). Of off-the-shelf "
            f"GeM's {a['k']} nearest database neighbours of a database image, {100 * a['background']:.1f}% share its "
            f"background source (chance {100 * a['background_chance']:.1f}%) and {100 * a['object']:.1f}% show its "
            f"object (chance {100 * a['object_chance']:.1f}%). Of the mutual {a['k']}-NN graph's {a['edges']} edges "
            f"that touch an object's image, {100 * a['purity']:.1f}% join two views of the same object; "
            f"{100 * a['isolated']:.1f}% of the objects' images have no such edge.", ""]


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
        if report.get("audit", {}).get(name):
            lines += _audit_lines(report["audit"][name])
        rows = [r for r in report["results"] if r["dataset"] == name and not r.get("rerank")]
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
        lines += _rerank_lines(name, [r for r in report["results"] if r["dataset"] == name and r.get("rerank")],
                               info.get("views"))
        rows = report.get("throughput", {}).get(name)
        if rows:
            lines += [f"CNN extraction (EfficientNet-Lite0, longer side 480 px, the first {min(24, info['n_db'])} "
                      "database images, torch's threads on this machine): "
                      + "; ".join(f"{r['path']}, batch {r['batch_size']}: {r['images_per_s']:.1f} images/s "
                                  f"({r['ratio']:.2f}x the plain loop)" if "error" not in r else f"failed: {r['error']}"
                                  for r in rows) + ".", ""]
    searched = [n for n in report["datasets"] if report.get("search", {}).get(n) or report.get("indexed", {}).get(n)]
    if searched:
        lines += ["## Searching many vectors fast", ""]
        for name in searched:
            lines += _search_lines(name, report["search"].get(name), report["indexed"].get(name))
    if report["absent"]:
        lines += ["Datasets not present (fetch with `python data_scripts/get.py NAME`): "
                  + ", ".join(report["absent"]) + ".", ""]
    if report["notebooks"]:
        lines += ["## Notebooks", "", "The last column lists the numbers such as 0.483 that a notebook's prose quotes "
                  "and none of its outputs printed in this run: numbers quoted from another dataset (this report's), "
                  "or prose gone stale since the numbers moved.", "",
                  "| notebook | status | time (s) | quoted, not printed |", "|---|---|---|---|"]
        for nb in report["notebooks"]:
            seconds = "–" if nb["seconds"] is None else f"{nb['seconds']:.1f}"
            lines.append(f"| {nb['notebook']} | {nb['status']} | {seconds} | {', '.join(nb.get('unprinted', []))} |")
        lines.append("")
    (out / "REPORT.md").write_text("\n".join(lines))


def run_course(out: Path, datasets: list[str] | None = None, notebooks: bool = True, timeout: int = 1800) -> int:
    """Run the whole course into ``out``; returns an exit code (1 if anything failed)."""
    out.mkdir(parents=True, exist_ok=True)
    names = datasets or present_datasets()
    absent = ([n for n in DATASET_NAMES if n not in names and n != "folder" and not n.startswith("embedded")]
              if not datasets else [])
    nb_records = execute_notebooks(out, timeout) if notebooks else []

    results, info, search, indexed, throughput, audits = [], {}, {}, {}, {}, {}
    for name in names:
        ds = load_dataset(name)
        info[name] = {"n_db": ds.n_db, "n_queries": ds.n_queries, "root": str(ds.root), "views": views_shape(ds)}
        try:
            audits[name] = dataset_audit(ds)
        except Exception as err:
            audits[name] = {"error": f"{type(err).__name__}: {err}"}
        for method, kwargs in report_runs(ds):
            label = (method + ("+whiten" if kwargs.get("whiten") else "")
                     + (f"+{kwargs['rerank']}" if kwargs.get("rerank") else "")
                     + ("(paper)" if kwargs.get("rerank_given") else ""))
            print(f"[course] {label} on {name} ...", flush=True)
            try:
                row = evaluate_method(method, ds, progress=sys.stderr.isatty(), **kwargs)
            except Exception as err:  # one broken method must not hide the others' results
                row = {"dataset": name, "method": label, "error": f"{type(err).__name__}: {err}"}
            if kwargs.get("rerank"):
                row["rerank"] = kwargs["rerank"]
                row["rerank_paper"] = bool(kwargs.get("rerank_given"))
                if row["rerank_paper"] and "error" not in row:
                    row["method"] += "(paper)"
            results.append(row)
        print(f"[course] nearest-neighbour search on {name} ...", flush=True)
        try:
            search[name] = descriptor_search(ds, progress=sys.stderr.isatty())
        except Exception as err:
            search[name] = {"n_db": 0, "n_queries": 0, "n_train": 0, "train_split": "-",
                            "rows": [{"index": "all", "error": f"{type(err).__name__}: {err}"}]}
        print(f"[course] CNN extraction throughput on {name} ...", flush=True)
        try:
            throughput[name] = cnn_throughput(ds)
        except Exception as err:
            throughput[name] = [{"path": "all", "error": f"{type(err).__name__}: {err}"}]
        indexed[name] = []
        if ds.train:  # whitening is learned on the training split
            for method, kwargs in INDEXED:
                try:
                    indexed[name].append(evaluate_method(method, ds, progress=False, **kwargs))
                except Exception as err:
                    indexed[name].append({"index": kwargs["index"], "error": f"{type(err).__name__}: {err}"})
    report = {
        "generated": time.strftime("%Y-%m-%d %H:%M"),
        "version": __version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "datasets": info,
        "absent": absent,
        "results": results,
        "search": search,
        "indexed": indexed,
        "throughput": throughput,
        "audit": audits,
        "notebooks": nb_records,
    }
    write_report(out, report)
    print(f"[course] wrote {out / 'REPORT.md'} and {out / 'report.json'}")
    failed = [r for r in results if "error" in r] + [n for n in nb_records if n["status"] == "failed"]
    failed += [r for rows in indexed.values() for r in rows if "error" in r]
    failed += [r for s in search.values() for r in s["rows"] if "error" in r]
    failed += [r for rows in throughput.values() for r in rows if "error" in r]
    failed += [a for a in audits.values() if a and "error" in a]
    return 1 if failed else 0
