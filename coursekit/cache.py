"""The on-disk cache: expensive results keyed by everything that produced them.

A result is stored as ``cache_root()/KIND/HASH.npz`` with ``HASH.json``
beside it, where ``HASH`` is a digest of the *key*: a plain dict naming the
method, every parameter, the dataset and a fingerprint of its files. Change
any of them and the key changes, so a stale result is never reused; the
JSON file says in words what produced the arrays.

>>> arrays, seconds = cached_arrays("features", {"method": "color_hist", "bins": [8, 8, 8],
...                                              "images": files_fingerprint(paths)},
...                                 lambda: {"X": extract(paths)})
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .timing import timed

__all__ = ["CONTENT_DIGEST_MAX", "cache_root", "key_digest", "array_digest", "file_key", "files_fingerprint", "atomic_write",
           "save_npz_atomic", "cached_arrays"]

_SECONDS = "_compute_seconds"  # stored beside the arrays


def cache_root() -> Path:
    """``$COURSEKIT_CACHE`` when set, else ``~/.cache/coursekit``."""
    env = os.environ.get("COURSEKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "coursekit"


def key_digest(key: dict) -> str:
    """A short, stable hex digest of a JSON-able dict (key order does not matter)."""
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def array_digest(a: np.ndarray) -> str:
    """A short hex digest of an array's values (for keys that depend on a learned array, e.g. a vocabulary)."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:24]


#: Files up to this many bytes are keyed by a digest of their content (one read each: for small images
#: such as COIL-100's, hardly dearer than ``stat`` alone); larger ones by their inode record.
CONTENT_DIGEST_MAX = 64 * 1024

_digests: dict[tuple, str] = {}  # (path, size, mtime, inode, ctime) -> content digest, for this process


def file_key(path: str | os.PathLike) -> str:
    """What the cache trusts to tell whether a file changed, as a short string.

    A file of at most :data:`CONTENT_DIGEST_MAX` bytes: a SHA-256 of its bytes
    (a content change is always seen; a touch or a copy that keeps the bytes
    is not a change). A larger file: its size, modification time, inode and
    status-change time (``ctime``). Editing a file in place changes ``ctime``
    even when the tool puts size and modification time back; replacing it
    changes the inode; neither can be set by a user. Digests are remembered
    for the process, so a second fingerprint of the same files only stats them.
    """
    st = os.stat(path)
    record = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    if st.st_size > CONTENT_DIGEST_MAX:
        return "stat:" + ":".join(map(str, record))
    memo = (os.fspath(path), *record)
    if memo not in _digests:
        with open(path, "rb") as f:
            _digests[memo] = "sha256:" + hashlib.sha256(f.read()).hexdigest()[:32]
    return _digests[memo]


def files_fingerprint(paths: Sequence[Path]) -> str:
    """A digest of the file names, in order, and of each file's :func:`file_key`.

    It changes when a file is added, removed, renamed, replaced or edited
    (even with its size and modification time put back). Cheap: small files
    are read once per process, large ones only stat'ed.
    """
    h = hashlib.sha256()
    for p in paths:
        h.update(os.fsencode(p) + f"\0{file_key(p)}\n".encode())  # any file name, UTF-8 or not
    return h.hexdigest()[:24]


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Write ``path`` whole or not at all: ``with atomic_write(path) as tmp: ...`` writes a file (or a folder)
    at ``tmp``, a fresh name beside ``path`` (``.NAME.RANDOM.tmp``, not created yet), renamed over ``path``
    when the block ends. A reader never sees half of it; if the block raises, what it wrote at ``tmp`` is
    removed and ``path`` is left as it was. The folder is created if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` of ``arrays`` into ``path`` through :func:`atomic_write`: a reader never sees half a file,
    and an interrupted write leaves no debris."""
    with atomic_write(path) as tmp, open(tmp, "wb") as f:   # a file object: np.savez would add .npz to a name
        np.savez(f, **arrays)


def cached_arrays(
    kind: str,
    key: dict,
    compute: Callable[[], dict[str, np.ndarray]],
    *,
    root: Path | None = None,
    refresh: bool = False,
) -> tuple[dict[str, np.ndarray], float]:
    """Return ``compute()``'s arrays, computing them only when not cached.

    ``kind`` is a folder name (``"features"``, ``"sift"``...). ``key`` must
    name everything that changes the result. ``refresh=True`` recomputes and
    replaces the entry. A corrupt entry is recomputed with a warning.

    Returns the arrays and the seconds the cache saved: on a hit, what
    ``compute()`` took when it ran; 0.0 when it ran now. Adding it to a wall
    time gives the real cost of a step, cached or not.
    """
    folder = (root or cache_root()) / kind
    digest = key_digest(key)
    path = folder / f"{digest}.npz"
    if path.exists() and not refresh:
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            return arrays, float(arrays.pop(_SECONDS))
        except Exception as err:  # a half-written or damaged file
            warnings.warn(f"cache entry {path} is unreadable ({err}); recomputing it", stacklevel=2)
    seconds, arrays = timed(compute)
    if _SECONDS in arrays:
        raise ValueError(f"{_SECONDS!r} is a reserved array name in the cache")
    meta = {"key": key, "seconds": round(seconds, 3), "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{digest}.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
    save_npz_atomic(path, {**arrays, _SECONDS: np.float64(seconds)})
    return arrays, 0.0
