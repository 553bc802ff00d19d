"""coursekit.download and data_scripts/get.py against a local HTTP server.

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
import socket
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from coursekit.download import (DownloadError, ExtractError, UnsafeArchiveError, download,
                                extract, extracted)

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
    server.ignore_range = True
    (tmp_path / "f.bin.part").write_bytes(b"x" * 3000)  # not even a prefix of the file
    download(server.url("/f.bin"), tmp_path / "f.bin", progress=False)
    assert server.requests[-1][1] == "bytes=3000-"
    assert (tmp_path / "f.bin").read_bytes() == data


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
    server.files["/revisitop/data/datasets/roxford5k/gnd_roxford5k.pkl"] = b"pickle"
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
    assert (root / "roxford5k" / "gnd_roxford5k.pkl").read_bytes() == b"pickle"


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
