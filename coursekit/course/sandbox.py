"""Walls around untrusted code: what the grader puts between a submission and everything else.

A submitted notebook is a program its author controls. The grader runs it, and the functions it
defines, in processes that this module fences in:

- **memory and files**: ``RLIMIT_DATA`` caps what a process can allocate (a 30 GB ``np.empty``
  fails with ``MemoryError`` at once), ``RLIMIT_FSIZE`` the size of a file it writes, and
  ``RLIMIT_CORE`` = 0 keeps a crash from dumping its memory on disk;
- **the file system**, through Linux's Landlock (kernel 5.13 or newer; unprivileged): the process
  may read everything except the paths it is denied (the other submissions, the grader's own
  folders), and write only under the folders it is given (its private scratch folder, the feature
  cache), ``/dev/shm`` (where multiprocessing keeps its semaphores) and the pseudo-terminals
  (IPython runs ``!command`` on one). Where Landlock is missing (another OS, an old kernel), :func:`landlock_abi` is 0 and the
  grader says so: the submission then runs in its private copy, but an absolute path still reaches
  the rest of the disk;
- **processes**: every process of a submission carries a token in its environment, and
  :func:`kill_tagged` ends them all, also those that left the kernel's process group (``setsid``,
  a double fork), so none outlives grading.

``python -m coursekit.course.sandbox -- CMD ...`` applies the limits that the environment variable
``COURSEKIT_SANDBOX`` holds (JSON, see :func:`sandbox_env`) to itself, then becomes ``CMD``:
limits and Landlock rules survive ``exec``, so the kernel and all its children inherit them.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import signal
import sys
import time
from pathlib import Path

__all__ = [
    "ENV", "TOKEN_ENV", "landlock_abi", "restrict_filesystem", "apply_limits", "sandbox_env",
    "sandbox_argv", "kill_tagged", "become_subreaper",
]

#: The environment variable that carries a sandbox's limits (JSON) to :func:`main`.
ENV = "COURSEKIT_SANDBOX"
#: The environment variable that tags every process of one submission.
TOKEN_ENV = "COURSEKIT_SANDBOX_TOKEN"

# Landlock's system calls and flags (include/uapi/linux/landlock.h); the same numbers on every architecture.
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_REMOVE_DIR, _REMOVE_FILE, _MAKE_CHAR, _MAKE_DIR, _MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
_MAKE_SOCK, _MAKE_FIFO, _MAKE_BLOCK, _MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
_REFER, _TRUNCATE = 1 << 13, 1 << 14            # ABI 2 and 3
_READ = _EXECUTE | _READ_FILE | _READ_DIR
_FILE_RIGHTS = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE  # the rights a rule on a file may hold
_PR_SET_NO_NEW_PRIVS, _PR_SET_CHILD_SUBREAPER = 38, 36


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers (0 when none: not Linux, too old, or disabled)."""
    if platform.system() != "Linux":
        return 0
    try:
        abi = _libc().syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    return max(int(abi), 0)


def _all_rights(abi: int) -> int:
    rights = (_READ | _WRITE_FILE | _REMOVE_DIR | _REMOVE_FILE | _MAKE_CHAR | _MAKE_DIR | _MAKE_REG
              | _MAKE_SOCK | _MAKE_FIFO | _MAKE_BLOCK | _MAKE_SYM)
    if abi >= 2:
        rights |= _REFER
    if abi >= 3:
        rights |= _TRUNCATE
    return rights


def readable_roots(denied: list[str | Path]) -> list[Path]:
    """Paths whose trees, together, hold every file except those under ``denied``.

    Starting from ``/``, each root that contains a denied path is replaced by its entries, except
    the one that leads to it, down to the denied path itself. The folders on the way (``/tmp`` when
    ``/tmp/x/sub`` is denied) are then not listable, but what else they hold stays readable.
    Symbolic links on the way are left out (their targets are reached by their own paths).
    """
    denied_paths = [Path(os.path.realpath(p)) for p in denied]
    roots, out = [Path("/")], []
    while roots:
        root = roots.pop()
        if any(root == d for d in denied_paths):
            continue
        if any(root in d.parents for d in denied_paths):
            try:
                # A link is left out: a rule on it would hold its target, which may be a denied path
                # (pytest's `pytest-current`); what it points to is reached through its real path.
                roots.extend(root / name for name in os.listdir(root) if not os.path.islink(root / name))
            except OSError:
                pass
        else:
            out.append(root)
    return out


def restrict_filesystem(deny_read: list[str | Path], allow_write: list[str | Path]) -> bool:
    """Restrict this process (and whatever it starts) with Landlock: read anything but ``deny_read``,
    write only under ``allow_write``. Returns False, changing nothing, where Landlock is missing."""
    abi = landlock_abi()
    if abi <= 0:
        return False
    libc = _libc()
    handled = _all_rights(abi)
    attr = _RulesetAttr(handled)
    fd = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    if fd < 0:
        return False
    try:
        rules = [(p, _READ) for p in readable_roots(deny_read)]
        rules += [(Path(p), handled) for p in allow_write]
        rules += [(Path("/dev/null"), _READ_FILE | _WRITE_FILE)]
        if os.path.isdir("/dev/shm"):  # POSIX semaphores and shared memory (multiprocessing's pools) live there
            rules += [(Path("/dev/shm"), handled)]
        # pseudo-terminals: IPython runs a cell's `!command` on one
        rules += [(Path(p), handled) for p in ("/dev/ptmx", "/dev/pts", "/dev/tty") if os.path.exists(p)]
        for path, rights in rules:
            try:
                path_fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # gone since it was listed, or a dangling link
            try:
                if not os.path.isdir(f"/proc/self/fd/{path_fd}"):
                    rights &= _FILE_RIGHTS
                rule = _PathBeneathAttr(rights & handled, path_fd)
                libc.syscall(_SYS_ADD_RULE, ctypes.c_int(fd), ctypes.c_int(_RULE_PATH_BENEATH),
                             ctypes.byref(rule), ctypes.c_uint32(0))
            finally:
                os.close(path_fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return False
        return libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) == 0
    finally:
        os.close(fd)


def apply_limits(memory_bytes: int | None = None, file_bytes: int | None = None) -> None:
    """Cap this process's data segment (``RLIMIT_DATA``: heap and private mappings, which is what a
    large array takes) and the size of any file it writes; no core dumps."""
    for limit, value in ((resource.RLIMIT_DATA, memory_bytes), (resource.RLIMIT_FSIZE, file_bytes),
                         (resource.RLIMIT_CORE, 0)):
        if value is None:
            continue
        soft, hard = resource.getrlimit(limit)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(limit, (value, hard))


def sandbox_env(env: dict[str, str], *, token: str, memory_bytes: int | None, deny_read: list[str],
                allow_write: list[str], file_bytes: int | None = 1 << 30) -> dict[str, str]:
    """``env`` with the limits that :func:`main` applies (``ENV``) and the submission's token."""
    config = {"memory": memory_bytes, "files": file_bytes, "deny_read": [str(p) for p in deny_read],
              "allow_write": [str(p) for p in allow_write]}
    return {**env, ENV: json.dumps(config), TOKEN_ENV: token}


def sandbox_argv(argv: list[str]) -> list[str]:
    """``argv`` run through this module's launcher (limits first, then ``exec``)."""
    return [sys.executable, "-m", "coursekit.course.sandbox", "--", *argv]


def _tagged_pids(token: str) -> list[int]:
    marker = f"{TOKEN_ENV}={token}".encode()
    pids = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def kill_tagged(token: str, rounds: int = 5) -> int:
    """SIGKILL every process whose environment carries this submission's ``token``; returns how many.

    Reaps those that were this process's children (orphans re-parented here by
    :func:`become_subreaper`), so that none is left as a zombie.
    """
    killed = 0
    for _ in range(rounds):  # a fork between the listing and the kill is caught next round
        pids = _tagged_pids(token)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.05)
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
    return killed


def become_subreaper() -> bool:
    """Make this process the parent of its descendants' orphans (Linux), so that a submission's
    daemon cannot slip away to ``init``; a no-op elsewhere."""
    if platform.system() != "Linux":
        return False
    try:
        return _libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def enter_from_env() -> None:
    """Apply the limits that ``ENV`` describes to this process (see :func:`sandbox_env`)."""
    config = json.loads(os.environ.get(ENV) or "{}")
    apply_limits(config.get("memory"), config.get("files"))
    if config.get("allow_write") is not None:
        restrict_filesystem(config.get("deny_read", []), config["allow_write"])


def main(argv: list[str] | None = None) -> int:
    """``python -m coursekit.course.sandbox -- CMD ...``: enter the sandbox, then become ``CMD``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m coursekit.course.sandbox -- CMD [ARG ...]", file=sys.stderr)
        return 2
    enter_from_env()
    os.execvp(argv[0], argv)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
