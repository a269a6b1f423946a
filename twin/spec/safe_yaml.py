"""Reading and loading user files (scenarios, catalogue files, sweep specs) without surprises.

:func:`read_input` looks before it reads: a device (``/dev/zero``), a FIFO (which would block
forever), a directory or a file over the size limit is refused from its metadata, and a regular
file is read only up to the limit.

``yaml.safe_load`` already refuses to build arbitrary objects; :func:`load_yaml` adds what it
lets through: alias bombs (a 1 MB file whose anchors expand to 10^9 values, or 1,000 aliases of
a 400 kB mapping: few values, many bytes, so both are bounded), duplicate keys (where the last
silently wins), nesting deep enough to overflow the parser's recursion, and one-line error
messages with the line and column. Every problem is raised as a SpecError.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from twin.errors import SpecError

MAX_YAML_VALUES = 200_000  # values after alias expansion; the shipped scenarios have a few hundred
EXPANSION_FACTOR = 4  # aliases may make a document at most this many times its file size (bytes)
_NODE_BYTES = 8  # per value on top of its text: what a ", " or "- " costs when written out


def read_input(path: Path | str, max_bytes: int, what: str = "file") -> str:
    """The UTF-8 text of the regular file `path`, read only if its metadata allow it.

    Raises SpecError (one line naming `path`) for a missing file, a directory, a device, FIFO or
    socket, a file larger than `max_bytes`, or bytes that are not UTF-8.
    """
    path = Path(path)
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer; reads of regular files ignore it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SpecError([f"{path}: no such {what}"]) from None
    except OSError as exc:
        raise SpecError([f"{path}: cannot read ({exc.strerror or exc})"]) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise SpecError([f"{path}: is a directory, not a {what}"])
        if not stat.S_ISREG(st.st_mode):
            raise SpecError([f"{path}: not a regular file (a device, FIFO or socket); give a {what}"])
        if st.st_size > max_bytes:
            raise SpecError([f"{path}: larger than {max_bytes // 1000:,} kB ({st.st_size:,} bytes); refusing to read it"])
        chunks, size = [], 0
        while size <= max_bytes:  # bounded even if the file grows while we read
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise SpecError([f"{path}: cannot read ({exc.strerror or exc})"]) from None
    finally:
        os.close(fd)
    if size > max_bytes:
        raise SpecError([f"{path}: larger than {max_bytes // 1000:,} kB; refusing to read it"])
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None


# libyaml's parser is ~10x faster than PyYAML's, but its composer recurses in C: 200,000 nested
# "[" overflow the C stack and kill the process (SIGSEGV) where PyYAML raises RecursionError. It is
# used only for files the package ships (trusted=True), never for what a user hands us.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


def load_yaml(text: str, origin: str, max_bytes: int, trusted: bool = False) -> Any:
    """Parse `text` (from `origin`, for messages) with safe_load after the checks above.

    `trusted`: the text is one of the package's own data files, which may be parsed with libyaml
    (same values, ~10x faster; see _FAST_LOADER) when it is installed.
    """
    loader = _FAST_LOADER if trusted and _FAST_LOADER is not None else yaml.SafeLoader
    try:
        size = len(text.encode())
    except UnicodeEncodeError as exc:  # a lone surrogate (e.g. from a --set value or a Python caller)
        raise SpecError([f"{origin}: not valid Unicode text ({exc.reason} at character {exc.start})"]) from None
    if size > max_bytes:
        raise SpecError([f"{origin}: larger than {max_bytes // 1000} kB; refusing to parse"])
    try:
        problems = _shape_problems(yaml.compose(text, Loader=loader), origin,
                                   EXPANSION_FACTOR * max(size, 64_000))
        if problems:
            raise SpecError(problems)
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError([f"{origin}: malformed YAML{where}: {problem}"]) from None
    except RecursionError:
        raise SpecError([f"{origin}: YAML nested too deeply"]) from None


def _shape_problems(root: yaml.Node | None, origin: str, max_expanded_bytes: int) -> list[str]:
    """Problems safe_load would hide: duplicate keys (the last silently wins) and alias bombs.

    Walks the composed node graph once per distinct node (aliases share nodes), counting the
    values and the bytes (scalar text plus a small per-value overhead) the document expands to.
    """
    problems: list[str] = []
    size: dict[int, tuple[int, int]] = {}

    def walk(node: yaml.Node) -> tuple[int, int]:
        if id(node) in size:
            return size[id(node)]
        size[id(node)] = (1, _NODE_BYTES)  # a self-referencing alias counts once (pydantic rejects the cycle later)
        n, b = 1, _NODE_BYTES
        if isinstance(node, yaml.ScalarNode):
            b += len(node.value)
        elif isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value in seen:
                    problems.append(f"{origin}: duplicate key {k.value!r} at line {k.start_mark.line + 1}")
                seen.add(k.value if isinstance(k, yaml.ScalarNode) else "")
                (nk, bk), (nv, bv) = walk(k), walk(v)
                n, b = n + nk + nv, b + bk + bv
        elif isinstance(node, yaml.SequenceNode):
            for v in node.value:
                nv, bv = walk(v)
                n, b = n + nv, b + bv
        size[id(node)] = (n, b)
        return n, b

    if root is not None:
        values, expanded = walk(root)
        if values > MAX_YAML_VALUES:
            problems.append(f"{origin}: anchors and aliases expand to more than {MAX_YAML_VALUES:,} values; "
                            f"refusing to load")
        elif expanded > max_expanded_bytes:
            problems.append(f"{origin}: anchors and aliases expand to {expanded / 1e6:,.1f} MB, more than "
                            f"{EXPANSION_FACTOR}x the file; refusing to load")
    return problems
