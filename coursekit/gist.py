"""GIST: the texture and layout of a whole image in 512 numbers.

Oliva and Torralba, "Modeling the shape of the scene: a holistic
representation of the spatial envelope", IJCV 42(3), 2001. Where a colour
histogram keeps *which colours* an image has, GIST keeps *which oriented
structures, at which scale, where*: the energy of a bank of Gabor filters,
averaged over a coarse grid. It ignores colour altogether.

The steps, with the parameter values of the authors' public implementation
(``LMgist.m``; defaults below):

1. **grey levels**: the mean of R, G and B; resized so that the shorter
   side is ``image_size`` (128) and centre-cropped to a square; intensities
   stretched to ``[0, 255]``;
2. **pre-filtering** (:func:`prefilter`): ``log(1 + I)``, then a whitening
   high-pass (the image minus its Gaussian low-pass, which keeps half the
   amplitude at ``fc = 4`` cycles per image), then *local contrast
   normalisation*: division by ``0.2 +`` the local standard deviation
   (the square root of the low-pass of the squared image). Uneven lighting
   and contrast are taken out before the filters see the image;
3. **Gabor bank** (:func:`gabor_bank`): ``S = 4`` scales x ``O = 8``
   orientations, defined in the frequency domain on the image padded by 32
   pixels (mirror padding, against border effects). Filter ``(s, o)`` is

       G(f, phi) = exp(-10 a (f / f_s - 1)^2 - 2 pi b (phi - theta_o)^2),

   a Gaussian in log-polar-like coordinates around the radial frequency
   ``f_s = 0.3 / 1.85^s`` cycles per pixel (``s = 0`` finest) with
   ``a = 0.35``, and around the orientation ``theta_o = pi o / O`` with
   ``b = 16 O^2 / 32^2`` (1 for 8 orientations); ``phi - theta_o`` is
   wrapped to ``[-pi, pi)``. The filter covers one half-plane of
   frequencies, so its output is complex and its modulus is the local
   *energy* of that band, insensitive to the phase of the pattern;
4. **grid**: each filter's energy is averaged over a ``4 x 4`` grid of
   blocks, giving ``S * O * 16 = 512`` numbers.

Angles: ``theta_o`` is the direction of the pattern's *wave vector*, counted
counterclockwise from the image's x axis with y pointing *up*. Orientation 0
responds to vertical stripes (intensity changing along x), orientation
``O / 2`` to horizontal stripes. A grey-level pattern ``cos(2 pi f (x cos t
+ y sin t))`` with ``y = -row`` has its energy in the band whose
``theta_o`` is nearest ``t`` (mod pi).

Everything after loading is vectorised with FFTs (SciPy's, in single
precision for the filters): one forward FFT per image and one batched
inverse FFT for the 32 filters; the bank is computed once per size and kept
in memory.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import scipy.fft

__all__ = ["IMAGE_SIZE", "ORIENTATIONS", "N_BLOCKS", "FC_PREFILT", "BOUNDARY", "grey_square",
           "prefilter", "gabor_bank", "gabor_energy", "gist_descriptor"]

IMAGE_SIZE = 128               # side of the square the image is resized to (LMgist's default)
ORIENTATIONS = (8, 8, 8, 8)    # orientations per scale, finest scale first
N_BLOCKS = 4                   # the energy is averaged over an N_BLOCKS x N_BLOCKS grid
FC_PREFILT = 4.0               # pre-filter cut-off, cycles per image
BOUNDARY = 32                  # mirror padding before the Gabor filters, pixels


def _frequencies(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer frequencies (cycles per ``n`` pixels) of an ``n x n`` FFT, in
    NumPy's FFT layout (0 first): ``fy`` down the rows, ``fx`` across the
    columns, both ``(n, n) float64``."""
    f = np.fft.fftfreq(n, d=1.0 / n)
    return f[:, None] * np.ones((1, n)), np.ones((n, 1)) * f[None, :]


def grey_square(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Grey levels of an image, resized and centre-cropped to ``(size, size) float32`` in ``[0, 255]``.

    ``image``: ``(H, W, 3)`` RGB or ``(H, W)`` grey, any real dtype. Grey =
    mean of the channels. The image is scaled so that its shorter side is
    ``size`` (area averaging when shrinking, bilinear when enlarging) and
    the central square is kept, as ``imresizecrop`` in ``LMgist.m``. Then
    the intensities are stretched to ``[0, 255]`` (a flat image gives zeros),
    so a change of brightness ``I -> g I + c`` with ``g > 0`` changes nothing.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        grey = image.astype(np.float32).mean(axis=2)
    elif image.ndim == 2:
        grey = image.astype(np.float32)
    else:
        raise ValueError(f"expected an (H, W, 3) RGB or (H, W) grey image, got shape {image.shape}")
    H, W = grey.shape
    scale = max(size / H, size / W)
    h, w = max(size, round(H * scale)), max(size, round(W * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    grey = cv2.resize(grey, (w, h), interpolation=interpolation)
    top, left = (h - size) // 2, (w - size) // 2
    grey = grey[top:top + size, left:left + size]
    grey = grey - grey.min()
    peak = grey.max()
    return (grey * (255.0 / peak) if peak > 0 else grey).astype(np.float32)


def prefilter(grey: np.ndarray, fc: float = FC_PREFILT) -> np.ndarray:
    """Whitening and local contrast normalisation: ``(n, n)`` in ``[0, 255]`` -> ``(n, n) float32``.

    With ``L(.)`` the Gaussian low-pass ``exp(-(fx^2 + fy^2) / s^2)``,
    ``s = fc / sqrt(ln 2)`` (its gain is 1/2 at ``fc`` cycles per image):

        J = log(1 + I) - L(log(1 + I))
        out = J / (0.2 + sqrt(|L(J^2)|))

    computed on the image mirror-padded by 5 pixels, then cropped back.
    """
    grey = np.asarray(grey, dtype=np.float64)
    if grey.ndim != 2 or grey.shape[0] != grey.shape[1]:
        raise ValueError(f"expected a square grey image, got shape {grey.shape}")
    pad = 5
    size = grey.shape[0]
    img = np.pad(np.log1p(grey), pad, mode="symmetric")
    n = img.shape[0]
    if n % 2:
        img = np.pad(img, ((0, 1), (0, 1)), mode="symmetric")
        n += 1
    fy, fx = _frequencies(n)
    s = fc / np.sqrt(np.log(2.0))
    lowpass = np.exp(-(fx ** 2 + fy ** 2) / s ** 2)
    J = img - np.real(np.fft.ifft2(np.fft.fft2(img) * lowpass))
    local_std = np.sqrt(np.abs(np.fft.ifft2(np.fft.fft2(J ** 2) * lowpass)))
    out = J / (0.2 + local_std)
    return out[pad:pad + size, pad:pad + size].astype(np.float32)


@lru_cache(maxsize=8)
def gabor_bank(n: int, orientations: tuple[int, ...] = ORIENTATIONS) -> np.ndarray:
    """Transfer functions of the Gabor bank on an ``n x n`` FFT grid.

    Returns ``(K, n, n) float32``, ``K = sum(orientations)``, in NumPy's FFT
    layout (frequency 0 at ``[0, 0]``), filters ordered scale by scale
    (finest first), orientation ``theta_o = pi o / O`` within a scale. See
    the module docstring for the formula. Computed once per ``(n,
    orientations)`` and kept in memory (read-only).
    """
    fy, fx = _frequencies(n)
    f = np.sqrt(fx ** 2 + fy ** 2) / n        # radial frequency, cycles per pixel
    phi = np.arctan2(-fy, fx)                 # wave-vector direction, y up
    a = 0.35
    filters = []
    for s, O in enumerate(orientations):
        f_s = 0.3 / 1.85 ** s
        b = 16.0 * O ** 2 / 32.0 ** 2
        for o in range(O):
            dphi = np.mod(phi - np.pi * o / O + np.pi, 2 * np.pi) - np.pi  # wrapped to [-pi, pi)
            filters.append(np.exp(-10.0 * a * (f / f_s - 1.0) ** 2 - 2.0 * np.pi * b * dphi ** 2))
    bank = np.stack(filters).astype(np.float32)
    bank.flags.writeable = False
    return bank


def _block_means(x: np.ndarray, n_blocks: int) -> np.ndarray:
    """Means of ``(..., n, n)`` over an ``n_blocks x n_blocks`` grid -> ``(..., n_blocks, n_blocks)``.

    Block edges are ``floor(linspace(0, n, n_blocks + 1))``, as ``downN`` in ``LMgist.m``.
    """
    n = x.shape[-1]
    edges = np.linspace(0, n, n_blocks + 1).astype(np.int64)
    sums = np.add.reduceat(np.add.reduceat(x, edges[:-1], axis=-2), edges[:-1], axis=-1)
    sizes = np.diff(edges)
    return sums / (sizes[:, None] * sizes[None, :])


def gabor_energy(image: np.ndarray, image_size: int = IMAGE_SIZE, orientations: tuple[int, ...] = ORIENTATIONS,
                 n_blocks: int = N_BLOCKS, fc: float = FC_PREFILT) -> np.ndarray:
    """GIST before flattening: ``(S, O, n_blocks, n_blocks) float32``.

    ``image``: ``(H, W, 3)`` RGB or ``(H, W)`` grey. Entry ``[s, o, i, j]``
    is the mean energy (modulus of the response) of the Gabor filter at
    scale ``s`` (finest first) and orientation ``theta_o = pi o / O`` in the
    grid block at row ``i``, column ``j``. Needs the same number of
    orientations at every scale.
    """
    orientations = tuple(int(o) for o in orientations)
    if len(set(orientations)) != 1:
        raise ValueError(f"expected the same number of orientations at every scale, got {orientations}")
    J = prefilter(grey_square(image, image_size), fc)
    padded = np.pad(J, BOUNDARY, mode="symmetric")
    bank = gabor_bank(padded.shape[0], orientations)                  # (K, n, n)
    spectrum = scipy.fft.fft2(padded.astype(np.complex64))
    energy = np.abs(scipy.fft.ifft2(spectrum[None] * bank, axes=(-2, -1)))  # (K, n, n)
    energy = energy[:, BOUNDARY:BOUNDARY + image_size, BOUNDARY:BOUNDARY + image_size]
    grid = _block_means(energy, n_blocks)                              # (K, n_blocks, n_blocks)
    return grid.reshape(len(orientations), orientations[0], n_blocks, n_blocks).astype(np.float32)


def gist_descriptor(image: np.ndarray, image_size: int = IMAGE_SIZE, orientations: tuple[int, ...] = ORIENTATIONS,
                    n_blocks: int = N_BLOCKS, fc: float = FC_PREFILT) -> np.ndarray:
    """The GIST of an image (Oliva and Torralba, IJCV 2001): ``(S * O * n_blocks^2,) float32``.

    512 numbers with the defaults: :func:`gabor_energy` flattened in C
    order (scale, orientation, block row, block column). Compare two with
    the Euclidean distance, as the authors do; deterministic.
    """
    return gabor_energy(image, image_size, orientations, n_blocks, fc).reshape(-1)
