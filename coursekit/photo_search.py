"""Search your own photos: the capstone's index file, built, extended and searched (notebook 10).

::

    python -m coursekit index build FOLDER [--method gem] [--whiten DATASET] [--out FILE] [--force]
    python -m coursekit index add INDEX [FOLDER] [--prune]
    python -m coursekit search INDEX IMAGE [--k 10] [--rerank aqe] [--html OUT]

An index is one ``.npz`` file (numpy's zip of arrays, read without pickle):

- ``vectors (N, D) float32``: one L2-normalised global vector per photo,
  whitened when the index was built with ``--whiten``;
- ``paths (N,) str``: each photo's absolute path; ``sizes (N,) int64`` and
  ``mtimes (N,) int64`` (nanoseconds): how the file looked when it was
  read, so that ``index add`` sees which photos are new, changed or gone;
- ``whiten_*``: the learned whitening, if any;
- ``meta``: a JSON string, ``{"format", "version", "method", "backbone",
  "weights", "size", "scales", "whiten", "root", "skipped", "coursekit"}``.

The ``meta`` names everything that decides a vector (the method, the
network and its weights file, the image size and scales, the whitening):
:func:`add_to_index` and :func:`search` compute the same description for
this installation and refuse to mix vectors made another way, naming what
changed. A photo that has gone from disk since it was indexed is reported,
never silently shown. Files are written atomically and an existing file is
never overwritten unless asked (``--force`` for an index; a search page only
replaces an earlier search page).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .cache import atomic_write, save_npz_atomic
from .cnn.backbones import load_backbone
from .images import ImageError, find_images, load_image
from .methods import PHOTO_METHODS  # the methods that embed a single photo with no training (the methods' table)
from .whitening import l2_normalize

__all__ = ["FORMAT", "VERSION", "PHOTO_METHODS", "PhotoIndex", "PhotoIndexError", "describe_method", "embed_images",
           "plan_update", "top_k", "build_index", "add_to_index", "load_index", "save_index", "search", "write_html"]

FORMAT = "coursekit-photo-index"
VERSION = 1

HTML_MARK = "<!-- written by coursekit search -->"


class PhotoIndexError(ValueError):
    """An index file that cannot be used as asked; the message names the problem and the fix."""


@dataclass
class PhotoIndex:
    """An index in memory: ``vectors (N, D) float32``, ``paths`` (N ``str``), ``sizes``, ``mtimes``
    ``(N,) int64``, ``meta`` (see the module's docstring) and the whitening ``(mean, components,
    damping)`` arrays or None."""

    vectors: np.ndarray
    paths: list[str]
    sizes: np.ndarray
    mtimes: np.ndarray
    meta: dict
    whitening: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)   # this run's unreadable files: (path, problem)

    def __len__(self) -> int:
        return len(self.paths)


def describe_method(method: str, net) -> dict:
    """What decides a vector of ``method`` computed with the loaded network ``net``
    (:func:`coursekit.cnn.backbones.load_backbone`): ``{"method", "backbone", "weights", "size", "scales"}``
    (``weights``: the weights file's name, size and time, as the feature cache keys it)."""
    from .cnn.extract import weights_key
    from .methods import CNN_SIZE, MULTI_SCALE

    if method not in PHOTO_METHODS:
        raise PhotoIndexError(f"method {method!r} cannot index single photos; use one of {', '.join(PHOTO_METHODS)} "
                              "(the others need a vocabulary or a dataset to learn from)")
    scales = [float(s) for s in MULTI_SCALE] if method == "gem_ms" else [1.0]
    return {"method": method, "backbone": net.name, "weights": weights_key(net),
            "size": CNN_SIZE if method != "fc" else 224, "scales": scales}


def embed_images(paths: list, described: dict, net, progress: bool = True
                 ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """The L2-normalised vectors of the readable images among ``paths`` (files, or ``(H, W, 3) uint8`` arrays
    already loaded): ``(V (n, D) float32, kept, skipped)`` with ``kept`` the indices into ``paths`` that were
    read and ``skipped`` the ``(path, problem)`` of the others. ``described``: :func:`describe_method`'s
    dictionary for the network ``net``."""
    from .cnn.extract import fc_descriptors, pooled_descriptors
    from .methods import CNN_SIZE

    kept, skipped, images = [], [], []
    for i, path in enumerate(tqdm(paths, desc="reading photos", disable=not progress)):
        try:
            images.append(path if isinstance(path, np.ndarray) else load_image(path, max_size=2 * CNN_SIZE))
            kept.append(i)
        except (ImageError, OSError) as err:
            skipped.append((str(path), getattr(err, "problem", None) or str(err)))
    if not images:
        return np.zeros((0, net.channels), np.float32), kept, skipped
    method = described["method"]
    if method == "fc":
        V = fc_descriptors(images, net, progress=progress, desc="fc codes")
    else:
        pooling = "gem" if method == "gem_ms" else method
        V = pooled_descriptors(images, net, described["size"], described["scales"], poolings=(pooling,),
                               progress=progress, desc=method)[pooling]
    return l2_normalize(V), kept, skipped


def plan_update(indexed: dict[str, tuple[int, int]], found: dict[str, tuple[int, int]]
                ) -> tuple[list[str], list[str], list[str]]:
    """What ``index add`` must do: ``(new, changed, missing)``, each a sorted list of paths.

    ``indexed`` and ``found`` map a path to its ``(size, mtime_ns)``: in the
    index, and on disk now. ``new``: found, not indexed; ``changed``: in
    both, with another size or time (the photo was edited: embed it again);
    ``missing``: indexed, no longer found.
    """
    new = sorted(p for p in found if p not in indexed)
    changed = sorted(p for p in found if p in indexed and tuple(found[p]) != tuple(indexed[p]))
    missing = sorted(p for p in indexed if p not in found)
    return new, changed, missing


def top_k(X: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``X (N, D)`` most similar to ``q (D,)`` by dot product: ``(ids (k,) int64, scores (k,)
    float32)``, best first (ties: the lower index first). ``k`` larger than ``N`` gives all ``N``."""
    X, q = np.asarray(X, np.float32), np.asarray(q, np.float32)
    if X.ndim != 2 or q.shape != (X.shape[1],):
        raise ValueError(f"X must be (N, D) and q (D,); got {X.shape} and {q.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    s = X @ q                                                # (N,) scores: one matrix product
    k = min(int(k), len(s))
    kth = -np.partition(-s, k - 1)[k - 1]                    # the k-th best score, in O(N)
    top = np.flatnonzero(s >= kth)                           # k rows, or more where the k-th score is tied
    top = top[np.lexsort((top, -s[top]))][:k]                # by score, then by index
    return top.astype(np.int64), s[top]


# --- the file --------------------------------------------------------------------------------------------------

def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def save_index(index: PhotoIndex, path: Path, overwrite: bool = False) -> None:
    """Write ``index`` to ``path`` atomically (a temporary file, then a rename). An existing file is replaced
    only with ``overwrite``, and only if it is an index itself (never a user's other file)."""
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise PhotoIndexError(f"{path} exists: use `index add {path}` to add photos to it, or --force to replace it")
        load_index(path)                                   # raises unless it is an index: never clobber a photo
    arrays = {"vectors": index.vectors.astype(np.float32), "paths": np.array(index.paths, dtype=str),
              "sizes": np.asarray(index.sizes, np.int64), "mtimes": np.asarray(index.mtimes, np.int64),
              "meta": np.array(json.dumps(index.meta))}
    if index.whitening is not None:
        arrays.update(zip(("whiten_mean", "whiten_components", "whiten_damping"), index.whitening))
    save_npz_atomic(path, arrays)


def load_index(path: Path) -> PhotoIndex:
    """Read an index file; a file that is not one, or of another format version, raises :class:`PhotoIndexError`."""
    path = Path(path)
    if not path.is_file():
        raise PhotoIndexError(f"{path}: no such index file; build one with `python -m coursekit index build FOLDER`")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays["meta"]))
    except Exception as err:                             # a zip that is not ours, a photo, a text file
        raise PhotoIndexError(f"{path} is not a coursekit photo index ({type(err).__name__}: {err})") from None
    if meta.get("format") != FORMAT:
        raise PhotoIndexError(f"{path} is not a coursekit photo index (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise PhotoIndexError(f"{path} is an index of format version {meta.get('version')}, this coursekit reads "
                          f"version {VERSION}: rebuild it with `index build --force`")
    _check_arrays(arrays, meta, path)
    whitening = tuple(arrays[k] for k in ("whiten_mean", "whiten_components", "whiten_damping")) \
        if "whiten_mean" in arrays else None
    return PhotoIndex(arrays["vectors"], [str(p) for p in arrays["paths"]], arrays["sizes"], arrays["mtimes"],
                      meta, whitening)


def _check_arrays(arrays: dict, meta: dict, path: Path) -> None:
    """Refuse an index file whose arrays do not fit together (a hand-edited or damaged file), naming what."""
    rebuild = (f"rebuild it with `python -m coursekit index build {meta.get('root', 'FOLDER')} --out {path} "
               f"--force`")
    absent = [k for k in ("vectors", "paths", "sizes", "mtimes") if k not in arrays]
    absent += [k for k in ("method", "backbone", "root") if k not in meta]
    if absent:
        raise PhotoIndexError(f"{path} is a damaged coursekit photo index: {', '.join(absent)} missing; {rebuild}")
    V = arrays["vectors"]
    n = {k: len(arrays[k]) if arrays[k].ndim == 1 else None for k in ("paths", "sizes", "mtimes")}
    if V.ndim != 2 or V.dtype.kind != "f" or any(v != V.shape[0] for v in n.values()):
        raise PhotoIndexError(f"{path} is a damaged coursekit photo index: vectors {V.shape} {V.dtype}, "
                              + ", ".join(f"{k} {v}" for k, v in n.items()) + f" do not fit together; {rebuild}")
    bad = np.flatnonzero(~np.isfinite(V).all(axis=1))
    if bad.size:
        raise PhotoIndexError(f"{path}: {bad.size} of its {V.shape[0]} vectors are not finite numbers (NaN or "
                              f"infinity; the first is {arrays['paths'][bad[0]]}), so no ranking would mean "
                              f"anything; {rebuild}")


def _check_same_method(meta: dict, described: dict, path=None) -> None:
    """Refuse to mix vectors: the index's method description must be this installation's. ``path``: the
    index file, for the message."""
    keys = ("method", "backbone", "weights", "size", "scales")
    diff = [f"{k}: index {meta.get(k)!r}, now {described[k]!r}" for k in keys
            if json.dumps(meta.get(k)) != json.dumps(described[k])]
    if diff:
        raise PhotoIndexError(f"{path or 'the index'} was built another way than this installation would embed a photo ("
                          + "; ".join(diff) + "): its vectors and new ones would not be comparable. Rebuild it: "
                          f"`python -m coursekit index build {meta.get('root')} --method {meta.get('method')} "
                          f"--out {path or 'INDEX'} --force`")


def _whiten(index_whitening, V: np.ndarray) -> np.ndarray:
    if index_whitening is None:
        return V
    from .whitening import ShrunkWhitening
    return ShrunkWhitening(*index_whitening).apply(V)


def _learn_whitening(method: str, dataset: str, progress: bool):
    """The shrunk whitening of ``method``'s vectors of ``dataset``'s training split (notebook 05)."""
    from .datasets import load_dataset
    from .methods import run_method
    from .whitening import fit_shrunk_whitening

    ds = load_dataset(dataset)
    if not ds.train:
        raise PhotoIndexError(f"--whiten learns on a training split and {dataset!r} has none; use embedded or coil100")
    W = fit_shrunk_whitening(run_method(method, ds, progress=progress, with_train=True).X_train)
    return W.mean.astype(np.float32), W.components.astype(np.float32), W.damping.astype(np.float32)


# --- the three commands ----------------------------------------------------------------------------------------

def build_index(folder, method: str = "gem", whiten: str | None = None, weights=None,
                progress: bool = True) -> PhotoIndex:
    """Embed every readable photo under ``folder`` (recursively): a new :class:`PhotoIndex` (unsaved).
    ``whiten``: a dataset name whose training split the whitening is learned on, or None."""
    folder = Path(folder).resolve()
    paths = find_images(folder)                                 # raises on a missing or empty folder
    net = load_backbone(weights=weights)
    described = describe_method(method, net)
    V, kept, skipped = embed_images(paths, described, net, progress)
    if not kept:
        raise PhotoIndexError(f"none of the {len(paths)} image files under {folder} could be read: "
                          + "; ".join(f"{p}: {why}" for p, why in skipped[:5]))
    whitening = _learn_whitening(method, whiten, progress) if whiten else None
    kept_paths = [paths[i] for i in kept]
    stats = np.array([_stat(p) for p in kept_paths], np.int64).reshape(-1, 2)
    meta = {"format": FORMAT, "version": VERSION, **described, "whiten": whiten, "root": str(folder),
            "coursekit": _version()}
    return PhotoIndex(_whiten(whitening, V), [str(p) for p in kept_paths], stats[:, 0], stats[:, 1], meta,
                      whitening, skipped)


def add_to_index(index: PhotoIndex, folder=None, prune: bool = False, weights=None, progress: bool = True,
                 path_for_messages=None) -> tuple[PhotoIndex, dict]:
    """``index`` with the new and changed photos under ``folder`` (default: the index's root) embedded, the
    others kept as they were; with ``prune``, photos gone from disk are removed. Returns the new index and
    ``{"new", "changed", "missing", "skipped"}`` (lists of paths; skipped: ``(path, problem)``)."""
    net = load_backbone(index.meta["backbone"], weights)
    described = describe_method(index.meta["method"], net)
    _check_same_method(index.meta, described, path_for_messages)
    folder = Path(folder or index.meta["root"]).resolve()
    found = {str(p): _stat(p) for p in find_images(folder)}
    indexed = {p: (int(s), int(t)) for p, s, t in zip(index.paths, index.sizes, index.mtimes)}
    under = {p: v for p, v in indexed.items() if Path(p).is_relative_to(folder)}   # another folder's stay
    new, changed, missing = plan_update(under, found)
    todo = new + changed
    V, kept, skipped = embed_images([Path(p) for p in todo], described, net, progress) if todo else \
        (np.zeros((0, index.vectors.shape[1]), np.float32), [], [])
    drop = set(changed) | (set(missing) if prune else set())
    keep = [i for i, p in enumerate(index.paths) if p not in drop]
    done = [todo[i] for i in kept]
    stats = np.array([found[p] for p in done], np.int64).reshape(-1, 2)
    out = PhotoIndex(np.concatenate([index.vectors[keep], _whiten(index.whitening, V)]),
                     [index.paths[i] for i in keep] + done,
                     np.concatenate([index.sizes[keep], stats[:, 0]]), np.concatenate([index.mtimes[keep], stats[:, 1]]),
                     {**index.meta, "coursekit": _version()}, index.whitening, skipped)
    return out, {"new": [p for p in new if p in done], "changed": [p for p in changed if p in done],
                 "missing": missing, "skipped": skipped}


def rerank_settings(index: PhotoIndex, how: str, given: dict | None = None) -> tuple[dict, str]:
    """The settings of re-ranking ``how`` on ``index``, and how they were chosen: those ``given`` (not ``None``)
    with the papers' for the rest, or, when none is given, chosen from the index's vectors alone
    (:func:`coursekit.rerank_choice.choose`: a photo index has no labels; cached by the vectors' digest)."""
    from .rerank_choice import choose, settings_of

    given = {name: value for name, value in (given or {}).items() if value is not None}
    if given:
        return settings_of(how, **given), "given, the papers' values for the rest"
    if len(index) < 3:
        return settings_of(how), f"the papers' ({len(index)} photos: too few to choose from)"
    return choose(how, index.vectors)


def search(index: PhotoIndex, image, k: int = 10, rerank: str | None = None, weights=None,
           path_for_messages=None, rerank_given: dict | None = None) -> list[dict]:
    """The ``k`` photos of ``index`` nearest to the photo ``image`` (a path, or an ``(H, W, 3) uint8`` array, e.g.
    a query cropped to its box): a list of ``{"rank", "path",
    "score", "missing"}``, best first. ``rerank``: one of :data:`coursekit.methods.RERANKINGS`, applied with the
    index's vectors as the database (notebook 09), with the settings :func:`rerank_settings` gives:
    ``rerank_given`` (the papers' for the others, :data:`coursekit.rerank_choice.PAPER`) or, without any,
    chosen from the index's vectors."""
    from .methods import RERANKINGS, Retrieval, reranked

    if len(index) == 0:
        raise PhotoIndexError(f"{path_for_messages or 'the index'} holds no photos (all were pruned): add some with "
                              f"`python -m coursekit index add {path_for_messages or 'INDEX'} FOLDER`")
    net = load_backbone(index.meta["backbone"], weights)
    described = describe_method(index.meta["method"], net)
    _check_same_method(index.meta, described, path_for_messages)
    V, kept, skipped = embed_images([image if isinstance(image, np.ndarray) else Path(image)], described, net,
                                    progress=False)
    if skipped:
        raise ImageError(f"{image}: {skipped[0][1]}")
    q = _whiten(index.whitening, V)
    if rerank:
        if rerank not in RERANKINGS:
            raise ValueError(f"unknown re-ranking {rerank!r}; known: {', '.join(RERANKINGS)}")
        settings, _ = rerank_settings(index, rerank, rerank_given)
        s = reranked(Retrieval(q @ index.vectors.T, index.vectors, q), rerank, **settings).sims[0]
        ids = np.lexsort((np.arange(len(s)), -s))[:k]
        scores = s[ids]
    else:
        ids, scores = top_k(index.vectors, q[0], k)
    return [{"rank": r + 1, "path": index.paths[i], "score": float(sc), "missing": not Path(index.paths[i]).exists()}
            for r, (i, sc) in enumerate(zip(ids, scores))]


def _thumbnail_uri(path, side: int = 200) -> str | None:
    """A JPEG data URI of the photo (a path or an array) at most ``side`` pixels wide and high."""
    try:
        if isinstance(path, np.ndarray):
            from .cnn.extract import resize_longer
            image = resize_longer(path, side) if max(path.shape[:2]) > side else path
        else:
            image = load_image(path, max_size=side)
    except (ImageError, OSError):
        return None
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def write_html(query, results: list[dict], out, title: str = "coursekit search") -> Path:
    """A self-contained HTML page (thumbnails embedded) of the query (a path or an array) and its results.
    ``out`` is replaced only if it is an earlier page written by this function."""
    out = Path(out)
    if out.exists() and HTML_MARK not in out.read_text(errors="replace")[:500]:
        raise FileExistsError(f"{out} exists and is not a page written by `coursekit search`: choose another --html")

    def figure(path, caption: str) -> str:
        uri = _thumbnail_uri(path)
        img = f'<img src="{uri}" alt="">' if uri else '<div class="gone">missing</div>'
        link = "" if isinstance(path, np.ndarray) else \
            f'<br><a href="{html.escape(Path(path).resolve().as_uri())}">{html.escape(_shown(Path(path).name))}</a>'
        return f'<figure>{img}<figcaption>{caption}{link}</figcaption></figure>'

    cells = "".join(figure(r["path"], f'{r["rank"]}. score {r["score"]:.3f}' + (" (missing)" if r["missing"] else ""))
                    for r in results)
    page = f"""<!DOCTYPE html>
{HTML_MARK}
<html><head><meta charset="utf-8"><title>{html.escape(_shown(title))}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} figure{{display:inline-block;margin:6px;width:210px;
vertical-align:top;font-size:12px}} img{{max-width:200px;max-height:200px}} .query img{{outline:4px solid #1f77b4}}
.gone{{width:200px;height:150px;background:#eee;color:#a00;text-align:center;line-height:150px}}</style></head>
<body><h1>{html.escape(_shown(title))}</h1><div class="query">{figure(query, "query")}</div><h2>Results</h2>{cells}</body></html>
"""
    with atomic_write(out) as tmp:  # the whole page or nothing: a failed write never leaves a page that blocks the next run
        tmp.write_text(page, encoding="utf-8")
    return out


def _shown(text: str) -> str:
    """``text`` printable as UTF-8: a file name's undecodable bytes (``surrogateescape``) become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _version() -> str:
    from . import __version__
    return __version__
