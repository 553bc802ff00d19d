"""coursekit.datasets.download and data_scripts/get.py against a local HTTP server.

A ThreadingHTTPServer on 127.0.0.1 serves fixture archives made here (tiny
PIL images in zip and tar.gz files). It honours ``Range``, and can be told
to drop the connection after N bytes, to ignore ``Range`` or to answer with
an error status. Nothing but 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
import socket
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from coursekit.datasets.download import (CorruptArchiveError, DownloadError, ExtractError,
                                         UnsafeArchiveError, download, extract, extracted, wrong_kind)

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- fixtures


def jpeg(seed: int) -> bytes:
    """A tiny JPEG, different for each seed."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), ((seed * 37) % 256, (seed * 91) % 256, 128)).save(buf, "JPEG")
    return buf.getvalue()


def make_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_tgz(entries: dict[str, bytes], links: dict[str, tuple[str, str]] | None = None) -> bytes:
    """A tar.gz of ``entries``; ``links`` maps a name to ("sym" | "hard", target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


class FixtureServer:
    """Serves ``files`` (keyed by URL path) and records every request."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.drop_after: dict[str, int] = {}  # path -> bytes sent before hanging up (once)
        self.status: dict[str, int] = {}      # path -> error status to answer
        self.ignore_range = False
        self.validators = True                # send ETag and Last-Modified, honour If-Range
        self.if_range: list[str | None] = []  # the If-Range header of every request
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                rng = self.headers.get("Range")
                server.requests.append((path, rng))
                if path in server.status:
                    self.send_error(server.status[path])
                    return
                data = server.files.get(path)
                if data is None:
                    self.send_error(404)
                    return
                server.if_range.append(self.headers.get("If-Range"))
                etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"'
                if server.validators and self.headers.get("If-Range") not in (None, etag):
                    rng = None  # the file changed since the part was started: send all of it
                start = 0
                if rng and not server.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                if server.validators:
                    self.send_header("ETag", etag)
                self.end_headers()
                cut = server.drop_after.pop(path, None)
                self.wfile.write(body if cut is None else body[:cut])
                self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FixtureServer()
    yield s
    s.close()


@pytest.fixture
def get_py():
    """data_scripts/get.py, imported as a module."""
    spec = importlib.util.spec_from_file_location("coursekit_get", REPO / "data_scripts" / "get.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def all_files(folder: Path) -> list[Path]:
    """The files under ``folder``, without extract()'s hidden records."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


# --------------------------------------------------------------------------- download


def test_full_download_verifies_and_extracts(server, tmp_path):
    images = {f"coil-100/obj{i}__0.png": jpeg(i) for i in range(1, 4)}
    data = make_zip(images)
    server.files["/coil-100.zip"] = data
    dest = tmp_path / "dl" / "coil-100.zip"
    out = download(server.url("/coil-100.zip"), dest, sha256=sha256(data),
                   md5=hashlib.md5(data).hexdigest(), size=len(data), progress=False)
    assert out == dest and dest.read_bytes() == data
    assert not dest.with_suffix(".zip.part").exists()

    files = extract(dest, tmp_path / "coil100", progress=False)
    assert sorted(files) == sorted(tmp_path / "coil100" / n for n in images)
    for name, content in images.items():
        assert (tmp_path / "coil100" / name).read_bytes() == content
    assert extracted(dest, tmp_path / "coil100") == files
    assert not list((tmp_path / "coil100").glob(".*.partial"))
    # again: nothing to do, same answer, even without the archive
    dest.unlink()
    assert extract(dest, tmp_path / "coil100", progress=False) == files


def test_interrupted_download_resumes_with_range(server, tmp_path):
    data = os.urandom(50_000)
    server.files["/big.bin"] = data
    server.drop_after["/big.bin"] = 20_000
    dest = tmp_path / "big.bin"
    with pytest.raises(DownloadError, match="run again to resume"):
        download(server.url("/big.bin"), dest, progress=False, chunk=4096)
    part = tmp_path / "big.bin.part"
    assert part.stat().st_size == 20_000 and not dest.exists()

    download(server.url("/big.bin"), dest, sha256=sha256(data), progress=False, chunk=4096)
    assert server.requests[-1] == ("/big.bin", "bytes=20000-")
    assert dest.read_bytes() == data and not part.exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    data = os.urandom(10_000)
    server.files["/f.bin"] = data
    server.drop_after["/f.bin"] = 3000
    with pytest.raises(DownloadError, match="run again to resume"):
        download(server.url("/f.bin"), tmp_path / "f.bin", progress=False)
    server.ignore_range = True
    download(server.url("/f.bin"), tmp_path / "f.bin", progress=False)
    assert server.requests[-1][1] == "bytes=3000-"
    assert (tmp_path / "f.bin").read_bytes() == data


def test_a_part_without_a_validator_starts_over_instead_of_resuming(server, tmp_path):
    data = os.urandom(10_000)
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(b"x" * 3000)  # from who knows which file
    download(server.url("/f.bin"), tmp_path / "f.bin", progress=False)
    assert server.requests == [("/f.bin", None)]
    assert (tmp_path / "f.bin").read_bytes() == data


def test_a_part_of_a_file_that_changed_on_the_server_is_not_spliced(server, tmp_path):
    old, new = os.urandom(10_000), os.urandom(10_000)
    server.files["/f.bin"] = old
    server.drop_after["/f.bin"] = 4000
    with pytest.raises(DownloadError, match="run again to resume"):
        download(server.url("/f.bin"), tmp_path / "f.bin", progress=False)
    server.files["/f.bin"] = new  # same size, new content: only the validator tells
    download(server.url("/f.bin"), tmp_path / "f.bin", progress=False)
    assert server.requests[-1][1] == "bytes=4000-" and server.if_range[-1] == f'"{sha256(old)[:16]}"'
    assert (tmp_path / "f.bin").read_bytes() == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]  # no part, no validator left


def test_a_server_without_validators_is_downloaded_again_after_an_interruption(server, tmp_path):
    data = os.urandom(10_000)
    server.files["/f.bin"] = data
    server.validators = False
    server.drop_after["/f.bin"] = 4000
    with pytest.raises(DownloadError):
        download(server.url("/f.bin"), tmp_path / "f.bin", progress=False)
    download(server.url("/f.bin"), tmp_path / "f.bin", progress=False)
    assert server.requests[-1] == ("/f.bin", None) and (tmp_path / "f.bin").read_bytes() == data


def test_an_html_page_served_as_the_archive_is_moved_aside_not_kept(server, tmp_path):
    page = b"<!DOCTYPE html><html><body>Please log in</body></html>"
    server.files["/f.zip"] = page
    dest = tmp_path / "f.zip"
    with pytest.raises(DownloadError) as e:
        download(server.url("/f.zip"), dest, progress=False)
    aside = tmp_path / "f.zip.part.rejected"
    assert not dest.exists() and aside.read_bytes() == page
    msg = str(e.value)
    assert "HTML page" in msg and "not a zip archive" in msg and str(aside) in msg and str(dest) in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.zip.part.rejected"]


def test_an_existing_html_page_is_not_taken_for_the_archive(server, tmp_path):
    dest = tmp_path / "f.tgz"
    dest.write_bytes(b"<html><head><title>404</title></head></html>")
    with pytest.raises(DownloadError, match="HTML page.*left untouched; move or delete it"):
        download(server.url("/f.tgz"), dest, progress=False)
    assert server.requests == [] and dest.exists()


@pytest.mark.parametrize("name,good", [("gnd.pkl", True), ("gnd.pkl", False), ("a.tgz", True),
                                       ("a.tar.gz", True), ("a.zip", True), ("a.zip", False)])
def test_wrong_kind_knows_each_kind_the_recipes_use(tmp_path, name, good):
    import pickle

    class Evil:
        def __reduce__(self):
            return os.system, ("true",)

    path = tmp_path / name
    if name.endswith(".pkl"):
        path.write_bytes(pickle.dumps({"imlist": [1]} if good else Evil()))
    elif name.endswith(".zip"):
        path.write_bytes(make_zip({"a": b"1"}) if good else make_tgz({"a": b"1"}))
    else:
        path.write_bytes(make_tgz({"a": b"1"}))
    assert (wrong_kind(path) is None) == good


def test_416_on_a_complete_part_finishes(server, tmp_path):
    data = os.urandom(5000)
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data)
    download(server.url("/f.bin"), tmp_path / "f.bin", sha256=sha256(data), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == data and not (tmp_path / "f.bin.part").exists()


def test_checksum_mismatch_keeps_nothing(server, tmp_path):
    server.files["/f.zip"] = b"not what you expected"
    dest = tmp_path / "f.zip"
    with pytest.raises(DownloadError) as e:
        download(server.url("/f.zip"), dest, sha256="0" * 64, progress=False)
    msg = str(e.value)
    assert "mismatch" in msg and "0" * 64 in msg and sha256(b"not what you expected") in msg
    assert "nothing was kept" in msg
    assert not dest.exists() and not (tmp_path / "f.zip.part").exists()


def test_existing_good_file_is_not_downloaded_again(server, tmp_path):
    data = b"already here"
    dest = tmp_path / "f.bin"
    dest.write_bytes(data)
    assert download(server.url("/f.bin"), dest, sha256=sha256(data), progress=False) == dest
    assert server.requests == []


def test_existing_bad_file_is_not_overwritten(server, tmp_path):
    server.files["/f.bin"] = b"the real thing"
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"the user's own file")
    with pytest.raises(DownloadError, match="left untouched"):
        download(server.url("/f.bin"), dest, sha256=sha256(b"the real thing"), progress=False)
    assert dest.read_bytes() == b"the user's own file"
    assert server.requests == []


@pytest.mark.parametrize("status", [404, 500])
def test_http_errors_name_the_url(server, tmp_path, status):
    server.status["/gone.zip"] = status
    url = server.url("/gone.zip")
    with pytest.raises(DownloadError) as e:
        download(url, tmp_path / "gone.zip", progress=False)
    msg = str(e.value)
    assert url in msg and str(status) in msg and "host may be down" in msg
    assert str(tmp_path / "gone.zip") in msg
    assert not (tmp_path / "gone.zip").exists()


def test_connection_refused_names_the_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/f.zip"
    with pytest.raises(DownloadError) as e:
        download(url, tmp_path / "f.zip", progress=False, timeout=5)
    assert url in str(e.value) and "try again later" in str(e.value)


# --------------------------------------------------------------------------- extract


def test_zip_with_dotdot_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(make_zip({"ok/a.jpg": jpeg(1), "../evil.txt": b"gotcha"}))
    into = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match="evil.txt"):
        extract(archive, into, progress=False)
    assert not (tmp_path / "evil.txt").exists()
    assert not into.exists() or all_files(into) == []


def test_tar_with_absolute_path_is_refused(tmp_path):
    archive = tmp_path / "evil.tgz"
    archive.write_bytes(make_tgz({"ok/a.jpg": jpeg(1), "/tmp/coursekit-evil.txt": b"gotcha"}))
    with tarfile.open(archive) as tf:  # the fixture really holds an absolute name
        assert "/tmp/coursekit-evil.txt" in tf.getnames()
    into = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match="absolute"):
        extract(archive, into, progress=False)
    assert not into.exists() or all_files(into) == []


@pytest.mark.parametrize("kind,target", [("sym", "../../outside.txt"), ("sym", "/etc/passwd"),
                                         ("hard", "../outside.txt")])
def test_tar_with_escaping_link_is_refused(tmp_path, kind, target):
    archive = tmp_path / "evil.tgz"
    archive.write_bytes(make_tgz({"ok/a.jpg": jpeg(1)}, links={"ok/link.jpg": (kind, target)}))
    into = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract(archive, into, progress=False)
    assert not into.exists() or all_files(into) == []


def test_link_inside_the_archive_becomes_a_copy(tmp_path):
    archive = tmp_path / "ok.tgz"
    archive.write_bytes(make_tgz({"d/a.jpg": jpeg(1)}, links={"d/b.jpg": ("sym", "a.jpg")}))
    files = extract(archive, tmp_path / "out", progress=False)
    b = tmp_path / "out" / "d" / "b.jpg"
    assert b in files and not b.is_symlink() and b.read_bytes() == jpeg(1)


def test_extraction_never_overwrites_a_different_file(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"jpg/1.jpg": jpeg(1), "jpg/2.jpg": jpeg(2), "jpg/3.jpg": jpeg(3)}))
    into = tmp_path / "out"
    (into / "jpg").mkdir(parents=True)
    (into / "jpg" / "1.jpg").write_bytes(jpeg(1))          # identical: fine
    (into / "jpg" / "2.jpg").write_bytes(b"user's photo")  # different: must survive
    with pytest.raises(ExtractError, match="2.jpg"):
        extract(archive, into, progress=False)
    assert (into / "jpg" / "2.jpg").read_bytes() == b"user's photo"
    assert not (into / "jpg" / "3.jpg").exists()  # nothing was moved
    assert extracted(archive, into) is None
    (into / "jpg" / "2.jpg").unlink()
    files = extract(archive, into, progress=False)
    assert len(files) == 3 and (into / "jpg" / "2.jpg").read_bytes() == jpeg(2)


def test_flatten_and_include(tmp_path):
    archive = tmp_path / "a.tgz"
    archive.write_bytes(make_tgz({"paris/defense/p_1.jpg": jpeg(1), "paris/eiffel/p_2.jpg": jpeg(2),
                                  "other/x.txt": b"x"}))
    files = extract(archive, tmp_path / "jpg", flatten=True, progress=False,
                    include=lambda n: n.startswith("paris/"))
    assert sorted(f.name for f in files) == ["p_1.jpg", "p_2.jpg"]
    assert sorted(p.name for p in all_files(tmp_path / "jpg")) == ["p_1.jpg", "p_2.jpg"]


# --------------------------------------------------------------------------- get.py


def ukbench_zip() -> tuple[bytes, dict[str, bytes]]:
    full = {f"full/ukbench{i:05d}.jpg": jpeg(i) for i in range(8)}
    thumbs = {f"thumbnails/ukbench{i:05d}.jpg": jpeg(100 + i) for i in range(8)}
    return make_zip({**full, **thumbs, "index.html": b"<html></html>"}), full


def test_get_py_ukbench_end_to_end_and_idempotent(server, get_py, tmp_path, capsys):
    data, full = ukbench_zip()
    server.files["/download/ukbench/ukbench.zip"] = data  # the archive.org path, on 127.0.0.1
    root = tmp_path / "data"
    argv = ["ukbench", "--root", str(root), "--mirror", server.base, "--no-progress"]
    assert get_py.main(argv) == 0
    out = capsys.readouterr().out
    assert server.base + "/download/ukbench/ukbench.zip" in out and str(root / "ukbench") in out
    got = {p.relative_to(root / "ukbench").as_posix(): p.read_bytes()
           for p in all_files(root / "ukbench")}
    assert got == full  # only full/, in the layout the loader reads
    assert not (root / ".downloads").exists()  # archive deleted, no leftovers

    n = len(server.requests)
    assert get_py.main(argv) == 0
    assert len(server.requests) == n  # nothing downloaded the second time
    assert "already present" in capsys.readouterr().out


def test_get_py_keep_archives_and_env_mirror(server, get_py, tmp_path, monkeypatch):
    data, _ = ukbench_zip()
    server.files["/download/ukbench/ukbench.zip"] = data
    monkeypatch.setenv("COURSEKIT_MIRROR", server.base)
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "envroot"))
    assert get_py.main(["ukbench", "--keep-archives", "--no-progress"]) == 0
    assert (tmp_path / "envroot" / ".downloads" / "ukbench.zip").read_bytes() == data
    assert (tmp_path / "envroot" / "ukbench" / "full" / "ukbench00007.jpg").is_file()


def test_get_py_roxford_reuses_oxford_images(server, get_py, tmp_path):
    images = {f"oxbuild_images/all_souls_{i:06d}.jpg": jpeg(i) for i in range(3)}
    server.files["/~vgg/data/oxbuildings/oxbuild_images-v1.tgz"] = make_tgz(images)
    server.files["/~vgg/data/oxbuildings/gt_files_170407.tgz"] = make_tgz(
        {"all_souls_1_good.txt": b"all_souls_000000\n", "all_souls_1_query.txt": b"q\n"})
    gnd = pickle.dumps({"imlist": [], "qimlist": [], "gnd": []})
    server.files["/revisitop/data/datasets/roxford5k/gnd_roxford5k.pkl"] = gnd
    root = tmp_path / "data"
    common = ["--root", str(root), "--mirror", server.base, "--no-progress"]
    assert get_py.main(["oxford5k", *common]) == 0
    jpg = root / "oxford5k" / "jpg"
    assert sorted(p.name for p in all_files(jpg)) == [f"all_souls_{i:06d}.jpg" for i in range(3)]
    assert (root / "oxford5k" / "gt" / "all_souls_1_good.txt").is_file()

    assert get_py.main(["roxford5k", *common]) == 0
    paths = [p for p, _ in server.requests]
    assert paths.count("/~vgg/data/oxbuildings/oxbuild_images-v1.tgz") == 1  # not fetched again
    rjpg = root / "roxford5k" / "jpg" / "all_souls_000000.jpg"
    assert rjpg.read_bytes() == jpeg(0)
    assert os.path.samefile(rjpg, jpg / "all_souls_000000.jpg")  # a hard link
    assert (root / "roxford5k" / "gnd_roxford5k.pkl").read_bytes() == gnd


def test_get_py_host_down_message(get_py, tmp_path, capsys):
    mirror = f"http://127.0.0.1:{free_port()}"
    assert get_py.main(["smvs", "--root", str(tmp_path), "--mirror", mirror, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"{mirror}/file/druid:rb470rw0983/dvd_covers.zip" in err
    assert "host may be down" in err and "purl.stanford.edu/rb470rw0983" in err
    assert list(tmp_path.iterdir()) == []  # no empty folders left behind


def test_get_py_resumes_after_an_interruption(server, get_py, tmp_path, capsys):
    data, full = ukbench_zip()
    path = "/download/ukbench/ukbench.zip"
    server.files[path] = data
    server.drop_after[path] = len(data) // 2
    argv = ["ukbench", "--root", str(tmp_path), "--mirror", server.base, "--no-progress"]
    assert get_py.main(argv) == 1
    assert "run again to resume" in capsys.readouterr().err
    assert (tmp_path / ".downloads" / "ukbench.zip.part").stat().st_size == len(data) // 2
    assert get_py.main(argv) == 0
    assert server.requests[-1] == (path, f"bytes={len(data) // 2}-")
    assert len(all_files(tmp_path / "ukbench")) == len(full)


def test_get_py_unknown_name_exits_2(get_py, capsys):
    assert get_py.main(["imagenet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown dataset 'imagenet'" in err


def test_get_py_list(get_py, tmp_path, capsys):
    assert get_py.main(["--list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("coil100", "smvs", "ukbench", "holidays", "oxford5k", "paris6k", "roxford5k",
                 "rparis6k"):
        assert name in out


def test_recipes_only_use_known_checksums(get_py):
    """Every URL is absolute, every checksum is well-formed; folders match the loaders."""
    folders = {name: r.folder for name, r in get_py.RECIPES.items()}
    assert folders == {"coil100": "coil100", "smvs": "smvs_dvd_covers", "ukbench": "ukbench",
                       "holidays": "holidays", "oxford5k": "oxford5k", "paris6k": "paris6k",
                       "roxford5k": "roxford5k", "rparis6k": "rparis6k"}
    for recipe in get_py.RECIPES.values():
        for remote in recipe.files:
            assert all(u.split("://")[0] in ("http", "https", "ftp") for u in remote.urls)
            assert remote.sha256 is None or len(remote.sha256) == 64
            assert remote.md5 is None or len(remote.md5) == 32


# --------------------------------------------------------------------------- damaged archives


def bad_crc_zip() -> bytes:
    data = bytearray(make_zip({"full/ukbench00000.jpg": b"A" * 5000}))
    at = data.index(b"A" * 100)
    data[at + 10] ^= 0xFF  # one byte of the stored member flipped: its CRC no longer matches
    return bytes(data)


def cut_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name in ("d/a.jpg", "d/b.jpg"):
            info = tarfile.TarInfo(name)
            info.size = 3000
            tf.addfile(info, io.BytesIO(b"x" * 3000))
    return buf.getvalue()[:1500 + 512]


DAMAGED = {
    "truncated.tar.gz": lambda: make_tgz({f"d/{i}.jpg": os.urandom(4000) for i in range(4)})[:-3000],
    "badcrc.zip": bad_crc_zip,
    "cut.tar": cut_tar,
    "page.zip": lambda: b"<!DOCTYPE html><html><body>moved</body></html>",
}


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_a_damaged_archive_raises_one_clear_error_and_writes_nothing(tmp_path, name):
    archive = tmp_path / name
    archive.write_bytes(DAMAGED[name]())
    into = tmp_path / "ds" / "jpg"
    with pytest.raises(CorruptArchiveError) as e:
        extract(archive, into, progress=False)
    assert str(archive) in str(e.value) and "download it again" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no folder, no partial files


def test_get_py_moves_a_damaged_archive_aside_and_the_next_run_succeeds(server, get_py, tmp_path,
                                                                       capsys):
    data, full = ukbench_zip()
    path = "/download/ukbench/ukbench.zip"
    server.files[path] = bad_crc_zip()
    argv = ["ukbench", "--root", str(tmp_path), "--mirror", server.base, "--no-progress"]
    assert get_py.main(argv) == 1
    err = capsys.readouterr().err
    aside = tmp_path / ".downloads" / "ukbench.zip.rejected"
    assert aside.is_file() and str(aside) in err and "damaged" in err
    assert f"to retry: python data_scripts/get.py ukbench --root {tmp_path}" in err
    assert not (tmp_path / ".downloads" / "ukbench.zip").exists() and not (tmp_path / "ukbench").exists()
    server.files[path] = data
    assert get_py.main(argv) == 0
    assert len(all_files(tmp_path / "ukbench")) == len(full)


def test_get_py_html_page_then_good_server(server, get_py, tmp_path, capsys):
    data, full = ukbench_zip()
    path = "/download/ukbench/ukbench.zip"
    server.files[path] = b"<html><body>Service unavailable</body></html>"
    argv = ["ukbench", "--root", str(tmp_path), "--mirror", server.base, "--no-progress"]
    assert get_py.main(argv) == 1
    err = capsys.readouterr().err
    assert "HTML page" in err and "ukbench.zip.part.rejected" in err and "to retry:" in err
    server.files[path] = data
    assert get_py.main(argv) == 0  # the page was not kept as the archive: downloaded again
    assert len(all_files(tmp_path / "ukbench")) == len(full)


def test_get_py_moves_aside_an_html_page_an_older_run_kept_as_the_archive(server, get_py, tmp_path,
                                                                          capsys):
    data, full = ukbench_zip()
    server.files["/download/ukbench/ukbench.zip"] = data
    (tmp_path / ".downloads").mkdir()
    (tmp_path / ".downloads" / "ukbench.zip").write_bytes(b"<html>error</html>")
    argv = ["ukbench", "--root", str(tmp_path), "--mirror", server.base, "--no-progress"]
    assert get_py.main(argv) == 0
    assert "moved aside" in capsys.readouterr().err
    assert (tmp_path / ".downloads" / "ukbench.zip.rejected").read_bytes() == b"<html>error</html>"
    assert len(all_files(tmp_path / "ukbench")) == len(full)


def test_get_py_refuses_a_ground_truth_pickle_that_names_code(server, get_py, tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    server.files["/revisitop/data/datasets/roxford5k/gnd_roxford5k.pkl"] = pickle.dumps(Evil())
    server.files["/~vgg/data/oxbuildings/oxbuild_images-v1.tgz"] = make_tgz({"o/a_000001.jpg": jpeg(1)})
    root = tmp_path / "data"
    assert get_py.main(["roxford5k", "--root", str(root), "--mirror", server.base, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "not a pickle of plain data" in err and ("os.system" in err or "posix.system" in err)
    assert not marker.exists() and not (root / "roxford5k" / "gnd_roxford5k.pkl").exists()


def test_get_py_data_root_that_is_a_file_is_one_clear_error(get_py, tmp_path, monkeypatch, capsys):
    (tmp_path / "data").write_text("not a folder")
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "data"))
    assert get_py.main(["ukbench", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "data") in err and "$COURSEKIT_DATA" in err


def test_recipes_use_https_where_the_host_serves_it(get_py):
    """Only INRIA's holidays host is plain http or ftp (it serves no https)."""
    for name, recipe in get_py.RECIPES.items():
        for remote in recipe.files:
            for url in remote.urls:
                assert url.startswith("https://") or name == "holidays", url
