"""The sampler's compiled rows (twin.sim.sampler_kernel) against its numpy code: the same bytes
in every table for the same readings, whatever the tables' intervals, shared GPUs, NaN and -0.0."""
from __future__ import annotations

import numpy as np
import pytest

from twin.sim import sampler_kernel as sk
from twin.sim.sampler import Sampler, SamplerLayout

pytestmark = pytest.mark.skipif(not sk.HAVE_NUMBA, reason="numba not installed")


def _layout() -> SamplerLayout:
    # 3 racks x 2 nodes x 2 GPUs; replica 0 spans nodes 0-1 (GPUs 0, 2), replica 1 and 2 share GPU 4
    # (colocated pools), replica 3 is GPU 6; nodes 4 and 5 serve nothing
    gpu_node = np.repeat(np.arange(6), 2)
    gpu_rep = np.array([0, -1, 0, -1, 1, -1, 3, -1, -1, -1, -1, -1])
    return SamplerLayout(
        gpu_node=gpu_node, gpu_rep=gpu_rep, node_rack=np.repeat(np.arange(3), 2), nodes_per_rack=2,
        gpus_per_node=2, n_racks=3, pair_rep=np.array([0, 0, 1, 2, 3]), pair_node=np.array([0, 1, 2, 2, 3]),
        rep_n_nodes=np.array([2.0, 1.0, 1.0, 1.0]), rep_hidden_bytes=np.array([36864.0, 8192.0, 4096.0, 8192.0]),
        rep_hops_intra=np.array([2.0, 0.0, 0.0, 0.0]), rep_hops_cross=np.array([1.0, 0.0, 0.0, 0.0]),
        rep_weights_per_gpu_b=np.array([28.4e9, 3.1e9, 7.7e9, 3.1e9]), rep_n_gpus=np.array([2.0, 1.0, 1.0, 1.0]),
        gpair_rep=np.array([0, 0, 1, 2, 3]), gpair_gpu=np.array([0, 2, 4, 4, 6]))


def _drive(kernels: str, table_ticks: dict, ticks_per_sample: int, seed: int) -> Sampler:
    rng = np.random.default_rng(seed)  # the same readings for both samplers
    G, N, R, n_samples = 12, 6, 3, 6
    sm = Sampler(_layout(), n_samples=n_samples, ticks_per_sample=ticks_per_sample, dt_s=0.5,
                 table_ticks=table_ticks, kernels=kernels)
    for k in range(n_samples * ticks_per_sample):
        gpu_w = rng.uniform(30, 200, G) * rng.choice([1.0, 1 / 3], G)   # non-representable sums
        gpu_w[0] = -0.0 if k % 3 == 0 else gpu_w[0]
        temp = rng.uniform(25, 90, G)
        if k == 4:
            temp[5] = np.nan  # a NaN reading propagates into the node's max and the peak, as ndarray.max
        sm.accumulate(gpu_power_w=gpu_w, gpu_util=rng.uniform(0, 1, G), node_wall_w=rng.uniform(300, 900, N),
                      node_dc_w=rng.uniform(250, 800, N), node_gpu_w=rng.uniform(0, 400, N),
                      rep_tokens_s=rng.uniform(0, 3000, 4), rep_prefill_tok_s=rng.uniform(0, 9000, 4),
                      node_load_gb_s=rng.uniform(0, 20, N) if k % 2 else None, it_w=float(rng.uniform(3e3, 5e3)),
                      cooling_w=rng.uniform(500, 900), overhead_w=rng.uniform(50, 90), facility_w=rng.uniform(5e3, 7e3),
                      gpu_throttled=rng.uniform(0, 1, G) < 0.3, node_cpu_w=rng.uniform(80, 200, N) if k % 2 else 0.0,
                      node_cpu_util=rng.uniform(0, 1, N))
        if sm.closes_interval(k):
            sm.snapshot(k, gpu_temp_c=temp, gpu_clock=rng.uniform(0.5, 1, G), gpu_fan_frac=rng.uniform(0, 1, G),
                        gpu_throttled=rng.uniform(0, 1, G) < 0.3, node_state=rng.integers(0, 8, N).astype(np.int8),
                        rep_kv_reserved_b=rng.uniform(0, 4e9, 4), rep_inflight=rng.integers(0, 64, 4),
                        node_inlet_c=rng.uniform(18, 30, N), node_exhaust_c=rng.uniform(30, 50, N),
                        node_fan_rpm=rng.uniform(3e3, 9e3, N), node_airflow_m3_s=rng.uniform(0, 0.1, N),
                        rack_exhaust_c=rng.uniform(30, 50, R), rack_demand_m3_s=rng.uniform(0, 1, R),
                        rack_supply_m3_s=rng.uniform(0, 1, R), rack_recirc_frac=rng.uniform(0, 0.2, R),
                        supply_c=float(rng.uniform(18, 22)), queued=int(rng.integers(0, 100)),
                        in_flight=int(rng.integers(0, 100)), links=None,
                        node_cpu_temp_c=rng.uniform(40, 80, N) if k % 2 else 0.0,
                        gpu_extra_b=rng.uniform(0, 2e9, G) if k % 3 else 0.0)
    return sm


def _bytes(sm: Sampler) -> dict[str, bytes]:
    out = {f"gpus.{k}": sm.gpu.column(k).tobytes() for k in sm.gpu.dtypes}
    out.update({f"nodes.{k}": sm.node.column(k).tobytes() for k in sm.node.dtypes})
    out.update({f"racks.{k}": v.tobytes() for k, v in sm.rack.items()})
    out.update({f"facility.{k}": v.tobytes() for k, v in sm.fac.items()})
    out["state_counts"] = sm.state_counts.tobytes()
    out["peak"] = repr(sm.peak_gpu_temp_c).encode()
    out["throttled_gpu_s"] = repr(sm.throttled_gpu_s).encode()
    return out


@pytest.mark.parametrize("table_ticks, ticks_per_sample", [
    ({}, 1),                              # every tick a row of every table (the default surge)
    ({}, 3),                              # means over 3 ticks, racks share the nodes' accumulator
    ({"gpus": 2, "nodes": 6}, 2),         # each table its own interval, racks their own accumulator
])
def test_compiled_rows_write_the_numpy_rows_bytes(table_ticks, ticks_per_sample):
    a = _bytes(_drive("numpy", table_ticks, ticks_per_sample, seed=7))
    b = _bytes(_drive("numba", table_ticks, ticks_per_sample, seed=7))
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_the_drive_is_not_trivial():
    """The comparison above would pass on empty tables: check they hold what was fed in."""
    sm = _drive("numba", {}, 1, seed=7)
    assert sm.gpu.samples == 6 and sm.node.samples == 6
    assert np.isnan(sm.node.column("gpu_temp_max_c")[4, 2])        # GPU 5 (node 2) read NaN at tick 4
    assert np.signbit(sm.gpu.column("power_w")[:, 0]).sum() == 0   # -0.0 + 0.0 is +0.0, as the accumulator
    assert (sm.gpu.column("memory_used_gb")[:, 4] > 0).any() or (sm.node.column("state")[:, 2] < 4).all()
    assert sm.node.column("nic_gb_s").max() > 0 and sm.rack["power_w"].min() > 0


def test_kernels_switch_rejects_anything_else():
    with pytest.raises(ValueError, match="kernels"):
        Sampler(_layout(), n_samples=1, ticks_per_sample=1, dt_s=1.0, kernels="cuda")
