"""Several engines on one GPU / node (twin.model.sharing, twin.spec.topology), hand-computed."""
from __future__ import annotations

import numpy as np
import pytest

from twin.model import serving as sv
from twin.model import sharing
from twin.model.validate import scenario_from_text
from twin.spec.catalogue import load_catalogue
from twin.spec.topology import build_topology

CAT = load_catalogue()
THREE = """
name: share
topology: {rows: 1, racks_per_row: 1, nodes_per_rack: 2, node_type: rtx5090-server}
pools:
  - {name: gpu-a, model: llama-3.1-8b, quantisation: gguf-q4_k_m, engine: llama.cpp, nodes: 2, gpu_memory_share: 0.3}
  - {name: gpu-b, model: llama-3.1-8b, quantisation: fp8, engine: vllm, nodes: 1, colocate: gpu-a, gpu_memory_share: 0.6}
  - {name: cpu, model: llama-3.1-8b, quantisation: gguf-q8_0, engine: llama.cpp, nodes: 2, colocate: gpu-a,
     device: cpu, cores: 12, ram_gb: 96, mix: 0.1}
scheduler: {initial_on_nodes: 1}
fabric: {enabled: false}
"""


def test_memory_split_on_one_gpu_by_hand():
    gpu = CAT.gpu("rtx-5090")
    llama, vllm = (sv.replica_memory_plan(CAT.model("llama-3.1-8b"), CAT.quant(q), gpu, 1, share)
                   for q, share in (("gguf-q4_k_m", 0.3), ("fp8", 0.6)))
    # 0.3 x 32 GB = 9.6 GB - 8.03e9 x 0.606 B (4.87 GB) = 4.73 GB of KV; 0.6 x 32 = 19.2 - 8.03 = 11.17 GB
    assert llama.kv_budget_gb == pytest.approx(9.6 - 8.03 * 0.606)
    assert vllm.kv_budget_gb == pytest.approx(19.2 - 8.03)
    assert sharing.oversubscription({"a": 0.3, "b": 0.6}, 32, "GPU 0") is None
    msg = sharing.oversubscription({"a": 0.3, "b": 0.8}, 32, "GPU 0")
    assert msg == "GPU 0 is oversubscribed: a 0.30 + b 0.80 = 1.10 of 32 GB (35.2 GB > 32 GB)"


def test_contention_halves_each_engines_decode_speed_at_equal_load():
    gpu = CAT.gpu("rtx-5090")
    alone = float(sv.decode_token_interval_s(
        np.array([1.0]), np.array([1020.0]), weights_bytes=8.03e9 * 0.606, active_fraction=1.0, active_params=8.03e9,
        kv_bytes_per_token=131072, state_bytes_per_seq=0.0, tp=1, pp=1, bandwidth_gb_s=gpu.memory_bandwidth_gb_s,
        dense_tflops=209.5, eta_bw=0.7, eta_fl=0.8, clock=np.array([1.0]), step_overhead_s=0.0008)[0])
    # two engines that always have work on GPU 0: time slices of 1/2 each
    share = sharing.gpu_time_shares(np.array([1.0, 1.0]), np.array([0, 0]))
    assert share.tolist() == [0.5, 0.5]
    speed = sharing.slowdown(np.array([1.0, 1.0]), share)
    assert (1.0 / (alone / speed)).tolist() == pytest.approx([0.5 / alone, 0.5 / alone])
    # the same two engines on different GPUs do not contend
    assert sharing.gpu_time_shares(np.array([1.0, 1.0]), np.array([0, 1])).tolist() == [1.0, 1.0]


def test_water_filling_gives_a_light_engine_all_it_needs():
    share = sharing.fair_shares(np.array([0.2, 1.0, 1.0]))
    assert share.tolist() == pytest.approx([0.2, 0.4, 0.4])
    assert sharing.slowdown(np.array([0.2, 1.0, 1.0]), share).tolist() == pytest.approx([1.0, 0.4, 0.4])
    assert sharing.fair_shares(np.array([0.3, 0.3])).tolist() == pytest.approx([0.3, 0.3])   # no contention


def test_inference_first_leaves_training_the_idle_time():
    # inference busy 70 % of the time (class 0), a training job that would use the whole GPU (class 1)
    share = sharing.priority_shares(np.array([0.7, 1.0]), np.array([0, 1]))
    assert share.tolist() == pytest.approx([0.7, 0.3])
    assert sharing.priority_shares(np.array([1.0, 1.0]), np.array([0, 1])).tolist() == [1.0, 0.0]


def test_topology_puts_three_pools_on_one_node():
    sc = scenario_from_text(THREE)
    topo = build_topology(sc)
    assert topo.node_pools == ((0, 1, 2), (0, 2))
    assert topo.unit_pools == ((0, 1, 2), (0, 2))
    reps = [(r.pool_id, r.node_ids, r.gpu_ids, r.device) for r in topo.replicas]
    assert reps == [(0, (0,), (0,), "gpu"), (1, (0,), (0,), "gpu"), (2, (0,), (), "cpu"),
                    (0, (1,), (1,), "gpu"), (2, (1,), (), "cpu")]
    assert topo.node_pool.tolist() == [0, 0]       # the host pool stays the node's pool


def test_gpu_subsets_split_a_four_gpu_box():
    text = """
name: split
topology: {rows: 1, racks_per_row: 1, nodes_per_rack: 1, node_type: ws-4x4090-tr}
pools:
  - {name: a, model: llama-3.1-8b, quantisation: bf16, nodes: 1, tp: 2, gpus: [0, 1]}
  - {name: b, model: llama-3.1-8b, quantisation: bf16, nodes: 1, gpus: [2, 3], colocate: a}
scheduler: {initial_on_nodes: 1}
fabric: {enabled: false}
"""
    topo = build_topology(scenario_from_text(text))
    assert [(r.pool_id, r.gpu_ids) for r in topo.replicas] == [(0, (0, 1)), (1, (2,)), (1, (3,))]


def test_cpu_pool_load_and_package_temperature_by_hand():
    from twin.model.cpu_load import cpu_temp_step_c, cpu_util
    from twin.model.power import cpu_power_w
    # GPU-serving baseline 0.2 + a 12-core llama.cpp pool decoding all tick on a 32-core package
    u = cpu_util(np.array([0.2]), np.array([[12.0]]), np.array([[1.0]]), 32)
    assert u.tolist() == pytest.approx([0.2 + 12 / 32])
    cpu = CAT.cpu("threadripper-pro-7975wx")
    p = float(cpu_power_w(cpu.idle_power_w, cpu.tdp_w, u)[0])          # 75 + 275 x 0.575 = 233.1 W
    assert p == pytest.approx(75 + 275 * 0.575)
    # steady state 24 C inlet + 233.1 W x 0.17 K/W = 63.6 C; after one time constant (122.4 s) 63.2 % there
    t = cpu_temp_step_c(np.array([24.0]), np.array([24.0]), np.array([p]), 0.17 * 720)
    assert t[0] == pytest.approx(24 + p * 0.17 * (1 - np.exp(-1)))
    assert cpu_temp_step_c(np.array([24.0]), np.array([24.0]), np.array([p]), 1e6)[0] == pytest.approx(24 + p * 0.17)


def test_cpu_only_decode_is_bound_by_the_cores_share_of_memory_bandwidth():
    from twin.model import offload as ol
    node = CAT.node("rtx5090-server")
    cpu = CAT.cpu(node.cpu)
    # 8 DIMMs of DDR5-5200: 8 x 5,200 MT/s x 8 B = 332.8 GB/s; 77 % reachable (~256 GB/s measured on a
    # 4-CCD TR PRO) = 256.3 GB/s; 12 cores could pull 12 x 25 = 300 GB/s, so the channels bind;
    # 4 cores pull only 4 x 25 = 100 GB/s
    assert ol.cpu_read_gb_s(cpu, node, 12) == pytest.approx(0.77 * 332.8)
    assert ol.cpu_read_gb_s(cpu, node, 4) == pytest.approx(4 * cpu.per_core_read_gb_s) == pytest.approx(100.0)
    weights_b = 70.6e9 * 0.606
    kv_b = 1020 * 2 * 80 * 8 * 128 * 2                    # 1,020 tokens of context, BF16 KV
    # (70.6e9 x 0.606 B + KV) / 256.3 GB/s = 0.168 s -> 6.0 tok/s for the 70B CPU-only service
    t = ol.cpu_decode_token_s(weights_b, cpu, node, cores=12, kv_read_bytes=kv_b)
    assert t == pytest.approx((weights_b + kv_b) / (0.77 * 332.8e9))
    assert 1 / t == pytest.approx(5.95, abs=0.05)


def test_a_cpu_only_pool_in_the_engine_decodes_at_that_bound():
    from twin.model.validate import load_scenario
    from twin.sim.engine import simulate
    from pathlib import Path
    res = simulate(load_scenario(Path(__file__).resolve().parent.parent / "scenarios" / "rtx5090-server.yaml"))
    rq = res.columns["requests"]
    cpu = np.asarray(rq["pool"], dtype=object) == "llamacpp-cpu"
    ft, done = np.asarray(rq["first_token_s"], float)[cpu], np.asarray(rq["done_s"], float)[cpu]
    out = np.asarray(rq["output_tokens"], float)[cpu]
    ok = np.isfinite(done) & (out > 8)
    assert ok.any()
    # weights + the context's KV at 256.3 GB/s plus llama.cpp's 0.8 ms per token: ~5.9 tok/s
    assert np.median((out[ok] - 1) / (done[ok] - ft[ok])) == pytest.approx(5.9, rel=0.05)
    nodes = res.columns["nodes"]
    # while it works the package carries 12/32 of its cores at full load on top of the GPU engines'
    # host work (twin.model.power.host_cpu_util): the busiest sample adds at least the 12 cores
    util = np.asarray(nodes["cpu_util"], float)
    assert util.max() - np.median(util) >= 12 / 32 - 0.02
