"""CPU offload and CPU-only serving (twin.model.offload), against hand computations."""
import json

import pytest
from typer.testing import CliRunner

from twin.cli.main import app
from twin.model import offload as ol
from twin.spec.catalogue import load_catalogue
from twin.tools.predict import decode_interval_s, resolve_box

CAT = load_catalogue()


def test_system_memory_bandwidth_is_channels_times_transfer_rate():
    # TR PRO 7975WX: 8 channels; the node's DDR5-5600 DIMMs run at the CPU's 5,200 MT/s: 8 x 5200 x 8 B
    node, cpu = CAT.node("ws-4x4090-tr"), CAT.cpu("threadripper-pro-7975wx")
    assert ol.system_memory_gb_s(cpu, node) == pytest.approx(332.8)
    assert ol.cpu_read_gb_s(cpu, node) == pytest.approx(0.77 * 332.8)
    # the workloads model asks for a share of the cores: 4 cores pull at most 4 x 25 GB/s
    assert ol.cpu_read_gb_s(cpu, node, cores=4) == pytest.approx(100.0)


def test_cpu_only_decode_and_prefill_by_hand():
    node, cpu = CAT.node("ws-4x4090-tr"), CAT.cpu("threadripper-pro-7975wx")
    # Llama 3.1 8B Q4_K_M: 8.03e9 x 0.606 B less the input embedding, at 256.3 GB/s
    w = 8.03e9 * 0.606 - 128256 * 4096 * 0.606
    assert ol.cpu_decode_token_s(w, cpu, node) == pytest.approx(w / (0.77 * 332.8e9))
    # prefill: 32 cores x 4.2 GHz x 32 FLOP/cycle x 0.5 = 2.15 TFLOPS over 16.06 GFLOP per token
    assert ol.cpu_prefill_tokens_per_s(2 * 8.03e9, cpu, 0.5) == pytest.approx(32 * 4.2e9 * 32 * 0.5 / (2 * 8.03e9))


def test_offloaded_405b_decode_bound_on_the_4x4090_workstation():
    box = resolve_box(CAT, "ws-4x4090-tr", "llama-3.1-405b", "gguf-q4_k_m", "llama.cpp", pp=4, gpu_layers="auto",
                      context_tokens=1149)
    # auto: per 4090 0.92 x 23.99 GiB - 0.5 GiB = 23.16 GB over (1.952 GB of weights + 4 slots x 1,149
    # tokens x 4 KiB of KV) per layer = 11 layers per GPU -> 44 of 126 on the GPUs
    assert box.split.gpu_layers == 44
    kv = 1020 * 2 * 126 * 8 * 128 * 2                                  # 1,020 tokens of BF16 KV
    read = 405.9e9 * 0.606 - 128256 * 16384 * 0.606 + kv               # one token's bytes
    gpu_s = 44 / 126 * read / (0.86 * 1008e9)                          # one GPU at a time (layer split)
    cpu_s = 82 / 126 * read / (0.77 * 332.8e9)                         # system memory
    interval = decode_interval_s(box, 1, 1020)
    assert interval == pytest.approx(gpu_s + cpu_s + 0.00082, rel=1e-6)
    assert 1 / interval == pytest.approx(1.38, abs=0.01)
    # the physical ceiling at 100 % of both bandwidths (docs/validation.md: <= 1.8 tok/s)
    assert 1 / interval < 1 / (44 / 126 * read / 1008e9 + 82 / 126 * read / 332.8e9) < 1.8


def test_predict_answers_the_405b_workstation_plan_with_an_honest_rate():
    r = CliRunner().invoke(app, ["predict", "--node", "ws-4x4090-tr", "-m", "llama-3.1-405b", "--quant", "gguf-q4_k_m",
                                 "-e", "llama.cpp", "--pp", "4", "--gpu-layers", "auto", "--json", "--burn-s", "20",
                                 "--concurrency", "1"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["gpu_layers"] == 44 and d["kernel"] == "gguf"
    assert 1.0 < d["single_stream_tok_s"] < 1.8


def test_more_gpu_layers_decode_faster():
    rates = [1 / decode_interval_s(resolve_box(CAT, "ws-4x4090-tr", "llama-3.3-70b", "gguf-q4_k_m", "llama.cpp",
                                               pp=4, gpu_layers=n), 1, 512) for n in (0, 40, 80)]
    assert rates[0] < rates[1] < rates[2]
