"""The sampler alone: interval means and end-of-interval snapshots, by hand."""
from __future__ import annotations

import numpy as np
import pytest

from twin.model.states import OFF, SERVING, WARM
from twin.sim.sampler import Sampler, SamplerLayout


def layout() -> SamplerLayout:
    # two nodes of two GPUs in one rack; one replica of pp=2 over GPUs 0 and 2 (one per node),
    # GPUs 1 and 3 serve nothing
    return SamplerLayout(
        gpu_node=np.array([0, 0, 1, 1]), gpu_rep=np.array([0, -1, 0, -1]), node_rack=np.array([0, 0]),
        nodes_per_rack=2, gpus_per_node=2, n_racks=1,
        pair_rep=np.array([0, 0]), pair_node=np.array([0, 1]), rep_n_nodes=np.array([2.0]),
        rep_hidden_bytes=np.array([1e6]), rep_hops_intra=np.array([0.0]), rep_hops_cross=np.array([1.0]),
        rep_weights_per_gpu_b=np.array([10e9]), rep_n_gpus=np.array([2.0]))


def tick(sm: Sampler, gpu_w: float, node_w: float, tok_s: float, fac_w: float, throttled: int = 0) -> None:
    sm.accumulate(gpu_power_w=np.full(4, gpu_w), gpu_util=np.full(4, 0.5), node_wall_w=np.full(2, node_w),
                  node_dc_w=np.full(2, node_w * 0.9), node_gpu_w=np.full(2, 2 * gpu_w),
                  rep_tokens_s=np.array([tok_s]), rep_prefill_tok_s=np.array([0.0]), node_load_gb_s=None,
                  it_w=2 * node_w, cooling_w=fac_w / 10, overhead_w=fac_w / 20, facility_w=fac_w,
                  gpu_throttled=np.arange(4) < throttled)


def snapshot(sm: Sampler, k: int, temp: float, state: np.ndarray) -> None:
    sm.snapshot(k, gpu_temp_c=np.array([temp, temp + 1, temp + 2, temp + 3]), gpu_clock=np.ones(4),
                gpu_fan_frac=np.zeros(4), gpu_throttled=np.zeros(4, bool), node_state=state,
                rep_kv_reserved_b=np.array([4e9]), rep_inflight=np.array([3]), node_inlet_c=np.array([20.0, 24.0]),
                node_exhaust_c=np.full(2, 30.0), node_fan_rpm=np.zeros(2), node_airflow_m3_s=np.zeros(2),
                rack_exhaust_c=np.array([30.0]), rack_demand_m3_s=np.array([0.1]), rack_supply_m3_s=np.array([0.2]),
                rack_recirc_frac=np.array([0.0]), supply_c=20.0, queued=5, in_flight=3, links=None)


KERNELS = pytest.mark.parametrize("kernels", ["numpy", "numba"])  # the compiled rows must mean the same


@KERNELS
def test_powers_are_interval_means_and_temperatures_end_of_interval_values(kernels):
    sm = Sampler(layout(), n_samples=2, ticks_per_sample=3, dt_s=0.5, kernels=kernels)
    for k, (g, n, f) in enumerate([(100, 400, 1000), (200, 500, 1600), (300, 900, 1000)]):
        tick(sm, g, n, tok_s=1000.0, fac_w=f, throttled=k)
        assert sm.closes_interval(k) == (k == 2)
    snapshot(sm, 2, 50.0, np.array([SERVING, WARM]))
    # mean of 100, 200, 300 W = 200 W; nodes (400 + 500 + 900) / 3 = 600 W; racks sum the nodes
    assert sm.gpu.column("power_w")[0].tolist() == [200.0] * 4
    assert sm.node.column("power_w")[0].tolist() == [600.0, 600.0]
    assert sm.rack["power_w"][0, 0] == 1200.0
    assert sm.fac["facility_power_w"][0] == pytest.approx(1200.0)
    assert sm.fac["it_power_w"][0] == pytest.approx(1200.0)
    # temperature is the value at the end, and a node's max is over its own GPUs
    assert sm.gpu.column("temp_c")[0].tolist() == [50.0, 51.0, 52.0, 53.0]
    assert sm.node.column("gpu_temp_max_c")[0].tolist() == [51.0, 53.0]
    assert sm.rack["inlet_c"][0, 0] == 22.0
    # 1,000 tok/s x 1 MB x 1 cross hop = 1 GB/s leaving one node and entering the other: 1 GB/s each
    assert sm.node.column("nic_gb_s")[0].tolist() == [1.0, 1.0]
    # the replica's GPUs hold 10 GB of weights + 4 GB / 2 of KV; the idle GPUs nothing
    assert sm.gpu.column("memory_used_gb")[0].tolist() == [12.0, 0.0, 12.0, 0.0]
    assert sm.node.column("active_requests")[0].tolist() == [3, 3]
    assert sm.rack["nodes_on"][0, 0] == 2 and sm.rack["nodes_serving"][0, 0] == 1
    # throttled GPU-seconds: 0 + 1 + 2 GPUs over ticks of 0.5 s = 1.5
    assert sm.throttled_gpu_s == 1.5


@KERNELS
def test_accumulators_restart_for_each_interval(kernels):
    sm = Sampler(layout(), n_samples=2, ticks_per_sample=2, dt_s=1.0, kernels=kernels)
    for k, g in enumerate([100.0, 300.0, 1000.0, 1000.0]):
        tick(sm, g, 10.0, tok_s=0.0, fac_w=1.0)
        if sm.closes_interval(k):
            snapshot(sm, k, 40.0, np.array([OFF, OFF]))
    assert sm.gpu.column("power_w")[:, 0].tolist() == [200.0, 1000.0]
    # an OFF node holds no model: no memory used even though its GPU belongs to a replica
    assert sm.gpu.column("memory_used_gb")[1].tolist() == [0.0] * 4
    assert sm.rack["nodes_on"][:, 0].tolist() == [0, 0]
