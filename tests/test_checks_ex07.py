"""The checks of notebook 07: each passes the reference and independent correct
answers (torch or NumPy results, loops, other routes to the same values), reports
the stub as not done, and fails plausible wrong answers with a one-line message
that names the slip where it can."""

import math
import re

import numpy as np
import pytest
import torch

from coursekit.cnn import pooling
from coursekit.exercises import EXERCISES, exercise, exercises_for
from coursekit.exercises import ex07
from checkhelpers import fails

CHECKS = [ex07.check_mac, ex07.check_spoc, ex07.check_gem, ex07.check_rmac_regions, ex07.check_crow_weights]


def test_registry():
    assert [e.id for e in EXERCISES["07"]] == ["7.1", "7.2", "7.3", "7.4", "7.5"]
    assert [e.function for e in EXERCISES["07"]] == ["mac", "spoc", "gem", "rmac_regions", "crow_weights"]
    assert [e.points for e in EXERCISES["07"]] == [1, 2, 2, 3, 2]
    assert [e.check for e in exercises_for(path="07_cnn_descriptors.ipynb")] == CHECKS
    assert exercise("7.4").check is ex07.check_rmac_regions


def test_lecture_map_is_what_the_docstring_says():
    x = ex07.lecture_map()
    assert x.shape == (1, 3, 4, 6) and x.dtype == torch.float32 and (x >= 0).all()
    assert pooling.mac(x)[0].tolist() == pytest.approx([4.0, 1.69, 0.5])
    s = pooling.spoc(x)[0]
    assert s[0] < 1e-3 < s[2] < s[1]                         # the prior all but ignores the corner cell
    g, mean = pooling.gem(x)[0], x.mean(dim=(-2, -1))[0]
    assert ((mean <= g + 1e-6) & (g <= pooling.mac(x)[0] + 1e-6)).all()


# --------------------------------------------------------------------------- pooling: shared slips

POOLING_CHECKS = {"mac": ex07.check_mac, "spoc": ex07.check_spoc, "gem": ex07.check_gem}


def reference(kind):
    return {"mac": lambda x: pooling.mac(x), "spoc": lambda x: pooling.spoc(x),
            "gem": lambda x, p: pooling.gem(x, p)}[kind]


@pytest.mark.parametrize("kind", POOLING_CHECKS)
def test_pooling_passes_the_reference(kind, capsys):
    POOLING_CHECKS[kind](reference(kind))
    out = capsys.readouterr().out.strip()
    assert re.fullmatch(r"✔ Exercise 7\.\d \(.+\): passed \d+ cases\.", out), out


@pytest.mark.parametrize("kind", POOLING_CHECKS)
def test_pooling_accepts_numpy_and_float64_answers(kind):
    ref = reference(kind)
    POOLING_CHECKS[kind](lambda *a: ref(*a).numpy(), quiet=True)
    POOLING_CHECKS[kind](lambda x, *rest: ref(x.double(), *rest), quiet=True)


@pytest.mark.parametrize("kind", POOLING_CHECKS)
def test_pooling_over_the_wrong_axes_fails_with_a_hint(kind):
    m = fails(POOLING_CHECKS[kind], lambda x, *rest: x.amax(dim=1))
    assert "expected shape (B, C) = (1, 3)" in m and "pool over the last two axes" in m
    m = fails(POOLING_CHECKS[kind], lambda x, *rest: x.amax(dim=(-2, -1), keepdim=True))
    assert "drop the pooled axes" in m


@pytest.mark.parametrize("kind", POOLING_CHECKS)
def test_pooling_that_changes_its_input_fails(kind):
    ref = reference(kind)

    def in_place(x, *rest):
        x.clamp_(max=1.0)
        return ref(x, *rest)
    m = fails(POOLING_CHECKS[kind], in_place)
    assert "changed its input `x`" in m and "work on x.clone()" in m


# --------------------------------------------------------------------------- 7.1 MAC

def loop_mac(x):
    """A student's loops, in NumPy."""
    x = x.numpy()
    B, C = x.shape[:2]
    out = np.zeros((B, C), np.float32)
    for b in range(B):
        for k in range(C):
            out[b, k] = x[b, k].max()
    return out


def test_mac_passes_loops_and_torch_max_twice():
    ex07.check_mac(loop_mac, quiet=True)
    ex07.check_mac(lambda x: x.max(dim=-1).values.max(dim=-1).values, quiet=True)
    ex07.check_mac(lambda x: x.flatten(2).max(dim=2).values, quiet=True)


@pytest.mark.parametrize("wrong, hint", [
    (lambda x: x.mean(dim=(-2, -1)), "not its mean"),
    (lambda x: x.sum(dim=(-2, -1)), "not its sum"),
    (lambda x: x.amax(dim=-1).mean(dim=-1), "one max over both axes"),
], ids=["mean", "sum", "max-then-mean"])
def test_mac_slips_are_named(wrong, hint):
    m = fails(ex07.check_mac, wrong)
    assert hint in m and m.startswith("Exercise 7.1 (MAC pooling): <lambda>(x=array of shape (1, 3, 4, 6)")


def test_mac_returning_torch_max_values_and_indices_fails():
    assert "(values, indices)" in fails(ex07.check_mac, lambda x: x.flatten(2).max(dim=2))


def test_an_unnamed_wrong_answer_fails_with_the_first_value_that_differs():
    m = fails(ex07.check_mac, lambda x: (x - 0.1).abs().amax(dim=(-2, -1)))     # no named slip: MAC of |x - 0.1|
    assert re.search(r"at index \(0, \d+\) expected [\d.]+, got [\d.]+", m), m


# --------------------------------------------------------------------------- 7.2 SPoC

def numpy_spoc(x):
    """Another route: the prior with integer indices around (H - 1) / 2, in NumPy, float64."""
    x = x.numpy().astype(np.float64)
    H, W = x.shape[-2:]
    sigma = min(H, W) / 6
    i, j = np.mgrid[0:H, 0:W]
    alpha = np.exp(-((i - (H - 1) / 2) ** 2 + (j - (W - 1) / 2) ** 2) / (2 * sigma ** 2))
    return np.einsum("bchw,hw->bc", x, alpha)


def test_spoc_passes_another_route():
    ex07.check_spoc(numpy_spoc, quiet=True)


def spoc_with(x, sigma=None, offset=0.5, norm=None, reduce="sum", exponent_two=True, sigma_power=2):
    H, W = x.shape[-2:]
    s = min(H, W) / 6 if sigma is None else sigma(H, W)
    si, sj = s if isinstance(s, tuple) else (s, s)
    i = torch.arange(H, dtype=torch.float64) + offset - H / 2
    j = torch.arange(W, dtype=torch.float64) + offset - W / 2
    two = 2 if exponent_two else 1
    alpha = torch.exp(-(i[:, None] ** 2 / (two * si ** sigma_power) + j[None, :] ** 2 / (two * sj ** sigma_power)))
    if norm == "sum":
        alpha = alpha / alpha.sum()
    elif norm == "max":
        alpha = alpha / alpha.max()
    y = x.double() * alpha
    return y.sum(dim=(-2, -1)) if reduce == "sum" else y.mean(dim=(-2, -1))


@pytest.mark.parametrize("wrong, hint", [
    (lambda x: x.sum(dim=(-2, -1)), "the plain sum has no prior"),
    (lambda x: spoc_with(x, reduce="mean"), "does not average them"),
    (lambda x: spoc_with(x, norm="sum"), "not divided by its sum"),
    (lambda x: spoc_with(x, norm="max"), "not divided by its maximum"),
    (lambda x: spoc_with(x, sigma=lambda H, W: min(H, W) / 3), "not min(H, W) / 3"),
    (lambda x: spoc_with(x, sigma=lambda H, W: max(H, W) / 6), "not max(H, W) / 6"),
    (lambda x: spoc_with(x, sigma=lambda H, W: (H / 6, W / 6)), "not H / 6 and W / 6"),
    (lambda x: spoc_with(x, exponent_two=False), "the factor 2 is missing"),
    (lambda x: spoc_with(x, sigma_power=1), "sigma, not sigma^2"),
    (lambda x: spoc_with(x, offset=0.0), "not i - H / 2"),
], ids=["no-prior", "mean", "prior-sum-1", "prior-max-1", "sigma-third", "sigma-long", "sigma-per-axis",
        "no-factor-2", "sigma-not-squared", "offset"])
def test_spoc_slips_are_named(wrong, hint):
    m = fails(ex07.check_spoc, wrong)
    assert hint in m and m.startswith("Exercise 7.2 (SPoC pooling with its centring prior): <lambda>(x=")


def test_spoc_with_a_prior_of_the_wrong_shape_fails():
    def xy_grid(x):
        H, W = x.shape[-2:]
        i, j = torch.meshgrid(torch.arange(H) + 0.5 - H / 2, torch.arange(W) + 0.5 - W / 2, indexing="xy")
        alpha = torch.exp(-(i ** 2 + j ** 2) / (2 * (min(H, W) / 6) ** 2))    # (W, H): a slip
        return (x * alpha).sum(dim=(-2, -1))
    assert "raised RuntimeError" in fails(ex07.check_spoc, xy_grid)


# --------------------------------------------------------------------------- 7.3 GeM

def numpy_gem(x, p):
    """Another route: clamped at 0 (not 1e-6), NumPy, float64."""
    x = np.maximum(x.numpy().astype(np.float64), 0)
    return np.mean(x ** p, axis=(2, 3)) ** (1 / p)


def test_gem_passes_another_route_and_a_clamp_at_zero():
    ex07.check_gem(numpy_gem, quiet=True)
    ex07.check_gem(lambda x, p: torch.relu(x).pow(p).mean(dim=(-2, -1)).pow(1 / p), quiet=True)


def gem_with(x, p, root=True, reduce="mean", clamp="eps", fixed_p=None, root_power=None):
    p = fixed_p or p
    y = x.double()
    y = y.abs().clamp(min=1e-6) if clamp == "abs" else y.clamp(min=1e-6) if clamp == "eps" else y
    y = y.pow(p)
    y = y.mean(dim=(-2, -1)) if reduce == "mean" else y.sum(dim=(-2, -1))
    if root_power is not None:
        return y.pow(root_power(p))
    return y.pow(1 / p) if root else y


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, p: gem_with(x, p, root=False), "take the 1/p-th root"),
    (lambda x, p: gem_with(x, p, reduce="sum"), "not the sum"),
    (lambda x, p: gem_with(x, p, clamp="abs"), "do not take their absolute value"),
    (lambda x, p: gem_with(x, p, fixed_p=3.0), "use the p given"),
    (lambda x, p: gem_with(x, p, root_power=lambda p: p), "not (mean x^p)^p"),
    (lambda x, p: x.double().clamp(min=1e-6).mean(dim=(-2, -1)).pow(p).pow(1 / p), "is the plain mean"),
    (lambda x, p: x.clamp(min=1e-6).pow(p).mean(dim=(1, 2, 3), keepdim=True).pow(1 / p).squeeze(-1).squeeze(-1)
     .expand(-1, x.shape[1]), "not over the cells and the channels"),
], ids=["no-root", "sum", "abs", "fixed-p", "power-p", "mean-first", "all-axes"])
def test_gem_slips_are_named(wrong, hint):
    m = fails(ex07.check_gem, wrong)
    assert hint in m and m.startswith("Exercise 7.3 (GeM pooling): <lambda>(x=")


def test_gem_without_a_clamp_fails_on_negative_values():
    m = fails(ex07.check_gem, lambda x, p: x.pow(p).mean(dim=(-2, -1)).pow(1 / p))
    assert "got nan" in m and "clamp the map at 1e-6" in m
    def numpy_without_clamp(x, p):
        with np.errstate(invalid="ignore"):
            return np.mean(x.numpy() ** p, axis=(2, 3)) ** (1 / p)
    assert "got nan" in fails(ex07.check_gem, numpy_without_clamp)


# --------------------------------------------------------------------------- 7.4 R-MAC regions

def student_regions(H, W, L, overlap=0.4, integer=False, as_list=False, reverse=False):
    """An independent student's grid: NumPy, regions listed scale by scale, columns before rows."""
    w, long = min(H, W), max(H, W)
    m = 0
    if H != W:
        b = (long - w) / np.arange(1, 7)
        m = int(np.argmin(np.abs((w - b) / w - overlap))) + 1
    rows = []
    for l in range(1, L + 1):
        s = 2 * w // (l + 1)
        if s == 0:
            continue
        nh, nw = (l + m, l) if H > W else (l, l + m) if W > H else (l, l)

        def starts(n, length):
            if n == 1:
                return [0]
            if integer:
                return [k * (length - s) // (n - 1) for k in range(n)]
            return np.floor(np.arange(n) * ((length - s) / (n - 1))).astype(int).tolist()
        rows += [(t, left, s, s) for left in starts(nw, W) for t in starts(nh, H)]
    if reverse:
        rows = rows[::-1]
    return rows if as_list else np.array(rows, np.int64).reshape(-1, 4)


def test_regions_pass_the_reference_and_other_routes(capsys):
    ex07.check_rmac_regions(lambda H, W, L: pooling.rmac_regions(H, W, L))
    out = capsys.readouterr().out.strip()
    assert re.fullmatch(r"✔ Exercise 7\.4 \(the R-MAC region grid\): passed 11 cases\.", out), out
    ex07.check_rmac_regions(student_regions, quiet=True)
    ex07.check_rmac_regions(lambda H, W, L: student_regions(H, W, L, integer=True), quiet=True)
    ex07.check_rmac_regions(lambda H, W, L: student_regions(H, W, L, as_list=True, reverse=True), quiet=True)
    ex07.check_rmac_regions(lambda H, W, L: torch.from_numpy(student_regions(H, W, L)), quiet=True)


def test_regions_lecture_counts():
    assert len(pooling.rmac_regions(11, 15, 3)) == 2 + 6 + 12
    assert len(pooling.rmac_regions(10, 10, 3)) == 1 + 4 + 9


def grid_with(H, W, L, square=True, position=None, scales=None, n_long=None, extra=None):
    w, long = min(H, W), max(H, W)
    m = 0
    if H != W:
        m = int(np.argmin([abs((w - (long - w) / k) / w - 0.4) for k in range(1, 7)])) + 1
    m = m if extra is None else extra
    position = position or (lambda k, length, s, n: math.floor(k * (length - s) / (n - 1)) if n > 1 else 0)
    rows = []
    for l in (scales or range(1, L + 1)):
        sh, sw = (2 * w // (l + 1),) * 2 if square else (2 * H // (l + 1), 2 * W // (l + 1))
        nl = l + m if n_long is None else n_long(l, m)
        nh, nw = (nl, l) if H > W else (l, nl) if W > H else (l, l)
        rows += [(position(a, H, sh, nh), position(b, W, sw, nw), sh, sw) for a in range(nh) for b in range(nw)]
    return np.array(rows, np.int64).reshape(-1, 4)


@pytest.mark.parametrize("wrong, hint", [
    (lambda H, W, L: grid_with(H, W, L, square=False), "regions are square"),
    (lambda H, W, L: grid_with(H, W, L, position=lambda k, n_, s, n: round(k * (n_ - s) / (n - 1)) if n > 1 else 0),
     "do not round it."),
    (lambda H, W, L: grid_with(H, W, L, position=lambda k, n_, s, n: math.ceil(k * (n_ - s) / (n - 1)) if n > 1
                               else 0), "floor it"),
    (lambda H, W, L: grid_with(H, W, L, position=lambda k, n_, s, n: (k * (n_ - s) // (n - 1) if n > 1 else 0) + 1),
     "positions count from 0"),
    (lambda H, W, L: grid_with(H, W, L, position=lambda k, n_, s, n: k * s), "not side by side"),
    (lambda H, W, L: grid_with(H, W, 3), "use the L given"),
    (lambda H, W, L: grid_with(H, W, L, scales=range(0, L)), "not 0 .. L - 1"),
    (lambda H, W, L: grid_with(H, W, L, n_long=lambda l, m: l + m - 1), "there are l + m regions"),
    (lambda H, W, L: grid_with(H, W, L, extra=0), "is not square"),
], ids=["rectangular", "round", "ceil", "one-based", "side-by-side", "L-ignored", "scales-from-0",
        "count-minus-one", "no-extra"])
def test_region_slips_are_named(wrong, hint):
    m = fails(ex07.check_rmac_regions, wrong)
    assert hint in m and m.startswith("Exercise 7.4 (the R-MAC region grid): <lambda>(H=")


def test_region_count_minus_one_is_named_where_m_is_2():
    def minus_one_past_m_1(H, W, L):
        m = ex07._extra(H, W)
        return grid_with(H, W, L, n_long=lambda l, m: l + m - 1) if m > 1 else pooling.rmac_regions(H, W, L)
    assert "(m = 2 here), not l + m - 1" in fails(ex07.check_rmac_regions, minus_one_past_m_1)


def test_region_count_from_a_wrong_overlap_is_reported_by_scale():
    # the overlap measured as the share of the step (b / w) instead of (w - b) / w: another m
    def wrong_m(H, W, L):
        w, long = min(H, W), max(H, W)
        m = 0 if H == W else int(np.argmin([abs((long - w) / k / w - 0.4) for k in range(1, 7)])) + 1
        return grid_with(H, W, L, extra=m)
    m = fails(ex07.check_rmac_regions, wrong_m)
    assert "regions (rows x columns), got" in m or "along the longer side" in m


def test_regions_that_do_not_fit_or_have_wrong_types_fail():
    m = fails(ex07.check_rmac_regions, lambda H, W, L: grid_with(H, W, L).astype(np.float64))
    assert "return integers" in m
    m = fails(ex07.check_rmac_regions, lambda H, W, L: grid_with(H, W, L)[:, :2])
    assert "expected shape (R, 4)" in m
    m = fails(ex07.check_rmac_regions, lambda H, W, L: grid_with(H, W, L)[:, [1, 0, 2, 3]])
    assert "does not fit" in m or "edges should be" in m
    m = fails(ex07.check_rmac_regions, lambda H, W, L: 42)
    assert "expected an (R, 4) array" in m


def test_regions_with_a_missing_region_fail_by_scale():
    m = fails(ex07.check_rmac_regions, lambda H, W, L: grid_with(H, W, L)[:-1])
    assert "at scale l = 3 (side 5) expected 3 x 4 = 12 regions (rows x columns), got 11 regions" in m


def test_region_test_cases_agree_for_every_way_of_flooring():
    assert {ex07._extra(H, W) for H, W, L in ex07.REGION_CASES} == {0, 1, 2}
    for H, W, L in ex07.REGION_CASES:
        ref = pooling.rmac_regions(H, W, L).numpy()
        for other in (student_regions(H, W, L, integer=True), grid_with(H, W, L)):
            assert np.array_equal(ex07._sorted_rows(ref), ex07._sorted_rows(other)), (H, W, L)


# --------------------------------------------------------------------------- 7.5 CroW weights

def numpy_crow(x, count=False):
    """Another route: NumPy, float64; ``count`` uses counts of positive cells instead of fractions."""
    x = x.numpy().astype(np.float64)
    S = x.sum(axis=1)
    alpha = np.sqrt(S / np.sqrt((S ** 2).sum(axis=(1, 2), keepdims=True)))
    Q = (x > 0).sum(axis=(2, 3)) if count else (x > 0).mean(axis=(2, 3))
    total = Q.sum(axis=1, keepdims=True)
    beta = np.zeros_like(Q, dtype=np.float64)
    nz = Q > 0
    beta[nz] = np.log(np.broadcast_to(total, Q.shape)[nz] / Q[nz])
    return alpha, beta


def reference_crow(x):
    return pooling.crow_spatial_weights(x), pooling.crow_channel_weights(x)


def test_crow_passes_the_reference_and_other_routes(capsys):
    ex07.check_crow_weights(reference_crow)
    assert re.fullmatch(r"✔ Exercise 7\.5 \(the CroW weights\): passed 5 cases\.", capsys.readouterr().out.strip())
    ex07.check_crow_weights(numpy_crow, quiet=True)
    ex07.check_crow_weights(lambda x: numpy_crow(x, count=True), quiet=True)
    ex07.check_crow_weights(lambda x: list(reference_crow(x)), quiet=True)


def crow_with(x, alpha=None, beta=None):
    a, b = (v.double() for v in reference_crow(x))
    return (a if alpha is None else alpha(x.double())), (b if beta is None else beta(x.double()))


def spatial(x, a=2.0, b=2.0, norm=None):
    S = x.sum(dim=1)
    n = S.pow(a).sum(dim=(-2, -1), keepdim=True).pow(1 / a) if norm is None else norm(S)
    return (S / n).pow(1 / b)


def channel(x, Q=None, log=torch.log, total=True):
    Q = (x > 0).double().mean(dim=(-2, -1)) if Q is None else Q(x)
    t = Q.sum(dim=1, keepdim=True) if total else torch.ones_like(Q)
    return torch.where(Q > 0, log(t / Q.clamp(min=1e-12)), torch.zeros_like(Q))


@pytest.mark.parametrize("wrong, hint", [
    (lambda x: crow_with(x, alpha=lambda x: spatial(x, 1, 1)), "that is a = b = 1"),
    (lambda x: crow_with(x, alpha=lambda x: spatial(x, 2, 1)), "take the square root"),
    (lambda x: crow_with(x, alpha=lambda x: spatial(x, 1, 2)), "not by its sum"),
    (lambda x: crow_with(x, alpha=lambda x: spatial(x, norm=lambda S: S.amax(dim=(-2, -1), keepdim=True))),
     "not by its maximum"),
    (lambda x: crow_with(x, alpha=lambda x: spatial(x, norm=lambda S: S.pow(2).sum(dim=(-2, -1), keepdim=True))),
     "not by the sum of squares"),
    (lambda x: crow_with(x, alpha=lambda x: spatial(x.amax(dim=1, keepdim=True))), "not their maximum"),
    (lambda x: crow_with(x, alpha=lambda x: spatial(x, norm=lambda S: S.pow(2).sum().sqrt())),
     "not over the whole batch"),
    (lambda x: crow_with(x, beta=lambda x: channel(x, log=lambda v: v)), "take the logarithm"),
    (lambda x: crow_with(x, beta=lambda x: channel(x, Q=lambda x: x.mean(dim=(-2, -1)))), "not its mean value"),
    (lambda x: crow_with(x, beta=lambda x: -channel(x)), "this is its negative"),
    (lambda x: crow_with(x, beta=lambda x: channel(x, log=torch.log10)), "not log10"),
    (lambda x: crow_with(x, beta=lambda x: channel(x, log=torch.log2)), "not log2"),
    (lambda x: crow_with(x, beta=lambda x: channel(x, Q=lambda x: (x > 0).double().mean(dim=(0, 2, 3))
                                                   .expand(x.shape[0], -1))), "not over the whole batch"),
    (lambda x: crow_with(x, beta=lambda x: channel(x, total=False)), "not 1 / Q_k alone"),
], ids=["a1b1", "no-root", "l1-norm", "max-norm", "squared-norm", "max-over-channels", "batch-norm", "no-log",
        "mean-value", "negative", "log10", "log2", "batch-Q", "no-total"])
def test_crow_slips_are_named(wrong, hint):
    m = fails(ex07.check_crow_weights, wrong)
    assert hint in m and m.startswith("Exercise 7.5 (the CroW weights): <lambda>(x=")


def test_crow_positive_or_non_negative():
    m = fails(ex07.check_crow_weights, lambda x: crow_with(x, beta=lambda x: channel(x, Q=lambda x: (x >= 0).double()
                                                                                    .mean(dim=(-2, -1)))))
    assert "beta" in m and "not x >= 0" in m


def test_crow_silent_channels_must_get_zero():
    def infinite(x):
        Q = (x > 0).double().mean(dim=(-2, -1))
        return pooling.crow_spatial_weights(x), torch.log(Q.sum(dim=1, keepdim=True) / Q)
    assert "never fires" in fails(ex07.check_crow_weights, infinite)


def test_crow_wrong_shapes_and_order_fail():
    m = fails(ex07.check_crow_weights, lambda x: reference_crow(x)[::-1])
    assert "spatial weights (B, H, W) first" in m
    m = fails(ex07.check_crow_weights, lambda x: reference_crow(x)[0])
    assert "expected a pair" in m
    m = fails(ex07.check_crow_weights, lambda x: (x.sum(dim=1, keepdim=True), reference_crow(x)[1]))
    assert "alpha has one weight per cell" in m
    m = fails(ex07.check_crow_weights, lambda x: (reference_crow(x)[0], reference_crow(x)[1][..., None]))
    assert "beta has one weight per channel" in m
