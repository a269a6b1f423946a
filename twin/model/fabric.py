"""The RDMA fabric's structure: a leaf-spine or a three-tier pod Clos, its cables, ECMP paths.

Two shapes, from the scenario's `fabric:` section (docs/model.md "Fabric"):

* **two-tier leaf-spine** (`racks_per_pod: 0`, the default)::

      node:<id> --nic-leaf--> leaf:<rack> --leaf-spine--> spine:<k> <--storage-spine-- storage:<j>

  one top-of-rack leaf per rack, `spines` spine switches, every leaf wired to every spine;
  storage targets (model loading over the network) hang off every spine.
* **three-tier pod Clos** (`racks_per_pod: R > 0`)::

      node --nic-leaf--> leaf --leaf-spine--> spine --spine-super--> super:<s> <--storage-super-- storage

  racks are grouped into pods of R racks (the last pod may be partial); each pod has `spines`
  pod spines, every leaf of the pod wired to each of them; `super_spines` super-spines form
  `spines` planes (multi-plane Clos): pod spine k of every pod is wired to each super-spine of
  plane k, so pods meet only through the super-spines; storage hangs off every super-spine.
  Pod spines are numbered hall-wide, `spine:<pod * spines + k>`. This is the shape of NVIDIA's
  DGX SuperPOD compute fabric beyond 16 scalable units (leaf, spine and core tiers, as many
  spine-core cables as node-leaf cables when non-blocking: DGX SuperPOD B200 reference
  architecture, "Larger DGX SuperPOD component counts") and of Facebook's F16-style planes.

Sizing (Clos): one ConnectX-7 per node (catalogue `nics`: ~46 GB/s achievable of 400 Gb/s,
~1 us one-way RDMA latency; hardware.md "Fabric"). A leaf's uplinks carry its rack's downlink
over `oversubscription`, split over the (pod) spines; a pod spine's uplinks carry its downlink
over `pod_oversubscription`, split over its plane's super-spines. A modelled cable between two
switches is the bundle of all their parallel ports (one flow of <= 46 GB/s fits one 400G or
800G member, so the bundle shares like one pipe). Cables are full duplex: each is two directed
links, index 2 * cable_id + direction (0: a -> b).

Paths: a flow takes one of its equal-cost shortest paths, chosen by a stable hash of its
endpoints (ECMP flow hashing, as switches do; two flows may collide on one spine, which is
real). Healthy paths come from the structure (no graph search); after failures the structural
paths that avoid every failed cable and switch are kept, which are exactly the shortest paths
of the damaged graph whenever one survives; only when none does is the networkx graph searched
(for a longer detour, as before). networkx is imported only then.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Iterable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

    from twin.spec.scenario import FabricSectionSpec

GB = 1e9
KINDS = ("nic-leaf", "leaf-spine", "storage-spine", "spine-super", "storage-super")
ELEMENT_KINDS = ("node", "leaf", "spine", "super", "storage")


@dataclass(frozen=True)
class Cable:
    """One full-duplex cable; `a` -> `b` is direction 0, `b` -> `a` direction 1."""
    link_id: int
    a: str
    b: str
    kind: str
    capacity_gb_s: float  # per direction


@dataclass(frozen=True)
class ClosShape:
    """Switch counts of a fabric, without cables or capacities (what validation needs)."""
    rack_names: tuple[str, ...]
    node_rack: np.ndarray   # (N,) rack id of each node
    spines: int             # per pod (the whole hall in a two-tier fabric)
    racks_per_pod: int = 0  # 0: two-tier, no pods
    super_spines: int = 0
    storage_targets: int = 0

    @property
    def n_nodes(self) -> int: return int(self.node_rack.size)
    @property
    def n_racks(self) -> int: return len(self.rack_names)
    @property
    def tiered(self) -> bool: return self.racks_per_pod > 0
    @property
    def pods(self) -> int: return -(-self.n_racks // self.racks_per_pod) if self.tiered else 1
    @property
    def n_spines(self) -> int: return self.pods * self.spines
    @property
    def per_plane(self) -> int: return self.super_spines // self.spines if self.tiered else 0

    def pod_of_rack(self, rack: int) -> int:
        return rack // self.racks_per_pod if self.tiered else 0


def _tiers(fabric: "FabricSectionSpec") -> tuple[int, int, int, int]:
    """(spines, racks_per_pod, super_spines, storage_targets) built: storage only if weights load over it."""
    return (fabric.spines, fabric.racks_per_pod, fabric.super_spines if fabric.racks_per_pod > 0 else 0,
            fabric.storage_targets if fabric.load_from == "network" else 0)


def shape_of(fabric: "FabricSectionSpec", rack_names: Iterable[str], node_rack: np.ndarray) -> ClosShape:
    """The shape a scenario's `fabric:` section builds."""
    return ClosShape(tuple(rack_names), np.asarray(node_rack), *_tiers(fabric))


def n_cables(n_nodes: int, n_racks: int, spines: int, racks_per_pod: int = 0, super_spines: int = 0,
             storage_targets: int = 0) -> int:
    """Cables of a fabric by counting: one NIC cable per node, `spines` uplinks per leaf, in a pod
    fabric `super_spines / spines` uplinks per pod spine (pods x super_spines), and one cable from
    each storage target to each top-tier switch."""
    if racks_per_pod <= 0:
        return n_nodes + n_racks * spines + storage_targets * spines
    pods = -(-n_racks // racks_per_pod)
    return n_nodes + n_racks * spines + pods * super_spines + storage_targets * super_spines


def cable_count(fabric: "FabricSectionSpec", n_nodes: int, n_racks: int) -> int:
    """Cables (rows per sample of the `links` table) of the fabric `fabric` describes on a hall
    of `n_nodes` nodes in `n_racks` racks, without building it; 0 when the fabric is off."""
    return n_cables(n_nodes, n_racks, *_tiers(fabric)) if fabric.enabled else 0


# ---------------------------------------------------------------- cable ids (the links table's link_id)
class _Ids:
    """Cable ids in table order: NIC cables (node id), leaf-spine (rack, pod spine), spine-super
    (pod spine, its plane's super-spines), storage (target, top-tier switch)."""

    def __init__(self, s: ClosShape) -> None:
        self.s = s
        self.ls0 = s.n_nodes
        self.ss0 = self.ls0 + s.n_racks * s.spines
        self.st0 = self.ss0 + (s.pods * s.super_spines if s.tiered else 0)
        self.total = self.st0 + s.storage_targets * (s.super_spines if s.tiered else s.spines)

    def leaf_spine(self, rack: int, k: int) -> int:  # k: the spine's index inside the rack's pod
        return self.ls0 + rack * self.s.spines + k

    def spine_super(self, spine: int, sup: int) -> int:  # spine: hall-wide; sup in the spine's plane
        return self.ss0 + spine * self.s.per_plane + sup % self.s.per_plane

    def storage(self, j: int, top: int) -> int:  # top: spine (two-tier) or super-spine
        return self.st0 + j * (self.s.super_spines if self.s.tiered else self.s.spines) + top


def _by_name(prefix: str, ids: Iterable[int]) -> list[int]:
    """Ids in the order their element names sort ('spine:10' < 'spine:2'): the order ECMP paths
    are listed in, so the flow hash picks the same path as a sorted graph search would."""
    return sorted(ids, key=lambda i: f"{prefix}:{i}")


@dataclass(frozen=True)
class FabricGraph:
    """The static fabric: cables indexed by link id, the shape, and (lazily) a networkx graph."""
    shape: ClosShape
    cable_a: tuple[str, ...]
    cable_b: tuple[str, ...]
    cable_kind: tuple[str, ...]
    cable_cap_gb_s: np.ndarray  # (L,) per direction
    switch_latency_s: float
    nic_latency_s: float

    @property
    def n_links(self) -> int:
        return len(self.cable_a)

    @cached_property
    def cables(self) -> tuple[Cable, ...]:
        return tuple(Cable(i, a, b, k, float(c)) for i, (a, b, k, c) in
                     enumerate(zip(self.cable_a, self.cable_b, self.cable_kind, self.cable_cap_gb_s)))

    def capacity_directed_gb_s(self) -> np.ndarray:
        """(2L,) capacity of each directed link; index 2*link_id + direction."""
        return np.repeat(self.cable_cap_gb_s, 2)

    @cached_property
    def ids(self) -> _Ids:
        return _Ids(self.shape)

    @cached_property
    def orders(self) -> "_Orders":
        return _Orders(self.shape)

    @cached_property
    def cable_of(self) -> dict[tuple[str, str], int]:
        """(a, b) and (b, a) -> cable id."""
        out = {(a, b): i for i, (a, b) in enumerate(zip(self.cable_a, self.cable_b))}
        out.update({(b, a): i for (a, b), i in list(out.items())})
        return out

    @cached_property
    def elements(self) -> frozenset[str]:
        return frozenset(self.cable_a) | frozenset(self.cable_b)

    @cached_property
    def graph(self) -> "nx.Graph":
        """The networkx graph, built on first use (only failures that leave no structural path need it)."""
        import networkx as nx
        g = nx.Graph()
        g.add_edges_from((a, b, {"link_id": i}) for i, (a, b) in enumerate(zip(self.cable_a, self.cable_b)))
        return g


def build_fabric(rack_names: Iterable[str], node_rack: np.ndarray, nic_gb_s: float, nic_latency_s: float,
                 spines: int, oversubscription: float, switch_latency_s: float, storage_targets: int = 0,
                 storage_gb_s: float = 46.0, racks_per_pod: int = 0, super_spines: int = 0,
                 pod_oversubscription: float = 1.0) -> FabricGraph:
    """Build the cables of a leaf-spine (racks_per_pod 0) or pod Clos fabric.

    Leaf-to-spine cable = nodes_in_rack x nic_gb_s / (oversubscription x spines): a rack's total
    uplink is its downlink over the oversubscription ratio (Clos sizing). Pod spine-to-super
    cable = nodes_in_pod x nic_gb_s / (oversubscription x pod_oversubscription x super_spines):
    a pod spine's downlink (1/spines of its pod's leaf uplinks) over pod_oversubscription,
    split over the super_spines / spines super-spines of its plane. Storage cables:
    storage_gb_s split evenly over the top-tier switches.
    """
    racks = tuple(rack_names)
    node_rack = np.asarray(node_rack)
    s = ClosShape(racks, node_rack, spines, racks_per_pod, super_spines if racks_per_pod > 0 else 0, storage_targets)
    n, n_r = s.n_nodes, s.n_racks
    per_rack = np.bincount(node_rack, minlength=n_r)
    a = [f"node:{i}" for i in range(n)]
    b = [f"leaf:{racks[int(r)]}" for r in node_rack]
    kind = ["nic-leaf"] * n
    cap = [np.full(n, float(nic_gb_s))]
    pod = np.arange(n_r) // racks_per_pod if s.tiered else np.zeros(n_r, dtype=np.int64)
    for r, name in enumerate(racks):
        a += [f"leaf:{name}"] * spines
        b += [f"spine:{int(pod[r]) * spines + k}" for k in range(spines)]
    kind += ["leaf-spine"] * (n_r * spines)
    cap.append(np.repeat(per_rack * nic_gb_s / (oversubscription * spines), spines))
    if s.tiered:
        per_pod = np.bincount(pod, weights=per_rack, minlength=s.pods)
        for g in range(s.n_spines):
            k = g % spines
            a += [f"spine:{g}"] * s.per_plane
            b += [f"super:{k * s.per_plane + j}" for j in range(s.per_plane)]
        kind += ["spine-super"] * (s.n_spines * s.per_plane)
        up = per_pod * nic_gb_s / (oversubscription * pod_oversubscription * s.super_spines)
        cap.append(np.repeat(up, spines * s.per_plane))
    top, top_kind = (("super", s.super_spines), "storage-super") if s.tiered else (("spine", spines), "storage-spine")
    for j in range(storage_targets):
        a += [f"storage:{j}"] * top[1]
        b += [f"{top[0]}:{k}" for k in range(top[1])]
    kind += [top_kind] * (storage_targets * top[1])
    cap.append(np.full(storage_targets * top[1], storage_gb_s / top[1]))
    return FabricGraph(s, tuple(a), tuple(b), tuple(kind), np.concatenate(cap).astype(float),
                       switch_latency_s, nic_latency_s)


# ---------------------------------------------------------------- names (fault targets)
def parse_element(target: str) -> tuple[str, str] | None:
    """'spine:0' -> ('element', 'spine:0'); 'leaf:A01-spine:0' -> ('link', ...); None if malformed."""
    t = target.strip()
    if "-" in t:
        a, _, b = t.partition("-")
        ok = all(x.split(":")[0] in ELEMENT_KINDS and ":" in x for x in (a, b))
        return ("link", f"{a}-{b}") if ok else None
    if t.split(":")[0] in ELEMENT_KINDS and ":" in t:
        return ("element", t)
    return None


def element_names(s: ClosShape) -> set[str]:
    """Every switch/endpoint name a fault may target (no graph needed: used by validation)."""
    names = {f"node:{i}" for i in range(s.n_nodes)} | {f"leaf:{r}" for r in s.rack_names}
    names |= {f"spine:{k}" for k in range(s.n_spines)} | {f"super:{k}" for k in range(s.super_spines)}
    return names | {f"storage:{j}" for j in range(s.storage_targets)}


def cable_between(s: ClosShape, a: str, b: str) -> bool:
    """Whether the fabric of shape `s` has a cable joining the known elements a and b."""
    racks = {name: r for r, name in enumerate(s.rack_names)}
    for x, y in ((a, b), (b, a)):
        kx, _, vx = x.partition(":")
        ky, _, vy = y.partition(":")
        if kx == "node" and ky == "leaf" and vx.isdigit():
            return s.rack_names[int(s.node_rack[int(vx)])] == vy
        if kx == "leaf" and ky == "spine":
            return int(vy) // s.spines == s.pod_of_rack(racks[vx])
        if kx == "spine" and ky == "super" and s.tiered:
            return int(vx) % s.spines == int(vy) // s.per_plane
        if kx == "storage" and ky == ("super" if s.tiered else "spine"):
            return True
    return False


def cable_rule(s: ClosShape) -> str:
    """Which cables exist, in words (for error messages)."""
    if not s.tiered:
        return "cables join a node to its rack's leaf, a leaf to each spine and a storage target to each spine"
    return (f"cables join a node to its rack's leaf, a leaf to each of its pod's {s.spines} spines "
            f"(pod p: spine:{s.spines}p..), pod spine k to the {s.per_plane} super-spines of plane k mod "
            f"{s.spines}, and a storage target to each super-spine")


# ---------------------------------------------------------------- paths
def _node(name: str) -> int: return int(name.split(":", 1)[1])


class Paths:
    """Equal-cost paths listed lazily: path i is built only when asked for (a flow hash picks
    one of a cross-pod pair's `super_spines` paths without building the others)."""

    def __init__(self, n: int, build) -> None:
        self._n, self._build = n, build

    def __len__(self) -> int: return self._n
    def __iter__(self): return (self._build(i) for i in range(self._n))
    def __eq__(self, other: object) -> bool: return isinstance(other, (list, Paths)) and list(self) == list(other)

    def __getitem__(self, i: int) -> tuple[int, ...]:
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return self._build(i % self._n)


class _Orders:
    """Switch orders of the path listing, cached per pod / plane: ids sorted by element name."""

    def __init__(self, s: ClosShape) -> None:
        self.s = s
        self.spines = _by_name("spine", range(s.spines))  # two-tier spines
        self._pod: dict[int, list[int]] = {}
        self._cross: dict[int, list[tuple[int, int]]] = {}
        self.supers = _by_name("super", range(s.super_spines))

    def pod_spines(self, pod: int) -> list[int]:
        if pod not in self._pod:
            self._pod[pod] = _by_name("spine", range(pod * self.s.spines, (pod + 1) * self.s.spines))
        return self._pod[pod]

    def cross(self, pod: int) -> list[tuple[int, int]]:
        """(pod spine, super-spine) in listing order for paths leaving `pod`."""
        if pod not in self._cross:
            pp = self.s.per_plane
            self._cross[pod] = [(g, sup) for g in self.pod_spines(pod)
                                for sup in _by_name("super", range((g % self.s.spines) * pp, (g % self.s.spines + 1) * pp))]
        return self._cross[pod]


def structural_paths(fg: FabricGraph, src: str, dst: str) -> Paths | None:
    """The equal-cost shortest paths of the healthy fabric from its structure, as tuples of
    directed link indices, listed as a sorted graph search lists them (by element names);
    None for pairs the engine never routes (then a graph search answers).

    node -> its leaf -> [pod spine k -> [super-spine of plane k -> spine k of the other pod] ->
    the other leaf] -> node; storage -> top-tier switch -> ... -> leaf -> node.
    """
    s, ids, order = fg.shape, fg.ids, fg.orders
    ks, kd = src.split(":")[0], dst.split(":")[0]
    if kd != "node" or ks not in ("node", "storage") or dst not in fg.elements or src not in fg.elements:
        return None
    b = _node(dst)
    rb = int(s.node_rack[b])
    pb = s.pod_of_rack(rb)
    down = (2 * b + 1,)
    if ks == "storage":
        j = _node(src)
        if not s.tiered:
            return Paths(s.spines, lambda i: (2 * ids.storage(j, order.spines[i]),
                                              2 * ids.leaf_spine(rb, order.spines[i]) + 1) + down)

        def via_super(i: int) -> tuple[int, ...]:
            sup = order.supers[i]
            g = pb * s.spines + sup // s.per_plane
            return (2 * ids.storage(j, sup), 2 * ids.spine_super(g, sup) + 1, 2 * ids.leaf_spine(rb, g % s.spines) + 1) + down
        return Paths(s.super_spines, via_super)
    a = _node(src)
    ra = int(s.node_rack[a])
    pa = s.pod_of_rack(ra)
    up = (2 * a,)
    if ra == rb:
        return Paths(1, lambda i: up + down)
    if pa == pb:
        ks_ = [g % s.spines for g in order.pod_spines(pa)]
        return Paths(s.spines, lambda i: up + (2 * ids.leaf_spine(ra, ks_[i]), 2 * ids.leaf_spine(rb, ks_[i]) + 1) + down)
    cross = order.cross(pa)

    def via_pods(i: int) -> tuple[int, ...]:
        ga, sup = cross[i]
        k = ga % s.spines
        return up + (2 * ids.leaf_spine(ra, k), 2 * ids.spine_super(ga, sup), 2 * ids.spine_super(pb * s.spines + k, sup) + 1,
                     2 * ids.leaf_spine(rb, k) + 1) + down
    return Paths(len(cross), via_pods)


def _directed(fg: FabricGraph, path: list[str]) -> tuple[int, ...]:
    """Element names along a path -> directed link indices."""
    hops = []
    for u, v in zip(path, path[1:]):
        c = fg.cable_of[(u, v)]
        hops.append(2 * c + (0 if fg.cable_a[c] == u else 1))
    return tuple(hops)


def _search(fg: FabricGraph, src: str, dst: str, down_links: frozenset[int],
            down_elements: frozenset[str]) -> list[tuple[int, ...]]:
    """All shortest paths in the graph with failed cables and switches removed (sorted)."""
    import networkx as nx
    g = fg.graph
    view = nx.restricted_view(g, [e for e in down_elements if e in g],
                              [(fg.cable_a[i], fg.cable_b[i]) for i in down_links])
    if src not in view or dst not in view or not nx.has_path(view, src, dst):
        return []
    return [_directed(fg, path) for path in sorted(nx.all_shortest_paths(view, src, dst))]


def ecmp_paths(fg: FabricGraph, src: str, dst: str, down_links: frozenset[int] = frozenset(),
               down_elements: frozenset[str] = frozenset()) -> "list[tuple[int, ...]] | Paths":
    """Equal-cost shortest paths src -> dst as tuples of directed link indices (2*id + dir).

    Failed links and switches are removed first; [] when dst is unreachable.
    """
    paths = structural_paths(fg, src, dst)
    if paths is None:
        return _search(fg, src, dst, down_links, down_elements)
    if not down_links and not down_elements:
        return paths

    def alive(p: tuple[int, ...]) -> bool:
        return all(h // 2 not in down_links and fg.cable_a[h // 2] not in down_elements
                   and fg.cable_b[h // 2] not in down_elements for h in p)
    kept = [p for p in paths if alive(p)]
    # a surviving shortest path: the damaged graph's shortest paths are exactly these
    return kept if kept else _search(fg, src, dst, down_links, down_elements)


def ecmp_pick(paths: "list[tuple[int, ...]] | Paths", src: str, dst: str) -> tuple[int, ...] | None:
    """The path a switch's flow hash would choose: stable across runs and platforms (CRC32)."""
    if not paths:
        return None
    return paths[zlib.crc32(f"{src}>{dst}".encode()) % len(paths)]


def reaches_top(fg: FabricGraph, down_links: frozenset[int], down_elements: frozenset[str]) -> np.ndarray:
    """(N,) True where a node still reaches a live top-tier switch (spine, or super-spine in a pod
    fabric: where the requests enter) over the damaged graph: its connected component holds one."""
    s = fg.shape
    if not down_links and not down_elements:
        return np.ones(s.n_nodes, dtype=bool)
    import networkx as nx
    g = fg.graph
    view = nx.restricted_view(g, [e for e in down_elements if e in g],
                              [(fg.cable_a[i], fg.cable_b[i]) for i in down_links])
    top = "super" if s.tiered else "spine"
    ok = np.zeros(s.n_nodes, dtype=bool)
    for comp in nx.connected_components(view):
        if any(e.startswith(top + ":") for e in comp):
            ok[[_node(e) for e in comp if e.startswith("node:")]] = True
    return ok
