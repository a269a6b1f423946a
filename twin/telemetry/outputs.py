"""What twin may replace: the one ownership check for every output it writes (docs/safety.md).

Directories (a run, its stage/, a sweep) carry a marker file, ``.twin``, that only this tool
writes: the kind of output, a format version and the list of files twin put there. ``--force``
may replace a directory only when

* it is empty (nothing to lose), or
* its marker names the same kind, and every file in it is one the marker lists (or lies in a
  subdirectory with a marker of its own, checked the same way).

Anything else — a folder holding a thesis, a browser extension with a ``manifest.json``, a run
written before the marker existed, a run someone put notes.txt into — is refused with a reason.

Single files carry twin's signature where the format has room for one (PNG: a ``Software`` text
chunk; SVG and PDF: the Creator; HTML: a ``generator`` meta tag; Parquet: a ``twin`` footer key). CSV, JSON and
OpenMetrics text have no such room: there ``--force`` replaces a file only when it begins with
the same header the new output begins with (the CSV header row, the first JSON key, the first
``# TYPE`` line), so re-running a query replaces its last result but never ``notes.csv``.
"""
from __future__ import annotations

import json
import os
import re
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

MARKER = ".twin"
"""File name of the ownership marker inside every directory twin writes."""
MARKER_FORMAT = 1
"""Version of the marker layout; a marker of another version is not trusted for --force."""
MAX_MARKER_BYTES = 4_000_000
SIGNATURE = "twin"
"""What twin writes into the outputs' own metadata (PNG Software, HTML generator, Parquet key)."""
HTML_GENERATOR_TAG = f'<meta name="generator" content="{SIGNATURE}">'
PARQUET_KEY = SIGNATURE.encode()
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_HEAD_BYTES = 8192  # how much of an existing file a signature check reads
# what a run, sweep or stage directory from before the marker holds (for the refusal's wording only)
_WRITTEN_BY_OLDER_TWIN = ("manifest.json", "sweep.json", "refinery.usda")
# names of twin's own locks and temporaries (twin.telemetry.atomic), e.g. left by a killed writer
_TEMPORARY = re.compile(r"^(\.twin-lock\..+|\..+\.(\d+\.[0-9a-f]+\.(tmp|old)|[a-z0-9_]{8}\.tmp))$")


@dataclass(frozen=True)
class Marker:
    kind: str                 # "run", "stage", "sweep"
    files: frozenset[str]     # paths relative to the directory, "/"-separated


def write_marker(directory: Path, kind: str) -> Marker:
    """List every regular file under `directory` (subtrees with their own marker excluded) and
    write the marker. Call it last, when the directory's contents are complete."""
    directory = Path(directory)
    files = sorted(_own_files(directory))
    payload = {"twin": MARKER_FORMAT, "kind": kind, "files": files}
    (directory / MARKER).write_text(json.dumps(payload, indent=1) + "\n")
    return Marker(kind, frozenset(files))


def _own_files(directory: Path, prefix: str = "") -> list[str]:
    out = []
    with os.scandir(directory) as it:
        for entry in it:
            rel = f"{prefix}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                if not (Path(entry.path) / MARKER).is_file():
                    out += _own_files(Path(entry.path), rel + "/")
            elif entry.name != MARKER or prefix:
                out.append(rel)
    return out


def read_marker(directory: Path) -> Marker | None:
    """The marker of `directory`, or None when it has none (or a damaged or foreign one)."""
    path = Path(directory) / MARKER
    try:
        st = os.stat(path, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MARKER_BYTES:
            return None
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not (isinstance(doc, dict) and doc.get("twin") == MARKER_FORMAT and isinstance(doc.get("kind"), str)
            and isinstance(doc.get("files"), list) and all(isinstance(f, str) for f in doc["files"])):
        return None
    return Marker(doc["kind"], frozenset(doc["files"]))


def replace_problem(path: Path, kind: str) -> str | None:
    """Why --force may not replace the existing `path` with a `kind` directory; None if it may."""
    path = Path(path)
    if path.is_symlink():
        return f"{path} is a symbolic link, not a twin {kind} directory; refusing to replace it even with --force"
    if not path.is_dir():
        return f"{path} exists and is not a twin {kind} directory (not a directory); refusing to replace it even with --force"
    if not any(path.iterdir()):
        return None
    marker = read_marker(path)
    if marker is None:
        if any((path / name).is_file() for name in _WRITTEN_BY_OLDER_TWIN):
            return (f"{path} was not written by this version of twin (no {MARKER} marker); refusing to "
                    f"replace it even with --force: delete it yourself or choose another -o")
        return f"{path} exists and is not a twin {kind} directory; refusing to replace it even with --force"
    if marker.kind != kind:
        return f"{path} is a twin {marker.kind} directory, not a {kind}; refusing to replace it"
    foreign = _foreign_entry(path, marker)
    if foreign:
        return (f"{path} holds {foreign}, which twin did not write; refusing to replace it even with "
                f"--force (move that out first)")
    return None


def _foreign_entry(directory: Path, marker: Marker, prefix: str = "") -> str | None:
    """The first entry under `directory` its marker does not account for, or None."""
    with os.scandir(directory) as it:
        for entry in sorted(it, key=lambda e: e.name):
            rel = f"{prefix}{entry.name}"
            if _TEMPORARY.match(entry.name):
                continue  # twin's own lock or temporary, e.g. left by a killed writer
            if entry.is_dir(follow_symlinks=False):
                own = read_marker(Path(entry.path))
                found = (_foreign_entry(Path(entry.path), own) if own is not None
                         else _foreign_entry(Path(entry.path), marker, rel + "/"))
                if found:
                    return found if own is None else f"{rel}/{found}"
            elif not entry.is_file(follow_symlinks=False):
                return rel  # a symlink, FIFO, socket or device: twin writes none of these
            elif rel not in marker.files and not (rel == MARKER and not prefix) and not _signed(Path(entry.path)):
                return rel
    return None


def _signed(path: Path) -> bool:
    """A file carrying twin's own signature (a plot, render, report or query Parquet saved into the
    directory later) is twin's too. CSV/JSON/OpenMetrics have no signature: they stay the user's."""
    fmt = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".html": "html", ".htm": "html",
           ".parquet": "parquet"}.get(path.suffix.lower())
    return fmt is not None and SIGNATURES[fmt](path, None)


def is_twin_dir(path: Path, kind: str) -> bool:
    """True when `path` is a directory twin wrote as a `kind` (its marker says so)."""
    marker = read_marker(path) if Path(path).is_dir() and not Path(path).is_symlink() else None
    return marker is not None and marker.kind == kind


# ---------------------------------------------------------------------------- single files

def file_problem(path: Path, fmt: str, new: Path | None = None) -> str | None:
    """Why --force may not replace the existing file `path` with a `fmt` output; None if it may.

    `new` is the freshly written replacement (needed for the text formats, whose signature is
    their header); without it a text file's header is not compared yet.
    """
    path = Path(path)
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symbolic link; refusing to replace it even with --force"
    if not stat.S_ISREG(st.st_mode):
        what = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        return f"{path} is {what}; refusing to replace it even with --force"
    check = SIGNATURES.get(fmt)
    if check is None:
        return f"{path} exists; twin cannot tell whether it wrote it (format {fmt!r}), so it is not replaced"
    ours = check(path, new)
    if ours:
        return None
    return (f"{path} exists and is not a {fmt} file twin wrote (no twin signature, or another header); "
            f"refusing to replace it even with --force")


def _head(path: Path, n: int = _HEAD_BYTES) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def png_signature(data: bytes) -> str | None:
    """The Software tEXt value of a PNG (read up to its image data), or None."""
    if not data.startswith(_PNG_MAGIC):
        return None
    pos = len(_PNG_MAGIC)
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        if ctype in (b"IDAT", b"IEND"):
            return None
        body = data[pos + 8:pos + 8 + length]
        if ctype == b"tEXt" and b"\x00" in body:
            key, _, value = body.partition(b"\x00")
            if key == b"Software":
                return value.decode("latin-1")
        pos += 12 + length
    return None


def tag_png(data: bytes, software: str = SIGNATURE) -> bytes:
    """`data` (a PNG) with a ``Software`` tEXt chunk right after IHDR (PNG spec 11.3.4.3)."""
    if not data.startswith(_PNG_MAGIC):
        raise ValueError("not a PNG")
    ihdr_end = len(_PNG_MAGIC) + 12 + struct.unpack(">I", data[8:12])[0]
    body = b"tEXt" + b"Software\x00" + software.encode("latin-1")
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return data[:ihdr_end] + chunk + data[ihdr_end:]


def _png_ours(path: Path, new: Path | None) -> bool:
    sw = png_signature(_head(path, 1 << 16))
    return sw is not None and sw.split(" ")[0] == SIGNATURE


def _svg_ours(path: Path, new: Path | None) -> bool:
    return f"<dc:title>{SIGNATURE}".encode() in _head(path, 1 << 16)  # matplotlib's Creator


def _pdf_ours(path: Path, new: Path | None) -> bool:
    try:  # matplotlib writes the Info dictionary (Creator) near the end
        with open(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - (1 << 16)))
            tail = fh.read()
    except OSError:
        return False
    return f"/Creator ({SIGNATURE}".encode() in tail


def _html_ours(path: Path, new: Path | None) -> bool:
    return HTML_GENERATOR_TAG.encode() in _head(path)


def _parquet_ours(path: Path, new: Path | None) -> bool:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # not Parquet (or damaged): not ours  # noqa: BLE001
        return False
    return PARQUET_KEY in meta


def text_header(fmt: str, head: bytes) -> bytes:
    """The header that identifies a text output: the first line (CSV, OpenMetrics) or, for JSON,
    everything up to the first key's colon (the whole text when it has no key, e.g. ``[]``)."""
    if fmt == "json":
        cut = head.find(b'":')
        return head[:cut + 2] if cut >= 0 else head
    line, nl, _ = head.partition(b"\n")
    return line + nl


def _same_header(fmt: str) -> Callable[[Path, Path | None], bool]:
    def check(path: Path, new: Path | None) -> bool:
        if new is None:
            return True  # compared again, against the new header, before the rename
        want = text_header(fmt, _head(new))
        return bool(want.strip()) and _head(path, len(want)) == want
    return check


SIGNATURES: dict[str, Callable[[Path, Path | None], bool]] = {
    "png": _png_ours, "svg": _svg_ours, "pdf": _pdf_ours, "html": _html_ours, "parquet": _parquet_ours,
    "csv": _same_header("csv"), "json": _same_header("json"), "openmetrics": _same_header("openmetrics"),
    "prometheus": _same_header("prometheus"),
    # YAML twin writes (calibrate's catalogue overlay) opens with a "# twin ..." comment
    "yaml": lambda path, new: _head(path, len(SIGNATURE) + 3) == f"# {SIGNATURE} ".encode(),
}
"""Output format -> "did twin write this existing file?" (existing path, new file or None)."""

