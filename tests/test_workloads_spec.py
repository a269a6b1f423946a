"""Scenario fields for node sharing, CPU-only pools and training jobs: one line per problem with its
field path and arithmetic (exit 2 from the CLI), and the three system scenarios validate."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli.main import app
from twin.errors import SpecError
from twin.model.validate import load_scenario, scenario_from_text

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
BASE = """
name: t
topology: {rows: 1, racks_per_row: 1, nodes_per_rack: 1, node_type: dual-3090-desktop}
pools:
  - {name: chat, model: llama-3.1-8b, quantisation: gguf-q4_k_m, engine: llama.cpp, nodes: 1, gpus: [0],
     gpu_memory_share: 0.25}
scheduler: {initial_on_nodes: 1}
fabric: {enabled: false}
"""


def problems(extra: str = "", base: str = BASE) -> list[str]:
    with pytest.raises(SpecError) as exc:
        scenario_from_text(base + extra)
    return exc.value.problems


def job(**kw) -> str:
    fields = {"name": "j", "model": "llama-2-7b", "steps": 10, "node": 0, "gpus": "[1]", **kw}
    return "training:\n  jobs:\n    - {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}\n"


def test_the_dual_3090_training_scenario_validates():
    sc = load_scenario(SCENARIOS / "dual-3090-train.yaml")
    assert [j.method for j in sc.spec.training.jobs] == ["lora", "qlora", "full"]


def test_full_fine_tune_refused_for_optimizer_state_memory():
    (msg,) = problems(job(method="full"))
    # 6.74e9 x (2 + 2 + 12) B = 107.8 GB before activations, on a 24 GB card
    assert msg.startswith("training.jobs[0]: llama-2-7b full needs 113.2 GB per GPU but rtx-3090 has 24.0 GB")
    assert "optimizer 80.9 (adamw: 12 B/param x 6.74 B trainable)" in msg


def test_a_job_beside_an_inference_pool_counts_the_pools_share():
    (msg,) = problems(job(gpus="[0]"))      # LoRA 7B micro 4: 19.5 GB; the card has 24 - 6 GB left
    assert "has 18.0 GB" in msg and "GPU 0 keeps 6.0 GB for chat" in msg


def test_batch_steps_and_placement_errors_name_their_fields():
    assert problems(job(batch=15)) == ["training.jobs[0].batch: 15 is not a multiple of micro_batch 4 x 1 GPUs = "
                                       "4 sequences per micro-step"]
    assert problems(job(gpus="[2]")) == ["training.jobs[0].gpus: give distinct GPU indices 0..1 of a dual-3090-desktop"]
    assert problems(job(node=3)) == ["training.jobs[0].node: 3 is not a node id 0..0"]
    assert problems(job(model="llama-2-7x"))[0].startswith("training.jobs[0].model: unknown model 'llama-2-7x'")
    assert problems(job(tokens=1000)) == ["training.jobs[0]: give exactly one of steps or tokens"]


def test_cpu_pools_need_cores_and_fit_the_package():
    cpu = """  - {name: cpu, model: llama-3.1-8b, quantisation: gguf-q8_0, engine: llama.cpp, nodes: 1, colocate: chat,
     device: cpu, cores: 12, ram_gb: 64}
  - {name: cpu2, model: llama-3.1-8b, quantisation: gguf-q8_0, engine: llama.cpp, nodes: 1, colocate: chat,
     device: cpu, cores: 8, ram_gb: 80}
"""
    base = BASE.replace("scheduler:", cpu + "scheduler:")
    got = problems(base=base)
    # the Ryzen 9 7950X has 16 cores; the desktop has 128 GB
    assert got == ["pools[2].cores: the pools on a dual-3090-desktop pin cpu 12 + cpu2 8 = 20 cores > the 16 of its "
                   "ryzen-9-7950x",
                   "pools[2].ram_gb: the pools on a dual-3090-desktop reserve cpu 64 + cpu2 80 = 144 GB > its 128 GB of RAM"]
    no_cores = BASE.replace("scheduler:", cpu.split("\n  - {name: cpu2")[0].replace(" cores: 12,", "") + "\nscheduler:")
    assert "pools[1].cores: a CPU-only pool needs the cores it is pinned to (e.g. cores: 12)" in problems(base=no_cores)


def test_colocated_pool_errors():
    guest = "  - {name: g, model: llama-3.1-8b, quantisation: fp8, nodes: 1, colocate: chatt, gpus: [0], gpu_memory_share: 0.8}\n"
    assert problems(base=BASE.replace("scheduler:", guest + "scheduler:")) == [
        "pools[1].colocate: 'chatt' is not another pool (did you mean 'chat'?)"]
    over = guest.replace("chatt", "chat")
    assert problems(base=BASE.replace("scheduler:", over + "scheduler:")) == [
        "pools[1].gpu_memory_share: GPU 0 of a dual-3090-desktop (rtx-3090, 24 GB) is oversubscribed: chat "
        "gpu_memory_share 0.25 + g gpu_memory_share 0.80 = 1.05 of 24 GB (25.2 GB > 24 GB); lower the shares"]


def test_cli_validate_exits_2_with_one_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(BASE + job(method="full"))
    r = CliRunner().invoke(app, ["validate", str(p)])
    assert r.exit_code == 2
    assert r.output.count("error:") == 1 and "optimizer 80.9" in r.output and "Traceback" not in r.output


def test_train_estimate_prints_the_job_and_refuses_what_does_not_fit():
    ok = CliRunner().invoke(app, ["train-estimate", "-m", "llama-2-7b", "--gpus", "1", "--json"])
    assert ok.exit_code == 0, ok.output
    assert '"tokens_per_s"' in ok.output and '"energy_kwh"' in ok.output
    bad = CliRunner().invoke(app, ["train-estimate", "-m", "llama-2-7b", "--method", "full"])
    assert bad.exit_code == 2 and "memory: llama-2-7b full needs" in bad.output
    typo = CliRunner().invoke(app, ["train-estimate", "-m", "llama-2-7b", "--method", "fulll"])
    assert typo.exit_code == 2 and "--method:" in typo.output and "Traceback" not in typo.output
