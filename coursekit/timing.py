"""Wall-clock timing of one call: how long it took, and the best of a few runs.

>>> seconds, result = timed(lambda: index.search(X_q, 10))
>>> seconds, result = best_of(lambda: index.search(X_q, 10), repeat=3)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["timed", "best_of"]

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """``fn()``'s wall-clock time in seconds (``time.perf_counter``) and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_of(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """The shortest of ``repeat`` runs of ``fn()`` in seconds (the least disturbed by other work) and the last
    run's result."""
    times = []
    for _ in range(repeat):
        seconds, result = timed(fn)
        times.append(seconds)
    return min(times), result
