"""`twin train-estimate`: step time, memory, throughput and energy of one training job on one box.

Thin: the job is checked by the scenario's own rules (twin.model.validate.training_problems, so a
job that does not fit says what it needs with the arithmetic) and composed in
twin.tools.train_estimate. User mistakes print one line each and exit 2.
"""
from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from twin.cli.common import fail, out

OPTION_OF = {"model": "--model", "method": "--method", "batch": "--batch", "micro_batch": "--micro-batch",
             "seq_len": "--seq-len", "steps": "--steps", "tokens": "--tokens", "lora_rank": "--rank",
             "lora_targets": "--targets", "optimizer": "--optimizer", "parallel": "--parallel",
             "trainer": "--trainer", "gpus": "--gpus", "training.jobs[0]": "memory"}


def _as_option(problem: str) -> str:
    """'training.jobs[0].batch: ...' or 'batch: ...' -> '--batch: ...'."""
    head, _, rest = problem.partition(": ")
    key = head.removeprefix("training.jobs[0].")
    return f"{OPTION_OF.get(key, OPTION_OF.get(head, head))}: {rest}" if rest else problem


def train_estimate_cmd(
        model: Annotated[str, typer.Option("--model", "-m", help="Model, e.g. llama-2-7b")],
        node: Annotated[str, typer.Option(help="Node type")] = "dual-3090-desktop",
        method: Annotated[str, typer.Option(help="full, lora or qlora")] = "lora",
        batch: Annotated[int, typer.Option(help="Sequences per optimizer step (all GPUs)")] = 16,
        micro_batch: Annotated[int, typer.Option(help="Sequences per GPU per forward/backward")] = 4,
        seq_len: Annotated[int, typer.Option(help="Tokens per sequence")] = 2048,
        gpus: Annotated[Optional[int], typer.Option(min=1, help="GPUs of the node the job uses (default all)")] = None,
        parallel: Annotated[str, typer.Option(help="ddp or fsdp")] = "ddp",
        optimizer: Annotated[str, typer.Option(help="adamw, adamw_fp32, adamw_bf16, adamw_8bit, sgd")] = "adamw",
        rank: Annotated[int, typer.Option(help="LoRA rank")] = 16,
        targets: Annotated[str, typer.Option(help="LoRA targets: qv, attention, all_linear")] = "all_linear",
        recompute: Annotated[bool, typer.Option("--recompute/--no-recompute", help="Activation checkpointing")] = True,
        offload: Annotated[bool, typer.Option("--offload", help="Page optimizer states to system RAM")] = False,
        steps: Annotated[Optional[int], typer.Option(help="Optimizer steps (default 1000 unless --tokens)")] = None,
        tokens: Annotated[Optional[float], typer.Option(help="Training tokens instead of --steps")] = None,
        trainer: Annotated[str, typer.Option(help="Efficiency profile")] = "torchtune",
        ambient_c: Annotated[float, typer.Option(min=0, max=50, help="Intake air for the power estimate, °C")] = 25.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text")] = False) -> None:
    """Estimate one training job: memory per GPU, step time, tokens/s, samples/s, MFU, power, energy."""
    from pydantic import ValidationError

    from twin.errors import format_validation_error, suggest
    from twin.model.validate import training_problems
    from twin.spec.catalogue import load_catalogue
    from twin.spec.scenario import PoolSpec, ScenarioSpec, TopologySpec, TrainingJobSpec
    from twin.tools.train_estimate import estimate

    cat = load_catalogue()
    if node not in cat.entries.get("nodes", {}):
        fail(f"--node: unknown node {node!r}{suggest(node, cat.names('nodes'))}")
    n_gpus = cat.node(node).gpu_count
    if gpus is not None and gpus > n_gpus:
        fail(f"--gpus: {gpus} exceeds the {n_gpus} GPUs of a {node}")
    try:
        job = TrainingJobSpec(name="estimate", model=model, method=method, batch=batch, micro_batch=micro_batch,
                              seq_len=seq_len, steps=steps if steps is not None or tokens is not None else 1000,
                              tokens=tokens, lora_rank=rank, lora_targets=targets, optimizer=optimizer,
                              recompute=recompute, parallel=parallel, optimizer_offload=offload, trainer=trainer,
                              gpus=list(range(gpus)) if gpus else None)
    except ValidationError as exc:
        fail([_as_option(p) for p in format_validation_error(exc)])
    quant = "bf16"
    spec = ScenarioSpec(name="train-estimate", topology=TopologySpec(rows=1, racks_per_row=1, nodes_per_rack=1,
                                                                     node_type=node),
                        # a traffic-less pool that only powers the node (its memory is not the question here)
                        pools=[PoolSpec(name="host", model=model, quantisation=quant, nodes=1, mix=0.0,
                                        gpu_memory_share=1e-9)],
                        scheduler={"initial_on_nodes": 1}, training={"jobs": [job]})
    problems = training_problems(spec, cat)
    if problems:
        fail([_as_option(p) for p in problems])
    est = estimate(cat, node, job, ambient_c)
    if as_json:
        out.print_json(json.dumps(_as_dict(est)))
    else:
        _print(est, node)


def _as_dict(est) -> dict:
    from twin.model.training import trainable_params
    s, m, st = est.setup, est.memory, est.step
    return {"model": s.model.name, "method": s.method, "gpu": s.gpu.name, "gpus": s.n_gpus, "parallel": s.parallel,
            "batch": s.batch, "micro_batch": s.micro_batch, "seq_len": s.seq_len, "accumulation": st.accumulation,
            "trainable_params": trainable_params(s), "memory_gb_per_gpu": {**m.__dict__, "total_gb": m.total_gb},
            "step": {**{k: v for k, v in st.__dict__.items()}, "tokens_per_s": st.tokens_per_s,
                     "samples_per_s": st.samples_per_s(s.seq_len)},
            "mfu": est.mfu, "steps": est.steps, "run_s": est.run_s, "node_wall_w": float(est.burn.node_wall_w[-1]),
            "node_dc_w": float(est.burn.node_dc_w[-1]), "gpu_plateau_c": est.burn.plateau_c.tolist(),
            "energy_kwh": est.energy_kwh}


def _print(est, node: str) -> None:
    from twin.model.training import trainable_params
    s, m, st = est.setup, est.memory, est.step
    out.print(f"[bold]{node}[/]: {s.model.name} {s.method} on {s.n_gpus} x {s.gpu.name} ({s.parallel}), "
              f"batch {s.batch} = {st.accumulation} x {s.micro_batch} x {s.n_gpus} GPUs x {s.seq_len} tokens; "
              f"{trainable_params(s) / 1e6:,.1f} M trainable parameters")
    out.print(f"memory per GPU {m.total_gb:.1f} GB: weights {m.weights_gb:.1f} + grads {m.grads_gb:.2f} + optimizer "
              f"{m.optimizer_gb:.2f} ({s.optimizer}) + activations {m.activations_gb:.1f} + logits {m.logits_gb:.1f} + "
              f"context {m.context_gb:.1f}" + (f"; {m.host_optimizer_gb:.1f} GB of states in RAM" if m.host_optimizer_gb else ""))
    out.print(f"step {st.step_s:.2f} s: compute {st.compute_s:.2f} (weight streaming {st.streaming_s:.2f}) + dequant "
              f"{st.dequant_s:.2f} + optimizer {st.optimizer_s:.3f} + paging {st.offload_s:.2f} + collectives {st.comm_s:.2f}")
    out.print(f"throughput {st.tokens_per_s:,.0f} tokens/s, {st.samples_per_s(s.seq_len):.2f} samples/s, "
              f"MFU {est.mfu:.0%} ({st.flops_per_token / 1e9:.1f} GFLOP per token)")
    out.print(f"{est.steps:,} steps in {est.run_s / 3600:.2f} h; node at {est.burn.node_wall_w[-1]:,.0f} W wall "
              f"({est.burn.node_dc_w[-1]:,.0f} W DC{'' if s.n_gpus == len(est.burn.plateau_c) else ', every GPU at board power: an upper bound'}), GPUs plateau at {est.burn.plateau_c.max():.1f} °C; "
              f"energy {est.energy_kwh:.2f} kWh")


def register(app: typer.Typer) -> None:
    """Add `twin train-estimate` to `app`."""
    app.command("train-estimate")(train_estimate_cmd)
