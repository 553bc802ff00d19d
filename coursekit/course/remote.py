"""A student's function, called in a process of its own: the grader sees only what it returns.

The grader decides every verdict in its own process, where no student code runs. A submitted
function travels there as follows:

1. **export**, in the student's kernel: after each cell, :func:`export_functions` writes every
   exercise function that changed with cloudpickle (by value: its code, and the globals it uses),
   into the submission's scratch folder. A kernel that dies later leaves the last export behind.
2. **a runner per exercise**: ``python -m coursekit.course.remote`` (in the sandbox of
   :mod:`coursekit.course.sandbox`) first replaces the exercise's reference in every coursekit namespace
   with a tripwire, installs an audit hook that refuses to read coursekit's source again, to start
   processes or to search the heap for the original, and only then unpickles the student's function.
3. **calls**: the check, in the grader, calls a :class:`RemoteFunction` as it would the function;
   the arguments go to the runner by pickle (grader to sandbox: trusted data), the result and the
   arguments as the function left them come back as plain values (:func:`encode`), which the grader
   decodes with an unpickler that admits no class at all (:func:`decode`). A callable argument (9.3's
   ``matvec``) stays in the grader: the runner calls back. A loss computed on tensors that require
   gradients is differentiated in the runner and comes back as a tensor whose ``backward()`` writes
   those gradients: the check's code is the same for a local and a remote function.

What the student's code does to its own process (patching numpy, builtins, coursekit, printing,
``os._exit``) changes what that function returns, never how the grader compares it.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "ReferenceUsed", "RemoteError", "RunnerDied", "RemoteFunction", "FunctionRunner", "export_functions",
    "encode", "decode", "EXPORT_SUFFIX", "ERROR_SUFFIX",
]

EXPORT_SUFFIX, ERROR_SUFFIX = ".fn.pkl", ".fn.error"
_HEADER = struct.Struct("!Q")
_MAX_FRAME = 1 << 28  # 256 MiB: what a check's call sends or gets back is far smaller


class ReferenceUsed(BaseException):
    """Raised in the runner by a tripwire: the student's function called the exercise's reference.
    A ``BaseException``, so that ``except Exception`` in the student's code lets it through."""


class RemoteError(Exception):
    """An exception the student's function raised in the runner (``type_name`` says which)."""

    def __init__(self, type_name: str, message: str):
        super().__init__(message)
        self.type_name = type_name


class RunnerDied(BaseException):
    """The runner process ended without answering (killed for memory, ``os._exit``, a crash): the
    grader's error, not a failure of the check, so a ``BaseException`` that checks let through."""


# --------------------------------------------------------------------------- frames

def _send(f, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(_HEADER.pack(len(data)) + data)
    f.flush()


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _recv_bytes(fd: int, deadline: float | None = None) -> bytes:
    (n,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    if n > _MAX_FRAME:
        raise EOFError
    return _read_exact(fd, n, deadline)


# --------------------------------------------------------------------------- plain values

def _ndarray(a) -> dict:
    import numpy as np

    a = np.asarray(a)
    if a.dtype.hasobject:
        return {"__nd_object__": [encode(v) for v in a.reshape(-1).tolist()], "shape": a.shape}
    return {"__nd__": a.dtype.str, "shape": a.shape, "data": np.ascontiguousarray(a).tobytes()}


def encode(obj: Any, _depth: int = 0) -> Any:
    """``obj`` as builtins only (what :func:`decode` admits): arrays, tensors, sparse matrices and
    tuple subclasses tagged; anything else becomes its type's name and a short repr."""
    if _depth > 50:
        return {"__repr__": "...", "type": type(obj).__name__}
    mod = type(obj).__module__
    if mod.startswith("numpy"):  # first: np.float64 is also a float, but pickles as a numpy scalar
        import numpy as np

        if isinstance(obj, np.ndarray):
            return _ndarray(obj)
        if isinstance(obj, np.generic):
            return {"__np_scalar__": _ndarray(np.asarray(obj))}
    if obj is None or type(obj) in (bool, int, float, complex, str, bytes):
        return obj
    if mod.startswith("torch") and type(obj).__name__ in ("Tensor", "Parameter"):
        t = obj.detach().cpu()
        return {"__torch__": _ndarray(t.float().numpy() if str(t.dtype) == "torch.bfloat16" else t.numpy()),
                "requires_grad": bool(obj.requires_grad), "dtype": str(obj.dtype)}
    if mod.startswith("scipy.sparse"):
        m = obj.tocsr()
        return {"__sparse__": obj.format, "shape": m.shape, "data": _ndarray(m.data),
                "indices": _ndarray(m.indices), "indptr": _ndarray(m.indptr)}
    if isinstance(obj, list):
        return [encode(v, _depth + 1) for v in obj]
    if isinstance(obj, (set, frozenset)):
        items = (encode(v, _depth + 1) for v in obj)
        return frozenset(items) if isinstance(obj, frozenset) else set(items)
    if isinstance(obj, tuple):
        items = [encode(v, _depth + 1) for v in obj]
        return tuple(items) if type(obj) is tuple else {"__tuple__": type(obj).__name__, "items": items}
    if isinstance(obj, dict):
        return {"__dict__": [(encode(k, _depth + 1), encode(v, _depth + 1)) for k, v in obj.items()]}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type) and mod.split(".")[0] == "coursekit":
        return {"__dataclass__": [mod, type(obj).__qualname__],
                "fields": [(f.name, encode(getattr(obj, f.name), _depth + 1)) for f in dataclasses.fields(obj)]}
    text = repr(obj)
    return {"__repr__": text[:200], "type": type(obj).__name__}


class _NoClasses(pickle.Unpickler):
    """An unpickler for data from a sandbox: plain containers and scalars, never a class or a call."""

    def find_class(self, module, name):
        if (module, name) == ("builtins", "complex"):
            return complex
        raise pickle.UnpicklingError(f"refused {module}.{name}: a sandbox sends plain values only")


class Opaque:
    """What :func:`decode` gives for a value that does not travel (its type name and repr)."""

    def __init__(self, type_name: str, text: str):
        self.type_name, self.text = type_name, text

    def __repr__(self) -> str:
        return self.text


_TUPLE_TYPES: dict[str, type] = {}


def _tuple_type(name: str) -> type:
    if name not in _TUPLE_TYPES:
        _TUPLE_TYPES[name] = type(name, (tuple,), {"__module__": "coursekit.course.remote"})
    return _TUPLE_TYPES[name]


def _from_tree(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, list):
        return [_from_tree(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_from_tree(v) for v in obj)
    if isinstance(obj, (set, frozenset)):
        return type(obj)(_from_tree(v) for v in obj)
    if not isinstance(obj, dict):
        return obj
    if "__nd__" in obj:
        dtype, shape = np.dtype(obj["__nd__"]), tuple(obj["shape"])
        return np.frombuffer(obj["data"], dtype=dtype).reshape(shape).copy()
    if "__nd_object__" in obj:
        out = np.empty(len(obj["__nd_object__"]), dtype=object)
        out[:] = [_from_tree(v) for v in obj["__nd_object__"]]
        return out.reshape(tuple(obj["shape"]))
    if "__np_scalar__" in obj:
        return _from_tree(obj["__np_scalar__"])[()]
    if "__torch__" in obj:
        import torch

        t = torch.from_numpy(_from_tree(obj["__torch__"]))
        if obj.get("dtype") == "torch.bfloat16":
            t = t.to(torch.bfloat16)
        return t.requires_grad_(True) if obj.get("requires_grad") and t.is_floating_point() else t
    if "__sparse__" in obj:
        import scipy.sparse as sp

        m = sp.csr_matrix((_from_tree(obj["data"]), _from_tree(obj["indices"]), _from_tree(obj["indptr"])),
                          shape=tuple(obj["shape"]))
        return m.asformat(obj["__sparse__"]) if obj["__sparse__"] in ("csr", "csc", "coo", "lil", "dok") else m
    if "__tuple__" in obj:
        return _tuple_type(str(obj["__tuple__"]))(_from_tree(v) for v in obj["items"])
    if "__dict__" in obj:
        return {_from_tree(k): _from_tree(v) for k, v in obj["__dict__"]}
    if "__dataclass__" in obj:
        return _dataclass(*obj["__dataclass__"], {k: _from_tree(v) for k, v in obj["fields"]})
    if "__repr__" in obj:
        return Opaque(str(obj.get("type")), str(obj["__repr__"]))
    raise pickle.UnpicklingError("an unknown tagged value")


def _dataclass(module: str, qualname: str, fields: dict) -> Any:
    """One of coursekit's own dataclasses, rebuilt from its fields (no other class is ever imported)."""
    import importlib

    if module.split(".")[0] != "coursekit" or not all(part.isidentifier() for part in qualname.split(".")):
        raise pickle.UnpicklingError(f"refused {module}.{qualname}")
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise pickle.UnpicklingError(f"refused {module}.{qualname}: not a dataclass")
    obj = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(obj, name, value)
    return obj


def _plain(data: bytes) -> Any:
    """Unpickle bytes from a sandbox: builtins only (no class, no call)."""
    return _NoClasses(io.BytesIO(data)).load()


def decode(data: bytes) -> Any:
    """The value :func:`encode` made, from bytes a sandbox sent; refuses anything but plain data."""
    return _from_tree(_plain(data))


# --------------------------------------------------------------------------- export, in the kernel

def _referenced_ids(fn: Any) -> tuple:
    """What a function's result can depend on: itself, its code, and the globals its code names."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return (id(fn),)
    g = getattr(fn, "__globals__", {})
    names, stack = set(), [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return (id(fn), id(code), tuple(sorted((n, id(g.get(n))) for n in names)))


_EXPORTED: dict[str, tuple] = {}


def export_functions(names: list[str], folder: str, namespace: dict | None = None) -> None:
    """Pickle (cloudpickle, by value) each of ``names`` found in ``namespace`` (the kernel's, by
    default) into ``folder`` when it, or a global it uses, changed since the last export.

    A function that cannot be pickled leaves ``NAME.fn.error`` with the reason instead."""
    import cloudpickle

    from ..cache import atomic_write

    if namespace is None:
        from IPython import get_ipython

        namespace = get_ipython().user_ns
    folder_path = Path(folder)
    for name in names:
        fn = namespace.get(name)
        target, error = folder_path / (name + EXPORT_SUFFIX), folder_path / (name + ERROR_SUFFIX)
        if fn is None:
            continue
        key = _referenced_ids(fn)
        if _EXPORTED.get(name) == key and (target.exists() or error.exists()):
            continue
        _EXPORTED[name] = key
        try:
            data = cloudpickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # noqa: BLE001 - the reason goes to the student
            error.write_text(f"{type(e).__name__}: {str(e)[:300]}")
            target.unlink(missing_ok=True)
            continue
        with atomic_write(target) as tmp:
            tmp.write_bytes(data)
        error.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the runner process

def _resolve(dotted: str) -> tuple[Any, str, Any]:
    """``(owner, attribute, object)`` for ``coursekit.module.name`` or ``coursekit.module.Class.method``."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:-1]:
            owner = getattr(owner, attr)
        return owner, parts[-1], getattr(owner, parts[-1])
    raise ImportError(dotted)


def _tripwire(dotted: str) -> Callable:
    def reference_called(*args, **kwargs):
        raise ReferenceUsed(dotted)

    reference_called.__name__ = dotted.rsplit(".", 1)[-1]
    reference_called.__qualname__ = dotted
    return reference_called


def _install_tripwires(references: list[str]) -> dict[str, set]:
    """Replace each reference in every namespace, table and closure that holds it; return the
    reference code objects (by ``co_code``) and the coursekit source files already imported."""
    import gc

    codes: dict[str, set] = {"code": set()}
    for dotted in references:
        owner, attr, original = _resolve(dotted)
        wire = _tripwire(dotted)
        setattr(owner, attr, wire)
        func = getattr(original, "__func__", original)
        code = getattr(func, "__code__", None)
        if code is not None:
            codes["code"].add(_code_print(code))
        for holder in gc.get_referrers(original):
            if isinstance(holder, dict):
                for k, v in list(holder.items()):
                    if v is original:
                        try:
                            holder[k] = wire
                        except TypeError:
                            pass
            elif isinstance(holder, list):
                for i, v in enumerate(holder):
                    if v is original:
                        holder[i] = wire
            elif type(holder).__name__ == "cell":
                try:
                    holder.cell_contents = wire
                except ValueError:
                    pass
        del original, func
    return codes


def _guarded_files() -> set[str]:
    """The source and cache files of every coursekit module imported so far (real paths)."""
    import importlib.util

    files = set()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.split(".")[0] != "coursekit" or not path:
            continue
        files.add(os.path.realpath(path))
        try:
            files.add(os.path.realpath(importlib.util.cache_from_source(path)))
        except (NotImplementedError, ValueError):
            pass
    return files


def _install_audit_hook(guarded: set[str]) -> None:
    """Refuse, from now on and for good (an audit hook cannot be removed): opening the source of a
    coursekit module already imported (reloading a reference), starting a process (a fresh
    interpreter would import the real reference), and searching the heap for the original."""
    refused = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
               "os.forkpty", "pty.spawn", "gc.get_objects", "gc.get_referrers", "gc.get_referents"}

    def hook(event, args):
        if event in refused:
            raise PermissionError(f"the grader's sandbox does not allow {event}")
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            try:
                path = os.path.realpath(os.fsdecode(args[0]))
            except (TypeError, ValueError):
                return
            if path in guarded:
                raise PermissionError("the grader's sandbox does not allow reading coursekit's source")

    sys.addaudithook(hook)


def _code_print(code: types.CodeType) -> tuple:
    """What identifies a code object across a pickle (cloudpickle renames its file): its name, first
    line and bytecode. Code typed in a notebook never shares the reference's first line and bytecode."""
    return code.co_name, code.co_firstlineno, code.co_code


def _copies_reference(fn: Any, reference_code: set) -> bool:
    """Whether the student's function (or a function it holds) runs the code object of a reference
    (``types.FunctionType(ref.__code__, ...)``), which no tripwire replaces."""
    seen, stack = set(), [fn]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        obj = getattr(obj, "__func__", obj)
        code = getattr(obj, "__code__", None)
        if not isinstance(code, types.CodeType):
            continue
        codes = [code]
        while codes:
            c = codes.pop()
            if _code_print(c) in reference_code:
                return True
            codes.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
        g = getattr(obj, "__globals__", {})
        if g.get("__name__", "").split(".")[0] != "coursekit":
            stack.extend(g.get(n) for n in code.co_names if callable(g.get(n)))
        stack.extend(cell.cell_contents for cell in (getattr(obj, "__closure__", None) or ())
                     if _cell_full(cell))
    return False


def _cell_full(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


class _Callback:
    """Stands, in the arguments sent to the runner, for a callable that stays in the grader."""

    def __init__(self, index: int, name: str):
        self.index, self.name = index, name


def _is_callback(value: Any) -> bool:
    # By name: the runner runs as __main__, so the class it unpickles is coursekit.course.remote's, not its own.
    return type(value).__name__ == "_Callback" and type(value).__module__.endswith("remote")


def _with_callbacks(value: Any, out, inp) -> Any:
    if _is_callback(value):
        def callback(*args):
            _send(out, ("callback", value.index, pickle.dumps(encode(args))))
            kind, payload = pickle.loads(_recv_bytes(inp))
            if kind == "raised":
                raise RuntimeError(payload)
            return payload
        callback.__name__ = value.name
        return callback
    if isinstance(value, (list, tuple)) and any(_is_callback(v) for v in value):
        return type(value)(_with_callbacks(v, out, inp) for v in value)
    return value


def _with_grads(args: tuple, result: Any) -> dict | None:
    """For a scalar loss that requires gradients: backpropagate here, and return the value, the
    gradient of each tensor argument that requires one, or the error ``backward()`` raised."""
    import torch

    if not (isinstance(result, torch.Tensor) and result.requires_grad and result.ndim == 0):
        return None
    leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    try:
        result.backward()
    except Exception as e:  # noqa: BLE001 - handed to the grader's backward()
        return {"error": f"{type(e).__name__}: {e}"}
    return {"grads": [encode(a.grad) if a.grad is not None else None for a in leaves]}


def _serve(inp: int, out, fn: Callable) -> None:
    while True:
        try:
            message = pickle.loads(_recv_bytes(inp))
        except EOFError:
            return
        if message[0] == "stop":
            return
        _, args = message
        args = tuple(_with_callbacks(a, out, inp) for a in args)
        try:
            result = fn(*args)
            grads = _with_grads(args, result) if "torch" in sys.modules else None
            reply = ("ok", encode(result), encode(args), grads)
        except ReferenceUsed as e:
            reply = ("reference", str(e))
        except NotImplementedError as e:
            reply = ("raised", "NotImplementedError", str(e))
        except SystemExit:
            reply = ("raised", "SystemExit", "")
        except BaseException as e:  # noqa: BLE001 - every failure of the student's goes back as text
            reply = ("raised", type(e).__name__, str(e)[:2000])
        _send(out, ("result", pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)))


def runner_main() -> int:
    """The runner: read the job, set the traps, load the student's function, answer calls."""
    # The protocol keeps private copies of stdin/stdout; what the student prints goes nowhere.
    inp = os.dup(0)
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    from . import sandbox

    sandbox.enter_from_env()
    job = pickle.loads(_recv_bytes(inp))
    import numpy  # noqa: F401 - what every exercise uses, imported before the hook
    for name in job.get("preload", []):
        try:
            __import__(name)
        except ImportError:
            pass
    references = _install_tripwires(job["references"])
    _install_audit_hook(_guarded_files())
    try:
        import cloudpickle  # noqa: F401

        fn = pickle.loads(job["function"])
    except BaseException as e:  # noqa: BLE001 - the student's pickle may fail any way
        _send(out, ("loaded", False, f"{type(e).__name__}: {str(e)[:300]}"))
        return 0
    if not callable(fn):
        _send(out, ("loaded", False, f"`{job['name']}` is a {type(fn).__name__}, not a function"))
        return 0
    if _copies_reference(fn, references["code"]):
        _send(out, ("loaded", False, "reference-code"))
        return 0
    _send(out, ("loaded", True, ""))
    _serve(inp, out, fn)
    return 0


# --------------------------------------------------------------------------- the grader's side

@dataclass
class _Outcome:
    loaded: bool
    problem: str = ""


class FunctionRunner:
    """One runner process for one exercise's function; a context manager that always kills it."""

    def __init__(self, function_pickle: bytes, name: str, references: list[str], *, env: dict[str, str],
                 cwd: str, preload: list[str] = (), start_timeout: float = 60.0):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coursekit.course.remote"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True,
        )
        self.used_reference: str | None = None
        _send(self.proc.stdin, {"function": function_pickle, "name": name, "references": list(references),
                                "preload": list(preload)})
        try:
            kind, ok, problem = _plain(_recv_bytes(self.proc.stdout.fileno(), time.monotonic() + start_timeout))
        except (EOFError, TimeoutError):
            self.close()
            self.outcome = _Outcome(False, "the sandbox could not load the function (it crashed or hung)")
            return
        self.outcome = _Outcome(bool(ok), str(problem))

    def call(self, args: tuple, timeout: float | None) -> tuple[Any, tuple, dict | None]:
        """``fn(*args)`` in the runner: ``(result, args as the function left them, gradients)``.

        Raises ``NotImplementedError``, :class:`RemoteError` for another exception of the student's,
        :class:`ReferenceUsed`, ``TimeoutError`` (the runner is killed) or :class:`RunnerDied`."""
        callables: list[Callable] = []

        def stand_in(a):
            if callable(a) and not isinstance(a, type) and type(a).__module__.split(".")[0] not in ("torch", "numpy"):
                callables.append(a)
                return _Callback(len(callables) - 1, getattr(a, "__name__", "callback"))
            return a

        sent = tuple(stand_in(a) for a in args)
        deadline = None if not timeout else time.monotonic() + timeout
        try:
            _send(self.proc.stdin, ("call", sent))
            while True:
                kind, *payload = _plain(_recv_bytes(self.proc.stdout.fileno(), deadline))
                if kind == "callback":
                    index, data = payload
                    try:
                        value = ("ok", callables[index](*decode(data)))
                    except Exception as e:  # noqa: BLE001 - the grader's own callable failed on the input
                        value = ("raised", f"{type(e).__name__}: {e}")
                    _send(self.proc.stdin, value)
                    continue
                reply = _plain(payload[0])
                break
        except TimeoutError:
            self.close()
            raise
        except (EOFError, BrokenPipeError, OSError, ValueError) as e:  # ValueError: its pipe already closed
            self.close()
            raise RunnerDied(self._death()) from e
        except BaseException:
            self.close()
            raise
        if reply[0] == "ok":
            _, result, after, grads = reply
            return _from_tree(result), _from_tree(after), grads
        if reply[0] == "reference":
            self.used_reference = reply[1]
            raise ReferenceUsed(reply[1])
        _, type_name, message = reply
        if type_name == "NotImplementedError":
            raise NotImplementedError(message)
        raise RemoteError(type_name, message)

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "the sandbox stopped answering"
        if code < 0:
            sig = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            return f"the process running it was killed ({sig}; out of memory?)"
        return f"the process running it exited with code {code}"

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self) -> "FunctionRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _write_back(target: Any, value: Any) -> None:
    """Put what the runner's copy of an argument became into the grader's argument, in place, so
    that a check that looks for an input the function changed still sees the change."""
    import numpy as np

    torch = sys.modules.get("torch")  # a tensor argument means torch is imported; never import it here (the
    # call runs under the check's time limit, and an import cut by it leaves torch half-initialised)
    if isinstance(target, np.ndarray) and isinstance(value, np.ndarray):
        if target.shape == value.shape and target.flags.writeable:
            np.copyto(target, value, casting="unsafe")
    elif torch is not None and isinstance(target, torch.Tensor) and isinstance(value, torch.Tensor):
        if target.shape == value.shape:
            with torch.no_grad():
                target.copy_(value.to(target.dtype))
    elif any(isinstance(v, Opaque) for v in (value.values() if isinstance(value, dict) else
                                             value if isinstance(value, list) else ())):
        return  # what does not travel cannot be compared: leave the grader's copy as it was
    elif isinstance(target, list) and isinstance(value, list):
        target[:] = value
    elif isinstance(target, dict) and isinstance(value, dict):
        target.clear()
        target.update(value)


def _remote_loss(value: Any, args: tuple, grads: dict) -> Any:
    """A tensor equal to the runner's loss whose ``backward()`` gives ``args``' tensors the runner's
    gradients (or raises the runner's error)."""
    import torch

    leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    remote = [_from_tree(g) if g is not None else None for g in grads.get("grads", [None] * len(leaves))]

    class _Loss(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *inputs):
            return value.detach().clone()

        @staticmethod
        def backward(ctx, grad_out):
            if "error" in grads:
                raise RuntimeError(grads["error"])
            return tuple(None if g is None else grad_out * g.to(leaf.dtype) for g, leaf in zip(remote, leaves))

    return _Loss.apply(*leaves)


class RemoteFunction:
    """Calls the student's function in a :class:`FunctionRunner`; what a check holds instead of it."""

    def __init__(self, runner: FunctionRunner, timeout: float | None):
        self._runner, self.timeout = runner, timeout
        self.__name__ = runner.name
        self.__qualname__ = runner.name

    def __call__(self, *args):
        from ..exercises.check import TimeLimit

        try:
            result, after, grads = self._runner.call(args, self.timeout)
        except TimeoutError:
            raise TimeLimit() from None
        except RemoteError as e:
            raise _student_exception(e.type_name, str(e)) from None
        for target, value in zip(args, after):
            _write_back(target, value)
        if grads is not None:
            return _remote_loss(result, args, grads)
        return result


_EXCEPTION_TYPES: dict[str, type] = {}


def _student_exception(type_name: str, message: str) -> BaseException:
    """An exception of the student's, rebuilt in the grader under its own name (for the messages)."""
    if type_name == "SystemExit":
        return SystemExit()
    if type_name == "RecursionError":
        return RecursionError(message)
    if type_name == "MemoryError":
        return MemoryError(message)
    if type_name not in _EXCEPTION_TYPES:
        _EXCEPTION_TYPES[type_name] = type(type_name, (RemoteError,), {"__module__": "coursekit.course.remote"})
    e = _EXCEPTION_TYPES[type_name](type_name, message)
    return e


if __name__ == "__main__":
    sys.exit(runner_main())
