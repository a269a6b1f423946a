"""Read a run's telemetry into dense per-frame arrays for the stage (no pxr here).

The stage samples visual attributes at a *stage frame* spacing (``stage_sample_s``, default 5 s)
rather than the telemetry rate; the 1-s detail stays in Parquet. A stage frame at time t takes:

* instantaneous columns (temperatures, state, fan rpm, inlet) from the telemetry row at t;
* interval-mean columns (power, P2P and link traffic) averaged over the telemetry samples in
  (previous frame, t], so a short burst between frames is diluted, not lost;
* the fan angle as the exact integral of rpm over every telemetry sample up to t.

Frames fall on telemetry sample times: every ``step = round(stage_sample_s / sample_s)``-th sample,
plus the last sample so the stage ends where the run ends.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from twin.telemetry.schema import NODE_STATES
from twin.telemetry.read import read_manifest, read_table

DEFAULT_STAGE_SAMPLE_S = 5.0
FAN_MAX_DEG_PER_FRAME = 90.0   # visual fan spin is slowed so the fastest fan turns <= 90° per frame


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

    @property
    def n_nodes(self) -> int:
        return int(self.node_id.size)


@dataclass(frozen=True)
class Links:
    """Fabric links (static endpoints) and their per-frame utilisation."""
    link_id: np.ndarray      # (L,)
    src: list[str]
    dst: list[str]
    kind: list[str]
    util: np.ndarray         # (F, L) mean utilisation 0..1 over each frame window


@dataclass(frozen=True)
class StageFrames:
    """Everything the stage animates, sampled at stage frames. Times are simulation seconds."""
    manifest: dict
    topology: Topology
    sample_s: float                  # telemetry interval, s
    stage_sample_s: float            # requested frame spacing, s
    times: np.ndarray                # (F,) frame times, s
    frame_rows: np.ndarray           # (F,) telemetry sample index of each frame
    state: np.ndarray                # (F, N) index into NODE_STATES
    gpu_temp_max_c: np.ndarray       # (F, N) °C
    gpu_temp_c: np.ndarray           # (F, N, G) °C per GPU (G = max GPUs per node; NaN padding)
    power_w: np.ndarray              # (F, N) wall power, mean over the frame window, W
    p2p_gb_s: np.ndarray             # (F, N) intra-node GPU<->GPU traffic, window mean, GB/s
    fan_rpm: np.ndarray              # (F, N) chassis fan speed at the frame, rpm
    inlet_c: np.ndarray              # (F, N) °C
    fan_angle_deg: np.ndarray        # (F, N) visual rotor angle (accumulated rotation / divisor)
    fan_spin_divisor: float          # real rotation / visual rotation
    links: Links | None

    @property
    def duration_s(self) -> float:
        return float(self.times[-1]) if self.times.size else 0.0


def _read(run_dir: Path, name: str, columns: list[str] | None = None) -> pa.Table:
    # through the run reader: no links out of the run, column types checked (docs/safety.md)
    return read_table(run_dir, name, columns)


def _ids(table: pa.Table, col: str, n: int, what: str) -> np.ndarray:
    """Column `col` as int64 ids, each in [0, n): a crafted table must fail with its name, not index past an array."""
    ids = _np(table, col, np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise ValueError(f"{what}: column {col} must lie in 0..{n - 1} (the topology's), found {ids.min()}..{ids.max()}")
    return ids


def _np(table: pa.Table, col: str, dtype=None) -> np.ndarray:
    arr = table.column(col).to_numpy()
    return arr.astype(dtype, copy=False) if dtype is not None else arr


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


def window_mean(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mean of values[(prev_row, row]] along axis 0 for each frame row (first window from 0)."""
    csum = np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(values, axis=0, dtype=np.float64)])
    starts = np.concatenate([[-1], rows[:-1]])
    return ((csum[rows + 1] - csum[starts + 1]) / (rows - starts).reshape(-1, *[1] * (values.ndim - 1)))


def _dense(times: np.ndarray, ids: np.ndarray, values: np.ndarray, n_t: np.ndarray, n_ids: int,
           fill=np.nan) -> np.ndarray:
    """Scatter long-format rows (time, id, value) into a dense (T, n_ids) array."""
    ti = np.searchsorted(n_t, times)
    out = np.full((n_t.size, n_ids), fill, dtype=values.dtype if fill is None else np.result_type(values.dtype, type(fill)))
    out[ti, ids] = values
    return out


def load_frames(run_dir: Path, stage_sample_s: float | None = None) -> StageFrames:
    """Read manifest + topology + nodes + gpus (+ links) and sample them at stage frames."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    topo = read_topology(run_dir)
    n = topo.n_nodes
    nodes = _read(run_dir, "nodes", ["time_s", "node_id", "state", "power_w", "fan_rpm", "inlet_c",
                                     "gpu_temp_max_c", "p2p_gb_s"])
    t_all = np.unique(_np(nodes, "time_s", np.float64))
    sample_s = float(manifest.get("simulation", {}).get("sample_s")
                     or (np.diff(t_all).min() if t_all.size > 1 else 1.0))
    stage_dt = float(stage_sample_s) if stage_sample_s else max(DEFAULT_STAGE_SAMPLE_S, sample_s)
    if stage_dt <= 0 or not math.isfinite(stage_dt):
        raise ValueError(f"stage_sample_s must be a positive number of seconds, got {stage_sample_s!r}")
    rows = frame_rows(t_all.size, sample_s, stage_dt)
    where = f"{run_dir}/telemetry/topology.parquet"
    if not np.array_equal(topo.node_id, np.arange(n)):
        raise ValueError(f"{where}: node_id must be 0..{n - 1}, one row each")
    racks = set(zip(topo.rack_id.tolist(), topo.rack_name))
    if len({(r, s) for r, s in zip(topo.rack_id.tolist(), topo.slot.tolist())}) != n or \
            len(racks) != len({r for r, _ in racks}) or len(racks) != len({name for _, name in racks}):
        raise ValueError(f"{where}: each node needs its own (rack_id, slot) and each rack one name (prim paths)")
    nt, nid = _np(nodes, "time_s", np.float64), _ids(nodes, "node_id", n, f"{run_dir}/telemetry/nodes.parquet")

    def dense(col: str) -> np.ndarray:
        return _dense(nt, nid, _np(nodes, col, np.float64), t_all, n)

    state_idx = pc.index_in(nodes.column("state"), value_set=pa.array(NODE_STATES)).fill_null(0)
    state = _dense(nt, nid, state_idx.to_numpy().astype(np.int32), t_all, n, fill=0).astype(np.int32)
    rpm = np.nan_to_num(dense("fan_rpm"))
    # accumulated rotor rotation, degrees: rpm/60 rev/s * 360 °/rev * sample_s s per sample
    turn_deg = np.cumsum(rpm * (6.0 * sample_s), axis=0)[rows]
    step_deg = np.diff(turn_deg, axis=0, prepend=0.0)
    divisor = max(1.0, float(math.ceil(step_deg.max() / FAN_MAX_DEG_PER_FRAME))) if step_deg.size else 1.0

    gpus = _read(run_dir, "gpus", ["time_s", "node_id", "gpu_index", "temp_c"])
    gfile = f"{run_dir}/telemetry/gpus.parquet"
    g_max = int(topo.gpus.max()) if n else 0
    gt = np.full((rows.size, n, max(g_max, 1)), np.nan, dtype=np.float32)
    if gpus.num_rows:
        ti = np.searchsorted(t_all, _np(gpus, "time_s", np.float64))
        pos = np.full(t_all.size, -1, dtype=np.int64)
        pos[rows] = np.arange(rows.size)
        keep = pos[ti] >= 0   # only rows at frame times
        gt[pos[ti[keep]], _ids(gpus, "node_id", n, gfile)[keep], _ids(gpus, "gpu_index", max(g_max, 1), gfile)[keep]] = \
            _np(gpus, "temp_c", np.float32)[keep]

    return StageFrames(
        manifest=manifest, topology=topo, sample_s=sample_s, stage_sample_s=stage_dt,
        times=t_all[rows], frame_rows=rows, state=state[rows],
        gpu_temp_max_c=dense("gpu_temp_max_c")[rows].astype(np.float32),
        gpu_temp_c=gt[:, :, :g_max] if g_max else gt[:, :, :0],
        power_w=window_mean(np.nan_to_num(dense("power_w")), rows).astype(np.float32),
        p2p_gb_s=window_mean(np.nan_to_num(dense("p2p_gb_s")), rows).astype(np.float32),
        fan_rpm=rpm[rows].astype(np.float32), inlet_c=dense("inlet_c")[rows].astype(np.float32),
        fan_angle_deg=(turn_deg / divisor).astype(np.float32), fan_spin_divisor=divisor,
        links=_load_links(run_dir, t_all, rows),
    )


def _load_links(run_dir: Path, t_all: np.ndarray, rows: np.ndarray) -> Links | None:
    if not os.path.lexists(Path(run_dir) / "telemetry" / "links.parquet"):
        return None
    links = read_table(run_dir, "links", ["time_s", "link_id", "src", "dst", "kind", "utilisation"])
    if links.num_rows == 0:
        return None
    lid = _np(links, "link_id", np.int64)
    ids, first = np.unique(lid, return_index=True)   # static endpoints from each link's first row
    remap = np.searchsorted(ids, lid)
    util = _dense(_np(links, "time_s", np.float64), remap, _np(links, "utilisation", np.float64),
                  t_all, ids.size)
    take = pa.array(first)
    return Links(link_id=ids, src=links.column("src").take(take).to_pylist(),
                 dst=links.column("dst").take(take).to_pylist(), kind=links.column("kind").take(take).to_pylist(),
                 util=window_mean(np.nan_to_num(util), rows).astype(np.float32))
