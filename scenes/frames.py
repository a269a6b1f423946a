"""Read a run's telemetry into dense per-frame arrays for the stage (no pxr here).

Two time mappings (both stated in the stage's customLayerData, see scenes/stage.py):

* **compressed** (default): one stage frame every ``stage_sample_s`` simulated seconds (5 s), on
  telemetry sample times: every ``step = round(stage_sample_s / sample_s)``-th sample plus the
  last, so the one-hour surge is 720 frames (30 s at 24 fps, 120x real time).
* **real time** (``realtime=True``): 24 frames per simulated second over a window of the run, so a
  stage second is a simulated second (velocities in m/s play back at their true speed). Each
  frame shows the telemetry sample whose interval ``(t - sample_s, t]`` contains the frame time.

A frame takes instantaneous columns (temperatures, state, fan rpm, airflow) from its telemetry
row, and interval-mean columns (power, utilisation, P2P and link traffic) averaged over the
samples since the previous frame, so a burst between frames is diluted, not lost.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from twin.telemetry.schema import NODE_STATES
from twin.errors import ToolError
from twin.telemetry.read import Run, read_manifest

DEFAULT_STAGE_SAMPLE_S = 5.0
FRAMES_PER_SECOND = 24.0


@dataclass(frozen=True)
class Topology:
    """Static per-node layout from topology.parquet (arrays indexed by node_id)."""
    node_id: np.ndarray
    rack_id: np.ndarray
    row: list[str]
    rack_name: list[str]
    slot: np.ndarray
    u_position: np.ndarray
    height_u: np.ndarray
    xyz: np.ndarray          # (N, 3) node centre, metres
    rack_xy: np.ndarray      # (N, 2) rack footprint centre, metres
    facing: list[str]        # "+y" | "-y"
    gpus: np.ndarray
    node_type: list[str]

    @property
    def n_nodes(self) -> int:
        return int(self.node_id.size)


@dataclass(frozen=True)
class Links:
    """Fabric links (static endpoints) and their per-frame traffic."""
    link_id: np.ndarray      # (L,)
    src: list[str]
    dst: list[str]
    kind: list[str]
    util: np.ndarray         # (F, L) mean utilisation 0..1 over each frame window
    bytes_per_s: np.ndarray  # (F, L) mean bytes per second over each frame window, both directions


@dataclass(frozen=True)
class StageFrames:
    """Everything the stage animates, sampled at stage frames. Times are simulation seconds."""
    manifest: dict
    topology: Topology
    sample_s: float                  # the nodes table's interval (the stage timeline), s
    seconds_per_frame: float         # simulated seconds per stage frame (= per time code)
    realtime: bool
    window_s: tuple[float, float]    # simulated seconds covered (first frame time, last frame time)
    times: np.ndarray                # (F,) frame times, s
    frame_rows: np.ndarray           # (F,) telemetry sample index of each frame
    state: np.ndarray                # (F, N) index into NODE_STATES
    gpu_temp_max_c: np.ndarray       # (F, N) °C
    gpu_temp_c: np.ndarray | None    # (F, N, G) °C per GPU (G = max GPUs per node; NaN padding); None
                                     # when read without the gpus table (load_frames(gpus=False))
    power_w: np.ndarray              # (F, N) wall power, mean over the frame window, W
    gpu_util: np.ndarray | None      # (F, N) mean GPU busy fraction, window mean; None as gpu_temp_c
    p2p_gb_s: np.ndarray             # (F, N) intra-node GPU<->GPU traffic, window mean, GB/s
    fan_rpm: np.ndarray              # (F, N) chassis fan speed at the frame, rpm
    inlet_c: np.ndarray              # (F, N) °C
    exhaust_c: np.ndarray            # (F, N) °C
    airflow_m3_s: np.ndarray         # (F, N) volume flow through the node, m³/s
    links: Links | None

    @property
    def stage_sample_s(self) -> float:
        return self.seconds_per_frame

    @property
    def duration_s(self) -> float:
        return float(self.times[-1]) if self.times.size else 0.0

    @property
    def timecodes(self) -> np.ndarray:
        """USD time code of each frame: simulated seconds / seconds per frame."""
        return self.times / self.seconds_per_frame


def _read(run_dir: Path, name: str, columns: list[str] | None = None, n_rows: int | None = None) -> pa.Table:
    """Columns of run table `name` (all rows, or the first `n_rows`).

    The path comes from the run reader (twin.telemetry.read.Run.table_path: inside the run, a
    regular file, pinned column types; docs/safety.md); the file is read with pq.ParquetFile,
    not pq.read_table, because read_table goes through pyarrow.dataset, whose first import costs
    0.3-0.5 s, a third of a surge's whole stage. With n_rows the file is decoded batch by batch
    up to that row: the links' endpoint strings are static, and decoding all 691,200 rows x 3
    strings of the surge took more time than the rest of the links table."""
    path = Run(Path(run_dir), {}).table_path(name)
    shown = Path(run_dir) / "telemetry" / f"{name}.parquet"
    try:
        with pq.ParquetFile(path) as f:
            schema = f.schema_arrow
            missing = [c for c in columns or [] if c not in schema.names]
            if missing:  # ParquetFile.read would silently leave them out
                raise ToolError(f"{shown}: no column {missing[0]}")
            if n_rows is None:
                return f.read(columns=columns)
            batches, got = [], 0
            for b in f.iter_batches(batch_size=max(1, min(n_rows, 1 << 16)), columns=columns):
                batches.append(b)
                got += b.num_rows
                if got >= n_rows:
                    break
            want = pa.schema([schema.field(c) for c in columns]) if columns else schema
            return pa.Table.from_batches(batches, schema=want).slice(0, n_rows)
    except (pa.ArrowException, OSError) as exc:
        raise ToolError(f"{shown}: {str(exc).splitlines()[0]}") from None


def _ids(table: pa.Table, col: str, n: int, what: str) -> np.ndarray:
    """Column `col` as int64 ids, each in [0, n): a crafted table must fail with its name, not index past an array."""
    ids = _np(table, col, np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise ValueError(f"{what}: column {col} must lie in 0..{n - 1} (the topology's), found {ids.min()}..{ids.max()}")
    return ids


_NUMPY_OF = {pa.int32(): np.int32, pa.int64(): np.int64, pa.float32(): np.float32, pa.float64(): np.float64}


def _chunk(ch: pa.Array, kind) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, validity or None) of one primitive Arrow array, read from its buffers."""
    if not len(ch):
        return np.zeros(0, dtype=kind), None
    validity, data = ch.buffers()[:2]
    values = np.frombuffer(data, dtype=kind, count=ch.offset + len(ch))[ch.offset:]
    if not ch.null_count:
        return values, None
    bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
    return values, bits[ch.offset:ch.offset + len(ch)].astype(bool)


def _np(table: pa.Table, col: str, dtype=None) -> np.ndarray:
    """Column `col` as numpy, the values of ChunkedArray.to_numpy() (nulls as NaN, so an int
    column with nulls becomes float64), read from the Arrow buffers for the numeric types:
    pyarrow's to_numpy and pa.array import pandas on first use, 0.26 s of a stage otherwise."""
    column = table.column(col)
    kind = _NUMPY_OF.get(column.type)
    if kind is None:
        arr = column.to_numpy()
    else:
        parts = []
        for ch in column.chunks:
            values, valid = _chunk(ch, kind)
            parts.append(values if valid is None else np.where(valid, values, np.nan))
        arr = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, dtype=kind)
    return arr.astype(dtype, copy=False) if dtype is not None else arr


def _state_index(column: pa.ChunkedArray) -> np.ndarray:
    """Index of each row's state in NODE_STATES, 0 for a null or unknown name (what
    pc.index_in(column, NODE_STATES).fill_null(0) gives, without building a pa.array)."""
    enc = column.combine_chunks().dictionary_encode()
    names = enc.dictionary.to_pylist()
    lut = np.array([NODE_STATES.index(v) if v in NODE_STATES else 0 for v in names] + [0], dtype=np.int32)
    codes, valid = _chunk(enc.indices, np.int32)
    return lut[codes if valid is None else np.where(valid, codes, len(names))]


def read_topology(run_dir: Path) -> Topology:
    t = _read(run_dir, "topology").sort_by("node_id")
    return Topology(
        node_id=_np(t, "node_id", np.int64), rack_id=_np(t, "rack_id", np.int64),
        row=t.column("row").to_pylist(), rack_name=t.column("rack_name").to_pylist(),
        slot=_np(t, "slot", np.int64), u_position=_np(t, "u_position", np.int64),
        height_u=_np(t, "height_u", np.int64),
        xyz=np.stack([_np(t, "x_m"), _np(t, "y_m"), _np(t, "z_m")], axis=1).astype(np.float64),
        rack_xy=np.stack([_np(t, "rack_x_m"), _np(t, "rack_y_m")], axis=1).astype(np.float64),
        facing=t.column("facing").to_pylist(), gpus=_np(t, "gpus", np.int64),
        node_type=t.column("node_type").to_pylist(),
    )


def frame_rows(n_samples: int, sample_s: float, stage_sample_s: float) -> np.ndarray:
    """Telemetry sample indices that become stage frames (every `step`-th, plus the last)."""
    if n_samples == 0:
        return np.zeros(0, dtype=np.int64)
    step = max(1, int(round(stage_sample_s / sample_s)))
    rows = np.arange(step - 1, n_samples, step)
    if rows.size == 0 or rows[-1] != n_samples - 1:
        rows = np.append(rows, n_samples - 1)
    return rows.astype(np.int64)


def window_mean(values: np.ndarray, rows: np.ndarray, starts: np.ndarray | None = None) -> np.ndarray:
    """Mean of values[(start, row]] along axis 0 per frame; start defaults to the previous row
    (first window from the first sample); a start >= row means the row alone."""
    csum = np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(values, axis=0, dtype=np.float64)])
    if starts is None:
        starts = np.concatenate([[-1], rows[:-1]])
    starts = np.minimum(starts, rows - 1)
    return (csum[rows + 1] - csum[starts + 1]) / (rows - starts).reshape(-1, *[1] * (values.ndim - 1))


def unique_times(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct times ascending, index of each row's time in them): ``np.unique(times,
    return_inverse=True)``, in one linear pass when the rows are already in time order (as twin
    writes them; a sort of the 1.7 M GPU rows is most of a stage's read time otherwise)."""
    t = np.asarray(times, dtype=np.float64)
    if t.size and bool(np.all(t[1:] >= t[:-1])):           # NaN compares False: takes the sort path
        new = np.empty(t.size, dtype=bool)
        new[0] = True
        np.not_equal(t[1:], t[:-1], out=new[1:])
        return t[new], np.cumsum(new) - 1
    uniq, inverse = np.unique(t, return_inverse=True)
    return uniq, inverse.ravel()


def _dense(ti: np.ndarray, ids: np.ndarray, values: np.ndarray, n_t: int, n_ids: int,
           fill=np.nan) -> np.ndarray:
    """Scatter long-format rows (time index, id, value) into a dense (n_t, n_ids) array."""
    out = np.full((n_t, n_ids), fill, dtype=np.result_type(values.dtype, type(fill)))
    out[ti, ids] = values
    return out


def _select(t_all: np.ndarray, sample_s: float, stage_sample_s: float | None,
            window: tuple[float, float] | None, realtime: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(frame times, frame rows, window starts, seconds per frame) for the chosen time mapping."""
    if realtime:
        t0, t1 = window if window else (float(t_all[0]), float(t_all[-1]))
        dt = 1.0 / FRAMES_PER_SECOND
        times = t0 + np.arange(int(math.floor((t1 - t0) / dt + 1e-9)) + 1) * dt
        rows = np.clip(np.searchsorted(t_all, times - 1e-9), 0, t_all.size - 1)
        return times, rows, rows - 1, dt
    dt = float(stage_sample_s) if stage_sample_s else max(DEFAULT_STAGE_SAMPLE_S, sample_s)
    rows = frame_rows(t_all.size, sample_s, dt)
    if window:
        keep = (t_all[rows] >= window[0] - 1e-9) & (t_all[rows] <= window[1] + 1e-9)
        rows = rows[keep]
    step = max(1, int(round(dt / sample_s)))
    starts = np.concatenate([[max(int(rows[0]) - step, -1)], rows[:-1]]) if rows.size else rows
    return t_all[rows], rows, starts, dt


def load_frames(run_dir: Path, stage_sample_s: float | None = None,
                window: tuple[float, float] | None = None, realtime: bool = False,
                gpus: bool = True) -> StageFrames:
    """Read manifest + topology + nodes + gpus (+ links) and sample them at stage frames.

    window: (start_s, end_s) of simulated time to keep; realtime: 24 frames per simulated second.
    gpus=False skips the gpus table (the largest): gpu_temp_c and gpu_util are then None (the
    stage's look does not need them when its data layer is written elsewhere).
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    topo = read_topology(run_dir)
    n = topo.n_nodes
    nodes = _read(run_dir, "nodes", ["time_s", "node_id", "state", "power_w", "fan_rpm", "inlet_c", "exhaust_c",
                                     "airflow_m3_s", "gpu_temp_max_c", "p2p_gb_s"])
    t_all, nti = unique_times(_np(nodes, "time_s", np.float64))
    if t_all.size == 0:
        raise ValueError(f"{run_dir}: the nodes table has no samples")
    sampling = manifest.get("sampling") or {}  # tables with their own interval (simulation.telemetry)
    sample_s = float(sampling.get("nodes", {}).get("sample_s") or manifest.get("simulation", {}).get("sample_s")
                     or (np.diff(t_all).min() if t_all.size > 1 else 1.0))
    if stage_sample_s is not None and not (math.isfinite(stage_sample_s) and stage_sample_s > 0):
        raise ValueError(f"stage_sample_s must be a positive number of seconds, got {stage_sample_s!r}")
    where = f"{run_dir}/telemetry/topology.parquet"
    if not np.array_equal(topo.node_id, np.arange(n)):
        raise ValueError(f"{where}: node_id must be 0..{n - 1}, one row each")
    racks = set(zip(topo.rack_id.tolist(), topo.rack_name))
    if len({(r, s) for r, s in zip(topo.rack_id.tolist(), topo.slot.tolist())}) != n or \
            len(racks) != len({r for r, _ in racks}) or len(racks) != len({name for _, name in racks}):
        raise ValueError(f"{where}: each node needs its own (rack_id, slot) and each rack one name (prim paths)")
    if window is not None:
        w0, w1 = window
        if not (math.isfinite(w0) and math.isfinite(w1) and w1 > w0):
            raise ValueError(f"--window: need START < END in simulated seconds, got {w0:g}:{w1:g}")
        if w1 < t_all[0] or w0 > t_all[-1]:
            raise ValueError(f"--window {w0:g}:{w1:g}: outside the run's samples {t_all[0]:g}..{t_all[-1]:g} s")
        window = (max(w0, float(t_all[0])), min(w1, float(t_all[-1])))
    times, rows, starts, spf = _select(t_all, sample_s, stage_sample_s, window, realtime)
    if rows.size == 0:
        raise ValueError(f"--window: no stage frame falls inside {window[0]:g}..{window[1]:g} s")
    nid = _ids(nodes, "node_id", n, f"{run_dir}/telemetry/nodes.parquet")

    def dense(col: str) -> np.ndarray:
        return _dense(nti, nid, _np(nodes, col, np.float64), t_all.size, n)

    def mean(values: np.ndarray) -> np.ndarray:
        return window_mean(np.nan_to_num(values), rows, starts).astype(np.float32)

    state = _dense(nti, nid, _state_index(nodes.column("state")), t_all.size, n, fill=0).astype(np.int32)
    gt, util = _gpu_frames(run_dir, t_all, rows, n, int(topo.gpus.max()) if n else 0) if gpus else (None, None)
    return StageFrames(
        manifest=manifest, topology=topo, sample_s=sample_s, seconds_per_frame=spf, realtime=realtime,
        window_s=(float(times[0]), float(times[-1])), times=times, frame_rows=rows, state=state[rows],
        gpu_temp_max_c=dense("gpu_temp_max_c")[rows].astype(np.float32), gpu_temp_c=gt,
        power_w=mean(dense("power_w")), gpu_util=None if util is None else mean(util),
        p2p_gb_s=mean(dense("p2p_gb_s")),
        fan_rpm=np.nan_to_num(dense("fan_rpm"))[rows].astype(np.float32),
        inlet_c=dense("inlet_c")[rows].astype(np.float32), exhaust_c=dense("exhaust_c")[rows].astype(np.float32),
        airflow_m3_s=np.nan_to_num(dense("airflow_m3_s"))[rows].astype(np.float32),
        links=_load_links(run_dir, t_all, rows, starts, float(sampling.get("links", {}).get("sample_s") or sample_s)),
    )


def _gpu_frames(run_dir: Path, t_all: np.ndarray, rows: np.ndarray, n: int, g_max: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """(F, N, G) GPU temperatures at the frames and the (T, N) node-mean GPU utilisation.

    The gpus table may sample on its own interval (simulation.telemetry): a node time t shows
    the GPU row whose interval contains t, the first GPU sample at or after t."""
    gpus = _read(run_dir, "gpus", ["time_s", "node_id", "gpu_index", "temp_c", "util"])
    gfile = f"{run_dir}/telemetry/gpus.parquet"
    gt = np.full((rows.size, n, max(g_max, 1)), np.nan, dtype=np.float32)
    util = np.zeros((t_all.size, n))
    if gpus.num_rows:
        g_time = _np(gpus, "time_s", np.float64)
        g_all, ti = unique_times(g_time)
        nid, gix = _ids(gpus, "node_id", n, gfile), _ids(gpus, "gpu_index", max(g_max, 1), gfile)
        cell = ti * n + nid     # bincount sums in row order, as np.add.at did (same bits), 10x faster
        g_util = np.bincount(cell, _np(gpus, "util", np.float64), g_all.size * n).reshape(g_all.size, n)
        count = np.bincount(cell, None, g_all.size * n).astype(np.float64).reshape(g_all.size, n)
        g_util = np.divide(g_util, count, out=np.zeros_like(g_util), where=count > 0)
        at = np.minimum(np.searchsorted(g_all, t_all - 1e-9), g_all.size - 1)  # node time -> GPU row
        util = g_util[at]
        frame_g, back = np.unique(at[rows], return_inverse=True)  # frames may share a GPU row
        gt = np.full((frame_g.size, n, max(g_max, 1)), np.nan, dtype=np.float32)
        pos = np.full(g_all.size, -1, dtype=np.int64)
        pos[frame_g] = np.arange(frame_g.size)
        keep = pos[ti] >= 0
        gt[pos[ti[keep]], nid[keep], gix[keep]] = _np(gpus, "temp_c", np.float32)[keep]
        if frame_g.size != rows.size:
            gt = gt[back.ravel()]
    return (gt[:, :, :g_max] if g_max else gt[:, :, :0]), util


def _load_links(run_dir: Path, t_all: np.ndarray, rows: np.ndarray, starts: np.ndarray,
                sample_s: float) -> Links | None:
    if not os.path.lexists(Path(run_dir) / "telemetry" / "links.parquet"):
        return None
    links = _read(run_dir, "links", ["time_s", "link_id", "utilisation", "bytes"])
    if links.num_rows == 0:
        return None
    lid = _np(links, "link_id", np.int64)
    ids, first, remap = np.unique(lid, return_index=True, return_inverse=True)  # endpoints: each link's first row
    remap = remap.ravel()
    l_all, lti = unique_times(_np(links, "time_s", np.float64))  # the links table's own sample times
    at = np.minimum(np.searchsorted(l_all, t_all - 1e-9), l_all.size - 1)  # node time -> link row

    def mean(col: str) -> np.ndarray:
        d = _dense(lti, remap, _np(links, col, np.float64), l_all.size, ids.size)[at]
        return window_mean(np.nan_to_num(d), rows, starts).astype(np.float32)

    ends = _read(run_dir, "links", ["src", "dst", "kind"], n_rows=int(first.max()) + 1)
    src, dst, kind = (ends.column(c).to_pylist() for c in ("src", "dst", "kind"))
    at_first = first.tolist()
    return Links(link_id=ids, src=[src[i] for i in at_first], dst=[dst[i] for i in at_first],
                 kind=[kind[i] for i in at_first],
                 util=mean("utilisation"), bytes_per_s=mean("bytes") / np.float32(sample_s))
