"""The network as the engine sees it: per-replica NIC bandwidth and hop latency, node loading
rates, and which units the fabric can still reach.

Without a fabric model (fabric off, or nothing crosses a NIC) every pipeline hop gets the NIC's
achievable bandwidth and 2 NIC traversals + one leaf switch of latency (hardware.md "Fabric"),
and weights load from local NVMe. With one, twin.model.fabric_flows.FabricModel places this tick's
flows (max-min fair over ECMP paths) and answers reachability after link and switch failures:
a unit that loses its path to the spines stops taking requests and its in-flight requests are
retried elsewhere until it reconnects.
"""
from __future__ import annotations

import numpy as np

from twin.model import serving as sv
from twin.model.states import LOADING
from twin.sim.batching import ServingOutputs
from twin.sim.events import EventLog, Kind
from twin.sim.layout import Layout
from twin.sim.requests import RequestBook
from twin.sim.spool import BlockTable, SampleList, TableSink
from twin.spec.catalogue import NicSpec, NodeSpec
from twin.spec.scenario import ScenarioSpec
from twin.spec.topology import Topology

FABRIC_FAULTS = ("link_down", "switch_down")


class Network:
    def __init__(self, spec: ScenarioSpec, layout: Layout, topo: Topology, node: NodeSpec, nic: NicSpec,
                 dt_s: float, book: RequestBook, log: EventLog, kernels: str = "numpy") -> None:
        self.spec, self.lay, self.book, self.log = spec.fabric, layout, book, log
        self.rep_nic_gb_s = np.full(layout.n_rep, nic.achievable_gb_s)
        self.rep_cross_lat_s = layout.rep_hops_cross * (2 * nic.latency_s + spec.fabric.switch_latency_s)
        self.unit_cut = np.zeros(layout.n_units, dtype=bool)  # powered but unreachable over the fabric
        self._local_rate_b_s = layout.node_load_rate_b_s  # engine's first-boot read rate (twin.model.coldstart)
        self.fabric = None
        faults = any(f.kind in FABRIC_FAULTS for f in spec.faults)
        if spec.fabric.enabled and (layout.rep_hops_cross.any() or spec.fabric.load_from == "network" or faults):
            from twin.model.fabric_flows import FabricModel  # networkx stays behind twin.model.fabric
            self.fabric = FabricModel(spec.fabric, topo, nic, node.pcie_h2d_gb_s, dt_s, layout.rep_cross_hops,
                                      layout.rep_hidden_bytes, compiled=kernels == "numba")
            self.rep_cross_lat_s = self.fabric.rep_cross_latency_s
        self.loads_over_network = self.fabric is not None and spec.fabric.load_from == "network"
        self._none = np.zeros(0, np.int64)  # no replicas / nodes: an empty index, made once

    def step(self, state: np.ndarray, rep_inflight: np.ndarray, last: ServingOutputs) -> None:
        """This tick's flows: pipelines of replicas with requests, nodes loading over the network."""
        if self.fabric is None:
            return
        loading = (state == LOADING).nonzero()[0] if self.loads_over_network else self._none
        active = (rep_inflight > 0).nonzero()[0] if self.lay.n_rep else self._none
        self.fabric.step(active, loading, last.tokens_s + last.prefill_tok_s)
        self.rep_nic_gb_s = self.fabric.rep_nic_gb_s

    def loading_rate_b_s(self) -> np.ndarray:
        """(N,) bytes/s a LOADING node copies weights at this tick."""
        return self.fabric.loading_rate_gb_s * sv.GB if self.loads_over_network else self._local_rate_b_s

    def node_load_gb_s(self) -> np.ndarray | None:
        """(N,) weight-loading traffic on each node's NIC, None when weights load locally."""
        return self.fabric.node_load_gb_s if self.loads_over_network else None

    def sample(self, time_s: float, n_ticks: int) -> tuple | None:
        return self.fabric.sample(time_s, n_ticks) if self.fabric is not None else None

    def link_columns(self, samples: SampleList, sink: TableSink | None = None) -> BlockTable | None:
        """The `links` table, handed over in blocks of samples (None without a fabric model);
        `sink`: where stream_links sent it while simulating."""
        if self.fabric is None or not samples:
            return None
        names = ("time_s", "link_id", "src", "dst", "kind", "bytes", "utilisation", "active_flows")
        return BlockTable(names, lambda: self.fabric.column_blocks(samples), samples, sink)

    def stream_links(self, samples: SampleList, sink: TableSink) -> None:
        """Hand the `links` table's rows to `sink` as the samples come (twin.sim.spool.SampleList.tap)."""
        if self.fabric is None:
            return
        from twin.model.fabric_flows import LINK_BLOCK_SAMPLES  # loaded with the fabric model only

        def put(first: int, chunk: list) -> None:
            for cols in self.fabric.column_blocks(chunk):
                sink.put(cols)
        samples.tap(put, per=LINK_BLOCK_SAMPLES)

    # ---------------------------------------------------------------- failures
    def fail(self, target: str, why: str) -> None:
        self.fabric.fail(target)
        self._connectivity(why)

    def restore(self, target: str, why: str) -> None:
        self.fabric.restore(target)
        self._connectivity(why)

    def _connectivity(self, why: str) -> None:
        """After a fabric change: units that lost their path to the spines stop taking requests and
        their in-flight requests go back to the queue (retried elsewhere); reconnected units return."""
        self.rep_cross_lat_s = self.fabric.rep_cross_latency_s
        ok = self.fabric.unit_connected()
        for u in np.flatnonzero(~ok & ~self.unit_cut):
            self.unit_cut[u] = True
            self.log.emit(Kind.UNIT_DISCONNECTED, int(self.lay.unit_nodes[u][0]), -1, f"unit {u}: {why}")
            self.book.requeue(self.lay.unit_reps[u], why, self.log.now())
        for u in np.flatnonzero(ok & self.unit_cut):
            self.unit_cut[u] = False
            self.log.emit(Kind.UNIT_RECONNECTED, int(self.lay.unit_nodes[u][0]), -1, f"unit {u}: {why}")
