"""coursekit.safe_pickle: a data pickle is read, a pickle that names code is refused and runs nothing."""

from __future__ import annotations

import os
import pickle
import subprocess

import numpy as np
import pytest

from coursekit.safe_pickle import UnsafePickleError, load_data_pickle, loads_data_pickle


def revisited_like() -> dict:
    """What the revisited gnd pickles hold: lists of strings, dicts of int arrays and float boxes."""
    return {"imlist": ["all_souls_000013", "ashmolean_000283"], "qimlist": ["all_souls_000013"],
            "gnd": [{"bbx": [136.5, 34.1, 648.5, 955.2], "easy": np.array([1, 0]), "hard": np.array([], np.int64),
                     "junk": np.arange(3, dtype=np.int32), "w": np.float64(0.5), "flags": {1, 2}}]}


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_the_revisited_ground_truth_is_read_at_every_protocol(protocol):
    cfg = loads_data_pickle(pickle.dumps(revisited_like(), protocol=protocol))
    assert cfg["imlist"] == ["all_souls_000013", "ashmolean_000283"]
    g = cfg["gnd"][0]
    assert g["easy"].tolist() == [1, 0] and g["junk"].dtype == np.int32 and g["hard"].size == 0
    assert g["bbx"][0] == 136.5 and g["w"] == 0.5 and g["flags"] == {1, 2}


class _Reduce:
    """An object whose unpickling calls ``func(*args)``: what a crafted file does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("make", [
    lambda marker: _Reduce(os.system, f"touch {marker}"),
    lambda marker: _Reduce(eval, f"open({str(marker)!r}, 'w').close()"),
    lambda marker: _Reduce(exec, f"open({str(marker)!r}, 'w').close()"),
    lambda marker: _Reduce(subprocess.call, ["touch", str(marker)]),
    lambda marker: _Reduce(open, str(marker), "w"),
], ids=["os.system", "eval", "exec", "subprocess.call", "open"])
def test_a_pickle_that_names_code_is_refused_and_runs_nothing(tmp_path, make):
    marker = tmp_path / "pwned"
    evil = tmp_path / "gnd_roxford5k.pkl"
    evil.write_bytes(pickle.dumps({"imlist": [], "gnd": [make(marker)]}, protocol=2))
    with pytest.raises(UnsafePickleError) as e:
        load_data_pickle(evil)
    assert not marker.exists()
    message = str(e.value)
    assert str(evil) in message and "Nothing in it was run" in message and "fetch it again" in message


def test_an_arbitrary_class_is_refused_even_a_harmless_one():
    from collections import OrderedDict
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        loads_data_pickle(pickle.dumps(OrderedDict(a=1)))


def test_a_truncated_pickle_raises_a_pickle_error_not_a_crash_elsewhere():
    data = pickle.dumps(revisited_like())
    with pytest.raises((pickle.UnpicklingError, EOFError)):
        loads_data_pickle(data[: len(data) // 2])
