"""Where everything goes on the stage: prim paths and placements from the run's topology (no pxr).

Coordinates are metres, Z up (same frame as topology.parquet). Rows run along +X; row A sits at
y < 0 with its rack fronts facing +y into the cold aisle at y = 0, row B mirrors it (its racks are
turned 180° about Z). Every asset faces +Y (assets/make_assets.py), so a node's position inside
its rack is (0, NODE_Y_IN_RACK_M, z) in rack-local coordinates, z the topology's node height.

The room around the racks (walls, raised floor over a plenum, cooling units, trays) is a stage
choice, not telemetry: the racks plus ROOM_MARGIN_X_M at each end (cooling units, the camera's
run-up) and ROOM_MARGIN_Y_M behind each row (hot aisles), snapped to the 0.6 m floor-tile grid.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from scenes.frames import Topology

# Asset geometry this module depends on (keep in sync with assets/make_assets.py, room_assets.py).
RACK_HEIGHT_M = 2.00           # rack.usda roof height
RACK_WIDTH_M = 0.60
RACK_DEPTH_M = 1.20
RACK_FRONT_RAIL_Y_M = 0.48     # rack.usda front 19-inch rails (y1 - 0.12)
RACK_DOOR_Y_M = 0.606          # rack.usda glass door, rack-local
NODE_DEPTH_M = 0.80            # node.usda depth; its rack ears sit at the front face
NODE_Y_IN_RACK_M = RACK_FRONT_RAIL_Y_M - NODE_DEPTH_M / 2   # ears on the front rails
NIC_LOCAL_M = (0.07, -0.30, 0.03)   # node_internals.usda NIC, node-local
TOR_HEIGHT_M = 0.044           # tor_switch.usda 1U case
TOR_DEPTH_M = 0.50
SUPER_RISE_M = 0.40           # super-spines (pod fabrics) hang this far above the spine row
TRAY_Z_M = 2.60                # overhead cable trays (room_assets.py TRAY_Z_M)
CEILING_Z_M = 3.40             # room_assets.py CEILING_Z_M: tray hangers end here
TRAY_SEGMENT_M = 0.60          # cable_tray.usda segment length
TILE_M = 0.60                  # floor_tile.usda edge, the floor grid
PLENUM_DEPTH_M = 0.60          # raised floor: deck at z = 0, plenum slab below
CONTAINMENT_Z_M = 2.05         # glass roof of the cold aisle, just above the racks
ROOM_MARGIN_X_M = 3.0          # at each end of the rows: cooling units + the Hero's run-up
ROOM_MARGIN_Y_M = 1.8          # behind each row: the hot aisle
COOLING_UNIT_M = (1.80, 0.90, 1.95)   # cooling_unit.usda W x D x H
ROOT = "/Refinery"

_SAFE = re.compile(r"[^A-Za-z0-9_]")


def prim_name(text: str) -> str:
    """A valid USD prim name from free text (`A01` -> `A01`, `spine:0` -> `spine_0`)."""
    name = _SAFE.sub("_", str(text))
    return name if name and not name[0].isdigit() else f"_{name}"


@dataclass(frozen=True)
class RackPlace:
    """One rack: its prim path, rack id, footprint centre (m) and yaw (degrees about Z)."""
    rack_id: int
    name: str
    row: str
    path: str
    xy: tuple[float, float]
    yaw_deg: float


@dataclass(frozen=True)
class Layout:
    """Prim paths and placements for every rack and node of a run, and the room around them."""
    racks: tuple[RackPlace, ...]
    rows: tuple[str, ...]
    node_path: tuple[str, ...]          # indexed by node id
    node_local: np.ndarray              # (N, 3) node centre in its rack's frame, m
    node_rack_index: np.ndarray         # (N,) index into racks
    node_slot: np.ndarray               # (N,) slot 0 = lowest
    racks_min: tuple[float, float]      # rack footprints' bounding box (x, y), m
    racks_max: tuple[float, float]
    room_min: tuple[float, float]       # walls (x, y), m
    room_max: tuple[float, float]

    @property
    def n_nodes(self) -> int:
        return len(self.node_path)

    @property
    def extent_min(self) -> tuple[float, float]:
        return self.room_min

    @property
    def extent_max(self) -> tuple[float, float]:
        return self.room_max


def _snap_out(v: float, up: bool) -> float:
    return (math.ceil if up else math.floor)(round(v / TILE_M, 6)) * TILE_M


def build_layout(topo: Topology) -> Layout:
    """Rows, racks and nodes from topology.parquet; node prims are Node_<slot+1, 2 digits>."""
    rack_ids = sorted(set(int(r) for r in topo.rack_id))
    first = {r: int(np.flatnonzero(topo.rack_id == r)[0]) for r in rack_ids}
    racks = []
    for r in rack_ids:
        i = first[r]
        row, name = topo.row[i], topo.rack_name[i]
        yaw = 0.0 if topo.facing[i] == "+y" else 180.0
        racks.append(RackPlace(r, name, row, f"{ROOT}/Row_{prim_name(row)}/Rack_{prim_name(name)}",
                               (float(topo.rack_xy[i, 0]), float(topo.rack_xy[i, 1])), yaw))
    index = {p.rack_id: k for k, p in enumerate(racks)}
    node_rack_index = np.array([index[int(r)] for r in topo.rack_id], dtype=np.int64)
    paths = tuple(f"{racks[k].path}/Node_{int(s) + 1:02d}" for k, s in zip(node_rack_index, topo.slot))
    local = np.zeros((topo.n_nodes, 3))
    local[:, 1] = NODE_Y_IN_RACK_M
    local[:, 2] = topo.xyz[:, 2]
    xy = np.array([p.xy for p in racks]) if racks else np.zeros((1, 2))
    lo = (float(xy[:, 0].min() - RACK_WIDTH_M / 2), float(xy[:, 1].min() - RACK_DEPTH_M / 2))
    hi = (float(xy[:, 0].max() + RACK_WIDTH_M / 2), float(xy[:, 1].max() + RACK_DEPTH_M / 2))
    room_lo = (_snap_out(lo[0] - ROOM_MARGIN_X_M, False), _snap_out(lo[1] - ROOM_MARGIN_Y_M, False))
    room_hi = (_snap_out(hi[0] + ROOM_MARGIN_X_M, True), _snap_out(hi[1] + ROOM_MARGIN_Y_M, True))
    rows = tuple(dict.fromkeys(p.row for p in racks))
    return Layout(tuple(racks), rows, paths, local, node_rack_index, np.asarray(topo.slot, dtype=np.int64),
                  lo, hi, room_lo, room_hi)


def rack_to_world(rack: RackPlace, local: np.ndarray) -> np.ndarray:
    """Rack-local points (..., 3) -> world metres (yaw about Z, then the footprint offset)."""
    a = np.radians(rack.yaw_deg)
    c, s = np.cos(a), np.sin(a)
    p = np.asarray(local, dtype=np.float64)
    out = np.empty_like(p)
    out[..., 0] = c * p[..., 0] - s * p[..., 1] + rack.xy[0]
    out[..., 1] = s * p[..., 0] + c * p[..., 1] + rack.xy[1]
    out[..., 2] = p[..., 2]
    return out


def node_world(layout: Layout, node: int, local_offset=(0.0, 0.0, 0.0)) -> np.ndarray:
    """World position (m) of a point given in a node's local frame (default: its centre)."""
    return rack_to_world(layout.racks[layout.node_rack_index[node]],
                         layout.node_local[node] + np.asarray(local_offset, dtype=np.float64))


def aisle_ys(layout: Layout) -> list[float]:
    """Cold-aisle centre lines: midway between each facing pair of rows (y = 0 for one pair)."""
    fronts = sorted({p.xy[1] for p in layout.racks})
    if len(fronts) < 2:
        return [fronts[0] + RACK_DEPTH_M / 2 + 0.6] if fronts else [0.0]
    return [(fronts[i] + fronts[i + 1]) / 2 for i in range(0, len(fronts) - 1, 2)]


def floor_cells(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(perforated, solid) (K, 2) centres of the 0.6 m floor tiles.

    Perforated tiles fill the cold aisle(s) between facing rack fronts; under each rack the floor
    is open (the cabinet's bottom opening takes its air straight from the plenum); everything
    else is solid deck.
    """
    (x0, y0), (x1, y1) = layout.room_min, layout.room_max
    xs = np.arange(x0 + TILE_M / 2, x1, TILE_M)
    ys = np.arange(y0 + TILE_M / 2, y1, TILE_M)
    cx, cy = np.meshgrid(xs, ys)
    cells = np.stack([cx.ravel(), cy.ravel()], axis=1)
    under = np.zeros(len(cells), dtype=bool)
    for p in layout.racks:
        under |= (np.abs(cells[:, 0] - p.xy[0]) < RACK_WIDTH_M / 2) & (np.abs(cells[:, 1] - p.xy[1]) < RACK_DEPTH_M / 2)
    rx0, rx1 = layout.racks_min[0], layout.racks_max[0]
    aisle = np.zeros(len(cells), dtype=bool)
    for y in aisle_ys(layout):
        half = aisle_half_width(layout)
        aisle |= (np.abs(cells[:, 1] - y) < half) & (cells[:, 0] > rx0) & (cells[:, 0] < rx1)
    return cells[aisle & ~under], cells[~aisle & ~under]


def aisle_half_width(layout: Layout) -> float:
    """Half the cold aisle's width between rack fronts, m (0.6 m for a lone row)."""
    fronts = sorted({p.xy[1] for p in layout.racks})
    if len(fronts) < 2:
        return TILE_M
    return (fronts[1] - fronts[0]) / 2 - RACK_DEPTH_M / 2


def tray_runs(layout: Layout) -> list[tuple[float, float, float]]:
    """(y, x_start, x_end) of each overhead tray run: one over each row, one over each aisle."""
    x0, x1 = layout.racks_min[0] - 0.3, layout.racks_max[0] + 0.3
    ys = sorted({round(p.xy[1], 6) for p in layout.racks} | {round(y, 6) for y in aisle_ys(layout)})
    return [(y, x0, x1) for y in ys]


def tray_centres(layout: Layout) -> np.ndarray:
    """(K, 3) centres of the 0.6 m tray segments along every run, at TRAY_Z_M."""
    out = []
    for y, x0, x1 in tray_runs(layout):
        for x in np.arange(x0 + TRAY_SEGMENT_M / 2, x1 - 1e-9, TRAY_SEGMENT_M):
            out.append((x, y, TRAY_Z_M))
    return np.array(out).reshape(-1, 3)


LEAF_AISLE_OFFSET_M = 0.26     # leaves hang either side of the aisle centre line


def leaf_centre(layout: Layout, rack: RackPlace) -> np.ndarray:
    """A rack's leaf (ToR) switch: hung under the aisle tray in front of its rack, so the RDMA
    traffic of the rack's nodes is seen from the aisle through the containment roof (a stage
    choice: telemetry names the switch, not its height). Its ports face the rack."""
    y = aisle_ys(layout)[0]
    side = -1.0 if rack.xy[1] < y else 1.0
    return np.array([rack.xy[0], y + side * LEAF_AISLE_OFFSET_M, TRAY_Z_M - 0.06 - TOR_HEIGHT_M / 2])


def world_to_rack(rack: RackPlace, world: np.ndarray) -> np.ndarray:
    """Inverse of rack_to_world."""
    a = -np.radians(rack.yaw_deg)
    c, s = np.cos(a), np.sin(a)
    p = np.asarray(world, dtype=np.float64) - np.array([rack.xy[0], rack.xy[1], 0.0])
    out = np.empty_like(p)
    out[..., 0] = c * p[..., 0] - s * p[..., 1]
    out[..., 1] = s * p[..., 0] + c * p[..., 1]
    out[..., 2] = p[..., 2]
    return out


def endpoint_positions(layout: Layout, names: set[str], n_spines: int, n_storage: int,
                       n_super: int = 0) -> dict[str, np.ndarray]:
    """World position (m) of every fabric endpoint named in `links` (see docs/telemetry.md).

    node:<id> -> the node's NIC (rear of the node); leaf:<rack> -> its switch under the aisle tray;
    spine:<k> -> on top of the aisle tray, evenly along X; super:<k> (pod fabrics) -> a row
    SUPER_RISE_M above the spines, evenly along X; storage:<k> -> beyond the last rack in X.
    """
    by_name = {p.name: p for p in layout.racks}
    aisle_y = aisle_ys(layout)[0]
    x_lo, x_hi = layout.racks_min[0], layout.racks_max[0]
    out: dict[str, np.ndarray] = {}
    for name in names:
        kind, _, key = name.partition(":")
        if kind == "node":
            i = int(key)
            if not 0 <= i < layout.n_nodes:
                raise ValueError(f"links: endpoint {name!r} names no node in topology.parquet")
            out[name] = node_world(layout, i, NIC_LOCAL_M)
        elif kind == "leaf":
            if key not in by_name:
                raise ValueError(f"links: endpoint {name!r} names no rack in topology.parquet")
            out[name] = leaf_centre(layout, by_name[key])
        elif kind == "spine":
            k = int(key)
            x = x_lo + (k + 0.5) * (x_hi - x_lo) / max(1, n_spines)
            out[name] = np.array([x, aisle_y, TRAY_Z_M + 0.11 + TOR_HEIGHT_M / 2])
        elif kind == "super":
            k = int(key)
            x = x_lo + (k + 0.5) * (x_hi - x_lo) / max(1, n_super)
            out[name] = np.array([x, aisle_y, TRAY_Z_M + 0.11 + TOR_HEIGHT_M / 2 + SUPER_RISE_M])
        elif kind == "storage":
            k = int(key)
            out[name] = np.array([x_hi + 1.0, aisle_y + (k - (n_storage - 1) / 2) * 0.8, 1.0])
        else:
            raise ValueError(f"links: unknown endpoint {name!r} (expected node:, leaf:, spine:, super: or storage:)")
    return out
