"""A bounded-memory store for the largest sampled table (one row per GPU per sample).

The sampler appends one sample (one array per column, a value per GPU) at a time; samples are
kept in blocks of `block_samples`, and once the run's table would exceed `spill_rows` rows a
full block is written to a private temporary directory (raw .npy, one file per column) and
dropped from memory. The writes run on one background thread (file writes release the GIL, so
the disk works while the simulation goes on; a 24-hour 160-node day spills ~1.8 GB); at most
MAX_PENDING blocks wait for it, and readers wait for all of them. Readers iterate `blocks()`
(what the Parquet writer streams into row groups) or read one column whole (`column`, for
small runs and tests). The directory is the spool's own and is removed when the spool is
garbage-collected or the interpreter exits.

A *tapped* spool (`tap`) also hands its rows, in order and in pieces, to a consumer on the same
background thread while the simulation runs: `twin run` streams the gpus and nodes tables into
their Parquet files that way, on the core the single-threaded simulation leaves idle. A tapped
spool does not save what it spills (its consumer has the rows), so `blocks()` of a tapped spool
that spilled is refused.
"""
from __future__ import annotations

import mmap
import shutil
import tempfile
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol
from pathlib import Path

import numpy as np

from twin.model.columns import Coded
# tables up to ~200 MB stay in memory (up to the 160-node hall); the memory estimate counts the same
from twin.model.resources import BLOCK_SAMPLES, SPILL_ROWS

MAX_PENDING = 2  # spilled blocks (copies) waiting for the writer: bounds the extra memory to 2 blocks
TAP_ROWS = 1 << 16  # rows per piece a tap gets from a spool that does not spill (views, no copies)

Consumer = Callable[[int, dict[str, np.ndarray]], None]  # (first sample, {column: (samples, width)})


class TableSink(Protocol):
    """Where a streamed table's rows go (twin.telemetry.write.StreamedParquet): `put` takes a dict
    of columns (from the spool's thread), `close` returns the rows written, `abort` drops it."""

    def put(self, cols: Mapping[str, object]) -> None: ...

    def close(self) -> int: ...

    def abort(self) -> None: ...


# mmap's flag for a map whose pages the kernel zeroes and maps at once (Linux; 0 elsewhere)
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def zeroed(shape: tuple[int, ...], dtype) -> np.ndarray:
    """A zero-filled array whose pages are all mapped now, in an anonymous memory map of its own.

    Why not np.full: numpy asks the kernel for transparent huge pages on any buffer of 4 MB or more
    (madvise MADV_HUGEPAGE), and where memory is fragmented - a process's second simulation, once
    the first one's buffers are freed - the kernel compacts memory to find them inside the page
    faults: the surge's two spool buffers (~75 MB) took 0.09-0.17 s that way, 0.01 s when huge pages
    were at hand (a fresh process), and 0.02-0.03 s as an ordinary map populated at once
    (MAP_POPULATE: the kernel zeroes and maps every page in one call; benchmarks/bench_surge.py's
    second run, and sweeps, which simulate many times per worker). The pages are mapped up front
    because rows touch a page of every column: faulting them in one by one as rows arrive cost
    ~20 us a row. Every row is written by the end of the run, so peak memory is the same. The map
    is released with the last array that views it. Without MAP_POPULATE (not Linux): np.full."""
    count = int(np.prod(shape))
    dt = np.dtype(dtype)
    if not _POPULATE:
        return np.full(shape, 0, dt)
    buf = mmap.mmap(-1, max(count * dt.itemsize, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _POPULATE)
    return np.frombuffer(buf, dtype=dt, count=count).reshape(shape)


def _save_block(directory: Path, b: int, block: dict[str, np.ndarray]) -> None:
    for k, a in block.items():
        np.save(directory / f"{b:06d}_{k}.npy", a)


def _spill_job(directory: Path | None, b: int, block: dict[str, np.ndarray], first: int,
             consumer: Consumer | None) -> None:
    """The writer thread's job for one spilled block: saved, or handed to the tap's consumer."""
    if consumer is not None:
        consumer(first, block)
    else:
        _save_block(directory, b, block)


def _remove(writer: ThreadPoolExecutor, directory: Path | None, pending: list[Future]) -> None:
    # no write may land after the directory is gone: wait for the blocks themselves, not only the
    # pool's threads (a Ctrl-C inside Thread.start() leaves a worker the pool has not recorded)
    futures_wait(pending)
    writer.shutdown(wait=True)
    if directory is not None:
        shutil.rmtree(directory, True)


class Behind:
    """Jobs run in order on one background thread, behind the simulation. Their futures are kept
    until waited for, so that a job's error reaches the caller; when `owner` is garbage-collected
    the thread ends after its jobs, and a directory given to `own` is removed after them."""

    def __init__(self, owner: object) -> None:
        self._owner = weakref.ref(owner)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-spool")
        self.pending: list[Future] = []
        weakref.finalize(owner, _remove, self._writer, None, self.pending)

    def submit(self, fn: Callable, *args: object, limit: int | None = None) -> None:
        """Queue fn(*args); with `limit`, first wait until fewer than `limit` jobs are queued."""
        while limit is not None and len(self.pending) >= limit:
            self.pending.pop(0).result()
        self.pending.append(self._writer.submit(fn, *args))

    def wait(self) -> None:
        """Wait for every queued job (the first error is raised here)."""
        while self.pending:
            self.pending.pop(0).result()

    def own(self, directory: Path) -> None:
        weakref.finalize(self._owner(), _remove, self._writer, directory, self.pending)


class SampleList:
    """Per-sample records (the fabric's links samples: tuples) kept in order. A tap hands them on,
    in pieces of `per` records, on a background thread while the simulation runs, as
    SampleSpool.tap does with rows; `drain()` hands over the rest and waits."""

    def __init__(self) -> None:
        self.items: list = []
        self._consumer: Callable[[int, list], None] | None = None
        self._per = self._tapped = 0
        self._behind: Behind | None = None

    def append(self, item: object) -> None:
        self.items.append(item)
        if self._consumer is not None and len(self.items) - self._tapped >= self._per:
            self._hand_over()

    def tap(self, consumer: Callable[[int, list], None], per: int) -> None:
        if self.items or self._consumer is not None:
            raise RuntimeError("tap a sample list once, before its first record")
        self._consumer, self._per, self._behind = consumer, max(1, per), Behind(self)

    def drain(self) -> None:
        if self._consumer is not None and len(self.items) > self._tapped:
            self._hand_over()
        if self._behind is not None:
            self._behind.wait()

    def _hand_over(self) -> None:
        self._behind.submit(self._consumer, self._tapped, self.items[self._tapped:])
        self._tapped = len(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]

    def __iter__(self) -> Iterator:
        return iter(self.items)


class SampleSpool:
    """(samples, width) columns of fixed dtypes, appended one sample row at a time."""

    def __init__(self, dtypes: dict[str, np.dtype], width: int, n_samples: int, track_max: tuple[str, ...] = (),
                 block_samples: int | None = None, spill_rows: int | None = None) -> None:
        self.dtypes, self.width, self.n_samples, self.track_max = dtypes, width, n_samples, track_max
        spill_rows = SPILL_ROWS if spill_rows is None else spill_rows
        block = BLOCK_SAMPLES if block_samples is None else block_samples
        self.block_samples = block if n_samples * width > spill_rows else max(n_samples, 1)
        # columns of one dtype share one (columns, block, width) buffer, so that a compiled sampler
        # writes a whole row of them through one view (`row`); `_buf[name]` is that column's slice
        self.groups: dict[np.dtype, tuple[str, ...]] = {}
        for k, dt in dtypes.items():
            self.groups[np.dtype(dt)] = (*self.groups.get(np.dtype(dt), ()), k)
        self._stacks = {dt: zeroed((len(names), self.block_samples, width), dt) for dt, names in self.groups.items()}
        self._buf = {k: self._stacks[np.dtype(dt)][self.groups[np.dtype(dt)].index(k)]
                     for k, dt in dtypes.items()}  # in the columns' order (the tables' column order)
        self._in_buf = 0
        self._spilled: list[int] = []  # sample count of each block on disk
        self._dir: Path | None = None
        self._behind: Behind | None = None  # the background thread, from the first spill or tap on
        self._consumer: Consumer | None = None
        self._tap_samples = self._tapped = 0  # piece size, and rows of the buffer already handed over
        self.max: dict[str, float] = {}  # running maximum of the track_max columns (for the summary)

    def append(self, **row: np.ndarray) -> None:
        j = self._in_buf
        for k, v in row.items():
            self._buf[k][j] = v
        self.commit()

    def row(self, dtype: np.dtype) -> np.ndarray:
        """(columns of `dtype` in `groups` order, width) view of the next sample row, to fill in place;
        `commit()` then appends it."""
        return self._stacks[np.dtype(dtype)][:, self._in_buf]

    def commit(self) -> None:
        """The next sample row has been written (by `append` or through `row`): keep it."""
        j = self._in_buf
        for k in self.track_max:
            if self.width:
                self.max[k] = max(self.max.get(k, -np.inf), float(self._buf[k][j].max()))
        self._in_buf += 1
        if self._in_buf == self.block_samples and self.spills:
            self._spill()
        elif self._consumer is not None and self._in_buf - self._tapped >= self._tap_samples and not self.spills:
            self._hand_over()

    @property
    def spills(self) -> bool:
        """Whether full blocks leave memory (the table is larger than one block)."""
        return self.block_samples < self.n_samples

    def tap(self, consumer: Consumer) -> None:
        """From now on hand every row to `consumer(first_sample, {column: (samples, width)})`, in
        order, on the spool's background thread: the spilled blocks (copies), or, in a spool that
        keeps everything in memory, read-only views of pieces of about TAP_ROWS rows, whose rows
        are never written again. `drain()` hands over the rest and waits for the consumer."""
        if self.samples or self._consumer is not None:
            raise RuntimeError("tap a spool once, before its first row")
        self._consumer = consumer
        self._tap_samples = max(1, TAP_ROWS // max(self.width, 1))

    def drain(self) -> None:
        """Hand the rows not yet handed to the tap's consumer over, and wait until it has them all
        (its errors are raised here)."""
        if self._consumer is not None and self._in_buf > self._tapped:
            self._hand_over()
        self._flush()

    def _hand_over(self) -> None:
        first, j0, j1 = sum(self._spilled) + self._tapped, self._tapped, self._in_buf
        piece = {k: a[j0:j1] for k, a in self._buf.items()}
        for a in piece.values():
            a.flags.writeable = False  # the consumer's view: the simulation never writes these rows again
        self._thread().submit(self._consumer, first, piece)
        self._tapped = j1

    def _thread(self) -> Behind:
        if self._behind is None:
            self._behind = Behind(self)
        return self._behind

    def _spill(self) -> None:
        behind = self._thread()
        if self._dir is None and self._consumer is None:
            self._dir = Path(tempfile.mkdtemp(prefix="twin-spool-"))
            behind.own(self._dir)
        b, n = len(self._spilled), self._in_buf
        # the buffer is refilled at once: the writer gets a copy of the block; at most MAX_PENDING
        # copies wait for it (the disk, or the tap's consumer, is behind)
        block = {k: a[:n].copy() for k, a in self._buf.items()}
        behind.submit(_spill_job, self._dir, b, block, sum(self._spilled), self._consumer, limit=MAX_PENDING)
        self._spilled.append(n)
        self._in_buf = 0

    def _flush(self) -> None:
        """Wait until every spilled block is on disk (a write error is raised here)."""
        if self._behind is not None:
            self._behind.wait()

    @property
    def samples(self) -> int:
        return sum(self._spilled) + self._in_buf

    def blocks(self) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """(first sample index, {column: (samples_in_block, width)}) in order."""
        if self._consumer is not None and self._spilled:
            raise RuntimeError("this spool's spilled rows went to its tap's consumer (a streamed table): "
                               "read them from what it wrote")
        self._flush()
        first = 0
        for b, n in enumerate(self._spilled):
            yield first, {k: np.load(self._dir / f"{b:06d}_{k}.npy") for k in self.dtypes}
            first += n
        if self._in_buf:
            yield first, {k: a[:self._in_buf] for k, a in self._buf.items()}

    def column(self, name: str) -> np.ndarray:
        """One column of the whole table, (samples, width)."""
        parts = [blk[name] for _, blk in self.blocks()]
        return np.concatenate(parts) if parts else np.zeros((0, self.width), self.dtypes[name])


class BlockTable(Mapping):
    """A table handed over in blocks of rows without materialising it: `blocks()` yields column
    dicts in row order (what the Parquet writer streams into row groups); `table[name]` gives
    one whole column (small runs, tests)."""

    def __init__(self, names: tuple[str, ...], blocks: Callable[[], Iterator[dict]],
                 spool: SampleSpool | SampleList | None = None, sink: TableSink | None = None) -> None:
        self.names, self._blocks, self.spool, self.sink = names, blocks, spool, sink

    def blocks(self) -> Iterator[dict]:
        return self._blocks()

    def finish_stream(self) -> int:
        """A streamed table (its spool tapped into `sink` during the simulation): hand over the
        last rows, wait for them, close the sink; the rows it holds."""
        if self.sink is None or self.spool is None:
            raise RuntimeError("not a streamed table")
        self.spool.drain()
        return self.sink.close()

    def __getitem__(self, name: str) -> np.ndarray | list:
        if name not in self.names:
            raise KeyError(name)
        parts = [b[name] for b in self.blocks()]
        if parts and isinstance(parts[0], Coded):
            return [x for p in parts for x in p.tolist()]
        if parts and isinstance(parts[0], list):
            return [x for p in parts for x in p]
        return np.concatenate(parts) if parts else np.zeros(0)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)
