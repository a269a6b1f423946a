"""The fabric at run time: this tick's flows on their ECMP paths, max-min fair shares, link
accumulators for the `links` table, failures and reachability.

Traffic the engine puts on the fabric each tick (FabricModel.step):
* pipeline-parallel activations between consecutive stages on different nodes: tokens/s x
  hidden_size x 2 B (BF16 activations) per hop; a burst of one micro-batch sees the bandwidth the
  other flows leave free, at least its elastic max-min share;
* model loading from a storage target when `fabric.load_from: network`: elastic, capped by the
  node's PCIe host-to-device rate.

Scale: every replica's hop paths are resolved once (and again after a failure) into flat
arrays, so a change in which replicas are busy regathers flows with array operations; sharing
works on the sparse (flow, link) entries (twin.model.maxmin). No step builds a links x flows
matrix or searches a graph; 16,000 nodes cost what their ~50,000 path entries cost.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from twin.model import fabric_kernel as fk
from twin.model.columns import Coded, repeat_each
from twin.model.fabric import GB, build_fabric, ecmp_paths, ecmp_pick, parse_element, reaches_top
from twin.model.maxmin import max_min_fair_sparse_gb_s

LINK_BLOCK_SAMPLES = 64  # samples per block of the links table (bounded memory while writing)

if TYPE_CHECKING:  # pragma: no cover
    from twin.spec.catalogue import NicSpec
    from twin.spec.scenario import FabricSectionSpec
    from twin.spec.topology import Topology


def _ranges(start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start[i], start[i] + length[i]) over i, without a Python loop."""
    total = int(length.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.cumsum(length) - length
    return np.repeat(start - offs, length) + np.arange(total)


@dataclass(frozen=True)
class _FlowSet:
    """Flows active together: their (flow, link) entries over the links they use and static sharing figures."""
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
    `compiled`: the per-tick arithmetic through twin.model.fabric_kernel (the same bytes).
    """

    def __init__(self, spec: "FabricSectionSpec", topo: "Topology", nic: "NicSpec", h2d_gb_s: float, dt_s: float,
                 rep_cross_hops: "tuple[tuple[tuple[int, int], ...], ...]", rep_hidden_bytes: np.ndarray,
                 compiled: bool = False) -> None:
        self.spec = spec
        self.compiled = compiled and fk.HAVE_NUMBA
        # the max-min filling: numpy's (the reference) or its compiled twin (same rates, bit for bit)
        self._max_min = fk.max_min_fair_gb_s if self.compiled else max_min_fair_sparse_gb_s
        self.fg = build_fabric(topo.rack_names, topo.node_rack, nic.achievable_gb_s, nic.latency_s, spec.spines,
                               spec.oversubscription, spec.switch_latency_s,
                               spec.storage_targets if spec.load_from == "network" else 0, spec.storage_gb_s,
                               spec.racks_per_pod, spec.super_spines, spec.pod_oversubscription)
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
        # cross-node pipeline hops of every replica in stage order (flat, replica by replica)
        self.rep_hops = rep_cross_hops
        n_hops = np.fromiter(map(len, rep_cross_hops), dtype=np.int64, count=len(rep_cross_hops))
        self.rep_has_hops = n_hops > 0
        self._rep_hop_ptr = np.r_[0, np.cumsum(n_hops)]
        self._hop_rep = np.repeat(np.arange(len(rep_cross_hops)), n_hops)
        pairs = np.array([ab for hops in rep_cross_hops for ab in hops], dtype=np.int64).reshape(-1, 2)
        self._hop_src, self._hop_dst = pairs[:, 0], pairs[:, 1]
        self.rep_hidden_bytes = rep_hidden_bytes
        self.unit_nodes = [list(u) for u in topo.unit_nodes]
        self.n_rep = len(topo.replicas)
        self.n_storage = max(self.spec.storage_targets, 1)
        self._route_hops()
        self.rep_nic_gb_s = np.full(self.n_rep, self.nic_gb_s)
        self.rep_cross_latency_s = self._cross_latency()
        self.loading_rate_gb_s = np.zeros(self.N)
        self.node_load_gb_s = np.zeros(self.N)
        self.node_nic_gb_s = np.zeros(self.N)
        self._acc_bytes = np.zeros(2 * self.fg.n_links)
        self._acc_flows = np.zeros(self.fg.n_links)
        self._cable_cap_b = self.cap.reshape(-1, 2)[:, 0] * GB  # bytes/s one direction of a cable carries
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

    def _route_hops(self) -> None:
        """Every pipeline hop's current path as flat arrays: hop h uses _route[_hop_ptr[h]:+_hop_len[h]]."""
        paths = [self.path(f"node:{a}", f"node:{b}") for a, b in zip(self._hop_src.tolist(), self._hop_dst.tolist())]
        self._hop_len = np.fromiter((len(p) if p else 0 for p in paths), dtype=np.int64, count=len(paths))
        self._hop_ptr = np.cumsum(self._hop_len) - self._hop_len
        self._route = np.fromiter((h for p in paths if p for h in p), dtype=np.int64, count=int(self._hop_len.sum()))

    def _resolve(self, target: str) -> tuple[str, object]:
        parsed = parse_element(target)
        if parsed is None:
            raise ValueError(f"unknown fabric element {target!r}")
        kind, name = parsed
        if kind == "element":
            if name not in self.fg.elements:
                raise ValueError(f"unknown fabric element {target!r}")
            if name.startswith("node:"):  # a node's NIC: its only cable
                return "link", int(name.split(":", 1)[1])
            return "element", name
        a, b = name.split("-", 1)
        if (a, b) not in self.fg.cable_of:
            raise ValueError(f"no cable {target!r} in the fabric")
        return "link", self.fg.cable_of[(a, b)]

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
        self._route_hops()
        self.rep_cross_latency_s = self._cross_latency()

    def _cross_latency(self) -> np.ndarray:
        """Per replica: sum over cross-node hops of 2 NIC latencies + switches on the path."""
        switches = np.where(self._hop_len > 0, self._hop_len - 1, 1)
        per_hop = 2 * self.fg.nic_latency_s + switches * self.fg.switch_latency_s
        out = np.zeros(self.n_rep)
        for r in np.flatnonzero(self.rep_has_hops):  # a sequential sum per replica, as hop by hop
            for h in range(self._rep_hop_ptr[r], self._rep_hop_ptr[r + 1]):
                out[r] += per_hop[h]
        return out

    def unit_connected(self) -> np.ndarray:
        """(U,) True where every node of the unit reaches a live top-tier switch (the requests' ingress)."""
        node_ok = reaches_top(self.fg, frozenset(self.down_links), frozenset(self.down_elements))
        return np.array([bool(node_ok[nodes].all()) for nodes in self.unit_nodes], dtype=bool)

    # ---------------------------------------------------------------- per tick
    def _flow_set(self, active_reps: np.ndarray, loading_nodes: np.ndarray) -> "_FlowSet | None":
        """Flows, their paths and the static part of the sharing for this set of active parts.

        The set changes only when replicas start/stop serving, nodes start/finish loading or the
        fabric fails, so it is cached; only the demands change from tick to tick.
        """
        key = (active_reps.tobytes(), loading_nodes.tobytes(), self._version)
        if self._cache_key == key:
            return self._cache
        hops = _ranges(self._rep_hop_ptr[active_reps], self._rep_hop_ptr[active_reps + 1] - self._rep_hop_ptr[active_reps])
        hops = hops[self._hop_len[hops] > 0]
        load_paths, load_nodes = [], []
        for nd in loading_nodes.tolist():
            p = self.path(f"storage:{nd % self.n_storage}", f"node:{nd}")
            if p is not None:
                load_paths.append(p)
                load_nodes.append(nd)
        n_pp, n_ld = hops.size, len(load_nodes)
        flows = None
        if n_pp + n_ld:
            ld_len = np.fromiter(map(len, load_paths), dtype=np.int64, count=n_ld)
            lengths = np.r_[self._hop_len[hops], ld_len]
            ld_flat = np.fromiter((h for p in load_paths for h in p), dtype=np.int64, count=int(ld_len.sum()))
            flat = np.r_[self._route[_ranges(self._hop_ptr[hops], self._hop_len[hops])], ld_flat]
            used = np.unique(flat)
            entry_col = np.searchsorted(used, flat)
            entry_flow = np.repeat(np.arange(n_pp + n_ld), lengths)
            rep_a = np.r_[self._hop_rep[hops], np.full(n_ld, -1)]
            node_a = np.r_[np.full(n_pp, -1), np.array(load_nodes, dtype=np.int64)]
            cap = self.cap[used]
            is_pp = rep_a >= 0
            # elastic shares depend only on the structure: pipeline flows unbounded, loads at H2D
            elastic = self._max_min(entry_flow, entry_col, n_pp + n_ld, cap, np.where(is_pp, np.inf, self.h2d_gb_s))
            flows = _FlowSet(used=used, cap=cap, rep=rep_a, node=node_a, is_pp=is_pp,
                             src_node=np.r_[self._hop_src[hops], np.full(n_ld, -1)],
                             dst_node=np.r_[self._hop_dst[hops], node_a[n_pp:]], elastic=elastic,
                             inc_count=np.bincount(entry_col, minlength=used.size), entry_col=entry_col,
                             entry_flow=entry_flow, flow_ptr=np.r_[0, np.cumsum(lengths)[:-1]])
        self._cache_key, self._cache = key, flows
        return flows

    def step(self, active_reps: np.ndarray, loading_nodes: np.ndarray, rep_tok_s: np.ndarray) -> None:
        """Place this tick's flows, share bandwidth, update the arrays callers read.

        `rep_tok_s` (R_rep,): tokens/s each replica pushed through its pipeline last tick (decode +
        prompt), the demand of its activation flows.
        """
        # refilled in place, not reallocated: every reader (Network, the serving step, the sampler,
        # the lifecycle) reads them within the tick and keeps no reference across ticks
        self.rep_nic_gb_s.fill(self.nic_gb_s)
        self.loading_rate_gb_s.fill(0.0)
        self.node_load_gb_s.fill(0.0)
        self.node_nic_gb_s.fill(0.0)
        active = np.asarray(active_reps, dtype=np.int64)
        fs = self._flow_set(active[self.rep_has_hops[active]], np.asarray(loading_nodes, dtype=np.int64))
        if fs is None:
            return
        if self.compiled:
            self._step_compiled(fs, rep_tok_s)
            return
        rep_rate = rep_tok_s
        ridx = np.where(fs.is_pp, fs.rep, 0)
        demand = np.where(fs.is_pp, rep_rate[ridx] * self.rep_hidden_bytes[ridx] / GB, self.h2d_gb_s)
        # max-min with demand caps gives every flow its demand when no link is over-asked
        # load per link: its flows' rates added in flow order (a sequential sum, not a BLAS
        # product whose blocking, and so whose last bits, depend on the machine)
        load = np.bincount(fs.entry_col, weights=demand[fs.entry_flow], minlength=fs.used.size)
        alloc = demand if np.all(load <= fs.cap) else max_min_fair_sparse_gb_s(
            fs.entry_flow, fs.entry_col, fs.rep.size, fs.cap, demand)
        if alloc is not demand:
            load = np.bincount(fs.entry_col, weights=alloc[fs.entry_flow], minlength=fs.used.size)
        # bandwidth a burst sees: what the other flows leave free, at least the elastic fair share
        # (the minimum over each flow's own links)
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
        # both directions of a cable add up (a buffered `a[idx] += v` would keep only the last)
        np.add.at(self._acc_flows, fs.used // 2, fs.inc_count)

    def _step_compiled(self, fs: _FlowSet, rep_tok_s: np.ndarray) -> None:
        """`step`'s sharing through twin.model.fabric_kernel, the max-min filling included (the same bytes)."""
        demand, load = np.empty(fs.rep.size), np.empty(fs.used.size)
        alloc = demand
        if not fk.demand_load(fs.is_pp, fs.rep, rep_tok_s, self.rep_hidden_bytes, self.h2d_gb_s, fs.entry_col,
                              fs.entry_flow, fs.cap, demand, load):
            alloc = fk.max_min_fair_gb_s(fs.entry_flow, fs.entry_col, fs.rep.size, fs.cap, demand)
            fk.link_load(fs.entry_col, fs.entry_flow, alloc, load)
        fk.apply(fs.cap, load, alloc, fs.entry_col, fs.flow_ptr, fs.elastic, fs.is_pp, fs.rep, fs.node, fs.src_node,
                 fs.dst_node, fs.used, fs.inc_count, self.dt_s, self.rep_nic_gb_s, self.loading_rate_gb_s,
                 self.node_load_gb_s, self.node_nic_gb_s, self._acc_bytes, self._acc_flows)

    def sample(self, time_s: float, n_ticks: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Close a telemetry interval of `n_ticks` ticks: (time, bytes, utilisation, mean flows) per cable."""
        if self.compiled:
            # new arrays each interval: the samples keep them
            L = self.fg.n_links
            total_b, util, flows = np.empty(L), np.empty(L, np.float32), np.empty(L)
            fk.close_links(self._acc_bytes, self._acc_flows, self._cable_cap_b, n_ticks * self.dt_s, float(n_ticks),
                           total_b, util, flows)   # (and zeroes the accumulators)
            return time_s, total_b, util, flows
        by_dir = self._acc_bytes.reshape(-1, 2)
        cap = self.cap.reshape(-1, 2)[:, 0]
        span_s = n_ticks * self.dt_s
        util = by_dir.max(axis=1) / (cap * GB * span_s)
        out = (time_s, by_dir.sum(axis=1), util.astype(np.float32), np.rint(self._acc_flows / n_ticks))
        self._acc_bytes[:] = 0.0
        self._acc_flows[:] = 0.0
        return out

    def column_blocks(self, samples: Sequence[tuple[float, np.ndarray, np.ndarray, np.ndarray]],
                      per: int = LINK_BLOCK_SAMPLES) -> "Iterable[dict[str, object]]":
        """The `links` telemetry table (docs/telemetry.md) `per` samples at a time (bounded memory)."""
        L = self.fg.n_links
        src, dst, kind = tuple(self.fg.cable_a), tuple(self.fg.cable_b), tuple(self.fg.cable_kind)
        for i in range(0, max(len(samples), 1), per):
            chunk = samples[i:i + per]
            S = len(chunk)
            link = np.tile(np.arange(L), S)
            yield {
                "time_s": repeat_each([s[0] for s in chunk], L), "link_id": link,
                "src": Coded(link, src), "dst": Coded(link, dst), "kind": Coded(link, kind),
                "bytes": np.concatenate([s[1] for s in chunk]) if S else np.zeros(0),
                "utilisation": np.concatenate([s[2] for s in chunk]) if S else np.zeros(0, np.float32),
                "active_flows": (np.concatenate([s[3] for s in chunk]) if S else np.zeros(0)).astype(np.int64),
            }
