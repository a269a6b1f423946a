"""Kernel-table roofline: PP prompt latency, decode under SM-clock caps, smooth ridge (hand-computed)."""
import math

import numpy as np
import pytest

from twin.model import replica as rp
from twin.model.kernels import roofline_s, select_kernel
from twin.spec.catalogue import load_catalogue

CAT = load_catalogue()


def _plan(model, quant, gpu, engine="vllm", tp=1, pp=1, util=0.92, kv_bytes=None):
    g = CAT.gpu(gpu)
    return rp.serving_plan(CAT.model(model), CAT.quant(quant), g, CAT.engine(engine),
                           select_kernel(CAT, engine, quant, g), tp, pp, util, kv_bytes)


def test_smooth_roofline_is_26_percent_above_max_at_the_ridge_and_max_far_from_it():
    assert roofline_s(1.0, 1.0, 3.0) == pytest.approx(2 ** (1 / 3))
    assert roofline_s(1.0, 0.01, 3.0) == pytest.approx(1.0, rel=1e-6)
    assert roofline_s(np.array([2.0]), np.array([0.0]), 3.0)[0] == 2.0


def test_pp12_prompt_latency_is_the_sum_of_stage_times_not_a_twelfth():
    # Nemotron-4 340B INT8, 12 stages of one RTX PRO 4500 each, a 1,036-token prompt (one chunk).
    plan = _plan("nemotron-4-340b", "int8", "rtx-pro-4500-blackwell", pp=12, util=0.95, kv_bytes=1)
    int8 = 422e12 * 0.69 * 0.60                 # INT8 (= FP8 on Blackwell) x sustained 0.69 x vllm/int8 prefill 0.60
    attn = 211e12 * 0.69 * 0.5                  # FlashAttention at half the sustained FP16 rate
    stage_s = (2 * 341e9 * 1036 / int8 + 2 * 96 * 96 * 192 * 1036 ** 2 / attn) / 12
    hop_s = 5e-6 + 1036 * 18432 * 2 / 24e9      # activations over PCIe P2P
    expected = 12 * stage_s + 11 * hop_s        # (1 chunk + 12 stages - 1) stage slots
    got = rp.prompt_latency_s(plan, 1036, hop_s_per_token=rp.hop_s_per_token(plan, 24.0), hop_latency_s=5e-6)
    assert got == pytest.approx(expected, rel=1e-3)
    assert got == pytest.approx(4.15, abs=0.05)   # the engine charged 0.2 s: the whole prompt over 12 GPUs
    # pool throughput keeps pipelining: twelve stages busy on different prompts
    # (12 prompts in flight, one per stage: a prompt's worth of work leaves the pipe every stage time)
    assert rp.prefill_tokens_per_s(plan, 1036) == pytest.approx(1036 / stage_s, rel=2e-3)


def test_long_prompts_pipeline_their_chunks_through_the_stages():
    # 16,384 tokens = 2 chunks of 8,192 (max_batched_tokens): (2 + 12 - 1) = 13 stage slots, each 1/24 of the work
    plan = _plan("nemotron-4-340b", "int8", "rtx-pro-4500-blackwell", pp=12, util=0.95, kv_bytes=1)
    int8, attn = 422e12 * 0.69 * 0.60, 211e12 * 0.69 * 0.5
    work_s = 2 * 341e9 * 16384 / int8 + 2 * 96 * 18432 * 16384 ** 2 / attn
    assert rp.prompt_latency_s(plan, 16384) == pytest.approx(13 * work_s / 24, rel=1e-3)


def test_memory_bound_decode_ignores_a_0_7_sm_clock_cap():
    # Llama 3.3 70B AWQ on one RTX 5090, batch 1, 1,000 tokens of context (vllm/awq_marlin)
    plan = _plan("llama-3.3-70b", "awq-int4", "rtx-5090", util=0.95)   # does not fit: physics only
    mem_s = (70.6e9 * 0.567 - 128256 * 8192 * 0.567 + 1000 * 327_680) / (0.80 * 1792e9)
    comp_s = 2 * 70.6e9 / (0.5 * 209.5e12 * 0.92) + 4 * 80 * 8192 * 1000 / (0.5 * 209.5e12 * 0.92)
    full = float(rp.decode_step_s(plan, 1, 1000))
    capped = float(rp.decode_step_s(plan, 1, 1000, clock=0.7))
    assert full == pytest.approx(mem_s * (1 + (comp_s / mem_s) ** 3) ** (1 / 3) + 0.002, rel=1e-9)
    assert capped == pytest.approx(mem_s * (1 + (comp_s / 0.7 / mem_s) ** 3) ** (1 / 3) + 0.002, rel=1e-9)
    assert capped / full < 1.002                  # flat: the old model divided all of it by 0.7 (+43 %)
    # a memory-clock drop (HW slowdown) is the separate case: it does slow decode
    assert float(rp.decode_step_s(plan, 1, 1000, mem_clock=0.7)) > 1.35 * (full - 0.002)


def test_compute_bound_batches_do_follow_the_sm_clock():
    plan = _plan("llama-3.1-8b", "bf16", "rtx-4090")
    full, capped = float(rp.decode_step_s(plan, 256, 256 * 600)), float(rp.decode_step_s(plan, 256, 256 * 600, clock=0.7))
    assert capped / full > 1.25


def test_attention_flops_add_15_percent_to_a_70b_prompt_at_8k_context():
    # fidelity.md item 3: 4 x layers x context x d_model per token = +15 % at 8k context for 70B
    plan = _plan("llama-3.3-70b", "fp8", "h100-pcie")
    per_token = float(rp.attention_flops(plan, 8192))
    assert per_token == 4 * 80 * 8192 * 8192
    assert per_token / (2 * 70.6e9) == pytest.approx(0.152, abs=0.002)
    gemm, attn = rp.prefill_flops(plan, 8192)
    assert attn / gemm == pytest.approx(0.152 / 2, abs=0.002)    # causal: mean context is half the prompt
    assert math.isclose(gemm, 2 * 70.6e9 * 8192)


def test_the_engine_prefill_cost_and_pipeline_fill_reproduce_the_prompt_latency():
    # what the engine's FIFO scan will charge: P x s/token at the replica's throughput, plus the fill
    plan = _plan("nemotron-4-340b", "int8", "rtx-pro-4500-blackwell", pp=12, util=0.95, kv_bytes=1)
    work = 1036 * float(rp.prefill_s_per_token(plan, 1036))
    assert 1036 / work == pytest.approx(rp.prefill_tokens_per_s(plan, 1036), rel=2e-3)
    alone = work + float(rp.pipeline_fill_s(work, 12, 1, True))
    assert alone == pytest.approx(rp.prompt_latency_s(plan, 1036), rel=2e-3)   # = 12 x work (sum of stages)
    assert float(rp.pipeline_fill_s(work, 12, 1, False)) == 0.0
