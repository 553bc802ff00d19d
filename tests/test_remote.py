"""A student's function called in a runner process (coursekit.course.remote), as the grader calls it:
callables stay in the grader, changed inputs come back, gradients come back through backward()."""

import os

import cloudpickle
import numpy as np
import pytest

from coursekit.course.remote import FunctionRunner, RemoteFunction


def _remote(fn, name="f", references=()):
    return FunctionRunner(cloudpickle.dumps(fn), name, list(references), env=dict(os.environ), cwd="/tmp")


def test_a_callable_argument_stays_in_the_grader_and_is_called_back():
    calls = []

    def matvec(p):
        calls.append(1)
        return 2 * np.asarray(p)

    def twice_twice(matvec, b):
        return matvec(matvec(b))

    with _remote(twice_twice) as runner:
        got = RemoteFunction(runner, 10)(matvec, np.array([1.0, 2.0]))
    assert got.tolist() == [4.0, 8.0] and len(calls) == 2


def test_an_input_the_function_changes_is_changed_in_the_grader_too():
    def scale_in_place(x):
        x *= 3
        return x.sum()

    x = np.ones(3)
    with _remote(scale_in_place) as runner:
        assert RemoteFunction(runner, 10)(x) == 9.0
    assert x.tolist() == [3.0, 3.0, 3.0]


def test_a_loss_computed_in_the_runner_backpropagates_in_the_grader():
    torch = pytest.importorskip("torch")

    def loss(a, b):
        return ((a - b) ** 2).sum()

    a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.0, 0.0], dtype=torch.float64)
    with _remote(loss) as runner:
        got = RemoteFunction(runner, 10)(a, b)
    assert got.requires_grad and float(got) == 5.0
    got.backward()
    assert a.grad.tolist() == [2.0, 4.0]


def test_the_reference_cannot_be_called_from_the_runner():
    from coursekit.course.remote import ReferenceUsed

    def cheat(labels, k):
        from coursekit.evaluation import precision_at_k
        return precision_at_k(labels, k)

    with _remote(cheat, references=["coursekit.evaluation.precision_at_k"]) as runner:
        with pytest.raises(ReferenceUsed):
            RemoteFunction(runner, 10)(np.array([True, False]), 1)
