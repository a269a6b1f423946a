"""Atomic files and directories: readers never see half an output, Ctrl-C leaves nothing behind,
two processes never write one target at once, and --force replaces only what twin wrote.

Every output goes through one of two doors:

* :class:`AtomicDir` for directories (a run, a stage, a sweep): built under a temporary sibling
  name, marked (``.twin``, twin.telemetry.outputs) and renamed into place only when complete;
* :func:`atomic_write` for single files (reports, plots, exports, query results).

Both hold an :class:`OutputLock` on the target while they work and check the target again just
before the rename, so a second writer is refused instead of overwriting the first.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, TypeVar

import numpy as np

from twin.errors import ToolError
from twin.telemetry.outputs import file_problem, replace_problem, write_marker


class OutputError(ToolError):
    """The output exists, is not twin's to replace, or another twin process is writing it."""


RunExistsError = OutputError  # the name callers have used since run directories were atomic


class OutputLock:
    """An exclusive lock on one output path (``.twin-lock.<name>`` beside it), never waited for.

    The name does not start with ``.<name>.`` as the temporaries do, so a watcher of those (a test
    that interrupts the writing the moment the temporary appears) is not misled by the lock.

    flock is released by the kernel when the process dies, so a killed run never blocks the next.
    The lock file is removed on release; a process that opened it just before the removal sees
    that its file is no longer the one at the path and tries again.
    """

    def __init__(self, target: Path):
        self.target = Path(target)
        self.path = self.target.with_name(f".twin-lock.{self.target.name}")
        self._fd: int | None = None

    def __enter__(self) -> "OutputLock":
        # Ctrl-C between creating the lock file and the `with` taking over would leave the file
        # behind: signals wait until the lock is taken, and one that then arrives releases it.
        try:
            with signals_deferred():
                self._acquire()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666 & ~_umask())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise OutputError(f"{self.target}: another twin process is writing it right now; "
                                  f"wait for it to finish or choose another -o") from None
            try:
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return
            os.close(fd)  # the previous holder removed the file we opened: lock the new one

    def __exit__(self, *exc: object) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with signals_deferred():  # the file goes before the lock does: never a lock file without a holder
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            os.close(fd)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block is done, then deliver them.

    A swap of two renames must not be cut in half (the old run would be left under a hidden
    name). Handlers run in the main thread only, so elsewhere there is nothing to defer.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    deferrable = [s for s, h in previous.items() if h is not None]
    for s in deferrable:
        signal.signal(s, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        for s in deferrable:
            signal.signal(s, previous[s])
        for s in got:
            signal.raise_signal(s)


class AtomicDir:
    """Build a directory under a temporary name and move it into place only on success.

    Use as a context manager; on an exception (including KeyboardInterrupt) the temporary
    directory is removed and nothing appears at `final`. The finished directory gets a `kind`
    marker (twin.telemetry.outputs). An existing `final` is replaced only with `force`, and only
    if twin wrote it as the same kind (or it is empty); the swap of old and new cannot be
    interrupted by SIGINT/SIGTERM, and one cut short by SIGKILL is repaired by the next writer.
    Pass the `lock` a caller already holds (e.g. since before a simulation), else one is taken.
    """

    def __init__(self, final: Path, force: bool = False, kind: str = "run", lock: OutputLock | None = None,
                 elsewhere: str | None = "-o"):
        self.final = target_path(final)
        self.force = force
        self.kind = kind
        self.elsewhere = elsewhere   # the caller's option for another target, named in the refusal
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self._own_lock = lock is None
        self.lock = lock or OutputLock(self.final)
        if self._own_lock:
            self.lock.__enter__()
        try:
            prepare_target(self.final, force, kind, elsewhere)
        except BaseException:
            self._release()
            raise
        # a name fixed before mkdir (see __enter__); mkdir's mode honours the umask like any directory
        stem = f".{self.final.name}.{os.getpid()}.{id(self):x}"
        self.tmp = self.final.with_name(f"{stem}.tmp")
        self.old = self.final.with_name(f"{stem}.old")

    def _release(self) -> None:
        if self._own_lock:
            self.lock.__exit__(None, None, None)

    def __enter__(self) -> Path:
        try:
            self.tmp.mkdir()
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self._release()
            raise
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self._commit()
        finally:
            # success, failure or a second Ctrl-C during the commit: no temporaries stay behind
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self.final.exists():
                shutil.rmtree(self.old, ignore_errors=True)
            self._release()
        return False

    def _commit(self) -> None:
        write_marker(self.tmp, self.kind)
        with signals_deferred():
            check_replaceable(self.final, self.force, self.kind, self.elsewhere)  # it may have appeared meanwhile
            if not os.path.lexists(self.final):
                os.rename(self.tmp, self.final)
                return
            os.rename(self.final, self.old)
            try:
                os.rename(self.tmp, self.final)
            except BaseException:
                os.rename(self.old, self.final)  # put the previous output back
                raise


def target_path(path: Path | str) -> Path:
    """`path` as a directory twin can create: `-o .` and `-o runs/..` name the directory itself."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        path = Path(os.path.abspath(path))
    if path.parent == path:
        raise OutputError(f"{path}: not a directory twin can create (give a path such as runs/name)")
    return path


def prepare_target(final: Path, force: bool, kind: str, elsewhere: str | None = "-o") -> None:
    """With `final`'s OutputLock held: repair what a killed writer left, then check_replaceable."""
    recover_orphans(final)
    check_replaceable(final, force, kind, elsewhere)


def check_replaceable(path: Path, force: bool, kind: str = "run", elsewhere: str | None = "-o") -> None:
    """Raise OutputError unless `path` is free, or `force` is given and twin may replace it.

    --force must never turn `-o ~` into rm -rf ~: only a directory twin wrote as `kind` (with
    nothing in it twin did not write) or an empty directory may go (twin.telemetry.outputs).
    `elsewhere`: the command's option for writing somewhere else, which the refusal suggests
    (None for a command whose target is fixed, such as `twin scene`'s RUN_DIR/stage).
    """
    path = Path(path)
    if not os.path.lexists(path):
        return
    if not force:
        other = f" or {elsewhere} to choose another directory" if elsewhere else ""
        raise OutputError(f"{path} already exists; pass --force to replace it{other}")
    problem = replace_problem(path, kind)
    if problem:
        raise OutputError(problem)


def recover_orphans(final: Path) -> list[Path]:
    """Repair what a SIGKILLed writer of `final` left: a displaced old output whose replacement
    never arrived is renamed back; finished temporaries are removed. Returns the paths handled.

    Call with the target's OutputLock held: no live writer of `final` exists then, so every
    temporary of its name belongs to a dead process.
    """
    final = Path(final)
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.\d+\.[0-9a-f]+\.(tmp|old)$")
    handled = []
    try:
        siblings = sorted((p for p in final.parent.iterdir() if pattern.match(p.name)),
                          key=lambda p: p.stat(follow_symlinks=False).st_mtime_ns, reverse=True)  # newest first
    except OSError:
        return handled
    for p in siblings:
        m = pattern.match(p.name)
        if not m or p.is_symlink() or not p.is_dir():
            continue
        if m.group(1) == "old" and not os.path.lexists(final):
            os.rename(p, final)  # the swap was cut between its two renames: the old output returns
        else:
            shutil.rmtree(p, ignore_errors=True)
        handled.append(p)
    return handled


T = TypeVar("T")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path | str, write: Callable[[BinaryIO], T], *, force: bool = False,
                 fmt: str | None = None) -> T:
    """Call write(fh) on a temp file beside `path`, then rename it into place; return its result.

    Readers never see half a file and a failure (or Ctrl-C) leaves nothing behind. An existing
    `path` is refused unless `force` is given and twin wrote it as a `fmt` output (its signature,
    twin.telemetry.outputs). The file gets an ordinary file's mode (0666 minus the umask).
    """
    path = Path(path)
    check_output_file(path, force, fmt)
    with OutputLock(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, 0o666 & ~_umask())
            with os.fdopen(fd, "wb", buffering=1 << 20) as fh:
                result = write(fh)
            check_output_file(path, force, fmt, new=Path(tmp))  # the header is known now
            os.replace(tmp, path)
            return result
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def check_output_file(path: Path | str, force: bool, fmt: str | None, new: Path | None = None) -> None:
    """Raise OutputError unless `path` is free or `force` may replace it (see atomic_write).

    Call it before expensive work so that a refusal costs nothing; atomic_write checks again.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"{path.parent}: output directory does not exist")
    if not os.path.lexists(path):
        return
    if not force:
        raise OutputError(f"{path} already exists; pass --force to replace it")
    problem = file_problem(path, fmt or "", new)
    if problem:
        raise OutputError(problem)


def replace_file(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` via a temp file + rename, replacing what is there (for files twin
    itself owns, e.g. a run's manifest.json; user-named outputs go through atomic_write)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON via a temp file + rename so readers never see half a file.

    NaN and infinities (e.g. a p99 latency with no completed request) become null: the file stays
    valid JSON for every reader, not only Python's.
    """
    text = json.dumps(_finite(payload), indent=2, sort_keys=True, default=_json_default, allow_nan=False) + "\n"
    replace_file(path, text.encode())


def _finite(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
