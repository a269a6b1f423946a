"""The RDMA fabric: a leaf-spine graph, ECMP paths, max-min fair bandwidth. The only networkx user.

Graph (built from the scenario's topology and the catalogue's NIC):

    node:<id> --nic-leaf--> leaf:<rack> --leaf-spine--> spine:<k> <--storage-spine-- storage:<j>

* one ConnectX-7 per node (catalogue `nics`: achievable ~46 GB/s of a 400 Gb/s link, ~1 us
  one-way RDMA latency; hardware.md "Fabric"), one top-of-rack leaf per rack, `spines` spine
  switches, every leaf wired to every spine;
* a leaf's uplink capacity is its downlink capacity divided by `oversubscription` (1.0 = a
  non-blocking Clos), split evenly over the spines;
* storage targets (for model loading over the network) hang off every spine with
  `storage_gb_s` each, split evenly over the spines.

Cables are full duplex: each is two directed links of the same capacity. A flow takes one of its
equal-cost shortest paths, chosen by a stable hash of its endpoints (ECMP flow hashing, as
switches do; two flows may collide on one spine, which is real). Bandwidth is shared max-min
fairly (progressive filling; Bertsekas & Gallager, *Data Networks*, 2nd ed., sec. 6.5.2).

Traffic the engine puts on the fabric each tick (FabricModel.step):
* pipeline-parallel activations between consecutive stages on different nodes: tokens/s x
  hidden_size x 2 B (BF16 activations) per hop; a burst of one micro-batch sees the bandwidth the
  other flows leave free, at least its elastic max-min share;
* model loading from a storage target when `fabric.load_from: network`: elastic, capped by the
  node's PCIe host-to-device rate.
"""
from __future__ import annotations

import zlib
from itertools import chain
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import networkx as nx
import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from twin.spec.catalogue import NicSpec
    from twin.spec.scenario import FabricSectionSpec
    from twin.spec.topology import Topology

GB = 1e9
KINDS = ("nic-leaf", "leaf-spine", "storage-spine")


@dataclass(frozen=True)
class Cable:
    """One full-duplex cable; `a` -> `b` is direction 0, `b` -> `a` direction 1."""
    link_id: int
    a: str
    b: str
    kind: str
    capacity_gb_s: float  # per direction


@dataclass(frozen=True)
class FabricGraph:
    """The static fabric: networkx graph plus cables indexed by link id."""
    graph: nx.Graph
    cables: tuple[Cable, ...]
    switch_latency_s: float
    nic_latency_s: float

    @property
    def n_links(self) -> int:
        return len(self.cables)

    def capacity_directed_gb_s(self) -> np.ndarray:
        """(2L,) capacity of each directed link; index 2*link_id + direction."""
        return np.repeat([c.capacity_gb_s for c in self.cables], 2)


def build_fabric(rack_names: Iterable[str], node_rack: np.ndarray, nic_gb_s: float, nic_latency_s: float,
                 spines: int, oversubscription: float, switch_latency_s: float, storage_targets: int = 0,
                 storage_gb_s: float = 46.0) -> FabricGraph:
    """Build the leaf-spine graph.

    Leaf-to-spine cable capacity = nodes_in_rack * nic_gb_s / (oversubscription * spines), so a
    rack's total uplink is its total downlink over the oversubscription ratio (Clos sizing).
    """
    racks = list(rack_names)
    node_rack = np.asarray(node_rack)
    g = nx.Graph()
    cables: list[Cable] = []

    def wire(a: str, b: str, kind: str, cap: float) -> None:
        cables.append(Cable(len(cables), a, b, kind, float(cap)))
        g.add_edge(a, b, link_id=len(cables) - 1)

    for n, r in enumerate(node_rack):
        wire(f"node:{n}", f"leaf:{racks[int(r)]}", "nic-leaf", nic_gb_s)
    per_rack = np.bincount(node_rack, minlength=len(racks))
    for r, name in enumerate(racks):
        up = per_rack[r] * nic_gb_s / (oversubscription * spines)
        for k in range(spines):
            wire(f"leaf:{name}", f"spine:{k}", "leaf-spine", up)
    for j in range(storage_targets):
        for k in range(spines):
            wire(f"storage:{j}", f"spine:{k}", "storage-spine", storage_gb_s / spines)
    return FabricGraph(graph=g, cables=tuple(cables), switch_latency_s=switch_latency_s,
                       nic_latency_s=nic_latency_s)


def parse_element(target: str) -> tuple[str, str] | None:
    """'spine:0' -> ('element', 'spine:0'); 'leaf:A01-spine:0' -> ('link', ...); None if malformed."""
    t = target.strip()
    if "-" in t:
        a, _, b = t.partition("-")
        ok = all(x.split(":")[0] in ("node", "leaf", "spine", "storage") and ":" in x for x in (a, b))
        return ("link", f"{a}-{b}") if ok else None
    if t.split(":")[0] in ("node", "leaf", "spine", "storage") and ":" in t:
        return ("element", t)
    return None


def element_names(rack_names: Iterable[str], n_nodes: int, spines: int, storage_targets: int) -> set[str]:
    """Every switch/endpoint name a fault may target (no graph needed: used by validation)."""
    names = {f"node:{i}" for i in range(n_nodes)} | {f"leaf:{r}" for r in rack_names}
    return names | {f"spine:{k}" for k in range(spines)} | {f"storage:{j}" for j in range(storage_targets)}


def _directed(fg: FabricGraph, path: list[str]) -> tuple[int, ...]:
    hops = []
    for u, v in zip(path, path[1:]):
        c = fg.cables[fg.graph.edges[u, v]["link_id"]]
        hops.append(2 * c.link_id + (0 if c.a == u else 1))
    return tuple(hops)


def ecmp_paths(fg: FabricGraph, src: str, dst: str, down_links: frozenset[int] = frozenset(),
               down_elements: frozenset[str] = frozenset()) -> list[tuple[int, ...]]:
    """Equal-cost shortest paths src -> dst as tuples of directed link indices (2*id + dir).

    Failed links and switches are removed first; [] when dst is unreachable.
    """
    g = fg.graph
    if not down_links and not down_elements:
        return leaf_spine_paths(fg, src, dst)
    view = nx.restricted_view(g, [e for e in down_elements if e in g],
                              [(fg.cables[i].a, fg.cables[i].b) for i in down_links])
    if src not in view or dst not in view or not nx.has_path(view, src, dst):
        return []
    return [_directed(fg, path) for path in sorted(nx.all_shortest_paths(view, src, dst))]


def leaf_spine_paths(fg: FabricGraph, src: str, dst: str) -> list[tuple[int, ...]]:
    """ecmp_paths of a healthy leaf-spine fabric from its structure, without a graph search
    (a search per pair costs a BFS of the whole hall): node -> its leaf -> [a spine -> the other
    leaf] -> node; storage -> a spine -> leaf -> node; node -> leaf -> spine. Every spine that both
    ends reach gives one path; sorted by element names as ecmp_paths sorts them."""
    g = fg.graph
    if src not in g or dst not in g:
        return []

    def up(x: str) -> str:  # a node's one leaf
        return next(iter(g[x]))

    def spines(x: str) -> set[str]:
        return {n for n in g[x] if n.startswith("spine:")}

    kind_s, kind_d = src.split(":")[0], dst.split(":")[0]
    if kind_s == "node" and kind_d == "node":
        la, lb = up(src), up(dst)
        paths = [[src, la, dst]] if la == lb else [[src, la, s, lb, dst] for s in spines(la) & spines(lb)]
    elif kind_s == "storage" and kind_d == "node":
        lb = up(dst)
        paths = [[src, s, lb, dst] for s in spines(src) & spines(lb)]
    elif kind_s == "node" and kind_d == "spine":
        la = up(src)
        paths = [[src, la, dst]] if dst in g[la] else []
    else:  # anything else: search
        return [_directed(fg, p) for p in sorted(nx.all_shortest_paths(g, src, dst))] if nx.has_path(g, src, dst) else []
    return [_directed(fg, p) for p in sorted(paths)]


def ecmp_pick(paths: list[tuple[int, ...]], src: str, dst: str) -> tuple[int, ...] | None:
    """The path a switch's flow hash would choose: stable across runs and platforms (CRC32)."""
    if not paths:
        return None
    return paths[zlib.crc32(f"{src}>{dst}".encode()) % len(paths)]


def max_min_fair_gb_s(incidence: np.ndarray, capacity_gb_s: np.ndarray, demand_gb_s: np.ndarray) -> np.ndarray:
    """Max-min fair rates of F flows over L links by progressive filling.

    `incidence` (F, L) bool: flow f crosses link l. Flows with demand d_f stop growing at d_f
    (np.inf = elastic). All unfrozen flows grow together until a link saturates or a flow meets
    its demand; those freeze; repeat. Source: Bertsekas & Gallager, Data Networks, sec. 6.5.2.
    """
    inc = np.asarray(incidence, dtype=bool)
    n_f = inc.shape[0]
    rate = np.zeros(n_f)
    left = np.asarray(capacity_gb_s, dtype=float).copy()
    demand = np.asarray(demand_gb_s, dtype=float)
    active = demand > 0
    # a flow that crosses no link is limited only by its demand
    free = active & ~inc.any(axis=1)
    rate[free] = np.where(np.isfinite(demand[free]), demand[free], 0.0)
    active &= ~free
    while active.any():
        n_on = inc[active].sum(axis=0)
        used = n_on > 0
        link_inc = np.min(left[used] / n_on[used]) if used.any() else np.inf
        inc_step = min(link_inc, float(np.min(demand[active] - rate[active])))
        inc_step = max(inc_step, 0.0)
        rate[active] += inc_step
        left -= inc_step * n_on
        saturated = used & (left <= 1e-12 * np.maximum(capacity_gb_s, 1.0))
        done = (rate >= demand - 1e-12) | inc[:, saturated].any(axis=1)
        active &= ~done
    return rate


@dataclass(frozen=True)
class _FlowSet:
    """Flows active together: incidence over the links they use and static sharing figures."""
    inc: np.ndarray        # (F, L') bool over `used` directed links
    used: np.ndarray       # (L',) directed link indices
    cap: np.ndarray        # (L',) GB/s
    rep: np.ndarray        # (F,) replica of a pipeline flow, else -1
    node: np.ndarray       # (F,) loading node of a load flow, else -1
    is_pp: np.ndarray      # (F,) bool
    src_node: np.ndarray   # (F,) node id at the source end, -1 for storage
    dst_node: np.ndarray   # (F,)
    elastic: np.ndarray    # (F,) max-min share if pipeline flows were unbounded, GB/s
    inc_count: np.ndarray  # (L',) flows on each used link
    entry_col: np.ndarray  # (sum of path lengths,) column of each (flow, link) entry, flow by flow
    entry_flow: np.ndarray  # (same,) its flow
    flow_ptr: np.ndarray   # (F,) first entry of each flow (paths are never empty)


class FabricModel:
    """Runtime fabric state: flows each tick, link accumulators, failures.

    Built from the fabric spec, the topology, the NIC, the node's PCIe host-to-device rate, the
    tick, and per replica its cross-node pipeline hops (src, dst node pairs in stage order) and
    activation bytes per token. Arrays callers read after `step`: rep_nic_gb_s (R_rep,) bandwidth
    a replica's pipeline hop sees, rep_cross_latency_s (R_rep,) RDMA latency of all its cross-node
    hops, loading_rate_gb_s (N,) network weight-load rate, node_load_gb_s (N,), node_nic_gb_s (N,).
    Failures are counted per element, so two overlapping faults on one element need two restores.
    """

    def __init__(self, spec: "FabricSectionSpec", topo: "Topology", nic: "NicSpec", h2d_gb_s: float, dt_s: float,
                 rep_cross_hops: "tuple[tuple[tuple[int, int], ...], ...]", rep_hidden_bytes: np.ndarray) -> None:
        self.spec = spec
        self.fg = build_fabric(topo.rack_names, topo.node_rack, nic.achievable_gb_s, nic.latency_s, spec.spines,
                               spec.oversubscription, spec.switch_latency_s,
                               spec.storage_targets if spec.load_from == "network" else 0, spec.storage_gb_s)
        self.N = topo.n_nodes
        self.dt_s = dt_s
        self.nic_gb_s = nic.achievable_gb_s
        self.h2d_gb_s = h2d_gb_s
        self.cap = self.fg.capacity_directed_gb_s()
        # failed links / elements with the number of faults holding each down (overlapping faults
        # on one element need all of them cleared)
        self.down_links: dict[int, int] = {}
        self.down_elements: dict[str, int] = {}
        self._paths: dict[tuple[str, str], tuple[int, ...] | None] = {}
        # cross-node pipeline hops of every replica in stage order, and activation bytes per token
        self.rep_hops = rep_cross_hops
        self.rep_has_hops = np.array([len(h) > 0 for h in rep_cross_hops], dtype=bool)
        self.rep_hidden_bytes = rep_hidden_bytes
        self.unit_nodes = [list(u) for u in topo.unit_nodes]
        self.n_rep = len(topo.replicas)
        self.rep_nic_gb_s = np.full(self.n_rep, self.nic_gb_s)
        self.rep_cross_latency_s = self._cross_latency()
        self.loading_rate_gb_s = np.zeros(self.N)
        self.node_load_gb_s = np.zeros(self.N)
        self.node_nic_gb_s = np.zeros(self.N)
        self._acc_bytes = np.zeros(2 * self.fg.n_links)
        self._acc_flows = np.zeros(self.fg.n_links)
        self._version = 0
        self._cache_key: tuple | None = None
        self._cache: _FlowSet | None = None

    # ---------------------------------------------------------------- paths and failures
    def path(self, src: str, dst: str) -> tuple[int, ...] | None:
        key = (src, dst)
        if key not in self._paths:
            self._paths[key] = ecmp_pick(ecmp_paths(self.fg, src, dst, frozenset(self.down_links),
                                                    frozenset(self.down_elements)), src, dst)
        return self._paths[key]

    def _resolve(self, target: str) -> tuple[str, object]:
        parsed = parse_element(target)
        if parsed is None:
            raise ValueError(f"unknown fabric element {target!r}")
        kind, name = parsed
        if kind == "element":
            if name not in self.fg.graph:
                raise ValueError(f"unknown fabric element {target!r}")
            if name.startswith("node:"):  # a node's NIC: its only cable
                (nbr,) = list(self.fg.graph.neighbors(name))
                return "link", self.fg.graph.edges[name, nbr]["link_id"]
            return "element", name
        a, b = name.split("-", 1)
        if not self.fg.graph.has_edge(a, b):
            raise ValueError(f"no cable {target!r} in the fabric")
        return "link", self.fg.graph.edges[a, b]["link_id"]

    def fail(self, target: str) -> None:
        kind, what = self._resolve(target)
        down: dict = self.down_links if kind == "link" else self.down_elements
        down[what] = down.get(what, 0) + 1
        self._changed()

    def restore(self, target: str) -> None:
        kind, what = self._resolve(target)
        down: dict = self.down_links if kind == "link" else self.down_elements
        if down.get(what, 0) > 1:
            down[what] -= 1
            return  # another fault still holds it down: nothing changes
        down.pop(what, None)
        self._changed()

    def _changed(self) -> None:
        self._paths.clear()
        self._version += 1
        self.rep_cross_latency_s = self._cross_latency()

    def _cross_latency(self) -> np.ndarray:
        """Per replica: sum over cross-node hops of 2 NIC latencies + switches on the path."""
        out = np.zeros(self.n_rep)
        for r, hops in enumerate(self.rep_hops):
            for a, b in hops:
                p = self.path(f"node:{a}", f"node:{b}")
                switches = (len(p) - 1) if p else 1
                out[r] += 2 * self.fg.nic_latency_s + switches * self.fg.switch_latency_s
        return out

    def unit_connected(self) -> np.ndarray:
        """(U,) True where every node of the unit reaches a live spine (the requests' ingress)."""
        spines = [n for n in self.fg.graph if n.startswith("spine:") and n not in self.down_elements]
        ok = np.ones(len(self.unit_nodes), dtype=bool)
        reach: dict[int, bool] = {}
        for u, nodes in enumerate(self.unit_nodes):
            for nd in nodes:
                if nd not in reach:
                    reach[nd] = any(self.path(f"node:{nd}", s) is not None for s in spines)
                if not reach[nd]:
                    ok[u] = False
                    break
        return ok

    # ---------------------------------------------------------------- per tick
    def _flow_set(self, active_reps: np.ndarray, loading_nodes: np.ndarray) -> "_FlowSet | None":
        """Flows, their paths and the static part of the sharing for this set of active parts.

        The set changes only when replicas start/stop serving, nodes start/finish loading or the
        fabric fails, so it is cached; only the demands change from tick to tick.
        """
        key = (active_reps.tobytes(), loading_nodes.tobytes(), self._version)
        if self._cache_key == key:
            return self._cache
        rep, node, src_node, dst_node, paths = [], [], [], [], []
        for r in active_reps:
            for a, b in self.rep_hops[r]:
                p = self.path(f"node:{a}", f"node:{b}")
                if p is not None:
                    rep.append(int(r)); node.append(-1); src_node.append(a); dst_node.append(b); paths.append(p)
        n_storage = max(self.spec.storage_targets, 1)
        for nd in loading_nodes:
            p = self.path(f"storage:{int(nd) % n_storage}", f"node:{int(nd)}")
            if p is not None:
                rep.append(-1); node.append(int(nd)); src_node.append(-1); dst_node.append(int(nd)); paths.append(p)
        flows = None
        if paths:
            lengths = np.fromiter(map(len, paths), dtype=np.int64, count=len(paths))
            flat = np.fromiter(chain.from_iterable(paths), dtype=np.int64, count=int(lengths.sum()))
            used = np.unique(flat)
            entry_col = np.searchsorted(used, flat)
            entry_flow = np.repeat(np.arange(len(paths)), lengths)
            inc = np.zeros((len(paths), used.size), dtype=bool)
            inc[entry_flow, entry_col] = True
            rep_a, node_a = np.array(rep), np.array(node)
            cap = self.cap[used]
            is_pp = rep_a >= 0
            # elastic shares depend only on the structure: pipeline flows unbounded, loads at H2D
            elastic = max_min_fair_gb_s(inc, cap, np.where(is_pp, np.inf, self.h2d_gb_s))
            flows = _FlowSet(inc=inc, used=used, cap=cap, rep=rep_a, node=node_a, is_pp=is_pp,
                             src_node=np.array(src_node), dst_node=np.array(dst_node), elastic=elastic,
                             inc_count=inc.sum(axis=0), entry_col=entry_col, entry_flow=entry_flow,
                             flow_ptr=np.r_[0, np.cumsum(lengths)[:-1]])
        self._cache_key, self._cache = key, flows
        return flows

    def step(self, active_reps: np.ndarray, loading_nodes: np.ndarray, rep_tok_s: np.ndarray) -> None:
        """Place this tick's flows, share bandwidth, update the arrays callers read.

        `rep_tok_s` (R_rep,): tokens/s each replica pushed through its pipeline last tick (decode +
        prompt), the demand of its activation flows.
        """
        self.rep_nic_gb_s = np.full(self.n_rep, self.nic_gb_s)
        self.loading_rate_gb_s = np.zeros(self.N)
        self.node_load_gb_s = np.zeros(self.N)
        self.node_nic_gb_s = np.zeros(self.N)
        active = np.asarray(active_reps, dtype=np.int64)
        fs = self._flow_set(active[self.rep_has_hops[active]], np.asarray(loading_nodes, dtype=np.int64))
        if fs is None:
            return
        rep_rate = rep_tok_s
        ridx = np.where(fs.is_pp, fs.rep, 0)
        demand = np.where(fs.is_pp, rep_rate[ridx] * self.rep_hidden_bytes[ridx] / GB, self.h2d_gb_s)
        # max-min with demand caps gives every flow its demand when no link is over-asked
        # load per link: its flows' rates added in flow order (a sequential sum, not a BLAS
        # product whose blocking, and so whose last bits, depend on the machine)
        load = np.bincount(fs.entry_col, weights=demand[fs.entry_flow], minlength=fs.used.size)
        alloc = demand if np.all(load <= fs.cap) else max_min_fair_gb_s(fs.inc, fs.cap, demand)
        if alloc is not demand:
            load = np.bincount(fs.entry_col, weights=alloc[fs.entry_flow], minlength=fs.used.size)
        # bandwidth a burst sees: what the other flows leave free, at least the elastic fair share
        # (the minimum over each flow's own links, not over a dense flows x links matrix)
        residual = np.minimum.reduceat((fs.cap - load)[fs.entry_col] + alloc[fs.entry_flow], fs.flow_ptr)
        burst = np.maximum(residual, fs.elastic)
        np.minimum.at(self.rep_nic_gb_s, fs.rep[fs.is_pp], burst[fs.is_pp])
        ld = ~fs.is_pp
        self.loading_rate_gb_s[fs.node[ld]] = alloc[ld]
        self.node_load_gb_s[fs.node[ld]] = alloc[ld]
        for ends in (fs.src_node, fs.dst_node):
            ok = ends >= 0
            np.add.at(self.node_nic_gb_s, ends[ok], alloc[ok])
        self._acc_bytes[fs.used] += load * GB * self.dt_s
        self._acc_flows[fs.used // 2] += fs.inc_count

    def sample(self, time_s: float, n_ticks: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Close a telemetry interval of `n_ticks` ticks: (time, bytes, utilisation, mean flows) per cable."""
        by_dir = self._acc_bytes.reshape(-1, 2)
        cap = self.cap.reshape(-1, 2)[:, 0]
        span_s = n_ticks * self.dt_s
        util = by_dir.max(axis=1) / (cap * GB * span_s)
        out = (time_s, by_dir.sum(axis=1), util.astype(np.float32), np.rint(self._acc_flows / n_ticks))
        self._acc_bytes[:] = 0.0
        self._acc_flows[:] = 0.0
        return out

    def column_blocks(self, samples: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]],
                      per: int = 64) -> "Iterable[dict[str, object]]":
        """The `links` telemetry table (docs/telemetry.md) `per` samples at a time (bounded memory)."""
        L, cables = self.fg.n_links, self.fg.cables
        src, dst, kind = [c.a for c in cables], [c.b for c in cables], [c.kind for c in cables]
        for i in range(0, max(len(samples), 1), per):
            chunk = samples[i:i + per]
            S = len(chunk)
            yield {
                "time_s": np.repeat([s[0] for s in chunk], L), "link_id": np.tile(np.arange(L), S),
                "src": src * S, "dst": dst * S, "kind": kind * S,
                "bytes": np.concatenate([s[1] for s in chunk]) if S else np.zeros(0),
                "utilisation": np.concatenate([s[2] for s in chunk]) if S else np.zeros(0, np.float32),
                "active_flows": (np.concatenate([s[3] for s in chunk]) if S else np.zeros(0)).astype(np.int64),
            }
