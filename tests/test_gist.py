"""GIST (Oliva and Torralba, IJCV 2001), tested by its properties."""

import cv2
import numpy as np
import pytest

from coursekit import gist


def grating(t_deg: float, f: float, n: int = 128, contrast: float = 100.0) -> np.ndarray:
    """``128 + contrast * cos(2 pi f (x cos t + y sin t))`` with y pointing up, ``(n, n) float64``."""
    rows, cols = np.mgrid[0:n, 0:n]
    t = np.deg2rad(t_deg)
    return 128.0 + contrast * np.cos(2 * np.pi * f * (cols * np.cos(t) - rows * np.sin(t)))


def natural_image(seed: int = 0, shape=(96, 144)) -> np.ndarray:
    """Smoothed noise with edges, in [20, 200], ``(H, W, 3) uint8``."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((*shape, 3)).astype(np.float32), (0, 0), 2.0)
    img[shape[0] // 3:, : shape[1] // 2] += 0.5
    img = (img - img.min()) / (img.max() - img.min())
    return (20 + 180 * img).astype(np.uint8)


def test_shape_dtype_and_determinism():
    image = natural_image()
    g = gist.gist_descriptor(image)
    assert g.shape == (512,) and g.dtype == np.float32
    assert np.isfinite(g).all() and (g >= 0).all() and g.max() > 0
    np.testing.assert_array_equal(g, gist.gist_descriptor(image.copy()))
    assert gist.gabor_energy(image).shape == (4, 8, 4, 4)
    np.testing.assert_array_equal(gist.gabor_energy(image).reshape(-1), g)
    assert gist.gist_descriptor(image, orientations=(6, 6, 6), n_blocks=3).shape == (3 * 6 * 9,)


@pytest.mark.parametrize("o", range(8))
def test_a_grating_excites_its_orientation(o):
    E = gist.gabor_energy(grating(180 * o / 8, f=0.12))
    per_orientation = E.sum(axis=(0, 2, 3))
    assert np.argmax(per_orientation) == o
    assert per_orientation[(o + 4) % 8] < 0.1 * per_orientation[o]  # the orthogonal band: nearly nothing


@pytest.mark.parametrize("s", range(4))
def test_a_grating_excites_its_scale(s):
    f_s = 0.3 / 1.85 ** s  # the centre frequency of scale s, cycles per pixel
    E = gist.gabor_energy(grating(30.0, f=f_s))
    assert np.argmax(E.sum(axis=(1, 2, 3))) == s


def test_energy_stays_where_the_pattern_is():
    image = np.full((128, 128), 128.0)
    image[:64, :64] = grating(0.0, f=0.15)[:64, :64]  # a patch of stripes, top left
    E = gist.gabor_energy(image).sum(axis=(0, 1))  # (4, 4) blocks
    assert E[:2, :2].min() > 5 * E[2:, 2:].max()


def test_invariant_to_brightness_offset_and_contrast_gain():
    image = natural_image(1)  # values in [20, 200]: no clipping below
    g = gist.gist_descriptor(image)
    brighter = image.astype(np.int64) + 40
    np.testing.assert_allclose(gist.gist_descriptor(brighter.astype(np.uint8)), g, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gist.gist_descriptor(0.5 * image.astype(np.float64) + 3), g, rtol=1e-4, atol=1e-5)


def test_prefilter_takes_out_smooth_illumination():
    rng = np.random.default_rng(3)
    texture = 60 + 120 * cv2.GaussianBlur(rng.random((128, 128)), (0, 0), 1.0)
    shade = np.linspace(0.3, 1.0, 128)[None, :] * np.ones((128, 1))  # light falling off to the left
    a, b = gist.prefilter(texture), gist.prefilter(texture * shade)
    inside = np.s_[:, 10:-10]  # away from the mirror-padded left and right borders
    assert np.corrcoef(a[inside].ravel(), b[inside].ravel())[0, 1] > 0.95
    assert np.corrcoef(texture.ravel(), (texture * shade).ravel())[0, 1] < 0.5
    flat = gist.prefilter(np.full((64, 64), 100.0))
    assert np.abs(flat).max() < 1e-6


def test_grey_square_crops_the_centre():
    rng = np.random.default_rng(4)
    wide = rng.integers(0, 256, (128, 256, 3), dtype=np.uint8)
    np.testing.assert_allclose(gist.gist_descriptor(wide), gist.gist_descriptor(wide[:, 64:192]), atol=1e-6)
    g = gist.grey_square(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8), 128)
    assert g.shape == (128, 128) and g.dtype == np.float32 and g.min() == 0 and g.max() == pytest.approx(255)
    small = gist.grey_square(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), 128)  # enlarged
    assert small.shape == (128, 128)
    assert (gist.grey_square(np.full((50, 50, 3), 7, np.uint8)) == 0).all()  # flat: zeros, no division by 0


def test_gabor_bank_is_built_once_and_read_only():
    bank = gist.gabor_bank(192)
    assert bank.shape == (32, 192, 192) and bank.dtype == np.float32
    assert gist.gabor_bank(192) is bank
    assert not bank.flags.writeable
    assert bank.min() >= 0 and bank.max() <= 1
    assert bank[:, 0, 0].max() < 0.035  # the mean intensity barely passes (exp(-3.5), as in LMgist.m)
    # One half-plane: filter o at +f, not at -f (its output is complex, its modulus an energy).
    f0 = round(0.3 * 192)
    assert bank[0, 0, f0] > 0.9 and bank[0, 0, -f0] < 1e-6


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="image"):
        gist.gist_descriptor(np.zeros((4, 4, 4, 3)))
    with pytest.raises(ValueError, match="orientations"):
        gist.gabor_energy(np.zeros((32, 32)), orientations=(8, 4))
    with pytest.raises(ValueError, match="square"):
        gist.prefilter(np.zeros((10, 12)))
