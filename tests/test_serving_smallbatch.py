"""llama.cpp's small-batch regime: MMVQ (dp4a on the CUDA cores) for <= 8 tokens per step, MMQ above.

Hand-computed against the catalogue's datasheet figures: RTX 3090 FP32 35.6 TFLOPS, INT8 tensor
284 TOPS, sustained share 0.95; kernel row llama.cpp/gguf: MMVQ eta 0.063 (fit F33-F35), MMQ decode
eta 0.06 (fit F16), 0.82 ms per step.
"""
import numpy as np
import pytest
from pydantic import ValidationError

from twin.model.kernels import KernelError, decode_gemm_rate_flop_s, dp4a_rate_op_s, select_kernel
from twin.model.replica import decode_step_s, serving_plan
from twin.spec.catalogue import load_catalogue
from twin.spec.kernels import KernelSpec

CAT = load_catalogue()
GPU = CAT.gpu("rtx-3090")
ROW = select_kernel(CAT, "llama.cpp", "gguf-q4_0", GPU)
DP4A_3090 = 4 * 35.6e12 * 0.95                  # 135.28 T int8 op/s
MMVQ_3090 = 0.063 * DP4A_3090                   # 8.52264 T op/s
MMQ_3090 = 0.06 * 284e12 * 0.95                 # 16.188 T op/s


def test_dp4a_rate_is_four_times_the_fp32_rate_at_the_sustained_clock():
    assert dp4a_rate_op_s(GPU) == pytest.approx(135.28e12)


def test_up_to_eight_tokens_per_step_run_mmvq_and_nine_run_mmq():
    rates = decode_gemm_rate_flop_s(GPU, ROW, np.array([1, 2, 8, 9, 16]))
    assert rates == pytest.approx([MMVQ_3090, MMVQ_3090, MMVQ_3090, MMQ_3090, MMQ_3090])


def test_a_row_without_a_small_batch_regime_keeps_its_decode_rate_at_every_batch():
    row = ROW.model_copy(update={"small_batch": None, "eta_compute_decode": 0.1})
    assert decode_gemm_rate_flop_s(GPU, row, np.array([1, 8, 64])) == pytest.approx([0.1 * 284e12 * 0.95] * 3)


def test_build_era_rows_have_no_small_batch_regime():
    old = select_kernel(CAT, "llama.cpp", "gguf-q4_0", GPU, build="2024-05")
    assert old.small_batch is None


def test_decode_step_with_free_memory_is_the_gemm_term_of_the_regime_plus_the_step_overhead():
    # memory bandwidth made so large that only compute is left: step = 2 A b / rate + 0.82 ms
    fast = GPU.model_copy(update={"memory_bandwidth_gb_s": 1e12})
    model, quant = CAT.model("llama-3.1-8b"), CAT.quant("gguf-q4_0")
    plan = serving_plan(model, quant, fast, CAT.engine("llama.cpp"), ROW)
    a = model.active_params_b * 1e9
    step8 = float(decode_step_s(plan, 8, 0.0))
    step9 = float(decode_step_s(plan, 9, 0.0))
    assert step8 == pytest.approx(2 * a * 8 / MMVQ_3090 + 0.00082, rel=1e-6)
    assert step9 == pytest.approx(2 * a * 9 / MMQ_3090 + 0.00082, rel=1e-6)
    assert step9 < step8      # the switch to int8 tensor cores makes 9 tokens cheaper than 8


def test_batch_eight_on_a_3090_is_compute_bound_in_mmvq():
    plan = serving_plan(CAT.model("llama-3.1-8b"), CAT.quant("gguf-q4_0"), GPU, CAT.engine("llama.cpp"), ROW)
    one, eight = float(decode_step_s(plan, 1, 256.0)), float(decode_step_s(plan, 8, 256.0))
    # memory-bound, 8 tokens would cost the same step as one; MMVQ's dp4a work makes it ~2.4x longer
    # (2 x 8.03e9 x 8 / 8.52e12 = 15.1 ms of compute against ~5.3 ms of weights at 0.86 x 936 GB/s)
    assert 2.0 < eight / one < 3.0


def test_a_small_batch_regime_of_zero_tokens_is_refused_with_its_field_path():
    data = ROW.model_dump()
    data["small_batch"]["max_tokens"] = 0
    with pytest.raises(ValidationError, match=r"small_batch\.max_tokens"):
        KernelSpec.model_validate(data)


def test_a_gpu_without_an_fp32_rate_names_the_missing_field():
    gpu = GPU.model_copy(update={"dense_tflops": {"fp16": 71.0, "int8": 284.0}})
    with pytest.raises(KernelError, match=r"gpus\.rtx-3090\.dense_tflops\.fp32"):
        dp4a_rate_op_s(gpu)
