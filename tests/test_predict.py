"""`twin predict`: each figure against a hand computation written out in the test."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from twin.spec.catalogue import load_catalogue
from twin.cli.main import app
from twin.tools.predict import (Box, burn_test, concurrency_table, decode_interval_s, idle_power, kv_fit_sequences, model_load_s, peak_power, prefill_tokens_per_s, psu_headroom_frac, resolve_box)

runner = CliRunner()


@pytest.fixture(scope="module")
def cat():
    return load_catalogue()


@pytest.fixture(scope="module")
def dual_3090(cat) -> Box:
    return resolve_box(cat, "dual-3090-desktop", "llama-3.3-70b", "awq-int4", "vllm", tp=2)


def test_model_load_is_size_over_the_slower_link_plus_warmup():
    # hardware.md: size / min(NVMe ~6 GB/s, PCIe H2D ~25 GB/s) + warm-up: 40/6 + 60
    assert model_load_s(40.0, 6.0, 25.0, 60.0) == pytest.approx(40 / 6 + 60)


def test_single_stream_decode_on_dual_3090_by_hand(dual_3090):
    # vLLM awq_marlin on Ampere: eta_bw 0.80, eta_compute_decode 0.5 of the sustained FP16 rate
    weights_b = 70.6e9 * 0.567 - 128256 * 8192 * 0.567   # AWQ-INT4 less the input embedding (one row read)
    kv_b = 1020 * 2 * 80 * 8 * 128 * 2                   # 1,020 tokens of BF16 KV (320 KiB each)
    mem_s = (weights_b + kv_b) / (2 * 0.80 * 936e9)       # TP2 streams at 2 x eta 0.8 x 936 GB/s
    rate = 0.5 * 71e12 * 0.95                             # per GPU: eta x 71 TFLOPS x sustained 0.95
    comp_s = (2 * 70.6e9 / rate + 4 * 80 * 8192 * 1020 / (0.5 * 71e12 * 0.95)) / 2
    roof_s = mem_s * (1 + (comp_s / mem_s) ** 3) ** (1 / 3)  # smooth roofline, n = 3
    # 2 ring all-reduces/layer at 50 us per call (GeForce, no P2P: node tp_allreduce_latency_s), 10 GB/s
    allreduce_s = 2 * 80 * (50e-6 + 8192 * 2 * 2 * (2 - 1) / 2 / 10e9)
    interval = roof_s + 0.002 + allreduce_s              # + vLLM step overhead
    assert decode_interval_s(dual_3090, 1, 1020) == pytest.approx(interval, rel=1e-6)
    assert 1 / interval == pytest.approx(27.16, abs=0.05)


def test_prefill_is_compute_bound(dual_3090):
    # 1,020-token prompts: 2 FLOPs per parameter at 0.55 (awq_marlin prefill) of 2 x 71 x 0.95 TFLOPS,
    # attention 2 x 80 x 8192 x 1020^2 at the FlashAttention rate (0.5 of FP16), plus TP2 all-reduce
    # traffic: 2 per layer x 80 layers x (8192 x 2 B x 2 x (2-1)/2) over 10 GB/s = 0.262 ms/token
    gemm_s = 2 * 70.6e9 * 1020 / (2 * 0.55 * 71e12 * 0.95)
    attn_s = 2 * 80 * 8192 * 1020 ** 2 / (2 * 0.5 * 71e12 * 0.95)
    comm_s = 1020 * 2 * 80 * 8192 * 2 * 2 * (2 - 1) / 2 / 10e9
    assert prefill_tokens_per_s(dual_3090, 1020) == pytest.approx(1020 / (gemm_s + attn_s + comm_s), rel=1e-5)
    assert prefill_tokens_per_s(dual_3090, 1020) == pytest.approx(457.65, abs=0.1)


def test_kv_budget_limits_the_batch(dual_3090):
    # nvidia-smi 24,576 MiB = 24.0 GiB per 3090; vLLM takes 0.92 of it and reserves 1.5 GiB per GPU
    usable_b = 2 * (24.0 * 2**30 * 0.92 - 1.5 * 2**30)
    pool_b = usable_b - 70.6e9 * 0.567                   # 4.17 GB left after the weights
    blocks = int(pool_b // (16 * 327_680))                # paged blocks of 16 tokens x 320 KiB
    assert blocks == 794
    # paged: a request holds its current context, on average 1,020 + 129/2 -> 68 blocks
    assert kv_fit_sequences(dual_3090, 1020, 129) == blocks // 68 == 11
    rows = concurrency_table(dual_3090, [16], 1020, 129)
    assert rows[0].batch == 11


def test_slots_cap_the_batch_and_extra_clients_queue_in_waves(cat):
    box = resolve_box(cat, "rtx5090-server", "llama-3.1-8b", "gguf-q4_k_m", "llama.cpp", max_batch=4)
    four, sixteen = concurrency_table(box, [4, 16], 1020, 129)
    assert four.batch == sixteen.batch == 4
    assert sixteen.aggregate_tok_s == pytest.approx(four.aggregate_tok_s)
    # 16 clients = 4 waves of 4: mean latency T + (4 - 1) / 2 T = 2.5 T
    assert sixteen.latency_s == pytest.approx(2.5 * four.latency_s)
    # wave time by hand: 4 prompts prefilled in turn, then 129 tokens at the batch-4 interval
    t_wave = 4 * 1020 / prefill_tokens_per_s(box, 1020) + 129 * decode_interval_s(box, 4, 1020 + 129 / 2)
    assert four.latency_s == pytest.approx(t_wave)
    assert four.aggregate_tok_s == pytest.approx(4 * 129 / t_wave)


def test_idle_and_peak_power_are_the_sums_of_the_parts(dual_3090):
    fans_min = 4 * 1.56 * (300 / 1500) ** 3                  # affinity law at minimum rpm
    idle_dc = 2 * 20 + 30 + 4 * 2.0 + 35 + 1.5 + fans_min     # GPUs, CPU, DIMMs, board, NIC, fans
    assert idle_power(dual_3090).dc_w == pytest.approx(idle_dc)
    # below the first 80 PLUS point (20 %): losses a + b x through 20 % (92 %) and 50 % (94 %), x rated
    loss20, loss50 = 0.2 * (1 / 0.92 - 1), 0.5 * (1 / 0.94 - 1)
    b = (loss50 - loss20) / 0.3
    a = loss20 - 0.2 * b                                      # 0.00771 x 1,200 W = 9.3 W fixed
    x = idle_dc / 1200
    assert idle_power(dual_3090).wall_w == pytest.approx(idle_dc * (x + a + b * x) / x)
    peak_dc = 2 * 350 + 230 + 4 * 4.0 + 35 + 1.5 + 4 * 1.56   # every part at its maximum
    assert peak_power(dual_3090).dc_w == pytest.approx(peak_dc)
    assert psu_headroom_frac(dual_3090, peak_dc) == pytest.approx(1 - peak_dc / 1200)


def test_burn_test_plateau_is_inlet_plus_power_times_resistance(cat):
    # A blower at full speed from 46 C on, and no CPU pre-heat: the die settles at T_in + P R
    base = resolve_box(cat, "refinery-node", "llama-3.3-70b", "awq-int4", "vllm", pp=3)
    box = Box(**{**base.__dict__, "gpu": base.gpu.model_copy(update={"fan_target_c": 46.0}),
                 "node": base.node.model_copy(update={"gpu_preheat_frac": 0.0})})
    burn = burn_test(box, ambient_c=25.0, duration_s=1500.0)
    assert burn.plateau_c == pytest.approx([25 + 200 * 0.25] * 3, abs=0.05)   # 75 C, power-limited at 200 W
    assert burn.settled
    # idle start (P8 15 W, blower at its 0.3 minimum, no pre-heat): R = 0.0875 + 0.1625 / 0.3^0.8
    assert burn.start_c == pytest.approx([25 + 15 * (0.0875 + 0.1625 / 0.3 ** 0.8)] * 3, abs=1e-6)
    # two stages at full fan: R_spr = 0.35 x 0.25 = 0.0875 K/W, C_spr = 3 s / R_spr = 34.29 J/K;
    # R_sink = 0.1625 K/W, C_sink = 4/pi^2 x 450 J/K = 182.4 J/K (distributed fin, first mode).
    r_spr, r_sink = 0.0875, 0.1625
    c_spr, c_sink = 3.0 / r_spr, 4 / math.pi ** 2 * 450
    a, b = -1 / (r_spr * c_spr), 1 / (r_spr * c_spr)
    c, d = 1 / (r_spr * c_sink), -(1 / r_spr + 1 / r_sink) / c_sink
    half = (a + d) / 2
    tau_slow = -1 / (half + math.sqrt(half ** 2 - (a * d - b * c)))
    # A = [[-1/3, 1/3], [0.06266, -0.09640]]: trace/2 = -0.21487, det = 0.011247 -> slow eigenvalue -0.0280
    assert tau_slow == pytest.approx(35.7, abs=0.1)          # the heatsink stage: 30-60 s (published burns)
    # the heatsink carries ~2/3 of the ~38 K rise: within 1 K after ~tau ln(25) once the fan is up
    assert 60 <= burn.time_to_plateau_s <= tau_slow * math.log(30) + 30
    # CPU: gpu-burn spins one host process per GPU, 3 of 32 cores: 75 + 275 x 3/32 W
    dc = 3 * 200 + (75 + 275 * 3 / 32) + 8 * (3.0 + 1.5 * 0.5) + 50 + 22 + 3 * 2.5
    eff = 0.96 + (0.94 - 0.96) * (dc / 1600 - 0.5) / 0.5       # Titanium 230 V between 50 and 100 %
    assert burn.node_dc_w[-1] == pytest.approx(dc, rel=1e-6)
    assert burn.node_wall_w[-1] == pytest.approx(dc / eff, rel=1e-6)
    # transient allowance: power-limited boards peak 5 % of 200 W above it at the wall meter
    dc_peak = dc + 3 * 0.05 * 200
    eff_peak = 0.96 + (0.94 - 0.96) * (dc_peak / 1600 - 0.5) / 0.5
    assert burn.node_wall_peak_w[-1] == pytest.approx(dc_peak / eff_peak, rel=1e-6)


def test_power_cap_holds_board_power_at_the_cap(cat):
    box = resolve_box(cat, "rtx5090-server", "llama-3.1-8b", "fp8", "vllm")
    capped = burn_test(box, duration_s=120, power_cap_w=400.0)
    # gpu-burn: P = 45 (P0) + 0.1 x 1,792 GB/s x (0.048 + 0.232 c^2) + 1.2 x (575 - 45) c^3 = 400 W
    gb_s = 0.1 * 1792
    roots = np.roots([1.2 * (575 - 45), 0.232 * gb_s, 0.0, 45 + 0.048 * gb_s - 400])
    c = float(max(r.real for r in roots if abs(r.imag) < 1e-9))
    assert capped.gpu_power_w[-1, 0] == pytest.approx(400.0, rel=1e-6)
    assert capped.gpu_clock[-1, 0] == pytest.approx(c, rel=1e-6)
    # hardware.md: the 5090 is capped at 600 W, above its 575 W TGP, so the TGP limiter binds
    assert burn_test(box, duration_s=60, power_cap_w=600.0).gpu_power_w[-1, 0] == pytest.approx(575.0)


def test_a_replica_larger_than_the_box_is_refused(cat):
    with pytest.raises(ValueError, match="tp x pp = 6 GPUs exceeds the 3 GPUs of one refinery-node"):
        resolve_box(cat, "refinery-node", "llama-3.3-70b", "awq-int4", pp=6)


def test_predict_cli_prints_every_section():
    r = runner.invoke(app, ["predict", "--node", "dual-3090-desktop", "-m", "llama-3.3-70b", "--quant", "awq-int4",
                            "--tp", "2", "--burn-s", "300", "--concurrency", "1,8"])
    assert r.exit_code == 0, r.output
    for text in ("engine first boot", "single-stream decode 27.2 tok/s", "aggregate tok/s", "burn test",
                 "PSU headroom", "gpu1 W / °C"):
        assert text in r.output


def test_predict_cli_json_and_gpu_override():
    r = runner.invoke(app, ["predict", "--gpu", "h100-pcie", "--gpus", "1", "-m", "llama-3.1-8b", "--quant", "bf16",
                            "--json", "--burn-s", "60", "--concurrency", "1"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["gpu"] == "h100-pcie" and d["gpus"] == 1 and d["replicas"] == 1
    # 8.03e9 params x 2 B = 16.06 GB of weights
    assert d["weights_gb_per_replica"] == pytest.approx(16.06)


@pytest.mark.parametrize("args, message", [
    (["--node", "ws-4x4090-tr", "-m", "llama-3.1-405b", "--quant", "awq-int4", "--tp", "4"],
     # 405.9e9 x 0.567 B = 230.1 GB vs 4 x (23.99 GiB x 0.92 - 1.5 GiB) = 88.4 GB
     "--model: llama-3.1-405b in awq-int4 needs 230.1 GB of weights but a replica of 4 x rtx-4090 has 88.4 GB usable"),
    (["--gpu", "rtx-409", "-m", "llama-3.1-8b", "--quant", "bf16"], "--gpu: unknown gpu 'rtx-409' (did you mean 'rtx-4090'?)"),
    (["--node", "ws-4x4090-tr", "-m", "llama-3.1-8b", "--quant", "bf16", "--tp", "3"],
     "--tp: tensor parallel 3 must divide llama-3.1-8b's 32 attention heads"),
    (["-m", "llama-3.1-8b", "--quant", "bf16", "--concurrency", "1,x"], "--concurrency: expected comma-separated integers"),
    (["-m", "llama-3.1-8b", "--quant", "int4"], "--quant: unknown quantisation 'int4'"),
    (["-m", "llama-3.3-70b", "--quant", "awq-int4", "--pp", "6"], "--tp/--pp: tp x pp = 6 GPUs exceeds the 3 GPUs"),
    (["-m", "llama-3.1-8b", "--quant", "bf16", "--kv-bytes", "8"], "--kv-bytes: Input should be less than or equal to 4"),
    (["-m", "llama-3.1-8b", "--quant", "gguf-q4_0", "-e", "llama.cpp", "--build", "2019-01"],
     "--build: unknown llama.cpp build '2019-01'; builds with their own kernel rows: 2023-12, 2024-05"),
    (["-m", "llama-3.1-8b", "--quant", "bf16", "--build", "2023-12"],
     "--build: unknown vllm build '2023-12'; builds with their own kernel rows: none"),
    (["-m", "llama-3.1-8b", "--quant", "bf16", "--boot-cache", "hot"],
     "--boot-cache: Input should be 'none', 'kernels' or 'all'"),
])
def test_predict_cli_bad_input_exits_2_naming_the_option(args, message):
    r = runner.invoke(app, ["predict", *args, "--burn-s", "10"])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


def test_predict_cli_build_runs_that_eras_kernel_row():
    """4090, Llama 2 7B Q4_0, one stream at 1,012 tokens, llama.cpp build 1680 (`--build 2023-12`), by hand:
    weights 6.74e9 x 0.5625 - 32,000 x 4,096 x 0.5625 (embedding) + KV 1,012 x 2 x 32 x 4,096 x 2 B,
    read at 0.83 x 1,008 GB/s, + 0.82 ms + 32 layers x 40 us of host launches (no CUDA graphs);
    the current build: 0.86 of bandwidth and no per-layer launches."""
    bytes_ = 6.74e9 * 0.5625 - 32000 * 4096 * 0.5625 + 1012 * 2 * 32 * 4096 * 2
    args = ["predict", "--node", "rtx5090-server", "--gpu", "rtx-4090", "-m", "llama-2-7b", "--quant", "gguf-q4_0",
            "-e", "llama.cpp", "--prompt-tokens", "1012", "--concurrency", "1", "--burn-s", "10", "--json"]
    old = json.loads(runner.invoke(app, [*args, "--build", "2023-12"]).output)
    now = json.loads(runner.invoke(app, args).output)
    assert old["build"] == "2023-12" and now["build"] is None
    assert old["single_stream_tok_s"] == pytest.approx(1 / (bytes_ / (0.83 * 1008e9) + 0.00082 + 32 * 0.00004),
                                                       rel=5e-3)
    assert now["single_stream_tok_s"] == pytest.approx(1 / (bytes_ / (0.86 * 1008e9) + 0.00082), rel=5e-3)


def test_predict_cli_boot_cache_sets_the_first_boot():
    """Nemotron 3 Nano NVFP4 on a refinery node: without a kernel cache the first boot adds the nvfp4
    row's 120 s FlashInfer JIT (vllm#47456); with the compile cache too it saves 45 - 7.5 s of torch.compile."""
    args = ["predict", "-m", "nemotron-3-nano", "--quant", "nvfp4", "--concurrency", "1", "--burn-s", "10", "--json"]
    load = {c: json.loads(runner.invoke(app, [*args, "--boot-cache", c]).output)["model_load_s"]
            for c in ("none", "kernels", "all")}
    default = json.loads(runner.invoke(app, args).output)
    assert default["boot_cache"] == "kernels" and default["model_load_s"] == pytest.approx(load["kernels"])
    assert load["none"] - load["kernels"] == pytest.approx(120.0)
    assert load["kernels"] - load["all"] == pytest.approx(45 - 7.5)
