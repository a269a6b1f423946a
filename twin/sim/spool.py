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
"""
from __future__ import annotations

import shutil
import tempfile
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

from twin.model.columns import Coded
# tables up to ~200 MB stay in memory (up to the 160-node hall); the memory estimate counts the same
from twin.model.resources import BLOCK_SAMPLES, SPILL_ROWS

MAX_PENDING = 2  # spilled blocks (copies) waiting for the writer: bounds the extra memory to 2 blocks


def _save_block(directory: Path, b: int, block: dict[str, np.ndarray]) -> None:
    for k, a in block.items():
        np.save(directory / f"{b:06d}_{k}.npy", a)


def _remove(writer: ThreadPoolExecutor, directory: Path, pending: list[Future]) -> None:
    # no write may land after the directory is gone: wait for the blocks themselves, not only the
    # pool's threads (a Ctrl-C inside Thread.start() leaves a worker the pool has not recorded)
    futures_wait(pending)
    writer.shutdown(wait=True)
    shutil.rmtree(directory, True)


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
        # np.full writes every page now: np.zeros' calloc maps pages lazily, and faulting them in one
        # by one as rows arrive (each row touches a page of every column) cost ~20 us per row here,
        # ~6x the bulk write; every row is written by the end of the run, so peak memory is the same
        self._stacks = {dt: np.full((len(names), self.block_samples, width), 0, dt)
                        for dt, names in self.groups.items()}
        self._buf = {k: self._stacks[np.dtype(dt)][self.groups[np.dtype(dt)].index(k)]
                     for k, dt in dtypes.items()}  # in the columns' order (the tables' column order)
        self._in_buf = 0
        self._spilled: list[int] = []  # sample count of each block on disk
        self._dir: Path | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
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
        if self._in_buf == self.block_samples and self.block_samples < self.n_samples:
            self._spill()

    def _spill(self) -> None:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="twin-spool-"))
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-spool")
            weakref.finalize(self, _remove, self._writer, self._dir, self._pending)
        while len(self._pending) >= MAX_PENDING:  # the disk is behind: wait for the oldest block
            self._pending.pop(0).result()
        b, n = len(self._spilled), self._in_buf
        # the buffer is refilled at once: the writer gets a copy of the block
        block = {k: a[:n].copy() for k, a in self._buf.items()}
        self._pending.append(self._writer.submit(_save_block, self._dir, b, block))
        self._spilled.append(n)
        self._in_buf = 0

    def _flush(self) -> None:
        """Wait until every spilled block is on disk (a write error is raised here)."""
        while self._pending:
            self._pending.pop(0).result()

    @property
    def samples(self) -> int:
        return sum(self._spilled) + self._in_buf

    def blocks(self) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """(first sample index, {column: (samples_in_block, width)}) in order."""
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
                 spool: SampleSpool | None = None) -> None:
        self.names, self._blocks, self.spool = names, blocks, spool

    def blocks(self) -> Iterator[dict]:
        return self._blocks()

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
