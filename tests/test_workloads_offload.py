"""llama.cpp partial offload on the 4x4090 workstation (405B): hand-computed split, decode bound,
refusals, and the scenario end to end (twin/model/cpu_inference.py stand-in, issue 20)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.errors import SpecError
from twin.model.cpu_inference import auto_gpu_layers, offload_replica
from twin.model.validate import load_scenario, scenario_from_text
from twin.sim.engine import simulate
from twin.spec.catalogue import load_catalogue

CAT = load_catalogue()
NODE = CAT.node("ws-4x4090-tr")
SCEN = Path(__file__).resolve().parent.parent / "scenarios" / "ws-4x4090-405b.yaml"
W405 = 405.9e9 * 0.606                       # Q4_K_M weights, 246.0 GB
KV_TOK = 2 * 126 * 8 * 128 * 2              # 516,096 B per token of context


def test_auto_gpu_layers_fills_each_card_with_whole_layers():
    # per 4090: 24 GB x 0.92 - 1 GB compute buffer = 21.08 GB; a layer is 246.0 / 126 = 1.952 GB
    # (+ 16.8 MB of KV for one 4,096-token slot): 10 layers per card, 40 on four
    assert auto_gpu_layers(W405, 126, 4, 24, 0.92, 4096 * KV_TOK / 126) == 40


def test_405b_decode_is_the_sum_of_the_gpu_and_system_memory_parts():
    off = offload_replica(CAT.model("llama-3.1-405b"), CAT.quant("gguf-q4_k_m"), CAT.engine("llama.cpp"),
                          CAT.gpu("rtx-4090"), CAT.cpu(NODE.cpu), NODE, 4, 0.92, "auto", 1)
    step = W405 + 4096 * KV_TOK
    gpu_s = 40 / 126 * step / (0.70 * 1008e9)          # one card at a time: 0.112 s
    cpu_s = 86 / 126 * step / (0.70 * 332.8e9)         # 8 x DDR5-5200 at 70 %: 0.727 s
    assert off.gpu_decode_s == pytest.approx(gpu_s) and off.cpu_decode_s == pytest.approx(cpu_s)
    assert 1 / (gpu_s + cpu_s) == pytest.approx(1.19, abs=0.01)   # tok/s; the roofline ceiling was 1.8
    assert off.gpu_busy_frac == pytest.approx(gpu_s / (gpu_s + cpu_s))
    assert off.cpu_weights_b == pytest.approx(86 / 126 * W405)     # 167.9 GB of the 512 GB


def test_offload_refusals_name_the_field():
    text = SCEN.read_text()
    with pytest.raises(SpecError) as exc:
        scenario_from_text(text.replace("gpu_layers: auto", "gpu_layers: 126"))
    assert exc.value.problems == ["pools[0].gpu_layers: 126 layers are 246.0 GB but 4 x rtx-4090 hold 88.3 GB; "
                                  "lower gpu_layers or use auto"]
    with pytest.raises(SpecError) as exc:
        scenario_from_text(text.replace("gpu_layers: auto", "gpu_layers: auto, ram_gb: 128"))
    assert exc.value.problems == ["pools[0].gpu_layers: the 86 layers left in system memory are 167.9 GB but "
                                  "the pool reserves 128 GB of RAM"]


def test_405b_scenario_end_to_end_decode_power_and_heat():
    res = simulate(load_scenario(SCEN))
    s = res.summary
    assert s["requests_completed"] == s["requests_arrived"] > 0
    rq = res.columns["requests"]
    ft, done = np.asarray(rq["first_token_s"], float), np.asarray(rq["done_s"], float)
    out = np.asarray(rq["output_tokens"], float)
    ok = out > 8
    assert np.median((out[ok] - 1) / (done[ok] - ft[ok])) == pytest.approx(1.19, rel=0.02)
    nodes = res.columns["nodes"]
    serving = np.asarray(nodes["state"], dtype=object) == "SERVING"
    cpu_w = np.asarray(nodes["cpu_power_w"], float)
    # while it serves, every core streams weights: the package sits at its 350 W TDP ...
    assert np.median(cpu_w[serving]) == pytest.approx(350.0)
    # ... and heads for 24 C + 350 W x 0.17 K/W = 83.5 C; the four GPUs mostly wait on memory
    assert max(nodes["cpu_temp_c"]) == pytest.approx(83.5, abs=0.5)
    gpu_w = np.asarray(nodes["gpu_power_w"], float)
    assert np.median(gpu_w[serving]) < 4 * 60
