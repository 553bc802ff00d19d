"""The checks of notebook 08: each passes the reference and independent correct
answers (other torch routes to the same loss, loops), reports the stub as not
done, fails plausible wrong answers with a one-line message that names the
slip where it can, and fails a loss that is not differentiable in torch."""

import re
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coursekit.exercises import EXERCISES, CheckFailed, exercise, exercises_for
from coursekit.exercises import ex08
from coursekit.learning import losses, mining
from checkhelpers import fails, stub

CHECKS = [ex08.check_contrastive_loss, ex08.check_triplet_loss, ex08.check_hard_negatives]


def reference_mining(q, pool, q_labels, pool_labels, n):
    return mining.hard_negatives(q, pool, q_labels, pool_labels, n)


REFERENCES = [losses.contrastive_loss, losses.triplet_loss, reference_mining]


def test_registry():
    assert [e.id for e in EXERCISES["08"]] == ["8.1", "8.2", "8.3"]
    assert [e.function for e in EXERCISES["08"]] == ["contrastive_loss", "triplet_loss", "hard_negatives"]
    assert [e.points for e in EXERCISES["08"]] == [2, 2, 3]
    assert [e.check for e in exercises_for(path="08_learning_to_rank.ipynb")] == CHECKS
    assert exercise("8.3").check is ex08.check_hard_negatives


@pytest.mark.parametrize("i", range(3), ids=["contrastive", "triplet", "mining"])
def test_check_passes_the_reference_and_says_so(i, capsys):
    assert CHECKS[i](REFERENCES[i]) is None
    out = capsys.readouterr().out.strip()
    assert re.fullmatch(r"✔ Exercise 8\.\d \(.+\): passed \d+ cases\.", out), out


@pytest.mark.parametrize("i", range(3), ids=["contrastive", "triplet", "mining"])
def test_stub_is_not_done_and_errors_fail(i):
    assert "not done yet" in fails(CHECKS[i], stub, not_done=True)

    def broken(*args):
        return [1, 2][5]
    assert "raised IndexError" in fails(CHECKS[i], broken)
    assert "returned None" in fails(CHECKS[i], lambda *args: None)


@pytest.mark.parametrize("i", range(3), ids=["contrastive", "triplet", "mining"])
def test_checks_are_fast(i):
    best = min(_timed(CHECKS[i], REFERENCES[i]) for _ in range(3))
    assert best < 0.5, best


def _timed(check, fn):
    t = time.perf_counter()
    check(fn, quiet=True)
    return time.perf_counter() - t


# --------------------------------------------------------------------------- the cases

def test_loss_cases_are_unit_vectors_with_every_kind_of_pair():
    for x1, x2, y, margin in ex08.contrastive_cases():
        B, D = x1.shape
        assert B != D and x1.dtype == x2.dtype == y.dtype == np.float32 and y.shape == (B,)
        assert np.allclose(np.linalg.norm(x1, axis=1), 1, atol=1e-6)
        assert np.allclose(np.linalg.norm(x2, axis=1), 1, atol=1e-6)
        d = np.linalg.norm(x1.astype(np.float64) - x2, axis=1)
        assert d.min() > 0.05 and np.abs(d - margin).min() > 0.03               # off the hinge's corners
        assert (y == 1).any() and ((y == 0) & (d < margin)).any() and ((y == 0) & (d > margin)).any()
    for a, p, n, margin in ex08.triplet_cases():
        (B, D), K = a.shape, n.shape[1]
        assert len({B, K, D}) == 3 and n.shape == (B, K, D) and K > 1
        assert np.allclose(np.linalg.norm(n, axis=2), 1, atol=1e-6)
        v = ((a - p) ** 2).sum(1)[:, None] - ((a[:, None] - n) ** 2).sum(2) + margin
        assert np.abs(v).min() > 0.04 and (v > 0).any(axis=1).all() and (v < 0).any(axis=1).all()


def test_mining_cases_have_no_ties_and_enough_labels():
    for q, pool, ql, pl, n in ex08.mining_cases()[1:]:
        (Q, D), P = q.shape, len(pool)
        assert len({Q, P, D, n}) == 4 and q.dtype == pool.dtype == np.float32 and pl.dtype == np.int64
        s = np.sort(q.astype(np.float64) @ pool.T.astype(np.float64), axis=1)
        assert np.diff(s, axis=1).min() > 1e-4
        assert all(len(set(pl) - {lab}) >= n for lab in ql)
        assert not np.array_equal(np.unique(pl), np.arange(len(np.unique(pl))))  # labels are not 0 .. L - 1


def test_lecture_mining_is_what_the_docstring_says():
    q, pool, ql, pl, n = ex08.lecture_mining()
    assert q.shape == (2, 2) and pool.shape == (8, 2) and n == 2 and q.dtype == np.float32
    assert ql.tolist() == [0, 1] and sorted(pl.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert mining.hard_negatives(q, pool, ql, pl, n).tolist() == [[0, 3], [7, 4]]
    s = q @ pool.T
    assert s[0, 5] > s[0, 2] > s[0, 0] > s[0, 4] > s[0, 3]      # own label, then label 2 twice, then label 3
    assert s[1, 6] > s[1, 1] > s[1, 7] > s[1, 3] > s[1, 4]      # own label, then label 3 twice, then label 2
    assert np.diff(np.sort(s, axis=1), axis=1).min() > 1e-2


# --------------------------------------------------------------------------- 8.1 the contrastive loss

def contrastive_routes():
    def pairwise(x1, x2, y, margin):                                   # F.pairwise_distance adds eps = 1e-6
        d = F.pairwise_distance(x1, x2)
        return (y * 0.5 * d ** 2 + (1 - y) * 0.5 * F.relu(margin - d) ** 2).mean()

    def cosine(x1, x2, y, margin):                                     # d^2 = 2 - 2 cos on unit vectors
        d2 = 2 - 2 * (x1 * x2).sum(dim=1)
        d = d2.clamp(min=0).sqrt()
        return torch.where(y == 1, 0.5 * d2, 0.5 * torch.clamp(margin - d, min=0) ** 2).mean()

    def loop(x1, x2, y, margin):                                       # one pair at a time, float64
        costs = []
        for a, b, t in zip(x1.double(), x2.double(), y):
            d = torch.linalg.norm(a - b)
            costs.append(0.5 * d ** 2 if t == 1 else 0.5 * max(torch.zeros(()), margin - d) ** 2)
        return torch.stack(costs).sum() / len(costs)

    return [pairwise, cosine, loop]


@pytest.mark.parametrize("route", contrastive_routes(), ids=["pairwise_distance", "cosine", "loop"])
def test_contrastive_passes_other_routes(route):
    ex08.check_contrastive_loss(route, quiet=True)


def contrastive_with(x1, x2, y, margin, *, half=(0.5, 0.5), hinge_on_d2=False, hinge_power=2, clamp=True,
                     invert=False, pos="d2", sqrt=True, reduce="mean", fixed_margin=None):
    margin = fixed_margin or margin
    d2 = ((x1 - x2) ** 2).sum(dim=1)
    d = d2.sqrt() if sqrt else d2
    if invert:
        y = 1 - y
    g = margin - (d ** 2 if hinge_on_d2 and sqrt else d)
    g = g.clamp(min=0) if clamp else g
    p = d ** 2 if pos == "d2" else d
    cost = y * half[0] * p + (1 - y) * half[1] * g ** hinge_power
    return cost.mean() if reduce == "mean" else cost.sum()


@pytest.mark.parametrize("kw, hint", [
    (dict(reduce="sum"), "not their sum"),
    (dict(half=(1, 1)), "each cost has the factor 0.5"),
    (dict(half=(1, 0.5)), "0.5 d^2 for a matching pair too"),
    (dict(half=(0.5, 1)), "for a non-matching pair too"),
    (dict(hinge_on_d2=True), "not on its square d^2"),
    (dict(hinge_power=1), "square the hinge"),
    (dict(clamp=False), "clamp at 0 before squaring"),
    (dict(invert=True), "you swapped them"),
    (dict(pos="d"), "not 0.5 d."),
    (dict(sqrt=False), "without the square root"),
    (dict(fixed_margin=0.7), "use the margin given"),
], ids=["sum", "no-half", "no-half-pos", "no-half-neg", "d2-in-hinge", "hinge-not-squared", "no-clamp", "y-inverted",
        "d-for-positives", "no-sqrt", "fixed-margin"])
def test_contrastive_slips_are_named(kw, hint):
    def wrong(x1, x2, y, margin):
        return contrastive_with(x1, x2, y, margin, **kw)
    m = fails(ex08.check_contrastive_loss, wrong)
    assert hint in m and m.startswith("Exercise 8.1 (the contrastive loss): wrong(x1=array of shape ("), m


def numpy_contrastive(x1, x2, y, margin):
    x1, x2, y = x1.numpy(), x2.numpy(), y.numpy()
    d = np.linalg.norm(x1 - x2, axis=1)
    return np.mean(y * 0.5 * d ** 2 + (1 - y) * 0.5 * np.maximum(0, margin - d) ** 2)


def test_contrastive_in_numpy_fails_saying_the_loss_must_stay_in_torch():
    m = fails(ex08.check_contrastive_loss, numpy_contrastive)
    assert "returned a float32, not a torch tensor" in m and "backpropagate" in m and "its value is right" in m
    m = fails(ex08.check_contrastive_loss, lambda *a: float(numpy_contrastive(*a)) * 2)
    assert "returned a float, not a torch tensor" in m and "its value is wrong too" in m
    m = fails(ex08.check_contrastive_loss, lambda *a: losses.contrastive_loss(*a).item())
    assert "not a torch tensor" in m and "no .numpy(), .item()" in m


def test_contrastive_cut_off_from_its_inputs_fails():
    # wrapped back into a tensor: no gradient at all
    m = fails(ex08.check_contrastive_loss,
              lambda x1, x2, y, m: torch.tensor(numpy_contrastive(x1.detach(), x2.detach(), y, m)))
    assert "does not require gradients although its inputs do" in m
    m = fails(ex08.check_contrastive_loss, lambda x1, x2, y, m: losses.contrastive_loss(x1, x2, y, m).detach())
    assert "cut off from them" in m
    # a leaf that requires gradients, but not through the inputs
    m = fails(ex08.check_contrastive_loss,
              lambda x1, x2, y, m: torch.tensor(float(numpy_contrastive(x1.detach(), x2.detach(), y, m)),
                                                requires_grad=True))
    assert "does not depend on `x1` through torch operations" in m and "is None" in m
    # x1 detached: the loss depends on x1 only as a constant
    m = fails(ex08.check_contrastive_loss, lambda x1, x2, y, m: losses.contrastive_loss(x1.detach(), x2, y, m))
    assert "does not depend on `x1`" in m


def test_contrastive_calling_numpy_on_its_inputs_fails_on_tensors_that_require_gradients():
    def via_numpy(x1, x2, y, margin):
        return torch.as_tensor(numpy_contrastive(x1, x2, y, margin))
    # .numpy() works on the plain tensors of the first call; on leaves that require grad it raises
    m = fails(ex08.check_contrastive_loss, via_numpy)
    assert "works on plain tensors but raised RuntimeError" in m and "must stay a torch tensor" in m


def test_contrastive_partly_detached_fails_on_its_gradient():
    def detached_hinge(x1, x2, y, margin):
        d = (x1 - x2).norm(dim=1)
        return (y * 0.5 * d ** 2 + (1 - y) * 0.5 * (margin - d.detach()).clamp(min=0) ** 2).mean()
    m = fails(ex08.check_contrastive_loss, detached_hinge)
    assert "value is right but its gradient with respect to x1 is not" in m


def test_contrastive_wrong_shapes_and_in_place_changes_fail():
    m = fails(ex08.check_contrastive_loss,
              lambda x1, x2, y, margin: 0.5 * y * ((x1 - x2) ** 2).sum(1) + (1 - y) * 0.5 * 0)
    assert "expected a scalar tensor (shape ()), the mean of the costs of the B pairs; got a tensor of shape (4,)" in m
    m = fails(ex08.check_contrastive_loss, lambda *a: losses.contrastive_loss(*a).reshape(1))
    assert "got a tensor of shape (1,)" in m

    def in_place(x1, x2, y, margin):
        x1 /= x1.norm(dim=1, keepdim=True)
        x1.sub_(x2)
        d = x1.norm(dim=1)
        return (y * 0.5 * d ** 2 + (1 - y) * 0.5 * (margin - d).clamp(min=0) ** 2).mean()
    m = fails(ex08.check_contrastive_loss, in_place)
    assert "changed its input `x1`" in m and "work on x1.clone()" in m


# --------------------------------------------------------------------------- 8.2 the triplet loss

def triplet_routes():
    def einsum(a, p, n, margin):                                       # squared distances from dot products
        dp = 2 - 2 * (a * p).sum(-1)
        dn = 2 - 2 * torch.einsum("bd,bkd->bk", a, n)
        return F.relu(dp[:, None] - dn + margin).mean()

    def loop_over_k(a, p, n, margin):
        costs = [torch.clamp(((a - p) ** 2).sum(1) - ((a - n[:, k]) ** 2).sum(1) + margin, min=0)
                 for k in range(n.shape[1])]
        return torch.stack(costs, dim=1).mean()

    def pairwise(a, p, n, margin):                                     # F.pairwise_distance, per negative
        B, K, D = n.shape
        dp = F.pairwise_distance(a, p) ** 2
        dn = F.pairwise_distance(a.repeat_interleave(K, 0), n.reshape(B * K, D)).reshape(B, K) ** 2
        return torch.clamp(dp[:, None] - dn + margin, min=0).sum() / (B * K)

    return [einsum, loop_over_k, pairwise]


@pytest.mark.parametrize("route", triplet_routes(), ids=["einsum", "loop", "pairwise_distance"])
def test_triplet_passes_other_routes(route):
    ex08.check_triplet_loss(route, quiet=True)


def triplet_with(a, p, n, margin, *, squared=True, hinge="each", swap=False, reduce="mean", first_only=False):
    if first_only:
        n = n[:, :1]
    dp = ((a - p) ** 2).sum(1)[:, None]
    dn = ((a[:, None] - n) ** 2).sum(2)
    if not squared:
        dp, dn = dp.sqrt(), dn.sqrt()
    v = (dn - dp if swap else dp - dn) + margin
    if hinge == "none":
        return v.mean()
    if hinge == "after":
        return v.mean().clamp(min=0)
    v = v.clamp(min=0)
    return {"mean": v.mean(), "sum": v.sum(), "sum-k": v.sum(1).mean()}[reduce]


@pytest.mark.parametrize("kw, hint", [
    (dict(squared=False), "not the distances themselves"),
    (dict(hinge="none"), "clamp at 0 before the mean"),
    (dict(hinge="after"), "inside the mean, not around it"),
    (dict(swap=True), "you swapped them"),
    (dict(reduce="sum-k"), "not the sum over the K negatives"),
    (dict(first_only=True), "not only negative[:, 0]"),
    (dict(reduce="sum"), "not their sum"),
], ids=["unsquared", "no-hinge", "hinge-after-mean", "swapped", "sum-over-k", "first-negative", "sum"])
def test_triplet_slips_are_named(kw, hint):
    def wrong(anchor, positive, negative, margin):
        return triplet_with(anchor, positive, negative, margin, **kw)
    m = fails(ex08.check_triplet_loss, wrong)
    assert hint in m and m.startswith("Exercise 8.2 (the triplet loss): wrong(anchor=array of shape (3, 5)"), m


def test_triplet_not_in_torch_fails():
    def numpy_triplet(a, p, n, margin):
        a, p, n = a.numpy(), p.numpy(), n.numpy()
        v = ((a - p) ** 2).sum(1)[:, None] - ((a[:, None] - n) ** 2).sum(2) + margin
        return np.maximum(v, 0).mean()
    m = fails(ex08.check_triplet_loss, numpy_triplet)
    assert "not a torch tensor" in m and "its value is right" in m
    m = fails(ex08.check_triplet_loss, lambda a, p, n, m: losses.triplet_loss(a, p, n.detach(), m))
    assert "does not depend on `negative`" in m


def test_triplet_shapes_broadcasting_and_in_place_changes_fail():
    m = fails(ex08.check_triplet_loss, lambda a, p, n, m: torch.clamp(
        ((a - p) ** 2).sum(1)[:, None] - ((a[:, None] - n) ** 2).sum(2) + m, min=0))
    assert "the mean of the costs of the B x K triplets; got a tensor of shape (3, 2)" in m
    m = fails(ex08.check_triplet_loss, lambda a, p, n, m: torch.clamp(
        ((a - p) ** 2).sum(1) - ((a - n) ** 2).sum(-1) + m, min=0).mean())
    assert "raised RuntimeError" in m and "anchor[:, None, :]" in m

    def in_place(a, p, n, margin):
        n -= a[:, None]
        return torch.clamp(((a - p) ** 2).sum(1)[:, None] - (n ** 2).sum(2) + margin, min=0).mean()
    m = fails(ex08.check_triplet_loss, in_place)
    assert "changed its input `negative`" in m and "negative.clone()" in m


def test_the_tensor_advice_keeps_the_fields_of_the_failure():
    def broadcasts(a, p, n, m):
        return torch.clamp(((a - p) ** 2).sum(1) - ((a - n) ** 2).sum(-1) + m, min=0).mean()

    def in_place(a, p, n, margin):
        n -= a[:, None]
        return torch.clamp(((a - p) ** 2).sum(1)[:, None] - (n ** 2).sum(2) + margin, min=0).mean()
    with pytest.raises(CheckFailed) as info:
        ex08.check_triplet_loss(broadcasts, quiet=True)
    e = info.value
    assert (e.kind, e.exception_type) == ("raised", "RuntimeError") and e.call.startswith("broadcasts(anchor=")
    assert str(e) == f"{e.where} raised RuntimeError: {e.exception_message} — negative is (B, K, D): compare " \
                     f"each anchor with its K negatives through anchor[:, None, :], shape (B, 1, D)"
    with pytest.raises(CheckFailed) as info:
        ex08.check_triplet_loss(in_place, quiet=True)
    e = info.value
    assert (e.kind, e.argument) == ("mutated", "negative")
    assert str(e).startswith(f"{e.where} changed its input `negative`; leave the inputs as they are: no in-place")


# --------------------------------------------------------------------------- 8.3 hard negatives

def student_mining(q, pool, ql, pl, n, *, own=False, one=True, ascending=False, metric="dot", ret="index",
                   filtered=False, best_then_ascending=False):
    """A student's loops: walk each query's ranking, keep the first item of each new label other than its own."""
    rows = []
    for i in range(len(q)):
        keep = np.flatnonzero(pl != ql[i]) if filtered else np.arange(len(pool))
        cand, labels = pool[keep], pl[keep]
        if metric == "dot":
            order = np.argsort(-(cand @ q[i]))
        else:                                                    # Euclidean distance taken as a similarity
            order = np.argsort(-np.linalg.norm(cand - q[i], axis=1))
        if ascending:
            order = order[::-1]
        if best_then_ascending:                                  # each label's best, then the least similar first
            reps = {}
            for j in order:
                if labels[j] != ql[i] and labels[j] not in reps:
                    reps[labels[j]] = j
            order = sorted(reps.values(), key=lambda j: cand[j] @ q[i])
        row, seen = [], set()
        for j in order:
            if (labels[j] == ql[i] and not own) or (one and labels[j] in seen):
                continue
            row.append(j)
            seen.add(labels[j])
            if len(row) == n:
                break
        rows.append(row if filtered else [int(keep[j]) for j in row])
    out = np.array(rows)
    if ret == "similarity":
        return np.take_along_axis(q @ pool.T, out, axis=1)
    if ret == "label":
        return pl[out]
    return out


def torch_mining(q, pool, ql, pl, n):
    """Another route: torch, a mask of each label's first place in the ranking, then topk."""
    s = torch.from_numpy(q) @ torch.from_numpy(pool).T
    s[torch.from_numpy(pl)[None, :] == torch.from_numpy(ql)[:, None]] = -float("inf")
    order = s.argsort(dim=1, descending=True)
    lab = torch.from_numpy(pl)[order]
    first = torch.ones_like(lab, dtype=torch.bool)
    for j in range(1, lab.shape[1]):
        first[:, j] = (lab[:, j:j + 1] != lab[:, :j]).all(dim=1)
    ok = first & torch.isfinite(torch.gather(s, 1, order))
    pos = torch.argsort((~ok).to(torch.int8), dim=1, stable=True)[:, :n]
    return torch.gather(order, 1, pos).to(torch.int32)


def test_mining_passes_loops_torch_and_euclidean_distance():
    ex08.check_hard_negatives(student_mining, quiet=True)
    ex08.check_hard_negatives(torch_mining, quiet=True)

    def by_distance(q, pool, ql, pl, n):                         # smallest distance first: the same ranking
        d = np.linalg.norm(q[:, None] - pool[None], axis=2)
        return student_mining(-d, np.eye(len(pool), dtype=np.float64), ql, pl, n)
    ex08.check_hard_negatives(by_distance, quiet=True)


@pytest.mark.parametrize("kw, hint", [
    (dict(own=True), "a negative has the query's own label"),
    (dict(one=False), "two negatives have the same label"),
    (dict(own=True, one=False), "these are the n most similar pool items"),
    (dict(ascending=True), "these are the least similar (most distant) candidates"),
    (dict(metric="euclidean"), "these are the least similar (most distant) candidates"),
    (dict(best_then_ascending=True), "these are the least similar labels"),
    (dict(ret="similarity"), "these are the similarities of the right negatives"),
    (dict(ret="label"), "these are the labels of the right negatives"),
    (dict(filtered=True), "indices into the filtered pool"),
], ids=["own-label", "several-per-label", "neither", "ascending", "euclidean", "best-then-ascending",
        "similarities", "labels", "filtered-indices"])
def test_mining_slips_are_named_on_the_lecture_case(kw, hint):
    def wrong(q, pool, q_labels, pool_labels, n):
        return student_mining(q, pool, q_labels, pool_labels, n, **kw)
    m = fails(ex08.check_hard_negatives, wrong)
    assert hint in m and m.startswith("Exercise 8.3 (hard negatives, one per label): wrong(q=array of shape (2, 2)"), m


def test_mining_reversed_and_transposed_answers_are_named():
    m = fails(ex08.check_hard_negatives, lambda *a: reference_mining(*a)[:, ::-1])
    assert "the right negatives in reverse order" in m
    m = fails(ex08.check_hard_negatives, lambda *a: reference_mining(*a).T)
    assert "not its transpose (n, Q)" in m                      # the lecture case: Q = n = 2

    def transposed_after_lecture(q, *rest):
        r = reference_mining(q, *rest)
        return r if len(q) == 2 else r.T
    m = fails(ex08.check_hard_negatives, transposed_after_lecture)
    assert "got its transpose, shape (3, 5)" in m


def test_mining_rows_that_break_a_rule_are_reported_by_what_is_wrong():
    def all_ranked(q, pool, ql, pl, n):
        return np.argsort(-(q @ pool.T), axis=1)
    assert "got shape (2, 8), the whole pool: keep the first n" in fails(ex08.check_hard_negatives, all_ranked)

    def shifted(*a):                                             # one index past the end of the pool
        r = reference_mining(*a)
        r[0, 0] = len(a[1])
        return r
    assert "row 0 holds index 8, outside the pool's 0 .. 7" in fails(ex08.check_hard_negatives, shifted)

    def own_label_last(q, pool, ql, pl, n):                      # right but for the last slot
        r = reference_mining(q, pool, ql, pl, n)
        r[:, -1] = [int(np.flatnonzero(pl == lab)[0]) for lab in ql]
        return r
    m = fails(ex08.check_hard_negatives, own_label_last)
    assert "row 0: pool item 2 has the query's own label 0" in m

    def label_twice(q, pool, ql, pl, n):
        r = reference_mining(q, pool, ql, pl, n)
        r[0, 1] = 4                                              # item 4 has label 2, as item 0 does
        return r
    m = fails(ex08.check_hard_negatives, label_twice)
    assert "row 0 has two negatives of label 2 (pool items [0, 4])" in m

    def unsorted_later(q, pool, ql, pl, n):                      # right on the lecture, one row swapped after
        r = reference_mining(q, pool, ql, pl, n)
        if len(q) > 2:
            r[1, [0, 1]] = r[1, [1, 0]]
        return r
    m = fails(ex08.check_hard_negatives, unsorted_later)
    assert "row 1 is not sorted most similar first" in m


def test_mining_wrong_types_and_in_place_changes_fail():
    m = fails(ex08.check_hard_negatives, lambda *a: reference_mining(*a).astype(np.float64))
    assert "expected a integer array (int64), got float64" in m
    m = fails(ex08.check_hard_negatives, lambda *a: reference_mining(*a).tolist())
    assert "wrap it in np.asarray" in m

    def normalises_in_place(q, pool, ql, pl, n):
        pool /= np.linalg.norm(pool, axis=1, keepdims=True) + 1e-3
        return reference_mining(q, pool, ql, pl, n)
    assert "changed its input `pool`" in fails(ex08.check_hard_negatives, normalises_in_place)

    def relabels(q, pool, ql, pl, n):
        pl[pl == ql[0]] = -1
        return reference_mining(q, pool, ql, pl, n)
    assert "changed its input `pool_labels`" in fails(ex08.check_hard_negatives, relabels)
