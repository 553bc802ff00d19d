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
import hashlib
import http.client
import os
import posixpath
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

__all__ = [
    "DownloadError", "ExtractError", "UnsafeArchiveError",
    "download", "extract", "extracted", "link_extracted", "verify",
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
    is right). When the transfer ends, the size (``size``, else the length the
    server announced) and the checksums that are given are checked, then the
    file is renamed to ``dest`` in one step.

    * ``dest`` exists and verifies: returned at once, nothing is fetched.
    * ``dest`` exists and does not verify: :class:`DownloadError`; the file is
      left as it is (it may be yours).
    * checksum mismatch: the ``.part`` is deleted and :class:`DownloadError`
      says expected vs got and that nothing was kept.
    * host down, DNS failure, HTTP error, interruption: :class:`DownloadError`
      with the URL, the reason and a hint; a ``.part`` is kept for resuming.
    """
    dest = Path(dest)
    if dest.exists():
        problem = verify(dest, size=size, sha256=sha256, md5=md5)
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
        part.unlink()
        raise DownloadError(
            f"{url} sent {got_size:,} bytes, expected {expected_size:,}; the file was deleted and "
            f"nothing was kept. The file on the server may have changed"
        )
    problem = verify(part, sha256=sha256, md5=md5)
    if problem is not None:
        part.unlink()
        raise DownloadError(
            f"{url}: {problem}. The downloaded file was deleted, nothing was kept. The file on "
            f"the server may have changed or the transfer was corrupted; try again, or download "
            f"it by hand to {dest}"
        )
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, dest: Path, *, size: int | None, progress: bool,
           timeout: float, chunk: int) -> int | None:
    """Stream ``url`` into ``part``, resuming it; return the full length the server announced."""
    resumable = url.lower().startswith(("http://", "https://"))
    for _ in range(3):  # a resume the server cannot honour is retried from zero
        have = part.stat().st_size if part.exists() else 0
        if have and (not resumable or (size is not None and have > size)):
            part.unlink()  # ftp has no Range; a part larger than the file is not a prefix
            have = 0
        if size is not None and have == size:
            return size
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # nothing left to send from that offset
                total = _total_from_content_range(e.headers.get("Content-Range"))
                if have == (size if size is not None else total):
                    return have
                part.unlink()  # the part does not fit the file on the server: start over
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
                part.unlink(missing_ok=True)  # a range we did not ask for: start over
                continue
            if status == 206:
                total, mode = _total_from_content_range(content_range), "ab"
            else:  # a fresh download, or a server that ignored Range (200): start over
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                have, mode = 0, "wb"
            _stream(response, part, mode, have, size if size is not None else total,
                    url, dest.name, progress, chunk)
        return total
    raise DownloadError(f"{url}: the server did not answer the resume request sensibly; "
                        f"delete {part} and run again")


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
    raise ExtractError(f"{archive} is neither a zip nor a tar archive (it may be incomplete)")


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
    kind, members = _members(archive)
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

    into.mkdir(parents=True, exist_ok=True)
    tmp = into / f".{archive.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _unpack(kind, archive, members, plan, tmp, progress)
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
                shutil.copyfileobj(src, dst, 1 << 20)
