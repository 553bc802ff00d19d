import numpy as np
import pytest

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
