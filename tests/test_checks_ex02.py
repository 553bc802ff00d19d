"""The checks of notebook 02: each passes the reference and an independent
correct answer, reports the stub as not done, and fails plausible wrong answers."""

import re

import cv2
import numpy as np
import pytest

from coursekit import geometry, local
from coursekit.exercises import EXERCISES, exercise
from coursekit.exercises import ex02
from checkhelpers import fails, stub



def test_registry():
    assert [e.id for e in EXERCISES["02"]] == ["2.1", "2.2", "2.3"]
    assert [e.function for e in EXERCISES["02"]] == ["rootsift", "ratio_test", "ransac_homography"]
    assert exercise("2.3").check is ex02.check_ransac_homography


@pytest.mark.parametrize("check", [ex02.check_rootsift, ex02.check_ratio_test, ex02.check_ransac_homography])
def test_stub_is_not_done(check):
    assert "not done yet" in fails(check, stub, not_done=True)


# --------------------------------------------------------------------------- 2.1 RootSIFT

def my_rootsift(desc):
    out = np.zeros(desc.shape)
    for i, row in enumerate(desc):
        total = sum(float(v) for v in row)
        if total > 0:
            out[i] = [np.sqrt(v / total) for v in row]
    return out


def test_rootsift_passes(capsys):
    ex02.check_rootsift(local.rootsift)
    assert re.fullmatch(r"✔ Exercise 2\.1 \(RootSIFT\): passed \d+ cases\.", capsys.readouterr().out.strip())
    ex02.check_rootsift(my_rootsift, quiet=True)


@pytest.mark.parametrize("wrong", [
    lambda d: np.sqrt(d / np.linalg.norm(d, axis=1, keepdims=True).clip(1e-12)),     # L2 instead of L1
    lambda d: np.sqrt(d) / np.sqrt(d).sum(axis=1, keepdims=True).clip(1e-12),         # sqrt, then L1
    lambda d: d / d.sum(axis=1, keepdims=True).clip(1e-12),                           # no square root
    lambda d: np.sqrt(d / d.sum(axis=0, keepdims=True).clip(1e-12)),                  # normalised per column
], ids=["l2-then-sqrt", "sqrt-then-l1", "no-sqrt", "wrong-axis"])
def test_rootsift_wrong_answers(wrong):
    assert "expected" in fails(ex02.check_rootsift, wrong)


def test_rootsift_nan_on_a_zero_row():
    def no_guard(d):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(d / d.sum(axis=1, keepdims=True))
    assert "got nan" in fails(ex02.check_rootsift, no_guard)


# --------------------------------------------------------------------------- 2.2 ratio test

def my_ratio_test(d1, d2, ratio):
    pairs = []
    for i, x in enumerate(d1):
        dist = [float(np.sqrt(((x.astype(np.float64) - y) ** 2).sum())) for y in d2]
        order = np.argsort(dist)
        if dist[order[0]] < ratio * dist[order[1]]:
            pairs.append((i, int(order[0])))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def test_ratio_test_passes(capsys):
    ex02.check_ratio_test(local.ratio_test)
    assert "passed" in capsys.readouterr().out
    ex02.check_ratio_test(my_ratio_test, quiet=True)


def ratio_on_squared(d1, d2, ratio):
    D = ((d1[:, None, :] - d2[None]) ** 2).sum(-1)
    order = np.argsort(D, axis=1)
    i = np.arange(len(d1))
    keep = np.flatnonzero(D[i, order[:, 0]] < ratio * D[i, order[:, 1]])
    return np.stack([keep, order[keep, 0]], axis=1)


def ratio_by_dot_product(d1, d2, ratio):
    S = d1 @ d2.T                          # largest dot product taken as nearest: wrong for unequal lengths
    order = np.argsort(-S, axis=1)
    D = np.sqrt(((d1[:, None, :] - d2[None]) ** 2).sum(-1))
    i = np.arange(len(d1))
    keep = np.flatnonzero(D[i, order[:, 0]] < ratio * D[i, order[:, 1]])
    return np.stack([keep, order[keep, 0]], axis=1)


def ratio_swapped_pairs(d1, d2, ratio):
    return my_ratio_test(d1, d2, ratio)[:, ::-1].copy()


def ratio_greater(d1, d2, ratio):
    D = np.sqrt(((d1[:, None, :] - d2[None]) ** 2).sum(-1))
    order = np.argsort(D, axis=1)
    i = np.arange(len(d1))
    keep = np.flatnonzero(D[i, order[:, 0]] > ratio * D[i, order[:, 1]])
    return np.stack([keep, order[keep, 0]], axis=1)


def ratio_empty_as_1d(d1, d2, ratio):
    return np.array([tuple(p) for p in my_ratio_test(d1, d2, ratio)])


@pytest.mark.parametrize("wrong", [ratio_on_squared, ratio_by_dot_product, ratio_swapped_pairs, ratio_greater,
                                   ratio_empty_as_1d])
def test_ratio_test_wrong_answers(wrong):
    m = fails(ex02.check_ratio_test, wrong)
    assert f"{wrong.__name__}(d1=" in m and "expected" in m


def test_ratio_test_squared_distances_fail_on_the_lecture_example():
    m = fails(ex02.check_ratio_test, ratio_on_squared)
    assert "ratio=0.8): expected shape (2, 2), got shape (3, 2)" in m


# --------------------------------------------------------------------------- 2.3 RANSAC

def reference_ransac(src, dst, threshold, n_iters, seed):
    r = geometry.ransac(src, dst, threshold=threshold, max_iters=n_iters, rng=seed)
    return r.model, r.inliers


def _errors(H, src, dst):
    p = np.c_[src, np.ones(len(src))] @ H.T
    return np.linalg.norm(p[:, :2] / p[:, 2:] - dst, axis=1)


def _dlt(src, dst):
    """Plain (unnormalised) DLT by SVD: a different, correct least-squares fit."""
    rows = []
    for (x, y), (u, v) in zip(src, dst):
        rows.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
        rows.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
    return np.linalg.svd(np.array(rows))[2][-1].reshape(3, 3)


def loop_ransac(src, dst, threshold, n_iters, seed, refit=True, inlier_test=None):
    """A student's plain loop: one hypothesis at a time, unnormalised DLT."""
    rng = np.random.default_rng(seed)
    inlier_test = inlier_test or (lambda err: err < threshold)
    best, best_count = None, -1
    for _ in range(n_iters):
        sample = rng.choice(len(src), 4, replace=False)
        H = _dlt(src[sample], dst[sample])
        with np.errstate(divide="ignore", invalid="ignore"):
            count = int(inlier_test(_errors(H, src, dst)).sum())
        if count > best_count:
            best, best_count = H, count
    inliers = inlier_test(_errors(best, src, dst))
    if refit:
        best = _dlt(src[inliers], dst[inliers])
        inliers = inlier_test(_errors(best, src, dst))
    return best, inliers


def opencv_ransac(src, dst, threshold, n_iters, seed):
    """OpenCV's RANSAC, then OpenCV's least squares on its inliers."""
    _, mask = cv2.findHomography(src, dst, cv2.RANSAC, threshold, maxIters=n_iters, confidence=0.999)
    H, _ = cv2.findHomography(src[mask.ravel() > 0], dst[mask.ravel() > 0], 0)
    return H, _errors(H, src, dst) < threshold


def test_ransac_passes(capsys):
    ex02.check_ransac_homography(reference_ransac)
    assert "passed 4 cases" in capsys.readouterr().out


@pytest.mark.parametrize("answer", [loop_ransac, opencv_ransac])
def test_ransac_independent_answers_pass(answer):
    ex02.check_ransac_homography(answer, quiet=True)


def test_ransac_without_refit_fails():
    m = fails(ex02.check_ransac_homography, lambda *a: loop_ransac(*a, refit=False))
    assert "Refit H by least squares" in m


def test_ransac_inverted_inlier_test_fails():
    m = fails(ex02.check_ransac_homography,
              lambda s, d, t, n, seed: loop_ransac(s, d, t, n, seed, inlier_test=lambda e: e > t))
    assert "px away from where the true homography maps them" in m or "expected" in m


def test_ransac_squared_error_against_the_threshold_fails():
    m = fails(ex02.check_ransac_homography,
              lambda s, d, t, n, seed: loop_ransac(s, d, t, n, seed, inlier_test=lambda e: e ** 2 < t))
    assert "true inliers missed" in m and "not squared" in m


def test_ransac_swapped_direction_fails():
    m = fails(ex02.check_ransac_homography, lambda s, d, t, n, seed: reference_ransac(d, s, t, n, seed))
    assert "maps dst to src" in m


def test_ransac_returning_something_else_fails():
    assert "should return a pair (H, inliers)" in fails(ex02.check_ransac_homography, lambda *a: np.eye(3))
    assert "returned None" in fails(ex02.check_ransac_homography, lambda *a: None)
    m = fails(ex02.check_ransac_homography, lambda s, d, *a: (np.eye(3), np.ones(len(s), int)))
    assert "bool array" in m


def test_synthetic_matches_are_what_they_say():
    rng = np.random.default_rng(0)
    src, dst, H, inl = ex02.synthetic_matches(rng, 400, 0.5)
    err = geometry.transfer_errors(H, src, dst)
    assert inl.sum() == 200
    assert err[inl].max() <= 1.5 + 1e-9 and err[~inl].min() > 20
