"""Geometry: homography and affine fitting against exact and OpenCV answers;
RANSAC recovers known transformations from matches with many outliers;
spatial verification re-ranks by inliers."""

import math

import cv2
import numpy as np
import pytest

from coursekit import geometry as g
from coursekit.exercises.ex02 import synthetic_matches

H_TRUE = np.array([[1.1, 0.2, 30.0], [-0.1, 0.9, 20.0], [3e-4, -2e-4, 1.0]])
A_TRUE = np.array([[0.8, -0.3, 50.0], [0.25, 1.1, -10.0], [0.0, 0.0, 1.0]])


def grid(n=9, w=640, h=480):
    return np.stack(np.meshgrid(np.linspace(0, w, n), np.linspace(0, h, n)), -1).reshape(-1, 2)


def max_gap(H1, H2, points=None):
    """Largest distance between where two transformations map the points of an image grid."""
    points = grid() if points is None else points
    return float(np.abs(g.apply_homography(H1, points) - g.apply_homography(H2, points)).max())


def test_apply_homography_by_hand():
    p = np.array([[10.0, 20.0], [0.0, 0.0]])
    by_hand = []
    for x, y in p:
        u, v, w = H_TRUE @ [x, y, 1]
        by_hand.append([u / w, v / w])
    assert np.allclose(g.apply_homography(H_TRUE, p), by_hand)
    assert g.apply_homography(np.stack([H_TRUE, np.eye(3)]), p).shape == (2, 2, 2)
    assert np.allclose(g.transfer_errors(np.eye(3), p, p + [3, 4]), 5)
    at_infinity = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]], float)
    assert np.isinf(g.transfer_errors(at_infinity, np.array([[0.0, 5.0]]), np.array([[0.0, 0.0]]))).all()


def test_normalization():
    rng = np.random.default_rng(0)
    p = rng.uniform(1000, 1600, (50, 2))
    q = g.apply_homography(g.normalization(p), p)
    assert np.allclose(q.mean(0), 0, atol=1e-9)
    assert np.sqrt((q ** 2).sum(1)).mean() == pytest.approx(math.sqrt(2))


@pytest.mark.parametrize("offset", [0.0, 5000.0])
def test_fit_homography_exact(offset):
    """Noiseless matches give the homography back, also far from the origin (where
    the unnormalised DLT loses digits)."""
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 640, (30, 2)) + offset
    T = np.array([[1, 0, offset], [0, 1, offset], [0, 0, 1.0]])
    H = T @ H_TRUE @ np.linalg.inv(T)
    fitted = g.fit_homography(src, g.apply_homography(H, src))
    assert fitted[2, 2] == pytest.approx(1.0)
    assert np.allclose(fitted, H / H[2, 2], rtol=1e-6, atol=1e-9)
    four = g.fit_homography(src[:4], g.apply_homography(H, src[:4]))      # the minimal case
    assert max_gap(four, H, src) < 1e-6


def test_fit_homography_least_squares_agrees_with_opencv():
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 640, (200, 2))
    dst = g.apply_homography(H_TRUE, src) + rng.normal(0, 1.0, (200, 2))
    ours = g.fit_homography(src, dst)
    theirs, _ = cv2.findHomography(src, dst, 0)     # least squares, refined on the transfer error
    assert max_gap(ours, theirs) < 0.5 and max_gap(ours, H_TRUE) < 1.0


def test_fit_affine():
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 640, (40, 2))
    assert np.allclose(g.fit_affine(src, g.apply_homography(A_TRUE, src)), A_TRUE)
    noisy = g.apply_homography(A_TRUE, src) + rng.normal(0, 1.0, (40, 2))
    theirs = np.linalg.lstsq(np.c_[src, np.ones(40)], noisy, rcond=None)[0].T
    assert np.allclose(g.fit_affine(src, noisy)[:2], theirs)


def test_minimal_solvers_agree_with_the_svd_fit():
    rng = np.random.default_rng(4)
    src = rng.uniform(-1, 1, (50, 4, 2))
    dst = g.apply_homography(H_TRUE, src.reshape(-1, 2)).reshape(50, 4, 2) / 300 + rng.normal(0, 0.2, (50, 4, 2))
    batched = g._minimal_homographies(src, dst)
    for b in range(50):
        one = g.fit_homography(src[b], dst[b])
        assert max_gap(batched[b], one, src[b]) < 1e-6          # both pass exactly through the 4 matches
        assert np.allclose(g.apply_homography(batched[b], src[b]), dst[b], atol=1e-6)
    affines = g._minimal_affines(src[:, :3], dst[:, :3])
    for b in range(50):
        assert np.allclose(g.apply_homography(affines[b], src[b, :3]), dst[b, :3], atol=1e-9)
        assert np.allclose(affines[b], g.fit_affine(src[b, :3], dst[b, :3]))


def test_valid_samples():
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    collinear = np.array([[0, 0], [1, 1], [2, 2], [0, 1]], float)
    mirrored = square * [-1, 1]
    src = np.stack([square, square, collinear])
    dst = np.stack([square * 2 + 1, mirrored, square])
    assert g._valid_samples(src, dst).tolist() == [True, False, False]


def test_ransac_iterations():
    assert g.ransac_iterations(0.5, 4, 0.99) == pytest.approx(math.log(0.01) / math.log(1 - 0.5 ** 4))
    # Hartley and Zisserman, table 4.3: p = 0.99, 50 % outliers: 72 samples for s = 4, 35 for s = 3
    assert math.ceil(g.ransac_iterations(0.5, 4, 0.99)) == 72
    assert math.ceil(g.ransac_iterations(0.5, 3, 0.99)) == 35
    assert g.ransac_iterations(1.0, 4) == 1 and g.ransac_iterations(0.0, 4) == math.inf
    with pytest.raises(ValueError):
        g.ransac_iterations(1.5, 4)


@pytest.mark.parametrize("seed", range(5))
def test_ransac_recovers_a_homography_with_half_outliers(seed):
    rng = np.random.default_rng(seed)
    src, dst, H, truth = synthetic_matches(rng, 200, 0.5)
    r = g.ransac(src, dst, threshold=2.0, rng=seed)
    assert np.array_equal(r.inliers, truth)
    assert g.transfer_errors(r.model, src[truth], g.apply_homography(H, src[truth])).mean() < 0.25
    assert max_gap(r.model, H) < 1.5
    assert r.n_hypotheses <= 256                     # adaptive: w = 0.5 needs 72 samples
    _, mask = cv2.findHomography(src, dst, cv2.RANSAC, 2.0)
    assert abs(int(mask.sum()) - r.n_inliers) <= 2


def test_ransac_affine_with_outliers():
    rng = np.random.default_rng(7)
    src = rng.uniform(0, 640, (150, 2))
    dst = g.apply_homography(A_TRUE, src) + rng.normal(0, 0.5, (150, 2))
    out = rng.random(150) < 0.6
    dst[out] += rng.uniform(30, 200, (out.sum(), 2)) * rng.choice([-1, 1], (out.sum(), 2))
    r = g.ransac(src, dst, model="affine", threshold=3.0, rng=0)
    assert np.array_equal(r.inliers, ~out)
    assert np.allclose(r.model[2], [0, 0, 1]) and max_gap(r.model, A_TRUE) < 1.5


def test_ransac_is_reproducible_and_bounded():
    rng = np.random.default_rng(8)
    src, dst, _, _ = synthetic_matches(rng, 100, 0.5)
    a, b = g.ransac(src, dst, rng=3), g.ransac(src, dst, rng=3)
    assert np.array_equal(a.model, b.model) and np.array_equal(a.inliers, b.inliers)
    noise = rng.uniform(0, 640, (100, 2))
    r = g.ransac(src, noise, max_iters=300, rng=0)
    assert r.n_hypotheses == 300                     # no consensus: runs to the limit


def test_ransac_too_few_matches_and_bad_input():
    r = g.ransac(np.zeros((3, 2)), np.zeros((3, 2)))
    assert r.model is None and r.n_inliers == 0 and r.inliers.shape == (3,)
    with pytest.raises(ValueError, match="model"):
        g.ransac(np.zeros((5, 2)), np.zeros((5, 2)), model="similarity")
    with pytest.raises(ValueError, match="same number"):
        g.ransac(np.zeros((5, 2)), np.zeros((6, 2)))


def test_spatial_verification_reranks_by_inliers():
    rng = np.random.default_rng(9)
    kp_q = np.c_[rng.uniform(0, 640, (80, 2)), np.ones((80, 2))]
    good = np.c_[g.apply_homography(H_TRUE, kp_q[:, :2]) + rng.normal(0, 0.3, (80, 2)), np.ones((80, 2))]
    bad = np.c_[rng.uniform(0, 640, (80, 2)), np.ones((80, 2))]
    everything = np.stack([np.arange(80), np.arange(80)], axis=1)
    few = everything[:3]
    shortlist = np.array([7, 3, 5])
    kp_db = [bad, good, good]
    matches = [everything, few, everything[:40]]     # random / too few to verify / 40 consistent
    reranked, inliers = g.spatial_verification(shortlist, kp_q, kp_db, matches)
    assert inliers[1] == 0 and inliers[2] == 40 and inliers[0] < 10
    assert reranked.tolist() == [5, 7, 3]


# --------------------------------------------------------------------------
# Degenerate models (issue 24)
# --------------------------------------------------------------------------

def test_plausible_keeps_camera_motions_and_rejects_folds_flips_and_collapses():
    from coursekit.geometry import box_corners, plausible

    box = box_corners(np.array([[0.0, 0.0], [100.0, 80.0]]))
    scale = lambda k: np.diag([k, k, 1.0])
    turn = np.array([[np.cos(2.0), -np.sin(2.0), 5], [np.sin(2.0), np.cos(2.0), 7], [0, 0, 1]])
    tilt = np.array([[1, 0, 0], [0, 1, 0], [0.002, 0, 1.0]])            # a mild perspective
    through_infinity = np.array([[1, 0, 0], [0, 1, 0], [-0.02, 0, 1.0]])  # w = 0 at x = 50, inside the box
    mirror = np.diag([-1.0, 1.0, 1.0])
    H = np.stack([np.eye(3), scale(2), scale(1 / 2), turn, tilt, -np.eye(3),
                  scale(20), scale(1 / 20), through_infinity, mirror])
    assert plausible(H, box, max_scale=8).tolist() == [True] * 6 + [False] * 4
    assert plausible(scale(20), box, max_scale=32).tolist() == [True]


def test_ransac_with_max_scale_ignores_a_model_that_collapses_the_query_onto_a_cluster():
    rng = np.random.default_rng(0)
    src_true = rng.uniform(0, 200, (20, 2))
    a = 0.3
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst_true = src_true @ R.T * 1.5 + [40, 10]
    src_wrong = rng.uniform(0, 200, (60, 2))
    dst_wrong = [300.0, 300.0] + rng.uniform(-2, 2, (60, 2))            # many matches onto one dense spot
    src, dst = np.vstack([src_true, src_wrong]), np.vstack([dst_true, dst_wrong])
    loose = g.ransac(src, dst, max_iters=2000, rng=0)
    strict = g.ransac(src, dst, max_iters=2000, rng=0, max_scale=8)
    assert loose.n_inliers > 20 and loose.inliers[20:].sum() > 20      # the collapse wins without the rule
    assert strict.inliers[:20].all() and strict.inliers[20:].sum() <= 2


def test_spatial_verification_zeroes_inlier_counts_below_min_inliers():
    rng = np.random.default_rng(1)
    kq = np.concatenate([rng.uniform(0, 300, (40, 2)), np.ones((40, 2))], axis=1)
    kd = kq.copy()
    kd[:, :2] += 10                                                      # a pure shift: every match an inlier
    matches = [np.stack([np.arange(n), np.arange(n)], axis=1) for n in (40, 8)]
    _, counts = g.spatial_verification(np.array([3, 7]), kq, [kd, kd], matches)
    assert counts.tolist() == [40, 8]
    _, counts = g.spatial_verification(np.array([3, 7]), kq, [kd, kd], matches, min_inliers=10)
    assert counts.tolist() == [40, 0]
