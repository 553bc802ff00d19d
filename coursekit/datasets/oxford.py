"""Oxford Buildings and Paris, original and revisited ground truth."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..safe_pickle import UnsafePickleError, load_data_pickle
from .base import Dataset, DatasetError, GroundTruth, check_boxes, data_root, missing
from .files import image_files, require_dir

__all__ = ["load_oxford5k", "load_paris6k", "load_roxford5k", "load_rparis6k", "PARIS_CORRUPTED"]

# Paris images that the original release ships as broken files (HTML error
# pages, not JPEG). Standard practice, which we follow, is to leave them out of
# the database and to drop them from the ground-truth lists; the revisited
# Paris ground truth does not list them at all.
PARIS_CORRUPTED = frozenset({
    "paris_louvre_000136", "paris_louvre_000146", "paris_moulinrouge_000422",
    "paris_museedorsay_001059", "paris_notredame_000188", "paris_pantheon_000284",
    "paris_pantheon_000960", "paris_pantheon_000974", "paris_pompidou_000195",
    "paris_pompidou_000196", "paris_pompidou_000201", "paris_pompidou_000467",
    "paris_pompidou_000640", "paris_sacrecoeur_000299", "paris_sacrecoeur_000330",
    "paris_sacrecoeur_000353", "paris_triomphe_000662", "paris_triomphe_000833",
    "paris_triomphe_000863", "paris_triomphe_000867",
})

_GT_DIRS = ("gt", "lab", "groundtruth")


def _stem(name: str) -> str:
    name = name.strip()
    if name.startswith("oxc1_"):  # Oxford's query files name images with this prefix
        name = name[len("oxc1_"):]
    for suffix in (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _image_index(folder: Path, name: str, skip: frozenset[str] = frozenset()) -> dict[str, Path]:
    """``{file stem: path}`` for every image under ``folder`` (sub-folders too)."""
    index: dict[str, Path] = {}
    for path in image_files(folder):
        stem = path.stem
        if stem in skip:
            continue
        if stem in index:
            raise DatasetError(
                f"dataset '{name}': image {stem} is there twice: {index[stem]} and {path}."
            )
        index[stem] = path
    return index


def _gt_folder(root: Path, name: str) -> Path:
    for sub in _GT_DIRS:
        if any((root / sub).glob("*_query.txt")):
            return root / sub
    if any(root.glob("*_query.txt")):
        return root
    if not (root / "gt").is_dir():
        raise missing(root / "gt", name)
    raise DatasetError(
        f"dataset '{name}': no ground-truth files {{landmark}}_{{k}}_query.txt found in "
        f"{root / 'gt'} (nor in {root})."
    )


def _read_list(path: Path, name: str) -> list[str]:
    if not path.is_file():
        raise missing(path, name)
    return [_stem(line) for line in path.read_text().splitlines() if line.strip()]


def _load_original(root: Path | None, name: str, folder: str, skip: frozenset[str]) -> Dataset:
    root = Path(root).expanduser() if root is not None else data_root() / folder
    require_dir(root, name)
    jpg = require_dir(root / "jpg", name)
    index = _image_index(jpg, name, skip)
    if not index:
        raise DatasetError(f"dataset '{name}': no .jpg images found under {jpg}.")
    stems = sorted(index)
    row = {s: i for i, s in enumerate(stems)}
    gt = _gt_folder(root, name)

    def rows(names: list[str], what: Path) -> np.ndarray:
        absent = [n for n in names if n not in row and n not in skip]
        if absent:
            raise DatasetError(
                f"dataset '{name}': {jpg / (absent[0] + '.jpg')}, listed in {what}, is missing"
                + (f" ({len(absent) - 1} more images of that list too)" if len(absent) > 1 else "")
                + f". Fetch the dataset again with `python data_scripts/get.py {name}`."
            )
        return np.array(sorted({row[n] for n in names if n in row}), dtype=np.int64)

    queries, boxes, gnd = [], [], []
    for qfile in sorted(gt.glob("*_query.txt"), key=lambda p: p.name):
        fields = qfile.read_text().split()
        if len(fields) < 5:
            raise DatasetError(
                f"dataset '{name}': {qfile} should hold one line '<image> x1 y1 x2 y2', "
                f"not {' '.join(fields)!r}."
            )
        qname = _stem(fields[0])
        if qname not in row:
            raise DatasetError(
                f"dataset '{name}': the query image {jpg / (qname + '.jpg')} of {qfile.name} is missing. "
                f"Fetch the dataset again with `python data_scripts/get.py {name}`."
            )
        base = qfile.name[: -len("_query.txt")]
        lists = {k: gt / f"{base}_{k}.txt" for k in ("good", "ok", "junk")}
        good, ok, junk = (_read_list(lists[k], name) for k in ("good", "ok", "junk"))
        easy = np.union1d(rows(good, lists["good"]), rows(ok, lists["ok"]))
        queries.append(index[qname])
        boxes.append([float(v) for v in fields[1:5]])
        gnd.append(GroundTruth(easy=easy, junk=rows(junk, lists["junk"])))
    check_boxes(name, queries, np.asarray(boxes, dtype=np.float32),
                f"Correct its line in {gt / '*_query.txt'}, or fetch the dataset again with "
                f"`python data_scripts/get.py {name}`.")
    return Dataset(
        name=name,
        root=root,
        db=[index[s] for s in stems],
        queries=queries,
        gnd=gnd,
        bbx=np.asarray(boxes, dtype=np.float32),
        protocol="standard",
    )


def load_oxford5k(root: str | Path | None = None) -> Dataset:
    """Load Oxford Buildings (Oxford5k) with its original ground truth.

    Philbin, Chum, Isard, Sivic and Zisserman, "Object retrieval with large
    vocabularies and fast spatial matching", CVPR 2007. 5,063 Flickr photos
    of Oxford; 11 landmarks x 5 queries = 55 queries with a box.

    Layout under ``root`` (default ``data_root() / "oxford5k"``): images in
    ``jpg/`` (sub-folders allowed, indexed by file stem); ground truth in
    ``gt/`` (or ``lab/``, or ``root`` itself): ``{landmark}_{k}_query.txt``
    holds one line ``oxc1_<image> x1 y1 x2 y2`` (the ``oxc1_`` prefix is
    stripped); ``_good.txt``, ``_ok.txt``, ``_junk.txt`` list image names
    without extension.

    - database: every image, sorted by name (5,063);
    - queries: the 55 query images (also database images), sorted by their
      ground-truth file name, with ``bbx`` from the query files (x1 y1 x2 y2,
      in pixels of the query image);
    - positives (``easy``): good + ok; ``junk``: junk. Faithful to the
      official protocol: the query image is not added to the junk (it is one
      of its own "good" images in the official lists);
    - protocol ``"standard"``; no labels.
    """
    return _load_original(root, "oxford5k", "oxford5k", frozenset())


def load_paris6k(root: str | Path | None = None) -> Dataset:
    """Load Paris (Paris6k) with its original ground truth.

    Philbin, Chum, Isard, Sivic and Zisserman, "Lost in quantization:
    Improving particular object retrieval in large scale image databases",
    CVPR 2008. 6,412 Flickr photos of Paris in landmark sub-folders; 11
    landmarks x 5 queries = 55 queries with a box.

    Same layout and protocol as :func:`load_oxford5k` (under
    ``data_root() / "paris6k"``; query files name the image without a
    prefix). The 20 images of :data:`PARIS_CORRUPTED` (broken files in the
    original release) are left out of the database whether present or not,
    and dropped from the ground-truth lists, as is standard practice: the
    database then has 6,392 images.
    """
    return _load_original(root, "paris6k", "paris6k", PARIS_CORRUPTED)


def _load_revisited(root: Path | None, name: str) -> Dataset:
    root = Path(root).expanduser() if root is not None else data_root() / name
    require_dir(root, name)
    pkl = root / f"gnd_{name}.pkl"
    if not pkl.is_file():
        raise missing(pkl, name)
    try:
        cfg = load_data_pickle(pkl)  # never pickle.load: the file comes from the network
    except UnsafePickleError as err:
        raise DatasetError(f"dataset '{name}': {err}: `python data_scripts/get.py {name}`.") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise DatasetError(
            f"dataset '{name}': {pkl} cannot be read as a pickle ({type(err).__name__}: {err}); it may "
            f"be truncated or not the ground truth. Delete it and fetch it again with "
            f"`python data_scripts/get.py {name}`."
        ) from None
    if not isinstance(cfg, dict) or not {"imlist", "qimlist", "gnd"} <= set(cfg):
        raise DatasetError(
            f"dataset '{name}': {pkl} should hold a dict with keys 'imlist', 'qimlist' and "
            f"'gnd' (the revisitop format)."
        )
    imlist = [str(s) for s in cfg["imlist"]]
    qimlist = [str(s) for s in cfg["qimlist"]]
    entries = list(cfg["gnd"])
    if not all(isinstance(e, dict) for e in entries):
        raise DatasetError(
            f"dataset '{name}': {pkl} should hold one dict per query in 'gnd' (the revisitop format). "
            f"Delete it and fetch it again with `python data_scripts/get.py {name}`."
        )
    if len(entries) != len(qimlist):
        raise DatasetError(
            f"dataset '{name}': {pkl} has {len(qimlist)} queries but {len(entries)} 'gnd' entries."
        )
    jpg = require_dir(root / "jpg", name)
    index = _image_index(jpg, name)

    def paths(names: list[str]) -> list[Path]:
        absent = [n for n in names if n not in index]
        if absent:
            more = f" (and {len(absent) - 1} more of its images)" if len(absent) > 1 else ""
            raise missing(f"{jpg / (absent[0] + '.jpg')}{more}", name)
        return [index[n] for n in names]

    db, queries = paths(imlist), paths(qimlist)
    gnd, boxes = [], []
    for e in entries:
        gnd.append(GroundTruth(
            easy=np.asarray(e.get("easy", []), dtype=np.int64).reshape(-1),
            hard=np.asarray(e.get("hard", []), dtype=np.int64).reshape(-1),
            junk=np.asarray(e.get("junk", []), dtype=np.int64).reshape(-1),
        ))
        boxes.append(e.get("bbx"))
    bbx = None
    if all(b is not None for b in boxes):
        bbx = np.asarray([np.asarray(b, dtype=np.float32).reshape(4) for b in boxes], dtype=np.float32)
        check_boxes(name, queries, bbx, f"Correct its 'bbx' in {pkl}, or fetch it again with "
                                        f"`python data_scripts/get.py {name}`.")
    return Dataset(name=name, root=root, db=db, queries=queries, gnd=gnd, bbx=bbx, protocol="revisited")


_REVISITED_DOC = """Load revisited {city} ({name}), Easy / Medium / Hard.

    Radenovic, Iscen, Tolias, Avrithis and Chum, "Revisiting Oxford and Paris:
    Large-Scale Image Retrieval Benchmarking", CVPR 2018.

    Layout under ``root`` (default ``data_root() / "{name}"``): the
    ``gnd_{name}.pkl`` of the revisitop package (a pickle, read with
    :func:`coursekit.safe_pickle.load_data_pickle`: plain data and numpy
    arrays only, so a crafted file cannot run code), a dict with ``imlist`` (database image
    names), ``qimlist`` (70 query image names) and ``gnd`` (one dict per
    query: ``bbx`` x1 y1 x2 y2, ``easy``, ``hard``, ``junk`` as 0-based
    indices into ``imlist``); images in ``jpg/{{name}}.jpg`` (sub-folders
    allowed, indexed by file stem).

    - database: ``imlist`` in its order ({n_db:,} images; the queries are not
      in it);
    - queries: ``qimlist`` in its order, each cropped to its ``bbx``;
    - ground truth as given: ``easy``, ``hard`` and ``junk``; protocol
      ``"revisited"``: Easy counts easy as positive (hard ignored), Medium
      easy + hard, Hard only hard (easy ignored).
    """


def load_roxford5k(root: str | Path | None = None) -> Dataset:
    return _load_revisited(root, "roxford5k")


def load_rparis6k(root: str | Path | None = None) -> Dataset:
    return _load_revisited(root, "rparis6k")


load_roxford5k.__doc__ = _REVISITED_DOC.format(city="Oxford", name="roxford5k", n_db=4993)
load_rparis6k.__doc__ = _REVISITED_DOC.format(city="Paris", name="rparis6k", n_db=6322)
