"""Atomic files and directories: readers never see half a run, and Ctrl-C leaves nothing behind."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, TypeVar

import numpy as np


class RunExistsError(FileExistsError):
    """The run directory exists and overwriting was not asked for."""


class AtomicDir:
    """Build a directory under a temporary name and move it into place only on success.

    Use as a context manager; on an exception (including KeyboardInterrupt) the temporary
    directory is removed and nothing appears at `final`. With `force`, an existing `final`
    is replaced only after the new one is complete, and only if it is a run directory (or empty).
    The temporary name is known before it is created, so a Ctrl-C landing anywhere between
    mkdir and the with-block still cleans it up.
    """

    def __init__(self, final: Path, force: bool = False, marker: str | None = None):
        self.final = Path(final)
        self.force = force
        check_replaceable(self.final, force, marker)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        # a name fixed before mkdir (see __enter__); mkdir's mode honours the umask like any directory
        stem = f".{self.final.name}.{os.getpid()}.{id(self):x}"
        self.tmp = self.final.with_name(f"{stem}.tmp")
        self.old = self.final.with_name(f"{stem}.old")

    def __enter__(self) -> Path:
        try:
            self.tmp.mkdir()
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
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
        return False

    def _commit(self) -> None:
        if not self.final.exists():
            os.replace(self.tmp, self.final)
            return
        os.replace(self.final, self.old)
        try:
            os.replace(self.tmp, self.final)
        except BaseException:
            os.replace(self.old, self.final)  # put the previous run back
            raise


def check_replaceable(path: Path, force: bool, marker: str | None = None) -> None:
    """Raise RunExistsError unless `path` is free, or `force` is given and it may be replaced.

    --force must never turn `-o ~` into rm -rf ~: with a `marker` only what we wrote (a directory
    holding `marker`, e.g. a run's manifest.json) or an empty directory may go.
    """
    path = Path(path)
    if path.exists() and not force:
        raise RunExistsError(f"{path} already exists; pass --force to replace it")
    if marker and path.exists() and not _replaceable(path, marker):
        raise RunExistsError(f"{path} exists and is not a twin run directory (no {marker}); "
                             f"refusing to replace it even with --force")


def _replaceable(path: Path, marker: str) -> bool:
    """An existing path --force may replace: a directory holding `marker` (e.g. a run's
    manifest.json) or an empty directory; never a file or a symlink."""
    return path.is_dir() and not path.is_symlink() and ((path / marker).is_file() or not any(path.iterdir()))


T = TypeVar("T")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path | str, write: Callable[[BinaryIO], T]) -> T:
    """Call write(fh) on a temp file beside `path`, then rename it into place; return its result.

    Readers never see half a file and a failure (or Ctrl-C) leaves nothing behind. The file gets
    an ordinary file's mode (0666 minus the umask), not mkstemp's private 0600.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb", buffering=1 << 20) as fh:
            result = write(fh)
        os.replace(tmp, path)
        return result
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON via a temp file + rename so readers never see half a file."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode()))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
