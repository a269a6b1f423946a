"""Synthetic `links` rows for a run directory (the fabric is not in the engine yet).

Follows docs/telemetry.md: one row per link per sample; endpoints node:<id>, leaf:<rack>,
spine:<k>, storage:<k>; kinds nic-leaf, leaf-spine, storage-spine. Utilisation is a closed form
so tests can compute expectations by hand: util(link, sample k) = ((link_id + k) % 5) / 4.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from twin.telemetry.schema import to_table
from twin.telemetry.write import write_table


def link_endpoints(run_dir: Path, spines: int = 2, storage: int = 1) -> list[tuple[str, str, str]]:
    """(src, dst, kind) per link id: every node to its rack's leaf, every leaf to every spine,
    every storage box to every spine."""
    topo = pq.read_table(Path(run_dir) / "telemetry" / "topology.parquet").sort_by("node_id")
    racks = list(dict.fromkeys(topo.column("rack_name").to_pylist()))
    out = [(f"node:{n}", f"leaf:{r}", "nic-leaf")
           for n, r in zip(topo.column("node_id").to_pylist(), topo.column("rack_name").to_pylist())]
    out += [(f"leaf:{r}", f"spine:{s}", "leaf-spine") for r in racks for s in range(spines)]
    out += [(f"storage:{k}", f"spine:{s}", "storage-spine") for k in range(storage) for s in range(spines)]
    return out


def add_synthetic_links(run_dir: Path, spines: int = 2, storage: int = 1) -> int:
    """Write telemetry/links.parquet at the nodes table's sample times; returns the link count."""
    run_dir = Path(run_dir)
    times = np.unique(pq.read_table(run_dir / "telemetry" / "nodes.parquet", columns=["time_s"])
                      .column("time_s").to_numpy())
    ends = link_endpoints(run_dir, spines, storage)
    n_l, n_t = len(ends), times.size
    lid = np.tile(np.arange(n_l), n_t)
    k = np.repeat(np.arange(n_t), n_l)
    util = ((lid + k) % 5) / 4.0
    cols = {
        "time_s": np.repeat(times, n_l), "link_id": lid,
        "src": [ends[i][0] for i in lid], "dst": [ends[i][1] for i in lid], "kind": [ends[i][2] for i in lid],
        "bytes": util * 50e9, "utilisation": util, "active_flows": (util * 8).astype(np.int32),
    }
    write_table(to_table("links", cols), run_dir / "telemetry" / "links.parquet")
    return n_l
