"""Llama 3.1 405B on the 4x4090 workstation with llama.cpp partial offload, end to end (issue 20):
the split and decode bound by hand, and the scenario's speed, power and heat. The offload physics is
twin/model/offload.py (the serving model); this checks that the engine runs it as planned."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.model import offload as ol
from twin.model.validate import load_scenario
from twin.sim.engine import simulate
from twin.sim.layout import build_layout, pool_offload
from twin.spec.topology import build_topology

SCEN = Path(__file__).resolve().parent.parent / "scenarios" / "ws-4x4090-405b.yaml"


@pytest.fixture(scope="module")
def sc():
    return load_scenario(SCEN)


def test_405b_split_and_decode_step_by_hand(sc):
    node = sc.catalogue.node("ws-4x4090-tr")
    cpu = sc.catalogue.cpu(node.cpu)
    lay = build_layout(sc, build_topology(sc), node)
    pl, split = lay.plans[0], lay.splits[0]
    assert (split.gpu_layers, split.layers) == (44, 126)           # -ngl auto: 11 layers per 24 GB card
    kv = 1000 * 2 * 126 * 8 * 128 * 2                            # 1,000 tokens of BF16 KV
    read = pl.weights_read_bytes + kv
    gpu_s = 44 / 126 * read / (0.86 * 1008e9)                     # llama.cpp GGUF on Ada: 0.86 of 1,008 GB/s
    cpu_s = 82 / 126 * read / (0.77 * 332.8e9)                    # 8 x DDR5-5200 at 77 % (256 GB/s)
    step = ol.offload_decode_token_s(pl, split, cpu, node, context_tokens=1000.0)
    assert step == pytest.approx(gpu_s + cpu_s + pl.step_overhead_s, rel=1e-3)
    assert 1 / step == pytest.approx(1.38, abs=0.01)
    gpu_busy, cpu_load, gpu_w = pool_offload(sc, lay)
    # the cards work only their part of each step; the 32 streaming cores the rest
    assert gpu_busy[0] == pytest.approx(1 - cpu_s / step, rel=1e-3)
    assert cpu_load[0] == pytest.approx(1 - gpu_busy[0])
    assert gpu_w[0] == pytest.approx(44 / 126 * pl.weights_bytes)


def test_405b_scenario_speed_power_and_heat(sc):
    res = simulate(sc)
    s = res.summary
    assert s["requests_completed"] == s["requests_arrived"] > 0
    rq = res.columns["requests"]
    ft, done = np.asarray(rq["first_token_s"], float), np.asarray(rq["done_s"], float)
    out = np.asarray(rq["output_tokens"], float)
    ok = out > 8
    assert np.median((out[ok] - 1) / (done[ok] - ft[ok])) == pytest.approx(1.38, rel=0.03)
    nodes = res.columns["nodes"]
    serving = np.asarray(nodes["state"], dtype=object) == "SERVING"
    cpu_w = np.asarray(nodes["cpu_power_w"], float)
    util = np.asarray(nodes["cpu_util"], float)
    # while it serves, every core streams weights for the 86 % of each step spent in system memory,
    # on top of the engine's own host work; the package follows P = 75 + (350 - 75) x util
    assert np.median(util[serving]) >= 1 - 0.138
    assert np.median(cpu_w[serving]) == pytest.approx(75 + 275 * np.median(util[serving]), rel=1e-3)
    # ... and the package heads for 24 C + P x 0.17 K/W (twin/model/cpu_load.py)
    assert max(nodes["cpu_temp_c"]) == pytest.approx(24 + cpu_w.max() * 0.17, abs=1.0)
    gpu_w = np.asarray(nodes["gpu_power_w"], float)
    # the cards sit in P0 waiting on system memory: near their active idle, far below 4 x 450 W
    assert np.median(gpu_w[serving]) < 0.25 * 4 * 450
    assert max(res.columns["gpus"]["memory_used_gb"]) < 24
