"""Serving physics: memory plans, KV sizes and roofline times against hand computations."""
import numpy as np
import pytest

from twin.model import serving as sv
from twin.spec.catalogue import load_catalogue

CAT = load_catalogue()
GPU = CAT.gpu("rtx-pro-4500-blackwell")
VLLM = CAT.engine("vllm")


def test_kv_bytes_per_token_match_published_model_shapes():
    # hardware.md: Llama 3.3 70B 320 KiB/token, Nemotron-4 340B ~576 KiB/token (BF16)
    assert CAT.model("llama-3.3-70b").kv_bytes_per_token(2.0) == 320 * 1024
    assert CAT.model("nemotron-4-340b").kv_bytes_per_token(2.0) == 576 * 1024


def test_nemotron_340b_int8_needs_four_nodes():
    model, q = CAT.model("nemotron-4-340b"), CAT.quant("int8")
    nine = sv.replica_memory_plan(model, q, GPU, 9, 0.95)   # three nodes
    twelve = sv.replica_memory_plan(model, q, GPU, 12, 0.95)
    assert nine.weights_gb == pytest.approx(341.0)
    assert nine.kv_budget_gb < 0 < twelve.kv_budget_gb
    assert twelve.kv_budget_gb == pytest.approx(12 * 32 * 0.95 - 341)


def test_llama70b_awq_single_stream_decode_by_hand():
    """PP=2 over two 32 GB cards, batch 1, 1000 tokens of context.

    weights 70.6e9 * 0.567 = 40.03 GB; KV 1000 * 327,680 B = 0.328 GB; bandwidth of one stage at a time
    0.8 * 896 GB/s = 716.8 GB/s -> 56.30 ms, + 2 ms step overhead = 58.30 ms per token.
    """
    perf = sv.replica_perf(CAT.model("llama-3.3-70b"), CAT.quant("awq-int4"), GPU, VLLM, 1, 2, 0.92, None)
    dt = sv.decode_token_interval_s(
        np.array([1.0]), np.array([1000.0]), weights_bytes=perf.weights_bytes, active_fraction=1.0,
        active_params=perf.active_params, kv_bytes_per_token=perf.kv_bytes_per_token, state_bytes_per_seq=0.0,
        tp=1, pp=2, bandwidth_gb_s=896, dense_tflops=perf.decode_tflops, eta_bw=0.8, eta_fl=0.7,
        clock=np.array([1.0]), step_overhead_s=0.002)
    expected = (70.6e9 * 0.567 + 1000 * 327_680) / (0.8 * 896e9) + 0.002
    assert dt[0] == pytest.approx(expected)
    assert expected == pytest.approx(0.0583, abs=2e-4)


def test_pipeline_keeps_every_stage_busy_only_with_pp_micro_batches():
    kw = dict(weights_bytes=120e9, active_fraction=1.0, active_params=120e9, kv_bytes_per_token=0.0,
              state_bytes_per_seq=0.0, tp=1, pp=4, bandwidth_gb_s=1000, dense_tflops=400, eta_bw=1.0,
              eta_fl=1.0, clock=np.array([1.0, 1.0, 1.0]), step_overhead_s=0.0)
    dt = sv.decode_token_interval_s(np.array([1.0, 4.0, 8.0]), np.zeros(3), **kw)
    # one sequence: 120 GB / 1000 GB/s = 0.12 s per token; 4 sequences share the same interval
    assert dt[0] == pytest.approx(0.12)
    assert dt[1] == pytest.approx(0.12)
    # 8 sequences -> 2 per micro-batch: compute 2*120e9*2 / 400e12 = 1.2 ms < 0.12 s, still memory bound
    assert dt[2] == pytest.approx(0.12)


def test_prefill_is_compute_bound():
    # 2 * 70.6e9 FLOP/token / (2 GPUs * 0.7 * 211e12) = 0.478 ms per prompt token
    s = sv.prefill_seconds_per_token(70.6e9, 2, 211, 0.7)
    assert s == pytest.approx(2 * 70.6e9 / (2 * 0.7 * 211e12))


def test_pipeline_hop_time_adds_transfer_and_latency():
    # 1000 tokens * 18432 hidden * 2 B = 36.864 MB over 46 GB/s = 0.8014 ms, + 2 us
    assert sv.pipeline_hop_s(1000, 18432, 46.0, 2e-6) == pytest.approx(36.864e6 / 46e9 + 2e-6)


def test_decode_activity_spans_the_published_range():
    a = sv.decode_activity(np.array([1, 8, 64, 256]))
    assert a[0] == pytest.approx(0.45) and a[2] == pytest.approx(0.80) and a[3] == pytest.approx(0.80)
    assert 0.45 < a[1] < 0.80


def test_moe_batch_touches_more_experts():
    w = sv.weight_bytes_read(100.0, 0.1, np.array([1.0, 2.0, 1000.0]))
    assert w.tolist() == pytest.approx([10.0, 19.0, 100.0])
