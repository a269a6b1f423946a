"""`twin predict` against published llama.cpp llama-bench runs (not against itself).

Source: XiongjieDai/GPU-Benchmarks-on-LLM-Inference README, "LLaMA 3, NVIDIA GPUs (snapshots in
May 2024)", llama-bench on RunPod: Llama 3 8B / 70B Q4_K_M, tg 512 and pp 512 tokens/s.
The engine profile's efficiencies were fitted to the 8B rows across three GPUs (see
twin/data/catalogue/parts.yaml), so the 70B two-GPU rows are the out-of-sample check.
"""
from __future__ import annotations

import pytest

from twin.spec.catalogue import load_catalogue
from twin.tools.predict import decode_interval_s, prefill_tokens_per_s, resolve_box

NODES = {"rtx-3090": "dual-3090-desktop", "rtx-4090": "ws-4x4090-tr"}


def box(gpu: str, model: str, gpus: int = 1, pp: int = 1):
    return resolve_box(load_catalogue(), NODES[gpu], model, "gguf-q4_k_m", "llama.cpp", gpu=gpu, gpu_count=gpus, pp=pp)


@pytest.mark.parametrize("gpu, tg512, pp512", [("rtx-3090", 115.42, 4030.40), ("rtx-4090", 130.58, 7138.99)])
def test_8b_q4_k_m_single_gpu(gpu, tg512, pp512):
    b = box(gpu, "llama-3.1-8b")
    # tg 512 generates 512 tokens from an empty prompt: mean context ~256 tokens
    assert 1 / decode_interval_s(b, 1, 256) == pytest.approx(tg512, rel=0.10)
    assert prefill_tokens_per_s(b) == pytest.approx(pp512, rel=0.20)


@pytest.mark.parametrize("gpu, tg512, pp512", [("rtx-3090", 16.57, 357.32), ("rtx-4090", 19.22, 839.43)])
def test_70b_q4_k_m_split_over_two_gpus(gpu, tg512, pp512):
    # llama.cpp's default --split-mode layer: the two GPUs hold half the layers each and work in turn
    b = box(gpu, "llama-3.3-70b", gpus=2, pp=2)
    assert 1 / decode_interval_s(b, 1, 256) == pytest.approx(tg512, rel=0.20)
    assert prefill_tokens_per_s(b) == pytest.approx(pp512, rel=0.20)


def test_llama_cpp_refuses_tensor_parallel():
    from typer.testing import CliRunner

    from twin.cli.main import app
    r = CliRunner().invoke(app, ["predict", "--node", "dual-3090-desktop", "-m", "llama-3.3-70b", "--quant", "gguf-q4_k_m",
                                 "-e", "llama.cpp", "--tp", "2"])
    assert r.exit_code == 2
    assert "llama.cpp splits a model across GPUs by layers (pipeline), not tensor parallel; use pp: 2" in r.output
