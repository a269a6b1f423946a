"""Rooms, rows, racks, nodes and their coordinates; pools, ignition units and replicas.

Node ids are row-major: row, rack in row, slot from the bottom. Rows run along +X; row A sits
at y < 0 with its fronts facing +y into the cold aisle at y = 0, row B mirrors it. One rack
unit is 44.45 mm (EIA-310).

Placement of pools (multi-node replicas "prefer same rack, then same row"): pools whose
replicas span k > 1 nodes are placed first, taking whole k-node groups inside each rack in
rack order; single-node pools then take the remaining nodes in topology order.

Several pools on one node (issue 20): a pool with ``colocate: OTHER`` takes no nodes of its own;
its single-node replicas sit on the first ``nodes`` nodes of pool OTHER and join OTHER's ignition
units. ``gpus: [i, ...]`` restricts a pool to those GPU indices of each node; ``device: cpu``
pools have one GPU-less replica per node. ``node_pools`` / ``unit_pools`` list every pool on a
node / unit; ``node_pool`` / ``unit_pool`` keep the host (first) pool.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.spec.scenario import Scenario

RACK_UNIT_M = 0.04445  # EIA-310 rack unit
FLOOR_TO_U1_M = 0.10   # raised-floor rack base: plinth height below U1 (estimate)


@dataclass(frozen=True)
class Replica:
    replica_id: int
    pool_id: int
    unit_id: int
    node_ids: tuple[int, ...]
    gpu_ids: tuple[int, ...]
    device: str = "gpu"   # "cpu": a CPU-only engine replica (gpu_ids empty)


@dataclass(frozen=True)
class Topology:
    """Static layout arrays, indexed by node / rack / GPU / unit id."""
    rows: int
    racks_per_row: int
    nodes_per_rack: int
    gpus_per_node: int
    node_rack: np.ndarray      # (N,) rack id
    node_slot: np.ndarray      # (N,) 0 = bottom
    node_u: np.ndarray         # (N,) lowest rack unit (1-based)
    node_xyz: np.ndarray       # (N, 3) centre, metres
    node_height: np.ndarray    # (N,) 0 (bottom) .. 1 (top): position in rack for recirculation
    rack_row: np.ndarray       # (R,) row index
    rack_xy: np.ndarray        # (R, 2)
    rack_names: tuple[str, ...]
    gpu_node: np.ndarray       # (G,) node id
    gpu_index: np.ndarray      # (G,) 0..gpus_per_node-1
    node_pool: np.ndarray      # (N,) pool id or -1
    node_unit: np.ndarray      # (N,) unit id or -1
    unit_nodes: tuple[tuple[int, ...], ...]
    unit_pool: np.ndarray      # (U,) pool id
    replicas: tuple[Replica, ...]
    pool_names: tuple[str, ...]
    node_pools: tuple[tuple[int, ...], ...] = ()  # (N,) every pool with replicas on the node, host first
    unit_pools: tuple[tuple[int, ...], ...] = ()  # (U,) every pool in the ignition unit, host first

    @property
    def n_nodes(self) -> int: return int(self.node_rack.size)
    @property
    def n_racks(self) -> int: return int(self.rack_row.size)
    @property
    def n_gpus(self) -> int: return int(self.gpu_node.size)
    @property
    def n_units(self) -> int: return len(self.unit_nodes)

    def node_row_letter(self, node: int) -> str:
        return chr(ord("A") + int(self.rack_row[self.node_rack[node]]))


def rack_names(rows: int, racks_per_row: int) -> tuple[str, ...]:
    """'A01', 'A02', ... 'B08': row letter + 1-based position in the row, in rack-id order."""
    return tuple(f"{chr(ord('A') + r)}{i + 1:02d}" for r in range(rows) for i in range(racks_per_row))


def build_topology(scenario: Scenario) -> Topology:
    spec, cat = scenario.spec, scenario.catalogue
    t = spec.topology
    node_spec = cat.node(t.node_type)
    g = node_spec.gpu_count
    n_racks = t.rows * t.racks_per_row
    n = n_racks * t.nodes_per_rack
    node = np.arange(n)
    node_rack = node // t.nodes_per_rack
    node_slot = node % t.nodes_per_rack
    node_u = t.first_node_u + node_slot * node_spec.height_u
    rack_row = np.arange(n_racks) // t.racks_per_row
    rack_in_row = np.arange(n_racks) % t.racks_per_row
    rack_x = (rack_in_row - (t.racks_per_row - 1) / 2) * t.rack_width_m
    # rack centre sits half an aisle plus half a rack depth away from the cold-aisle centre line
    offset = t.cold_aisle_m / 2 + t.rack_depth_m / 2
    rack_y = np.where(rack_row % 2 == 0, -offset, offset) - (rack_row // 2) * (2 * offset + t.cold_aisle_m)
    rack_xy = np.stack([rack_x, rack_y], axis=1)
    z = FLOOR_TO_U1_M + (node_u - 1 + node_spec.height_u / 2) * RACK_UNIT_M
    node_xyz = np.stack([rack_x[node_rack], rack_y[node_rack], z], axis=1)
    height = node_slot / max(1, t.nodes_per_rack - 1)
    names = rack_names(t.rows, t.racks_per_row)

    node_pool = np.full(n, -1)
    node_unit = np.full(n, -1)
    unit_nodes: list[tuple[int, ...]] = []
    unit_pool: list[int] = []
    pools = [(i, p) for i, p in enumerate(spec.pools) if p.colocate is None]
    span = {i: max(1, (p.tp * p.pp) // g) for i, p in pools}
    # multi-node pools first, whole groups inside a rack; then the rest in topology order
    for pid, pool in sorted(pools, key=lambda ip: -span[ip[0]]):
        k, want = span[pid], pool.nodes
        if k > 1:
            for r in range(n_racks):
                free = [int(x) for x in node[(node_rack == r) & (node_pool < 0)]]
                while want >= k and len(free) >= k:
                    group, free = free[:k], free[k:]
                    _add_unit(group, pid, node_pool, node_unit, unit_nodes, unit_pool)
                    want -= k
            if want >= k:  # not enough whole-rack room: span racks within the row order
                free = [int(x) for x in node[node_pool < 0]]
                while want >= k and len(free) >= k:
                    group, free = free[:k], free[k:]
                    _add_unit(group, pid, node_pool, node_unit, unit_nodes, unit_pool)
                    want -= k
        else:
            for x in node[node_pool < 0][:want]:
                _add_unit([int(x)], pid, node_pool, node_unit, unit_nodes, unit_pool)
    # units in topology order of their first node: cascade ignition follows this order
    order = sorted(range(len(unit_nodes)), key=lambda u: unit_nodes[u][0])
    remap = {old: new for new, old in enumerate(order)}
    unit_nodes = [unit_nodes[u] for u in order]
    unit_pool = [unit_pool[u] for u in order]
    node_unit = np.array([remap[u] if u >= 0 else -1 for u in node_unit])

    # guests: colocated pools on their host's first `nodes` nodes (host unit order)
    names_to_id = {p.name: i for i, p in enumerate(spec.pools)}
    guests_on: dict[int, list[int]] = {}  # node -> guest pool ids
    for pid, pool in enumerate(spec.pools):
        if pool.colocate is not None:
            host = names_to_id[pool.colocate]
            host_nodes = [nd for u, nodes in enumerate(unit_nodes) if unit_pool[u] == host for nd in nodes]
            for nd in host_nodes[:pool.nodes]:
                guests_on.setdefault(nd, []).append(pid)

    replicas: list[Replica] = []
    for u, nodes in enumerate(unit_nodes):
        for pid in dict.fromkeys([unit_pool[u]] + [q for nd in nodes for q in guests_on.get(nd, [])]):
            pool = spec.pools[pid]
            own = [nd for nd in nodes if pid == unit_pool[u] or pid in guests_on.get(nd, [])]
            if pool.device == "cpu":
                for nd in own:
                    replicas.append(Replica(len(replicas), pid, u, (nd,), (), device="cpu"))
                continue
            gpus_per_replica = pool.tp * pool.pp
            idx = pool.gpus if pool.gpus is not None else range(g)
            unit_gpus = [nd * g + i for nd in own for i in idx]
            for j in range(len(unit_gpus) // gpus_per_replica):
                gids = tuple(unit_gpus[j * gpus_per_replica:(j + 1) * gpus_per_replica])
                rnodes = tuple(sorted({gid // g for gid in gids}))
                replicas.append(Replica(len(replicas), pid, u, rnodes, gids))
    node_pools = tuple(((int(node_pool[x]),) if node_pool[x] >= 0 else ()) + tuple(guests_on.get(x, []))
                       for x in range(n))
    unit_pools = tuple(tuple(dict.fromkeys(q for nd in nodes for q in node_pools[nd])) for nodes in unit_nodes)

    gpu = np.arange(n * g)
    return Topology(
        rows=t.rows, racks_per_row=t.racks_per_row, nodes_per_rack=t.nodes_per_rack, gpus_per_node=g,
        node_rack=node_rack, node_slot=node_slot, node_u=node_u, node_xyz=node_xyz, node_height=height,
        rack_row=rack_row, rack_xy=rack_xy, rack_names=names, gpu_node=gpu // g, gpu_index=gpu % g,
        node_pool=node_pool, node_unit=node_unit, unit_nodes=tuple(unit_nodes),
        unit_pool=np.array(unit_pool, dtype=int), replicas=tuple(replicas),
        pool_names=tuple(p.name for p in spec.pools), node_pools=node_pools, unit_pools=unit_pools,
    )


def _add_unit(group, pid, node_pool, node_unit, unit_nodes, unit_pool) -> None:
    uid = len(unit_nodes)
    for x in group:
        node_pool[x] = pid
        node_unit[x] = uid
    unit_nodes.append(tuple(group))
    unit_pool.append(pid)
