"""Rendering the ``embedded`` benchmark's images: one object, query, positive or distractor.

Shapes and masks, tinted crops, backgrounds, pinhole-camera homographies,
warps and alpha pasting, clutter, occluders and the photometric "camera"
(see :mod:`coursekit.datasets.embedded` for what each step models). Every
function draws from the generator it is given, in a fixed order: the same
generator state gives the same image.
"""

from __future__ import annotations

import colorsys

import numpy as np

from .catalogue import CATALOGUE_SEED, SOURCES, object_catalogue, read_source

#: Image sizes (width, height); a quarter of the images are portrait.
LANDSCAPE = (480, 360)
PORTRAIT = (360, 480)

#: Difficulty thresholds (see :mod:`coursekit.datasets.embedded`).
THRESHOLDS = {
    "junk_visible": 0.30,   # visible < this -> junk
    "junk_area": 0.012,     # area < this -> junk
    "hard_visible": 0.65,   # visible < this -> hard
    "hard_tilt": 45.0,      # tilt (deg) > this -> hard
    "hard_rotation": 60.0,  # |rotation| (deg) > this -> hard
    "hard_scale": 2.0,      # scale > this or < 1/this -> hard
    "hard_area": 0.04,      # area < this -> hard
    "hard_blur": 2.0,       # blur sigma (px) > this -> hard
}

# ----------------------------------------------------------------------------
# Object shapes
# ----------------------------------------------------------------------------


def shape_mask(shape: str, w: int, h: int, key: int) -> np.ndarray:
    """Anti-aliased mask ``(h, w) uint8`` of an object shape (0 or 255 inside)."""
    import cv2

    if shape == "rect":
        return np.full((h, w), 255, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    if shape == "ellipse":
        t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        pts = np.stack([(w - 1) / 2 * (1 + np.cos(t)), (h - 1) / 2 * (1 + np.sin(t))], 1)
    else:
        rng = np.random.default_rng([CATALOGUE_SEED, key])
        pts = _blob(rng, (w - 1) / 2, (h - 1) / 2, (w - 1) / 2, (h - 1) / 2, rmin=0.7)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return mask


def _blob(rng, cx, cy, rx, ry, rmin=0.55, n=None) -> np.ndarray:
    """A random star-shaped polygon ``(n, 2) float64`` around ``(cx, cy)``."""
    n = int(rng.integers(6, 11)) if n is None else n
    ang = (np.arange(n) + rng.uniform(-0.35, 0.35, n)) * (2 * np.pi / n) + rng.uniform(0, 2 * np.pi)
    rad = rng.uniform(rmin, 1.0, n)
    return np.stack([cx + rx * rad * np.cos(ang), cy + ry * rad * np.sin(ang)], 1)


# ----------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------


class Assets:
    """Source photos, object patches and masks, loaded once per build; ``version``: the generator's."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.src = {name: read_source(name) for name in SOURCES}
        self.catalogue = object_catalogue(self.src)
        self.patches: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for o in self.catalogue:
            x0, y0, x1, y1 = o.box
            patch = np.ascontiguousarray(self.src[o.source][y0:y1, x0:x1])
            self.patches[o.id] = (patch, shape_mask(o.shape, x1 - x0, y1 - y0, o.id))
        self.backgrounds = [n for n, v in SOURCES.items() if v[2] == "background"]
        self.clutter_ids = [o.id for o in self.catalogue if o.split == "clutter"]


def _u(rng, lo, hi) -> float:
    """One uniform draw in ``[lo, hi)``, as a Python ``float``."""
    return float(rng.uniform(lo, hi))


def _colour(h, s, v) -> np.ndarray:
    """An HSV colour (the hue wraps around) as RGB ``(3,) float32`` in 0-255."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32) * 255


def _tinted(rng, src: np.ndarray, out_w: int, out_h: int, record: dict | None = None) -> np.ndarray:
    """A random crop of a source photo resized to ``out_w x out_h``, coloured: ``(h, w, 3) uint8``."""
    import cv2

    sh, sw = src.shape[:2]
    aspect = out_w / out_h
    max_w = min(sw, sh * aspect)
    cw = max_w * _u(rng, 0.35, 1.0)
    ch = cw / aspect
    x0, y0 = _u(rng, 0, sw - cw), _u(rng, 0, sh - ch)
    crop = src[int(y0): int(y0 + ch), int(x0): int(x0 + cw)]
    flip = bool(rng.random() < 0.5)
    if flip:
        crop = crop[:, ::-1]
    interp = cv2.INTER_AREA if crop.shape[1] > out_w else cv2.INTER_LINEAR
    crop = cv2.resize(np.ascontiguousarray(crop), (out_w, out_h), interpolation=interp)
    if crop.ndim == 2:  # two-colour ramp: dark colour -> light colour
        hue = _u(rng, 0, 1)
        lo = _colour(hue + _u(rng, -0.15, 0.15), _u(rng, 0.2, 0.9), _u(rng, 0.0, 0.35))
        hi = _colour(hue + _u(rng, -0.15, 0.15), _u(rng, 0.1, 0.7), _u(rng, 0.6, 1.0))
        lut = (lo[None, :] + (hi - lo)[None, :] * (np.arange(256, dtype=np.float32)[:, None] / 255))
        lut = np.clip(np.round(lut), 0, 255).astype(np.uint8)
        out = cv2.LUT(cv2.merge([crop, crop, crop]), lut.reshape(256, 1, 3))
        tint = {"low": np.round(lo.astype(np.float64), 1).tolist(), "high": np.round(hi.astype(np.float64), 1).tolist()}
    else:
        gains = 2.0 ** rng.uniform(-0.5, 0.5, 3)
        perm = rng.permutation(3)
        out = np.clip(crop[..., perm].astype(np.float32) * gains.astype(np.float32), 0, 255).astype(np.uint8)
        tint = {"channels": perm.tolist(), "gains": np.round(gains, 3).tolist()}
    if record is not None:
        record.update({"crop": [round(x0, 1), round(y0, 1), round(cw, 1), round(ch, 1)],
                       "flip": flip, "tint": tint})
    return out


def _background(rng, assets: Assets, w: int, h: int) -> tuple[np.ndarray, dict]:
    """A background ``(h, w, 3) uint8`` (a tinted crop of a background photo) and its record."""
    name = assets.backgrounds[int(rng.integers(len(assets.backgrounds)))]
    rec: dict = {"source": name}
    img = _tinted(rng, assets.src[name], w, h, rec)
    sigma = _u(rng, 1.0, 3.0) if rng.random() < 0.3 else 0.0
    if sigma:
        import cv2

        img = cv2.GaussianBlur(img, (0, 0), sigma)
    rec["blur"] = round(sigma, 2)
    return img, rec


def fractal_noise(rng, w: int, h: int, beta: float) -> np.ndarray:
    """Gaussian noise with a ``1 / f**beta`` power spectrum, stretched to ``(h, w) uint8``.

    Natural images have about ``beta = 2`` (Field, JOSA A 1987); smaller is
    rougher, larger smoother. One inverse real FFT.
    """
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0
    spectrum = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** (beta / 2)
    spectrum[0, 0] = 0.0
    noise = np.fft.irfft2(spectrum, s=(h, w))
    noise -= noise.min()
    return np.round(noise * (255.0 / max(float(noise.max()), 1e-12))).astype(np.uint8)


def _leaf_radii(rng, n: int, r_min: float, r_max: float) -> np.ndarray:
    """``n`` radii ``(n,) float64`` with density ``~ r**-3`` on ``[r_min, r_max]``: the dead-leaves law.

    That density makes the model scale invariant, as natural images are
    (Lee, Mumford and Huang, IJCV 2001). Inverse CDF:
    ``F(r) = (r_min**-2 - r**-2) / (r_min**-2 - r_max**-2)``.
    """
    u = rng.random(n)
    return 1.0 / np.sqrt(r_min ** -2 - u * (r_min ** -2 - r_max ** -2))


def _dead_leaves(rng, assets: Assets, w: int, h: int) -> tuple[np.ndarray, dict]:
    """Version 2's background: a dead-leaves scene, ``(h, w, 3) uint8``, and its record.

    Five *layers* (a tinted crop of a background photo at a random scale,
    or, one time in four, tinted fractal noise) are cut by randomly shaped
    leaves with :func:`_leaf_radii`'s sizes, dropped until they cover the
    frame about three times over; each leaf shows one layer. Every image
    gets its own crops and its own leaves, so that no two images share a
    background, while its statistics stay those of natural images
    (occluding shapes at every scale, textures, edges).

    The record: ``layers`` (each ``source`` (a photo's name or ``"noise"``),
    its crop and tint, and ``cover``, the fraction of the frame it shows),
    ``leaves``, ``r_min`` and ``source``: the photo that shows most, for
    measuring how often neighbours share one.
    """
    import cv2

    short = min(w, h)
    layers, records = [], []
    for _ in range(5):
        if rng.random() < 0.25:
            beta = _u(rng, 1.6, 2.6)
            rec: dict = {"source": "noise", "beta": round(beta, 2)}
            layers.append(_tinted(rng, fractal_noise(rng, w // 2, h // 2, beta), w, h, rec))
        else:
            name = assets.backgrounds[int(rng.integers(len(assets.backgrounds)))]
            rec = {"source": name}
            layers.append(_tinted(rng, assets.src[name], w, h, rec))
        records.append(rec)
    r_min, r_max = _u(rng, 0.03, 0.10) * short, 0.8 * short
    # mean leaf area: E[r^2] = 2 r_min^2 r_max^2 ln(r_max / r_min) / (r_max^2 - r_min^2) for this law,
    # times pi, times about 0.6 for the leaf's ragged, flattened outline
    mean_r2 = 2 * r_min ** 2 * r_max ** 2 * np.log(r_max / r_min) / (r_max ** 2 - r_min ** 2)
    n = int(np.ceil(3.0 * w * h / (0.6 * np.pi * mean_r2)))
    # the leaves, all drawn at once: n star-shaped octagons (as _blob draws one, 8 vertices each)
    r = _leaf_radii(rng, n, r_min, r_max)
    centre = rng.uniform(0, 1, (n, 1, 2)) * np.array([w, h])
    half_axes = np.stack([r, r * rng.uniform(0.5, 1.0, n)], 1)[:, None, :]                   # (n, 1, 2)
    ang = (np.arange(8) + rng.uniform(-0.35, 0.35, (n, 8))) * (np.pi / 4) + rng.uniform(0, 2 * np.pi, (n, 1))
    rad = rng.uniform(0.6, 1.0, (n, 8))
    pts = np.round(centre + half_axes * rad[..., None] * np.stack([np.cos(ang), np.sin(ang)], -1)).astype(np.int32)
    layer_of = rng.integers(0, len(layers), n)
    label = np.full((h, w), int(rng.integers(len(layers))), np.uint8)
    for poly, k in zip(pts, layer_of.tolist()):  # in order: a later leaf falls on the earlier ones
        cv2.fillPoly(label, [poly], k)
    img = layers[0].copy()
    for k in range(1, len(layers)):  # np.stack(layers)[label, y, x], one masked copy per layer
        cv2.copyTo(layers[k], (label == k).view(np.uint8), img)
    cover = np.bincount(label.ravel(), minlength=len(layers)) / label.size
    photos: dict[str, float] = {}
    for rec, c in zip(records, cover):
        rec["cover"] = round(float(c), 4)
        if rec["source"] != "noise":
            photos[rec["source"]] = photos.get(rec["source"], 0.0) + float(c)
    dominant = max(photos, key=photos.__getitem__) if photos else "noise"
    return img, {"model": "dead leaves", "source": dominant, "leaves": n, "r_min": round(r_min, 1),
                 "layers": records}


def _scene_background(rng, assets: Assets, w: int, h: int) -> tuple[np.ndarray, dict]:
    """The background of the assets' version: a crop of one photo (1) or dead leaves (2)."""
    if assets.version == 1:
        return _background(rng, assets, w, h)
    return _dead_leaves(rng, assets, w, h)


def _projected_corners(w, h, size, tilt, tilt_axis, rotation, distance) -> np.ndarray:
    """Corners ``(4, 2)`` of a ``w x h`` plane seen by a pinhole camera, centred at 0.

    The plane is scaled so its longer side is ``size`` px, tilted by ``tilt``
    degrees about the in-plane axis at ``tilt_axis`` degrees, rotated by
    ``rotation`` degrees in the image plane and seen from ``distance * size``
    px with a focal length of the same value (so an untilted plane keeps its
    size).
    """
    s = size / max(w, h)
    p = np.array([[-w / 2, -h / 2, 0], [w / 2, -h / 2, 0], [w / 2, h / 2, 0], [-w / 2, h / 2, 0]]) * s
    a, t, r = np.radians(tilt_axis), np.radians(tilt), np.radians(rotation)
    k = np.array([np.cos(a), np.sin(a), 0.0])
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot_tilt = np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * kx @ kx  # Rodrigues
    rot_z = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    q = p @ (rot_z @ rot_tilt).T
    d = distance * size
    return d * q[:, :2] / (d + q[:, 2:3])


def _warp(patch, mask, corners, center, w, h):
    """Warp an object into a ``w x h`` canvas.

    Returns the warped patch ``(h, w, 3) uint8``, its mask ``(h, w) uint8``,
    the area in pixels of the whole projected mask (in the frame or not) and
    the homography ``(3, 3)`` from the patch's pixel coordinates to the image.
    """
    import cv2

    ph, pw = ph0, pw0 = mask.shape
    dst = (corners + np.asarray(center)[None, :]).astype(np.float32)
    # shrink the patch first when it is drawn much smaller (anti-aliasing)
    side = max(np.ptp(dst[:, 0]), np.ptp(dst[:, 1]))
    if side < 0.7 * max(pw, ph):
        f = max(side / max(pw, ph), 0.05)
        nw, nh = max(2, round(pw * f)), max(2, round(ph * f))
        patch = cv2.resize(patch, (nw, nh), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_AREA)
        ph, pw = nh, nw
    src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    hom = cv2.getPerspectiveTransform(src, dst)
    img = cv2.warpPerspective(patch, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m = cv2.warpPerspective(mask, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    # area of the whole projected mask, inside the frame or not:
    # sum of mask * |det J|, with det J = det(H) / w(x, y)^3 for a homography
    ys, xs = np.mgrid[0:ph, 0:pw].astype(np.float64) + 0.5
    den = hom[2, 0] * xs + hom[2, 1] * ys + hom[2, 2]
    full = float(np.sum(mask / 255.0 * np.abs(np.linalg.det(hom) / den**3)))
    return img, m, full, hom @ np.diag([pw / pw0, ph / ph0, 1.0])


def _paste(canvas: np.ndarray, img: np.ndarray, mask: np.ndarray) -> None:
    """Alpha-blend ``img`` onto ``canvas`` (both uint8) in place, where ``mask`` > 0."""
    import cv2

    x0, y0, bw, bh = cv2.boundingRect(mask)
    if bw == 0 or bh == 0:
        return
    x1, y1 = x0 + bw, y0 + bh
    a = mask[y0:y1, x0:x1, None].astype(np.float32) / 255.0
    c = canvas[y0:y1, x0:x1].astype(np.float32)
    canvas[y0:y1, x0:x1] = np.round(c + a * (img[y0:y1, x0:x1].astype(np.float32) - c)).astype(np.uint8)


def _clutter(rng, assets: Assets, canvas: np.ndarray, use_objects: bool,
             size: tuple[float, float] = (0.2, 0.5), p_object: float = 0.5) -> dict:
    """Paste one clutter item: a non-query object or a tinted texture blob.

    ``size`` is the range of its longer side as a fraction of the image's
    shorter side; ``p_object`` the probability of a non-query object.
    """
    h, w = canvas.shape[:2]
    if use_objects and assets.clutter_ids and rng.random() < p_object:
        oid = assets.clutter_ids[int(rng.integers(len(assets.clutter_ids)))]
        patch, mask = assets.patches[oid]
        rec: dict = {"object": oid}
    else:
        name = assets.backgrounds[int(rng.integers(len(assets.backgrounds)))]
        pw, ph = int(rng.integers(80, 161)), int(rng.integers(80, 161))
        patch = _tinted(rng, assets.src[name], pw, ph)
        import cv2

        mask = np.zeros((ph, pw), np.uint8)
        pts = _blob(rng, (pw - 1) / 2, (ph - 1) / 2, (pw - 1) / 2, (ph - 1) / 2, rmin=0.6)
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        rec = {"texture": name}
    size = _u(rng, *size) * min(w, h)
    geo = {"size": size, "tilt": _u(rng, 0, 40), "tilt_axis": _u(rng, 0, 180),
           "rotation": _u(rng, -180, 180), "distance": _u(rng, 1.5, 3.0)}
    corners = _projected_corners(mask.shape[1], mask.shape[0], **geo)
    center = (_u(rng, 0, w), _u(rng, 0, h))
    img, m, _, _ = _warp(patch, mask, corners, center, w, h)
    _paste(canvas, img, m)
    rec.update({k: round(v, 2) for k, v in geo.items()})
    rec["center"] = [round(center[0], 1), round(center[1], 1)]
    return rec


def _draw_geometry(rng, target: str, query_size: float, short: int) -> tuple[dict, dict]:
    """Geometry of one object rendering for a difficulty target.

    Returns the homography parameters (see :func:`_projected_corners`) and
    the placement plan: ``fit`` (shrink it to fit the frame), ``in_frame``
    (about that fraction of its box stays in the frame) and ``occlusion``
    (the fraction an occluder should cover).
    """
    geo = {"tilt": _u(rng, 0, 35), "tilt_axis": _u(rng, 0, 180), "rotation": _u(rng, -30, 30),
           "distance": _u(rng, 1.5, 3.0), "size": query_size * 2.0 ** _u(rng, -0.6, 0.6)}
    plan = {"in_frame": 1.0, "occlusion": _u(rng, 0.05, 0.25) if rng.random() < 0.35 else 0.0,
            "fit": True}
    if target == "hard":
        factors = ["tilt", "rotation", "scale", "occlusion", "truncation"]
        k = 1 if rng.random() < 0.6 else 2
        for f in rng.choice(factors, size=k, replace=False):
            if f == "tilt":
                geo["tilt"] = _u(rng, 50, 68)
            elif f == "rotation":
                geo["rotation"] = _u(rng, 70, 180) * (1 if rng.random() < 0.5 else -1)
            elif f == "scale":
                if rng.random() < 0.6:
                    geo["size"] = query_size * 2.0 ** _u(rng, -1.7, -1.1)
                else:  # zoomed in: allowed to stick out of the frame
                    geo["size"] = query_size * 2.0 ** _u(rng, 1.1, 1.5)
                    plan["fit"] = False
            elif f == "occlusion":
                plan["occlusion"] = _u(rng, 0.4, 0.62)
            else:
                plan["in_frame"] = _u(rng, 0.4, 0.6)
    elif target == "junk":
        if rng.random() < 0.5:
            geo["size"] = _u(rng, 26, 50)
        elif rng.random() < 0.5:
            plan["in_frame"] = _u(rng, 0.08, 0.25)
        else:
            plan["occlusion"] = _u(rng, 0.78, 0.95)
    geo["size"] = float(min(geo["size"], 1.5 * short))
    return geo, plan


def _draw_camera(rng, level: str) -> dict:
    """Photometric parameters: ``mild`` (queries), ``easy`` or ``hard``."""
    span = {"mild": (0.25, 0.15, 0.06, 0.8, 3.0, (75, 96)),
            "easy": (0.5, 0.3, 0.12, 1.5, 5.0, (55, 96)),
            "hard": (0.8, 0.45, 0.2, 2.6, 10.0, (35, 91))}[level]
    g, gm, ch, blur_max, noise_max, q = span
    blur = _u(rng, 0.3, blur_max) if rng.random() < 0.5 else 0.0
    return {"gain": round(2.0 ** _u(rng, -g, g), 3), "gamma": round(2.0 ** _u(rng, -gm, gm), 3),
            "channels": np.round(2.0 ** rng.uniform(-ch, ch, 3), 3).tolist(),
            "blur": round(blur, 2), "noise": round(_u(rng, 0, noise_max), 2),
            "jpeg_quality": int(rng.integers(q[0], q[1]))}


_NORMAL_TABLE: np.ndarray | None = None


def _normal_table() -> np.ndarray:
    """Quantiles of the standard normal at ``(i + 0.5) / 65536``, ``(65536,) float32``."""
    global _NORMAL_TABLE
    if _NORMAL_TABLE is None:
        from scipy.special import ndtri

        _NORMAL_TABLE = ndtri((np.arange(65536) + 0.5) / 65536).astype(np.float32)
    return _NORMAL_TABLE


def _apply_camera(rng, img: np.ndarray, cam: dict) -> np.ndarray:
    """Apply the "camera" ``cam`` (gains, gamma, blur, noise) to ``(h, w, 3) uint8``; same shape, dtype."""
    import cv2

    x = np.arange(256, dtype=np.float64) / 255.0
    lut = np.stack([np.clip(255.0 * cam["gain"] * c * x ** cam["gamma"], 0, 255) for c in cam["channels"]], -1)
    out = cv2.LUT(img, np.round(lut).astype(np.uint8).reshape(256, 1, 3))
    if cam["blur"] > 0:
        out = cv2.GaussianBlur(out, (0, 0), cam["blur"])
    if cam["noise"] > 0:
        # Gaussian noise through a 16-bit inverse-CDF table: 3x faster than
        # rng.standard_normal and as Gaussian as an image needs
        noisy = _normal_table()[rng.integers(0, 65536, out.shape, dtype=np.uint16)]
        noisy *= np.float32(cam["noise"])
        noisy += out
        np.clip(noisy, 0, 255, out=noisy)
        out = np.rint(noisy).astype(np.uint8)
    return out


def _occluder(rng, assets: Assets, canvas, obj_mask, full_area, target) -> tuple[np.ndarray, dict]:
    """Cover about ``target`` of the object's projected area with a textured blob.

    Returns the occluder mask (uint8) and its record. The blob slides along
    a random direction from the object's centre until the covered fraction
    is as close to ``target`` as a bisection gets it.
    """
    import cv2

    h, w = canvas.shape[:2]
    ys, xs = np.nonzero(obj_mask > 127)
    cy, cx = ys.mean(), xs.mean()
    radius = max(np.ptp(xs), np.ptp(ys)) / 2 + 1
    r = radius * _u(rng, max(0.6, target + 0.3), max(1.1, target + 0.6))  # big enough to reach target
    shape = _blob(rng, 0, 0, r * _u(rng, 0.7, 1.3), r * _u(rng, 0.7, 1.3), rmin=0.6)
    ang = _u(rng, 0, 2 * np.pi)
    direction = np.array([np.cos(ang), np.sin(ang)])
    objf = obj_mask.astype(np.float32) / 255.0

    def blob_mask(d):
        m = np.zeros((h, w), np.uint8)
        pts = shape + np.array([cx, cy]) + d * direction
        cv2.fillPoly(m, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        return m

    def covered(d):
        return float(np.sum(objf * blob_mask(d)) / 255.0 / full_area)

    lo, hi = 0.0, radius + 1.6 * r  # covered(lo) is large, covered(hi) is ~0
    for _ in range(12):
        mid = (lo + hi) / 2
        if covered(mid) > target:
            lo = mid
        else:
            hi = mid
    d = (lo + hi) / 2
    m = blob_mask(d)
    bb = cv2.boundingRect(m)
    name = assets.backgrounds[int(rng.integers(len(assets.backgrounds)))]
    tex = np.zeros_like(canvas)
    x, y, bw, bh = bb
    if bw > 0 and bh > 0:
        tex[y:y + bh, x:x + bw] = _tinted(rng, assets.src[name], bw, bh)
    _paste(canvas, tex, m)
    return m, {"texture": name, "offset": round(d, 1), "direction": round(float(np.degrees(ang)), 1)}


def _render_object(rng, assets: Assets, oid: int, geo: dict, plan: dict, w: int, h: int,
                   use_clutter_objects: bool, n_clutter: int) -> tuple[np.ndarray, dict]:
    """Background + clutter + object (+ occluder); returns the image before the camera."""
    canvas, bg = _scene_background(rng, assets, w, h)
    clutter = [_clutter(rng, assets, canvas, use_clutter_objects) for _ in range(n_clutter)]
    patch, mask = assets.patches[oid]
    corners = _projected_corners(mask.shape[1], mask.shape[0], **geo)
    x0, y0 = corners.min(0)
    x1, y1 = corners.max(0)
    bw, bh = x1 - x0, y1 - y0
    if plan.get("fit", True) and (bw > 0.95 * w or bh > 0.95 * h):  # shrink to fit the frame
        geo = {**geo, "size": geo["size"] * min(0.95 * w / bw, 0.95 * h / bh)}
        corners = _projected_corners(mask.shape[1], mask.shape[0], **geo)
        x0, y0 = corners.min(0)
        x1, y1 = corners.max(0)
        bw, bh = x1 - x0, y1 - y0
    if plan["in_frame"] < 1.0:
        # slide out through a random side until about in_frame of the box is left
        side = int(rng.integers(4))
        keep = plan["in_frame"]
        cx = _u(rng, -x0, w - x1) if bw < w else w / 2 - (x0 + x1) / 2
        cy = _u(rng, -y0, h - y1) if bh < h else h / 2 - (y0 + y1) / 2
        if side == 0:
            cx = -x0 - (1 - keep) * bw
        elif side == 1:
            cx = w - x1 + (1 - keep) * bw
        elif side == 2:
            cy = -y0 - (1 - keep) * bh
        else:
            cy = h - y1 + (1 - keep) * bh
    else:
        cx = _u(rng, -x0, w - x1) if bw < w else w / 2 - (x0 + x1) / 2
        cy = _u(rng, -y0, h - y1) if bh < h else h / 2 - (y0 + y1) / 2
    img, m, full, hom = _warp(patch, mask, corners, (cx, cy), w, h)
    _paste(canvas, img, m)
    rec = {"object": oid, "background": bg, "clutter": clutter,
           **{k: round(float(v), 2) for k, v in geo.items()},
           "center": [round(float(cx), 1), round(float(cy), 1)],
           "homography": np.round(hom, 6).tolist(), "occluder": None}
    vis_mask = m.astype(np.float32) / 255.0
    if plan["occlusion"] > 0 and m.max() > 127:
        occ, rec["occluder"] = _occluder(rng, assets, canvas, m, full, plan["occlusion"])
        vis_mask = vis_mask * (1.0 - occ.astype(np.float32) / 255.0)
    visible_px = float(vis_mask.sum())
    rec["projected_area"] = round(full, 1)
    rec["visible"] = round(min(1.0, visible_px / max(full, 1e-6)), 4)
    rec["area"] = round(visible_px / (w * h), 4)
    ys, xs = np.nonzero(m > 127)
    rec["bbx"] = ([int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
                  if xs.size else [0, 0, 0, 0])
    return canvas, rec


def _difficulty(rec: dict, query_area: float) -> str:
    """``"easy"``, ``"hard"`` or ``"junk"`` from a rendering's record; sets ``rec["scale"]``."""
    t = THRESHOLDS
    scale = float(np.sqrt(rec["projected_area"] / query_area))
    rec["scale"] = round(scale, 3)
    rot = abs((rec["rotation"] + 180) % 360 - 180)
    if rec["visible"] < t["junk_visible"] or rec["area"] < t["junk_area"]:
        return "junk"
    if (rec["visible"] < t["hard_visible"] or rec["tilt"] > t["hard_tilt"] or rot > t["hard_rotation"]
            or not (1 / t["hard_scale"] <= scale <= t["hard_scale"]) or rec["area"] < t["hard_area"]
            or rec["camera"]["blur"] > t["hard_blur"]):
        return "hard"
    return "easy"


def _image_size(rng) -> tuple[int, int]:
    """``(width, height)`` of an image: portrait one time in four, else landscape."""
    return PORTRAIT if rng.random() < 0.25 else LANDSCAPE


def _render_query(rng, assets, oid):
    """A query of object ``oid``: ``(image (h, w, 3) uint8, record)``.

    Mild viewpoint and camera, no occlusion, the object fully in the frame.
    """
    w, h = _image_size(rng)
    short = min(w, h)
    geo = {"tilt": _u(rng, 0, 15), "tilt_axis": _u(rng, 0, 180), "rotation": _u(rng, -10, 10),
           "distance": _u(rng, 2.0, 3.0), "size": _u(rng, 0.45, 0.7) * short}
    img, rec = _render_object(rng, assets, oid, geo, {"in_frame": 1.0, "occlusion": 0.0}, w, h,
                              True, int(rng.integers(0, 2)))
    rec["camera"] = _draw_camera(rng, "mild")
    return _apply_camera(rng, img, rec["camera"]), rec


def _render_positive(rng, assets, oid, target, query_rec, use_clutter_objects=True):
    """A rendering of ``oid`` aiming at difficulty ``target``: ``(image (h, w, 3) uint8, record)``.

    Its scale and difficulty are measured against the query's record ``query_rec``.
    """
    w, h = _image_size(rng)
    geo, plan = _draw_geometry(rng, target, query_rec["size"], min(w, h))
    img, rec = _render_object(rng, assets, oid, geo, plan, w, h, use_clutter_objects,
                              int(rng.integers(0, 2)))
    rec["camera"] = _draw_camera(rng, "hard" if target == "hard" else "easy")
    rec["target"] = target
    rec["difficulty"] = _difficulty(rec, query_rec["projected_area"])
    return _apply_camera(rng, img, rec["camera"]), rec


def _render_distractor(rng, assets):
    """A background with clutter and no query object: ``(image (h, w, 3) uint8, record)``."""
    w, h = _image_size(rng)
    canvas, bg = _scene_background(rng, assets, w, h)
    # one item of an object's size (half the time a non-query object), 0-2 small ones
    clutter = [_clutter(rng, assets, canvas, True) for _ in range(int(rng.integers(0, 3)))]
    clutter.append(_clutter(rng, assets, canvas, True, size=(0.3, 0.75), p_object=0.5))
    cam = _draw_camera(rng, "easy" if rng.random() < 0.6 else "hard")
    return _apply_camera(rng, canvas, cam), {"object": -1, "background": bg, "clutter": clutter, "camera": cam}


def _view_events(rng, junk: bool) -> dict:
    """Version 2's per-image events of a view: the placement plan of :func:`_draw_geometry`.

    About one view in five is mildly occluded (5-30 %), one in eight
    strongly (40-62 %), one in ten truncated (40-65 % of its box in the
    frame); when ``junk`` is allowed, one in twelve is barely there (the
    object tiny, 78-95 % occluded or 8-25 % in the frame). ``size`` (junk
    only): the object's longer side in pixels.
    """
    plan: dict = {"in_frame": 1.0, "occlusion": 0.0}
    r = rng.random()
    if r < 0.20:
        plan["occlusion"] = _u(rng, 0.05, 0.30)
    elif r < 0.325:
        plan["occlusion"] = _u(rng, 0.40, 0.62)
    elif r < 0.425:
        plan["in_frame"] = _u(rng, 0.40, 0.65)
    elif junk and r < 0.51:
        kind = int(rng.integers(3))
        if kind == 0:
            plan["size"] = _u(rng, 26, 50)
        elif kind == 1:
            plan["in_frame"] = _u(rng, 0.08, 0.25)
        else:
            plan["occlusion"] = _u(rng, 0.78, 0.95)
    return plan


def _render_view(rng, assets: Assets, oid: int, pose: dict, query_rec: dict, junk: bool = True,
                 use_clutter_objects: bool = True) -> tuple[np.ndarray, dict]:
    """Version 2: a view of ``oid`` at a planned ``pose`` (:func:`~.plan.walk_poses`).

    The pose fixes the viewpoint (tilt, its axis, rotation), the scale
    relative to the query's size and the light (the camera's gain, in
    octaves); the image's own generator draws where the object lands, the
    events (:func:`_view_events`), the background, the clutter and the rest
    of the camera. The difficulty is measured, as in version 1, against the
    query's record.
    """
    w, h = _image_size(rng)
    short = min(w, h)
    plan = _view_events(rng, junk)
    size = plan.pop("size", query_rec["size"] * 2.0 ** pose["scale"])
    geo = {"tilt": pose["tilt"], "tilt_axis": pose["tilt_axis"], "rotation": pose["rotation"],
           "distance": _u(rng, 1.5, 3.0), "size": float(min(size, 1.5 * short))}
    plan["fit"] = pose["scale"] <= 1.0  # zoomed in by more than an octave: may stick out of the frame
    img, rec = _render_object(rng, assets, oid, geo, plan, w, h, use_clutter_objects, int(rng.integers(0, 2)))
    cam = _draw_camera(rng, "hard" if rng.random() < 0.2 else "easy")
    cam["gain"] = round(2.0 ** pose["light"], 3)
    rec["camera"] = cam
    rec["pose"] = pose
    rec["difficulty"] = _difficulty(rec, query_rec["projected_area"])
    return _apply_camera(rng, img, cam), rec


def render_job(rng, assets: Assets, kind: str, oid: int, target: str, ref: dict[int, dict],
               pose: dict | None = None):
    """Render one planned image: ``(image (h, w, 3) uint8, record)``.

    ``pose``: version 2's planned pose of a database or training view
    (``None`` in version 1, whose ``target`` is a difficulty).
    """
    if kind in ("query", "reference"):
        return _render_query(rng, assets, oid)
    if oid < 0:
        return _render_distractor(rng, assets)
    if pose is not None:
        for attempt in range(100):  # the first view must come out easy, a training view must not be junk
            if attempt >= 10:  # the pose itself is the obstacle (tiny, steep): pull it towards the query's
                pose = {**pose, "tilt": round(pose["tilt"] * 0.8, 3), "scale": round(pose["scale"] * 0.8, 3)}
            img, rec = _render_view(rng, assets, oid, pose, ref[oid], junk=kind == "db" and target != "first",
                                    use_clutter_objects=kind == "db")
            if (rec["difficulty"] == "easy") if target == "first" else (kind == "db" or rec["difficulty"] != "junk"):
                break
        rec["target"] = target
        return img, rec
    for _ in range(100):
        if kind == "db":
            img, rec = _render_positive(rng, assets, oid, "easy" if target == "first" else target, ref[oid])
            if target != "first" or rec["difficulty"] == "easy":
                break
        else:  # training images: no junk, and clutter from the background photos only
            img, rec = _render_positive(rng, assets, oid, target, ref[oid], use_clutter_objects=False)
            if rec["difficulty"] != "junk":
                break
    return img, rec
