"""Precomputed decode-step constants (twin.model.replica.decode_constants / decode_step_from).

The engine evaluates each pool's decode step from constants derived once; telemetry must not move
by a bit, so the step is checked bit for bit against decode_step_s's formula written out from its
parts (weight_bytes_read, decode_gemm_rate_flop_s, attention_flops, roofline_s), over batches that
straddle max(batch, 1), the pipeline's micro-batches and llama.cpp's MMVQ/MMQ switch. The
constants themselves are checked against the RTX 3090 datasheet (test_serving_smallbatch figures).
"""
from pathlib import Path

import numpy as np
import pytest

from twin.model import replica as rp
from twin.model.kernels import (attention_rate_flop_s, bandwidth_b_s, decode_gemm_rate_flop_s, roofline_s,
                                select_kernel)
from twin.model.serving import weight_bytes_read
from twin.model.validate import load_scenario
from twin.sim.layout import pool_plans
from twin.spec.catalogue import load_catalogue

ROOT = Path(__file__).resolve().parent.parent
CAT = load_catalogue()
GPU = CAT.gpu("rtx-3090")
ROW = select_kernel(CAT, "llama.cpp", "gguf-q4_0", GPU)
LLAMA_8B = rp.serving_plan(CAT.model("llama-3.1-8b"), CAT.quant("gguf-q4_0"), GPU, CAT.engine("llama.cpp"), ROW)
SURGE = pool_plans(load_scenario(ROOT / "scenarios" / "surge.yaml"))   # Nemotron-4 340B PP=12 (dense), Nano (MoE)

_RNG = np.random.default_rng(19)   # (a seeded spread of values: a reassociated product moves some of them)
_N = 500
BATCH = np.concatenate([[0.0, 1.0, 2.0, 7.0, 8.0, 9.0, 12.0, 13.0, 24.0, 64.0, 200.0],
                        _RNG.integers(0, 257, _N).astype(float)])
KV = np.concatenate([[0.0, 1000.0, 3.0e3, 7.5e3, 1.6e4, 9.0e3, 2.0e4, 3.3e4, 5.0e4, 1.2e5, 4.0e5],
                     np.round(_RNG.uniform(0.0, 4.0e5, _N))])
CLOCK = np.concatenate([[1.0, 0.7, 0.0, 0.95, 1.0, 0.5, 0.8, 1.0, 0.61, 1.0, 0.9], _RNG.uniform(0.3, 1.0, _N)])
MEM = np.concatenate([[1.0, 1.0, 0.8, 0.0, 1.0, 0.9, 1.0, 0.7, 1.0, 0.55, 1.0], _RNG.uniform(0.5, 1.0, _N)])
HOP = _RNG.uniform(0.0, 2e-4, len(BATCH))
TP = _RNG.uniform(0.0, 3e-5, len(BATCH))


def _step_as_written(plan: rp.ServingPlan, batch, kv_tokens, clock, mem_clock, hop_s, tp_comm_s) -> np.ndarray:
    """decode_step_s's formula from its parts, in its docstring's order (the reference)."""
    n = np.maximum(np.asarray(batch, dtype=float), 1.0)
    micro = np.minimum(plan.pp, n)
    b = n / micro
    kv = np.asarray(kv_tokens, dtype=float)
    mem_bytes = (weight_bytes_read(plan.weights_read_bytes, plan.active_fraction, b)
                 + (kv * plan.kv_bytes_per_token + plan.state_bytes_per_seq * n) / micro)
    mem_s = mem_bytes / (plan.tp * bandwidth_b_s(plan.gpu, plan.kernel) * np.maximum(mem_clock, 1e-3))
    comp_s = (2.0 * plan.active_params * b / decode_gemm_rate_flop_s(plan.gpu, plan.kernel, b)
              + rp.attention_flops(plan, kv / micro) / attention_rate_flop_s(plan.gpu)) \
        / (plan.tp * np.maximum(clock, 1e-3))
    return roofline_s(mem_s, comp_s, plan.kernel.ridge_sharpness) + plan.step_overhead_s + hop_s + tp_comm_s


def _bits(x) -> np.ndarray:
    return np.asarray(x, dtype=float).view(np.int64)   # tells -0.0 from 0.0, unlike ==


@pytest.mark.parametrize("plan", [LLAMA_8B, *SURGE], ids=["llama-8b-q4_0-3090", "nemotron-340b-pp12", "nano-moe"])
def test_the_engine_form_keeps_every_bit_of_the_step(plan):
    want = _step_as_written(plan, BATCH, KV, CLOCK, MEM, HOP, TP)
    c = rp.decode_constants(plan)
    n = np.maximum(BATCH, 1.0)
    micro = np.minimum(c.pp, n)
    got = rp.decode_step_from(c, n, micro, n / micro, KV, clock=CLOCK, mem_clock=MEM, hop_s=HOP, tp_comm_s=TP)
    assert np.array_equal(_bits(got), _bits(want))
    public = rp.decode_step_s(plan, BATCH, KV, clock=CLOCK, mem_clock=MEM, hop_s=HOP, tp_comm_s=TP)
    assert np.array_equal(_bits(public), _bits(want))
    # scalar calls (closed_loop, predict) agree with the vectorised ones element by element
    for i in (0, 4, 5, 10):
        one = rp.decode_step_s(plan, BATCH[i], KV[i], clock=CLOCK[i], mem_clock=MEM[i], hop_s=HOP[i], tp_comm_s=TP[i])
        assert _bits(one) == _bits(want[i])


def test_the_surge_pools_cover_a_pipeline_and_a_mixture_of_experts():
    # (otherwise the bit test above would not reach the micro-batch and expert-share terms)
    assert SURGE[0].pp == 12 and SURGE[0].active_fraction == 1.0
    assert SURGE[1].pp == 1 and SURGE[1].active_fraction < 1.0


def test_constants_of_a_3090_running_llama_cpp_q4_0_match_the_datasheet():
    c = rp.decode_constants(LLAMA_8B)
    assert c.small_max_tokens == 8                                         # MMVQ_MAX_BATCH_SIZE
    assert c.small_gemm_rate_flop_s == pytest.approx(0.063 * 4 * 35.6e12 * 0.95)   # MMVQ: dp4a x eta
    assert c.gemm_rate_flop_s == pytest.approx(0.06 * 284e12 * 0.95)       # MMQ: INT8 tensor x eta
    assert c.tp_bandwidth_b_s == pytest.approx(0.86 * 936e9)               # eta_bw x 936 GB/s, tp 1
    assert c.step_overhead_s == pytest.approx(0.00082)
    assert c.gemm_flop_per_token == pytest.approx(2 * 8.03e9, rel=1e-3)


def test_a_row_without_a_small_batch_kernel_has_no_threshold():
    row = ROW.model_copy(update={"small_batch": None})
    plan = rp.serving_plan(CAT.model("llama-3.1-8b"), CAT.quant("gguf-q4_0"), GPU, CAT.engine("llama.cpp"), row)
    c = rp.decode_constants(plan)
    assert c.small_max_tokens == np.inf and c.small_gemm_rate_flop_s == c.gemm_rate_flop_s
    want = _step_as_written(plan, BATCH, KV, CLOCK, MEM, HOP, TP)
    assert np.array_equal(_bits(rp.decode_step_s(plan, BATCH, KV, clock=CLOCK, mem_clock=MEM, hop_s=HOP,
                                                 tp_comm_s=TP)), _bits(want))
