"""Cable routes through the overhead trays and the RDMA pulses that travel along them (no pxr).

A route is a chain of pins (NIC, riser top, roof exit, tray edges, switch port); between two
pins a cable either runs straight (risers, tray beds) or hangs with a sag: the parabolic
approximation of a catenary, ``z(t) = straight(t) - 4 s t (1 - t)`` with sag ``s`` (within 1 %
of the true catenary while sag/span < 0.1; steeper drapes are a visual, not a cable model). The
stage writes routes as pinned Catmull-Rom curves (they pass through every point, ends included)
with ``primvars:fx:pinned`` = 1 at the pins, so a cloth/wire solver (Houdini Vellum) can hold
them while fan turbulence shakes the spans.

Pulses: each link carries ``round(length / PULSE_SPACING_M)`` pulses, alternately travelling
src -> dst and back (the link is full duplex), PULSE_SPEED_M_PER_FRAME along the path. Pulses
going one way are 2 x length / n apart, at least 4 x the distance a pulse moves in a frame (a
link too short for two such pulses gets none), so they never appear to run backwards.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenes import layout as lay

STEP_M = 0.10                  # curve point spacing
PULSE_SPACING_M = 0.50
PULSE_SPEED_M_PER_FRAME = 0.09     # 2.2 m/s at 24 fps
DRAPE_SAG_M = 0.06             # rack roof's front edge -> leaf over the aisle
SPAN_SAG_M = 0.16              # row tray -> aisle tray, hanging across the gap


@dataclass(frozen=True)
class Route:
    points: np.ndarray      # (K, 3) world metres
    pinned: np.ndarray      # (K,) 1.0 at pins, 0.0 between

    @property
    def length_m(self) -> float:
        return float(np.linalg.norm(np.diff(self.points, axis=0), axis=1).sum())


def chain(pins: list[np.ndarray], sags: list[float]) -> Route:
    """Sample a chain of pins; sags[i] is the sag (m) of the span pins[i] -> pins[i + 1]."""
    pts, pin = [np.asarray(pins[0], dtype=np.float64)], [1.0]
    for a, b, s in zip(pins[:-1], pins[1:], sags):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / STEP_M)))
        t = np.arange(1, n + 1) / n
        seg = a + t[:, None] * (b - a)
        seg[:, 2] -= 4.0 * s * t * (1 - t)
        pts.extend(seg)
        pin.extend([0.0] * (n - 1) + [1.0])
    return Route(np.array(pts), np.array(pin, dtype=np.float32))


def _rack_slots(layout: lay.Layout) -> dict[int, int]:
    return {k: int(np.sum(layout.node_rack_index == k)) for k in range(len(layout.racks))}


def route_link(layout: lay.Layout, src: str, dst: str, pos: dict[str, np.ndarray], lane: int) -> Route:
    """The cable route of one link (see module doc); `lane` separates parallel cables."""
    ends = sorted((src, dst), key=lambda e: ("node", "storage", "leaf", "spine", "super").index(e.split(":")[0]))
    a, b = ends
    if a.startswith("node:"):
        return _nic_leaf(layout, int(a.split(":")[1]), pos[a], pos[b])
    aisle_y = lay.aisle_ys(layout)[0]
    top = lay.TRAY_Z_M + 0.06
    side = 1.0 if pos[a][1] < aisle_y else -1.0          # which side of the aisle tray
    lane_dy = 0.02 + 0.01 * (lane % 12)
    spine = pos[b]
    y_lane = aisle_y - side * lane_dy
    drop = [spine[0] + 0.05 * ((lane % 9) - 4) / 4, aisle_y, spine[2]]
    if a.startswith("leaf:"):                             # leaf under the aisle tray: up into it, along
        leaf = pos[a]
        x = leaf[0] + 0.03 * ((lane % 5) - 2)
        pins = [leaf, [x, y_lane, top], [spine[0], y_lane, top], drop]
        return chain(pins, [0.0, 0.0, 0.0])
    if a.startswith("spine:"):                            # spine -> super-spine (pod fabrics): up a riser, along
        sp = pos[a]
        pins = [sp, [sp[0], y_lane, spine[2]], [spine[0], y_lane, spine[2]], drop]
        return chain(pins, [0.0, SPAN_SAG_M, 0.0])
    store = pos[a]                                        # storage: up, across to the tray end, along
    x_end = layout.racks_max[0] + 0.3
    pins = [store, [store[0], store[1], top], [x_end, y_lane, top], [spine[0], y_lane, top], drop]
    return chain(pins, [0.0, SPAN_SAG_M, 0.0, 0.0])


def _nic_leaf(layout: lay.Layout, node: int, nic: np.ndarray, leaf: np.ndarray) -> Route:
    """NIC -> rear riser -> out through the roof -> along the roof to its front edge -> drape
    up into the leaf hung over the aisle."""
    k = int(layout.node_rack_index[node])
    rack = layout.racks[k]
    n_slots = max(1, _rack_slots(layout)[k])
    slot = int(layout.node_slot[node])
    xr = -0.24 + 0.48 * slot / max(1, n_slots - 1)        # each node's own riser lane
    z = layout.node_local[node][2] + lay.NIC_LOCAL_M[2]
    roof = lay.RACK_HEIGHT_M + 0.015 + 0.004 * (slot % 3)
    port_y = lay.world_to_rack(rack, leaf)[1] - lay.TOR_DEPTH_M / 2
    local = np.array([[xr, -0.50, z], [xr, -0.50, lay.RACK_HEIGHT_M - 0.05], [xr, -0.50, roof],
                      [xr, lay.RACK_DEPTH_M / 2 - 0.04, roof], [xr * 0.7, port_y, leaf[2]]])
    return chain([nic, *lay.rack_to_world(rack, local)], [0.0, 0.0, 0.0, 0.0, DRAPE_SAG_M])


@dataclass(frozen=True)
class PulseTracks:
    """All links' routes concatenated for vectorised arc-length lookups."""
    cum: np.ndarray          # (K,) global arc length of every route point (links separated by gaps)
    points: np.ndarray       # (K, 3)
    link_of_pulse: np.ndarray   # (P,)
    start_s: np.ndarray      # (P,) global arc length where each pulse's link starts
    length: np.ndarray       # (P,) its link's length
    phase_m: np.ndarray      # (P,) pulse offset along its link
    direction: np.ndarray    # (P,) +1 src -> dst, -1 back


def pulse_tracks(routes: list[Route], links: list[int] | None = None) -> PulseTracks:
    """Pulses along `routes`; `links` gives each route's link index (default 0, 1, ...)."""
    cum, pts, link, start, length, phase, direction = [], [], [], [], [], [], []
    offset = 0.0
    for i, r in zip(links if links is not None else range(len(routes)), routes):
        seg = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(r.points, axis=0), axis=1))])
        cum.append(offset + seg)
        pts.append(r.points)
        total = float(seg[-1])
        # pulses one way are 2 * total / n apart: keep that >= 4 frames of travel (no wagon wheel)
        n = min(int(round(total / PULSE_SPACING_M)), int(total / (2 * PULSE_SPEED_M_PER_FRAME)))
        if n < 2:                          # too short for pulses that read as travelling
            offset += total + 1.0
            continue
        for j in range(n):
            link.append(i)
            start.append(offset)
            length.append(total)
            phase.append((j + (0.37 * i) % 1.0) * total / n)     # evenly spaced, offset per link
            direction.append(1.0 if j % 2 == 0 else -1.0)
        offset += total + 1.0
    if not link:
        z = np.zeros(0)
        return PulseTracks(z, np.zeros((0, 3)), z.astype(int), z, z, z, z)
    return PulseTracks(np.concatenate(cum), np.concatenate(pts), np.array(link), np.array(start),
                       np.array(length), np.array(phase), np.array(direction))


def pulse_positions(tracks: PulseTracks, frame: int) -> np.ndarray:
    """(P, 3) world positions of every pulse at stage frame `frame`."""
    if tracks.length.size == 0:
        return np.zeros((0, 3))
    s = (tracks.phase_m + tracks.direction * PULSE_SPEED_M_PER_FRAME * frame) % np.maximum(tracks.length, 1e-9)
    g = tracks.start_s + s
    return np.stack([np.interp(g, tracks.cum, tracks.points[:, c]) for c in range(3)], axis=1)
