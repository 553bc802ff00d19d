import cv2
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from coursekit import color
from coursekit.color import hellinger_normalize, joint_histogram


def test_joint_histogram_matches_histogramdd():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    ours = joint_histogram(image, bins=(4, 5, 6), space="rgb")
    ref, _ = np.histogramdd(image.reshape(-1, 3).astype(float), bins=(4, 5, 6), range=[(0, 256)] * 3)
    np.testing.assert_allclose(ours, ref.ravel() / ref.sum(), atol=1e-7)
    assert ours.dtype == np.float32 and ours.shape == (120,)


def test_hsv_histogram_of_a_pure_colour_is_one_bin():
    image = np.zeros((8, 8, 3), np.uint8)
    image[..., 0] = 255  # red: hue 0, full saturation and value
    h = joint_histogram(image, bins=(8, 8, 8))
    assert h.max() == 1.0 and np.argmax(h) == (0 * 8 + 7) * 8 + 7


def test_bad_image_is_refused():
    with pytest.raises(ValueError, match="uint8"):
        joint_histogram(np.zeros((4, 4, 3), np.float32))


def test_hellinger_dot_is_bhattacharyya():
    rng = np.random.default_rng(1)
    h = rng.random((2, 10))
    h /= h.sum(axis=1, keepdims=True)
    x = hellinger_normalize(h)
    assert x[0] @ x[1] == pytest.approx(np.sqrt(h[0] * h[1]).sum(), rel=1e-5)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, rtol=1e-5)


# --------------------------------------------------------------------------- histograms

def random_image(seed=0, shape=(37, 23)):
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.mark.parametrize("space", ["rgb", "hsv"])
def test_bin_indices_follow_the_documented_layout(space):
    image = random_image(2)
    bins = (3, 5, 4)
    idx = color.bin_indices(image, bins, space)
    pixels = image if space == "rgb" else cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    ranges = (256, 256, 256) if space == "rgb" else (180, 256, 256)
    for (y, x) in [(0, 0), (5, 7), (36, 22)]:
        i, j, k = (int(pixels[y, x, c]) * bins[c] // ranges[c] for c in range(3))
        assert idx[y, x] == (i * bins[1] + j) * bins[2] + k
    assert idx.shape == image.shape[:2] and idx.min() >= 0 and idx.max() < np.prod(bins)
    h = joint_histogram(image, bins, space)
    np.testing.assert_allclose(h, np.bincount(idx.ravel(), minlength=60) / idx.size, atol=1e-7)


def test_bins_must_be_three_positive_integers():
    with pytest.raises(ValueError, match="bins"):
        color.bin_indices(random_image(), (8, 8), "rgb")
    with pytest.raises(ValueError, match="space"):
        color.joint_histogram(random_image(), (8, 8, 8), "lab")


@pytest.mark.parametrize("space", ["rgb", "hsv"])
def test_marginal_histogram_is_the_joint_histograms_marginals(space):
    image = random_image(3)
    bins = (6, 4, 5)
    joint = joint_histogram(image, bins, space).reshape(bins).astype(np.float64)
    expected = np.concatenate([joint.sum(axis=(1, 2)), joint.sum(axis=(0, 2)), joint.sum(axis=(0, 1))]) / 3
    m = color.marginal_histogram(image, bins, space)
    assert m.dtype == np.float32 and m.shape == (15,)
    np.testing.assert_allclose(m, expected, atol=1e-7)
    assert m.sum() == pytest.approx(1.0, abs=1e-6)


def test_marginals_cannot_tell_which_values_occur_together():
    # Red + blue and magenta + black: different colours, the same marginals.
    a = np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8)
    b = np.array([[[255, 0, 255], [0, 0, 0]]], np.uint8)
    np.testing.assert_array_equal(color.marginal_histogram(a, (2, 2, 2), "rgb"),
                                  color.marginal_histogram(b, (2, 2, 2), "rgb"))
    assert not np.array_equal(joint_histogram(a, (2, 2, 2), "rgb"), joint_histogram(b, (2, 2, 2), "rgb"))


def test_pyramid_weights_are_lazebnik_et_al():
    np.testing.assert_allclose(color.pyramid_weights(0), [1.0])
    np.testing.assert_allclose(color.pyramid_weights(1), [1 / 2, 1 / 2])
    np.testing.assert_allclose(color.pyramid_weights(2), [1 / 4, 1 / 4, 1 / 2])
    np.testing.assert_allclose(color.pyramid_weights(3), [1 / 8, 1 / 8, 1 / 4, 1 / 2])
    for L in range(6):
        assert color.pyramid_weights(L).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        color.pyramid_weights(-1)


def test_pyramid_level_0_is_the_joint_histogram_and_cells_are_quadrants():
    image = random_image(4, shape=(40, 30))
    bins = (4, 3, 2)
    B = 24
    p = color.spatial_pyramid_histogram(image, bins, levels=2, space="hsv")
    assert p.shape == (B * (1 + 4 + 16),) and p.dtype == np.float32
    assert p.sum() == pytest.approx(1.0, abs=1e-6)
    w = color.pyramid_weights(2)
    np.testing.assert_allclose(p[:B], w[0] * joint_histogram(image, bins, "hsv"), atol=1e-7)
    # Level 1, row-major cells: each is the joint histogram of a quadrant, a quarter of the pixels.
    quadrants = [image[:20, :15], image[:20, 15:], image[20:, :15], image[20:, 15:]]
    for c, quad in enumerate(quadrants):
        np.testing.assert_allclose(p[B * (1 + c):B * (2 + c)], w[1] * joint_histogram(quad, bins, "hsv") / 4, atol=1e-7)
    level_0_only = color.spatial_pyramid_histogram(image, bins, 0, "hsv")
    np.testing.assert_allclose(level_0_only, joint_histogram(image, bins, "hsv"), atol=1e-7)


def test_pyramid_intersection_is_the_pyramid_match_kernel():
    a, b = random_image(5, (32, 32)), random_image(6, (32, 32))
    bins, L = (3, 3, 3), 2
    pa = color.spatial_pyramid_histogram(a, bins, L, "rgb")[None]
    pb = color.spatial_pyramid_histogram(b, bins, L, "rgb")[None]
    B, w = 27, color.pyramid_weights(L)
    sizes = [B * 4 ** l for l in range(L + 1)]
    edges = np.cumsum([0] + sizes)
    # sum_l w_l * I_l, with I_l the intersection of level l's (unweighted) histograms
    kernel = sum(w[l] * np.minimum(pa[0, edges[l]:edges[l + 1]] / w[l], pb[0, edges[l]:edges[l + 1]] / w[l]).sum()
                 for l in range(L + 1))
    assert color.histogram_intersection(pa, pb)[0, 0] == pytest.approx(kernel, rel=1e-5)


def test_pyramid_sees_layout_the_histogram_does_not():
    image = random_image(7, (24, 24))
    flipped = image[:, ::-1]
    np.testing.assert_allclose(joint_histogram(image, (4, 4, 4)), joint_histogram(flipped, (4, 4, 4)), atol=1e-7)
    p, q = (color.spatial_pyramid_histogram(x, (4, 4, 4), 1) for x in (image, flipped))
    np.testing.assert_allclose(p[:64], q[:64], atol=1e-7)
    assert np.abs(p[64:] - q[64:]).sum() > 0.01


# --------------------------------------------------------------------------- pairwise comparisons

def random_hists(rng, rows, d, dtype=np.float64):
    h = rng.random((rows, d)) * (rng.random((rows, d)) < 0.6)
    h[:, :2] = 0.0  # bins empty everywhere
    h[:, 2] += 0.1
    return (h / h.sum(axis=1, keepdims=True)).astype(dtype)


def loop_chi2(X, Y):
    out = np.zeros((len(X), len(Y)))
    for q, x in enumerate(X):
        for n, y in enumerate(Y):
            out[q, n] = 0.5 * sum((a - b) ** 2 / (a + b) for a, b in zip(x, y) if a + b > 0)
    return out


def loop_intersection(X, Y):
    return np.array([[sum(min(a, b) for a, b in zip(x, y)) / sum(y) for y in Y] for x in X])


@pytest.fixture
def XY():
    rng = np.random.default_rng(10)
    return random_hists(rng, 5, 12), random_hists(rng, 7, 12)


def test_l1_and_l2_match_scipy(XY):
    X, Y = XY
    np.testing.assert_allclose(color.l1_distance(X, Y), cdist(X, Y, "cityblock"), rtol=1e-10)
    np.testing.assert_allclose(color.l2_distance(X, Y), cdist(X, Y, "euclidean"), rtol=1e-7, atol=1e-9)
    assert color.l2_distance(X, X).diagonal() == pytest.approx(0.0, abs=1e-7)


def test_chi2_matches_a_loop_and_has_its_range(XY):
    X, Y = XY
    d = color.chi2_distance(X, Y)
    np.testing.assert_allclose(d, loop_chi2(X, Y), rtol=1e-10)
    assert not np.isnan(d).any() and (d >= 0).all() and (d <= 1).all()
    np.testing.assert_allclose(color.chi2_distance(Y, X), d.T, rtol=1e-12)
    assert color.chi2_distance(X, X).diagonal() == pytest.approx(0.0)
    disjoint = color.chi2_distance(np.array([[0.5, 0.5, 0, 0]]), np.array([[0, 0, 0.25, 0.75]]))
    assert disjoint[0, 0] == pytest.approx(1.0)


def test_hellinger_distance_is_one_minus_bhattacharyya(XY):
    X, Y = XY
    H = color.hellinger_distance(X, Y)
    bc = np.sqrt(X[:, None, :] * Y[None, :, :]).sum(-1)
    np.testing.assert_allclose(H ** 2, 1 - bc, atol=1e-10)
    np.testing.assert_allclose(H, cdist(np.sqrt(X), np.sqrt(Y)) / np.sqrt(2), rtol=1e-7)
    # Ranking by it = ranking by the dot product of hellinger_normalize'd vectors.
    dots = hellinger_normalize(X) @ hellinger_normalize(Y).T
    np.testing.assert_array_equal(np.argsort(H, axis=1), np.argsort(-dots, axis=1))


def test_intersection_is_swain_and_ballard(XY):
    X, Y = XY
    np.testing.assert_allclose(color.histogram_intersection(X, Y), loop_intersection(X, Y), rtol=1e-10)
    # For L1-normalised histograms: 1 - L1 / 2, so it ranks exactly like L1.
    np.testing.assert_allclose(color.histogram_intersection(X, Y), 1 - cdist(X, Y, "cityblock") / 2, atol=1e-12)
    counts_x, counts_y = np.array([[4.0, 2.0, 0.0]]), np.array([[2.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(color.histogram_intersection(counts_x, counts_y), [[4 / 6, 0.0]])  # empty model: 0


def test_pairwise_blocks_give_the_same_result(monkeypatch, XY):
    X, Y = XY
    full = {m: color.similarities(X, Y, m) for m in color.MEASURES}
    monkeypatch.setattr(color, "_BLOCK", 30)  # blocks of 2 database rows, one query at a time
    for m in color.MEASURES:
        np.testing.assert_allclose(color.similarities(X, Y, m), full[m], rtol=1e-12, atol=1e-15)


def test_dtypes_and_shapes():
    rng = np.random.default_rng(11)
    X32, Y32 = random_hists(rng, 3, 8, np.float32), random_hists(rng, 4, 8, np.float32)
    for f in (color.l1_distance, color.l2_distance, color.chi2_distance, color.hellinger_distance,
              color.histogram_intersection):
        assert f(X32, Y32).dtype == np.float32 and f(X32, Y32).shape == (3, 4)
        assert f(X32.astype(np.float64), Y32).dtype == np.float64
        with pytest.raises(ValueError, match="same D"):
            f(X32, Y32[:, :5])
        with pytest.raises(ValueError):
            f(X32[0], Y32)


def test_similarities_are_larger_for_closer(XY):
    X, Y = XY
    np.testing.assert_allclose(color.similarities(X, Y, "chi2"), -color.chi2_distance(X, Y))
    np.testing.assert_allclose(color.similarities(X, Y, "intersection"), color.histogram_intersection(X, Y))
    for m in color.MEASURES:
        s = color.similarities(X, X, m)
        assert (np.argmax(s, axis=1) == np.arange(len(X))).all(), m  # every histogram is nearest itself
    with pytest.raises(ValueError, match="measure"):
        color.similarities(X, Y, "cosine")


@pytest.mark.parametrize("space", ["rgb", "hsv"])
def test_bin_colours_fall_in_their_own_bins(space):
    bins = (6, 4, 5)
    colours = color.bin_colours(bins, space)
    assert colours.shape == (120, 3) and colours.dtype == np.float32
    assert colours.min() >= 0 and colours.max() <= 1
    as_image = np.round(colours * 255).astype(np.uint8)[None]  # (1, 120, 3) RGB
    idx = color.bin_indices(as_image, bins, space)[0]
    # Each centre lands in its own bin (HSV: up to the RGB round trip, for all but a few dark bins).
    agree = (idx == np.arange(120)).mean()
    assert agree == 1.0 if space == "rgb" else agree > 0.8
