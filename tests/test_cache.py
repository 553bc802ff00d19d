import os
import time

import numpy as np
import pytest

from coursekit.cache import CONTENT_DIGEST_MAX, atomic_write, cached_arrays, file_key, files_fingerprint, key_digest, \
    save_npz_atomic


def test_key_digest_is_order_free_and_sensitive():
    assert key_digest({"a": 1, "b": [1, 2]}) == key_digest({"b": [1, 2], "a": 1})
    assert key_digest({"a": 1}) != key_digest({"a": 2})


def test_cached_arrays_computes_once_and_reports_saved_time(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"X": np.arange(6, dtype=np.float32).reshape(2, 3)}

    first, saved = cached_arrays("features", {"m": 1}, compute, root=tmp_path)
    assert saved == 0.0
    second, saved = cached_arrays("features", {"m": 1}, compute, root=tmp_path)
    assert len(calls) == 1 and saved >= 0.0
    np.testing.assert_array_equal(first["X"], second["X"])
    assert set(second) == {"X"}
    cached_arrays("features", {"m": 2}, compute, root=tmp_path)  # another key: computed again
    assert len(calls) == 2
    cached_arrays("features", {"m": 1}, compute, root=tmp_path, refresh=True)
    assert len(calls) == 3
    assert len(list((tmp_path / "features").glob("*.json"))) == 2  # says what produced each entry


def test_corrupt_entry_is_recomputed(tmp_path):
    compute = lambda: {"X": np.ones(3)}  # noqa: E731
    cached_arrays("f", {"k": 1}, compute, root=tmp_path)
    (entry,) = (tmp_path / "f").glob("*.npz")
    entry.write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match="unreadable"):
        arrays, _ = cached_arrays("f", {"k": 1}, compute, root=tmp_path)
    np.testing.assert_array_equal(arrays["X"], np.ones(3))


def test_files_fingerprint_changes_with_content(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    before = files_fingerprint([a, b])
    assert files_fingerprint([b, a]) != before  # order is part of the dataset
    b.write_bytes(b"22")
    assert files_fingerprint([a, b]) != before


def _edit_keeping_size_and_mtime(path, data: bytes) -> None:
    """What `cp --preserve`, rsync or an editor restoring the time does: new bytes, same size and mtime."""
    st = os.stat(path)
    assert len(data) == st.st_size
    time.sleep(0.02)  # past the file system's timestamp granularity
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == st.st_mtime_ns and os.stat(path).st_size == st.st_size


def test_a_small_file_edited_with_size_and_mtime_kept_changes_the_fingerprint(tmp_path):
    a = tmp_path / "a.jpg"
    a.write_bytes(b"first photo")
    before = files_fingerprint([a])
    _edit_keeping_size_and_mtime(a, b"other photo")
    assert files_fingerprint([a]) != before


def test_a_large_file_edited_with_size_and_mtime_kept_changes_the_fingerprint(tmp_path):
    a = tmp_path / "a.jpg"
    a.write_bytes(b"1" * (CONTENT_DIGEST_MAX + 1))
    before = file_key(a)
    assert before.startswith("stat:")  # not read: only its inode record
    _edit_keeping_size_and_mtime(a, b"2" * (CONTENT_DIGEST_MAX + 1))
    assert file_key(a) != before


def test_touching_a_small_file_keeps_its_key(tmp_path):
    a = tmp_path / "a.jpg"
    a.write_bytes(b"same bytes")
    before = file_key(a)
    os.utime(a, ns=(1, 10**18))
    assert file_key(a) == before


def test_the_feature_cache_is_not_reused_after_such_an_edit(tmp_path):
    a = tmp_path / "a.jpg"
    a.write_bytes(b"first photo")
    compute = lambda: {"X": np.frombuffer(a.read_bytes(), np.uint8).copy()}  # noqa: E731
    first, _ = cached_arrays("features", {"files": files_fingerprint([a])}, compute, root=tmp_path / "c")
    _edit_keeping_size_and_mtime(a, b"other photo")
    second, _ = cached_arrays("features", {"files": files_fingerprint([a])}, compute, root=tmp_path / "c")
    assert second["X"].tobytes() == b"other photo" != first["X"].tobytes()


def test_atomic_write_puts_the_file_in_place_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "sub" / "page.html"               # the folder is created
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent and not tmp.exists() and not target.exists()
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert os.listdir(target.parent) == ["page.html"]
    save_npz_atomic(tmp_path / "a.npz", {"X": np.arange(3, dtype=np.float32)})
    with np.load(tmp_path / "a.npz") as data:
        assert data["X"].dtype == np.float32 and data["X"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("folder", [False, True])
def test_a_failing_writer_leaves_the_target_as_it_was_and_no_temporary(tmp_path, folder):
    target = tmp_path / "out"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(target) as tmp:
            if folder:
                (tmp / "deep").mkdir(parents=True)
                (tmp / "deep" / "page.html").write_text("half")
            else:
                tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out"]


def test_atomic_write_replaces_a_folder_made_in_its_place(tmp_path):
    target = tmp_path / "site"
    with atomic_write(target) as tmp:
        tmp.mkdir()
        (tmp / "index.html").write_text("hello")
    assert (target / "index.html").read_text() == "hello"
    assert os.listdir(tmp_path) == ["site"]
