"""Checks of notebook 08, "Learning to rank".

=====  =====================================================  ==================================================
id     the student writes                                     reference
=====  =====================================================  ==================================================
8.1    ``contrastive_loss(x1, x2, y, margin)``                :func:`coursekit.learning.losses.contrastive_loss`
8.2    ``triplet_loss(anchor, positive, negative, margin)``   :func:`coursekit.learning.losses.triplet_loss`
                                                              (``negative`` of shape ``(B, K, D)``)
8.3    ``hard_negatives(q, pool, q_labels, pool_labels, n)``  :func:`coursekit.learning.mining.hard_negatives`
                                                              with ``one_per_label=True``
=====  =====================================================  ==================================================

Contracts
---------
8.1 ``x1 (B, D)`` and ``x2 (B, D)`` **torch tensors**, float32, L2-normalised
    rows; ``y (B,)`` a float32 tensor of 1 (matching pair) and 0
    (non-matching pair); ``margin`` a float. Returns a **scalar torch
    tensor** (0-d, any float dtype): the mean over the ``B`` pairs of
    ``y 0.5 d^2 + (1 - y) 0.5 max(0, margin - d)^2``, ``d = ||x1 - x2||_2``
    (Hadsell, Chopra and LeCun, CVPR 2006; Radenovic, Tolias and Chum,
    ECCV 2016). Values are compared to the reference in float64 with a
    relative tolerance of ``1e-4``. The loss must stay in torch: the check
    calls the function a second time on inputs with ``requires_grad=True``,
    calls ``.backward()`` and compares the gradients with respect to ``x1``
    and ``x2`` with the reference's (relative tolerance ``1e-3``): the
    notebook trains a network with this loss. Only the part of each
    gradient tangent to the unit sphere is compared (the part that reaches
    the network through its L2 normalisation), so formulas that agree on
    unit vectors agree on their gradients too. Any torch route passes
    (``torch.norm``, ``F.pairwise_distance`` with its ``eps = 1e-6``,
    ``2 - 2 x1.x2`` for ``d^2`` on unit vectors, ``clamp``, ``relu`` or
    ``where`` for the hinge). No pair of the cases is at distance 0 or at
    distance ``margin``, where the hinge has no derivative.

8.2 ``anchor (B, D)``, ``positive (B, D)`` and ``negative (B, K, D)`` torch
    tensors, float32, L2-normalised (``K`` negatives per anchor, all with
    the anchor's one positive); ``margin`` a float. Returns a scalar torch
    tensor: the mean over the ``B K`` triplets of
    ``max(0, ||a - p||^2 - ||a - n_k||^2 + margin)``, squared Euclidean
    distances (Schroff, Kalenichenko and Philbin, CVPR 2015). Tolerances and
    the gradient check (with respect to all three inputs) as in 8.1. No
    triplet of the cases sits on the hinge's corner.

8.3 ``q (Q, D)`` and ``pool (P, D)`` NumPy float32 arrays, L2-normalised
    rows; ``q_labels (Q,)`` and ``pool_labels (P,)`` int64; ``n`` an int.
    Returns ``(Q, n)`` integer indices into ``pool`` (any integer dtype, a
    NumPy array; a torch tensor is accepted too): row ``i`` lists the ``n``
    pool items most similar to ``q[i]`` (dot product) among those whose
    label differs from ``q_labels[i]``, taking **at most one item per
    label** (each label represented by its most similar item), most similar
    first (Radenovic, Tolias and Chum, TPAMI 2018). The cases have no ties
    in similarity (every two similarities of a row differ by more than
    ``1e-4``) and every query has at least ``n`` other labels in the pool.

Messages
--------
8.1 and 8.2 run two calls per case: on plain tensors (the value, the shape,
changed inputs), then on tensors that require gradients (the gradients). A
function that returns a NumPy number or a Python float, or a tensor cut off
from its inputs (``.detach()``, ``.item()``, ``.numpy()``, ``torch.tensor(v)``),
fails saying the loss must stay in torch so that training can
backpropagate through it. When a wrong value matches a known slip the
message names it: 8.1 the sum for the mean, no factor 0.5, ``d^2`` in the
hinge, the hinge not squared or not clamped, ``y`` inverted, ``d`` for
``d^2`` on matching pairs, no square root; 8.2 unsquared distances, no
hinge, the hinge after the mean, the distances swapped, the sum over the
``K`` negatives, only ``negative[:, 0]``, the sum for the mean. 8.3 names a
negative of the query's own label, several negatives of one label, the
least similar (or most distant) first, the right negatives in reverse
order, similarities or labels instead of indices, indices into the
filtered pool, ``(n, Q)`` for ``(Q, n)``; other wrong rows are reported by
what is wrong with them (an index out of range, the query's label, a label
twice, not sorted) before the first index that differs.

Each check's first case is small enough to read in its message;
:func:`lecture_mining` is the notebook's example for 8.3. The seeded cases
have ``B``, ``D``, ``K`` (and ``Q``, ``P``, ``D``, ``n``) all different, so
a reduction over the wrong axis shows in the shape.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .check import (
    CheckFailed, Checker, Exercise, call_student, call_text, compare, describe, diagnose, input_changed,
)

__all__ = ["check_contrastive_loss", "check_triplet_loss", "check_hard_negatives", "lecture_mining",
           "contrastive_cases", "triplet_cases", "mining_cases", "LECTURE_POOL_ANGLES", "LECTURE_POOL_LABELS",
           "LECTURE_QUERY_ANGLES", "LECTURE_QUERY_LABELS"]

_SEED = 2028
_TOL = dict(rtol=1e-4, atol=1e-6)
_GRAD_TOL = dict(rtol=1e-3, atol=1e-6)
_INDEX_TOL = dict(rtol=0.0, atol=1e-4)   # indices are whole numbers; a slip of similarities is float32
_TORCH = ("the loss must stay a torch tensor, computed with torch operations from the inputs, so that training "
          "can backpropagate through it (the notebook trains a network with your loss): no .numpy(), .item(), "
          ".detach(), np.* or torch.tensor(...) on the way")


def _exercise(ex_id: str) -> Exercise:
    from . import exercise  # late: the list in __init__ refers to the checks below
    return exercise(ex_id)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _at_distance(rng: np.random.Generator, x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Unit vectors at Euclidean distance ``d (...)`` from the unit vectors ``x (..., D)``, in random directions.

    The angle ``t`` between two unit vectors at distance ``d`` has ``d = 2 sin(t / 2)``.
    """
    u = rng.normal(size=x.shape)
    u = _unit(u - (u * x).sum(axis=-1, keepdims=True) * x)            # orthogonal to x
    t = 2.0 * np.arcsin(np.asarray(d) / 2.0)[..., None]
    return _unit(np.cos(t) * x + np.sin(t) * u)


def _numpy(value: Any) -> Any:
    """A torch tensor as a NumPy array (detached, on the CPU); anything else as it is."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of the course
        return value
    if isinstance(value, torch.Tensor):
        if value.dtype in (torch.bfloat16, torch.float16):
            value = value.float()
        return value.detach().cpu().numpy()
    return value


# --------------------------------------------------------------------------- calling a loss

def _call_loss(c: Checker, fn: Callable, arrays: dict[str, np.ndarray], extra: dict[str, Any],
               grad: tuple[str, ...] = ()) -> tuple[Any, str, dict, BaseException | None]:
    """Call ``fn`` on torch tensors made from ``arrays`` (then ``extra``), as :func:`call_student` does.

    Messages describe the tensors as arrays. Without ``grad`` the tensors share memory with the copies
    the check keeps, so an in-place change is caught. With ``grad``, the tensors named there are leaves
    that require gradients, and an exception of the student's is handed back (with the tensors) rather
    than raised. Returns ``(result, call, tensors, error)``; ``c.where(call)`` starts a message about it.
    """
    import torch

    name = getattr(fn, "__name__", c.exercise.function)
    names = list(arrays)
    tensors: dict[str, Any] = {}
    box: dict[str, BaseException] = {}

    def on_tensors(*values):
        for k, v in zip(names, values):
            tensors[k] = torch.from_numpy(v).requires_grad_(k in grad)
        rest = values[len(names):]
        if not grad:
            return fn(*tensors.values(), *rest)
        try:
            return fn(*tensors.values(), *rest)
        except NotImplementedError:
            raise
        except Exception as e:  # noqa: BLE001 - reported by the caller, with what it means for training
            box["error"] = e
            return None

    on_tensors.__name__ = name
    args = {**arrays, **extra}
    try:
        got = call_student(c.exercise, on_tensors, args, timeout=c.timeout, allow_mutation=bool(grad))
    except CheckFailed as e:
        if e.kind == "mutated":    # the advice of call_student is NumPy's; give it for a tensor
            k = e.argument
            raise input_changed(e.label, e.call, k, f"leave the inputs as they are: no in-place operations "
                                f"such as {k}.sub_(...), {k}[...] = ... or {k} /= ...; work on {k}.clone()"
                                ) from None
        if _broadcast_negatives(e) and "negative" in arrays:
            raise e.amended(" — negative is (B, K, D): compare each anchor with its K negatives through "
                            "anchor[:, None, :], shape (B, 1, D)") from None
        raise
    return got, call_text(name, args), tensors, box.get("error")


def _broadcast_negatives(e: CheckFailed) -> bool:
    """Whether the student's function raised torch's error for tensors whose sizes do not broadcast
    (what comparing the anchors (B, D) with the negatives (B, K, D) directly gives)."""
    return e.kind == "raised" and e.exception_type == "RuntimeError" \
        and "must match the size of tensor" in (e.exception_message or "")


def _loss_value(got: Any, where: str, expected: float, shape_hint: str) -> float:
    """The student's loss as a float, failing for None, a wrong shape, or a result that is not a torch tensor."""
    import torch

    if got is None:
        raise CheckFailed(f"{where} returned None — did you forget `return`?")
    if isinstance(got, torch.Tensor):
        if got.ndim != 0:
            raise CheckFailed(f"{where}: expected a scalar tensor (shape ()), {shape_hint}; got a tensor of shape "
                              f"{tuple(got.shape)}")
        if not got.is_floating_point():
            raise CheckFailed(f"{where}: expected a float tensor, got {got.dtype}")
        return float(got.detach().double())
    value = _numpy(got)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (float, np.floating, int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        v = float(value)
        verdict = "its value is right" if np.isclose(v, expected, **_TOL) else \
            f"and its value is wrong too: expected {expected:.4g}, got {v:.4g}"
        raise CheckFailed(f"{where} returned a {type(value).__name__}, not a torch tensor: {_TORCH} ({verdict}).")
    if isinstance(value, np.ndarray):
        raise CheckFailed(f"{where}: expected a scalar torch tensor, {shape_hint}; got a NumPy array of shape "
                          f"{value.shape}: {_TORCH}.")
    raise CheckFailed(f"{where}: expected a scalar torch tensor, got {describe(value)} ({type(value).__name__})")


def _tangent(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The part of the gradients ``g (..., D)`` tangent to the unit sphere at the unit vectors ``x (..., D)``.

    A loss of L2-normalised vectors is trained through the normalisation, whose Jacobian removes the radial
    part of the gradient; formulas equal on unit vectors (``2 - 2 x1.x2`` and ``||x1 - x2||^2``) differ only
    there, so only the tangent part is compared.
    """
    return g - (g * x).sum(axis=-1, keepdims=True) * x


def _loss_case(c: Checker, fn: Callable, reference: Callable, arrays: dict[str, np.ndarray],
               extra: dict[str, Any], slips: Callable[[], dict[str, float]], shape_hint: str) -> None:
    """One case of a loss check: the value (with its slips), then the gradients through ``.backward()``."""
    import torch

    # the reference in float64: its value, and its gradient with respect to every tensor input
    leaves = {k: torch.from_numpy(a.astype(np.float64)).requires_grad_(a.dtype.kind == "f" and k != "y")
              for k, a in arrays.items()}
    ref = reference(*leaves.values(), *extra.values())
    ref.backward()
    expected = float(ref.detach())
    ref_grads = {k: t.grad.numpy() for k, t in leaves.items() if t.requires_grad}

    got, call, _, _ = _call_loss(c, fn, arrays, extra)
    where = c.where(call)
    value = _loss_value(got, where, expected, shape_hint)
    if np.isnan(value):
        raise CheckFailed(f"{where}: expected {expected:.4g}, got nan")
    diagnose(where, np.asarray(value), np.asarray(expected), slips(), _TOL)
    compare(c.exercise, value, expected, call=call, **_TOL)

    # the same inputs, now requiring gradients, as in training
    got, _, tensors, error = _call_loss(c, fn, arrays, extra, grad=tuple(ref_grads))
    if error is not None:
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        what = f"{type(error).__name__}: {message[:150]}" if message else type(error).__name__
        raise CheckFailed(f"{where}: works on plain tensors but raised {what} on tensors that require gradients "
                          f"(requires_grad=True, as in training): {_TORCH}.")
    if not isinstance(got, torch.Tensor) or got.ndim != 0:
        raise CheckFailed(f"{where}: on tensors that require gradients it returned {describe(_numpy(got))} "
                          f"({type(got).__name__}), not a scalar tensor: {_TORCH}.")
    if not got.requires_grad:
        raise CheckFailed(f"{where}: the loss it returns does not require gradients although its inputs do: it is "
                          f"cut off from them, so training cannot backpropagate through it: {_TORCH}.")
    try:
        got.backward()
    except Exception as e:  # noqa: BLE001 - one line
        raise CheckFailed(f"{where}: calling .backward() on the loss raised {type(e).__name__}: "
                          f"{str(e).strip().splitlines()[0][:150] if str(e).strip() else ''}") from None
    for k, g_ref in ref_grads.items():
        g = tensors[k].grad
        if g is None or (not bool(torch.any(g != 0)) and bool(np.any(g_ref != 0))):
            raise CheckFailed(f"{where}: the loss does not depend on `{k}` through torch operations (its gradient "
                              f"with respect to {k} is {'None' if g is None else 'zero'}): {_TORCH}.")
        x = arrays[k].astype(np.float64)
        g, g_ref = _tangent(g.detach().double().numpy(), x), _tangent(g_ref, x)
        ok = np.isclose(g, g_ref, **_GRAD_TOL)
        if not ok.all():
            i = tuple(int(j) for j in np.argwhere(~ok)[0])
            raise CheckFailed(f"{where}: the loss's value is right but its gradient with respect to {k} is not (at "
                              f"index {i} expected {g_ref[i]:.4g}, got {g[i]:.4g}): is part of it detached, or "
                              f"computed outside torch? {_TORCH}.")
    c.count()


# --------------------------------------------------------------------------- 8.1 the contrastive loss

def contrastive_cases() -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """The cases of :func:`check_contrastive_loss`: ``(x1 (B, D), x2 (B, D), y (B,), margin)``, float32.

    Matching pairs at distances 0.2 to 1.2; non-matching pairs alternately inside the margin (0.1 to
    ``margin - 0.05``: they cost) and beyond it (``margin + 0.05`` to 1.8: they cost nothing).
    """
    rng = np.random.default_rng(_SEED)
    cases = []
    for B, D, margin in ((4, 3, 0.7), (8, 5, 0.85), (12, 32, 0.7), (6, 16, 1.0), (9, 7, 0.5)):
        n_pos = B // 2
        y = np.zeros(B)
        y[:n_pos] = 1
        d = np.empty(B)
        d[:n_pos] = rng.uniform(0.2, 1.2, n_pos)
        inside = np.arange(B - n_pos) % 2 == 0
        d[n_pos:] = np.where(inside, rng.uniform(0.1, margin - 0.05, B - n_pos),
                             rng.uniform(margin + 0.05, 1.8, B - n_pos))
        order = rng.permutation(B)
        y, d = y[order], d[order]
        x1 = _unit(rng.normal(size=(B, D)))
        x2 = _at_distance(rng, x1, d)
        cases.append((x1.astype(np.float32), x2.astype(np.float32), y.astype(np.float32), margin))
    return cases


def _contrastive_slips(x1: np.ndarray, x2: np.ndarray, y: np.ndarray, margin: float) -> dict[str, float]:
    x1, x2, y = (a.astype(np.float64) for a in (x1, x2, y))
    d2 = ((x1 - x2) ** 2).sum(axis=1)
    d = np.sqrt(d2)

    def loss(pos, neg, reduce=np.mean):
        return float(reduce(y * pos + (1 - y) * neg))

    hinge = np.maximum(0.0, margin - d)
    slips = {
        "the loss is the mean over the B pairs (.mean()), not their sum: its scale must not grow with the batch.":
            loss(0.5 * d2, 0.5 * hinge ** 2, np.sum),
        "each cost has the factor 0.5: 0.5 d^2 for a matching pair, 0.5 max(0, margin - d)^2 for a non-matching "
        "one.": loss(d2, hinge ** 2),
        "the factor 0.5 is on both costs: 0.5 d^2 for a matching pair too.": loss(d2, 0.5 * hinge ** 2),
        "the factor 0.5 is on both costs: 0.5 max(0, margin - d)^2 for a non-matching pair too.":
            loss(0.5 * d2, hinge ** 2),
        "the hinge is on the distance itself, max(0, margin - d) with d = ||x1 - x2||, not on its square d^2.":
            loss(0.5 * d2, 0.5 * np.maximum(0.0, margin - d2) ** 2),
        "square the hinge: 0.5 max(0, margin - d)^2, not 0.5 max(0, margin - d).": loss(0.5 * d2, 0.5 * hinge),
        "a non-matching pair farther apart than the margin costs nothing: clamp at 0 before squaring, "
        "0.5 max(0, margin - d)^2 ((margin - d).clamp(min=0) or torch.relu).":
            loss(0.5 * d2, 0.5 * (margin - d) ** 2),
        "y = 1 marks a matching pair (cost 0.5 d^2, pulled together) and y = 0 a non-matching one (pushed beyond "
        "the margin): you swapped them.": float(np.mean((1 - y) * 0.5 * d2 + y * 0.5 * hinge ** 2)),
        "a matching pair costs 0.5 d^2, the squared distance, not 0.5 d.": loss(0.5 * d, 0.5 * hinge ** 2),
        "d is the Euclidean distance, the square root of the sum of squared differences: without the square "
        "root, 0.5 d^2 becomes a fourth power of the distance and the hinge compares the margin with a squared "
        "distance.":
            loss(0.5 * d2 ** 2, 0.5 * np.maximum(0.0, margin - d2) ** 2),
    }
    if margin != 0.7:
        slips[f"use the margin given (here {margin:g}), not a fixed 0.7."] = \
            loss(0.5 * d2, 0.5 * np.maximum(0.0, 0.7 - d) ** 2)
    return slips


def check_contrastive_loss(contrastive_loss: Callable, *, quiet: bool = False) -> None:
    """Exercise 8.1: the contrastive loss, the mean over ``B`` pairs, a scalar torch tensor with gradients."""
    from ..learning.losses import contrastive_loss as ref

    c = Checker(_exercise("8.1"), quiet=quiet)
    for x1, x2, y, margin in contrastive_cases():
        _loss_case(c, contrastive_loss, ref, dict(x1=x1, x2=x2, y=y), dict(margin=margin),
                   lambda: _contrastive_slips(x1, x2, y, margin),
                   "the mean of the costs of the B pairs")
    return c.passed()


# --------------------------------------------------------------------------- 8.2 the triplet loss

def triplet_cases() -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """The cases of :func:`check_triplet_loss`: ``(anchor (B, D), positive (B, D), negative (B, K, D), margin)``.

    Float32 unit vectors. Each triplet's ``||a - p||^2 - ||a - n||^2 + margin`` is drawn in ``[0.05, 0.6]``
    (it costs) or in ``[-0.6, -0.05]`` (it costs nothing), about half each: no triplet on the hinge's corner.
    """
    rng = np.random.default_rng(_SEED + 1)
    cases = []
    for B, K, D, margin in ((3, 2, 5, 0.2), (6, 4, 8, 0.1), (10, 3, 16, 0.3), (5, 7, 12, 0.5)):
        a = _unit(rng.normal(size=(B, D)))
        dp = rng.uniform(0.3, 1.0, B)
        p = _at_distance(rng, a, dp)
        top = np.minimum(0.6, dp ** 2 + margin - 0.05)[:, None]            # keeps ||a - n||^2 >= 0.05
        active = rng.random((B, K)) < 0.5
        active[:, 0] = ~active[:, 1]                                        # each anchor: one of each, at least
        v = np.where(active, 0.05 + rng.random((B, K)) * (top - 0.05), -rng.uniform(0.05, 0.6, (B, K)))
        dn = np.sqrt(dp[:, None] ** 2 + margin - v)
        n = _at_distance(rng, np.broadcast_to(a[:, None, :], (B, K, D)), dn)
        cases.append((a.astype(np.float32), p.astype(np.float32), n.astype(np.float32), margin))
    return cases


def _triplet_slips(a: np.ndarray, p: np.ndarray, n: np.ndarray, margin: float) -> dict[str, float]:
    a, p, n = (x.astype(np.float64) for x in (a, p, n))
    dp2 = ((a - p) ** 2).sum(axis=1)[:, None]                          # (B, 1)
    dn2 = ((a[:, None, :] - n) ** 2).sum(axis=2)                       # (B, K)
    v = dp2 - dn2 + margin
    hinge = np.maximum(0.0, v)
    B = len(a)
    return {
        "the distances are squared: max(0, ||a - p||^2 - ||a - n||^2 + margin) (Schroff et al.), not the distances "
        "themselves.": float(np.maximum(0.0, np.sqrt(dp2) - np.sqrt(dn2) + margin).mean()),
        "each triplet costs max(0, ||a - p||^2 - ||a - n||^2 + margin): a triplet whose negative is already "
        "farther than the positive by the margin costs nothing (clamp at 0 before the mean).": float(v.mean()),
        "clamp each triplet's cost at 0, then take the mean: max(0, .) inside the mean, not around it.":
            float(max(0.0, v.mean())),
        "the cost is ||a - p||^2 - ||a - n||^2 + margin, the positive's distance minus the negative's: you swapped "
        "them.": float(np.maximum(0.0, dn2 - dp2 + margin).mean()),
        "the loss is the mean over all B x K triplets (.mean() over both axes), not the sum over the K negatives "
        "of each anchor averaged over the B anchors.": float(hinge.sum() / B),
        "negative is (B, K, D): K negatives per anchor; use all of them, not only negative[:, 0].":
            float(hinge[:, 0].mean()),
        "the loss is the mean over the B x K triplets, not their sum: its scale must not grow with the batch.":
            float(hinge.sum()),
    }


def check_triplet_loss(triplet_loss: Callable, *, quiet: bool = False) -> None:
    """Exercise 8.2: the triplet loss, the mean over ``B K`` triplets, a scalar torch tensor with gradients."""
    from ..learning.losses import triplet_loss as ref

    c = Checker(_exercise("8.2"), quiet=quiet)
    for a, p, n, margin in triplet_cases():
        _loss_case(c, triplet_loss, ref, dict(anchor=a, positive=p, negative=n), dict(margin=margin),
                   lambda: _triplet_slips(a, p, n, margin),
                   "the mean of the costs of the B x K triplets")
    return c.passed()


# --------------------------------------------------------------------------- 8.3 hard negatives

#: The notebook's example: pool items on the unit circle, at these angles (degrees), with these labels.
LECTURE_POOL_ANGLES = (35, 190, 330, 240, 60, 10, 160, 215)
LECTURE_POOL_LABELS = (2, 1, 0, 3, 2, 0, 1, 3)
LECTURE_QUERY_ANGLES = (0, 172)
LECTURE_QUERY_LABELS = (0, 1)


def lecture_mining() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The notebook's small example for 8.3: ``(q (2, 2), pool (8, 2), q_labels (2,), pool_labels (8,), n=2)``.

    Points on the unit circle (float32; int64 labels), so the similarity is the cosine of the angle between
    them and a figure shows everything. Four labels, two pool items each; query 0 (at 0 degrees, label 0)
    and query 1 (at 172 degrees, label 1) each see its own label and three others. The answer is
    ``[[0, 3], [7, 4]]``: for query 0, item 0 (35 degrees, label 2) and item 3 (240 degrees, label 3);
    its own label's items (10 and 330 degrees) are nearer but excluded, and item 4 (60 degrees) is
    nearer than item 3 but has label 2 again. For query 1, item 7 (215 degrees, label 3), then item 4
    (60 degrees, label 2): item 3 (240 degrees) is more similar than item 4 but has label 3 again.
    """
    def circle(degrees):
        t = np.radians(np.asarray(degrees, np.float64))
        return np.stack([np.cos(t), np.sin(t)], axis=1).astype(np.float32)

    return (circle(LECTURE_QUERY_ANGLES), circle(LECTURE_POOL_ANGLES), np.array(LECTURE_QUERY_LABELS, np.int64),
            np.array(LECTURE_POOL_LABELS, np.int64), 2)


def _no_ties(q: np.ndarray, pool: np.ndarray, gap: float = 1e-4) -> bool:
    s = np.sort(q.astype(np.float64) @ pool.astype(np.float64).T, axis=1)
    return bool(np.all(np.diff(s, axis=1) > gap))


def mining_cases() -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]]:
    """The cases of :func:`check_hard_negatives`: the lecture's, then seeded ones ``(q, pool, q_labels,
    pool_labels, n)``.

    Objects are clusters: each label has a random centre, and its images (pool items and queries) are noisy
    views of it, so a query's own label and one look-alike label crowd the top of its ranking. Label values
    are arbitrary integers (not 0 .. L - 1) and the pool is in random order. A draw with two similarities of a
    row closer than ``1e-4`` is drawn again.
    """
    rng = np.random.default_rng(_SEED + 2)
    cases = [lecture_mining()]
    for Q, P, D, L, n in ((5, 40, 16, 10, 3), (7, 60, 8, 12, 5), (12, 30, 6, 9, 4), (4, 50, 20, 6, 5)):
        while True:
            values = np.sort(rng.choice(np.arange(1, 100), L, replace=False)).astype(np.int64)
            centres = _unit(rng.normal(size=(L, D)))
            which = rng.permutation(np.concatenate([np.tile(np.arange(L), P // L),
                                                    rng.integers(0, L, P - L * (P // L))]))
            spread = 0.7 / np.sqrt(D)
            pool = _unit(centres[which] + spread * rng.normal(size=(P, D))).astype(np.float32)
            q_which = rng.integers(0, L, Q)
            q = _unit(centres[q_which] + spread * rng.normal(size=(Q, D))).astype(np.float32)
            if _no_ties(q, pool):
                break
        cases.append((q, pool, values[q_which], values[which], n))
    return cases


def _mining_slips(q: np.ndarray, pool: np.ndarray, ql: np.ndarray, pl: np.ndarray, n: int,
                  expected: np.ndarray) -> dict[str, np.ndarray]:
    from ..learning.mining import hard_negatives as ref

    sims = q.astype(np.float64) @ pool.astype(np.float64).T                       # (Q, P)
    other = np.full_like(ql, pl.max() + 1)                                        # a label no pool item has
    mask = pl[None, :] != ql[:, None]                                             # (Q, P) candidates
    filtered = np.take_along_axis(np.cumsum(mask, axis=1) - 1, expected, axis=1)  # positions in pool[mask[i]]
    # one per label, each label's most similar item, the n least similar of those
    best_of_label = []
    for i in range(len(q)):
        reps = [int(np.flatnonzero((pl == lab))[np.argmax(sims[i, pl == lab])]) for lab in np.unique(pl[mask[i]])]
        reps.sort(key=lambda j: sims[i, j])
        best_of_label.append(reps[:n])
    slips = {
        "a negative has the query's own label: leave out the pool items whose label is q_labels[i] (they "
        "match the query), then take the most similar.": ref(q, pool, other, pl, n),
        "two negatives have the same label: take at most one per label, its most similar item (a look-alike "
        "object photographed many times must not fill every slot).": ref(q, pool, ql, pl, n, one_per_label=False),
        "these are the n most similar pool items: leave out the query's own label, and take at most one item "
        "per label.": ref(q, pool, other, pl, n, one_per_label=False),
        "these are the least similar (most distant) candidates: hard negatives are the most similar, the "
        "largest dot products (smallest Euclidean distances), most similar first (np.argsort(-sims)).":
            ref(-q, pool, ql, pl, n),
        "these are the least similar labels: take each label's most similar item, then the n most similar of "
        "those, most similar first (np.argsort(-sims), not np.argsort(sims)).": np.array(best_of_label),
        "the right negatives in reverse order: most similar first (np.argsort(-sims), or reverse np.argsort's "
        "ascending order).": expected[:, ::-1],
        "these are the similarities of the right negatives: return their indices into pool (np.argsort gives "
        "indices).": np.take_along_axis(sims, expected, axis=1),
        "these are the labels of the right negatives: return their indices into pool.": pl[expected],
        "these are indices into the filtered pool (the items of other labels): return indices into pool itself, "
        "e.g. np.flatnonzero(mask)[j].": filtered,
    }
    if len(q) == n:
        slips["row i is query i: return (Q, n), one row per query, not its transpose (n, Q)."] = expected.T
    return slips


def _rows_report(got: np.ndarray, where: str, sims: np.ndarray, ql: np.ndarray, pl: np.ndarray) -> None:
    """Fail saying what is wrong with a row of integer indices ``got (Q, n)`` (range, labels, order), if anything."""
    P = len(pl)
    bad = (got < 0) | (got >= P)
    if bad.any():
        i, k = (int(v) for v in np.argwhere(bad)[0])
        raise CheckFailed(f"{where}: row {i} holds index {int(got[i, k])}, outside the pool's 0 .. {P - 1}")
    labels = pl[got]
    own = labels == ql[:, None]
    if own.any():
        i, k = (int(v) for v in np.argwhere(own)[0])
        raise CheckFailed(f"{where}: row {i}: pool item {int(got[i, k])} has the query's own label {int(ql[i])}; "
                          f"a negative has a label other than the query's")
    s = np.sort(labels, axis=1)
    twice = (s[:, 1:] == s[:, :-1])
    if twice.any():
        i, k = (int(v) for v in np.argwhere(twice)[0])
        raise CheckFailed(f"{where}: row {i} has two negatives of label {int(s[i, k])} (pool items "
                          f"{got[i][labels[i] == s[i, k]].tolist()}"
                          f"): at most one per label, its most similar item")
    g_sims = np.take_along_axis(sims, got, axis=1)
    rising = np.diff(g_sims, axis=1) > 0
    if rising.any():
        i = int(np.argwhere(rising)[0][0])
        raise CheckFailed(f"{where}: row {i} is not sorted most similar first: the similarities of its items are "
                          f"{describe(g_sims[i])}")


def check_hard_negatives(hard_negatives: Callable, *, quiet: bool = False) -> None:
    """Exercise 8.3: hard negatives, ``(Q, n)`` indices into ``pool``, one per label, most similar first."""
    from ..learning.mining import hard_negatives as ref

    ex = _exercise("8.3")
    c = Checker(ex, quiet=quiet)
    name = getattr(hard_negatives, "__name__", ex.function)

    def case(q, pool, q_labels, pool_labels, n):
        expected = ref(q, pool, q_labels, pool_labels, n)
        args = dict(q=q, pool=pool, q_labels=q_labels, pool_labels=pool_labels, n=n)
        where = f"{ex.label}: {call_text(name, args)}"
        got = _numpy(c.call(hard_negatives, **args))
        if got is None:
            raise CheckFailed(f"{where} returned None — did you forget `return`?")
        Q = len(q)
        if isinstance(got, np.ndarray) and got.shape == expected.shape and got.dtype.kind in "fiub":
            diagnose(where, got, expected.astype(np.float64),
                     _mining_slips(q, pool, q_labels, pool_labels, n, expected), _INDEX_TOL)
        if isinstance(got, np.ndarray):
            if got.shape == (n, Q) and Q != n:
                raise CheckFailed(f"{where}: expected shape (Q, n) = {(Q, n)}, one row per query; got its transpose, "
                                  f"shape {got.shape}")
            if got.shape == (Q, len(pool)):
                raise CheckFailed(f"{where}: expected shape (Q, n) = {(Q, n)}, the n hardest negatives of each "
                                  f"query; got shape {got.shape}, the whole pool: keep the first n")
            if got.shape == expected.shape and got.dtype.kind in "iu":
                sims = q.astype(np.float64) @ pool.astype(np.float64).T
                _rows_report(got.astype(np.int64), where, sims, q_labels, pool_labels)
        compare(ex, got, expected, call=call_text(name, args))
        c.count()

    for args in mining_cases():
        case(*args)
    return c.passed()
