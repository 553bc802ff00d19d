"""Fetching and unpacking dataset archives, carefully.

Two functions do the work of ``data_scripts/get.py``:

* :func:`download` streams a URL to a file with a progress bar. It writes to
  ``FILE.part`` first and resumes that file with an HTTP ``Range`` request
  after an interruption, checks the size and the checksum when they are known,
  and only then renames the file into place. A file that is already there
  and verifies is not fetched again; one that does not verify is never
  overwritten.
* :func:`extract` unpacks a zip or tar archive (gz, bz2, xz). It checks every
  member before it writes anything (no absolute paths, no ``..``, no link
  leaving the target folder), unpacks into a temporary folder inside the
  target, never replaces a different file that is already there, and leaves
  a small record so that running it again does nothing.

Only the standard library and ``tqdm`` are used.
"""

from __future__ import annotations

import filecmp
import gzip
import hashlib
import http.client
import json
import lzma
import os
import posixpath
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

__all__ = [
    "CorruptArchiveError", "DownloadError", "ExtractError", "UnsafeArchiveError",
    "download", "expected_kind", "extract", "extracted", "file_kind", "link_extracted", "move_aside",
    "verify", "wrong_kind",
]

USER_AGENT = "coursekit-downloader/0.1 (+python urllib)"


class DownloadError(RuntimeError):
    """A file could not be downloaded, or what came back was not the right file.

    The message names the URL, says what went wrong and what to do.
    """


class ExtractError(RuntimeError):
    """An archive could not be unpacked (for instance a different file is in the way)."""


class UnsafeArchiveError(ExtractError):
    """An archive member would land outside the target folder; nothing was written."""


class CorruptArchiveError(ExtractError):
    """An archive cannot be read to its end (truncated, bad CRC, not an archive); nothing was written."""


# --------------------------------------------------------------------------- what a file is

# the kind of file a name promises, by its ending (lower case)
_KIND_BY_SUFFIX = ((".tar.gz", "gzip"), (".tgz", "gzip"), (".gz", "gzip"), (".tar.bz2", "bzip2"),
                   (".tbz2", "bzip2"), (".tar.xz", "xz"), (".txz", "xz"), (".tar", "tar"),
                   (".zip", "zip"), (".pkl", "pickle"))
_KIND_NAMES = {"gzip": "a gzip-compressed archive", "bzip2": "a bzip2-compressed archive",
               "xz": "an xz-compressed archive", "tar": "a tar archive", "zip": "a zip archive",
               "pickle": "a pickle", "html": "an HTML page", "text": "a text file",
               "unknown": "a file of unknown kind"}


def expected_kind(filename: str) -> str | None:
    """The kind of file ``filename`` promises by its ending (``"zip"``, ``"gzip"``, ``"pickle"``...), or None."""
    name = filename.lower()
    return next((kind for suffix, kind in _KIND_BY_SUFFIX if name.endswith(suffix)), None)


def file_kind(path: Path) -> str:
    """What ``path`` is by its first bytes: ``"zip"``, ``"gzip"``, ``"bzip2"``, ``"xz"``, ``"tar"``,
    ``"pickle"`` (protocol 2 and later), ``"html"``, ``"text"`` or ``"unknown"``. Reads 512 bytes."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    for magic, kind in ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz")):
        if head.startswith(magic):
            return kind
    if head[257:262] == b"ustar":
        return "tar"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<head" in text or b"<body" in text:
        return "html"
    try:
        head.decode("utf-8")
        return "text" if head else "unknown"
    except UnicodeDecodeError:
        return "unknown"


def wrong_kind(path: Path, filename: str | None = None) -> str | None:
    """``None`` when ``path`` is the kind of file its name (or ``filename``) promises, else one
    sentence saying what it is instead. A ``.pkl`` must moreover read as plain data with
    :func:`coursekit.safe_pickle.loads_data_pickle` (protocol 0 and 1 pickles have no magic bytes)."""
    path = Path(path)
    want = expected_kind(filename or path.name)
    if want is None:
        return None
    got = file_kind(path)
    if want == "pickle":
        from ..safe_pickle import loads_data_pickle
        if got == "html":
            return "it is an HTML page (an error or login page, served as if it were the file), not a pickle"
        try:
            loads_data_pickle(path.read_bytes())
        except Exception as err:  # refused (names code), truncated, or not a pickle at all
            return f"it is not a pickle of plain data ({type(err).__name__}: {err})"
        return None
    if got == want or (want == "gzip" and got == "tar"):  # some servers send .tgz already gunzipped
        return None
    hint = " (an error or login page, served as if it were the file)" if got == "html" else ""
    return f"it is {_KIND_NAMES[got]}{hint}, not {_KIND_NAMES[want]}"


def move_aside(path: Path, tag: str = "rejected") -> Path:
    """Rename ``path`` to ``path.TAG`` (``path.TAG-2``... if taken) in its folder and return the new
    name: a bad download is kept for reading, never deleted, and no longer in the way."""
    path = Path(path)
    aside, n = path.with_name(f"{path.name}.{tag}"), 1
    while aside.exists() or aside.is_symlink():
        n += 1
        aside = path.with_name(f"{path.name}.{tag}-{n}")
    os.replace(path, aside)
    return aside


# --------------------------------------------------------------------------- download


def _hash(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, *, size: int | None = None, sha256: str | None = None,
           md5: str | None = None) -> str | None:
    """Check a file against what is known of it.

    Returns ``None`` when it matches (or when nothing is known), else one
    sentence saying what differs (expected vs got).
    """
    got_size = path.stat().st_size
    if size is not None and got_size != size:
        return f"its size is {got_size:,} bytes, expected {size:,}"
    for algo, expected in (("sha256", sha256), ("md5", md5)):
        if expected:
            got = _hash(path, algo)
            if got.lower() != expected.lower():
                return f"checksum mismatch: expected {algo} {expected.lower()}, got {got}"
    return None


def _host_down(url: str, reason: object, dest: Path) -> DownloadError:
    return DownloadError(
        f"could not download {url}: {reason}. The host may be down; try again later, "
        f"or download it by hand to {dest}"
    )


def _total_from_content_range(value: str | None) -> int | None:
    """The full length in a ``Content-Range: bytes a-b/N`` (or ``bytes */N``) header."""
    m = re.match(r"\s*bytes\s+(?:\d+-\d+|\*)/(\d+)", value or "")
    return int(m.group(1)) if m else None


def _start_of_content_range(value: str | None) -> int | None:
    m = re.match(r"\s*bytes\s+(\d+)-\d+/", value or "")
    return int(m.group(1)) if m else None


def download(url: str, dest: Path | str, *, sha256: str | None = None, md5: str | None = None,
             size: int | None = None, progress: bool = True, timeout: float = 60,
             chunk: int = 1 << 20) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    The bytes go to ``dest`` + ``.part``; an existing ``.part`` is resumed with
    an HTTP ``Range`` request (a server that ignores it and answers 200 is
    handled by starting over; 416 means the part is complete when its size
    is right). A part is resumed only with the validator its first response
    carried (a strong ``ETag``, else ``Last-Modified``, kept in
    ``FILE.part.validator``) sent as ``If-Range``: a server whose file changed
    since then sends the whole new file, never a splice of two. A part
    without a validator starts over. When the transfer ends, the size (``size``, else the length the
    server announced) and the checksums that are given are checked, then the
    file is renamed to ``dest`` in one step.

    * ``dest`` exists and verifies: returned at once, nothing is fetched.
    * ``dest`` exists and does not verify: :class:`DownloadError`; the file is
      left as it is (it may be yours).
    * checksum mismatch: the ``.part`` is deleted and :class:`DownloadError`
      says expected vs got and that nothing was kept.
    * a file of the wrong kind for its name (an HTML error page served with
      status 200 as ``x.zip``; a ``.pkl`` that is not a plain-data pickle,
      see :func:`wrong_kind`): moved aside to ``FILE.part.rejected`` and
      :class:`DownloadError` names it; nothing is kept as ``dest``. An
      existing ``dest`` of the wrong kind is refused like one that does not
      verify.
    * host down, DNS failure, HTTP error, interruption: :class:`DownloadError`
      with the URL, the reason and a hint; a ``.part`` is kept for resuming.
    """
    dest = Path(dest)
    if dest.exists():
        problem = verify(dest, size=size, sha256=sha256, md5=md5) or wrong_kind(dest)
        if problem is None:
            return dest
        raise DownloadError(
            f"{dest} already exists but {problem}. It was left untouched; move or delete it "
            f"and run again to download {url}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    announced = _fetch(url, part, dest, size=size, progress=progress, timeout=timeout, chunk=chunk)

    expected_size = size if size is not None else announced
    got_size = part.stat().st_size
    if expected_size is not None and got_size != expected_size:
        if got_size < expected_size:
            raise DownloadError(
                f"download of {url} stopped at {got_size:,} of {expected_size:,} bytes. "
                f"The partial file {part} was kept; run again to resume"
            )
        _discard(part)
        raise DownloadError(
            f"{url} sent {got_size:,} bytes, expected {expected_size:,}; the file was deleted and "
            f"nothing was kept. The file on the server may have changed"
        )
    problem = verify(part, sha256=sha256, md5=md5)
    if problem is None and (problem := wrong_kind(part, dest.name)) is not None:
        _validator(part).unlink(missing_ok=True)
        aside = move_aside(part)
        raise DownloadError(
            f"{url} did not send the file: {problem}. What came back was moved aside to {aside} (read "
            f"it to see what the server said); nothing was kept as {dest}. Try again later, or "
            f"download the file by hand to {dest}"
        )
    if problem is not None:
        _discard(part)
        raise DownloadError(
            f"{url}: {problem}. The downloaded file was deleted, nothing was kept. The file on "
            f"the server may have changed or the transfer was corrupted; try again, or download "
            f"it by hand to {dest}"
        )
    os.replace(part, dest)
    _validator(part).unlink(missing_ok=True)
    return dest


def _fetch(url: str, part: Path, dest: Path, *, size: int | None, progress: bool,
           timeout: float, chunk: int) -> int | None:
    """Stream ``url`` into ``part``, resuming it; return the full length the server announced."""
    resumable = url.lower().startswith(("http://", "https://"))
    for _ in range(3):  # a resume the server cannot honour is retried from zero
        have = part.stat().st_size if part.exists() else 0
        validator = _read_validator(part)
        if have and (not resumable or validator is None or (size is not None and have > size)):
            _discard(part)  # ftp has no Range; without a validator the part may be of another file;
            have = 0        # a part larger than the file is not a prefix
        if size is not None and have == size:
            return size
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        if have:
            request.add_header("Range", f"bytes={have}-")
            request.add_header("If-Range", validator)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # nothing left to send from that offset
                total = _total_from_content_range(e.headers.get("Content-Range"))
                if have == (size if size is not None else total):
                    return have
                _discard(part)  # the part does not fit the file on the server: start over
                continue
            raise _host_down(url, f"HTTP {e.code} {e.reason}", dest) from None
        except urllib.error.URLError as e:
            raise _host_down(url, e.reason, dest) from None
        except (OSError, http.client.HTTPException) as e:
            raise _host_down(url, e, dest) from None

        with response:
            status = getattr(response, "status", None)
            content_range = response.headers.get("Content-Range")
            if status == 206 and not (have and _start_of_content_range(content_range) == have):
                _discard(part)  # a range we did not ask for: start over
                continue
            if status == 206:
                total, mode = _total_from_content_range(content_range), "ab"
            else:  # a fresh download, a changed file (If-Range) or a server ignoring Range: start over
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                have, mode = 0, "wb"
                _save_validator(part, response.headers if resumable else {})
            _stream(response, part, mode, have, size if size is not None else total,
                    url, dest.name, progress, chunk)
        return total
    raise DownloadError(f"{url}: the server did not answer the resume request sensibly; "
                        f"delete {part} and run again")


def _validator(part: Path) -> Path:
    return part.with_name(part.name + ".validator")


def _read_validator(part: Path) -> str | None:
    """The ``If-Range`` value saved when ``part`` was started, or None."""
    try:
        return json.loads(_validator(part).read_text("utf-8"))["if_range"] or None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_validator(part: Path, headers) -> None:
    """Keep what identifies the version of the file being written to ``part``: a strong ETag (weak
    ones may not be used in If-Range), else Last-Modified; without either, no resume is possible."""
    etag = headers.get("ETag")
    value = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")
    if value:
        _validator(part).write_text(json.dumps({"if_range": value}), "utf-8")
    else:
        _validator(part).unlink(missing_ok=True)


def _discard(part: Path) -> None:
    """Delete a partial download and its validator."""
    part.unlink(missing_ok=True)
    _validator(part).unlink(missing_ok=True)


def _stream(response, part: Path, mode: str, have: int, total: int | None, url: str,
            label: str, progress: bool, chunk: int) -> None:
    written = have
    bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
               desc=label, disable=not progress, leave=False)
    try:
        with bar, open(part, mode) as f:
            while block := response.read(chunk):
                f.write(block)
                written += len(block)
                bar.update(len(block))
    except (OSError, http.client.HTTPException) as e:
        raise DownloadError(
            f"download of {url} was interrupted after {written:,} bytes ({e!r}). The partial "
            f"file {part} was kept; run again to resume"
        ) from None


# --------------------------------------------------------------------------- extract


@dataclass
class _Member:
    """One archive entry, reduced to what extraction needs."""

    name: str                      # path inside the archive, '/'-separated
    kind: str                      # "file", "dir" or "link"
    target: str | None = None      # for links: the member it points to, archive-relative
    ref: object = None             # the TarInfo / ZipInfo


def _parts(name: str) -> list[str]:
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", name))


def _members(archive: Path) -> tuple[str, list[_Member]]:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            out = []
            for info in zf.infolist():
                mode = info.external_attr >> 16
                if info.is_dir():
                    out.append(_Member(info.filename, "dir", ref=info))
                elif stat.S_ISLNK(mode):
                    link = zf.read(info).decode("utf-8", "replace")
                    out.append(_Member(info.filename, "link", _link_target(info.filename, link),
                                       ref=info))
                else:
                    out.append(_Member(info.filename, "file", ref=info))
            return "zip", out
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tf:
            out = []
            for info in tf.getmembers():
                if info.isdir():
                    out.append(_Member(info.name, "dir", ref=info))
                elif info.isreg():
                    out.append(_Member(info.name, "file", ref=info))
                elif info.issym():
                    out.append(_Member(info.name, "link", _link_target(info.name, info.linkname),
                                       ref=info))
                elif info.islnk():  # hard link: linkname is archive-relative
                    target = None if _is_absolute(info.linkname) else \
                        posixpath.normpath(info.linkname.replace("\\", "/"))
                    out.append(_Member(info.name, "link", target, ref=info))
                else:
                    out.append(_Member(info.name, "special", ref=info))
            return "tar", out
    raise CorruptArchiveError(
        f"{archive} is neither a zip nor a tar archive ({wrong_kind(archive) or 'it may be incomplete'}). "
        f"Nothing was unpacked. Delete it (or move it away) and download it again")


def _link_target(name: str, link: str) -> str | None:
    """Where a symlink at ``name`` pointing to ``link`` lands, archive-relative; None if absolute."""
    if _is_absolute(link):
        return None
    return posixpath.normpath(posixpath.join(posixpath.dirname(name.replace("\\", "/")),
                                             link.replace("\\", "/")))


def _check(members: list[_Member], archive: Path) -> None:
    """Raise :class:`UnsafeArchiveError` naming every member that could escape."""
    bad = []
    for m in members:
        if _is_absolute(m.name):
            bad.append(f"{m.name!r} (absolute path)")
        elif ".." in _parts(m.name):
            bad.append(f"{m.name!r} ('..' in the path)")
        elif m.kind == "special":
            bad.append(f"{m.name!r} (device, fifo or other special file)")
        elif m.kind == "link" and (m.target is None or m.target == ".."
                                   or m.target.startswith("../")):
            bad.append(f"{m.name!r} (link pointing outside the folder)")
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise UnsafeArchiveError(
            f"refusing to unpack {archive}: {shown}. Nothing was written. The archive may be "
            f"corrupted or malicious; delete it and download it again"
        )


def _record(archive: Path | str, into: Path) -> Path:
    return Path(into) / f".{Path(archive).name}.extracted"


def extracted(archive: Path | str, into: Path | str) -> list[Path] | None:
    """The files an earlier :func:`extract` of ``archive`` wrote in ``into``.

    ``None`` if that extraction did not finish or one of its files is gone.
    Only the archive's *name* is used: the archive itself may be deleted.
    """
    record = _record(archive, Path(into))
    if not record.is_file():
        return None
    files = [Path(into) / line for line in record.read_text("utf-8").splitlines() if line]
    return files if all(f.is_file() for f in files) else None


def link_extracted(archive: Path | str, src: Path | str, into: Path | str) -> list[Path] | None:
    """Reuse the files an earlier :func:`extract` of ``archive`` wrote in ``src``.

    Each file is hard-linked into ``into`` (copied where hard links are not
    possible, e.g. across drives), under the same relative path, and the
    reuse is recorded so that :func:`extracted` sees it. Returns the files,
    or ``None`` when ``src`` holds no finished extraction of ``archive``.
    A different file already in ``into`` is never replaced (:class:`ExtractError`).
    """
    src, into = Path(src), Path(into)
    if extracted(archive, src) is None:
        return None
    rels = [line for line in _record(archive, src).read_text("utf-8").splitlines() if line]
    conflicts = [into / r for r in rels
                 if (into / r).exists() and not filecmp.cmp(src / r, into / r, shallow=False)]
    if conflicts:
        raise ExtractError(
            f"not reusing {src}: {', '.join(map(str, conflicts[:5]))} already exist(s) with "
            f"different content. Nothing was changed; move those files away and run again"
        )
    for r in rels:
        dst = into / r
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src / r, dst)
        except OSError:
            shutil.copy2(src / r, dst)
    _record(archive, into).write_text("".join(f"{r}\n" for r in rels), "utf-8")
    return [into / r for r in rels]


def extract(archive: Path | str, into: Path | str, *, flatten: bool = False,
            include: Callable[[str], bool] | None = None, progress: bool = True) -> list[Path]:
    """Unpack a zip or tar (gz, bz2, xz) archive into ``into``; return the files.

    * Every member is checked before anything is written: an absolute path, a
      ``..`` component, a link pointing outside ``into`` or a device file
      raises :class:`UnsafeArchiveError` and nothing is written.
    * Files are unpacked into a temporary folder inside ``into`` and then
      moved into place. A file that is already there with the same bytes is
      kept; a *different* file is never replaced: :class:`ExtractError`
      names it, and nothing is moved.
    * Links inside the archive become plain copies of what they point to.
    * ``flatten=True`` drops the folders (every file lands directly in
      ``into``); ``include(name)`` keeps only the members it accepts.
    * Running it again after it finished does nothing and returns the same
      files (see :func:`extracted`).
    """
    archive, into = Path(archive), Path(into)
    done = extracted(archive, into)
    if done is not None:
        return done
    try:
        kind, members = _members(archive)
    except _READ_ERRORS as err:
        raise _corrupt(archive, err) from None
    _check(members, archive)

    plan: dict[str, _Member] = {}  # relative destination -> member
    for m in members:
        if m.kind == "dir" or not _parts(m.name) or (include and not include(m.name)):
            continue
        rel = _parts(m.name)[-1] if flatten else "/".join(_parts(m.name))
        if rel in plan:
            raise ExtractError(f"{archive}: two members would both be written to {into / rel}")
        plan[rel] = m
    if not plan:
        raise ExtractError(f"{archive} holds no file to unpack"
                           + (" among the members selected" if include else ""))

    made = [d for d in (into, *into.parents) if not d.exists()]  # the folders this call creates
    into.mkdir(parents=True, exist_ok=True)
    tmp = into / f".{archive.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        try:
            _unpack(kind, archive, members, plan, tmp, progress)
        except _READ_ERRORS as err:
            shutil.rmtree(tmp, ignore_errors=True)
            for d in made:  # innermost first: leave no empty folder behind
                if d.is_dir() and not any(d.iterdir()):
                    d.rmdir()
            raise _corrupt(archive, err) from None
        conflicts, moves = [], []
        for rel in plan:
            src, dst = tmp / rel, into / rel
            if dst.exists() or dst.is_symlink():
                if not (dst.is_file() and filecmp.cmp(src, dst, shallow=False)):
                    conflicts.append(dst)
            else:
                moves.append((src, dst))
        if conflicts:
            shown = ", ".join(str(c) for c in conflicts[:5])
            more = f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
            raise ExtractError(
                f"not unpacking {archive}: {shown}{more} already exist(s) with different content "
                f"and would be overwritten. Nothing was changed; move those files away and run "
                f"again"
            )
        for src, dst in moves:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _record(archive, into).write_text("".join(f"{rel}\n" for rel in plan), "utf-8")
    return [into / rel for rel in plan]


class _ReadFailed(Exception):
    """An OSError raised while *reading* the archive (bz2's "Invalid data stream"), not writing."""


# what reading a damaged archive raises: a cut gzip/xz/bz2 stream, a bad CRC or header, a cut tar
_READ_ERRORS = (EOFError, zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError,
                gzip.BadGzipFile, NotImplementedError, _ReadFailed)


def _corrupt(archive: Path, err: BaseException) -> CorruptArchiveError:
    cause = err.__cause__ if isinstance(err, _ReadFailed) and err.__cause__ else err
    return CorruptArchiveError(
        f"{archive} is damaged and cannot be unpacked ({type(cause).__name__}: {cause}); it may be "
        f"incomplete or corrupted in transfer. Nothing was unpacked. Delete it (or move it away) "
        f"and download it again"
    )


def _copy_member(src, dst) -> None:
    """Copy an open archive member to an open file; a read error is a :class:`_ReadFailed`."""
    while True:
        try:
            block = src.read(1 << 20)
        except OSError as err:
            raise _ReadFailed(str(err)) from err
        if not block:
            return
        dst.write(block)


def _unpack(kind: str, archive: Path, members: list[_Member], plan: dict[str, _Member],
            tmp: Path, progress: bool) -> None:
    """Write every planned member into ``tmp``; a link is written as a copy of its target."""
    by_name = {posixpath.normpath(m.name.replace("\\", "/")): m for m in members}
    with (zipfile.ZipFile(archive) if kind == "zip" else tarfile.open(archive, "r:*")) as ar:

        def source(m: _Member, hops: int = 0):
            while m.kind == "link":
                target = by_name.get(m.target)
                if target is None or target.kind == "dir" or hops > 32:
                    raise ExtractError(
                        f"{archive}: link {m.name!r} does not point to a file in the archive")
                m, hops = target, hops + 1
            f = ar.open(m.ref) if kind == "zip" else ar.extractfile(m.ref)
            if f is None:
                raise ExtractError(f"{archive}: cannot read member {m.name!r}")
            return f

        for rel, m in tqdm(plan.items(), desc=f"unpacking {archive.name}", unit="file",
                           disable=not progress, leave=False):
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            with source(m) as src, open(out, "wb") as dst:
                _copy_member(src, dst)
