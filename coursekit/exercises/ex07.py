"""Checks of notebook 07, "CNN descriptors".

=====  ===============================  ================================================================
id     the student writes               reference
=====  ===============================  ================================================================
7.1    ``mac(x)``                       :func:`coursekit.cnn.pooling.mac`
7.2    ``spoc(x)``                      :func:`coursekit.cnn.pooling.spoc` (with its centring prior)
7.3    ``gem(x, p)``                    :func:`coursekit.cnn.pooling.gem` (``eps = 1e-6``)
7.4    ``rmac_regions(H, W, L)``        :func:`coursekit.cnn.pooling.rmac_regions` (``overlap = 0.4``)
7.5    ``crow_weights(x)``              :func:`coursekit.cnn.pooling.crow_spatial_weights` and
                                        :func:`coursekit.cnn.pooling.crow_channel_weights` (``a = b = 2``)
=====  ===============================  ================================================================

Contracts
---------
The feature map ``x`` that 7.1, 7.2, 7.3 and 7.5 receive is a **torch tensor**
``(B, C, H, W) float32`` (a batch of ``B`` maps of ``C`` channels on an
``H x W`` grid), as :mod:`coursekit.cnn.pooling` takes it. Answers may be torch
tensors or NumPy arrays, of any float dtype; values are compared to the
reference (computed in float64) with a relative tolerance of ``1e-4``. The
inputs must not be changed (no in-place operations on ``x``).

7.1 ``mac(x)`` -> ``(B, C)``: the largest value of each channel of each map,
    ``max_ij x[b, k, i, j]`` (Tolias, Sicre and Jegou, ICLR 2016).

7.2 ``spoc(x)`` -> ``(B, C)``: ``sum_ij alpha_ij x[b, k, i, j]``, the sum (not
    the mean) weighted by the centring prior ``alpha_ij = exp(-((i + 0.5 - H/2)^2
    + (j + 0.5 - W/2)^2) / (2 sigma^2))``, ``sigma = min(H, W) / 6`` (one third
    of the distance from the centre to the nearest border), not normalised
    (Babenko and Lempitsky, ICCV 2015). ``i - (H - 1) / 2`` is the same offset.

7.3 ``gem(x, p)`` -> ``(B, C)``: ``(mean_ij max(x[b, k, i, j], 1e-6)^p)^(1/p)``
    for a float ``p >= 1`` (Radenovic, Tolias and Chum, TPAMI 2018). The maps of
    the cases have negative values and fractional ``p``: clamp before the
    power. Clamping at 0 instead of ``1e-6`` also passes (the results differ by
    at most ``1e-6``).

7.4 ``rmac_regions(H, W, L)`` -> ``(R, 4)`` integers (torch, NumPy, or a list
    of rows), one row ``(top, left, height, width)`` per region, **in any
    order** (Tolias, Sicre and Jegou, ICLR 2016, as in their code). With
    ``w = min(H, W)``: square regions of side ``s_l = floor(2 w / (l + 1))`` at
    scales ``l = 1 .. L`` (a scale whose side is 0 is skipped); ``l`` of them
    along the shorter side and ``l + m`` along the longer one, where ``m = 0``
    for a square map and otherwise the ``m`` in ``1 .. 6`` whose step
    ``b_m = (max(H, W) - w) / m`` makes the overlap ``(w - b_m) / w`` of
    consecutive regions of scale 1 closest to 0.4 (the smallest such ``m``
    on a tie); ``n`` regions along a side of length ``n_side`` start at
    ``floor(k (n_side - s_l) / (n - 1))``, ``k = 0 .. n - 1`` (0 when
    ``n = 1``), computed in floating point as written. The cases keep aspect
    ratios at most 2, where every way of computing the floor agrees.

7.5 ``crow_weights(x)`` -> the pair ``(alpha (B, H, W), beta (B, C))`` of CroW
    (Kalantidis, Mellina and Osindero, ECCVW 2016) with ``a = b = 2``, per
    image: ``S_ij = sum_k x[b, k, i, j]``, ``alpha = (S / ||S||_2)^(1/2)`` (the
    norm over the cells of that image); ``Q_k`` the fraction of the cells where
    channel ``k`` is positive (``> 0``), ``beta_k = ln(sum_h Q_h / Q_k)``, the
    natural logarithm, and ``beta_k = 0`` for a channel with ``Q_k = 0``. The
    cases' maps are non-negative, with zeros, and no map is zero everywhere.

Each check runs the notebook's small map (:func:`lecture_map`) first, then
seeded random cases with ``B``, ``C``, ``H`` and ``W`` all different, so that
pooling over the wrong axes shows in the shape. When a wrong answer matches a
known slip (mean for max, no prior or a wrong ``sigma``, no ``1/p`` root, no
clamp, rectangular regions, wrong counts or positions, ``a = b = 1``, no log,
mean values for counts...) the message names it.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .check import (
    CheckFailed, Checker, Exercise, call_student, call_text, compare, describe, diagnose, input_changed,
)

__all__ = ["check_mac", "check_spoc", "check_gem", "check_rmac_regions", "check_crow_weights", "lecture_map"]

_SEED = 2027
_TOL = dict(rtol=1e-4, atol=1e-6)


def lecture_map():
    """The notebook's small feature map: ``(1, 3, 4, 6) float32`` torch tensor, non-negative.

    Channel 0 is zero but for one strong cell in a corner (``x[0, 0, 0, 5] =
    4``); channel 1 is a broad blob in the middle (peak 1.69); channel 2 is 0.5
    everywhere. MAC gives ``[4, 1.69, 0.5]``: it sees only the corner cell of
    channel 0; SPoC's centring prior nearly ignores that corner; GeM lies
    between the mean and the max.
    """
    import torch

    x = np.zeros((1, 3, 4, 6), np.float32)
    x[0, 0, 0, 5] = 4.0
    i, j = np.mgrid[0:4, 0:6]
    x[0, 1] = np.round(2.0 * np.exp(-((i - 1.5) ** 2 + (j - 2.5) ** 2) / 3.0), 2)
    x[0, 2] = 0.5
    return torch.from_numpy(x)


def _exercise(ex_id: str) -> Exercise:
    from . import exercise  # late: the list in __init__ refers to the checks below
    return exercise(ex_id)



def _numpy(value: Any) -> Any:
    """A torch tensor as a NumPy array (detached, on the CPU); anything else as it is."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of the course
        return value
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bfloat16 or value.dtype == torch.float16:
            value = value.float()
        return value.detach().cpu().numpy()
    return value


def _call_on_map(c: Checker, fn: Callable, x: np.ndarray, **extra: Any) -> tuple[Any, str, str]:
    """Call ``fn(torch.from_numpy(x), *extra)`` as :func:`call_student` does; messages describe ``x`` as
    an array. The tensor shares memory with the copy the check keeps, so an in-place change is caught.
    Returns ``(result, where, call)``, as :meth:`Checker.start` does."""
    import torch

    name = getattr(fn, "__name__", c.exercise.function)

    def on_tensor(x_np, *rest):
        return fn(torch.from_numpy(x_np), *rest)

    on_tensor.__name__ = name
    args = dict(x=x, **extra)
    try:
        got = call_student(c.exercise, on_tensor, args, timeout=c.timeout)
    except CheckFailed as e:
        if e.kind == "mutated":    # the advice of call_student is NumPy's; give it for a tensor
            raise input_changed(e.label, e.call, e.argument, "leave the map as it is: no in-place operations "
                                "such as x.clamp_(...), x[...] = ... or x += ...; work on x.clone()") from None
        raise
    call = call_text(name, args)
    return got, c.where(call), call


def _as_result(got: Any, where: str) -> Any:
    """The student's answer as a NumPy array, failing with a message for the usual wrong kinds."""
    if got is None:
        raise CheckFailed(f"{where} returned None — did you forget `return`?")
    if isinstance(got, tuple) and len(got) == 2 and type(got).__name__ in ("max", "min", "return_types.max"):
        raise CheckFailed(f"{where} returned (values, indices): torch's x.max(dim=...) gives both; "
                          f"take .values, or use x.amax(dim=(-2, -1))")
    return _numpy(got)


def _pooled_shape_hint(got: Any, where: str, B: int, C: int) -> None:
    """Fail with a message that says which axes to pool over when the shape is wrong."""
    if not isinstance(got, np.ndarray) or got.shape == (B, C):
        return
    if got.shape == (B, C, 1, 1):
        raise CheckFailed(f"{where}: expected shape (B, C) = {(B, C)}, got shape {got.shape}: drop the pooled "
                          f"axes (keepdim=False, or .flatten(1))")
    raise CheckFailed(f"{where}: expected shape (B, C) = {(B, C)}, one value per image and channel, got shape "
                      f"{got.shape}: pool over the last two axes, H and W (dim=(-2, -1)), and keep B and C")




def _relu_map(rng: np.random.Generator, B: int, C: int, H: int, W: int, shift: float = 0.3) -> np.ndarray:
    """A sparse non-negative map like a network's, ``(B, C, H, W) float32``: ReLU of shifted Gaussian noise
    plus a smooth blob per channel, some channels never firing."""
    i, j = np.mgrid[0:H, 0:W]
    ci, cj = rng.uniform(0, H, (B, C, 1, 1)), rng.uniform(0, W, (B, C, 1, 1))
    blob = 2.0 * np.exp(-((i - ci) ** 2 + (j - cj) ** 2) / (0.1 * H * W))
    x = np.maximum(rng.normal(size=(B, C, H, W)) - shift + blob * (rng.random((B, C, 1, 1)) < 0.5), 0)
    x[:, rng.random(C) < 0.2] = 0.0                        # some channels that never fire
    return x.astype(np.float32)


def _pooling_case(c: Checker, fn: Callable, x: np.ndarray, expected: np.ndarray,
                  slips: Callable[[], dict[str, np.ndarray]], **extra: Any) -> None:
    """One case of a pooling check: call, shape, the known slips (computed only on a wrong answer), the values."""
    got, where, call = _call_on_map(c, fn, x, **extra)
    got = _as_result(got, where)
    _pooled_shape_hint(got, where, *x.shape[:2])
    if isinstance(got, np.ndarray) and got.shape == expected.shape and got.dtype.kind == "f" \
            and np.isnan(got).any() and (x < 0).any():
        raise CheckFailed(f"{where}: got nan: clamp the map at 1e-6 before the power (x.clamp(min=1e-6)); "
                          f"a negative number to a fractional power is not a real number")
    if not (isinstance(got, np.ndarray) and got.shape == expected.shape
            and np.allclose(got.astype(np.float64), expected, **_TOL)):
        diagnose(where, got, expected, slips(), _TOL)
    compare(c.exercise, got, expected, call=call, **_TOL)
    c.count()


# --------------------------------------------------------------------------- 7.1 MAC

def _pool_cases(rng: np.random.Generator) -> list[np.ndarray]:
    return [_relu_map(rng, 2, 5, 4, 3), _relu_map(rng, 3, 8, 7, 9), _relu_map(rng, 1, 16, 12, 15),
            _relu_map(rng, 4, 6, 10, 5, shift=-0.5)]


def check_mac(mac: Callable, *, quiet: bool = False) -> None:
    """Exercise 7.1: MAC, ``(B, C, H, W) -> (B, C)``, the maximum of each channel."""
    import torch

    from ..cnn.pooling import mac as ref

    c = Checker(_exercise("7.1"), quiet=quiet)

    def case(x: np.ndarray) -> None:
        x64 = x.astype(np.float64)
        _pooling_case(c, mac, x, ref(torch.from_numpy(x64)).numpy(), lambda: {
            "MAC takes the maximum of each channel, not its mean.": x64.mean(axis=(-2, -1)),
            "MAC takes the maximum of each channel, not its sum.": x64.sum(axis=(-2, -1)),
            "MAC takes the maximum of each channel over all its cells, not the mean over rows of the maximum "
            "over columns: one max over both axes, dim=(-2, -1).": x64.max(axis=-1).mean(axis=-1),
        })

    case(lecture_map().numpy())
    for x in _pool_cases(np.random.default_rng(_SEED)):
        case(x)
    return c.passed()


# --------------------------------------------------------------------------- 7.2 SPoC

def _prior(H: int, W: int, sigma: float | tuple[float, float] | None = None, offset: float = 0.5) -> np.ndarray:
    """The centring prior ``(H, W)`` float64, with ``sigma`` (default ``min(H, W) / 6``; a pair: per axis) and
    cell ``i`` at ``i + offset`` (0.5: its centre)."""
    s_i, s_j = (sigma, sigma) if not isinstance(sigma, tuple) else sigma
    if sigma is None:
        s_i = s_j = min(H, W) / 6.0
    i = np.arange(H) + offset - H / 2.0
    j = np.arange(W) + offset - W / 2.0
    return np.exp(-(i[:, None] ** 2 / (2 * s_i ** 2) + j[None, :] ** 2 / (2 * s_j ** 2)))


def _spoc_slips(x: np.ndarray) -> dict[str, np.ndarray]:
    H, W = x.shape[-2:]
    x = x.astype(np.float64)

    def weighted(alpha):
        return (x * alpha).sum(axis=(-2, -1))

    alpha = _prior(H, W)
    slips = {
        "weight the sum by the centring prior alpha_ij (a Gaussian on the map's centre); the plain sum has "
        "no prior.": x.sum(axis=(-2, -1)),
        "SPoC sums the weighted values (sum_ij alpha_ij x_ij), it does not average them.": weighted(alpha) / (H * W),
        "the prior alpha is not normalised: exp(-d^2 / (2 sigma^2)) as it is, not divided by its sum.":
            weighted(alpha / alpha.sum()),
        "the prior alpha is not normalised: exp(-d^2 / (2 sigma^2)) as it is, not divided by its maximum.":
            weighted(alpha / alpha.max()),
        "sigma is one third of the distance from the centre to the nearest border: min(H, W) / 6, not "
        "min(H, W) / 3.": weighted(_prior(H, W, min(H, W) / 3.0)),
        "sigma is one third of the distance from the centre to the nearest border: min(H, W) / 6, from the "
        "shorter side, not max(H, W) / 6.": weighted(_prior(H, W, max(H, W) / 6.0)),
        "sigma is one value, min(H, W) / 6, the same along both axes, not H / 6 and W / 6.":
            weighted(_prior(H, W, (H / 6.0, W / 6.0))),
        "the exponent is -d^2 / (2 sigma^2): the factor 2 is missing.":
            weighted(_prior(H, W, min(H, W) / 6.0 / math.sqrt(2))),
        "the prior weighs by exp(-d^2 / (2 sigma^2)) with sigma, not sigma^2, in the denominator.":
            weighted(np.exp(-(_dist2(H, W)) / (2 * min(H, W) / 6.0))),
        "cell (i, j) sits at its centre, i + 0.5 - H / 2 from the middle (or i - (H - 1) / 2), not i - H / 2.":
            weighted(_prior(H, W, offset=0.0)),
    }
    return slips


def _dist2(H: int, W: int) -> np.ndarray:
    i = np.arange(H) + 0.5 - H / 2.0
    j = np.arange(W) + 0.5 - W / 2.0
    return i[:, None] ** 2 + j[None, :] ** 2


def check_spoc(spoc: Callable, *, quiet: bool = False) -> None:
    """Exercise 7.2: SPoC, ``(B, C, H, W) -> (B, C)``, the sum weighted by the centring prior."""
    import torch

    from ..cnn.pooling import spoc as ref

    c = Checker(_exercise("7.2"), quiet=quiet)

    def case(x: np.ndarray) -> None:
        _pooling_case(c, spoc, x, ref(torch.from_numpy(x).double()).numpy(), lambda: _spoc_slips(x))

    case(lecture_map().numpy())
    for x in _pool_cases(np.random.default_rng(_SEED + 1)):
        case(x)
    return c.passed()


# --------------------------------------------------------------------------- 7.3 GeM

def _gem_slips(x: np.ndarray, p: float) -> dict[str, np.ndarray]:
    x = x.astype(np.float64)
    clamped = np.maximum(x, 1e-6)
    with np.errstate(invalid="ignore", divide="ignore"):
        slips = {
            "take the 1/p-th root of the mean of the powers: (mean x^p)^(1/p); without it the value is not on "
            "the scale of x.": (clamped ** p).mean(axis=(-2, -1)),
            "GeM takes the mean of the powers, then the root: (mean x^p)^(1/p), not the sum.":
                ((clamped ** p).sum(axis=(-2, -1))) ** (1 / p),
            "clamp negative values to 1e-6 (x.clamp(min=1e-6)) before the power, do not take their absolute "
            "value.": ((np.maximum(np.abs(x), 1e-6) ** p).mean(axis=(-2, -1))) ** (1 / p),
            "use the p given: this is GeM with p = 3.": ((clamped ** 3).mean(axis=(-2, -1))) ** (1 / 3),
            "the root is 1/p: (mean x^p)^(1/p), not (mean x^p)^p.": ((clamped ** p).mean(axis=(-2, -1))) ** p,
            "raise each value to the power p before the mean, (mean_ij x_ij^p)^(1/p): the p-th root of the "
            "p-th power of the mean is the plain mean.": clamped.mean(axis=(-2, -1)),
            "GeM takes the mean over the cells (H x W) of each channel, not over the cells and the channels.":
                np.broadcast_to(((clamped ** p).mean(axis=(1, 2, 3))[:, None]) ** (1 / p), x.shape[:2]),
        }
    return slips


def check_gem(gem: Callable, *, quiet: bool = False) -> None:
    """Exercise 7.3: GeM, ``(B, C, H, W), p -> (B, C)``, ``(mean max(x, 1e-6)^p)^(1/p)``."""
    import torch

    from ..cnn.pooling import gem as ref

    c = Checker(_exercise("7.3"), quiet=quiet)

    def case(x: np.ndarray, p: float) -> None:
        _pooling_case(c, gem, x, ref(torch.from_numpy(x).double(), p).numpy(), lambda: _gem_slips(x, p), p=p)

    case(lecture_map().numpy(), 3.0)
    rng = np.random.default_rng(_SEED + 2)
    x1, x2, x3, x4 = _pool_cases(rng)
    case(x1, 1.0)                                                   # the mean
    case(x2, 2.5)
    case(x3, 8.0)                                                   # close to the max
    case((x4 - 0.4).astype(np.float32), 3.0)                        # negative values: clamped
    case((_relu_map(rng, 2, 7, 6, 5) - 0.2).astype(np.float32), 2.5)   # negative values, fractional p
    return c.passed()


# --------------------------------------------------------------------------- 7.4 R-MAC regions

#: The maps of check_rmac_regions: (H, W, L). The first is the notebook's (a 360 x 480 photo at 480 pixels); m = 2 for
#: (10, 20) and (20, 10), 1 for the others but the square ones (0).
REGION_CASES = ((11, 15, 3), (15, 12, 3), (10, 10, 3), (10, 20, 3), (20, 30, 3), (16, 12, 4), (20, 10, 2),
                (9, 14, 2), (3, 5, 3), (30, 23, 5), (1, 1, 1))


def _extra(H: int, W: int, overlap: float = 0.4) -> int:
    """``m``: the extra count of regions along the longer side (0 for a square map)."""
    if H == W:
        return 0
    w, long = min(H, W), max(H, W)
    errors = [abs((w - (long - w) / m) / w - overlap) for m in range(1, 7)]
    return int(np.argmin(errors)) + 1


def _grid(H: int, W: int, L: int, *, extra: int | None = None, square: bool = True, position=None,
          scales=None, n_of=None) -> np.ndarray:
    """R-MAC regions ``(R, 4) int64`` with variations, for the slips: ``extra`` (``m``), rectangular regions,
    ``position(k, length, side, n)``, the scales ``l`` used, ``n_of(l, m) -> (n_short, n_long)``."""
    w = min(H, W)
    m = _extra(H, W) if extra is None else extra
    if position is None:
        def position(k, length, side, n):
            return math.floor(k * ((length - side) / (n - 1))) if n > 1 else 0
    rows = []
    for l in (range(1, L + 1) if scales is None else scales):
        sh = math.floor(2 * (w if square else H) / (l + 1))
        sw = math.floor(2 * (w if square else W) / (l + 1))
        if sh <= 0 or sw <= 0:
            continue
        n_short, n_long = (l, l + m) if n_of is None else n_of(l, m)
        nh, nw = (n_long, n_short) if H > W else (n_short, n_long) if W > H else (l, l)
        rows += [(position(a, H, sh, nh), position(b, W, sw, nw), sh, sw) for a in range(nh) for b in range(nw)]
    return np.array(rows, np.int64).reshape(-1, 4)


def _sorted_rows(R: np.ndarray) -> np.ndarray:
    return R[np.lexsort(R.T[::-1])] if len(R) else R


def _region_slips(H: int, W: int, L: int) -> dict[str, np.ndarray]:
    m = _extra(H, W)
    slips = {
        "regions are square, of side floor(2 min(H, W) / (l + 1)) at scale l, not floor(2 H / (l + 1)) by "
        "floor(2 W / (l + 1)).": _grid(H, W, L, square=False),
        "the start of region k is floor(k (length - side) / (n - 1)): floor it (math.floor, or // on whole "
        "numbers), do not round it.":
            _grid(H, W, L, position=lambda k, n_side, s, n: round(k * (n_side - s) / (n - 1)) if n > 1 else 0),
        "the start of region k is floor(k (length - side) / (n - 1)): floor it (math.floor, or // on whole "
        "numbers), do not round it up.":
            _grid(H, W, L, position=lambda k, n_side, s, n: math.ceil(k * (n_side - s) / (n - 1)) if n > 1 else 0),
        "positions count from 0: the first region starts at row or column 0, the last one ends at the "
        "border.": _grid(H, W, L, position=lambda k, n_side, s, n: (math.floor(k * (n_side - s) / (n - 1)) if n > 1
                                                                     else 0) + 1),
        "the regions of a scale are spread evenly, start k at floor(k (length - side) / (n - 1)), not side by "
        "side at k * side.": _grid(H, W, L, position=lambda k, n_side, s, n: k * s),
        f"use the L given: scales l = 1 .. L (here L = {L}), not always 3.": _grid(H, W, 3),
        f"the scales are l = 1 .. L (here L = {L}), not 0 .. L - 1 (scale l has side floor(2 w / (l + 1)), the "
        "whole shorter side at l = 1).": _grid(H, W, L, scales=range(0, L)),
    }
    if m:
        slips[f"along the longer side there are l + m regions (m = {m} here), not l: a {H} x {W} map is not "
              "square."] = _grid(H, W, L, extra=0)
    if m > 1:
        slips[f"along the longer side there are l + m regions (m = {m} here), not l + m - 1."] = \
            _grid(H, W, L, n_of=lambda l, m: (l, l + m - 1))
    if m:
        slips[f"m = {m} here: the step between the starts of consecutive scale-1 regions is "
              "b_m = (max(H, W) - w) / m, for m in 1 .. 6 (m + 1 regions), and m makes their overlap "
              "(w - b_m) / w closest to 0.4."] = _grid(H, W, L, extra=_extra_steps_slip(H, W))
    return {hint: R for hint, R in slips.items() if len(R)}


def _extra_steps_slip(H: int, W: int, overlap: float = 0.4) -> int:
    """The ``m`` of a student who divides by ``m + 1`` (the number of regions) instead of ``m`` (the steps)."""
    w, long = min(H, W), max(H, W)
    errors = [abs((w - (long - w) / (m + 1)) / w - overlap) for m in range(1, 7)]
    return int(np.argmin(errors)) + 1


def _as_regions(got: Any, where: str) -> np.ndarray:
    got = _numpy(got)
    if got is None:
        raise CheckFailed(f"{where} returned None — did you forget `return`?")
    if isinstance(got, (list, tuple)):
        try:
            got = np.asarray([_numpy(r) for r in got])
        except (ValueError, TypeError):
            raise CheckFailed(f"{where}: expected (R, 4) rows (top, left, height, width), got a "
                              f"{type(got).__name__} that is not a table of numbers") from None
        if got.size == 0:
            got = got.reshape(0, 4)
    if not isinstance(got, np.ndarray):
        raise CheckFailed(f"{where}: expected an (R, 4) array of regions, got {describe(got)} ({type(got).__name__})")
    if got.ndim != 2 or got.shape[1] != 4:
        raise CheckFailed(f"{where}: expected shape (R, 4), one row (top, left, height, width) per region, got "
                          f"shape {got.shape}")
    if got.dtype.kind not in "iu":
        raise CheckFailed(f"{where}: region coordinates are whole cells: return integers (torch.int64 or "
                          f"np.int64; they index the map), got {got.dtype}")
    return got.astype(np.int64)


def _describe_scale(R: np.ndarray, side: int) -> tuple[list[int], list[int]]:
    at = R[(R[:, 2] == side) & (R[:, 3] == side)]
    return sorted(set(at[:, 0].tolist())), sorted(set(at[:, 1].tolist()))


def check_rmac_regions(rmac_regions: Callable, *, quiet: bool = False) -> None:
    """Exercise 7.4: the R-MAC grid, ``(R, 4)`` integer rows ``(top, left, height, width)``, any order."""
    from ..cnn.pooling import rmac_regions as ref

    ex = _exercise("7.4")
    c = Checker(ex, quiet=quiet)
    name = getattr(rmac_regions, "__name__", ex.function)

    def case(H: int, W: int, L: int) -> None:
        expected = ref(H, W, L).numpy()
        args = dict(H=H, W=W, L=L)
        where = f"{ex.label}: {call_text(name, args)}"
        got = _as_regions(c.call(rmac_regions, **args), where)
        g, e = _sorted_rows(got), _sorted_rows(expected)
        if g.shape == e.shape and np.array_equal(g, e):
            c.count()
            return
        for hint, answer in _region_slips(H, W, L).items():
            a = _sorted_rows(answer)
            if a.shape == g.shape and np.array_equal(a, g) and not (a.shape == e.shape and np.array_equal(a, e)):
                raise CheckFailed(f"{where}: {hint}")
        # no known slip: say what differs, from the most general to the most specific
        outside = (got[:, 0] < 0) | (got[:, 1] < 0) | (got[:, 0] + got[:, 2] > H) | (got[:, 1] + got[:, 3] > W)
        if outside.any():
            raise CheckFailed(f"{where}: region {tuple(got[outside][0].tolist())} (top, left, height, width) does "
                              f"not fit in the {H} x {W} map")
        if (got[:, 2] != got[:, 3]).any():
            raise CheckFailed(f"{where}: regions are square (height = width = floor(2 min(H, W) / (l + 1))); got "
                              f"{tuple(got[got[:, 2] != got[:, 3]][0].tolist())}")
        sides, got_sides = sorted(set(e[:, 2].tolist()), reverse=True), sorted(set(g[:, 2].tolist()), reverse=True)
        if sides != got_sides:
            raise CheckFailed(f"{where}: expected regions of sides {sides} (scales l = 1 .. {L}, side "
                              f"floor(2 min(H, W) / (l + 1))), got sides {got_sides}")
        for l, side in enumerate(sides, start=1):
            tops, lefts = _describe_scale(e, side)
            g_tops, g_lefts = _describe_scale(g, side)
            n_e, n_g = int(((e[:, 2] == side)).sum()), int((g[:, 2] == side).sum())
            if (len(g_tops), len(g_lefts)) != (len(tops), len(lefts)) or n_e != n_g:
                raise CheckFailed(f"{where}: at scale l = {l} (side {side}) expected {len(tops)} x {len(lefts)} = "
                                  f"{n_e} regions (rows x columns), got {n_g} regions, at {len(g_tops)} top "
                                  f"and {len(g_lefts)} left positions")
            if g_tops != tops or g_lefts != lefts:
                which, exp_, got_ = ("top", tops, g_tops) if g_tops != tops else ("left", lefts, g_lefts)
                raise CheckFailed(f"{where}: at scale l = {l} (side {side}) the {which} edges should be {exp_}, "
                                  f"got {got_}")
        compare(ex, g, e, call=call_text(name, args) + ", rows sorted")
        c.count()

    for H, W, L in REGION_CASES:
        case(H, W, L)
    return c.passed()


# --------------------------------------------------------------------------- 7.5 CroW weights

def _crow_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    from ..cnn.pooling import crow_channel_weights, crow_spatial_weights

    t = torch.from_numpy(x).double()
    return crow_spatial_weights(t).numpy(), crow_channel_weights(t).numpy()


def _spatial_slips(x: np.ndarray) -> dict[str, np.ndarray]:
    x = x.astype(np.float64)
    S = x.sum(axis=1)                                                     # (B, H, W)
    l2 = np.sqrt((S ** 2).sum(axis=(-2, -1), keepdims=True))
    l1 = S.sum(axis=(-2, -1), keepdims=True)
    slips = {
        "a = b = 2: alpha = (S / ||S||_2)^(1/2), not S / sum(S) (that is a = b = 1).": S / l1,
        "b = 2: take the square root, alpha = (S / ||S||_2)^(1/2), not S / ||S||_2.": S / l2,
        "a = 2: divide by the L2 norm of S, sqrt(sum S^2), not by its sum, before the square root.":
            np.sqrt(S / l1),
        "divide S by its L2 norm, sqrt(sum_ij S_ij^2), not by its maximum.":
            np.sqrt(S / S.max(axis=(-2, -1), keepdims=True)),
        "divide S by its L2 norm, sqrt(sum_ij S_ij^2), not by the sum of squares.":
            np.sqrt(S / (l2 ** 2)),
        "S is the sum of the channels at each cell, sum_k x[b, k, i, j], not their maximum.":
            np.sqrt(x.max(axis=1) / np.sqrt((x.max(axis=1) ** 2).sum(axis=(-2, -1), keepdims=True))),
        "normalise each image's S by its own norm, over its cells, not over the whole batch.":
            np.sqrt(S / np.sqrt((S ** 2).sum())),
    }
    return slips


def _channel_slips(x: np.ndarray) -> dict[str, np.ndarray]:
    x = x.astype(np.float64)

    def beta(Q, log=np.log):
        total = Q.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(Q > 0, log(total / np.where(Q > 0, Q, 1)), 0.0)

    Q = (x > 0).mean(axis=(-2, -1))
    total = Q.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        slips = {
            "beta_k = log(sum_h Q_h / Q_k): take the logarithm (like an idf), not the ratio itself.":
                np.where(Q > 0, total / np.where(Q > 0, Q, 1), 0.0),
            "Q_k is the fraction of the cells where channel k is positive (count x > 0), not its mean value.":
                beta(x.mean(axis=(-2, -1))),
            "beta_k = log(sum_h Q_h / Q_k): rare channels weigh more; this is its negative, log(Q_k / sum_h Q_h).":
                -beta(Q),
            "count the cells where channel k is positive, x > 0, not x >= 0 (every cell of a map after a ReLU "
            "is >= 0).": beta((x >= 0).mean(axis=(-2, -1))),
            "use the natural logarithm (np.log, torch.log), not log10.": beta(Q, np.log10),
            "use the natural logarithm (np.log, torch.log), not log2.": beta(Q, np.log2),
            "Q_k is the fraction of the cells of each image's own map where channel k is positive, not "
            "over the whole batch.": np.broadcast_to(beta((x > 0).mean(axis=(0, 2, 3))[None]), Q.shape),
            "beta_k = log(sum_h Q_h / Q_k) divides the sum over all channels by Q_k, not 1 / Q_k alone.":
                beta_inverse(Q),
        }
    return slips


def beta_inverse(Q: np.ndarray) -> np.ndarray:
    """``log(1 / Q_k)`` (0 where ``Q_k = 0``): the slip of leaving out ``sum_h Q_h``."""
    with np.errstate(divide="ignore"):
        return np.where(Q > 0, -np.log(np.where(Q > 0, Q, 1)), 0.0)


def _crow_cases(rng: np.random.Generator) -> list[np.ndarray]:
    return [lecture_map().numpy(), _relu_map(rng, 2, 9, 5, 7), _relu_map(rng, 3, 16, 8, 6, shift=0.8),
            _relu_map(rng, 1, 32, 12, 15), _relu_map(rng, 4, 5, 6, 11, shift=-0.2)]


def check_crow_weights(crow_weights: Callable, *, quiet: bool = False) -> None:
    """Exercise 7.5: CroW's spatial and channel weights, ``(alpha (B, H, W), beta (B, C))``, ``a = b = 2``."""
    c = Checker(_exercise("7.5"), quiet=quiet)

    def case(x: np.ndarray) -> None:
        alpha, beta = _crow_reference(x)
        got, where, call = _call_on_map(c, crow_weights, x)
        if got is None:
            raise CheckFailed(f"{where} returned None — did you forget `return`?")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise CheckFailed(f"{where}: expected a pair (alpha (B, H, W), beta (B, C)), got "
                              f"{describe(_numpy(got))} ({type(got).__name__})")
        g_alpha, g_beta = (_numpy(v) for v in got)
        B, C, H, W = x.shape
        if isinstance(g_alpha, np.ndarray) and g_alpha.shape == (B, C) and isinstance(g_beta, np.ndarray) \
                and g_beta.shape == (B, H, W):
            raise CheckFailed(f"{where}: return (alpha, beta): the spatial weights (B, H, W) first, the channel "
                              f"weights (B, C) second")
        if isinstance(g_alpha, np.ndarray) and g_alpha.shape != alpha.shape:
            raise CheckFailed(f"{where}: alpha has one weight per cell of each image, shape (B, H, W) = "
                              f"{alpha.shape}; got shape {g_alpha.shape} (sum x over the channels, axis 1)")
        if isinstance(g_alpha, np.ndarray) and g_alpha.dtype.kind == "f" and np.isnan(g_alpha).any():
            raise CheckFailed(f"{where}: alpha contains nan")
        diagnose(f"{where}, alpha", g_alpha, alpha, _spatial_slips(x), _TOL)
        compare(c.exercise, g_alpha, alpha, call=call + ", alpha", **_TOL)
        if isinstance(g_beta, np.ndarray) and g_beta.shape != beta.shape:
            raise CheckFailed(f"{where}: beta has one weight per channel of each image, shape (B, C) = "
                              f"{beta.shape}; got shape {g_beta.shape}")
        if isinstance(g_beta, np.ndarray) and g_beta.dtype.kind == "f" and not np.isfinite(g_beta).all():
            Q = (x > 0).mean(axis=(-2, -1))
            if not np.isfinite(g_beta[Q == 0]).all():
                raise CheckFailed(f"{where}: a channel that never fires (Q_k = 0) gets beta_k = 0, not inf or nan "
                                  f"(torch.where(Q > 0, ..., 0))")
            raise CheckFailed(f"{where}: beta contains inf or nan")
        diagnose(f"{where}, beta", g_beta, beta, _channel_slips(x), _TOL)
        compare(c.exercise, g_beta, beta, call=call + ", beta", **_TOL)
        c.count()

    for x in _crow_cases(np.random.default_rng(_SEED + 3)):
        case(x)
    return c.passed()
