"""The checks of notebook 01: each passes the reference and independent
correct answers, reports the stub as not done, and fails on plausible
wrong answers with a one-line message."""

import re

import cv2
import numpy as np
import pytest

from coursekit import color
from coursekit.exercises import EXERCISES, exercises_for
from coursekit.exercises import ex01
from checkhelpers import fails, stub



# --------------------------------------------------------------------------- correct answers

def reference_joint_histogram(image, bins):
    return color.joint_histogram(image, (bins, bins, bins), space="rgb")


def histogramdd_joint_histogram(image, bins):
    h, _ = np.histogramdd(image.reshape(-1, 3).astype(float), bins=(bins,) * 3, range=[(0, 256)] * 3)
    return h.ravel() / h.sum()


def loop_joint_histogram(image, bins):
    h = np.zeros((bins, bins, bins))
    for r, g, b in image.reshape(-1, 3).tolist():
        h[r * bins // 256, g * bins // 256, b * bins // 256] += 1
    return h.ravel() / h.sum()


def loop_chi2(X, Y):
    out = np.zeros((len(X), len(Y)))
    for q in range(len(X)):
        for n in range(len(Y)):
            for x, y in zip(X[q], Y[n]):
                if x + y > 0:
                    out[q, n] += 0.5 * (x - y) ** 2 / (x + y)
    return out


def broadcast_chi2(X, Y):
    x, y = X[:, None, :], Y[None, :, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(x + y > 0, (x - y) ** 2 / (x + y), 0.0)
    return 0.5 * terms.sum(-1)


def loop_intersection(X, Y):
    return np.array([[np.minimum(x, y).sum() / y.sum() for y in Y] for x in X])


CORRECT = {
    "1.1": [reference_joint_histogram, histogramdd_joint_histogram, loop_joint_histogram],
    "1.2": [color.chi2_distance, loop_chi2, broadcast_chi2],
    "1.3": [color.histogram_intersection, loop_intersection],
}
CHECKS = {"1.1": ex01.check_joint_histogram, "1.2": ex01.check_chi2_distance,
          "1.3": ex01.check_histogram_intersection}


@pytest.mark.parametrize("ex_id, fn", [(k, f) for k, fns in CORRECT.items() for f in fns],
                         ids=lambda v: getattr(v, "__name__", v))
def test_check_passes_correct_answers(ex_id, fn):
    assert CHECKS[ex_id](fn, quiet=True) is None


@pytest.mark.parametrize("ex_id", list(CHECKS))
def test_check_prints_one_line_of_success(ex_id, capsys):
    CHECKS[ex_id](CORRECT[ex_id][0])
    out = capsys.readouterr().out.strip()
    assert re.fullmatch(rf"✔ Exercise {re.escape(ex_id)} \(.+\): passed \d+ cases\.", out), out


@pytest.mark.parametrize("ex_id", list(CHECKS))
def test_check_reports_the_stub_as_not_done(ex_id):
    message = fails(CHECKS[ex_id], stub, not_done=True)
    assert message.startswith(f"Exercise {ex_id} ") and "not done yet" in message


def test_lecture_examples():
    assert color.chi2_distance(ex01.LECTURE_X, ex01.LECTURE_Y)[0, 0] == pytest.approx(5 / 12)
    assert color.histogram_intersection(ex01.LECTURE_X, ex01.LECTURE_Y)[0, 0] == pytest.approx(0.5)
    # bins (0,0,0) x2, (0,0,1) blue, (0,1,0) green, (1,0,0) red, (1,1,1) white
    np.testing.assert_allclose(reference_joint_histogram(ex01.LECTURE_IMAGE, 2),
                               [2 / 6, 1 / 6, 1 / 6, 0, 1 / 6, 0, 0, 1 / 6], rtol=1e-6)


# --------------------------------------------------------------------------- 1.1 wrong answers

def counts_not_normalised(image, bins):
    return np.histogramdd(image.reshape(-1, 3).astype(float), bins=(bins,) * 3, range=[(0, 256)] * 3)[0].ravel()


def blue_slowest(image, bins):
    h = loop_joint_histogram(image, bins).reshape(bins, bins, bins)
    return h.transpose(2, 1, 0).ravel()


def bin_width_as_integer(image, bins):
    q = image.reshape(-1, 3).astype(np.int64) // (256 // bins)  # 255 // 85 = 3 with 3 bins: out of range
    flat = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    h = np.bincount(flat, minlength=bins ** 3).astype(float)
    return h / h.sum()


def range_0_255(image, bins):
    h, _ = np.histogramdd(image.reshape(-1, 3).astype(float), bins=(bins,) * 3, range=[(0, 255)] * 3)
    return h.ravel() / h.sum()


def hsv_instead_of_rgb(image, bins):
    return color.joint_histogram(image, (bins, bins, bins), space="hsv")


def integer_counts(image, bins):
    return np.bincount(color.bin_indices(image, (bins,) * 3, "rgb").ravel(), minlength=bins ** 3)


@pytest.mark.parametrize("wrong", [counts_not_normalised, blue_slowest, bin_width_as_integer, range_0_255,
                                   hsv_instead_of_rgb, integer_counts])
def test_joint_histogram_wrong_answers(wrong):
    m = fails(ex01.check_joint_histogram, wrong)
    assert m.startswith(f"Exercise 1.1 (joint colour histogram): {wrong.__name__}(image=")


def test_joint_histogram_messages():
    m = fails(ex01.check_joint_histogram, counts_not_normalised)
    assert "bins=2): at index (0,) expected 0.3333, got 2" in m
    assert "expected a float array" in fails(ex01.check_joint_histogram, integer_counts)
    m = fails(ex01.check_joint_histogram, lambda image, bins: np.zeros((bins, bins, bins)))
    assert "expected shape (8,), got shape (2, 2, 2)" in m


# --------------------------------------------------------------------------- 1.2 wrong answers

def chi2_without_half(X, Y):
    return 2 * broadcast_chi2(X, Y)


def chi2_nan_for_empty_bins(X, Y):
    x, y = X[:, None, :], Y[None, :, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return 0.5 * ((x - y) ** 2 / (x + y)).sum(-1)


def chi2_divides_by_y(X, Y):  # Pearson's statistic, not symmetric
    x, y = X[:, None, :], Y[None, :, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return 0.5 * np.where(y > 0, (x - y) ** 2 / y, 0.0).sum(-1)


def chi2_rowwise(X, Y):  # row q against row q, not every pair
    n = min(len(X), len(Y))
    return broadcast_chi2(X[:n], Y[:n]).diagonal()


def chi2_epsilon_too_large(X, Y):
    x, y = X[:, None, :], Y[None, :, :]
    return 0.5 * ((x - y) ** 2 / (x + y + 1e-2)).sum(-1)


@pytest.mark.parametrize("wrong", [chi2_without_half, chi2_nan_for_empty_bins, chi2_divides_by_y, chi2_rowwise,
                                   chi2_epsilon_too_large])
def test_chi2_wrong_answers(wrong):
    m = fails(ex01.check_chi2_distance, wrong)
    assert m.startswith(f"Exercise 1.2 (chi-squared distance): {wrong.__name__}(X=")


def test_chi2_messages():
    assert "expected 0.4167, got 0.8333" in fails(ex01.check_chi2_distance, chi2_without_half)
    assert "got nan at index (0, 0)" in fails(ex01.check_chi2_distance, chi2_nan_for_empty_bins)
    assert "expected shape (1, 1), got shape (1,)" in fails(ex01.check_chi2_distance, chi2_rowwise)


def test_chi2_with_a_tiny_epsilon_passes():
    def chi2_eps(X, Y):
        x, y = X[:, None, :], Y[None, :, :]
        return 0.5 * ((x - y) ** 2 / (x + y + 1e-12)).sum(-1)
    assert ex01.check_chi2_distance(chi2_eps, quiet=True) is None


# --------------------------------------------------------------------------- 1.3 wrong answers

def intersection_not_normalised(X, Y):
    return np.minimum(X[:, None, :], Y[None, :, :]).sum(-1)


def intersection_by_image(X, Y):  # normalised by the image (X), not the model (Y)
    return intersection_not_normalised(X, Y) / X.sum(1)[:, None]


def intersection_by_smaller(X, Y):
    return intersection_not_normalised(X, Y) / np.minimum(X.sum(1)[:, None], Y.sum(1)[None, :])


def intersection_as_distance(X, Y):
    return 1 - loop_intersection(X, Y)


def intersection_max(X, Y):
    return np.maximum(X[:, None, :], Y[None, :, :]).sum(-1) / Y.sum(1)[None, :]


@pytest.mark.parametrize("wrong", [intersection_not_normalised, intersection_by_image, intersection_by_smaller,
                                   intersection_as_distance, intersection_max])
def test_intersection_wrong_answers(wrong):
    m = fails(ex01.check_histogram_intersection, wrong)
    assert m.startswith(f"Exercise 1.3 (histogram intersection): {wrong.__name__}(X=")


def test_intersection_messages():
    m = fails(ex01.check_histogram_intersection, intersection_not_normalised)
    assert "at index (0, 0) expected 0.6667, got 4" in m
    assert "at index (0, 0) expected 0.6667, got 0.5" in fails(ex01.check_histogram_intersection,
                                                                intersection_by_image)


# --------------------------------------------------------------------------- what students write

def test_inputs_are_not_changed():
    def normalises_in_place(X, Y):
        Y /= Y.sum(1, keepdims=True)
        return loop_intersection(X, Y)
    assert "changed its input `Y`" in fails(ex01.check_histogram_intersection, normalises_in_place)

    def converts_in_place(image, bins):
        image[...] = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        return loop_joint_histogram(image, bins)
    assert "changed its input `image`" in fails(ex01.check_joint_histogram, converts_in_place)


def test_float32_results_pass():
    assert ex01.check_chi2_distance(lambda X, Y: broadcast_chi2(X, Y).astype(np.float32), quiet=True) is None
    assert ex01.check_joint_histogram(lambda im, b: loop_joint_histogram(im, b).astype(np.float32),
                                      quiet=True) is None


# --------------------------------------------------------------------------- the registry

def test_registry_entry_for_notebook_01():
    exercises = EXERCISES["01"]
    assert [(e.id, e.function, e.points) for e in exercises] == [
        ("1.1", "joint_histogram", 2), ("1.2", "chi2_distance", 1), ("1.3", "histogram_intersection", 1)]
    assert [e.check for e in exercises] == list(CHECKS.values())
    assert [e.id for e in exercises_for({"coursekit": {"notebook": "01"}})] == ["1.1", "1.2", "1.3"]
    assert [e.id for e in exercises_for({}, "01_color.ipynb")] == ["1.1", "1.2", "1.3"]
