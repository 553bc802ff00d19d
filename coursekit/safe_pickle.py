"""Reading a pickle of plain data without running its code.

``pickle.load`` calls whatever function the file names: a crafted file runs
``os.system`` as soon as it is read. The revisited Oxford and Paris ground
truth (``gnd_roxford5k.pkl``, ``gnd_rparis6k.pkl``) is a pickle that comes
from the network, so :func:`load_data_pickle` reads it with an unpickler that
only rebuilds data: dicts, lists, tuples, strings, numbers (which pickle
builds without naming any function), a few builtin containers, and numpy
arrays, dtypes and scalars. Any other name in the file (``os.system``,
``builtins.eval``, ``subprocess.Popen``, a class of some package) stops the
reading with :class:`UnsafePickleError` before anything is called.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

__all__ = ["ALLOWED_GLOBALS", "UnsafePickleError", "load_data_pickle", "loads_data_pickle"]

#: ``(module, name)`` pairs a data pickle may name: exactly what numpy arrays, numpy scalars and the
#: builtin containers pickle needs for protocols 0 to 5 (numpy 1 writes ``numpy.core``, numpy 2
#: ``numpy._core``; protocol 2 stores bytes through ``_codecs.encode``).
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [(m, n) for m in ("builtins", "__builtin__") for n in ("set", "frozenset", "bytes", "bytearray", "complex")]
    + [("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype")]
    + [(f"numpy.{core}.multiarray", n) for core in ("core", "_core") for n in ("_reconstruct", "scalar")]
    + [(f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")]
)


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a function or class that is not plain data; nothing it names was called."""


class _DataUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` admits only :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(f"it names {module}.{name}, which is not plain data")
        if module.startswith("numpy.core."):  # numpy 1's name; numpy 2 keeps it only as a warning shim
            import numpy
            if hasattr(numpy, "_core"):
                module = "numpy._core." + module[len("numpy.core."):]
        return super().find_class(module, name)

    def persistent_load(self, pid):
        raise UnsafePickleError("it uses persistent ids, which plain data never does")


def loads_data_pickle(data: bytes):
    """The object a pickle's ``data`` holds, built only from plain data and numpy arrays.

    Raises :class:`UnsafePickleError` (a :class:`pickle.UnpicklingError`) when
    the pickle names anything outside :data:`ALLOWED_GLOBALS`; no function it
    names is called. Other damage (a truncated file) raises what ``pickle``
    raises: ``pickle.UnpicklingError``, ``EOFError``, ``ValueError``...
    """
    return _DataUnpickler(io.BytesIO(data)).load()


def load_data_pickle(path: str | Path):
    """:func:`loads_data_pickle` of the file ``path``; the messages of its errors name the file.

    Example: the revisited ground truth ``{"imlist": [...], "qimlist": [...],
    "gnd": [{"bbx": [...], "easy": ndarray (k,) int64, ...}, ...]}``.
    """
    path = Path(path)
    try:
        return loads_data_pickle(path.read_bytes())
    except UnsafePickleError as err:
        raise UnsafePickleError(
            f"{path}: refused to read this pickle: {err}. Nothing in it was run. The file is not the "
            f"one its source publishes (it may have been tampered with); delete it and fetch it again "
            f"from the official host"
        ) from None
