"""Where everything goes on the stage: prim paths and placements from the run's topology (no pxr).

Coordinates are metres, Z up (same frame as topology.parquet). Rows run along +X; row A sits at
y < 0 with its rack fronts facing +y into the cold aisle at y = 0, row B mirrors it (its racks are
rotated 180 degrees about Z). Every asset faces +Y (see assets/make_assets.py), so a node's
position inside its rack is (0, NODE_Y_IN_RACK_M, z) in rack-local coordinates and z is the
topology's node centre height (U1 sits FLOOR_TO_U1_M above the floor, 44.45 mm per U).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from scenes.frames import Topology

# Asset geometry this module depends on (keep in sync with assets/make_assets.py).
RACK_HEIGHT_M = 2.00           # rack.usda roof height
RACK_WIDTH_M = 0.60
RACK_DEPTH_M = 1.20
RACK_FRONT_RAIL_Y_M = 0.48     # rack.usda front 19-inch rails (y1 - 0.12)
NODE_DEPTH_M = 0.80            # node_shell.usda depth; its rack ears sit at the front face
NODE_Y_IN_RACK_M = RACK_FRONT_RAIL_Y_M - NODE_DEPTH_M / 2   # ears on the front rails
GPU_X_M = (-0.12, -0.06, 0.0)  # node_internals.usda GPU card centres (node-local x)
GPU_Y_M = 0.02
GPU_TOP_Z_M = 0.0555           # top edge of a 0.111 m card centred at z = 0
FAN_X_M = (-0.14, 0.0, 0.14)   # node_internals.usda fan housings (node-local x)
FAN_Y_M = 0.355
TOR_HEIGHT_M = 0.044           # tor_switch.usda 1U case
TRAY_Z_M = 2.60                # overhead cable trays / spine switches (estimate: 0.6 m above racks)
TRAY_SEGMENT_M = 0.60          # cable_tray.usda segment length
TILE_M = 0.60                  # floor_tile.usda edge
P2P_ARC_RISE_M = 0.025         # P2P arcs rise above the card tops so they read as "jumps"
CAMERA_EYE_Z_M = 1.70          # hero camera at standing eye height in the cold aisle

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
    """Prim paths and placements for every rack and node of a run."""
    racks: tuple[RackPlace, ...]
    rows: tuple[str, ...]
    node_path: tuple[str, ...]          # indexed by node id
    node_local: np.ndarray              # (N, 3) node centre in its rack's frame, m
    node_rack_index: np.ndarray         # (N,) index into racks
    extent_min: tuple[float, float]     # room footprint (x, y), m
    extent_max: tuple[float, float]

    @property
    def n_nodes(self) -> int:
        return len(self.node_path)


ROOT = "/Refinery"


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
    margin = 1.2
    lo = (float(xy[:, 0].min() - RACK_WIDTH_M / 2 - margin), float(xy[:, 1].min() - RACK_DEPTH_M / 2 - margin))
    hi = (float(xy[:, 0].max() + RACK_WIDTH_M / 2 + margin), float(xy[:, 1].max() + RACK_DEPTH_M / 2 + margin))
    rows = tuple(dict.fromkeys(p.row for p in racks))
    return Layout(tuple(racks), rows, paths, local, node_rack_index, lo, hi)


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


def node_world(layout: Layout, node: int) -> np.ndarray:
    """World position (m) of a node's centre."""
    return rack_to_world(layout.racks[layout.node_rack_index[node]], layout.node_local[node])


def p2p_arcs_local() -> tuple[list[int], np.ndarray]:
    """Node-local polylines between the three GPUs' top edges: (curveVertexCounts, points).

    Curves 1-2, 2-3 and 1-3, each start -> raised midpoint -> end (linear BasisCurves).
    """
    tops = [np.array([x, GPU_Y_M, GPU_TOP_Z_M]) for x in GPU_X_M]
    pts = []
    for a, b in ((0, 1), (1, 2), (0, 2)):
        mid = (tops[a] + tops[b]) / 2 + np.array([0.0, 0.0, P2P_ARC_RISE_M * (1 + (b - a))])
        pts.extend([tops[a], mid, tops[b]])
    return [3, 3, 3], np.array(pts)


def tile_centres(layout: Layout) -> np.ndarray:
    """(K, 2) centres of the perforated tiles along the cold aisle(s) in front of each row pair."""
    x0, x1 = layout.extent_min[0] + 0.6, layout.extent_max[0] - 0.6
    xs = np.arange(x0 + TILE_M / 2, x1, TILE_M)
    ys = sorted({round(p.xy[1] + (RACK_DEPTH_M / 2 + TILE_M) * (1 if p.yaw_deg == 0 else -1), 6)
                 for p in layout.racks})
    return np.array([(x, y) for y in ys for x in xs]).reshape(-1, 2)


def tray_centres(layout: Layout) -> np.ndarray:
    """(K, 3) centres of tray segments: one run above each row of racks and one over each aisle."""
    x0, x1 = layout.extent_min[0] + 0.9, layout.extent_max[0] - 0.9
    xs = np.arange(x0 + TRAY_SEGMENT_M / 2, x1, TRAY_SEGMENT_M)
    ys = sorted({round(p.xy[1], 6) for p in layout.racks} | {round(y, 6) for y in aisle_ys(layout)})
    return np.array([(x, y, TRAY_Z_M) for y in ys for x in xs]).reshape(-1, 3)


def aisle_ys(layout: Layout) -> list[float]:
    """Cold-aisle centre lines: midway between each facing pair of rows (y = 0 for one pair)."""
    fronts = sorted({p.xy[1] for p in layout.racks})
    if len(fronts) < 2:
        return [fronts[0] + RACK_DEPTH_M / 2 + 0.6] if fronts else [0.0]
    return [(fronts[i] + fronts[i + 1]) / 2 for i in range(0, len(fronts) - 1, 2)]


def hero_camera_path(layout: Layout, n_keys: int = 2) -> np.ndarray:
    """(n_keys, 3) eye positions walking the first cold aisle from outside its -X end to its middle
    (the camera looks along +X, so the second half of both rows stays in view to the end)."""
    y = aisle_ys(layout)[0]
    xs = np.linspace(layout.extent_min[0] - 1.0, (layout.extent_min[0] + layout.extent_max[0]) / 2, n_keys)
    return np.stack([xs, np.full(n_keys, y), np.full(n_keys, CAMERA_EYE_Z_M)], axis=1)


def endpoint_positions(layout: Layout, names: set[str], n_spines: int, n_storage: int) -> dict[str, np.ndarray]:
    """World position (m) of every fabric endpoint named in `links` (see docs/telemetry.md).

    node:<id> -> the node's NIC (rear of the node); leaf:<rack> -> top of that rack (ToR);
    spine:<k> -> evenly along X above the cold-aisle centre line at tray height;
    storage:<k> -> beyond the last rack in X on y = aisle, stacked along Y.
    """
    by_name = {p.name: p for p in layout.racks}
    aisle_y = aisle_ys(layout)[0]
    x_lo, x_hi = layout.extent_min[0] + 1.2, layout.extent_max[0] - 1.2
    out: dict[str, np.ndarray] = {}
    for name in names:
        kind, _, key = name.partition(":")
        if kind == "node":
            i = int(key)
            if not 0 <= i < layout.n_nodes:
                raise ValueError(f"links: endpoint {name!r} names no node in topology.parquet")
            rack = layout.racks[layout.node_rack_index[i]]
            out[name] = rack_to_world(rack, layout.node_local[i] + np.array([0.07, -0.30, 0.03]))
        elif kind == "leaf":
            if key not in by_name:
                raise ValueError(f"links: endpoint {name!r} names no rack in topology.parquet")
            rack = by_name[key]
            out[name] = np.array([rack.xy[0], rack.xy[1], RACK_HEIGHT_M + TOR_HEIGHT_M / 2])
        elif kind == "spine":
            k = int(key)
            x = x_lo + (k + 0.5) * (x_hi - x_lo) / max(1, n_spines)
            out[name] = np.array([x, aisle_y, TRAY_Z_M + 0.15])
        elif kind == "storage":
            k = int(key)
            out[name] = np.array([x_hi + 1.0, aisle_y + (k - (n_storage - 1) / 2) * 0.8, 1.0])
        else:
            raise ValueError(f"links: unknown endpoint {name!r} (expected node:, leaf:, spine: or storage:)")
    return out


def link_polyline(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(4, 3) route of a cable: up from `a` to tray height, along the tray, down to `b`."""
    za = max(a[2], b[2], TRAY_Z_M + 0.05)   # cables lie in the overhead trays
    return np.array([a, [a[0], a[1], za], [b[0], b[1], za], b])
