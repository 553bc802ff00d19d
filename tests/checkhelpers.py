"""What every test of an exercise check needs."""

import pytest

from coursekit.exercises import CheckFailed, NotDone


def fails(check, fn, *, not_done=False) -> str:
    """The one-line message of a check that must fail on ``fn`` (as "not done" when ``not_done``)."""
    with pytest.raises(CheckFailed) as info:
        check(fn, quiet=True)
    assert isinstance(info.value, NotDone) == not_done, str(info.value)
    message = str(info.value)
    assert "\n" not in message
    return message


def stub(*args):
    """A student's untouched exercise."""
    raise NotImplementedError("Exercise X.Y: not done")
