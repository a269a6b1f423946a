"""`twin predict`: each figure against a hand computation written out in the test."""
from __future__ import annotations

import json
import math

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
    weights_b = 70.6e9 * 0.567                  # AWQ-INT4 incl. scales = 40.03 GB
    kv_b = 1020 * 2 * 80 * 8 * 128 * 2           # 1,020 tokens of BF16 KV (320 KiB each)
    mem_s = (weights_b + kv_b) / (2 * 0.80 * 936e9)   # TP2 streams at 2 x eta 0.8 x 936 GB/s
    # 2 ring all-reduces/layer at 50 us per call (GeForce, no P2P: node tp_allreduce_latency_s), 10 GB/s
    allreduce_s = 2 * 80 * (50e-6 + 8192 * 2 * 2 * (2 - 1) / 2 / 10e9)
    interval = mem_s + 0.002 + allreduce_s       # + vLLM step overhead
    assert decode_interval_s(dual_3090, 1, 1020) == pytest.approx(interval, rel=1e-6)
    assert 1 / interval == pytest.approx(26.87, abs=0.05)


def test_prefill_is_compute_bound(dual_3090):
    # 2 FLOPs per active parameter per token over 2 x 71 TFLOPS at eta 0.7, plus TP2 all-reduce
    # traffic: 2 per layer x 80 layers x (8192 x 2 B x 2 x (2-1)/2) over 10 GB/s = 0.262 ms/token
    compute_s = 2 * 70.6e9 / (2 * 71e12 * 0.7)
    comm_s = 2 * 80 * 8192 * 2 * 2 * (2 - 1) / 2 / 10e9
    assert prefill_tokens_per_s(dual_3090) == pytest.approx(1 / (compute_s + comm_s), rel=1e-9)


def test_kv_budget_limits_the_batch(dual_3090):
    budget_b = 2 * 24e9 * 0.92 - 70.6e9 * 0.567          # 4.13 GB left after the weights
    per_seq_b = (1020 + 129) * 2 * 80 * 8 * 128 * 2      # one Azure-median request
    assert kv_fit_sequences(dual_3090, 1020 + 129) == int(budget_b // per_seq_b) == 10
    rows = concurrency_table(dual_3090, [16], 1020, 129)
    assert rows[0].batch == 10


def test_slots_cap_the_batch_and_extra_clients_queue_in_waves(cat):
    box = resolve_box(cat, "rtx5090-server", "llama-3.1-8b", "gguf-q4_k_m", "llama.cpp", max_batch=4)
    four, sixteen = concurrency_table(box, [4, 16], 1020, 129)
    assert four.batch == sixteen.batch == 4
    assert sixteen.aggregate_tok_s == pytest.approx(four.aggregate_tok_s)
    # 16 clients = 4 waves of 4: mean latency T + (4 - 1) / 2 T = 2.5 T
    assert sixteen.latency_s == pytest.approx(2.5 * four.latency_s)
    # wave time by hand: 4 prompts prefilled in turn, then 129 tokens at the batch-4 interval
    t_wave = 4 * 1020 / prefill_tokens_per_s(box) + 129 * decode_interval_s(box, 4, 1020 + 129 / 2)
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
    assert burn.plateau_c == pytest.approx([25 + 200 * 0.25] * 3, abs=0.05)   # 75 C
    assert burn.settled
    # two-node ladder at full fan: R_die = 0.25 x 0.25 = 0.0625 K/W, C_die = 15 s / R_die = 240 J/K,
    # R_sink = 0.1875 K/W, C_sink = 450 J/K. A = [[-1/15, 1/15], [1/28.125, -(16 + 5.333)/450]]:
    # eigenvalues -1/135 s and -1/9.375 s. The slow (heatsink) mode carries most of the 50 K rise, so
    # reaching 1 K of the plateau takes between 135 ln(20) = 404 s and 135 ln(50) = 528 s (+ fan lag).
    tr2 = (-1 / 15 - (16 + 16 / 3) / 450) / 2
    det = (1 / 15) * (16 + 16 / 3) / 450 - (1 / 15) * (1 / 28.125)
    tau_slow = -1 / (tr2 + math.sqrt(tr2 ** 2 - det))
    assert tau_slow == pytest.approx(135.0)
    assert tau_slow * math.log(20) <= burn.time_to_plateau_s <= tau_slow * math.log(50) + 30
    dc = 3 * 200 + (75 + (350 - 75) * 0.2) + 8 * (3.0 + 1.5 * 0.5) + 50 + 22 + 3 * 2.5
    eff = 0.96 + (0.94 - 0.96) * (dc / 1600 - 0.5) / 0.5       # Titanium between 50 and 100 %
    assert burn.node_dc_w[-1] == pytest.approx(dc, rel=1e-6)
    assert burn.node_wall_w[-1] == pytest.approx(dc / eff, rel=1e-6)


def test_power_cap_holds_board_power_at_the_cap(cat):
    box = resolve_box(cat, "rtx5090-server", "llama-3.1-8b", "fp8", "vllm")
    capped = burn_test(box, duration_s=120, power_cap_w=400.0)
    # P = idle + (TGP - idle) c^3 = 400 W  ->  c = cbrt((400 - 30) / (575 - 30)) = 0.879
    assert capped.gpu_power_w[-1, 0] == pytest.approx(400.0, rel=1e-6)
    assert capped.gpu_clock[-1, 0] == pytest.approx(((400 - 30) / (575 - 30)) ** (1 / 3), rel=1e-6)
    # hardware.md: the 5090 is capped at 600 W, above its 575 W TGP, so the cap never binds
    assert burn_test(box, duration_s=60, power_cap_w=600.0).gpu_power_w[-1, 0] == pytest.approx(575.0)


def test_a_replica_larger_than_the_box_is_refused(cat):
    with pytest.raises(ValueError, match="tp x pp = 6 GPUs exceeds the 3 GPUs of one refinery-node"):
        resolve_box(cat, "refinery-node", "llama-3.3-70b", "awq-int4", pp=6)


def test_predict_cli_prints_every_section():
    r = runner.invoke(app, ["predict", "--node", "dual-3090-desktop", "-m", "llama-3.3-70b", "--quant", "awq-int4",
                            "--tp", "2", "--burn-s", "300", "--concurrency", "1,8"])
    assert r.exit_code == 0, r.output
    for text in ("model load", "single-stream decode 26.9 tok/s", "aggregate tok/s", "burn test",
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
     # 405.9e9 x 0.567 B = 230.1 GB vs 4 x 24 GB x 0.92 = 88.3 GB
     "--model: llama-3.1-405b in awq-int4 needs 230.1 GB of weights but a replica of 4 x rtx-4090 has 88.3 GB usable"),
    (["--gpu", "rtx-409", "-m", "llama-3.1-8b", "--quant", "bf16"], "--gpu: unknown gpu 'rtx-409' (did you mean 'rtx-4090'?)"),
    (["--node", "ws-4x4090-tr", "-m", "llama-3.1-8b", "--quant", "bf16", "--tp", "3"],
     "--tp: tensor parallel 3 must divide llama-3.1-8b's 32 attention heads"),
    (["-m", "llama-3.1-8b", "--quant", "bf16", "--concurrency", "1,x"], "--concurrency: expected comma-separated integers"),
    (["-m", "llama-3.1-8b", "--quant", "int4"], "--quant: unknown quantisation 'int4'"),
    (["-m", "llama-3.3-70b", "--quant", "awq-int4", "--pp", "6"], "--tp/--pp: tp x pp = 6 GPUs exceeds the 3 GPUs"),
    (["-m", "llama-3.1-8b", "--quant", "bf16", "--kv-bytes", "8"], "--kv-bytes: Input should be less than or equal to 4"),
])
def test_predict_cli_bad_input_exits_2_naming_the_option(args, message):
    r = runner.invoke(app, ["predict", *args, "--burn-s", "10"])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
