"""Kernel table: defaults the engine picks, user choices, and bad input (one line, field path, exit 2)."""
import pytest
from typer.testing import CliRunner

from twin.cli.main import app
from twin.model.kernels import KernelError, select_kernel
from twin.spec.catalogue import load_catalogue
from twin.tools.predict import concurrency_table, resolve_box

CAT = load_catalogue()
runner = CliRunner()


@pytest.mark.parametrize("engine, quant, gpu, kernel", [
    ("vllm", "awq-int4", "rtx-3090", "awq_marlin"),      # vLLM picks Marlin where it runs
    ("vllm", "fp8", "rtx-3090", "fp8_marlin"),           # Ampere has no FP8 tensor cores
    ("vllm", "fp8", "rtx-4090", "fp8"),
    ("vllm", "nvfp4", "rtx-pro-4500-blackwell", "nvfp4"),
    ("llama.cpp", "gguf-q4_k_m", "h100-pcie", "gguf"),
    ("llama.cpp", "bf16", "rtx-4090", "f16"),
])
def test_the_default_kernel_is_what_the_engine_would_pick(engine, quant, gpu, kernel):
    assert select_kernel(CAT, engine, quant, CAT.gpu(gpu)).kernel == kernel


def test_an_architecture_row_beats_the_wildcard_row():
    assert select_kernel(CAT, "llama.cpp", "gguf-q4_k_m", CAT.gpu("h100-pcie")).name == "llama.cpp/gguf/hopper"
    assert select_kernel(CAT, "llama.cpp", "gguf-q4_k_m", CAT.gpu("rtx-4090")).name == "llama.cpp/gguf"


def test_unknown_kernel_names_the_ones_that_exist():
    with pytest.raises(KernelError, match=r"unknown kernel 'exllama' for vllm; kernels for awq-int4 on rtx-3090 "
                                          r"\(ampere\): awq, awq_marlin"):
        select_kernel(CAT, "vllm", "awq-int4", CAT.gpu("rtx-3090"), "exllama")
    with pytest.raises(KernelError, match="kernel 'nvfp4' does not run nvfp4 on rtx-3090"):
        select_kernel(CAT, "vllm", "nvfp4", CAT.gpu("rtx-3090"), "nvfp4")


def test_the_plain_awq_kernel_is_slower_than_marlin_and_falls_further_behind_with_batch():
    def agg(kernel, clients):
        box = resolve_box(CAT, "rtx5090-server", "llama-3.1-8b", "awq-int4", "vllm", gpu="rtx-4090", kernel=kernel)
        return concurrency_table(box, [clients], 512, 256)[0].aggregate_tok_s
    one, many = agg("awq_marlin", 1) / agg("awq", 1), agg("awq_marlin", 64) / agg("awq", 64)
    assert 1.1 < one < many


@pytest.mark.parametrize("args, message", [
    (["-m", "llama-3.3-70b", "--quant", "awq-int4", "--node", "dual-3090-desktop", "--tp", "2", "--kernel", "foo"],
     "--kernel: unknown kernel 'foo' for vllm; kernels for awq-int4 on rtx-3090 (ampere): awq, awq_marlin"),
    (["-m", "llama-3.1-8b", "--quant", "bf16", "--gpu-layers", "10"],
     "--gpu-layers: vllm cannot keep layers in system memory"),
    (["-m", "llama-3.1-8b", "--quant", "gguf-q4_k_m", "-e", "llama.cpp", "--gpu-layers", "99"],
     "--gpu-layers: 99 exceeds llama-3.1-8b's 32 layers"),
    (["-m", "llama-3.1-8b", "--quant", "gguf-q4_k_m", "-e", "llama.cpp", "--gpu-layers", "some"],
     "--gpu-layers: expected a layer count or 'auto', got 'some'"),
    (["-m", "llama-3.1-8b", "--quant", "bf16", "--kv-block-tokens", "0"],
     "--kv-block-tokens: Input should be greater than or equal to 1"),
    (["-m", "llama-3.1-8b", "--quant", "bf16", "--kv-block-tokens", "200000"],
     "--kv-block-tokens: 200000 tokens per block exceeds llama-3.1-8b's context of 131072 tokens"),
    (["--node", "dual-3090-desktop", "-m", "llama-3.3-70b", "--quant", "gguf-q4_k_m", "-e", "llama.cpp", "--tp", "2"],
     "llama.cpp splits a model across GPUs by layers (pipeline), not tensor parallel; use pp: 2"),
])
def test_bad_serving_input_is_one_line_naming_the_option_exit_2(args, message):
    r = runner.invoke(app, ["predict", *args, "--burn-s", "10"])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


def test_a_scenario_pool_names_the_field_path():
    from pathlib import Path

    from twin.errors import SpecError
    from twin.model.validate import scenario_from_text
    text = (Path(__file__).resolve().parent.parent / "scenarios" / "dual-3090.yaml").read_text()
    bad = text.replace("engine: vllm,", "engine: vllm, kernel: exllama, gpu_layers: 10, kv_block_tokens: 0,", 1)
    assert bad != text
    with pytest.raises(SpecError) as exc:
        scenario_from_text(bad)
    # one pass: the range error and both cross-checks, each one line with its field path
    problems = exc.value.problems
    assert problems[0] == "pools[0].kv_block_tokens: Input should be greater than or equal to 1"
    assert problems[1].startswith("pools[0].kernel: unknown kernel 'exllama' for vllm; kernels for awq-int4")
    assert problems[2].startswith("pools[0].gpu_layers: vllm cannot keep layers in system memory")
    assert len(problems) == 3


def test_a_build_era_runs_its_own_rows_and_the_current_row_of_kernels_it_did_not_change():
    h100, ada = CAT.gpu("h100-pcie"), CAT.gpu("rtx-4090")
    assert select_kernel(CAT, "llama.cpp", "gguf-q4_0", ada, build="2023-12").name == "llama.cpp/gguf@2023-12"
    assert select_kernel(CAT, "llama.cpp", "gguf-q4_0", h100, build="2023-12").name == "llama.cpp/gguf/hopper@2023-12"
    # May 2024 changed the quantised kernels only: F16 runs the current row
    assert select_kernel(CAT, "llama.cpp", "bf16", ada, build="2024-05").name == "llama.cpp/f16"
    # no build: never an era row
    assert all(select_kernel(CAT, "llama.cpp", q, g).build is None
               for q in ("gguf-q4_0", "gguf-q4_k_m", "bf16") for g in (h100, ada))


def test_an_unknown_build_names_the_eras_that_exist():
    with pytest.raises(KernelError, match=r"build '2022-01'.*2023-12, 2024-05"):
        select_kernel(CAT, "llama.cpp", "gguf-q4_0", CAT.gpu("rtx-4090"), build="2022-01")
    with pytest.raises(KernelError, match="builds with their own rows: none"):
        select_kernel(CAT, "vllm", "bf16", CAT.gpu("rtx-4090"), build="2023-12")


def test_a_dec_2023_llama_cpp_token_pays_host_launches_per_layer():
    """4090, Llama 2 7B Q4_0 at 1,012 tokens of context, llama.cpp build 1680, by hand:
    weights read 6.74e9 x 0.5625 - 32,000 x 4,096 x 0.5625 (embedding table) = 3.7175 GB,
    KV 1,012 x 2 x 32 layers x 4,096 x 2 B = 0.5306 GB, at 0.83 x 1,008 GB/s = 5.078 ms;
    plus 0.82 ms + 32 layers x 40 us without CUDA graphs = 7.178 ms (139.3 tok/s; measured 149.4)."""
    from dataclasses import replace

    from twin.model.replica import decode_step_s
    box = resolve_box(CAT, "rtx5090-server", "llama-2-7b", "gguf-q4_0", "llama.cpp", gpu="rtx-4090")
    box = replace(box, kernel=select_kernel(CAT, "llama.cpp", "gguf-q4_0", box.gpu, build="2023-12"))
    bytes_ = 6.74e9 * 0.5625 - 32000 * 4096 * 0.5625 + 1012 * 2 * 32 * 4096 * 2
    expected_s = bytes_ / (0.83 * 1008e9) + 0.00082 + 32 * 0.00004
    assert float(decode_step_s(box.plan, 1, 1012)) == pytest.approx(expected_s, rel=5e-3)
    # the current build (CUDA graphs, 0.86 of bandwidth) is 1.5x faster on the same card
    now = resolve_box(CAT, "rtx5090-server", "llama-2-7b", "gguf-q4_0", "llama.cpp", gpu="rtx-4090")
    assert float(decode_step_s(now.plan, 1, 1012)) == pytest.approx(bytes_ / (0.86 * 1008e9) + 0.00082, rel=5e-3)
