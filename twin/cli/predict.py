"""`twin predict`: single-box serving, power and burn-test figures (thin; physics in twin.predict).

Names are checked with the same rules as a scenario pool (twin.scenario.check_against_catalogue:
parallelism vs heads and GPUs, weights vs VRAM), so a model that does not fit says how much it
needs and has. User mistakes print one line each and exit 2.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from twin.cli.common import fail, out
from twin.errors import SpecError, suggest

BURN_SAMPLES_S = (1, 10, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600)
OPTION_OF = {"pools[0].tp": "--tp", "pools[0].pp": "--pp", "pools[0].model": "--model",
             "pools[0].quantisation": "--quant", "pools[0].engine": "--engine", "pools[0].nodes": "--tp/--pp",
             "pools[0]": "--model", "topology.node_type": "--node",
             # range errors raised while building the pool itself carry the bare field name
             "kv_bytes": "--kv-bytes", "max_batch": "--max-batch", "memory_utilisation": "--memory-utilisation",
             "pools[0].kernel": "--kernel", "pools[0].gpu_layers": "--gpu-layers",
             "pools[0].kv_block_tokens": "--kv-block-tokens", "kv_block_tokens": "--kv-block-tokens",
             "gpu_layers": "--gpu-layers", "pools[0].build": "--build", "pools[0].boot_cache": "--boot-cache",
             "boot_cache": "--boot-cache"}


def _as_option(problem: str) -> str:
    """'pools[0].tp: ...' (scenario wording) -> '--tp: ...' (command-line wording)."""
    head, _, rest = problem.partition(": ")
    if head == "pools[0]" and rest.startswith("tp x pp"):
        head = "pools[0].nodes"
    return f"{OPTION_OF.get(head, head)}: {rest}" if rest else problem


def _gpu_layers(text: str | None) -> int | str | None:
    """--gpu-layers: a layer count >= 0 or 'auto', else exit 2 naming the option."""
    if text is None or text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        fail(f"--gpu-layers: expected a layer count or 'auto', got {text!r}")
    if n < 0:
        fail(f"--gpu-layers: expected a layer count >= 0 or 'auto', got {n}")
    return n


def _box(cat, node: str, gpu: str | None, gpus: int | None, model: str, quant: str, engine: str, tp: int, pp: int,
         memory_utilisation: float, max_batch: int | None, kv_bytes: float | None, kernel: str | None = None,
         gpu_layers: int | str | None = None, kv_block_tokens: int | None = None, context_tokens: float = 4096,
         build: str | None = None, boot_cache: str | None = None):
    """Resolve and validate the box through the scenario's own cross-checks, or exit 2."""
    from pydantic import ValidationError

    from twin.errors import format_validation_error
    from twin.model.validate import check_against_catalogue
    from twin.spec.catalogue import Catalogue
    from twin.spec.scenario import PoolSpec, ScenarioSpec, TopologySpec
    from twin.tools.predict import resolve_box

    if node not in cat.entries.get("nodes", {}):
        fail(f"--node: unknown node {node!r}{suggest(node, cat.names('nodes'))}")
    if gpu is not None and gpu not in cat.entries.get("gpus", {}):
        fail(f"--gpu: unknown gpu {gpu!r}{suggest(gpu, cat.names('gpus'))}")
    base = cat.node(node)
    custom = base.model_copy(update={"gpu": gpu or base.gpu, "gpu_count": gpus or base.gpu_count})
    if tp * pp > custom.gpu_count:
        fail(f"--tp/--pp: tp x pp = {tp * pp} GPUs exceeds the {custom.gpu_count} GPUs of one {node}; "
             "predict models a single box (write a scenario for replicas that span nodes)")
    entries = {**cat.entries, "nodes": {**cat.entries["nodes"], node: custom}}
    try:
        spec = ScenarioSpec(name="predict", topology=TopologySpec(rows=1, racks_per_row=1, nodes_per_rack=1,
                                                                  node_type=node),
                            pools=[PoolSpec(name="predict", model=model, quantisation=quant, engine=engine, tp=tp,
                                            pp=pp, nodes=1, memory_utilisation=memory_utilisation,
                                            max_batch=max_batch, kv_bytes=kv_bytes, kernel=kernel,
                                            gpu_layers=gpu_layers, kv_block_tokens=kv_block_tokens, build=build,
                                            **({} if boot_cache is None else {"boot_cache": boot_cache}))],
                            scheduler={"initial_on_nodes": 1})
    except ValidationError as exc:  # range errors on the numeric options, e.g. --kv-bytes 8
        fail([_as_option(p) for p in format_validation_error(exc)])
    problems = check_against_catalogue(spec, Catalogue(entries))
    if problems:
        fail([_as_option(p) for p in problems])
    if kv_block_tokens is not None:  # a what-if on the engine's paged-KV block
        eng = cat.engine(engine).model_copy(update={"kv_block_tokens": kv_block_tokens})
        cat = Catalogue({**cat.entries, "engines": {**cat.entries["engines"], engine: eng}})
    return resolve_box(cat, node, model, quant, engine, gpu=gpu, gpu_count=gpus, tp=tp, pp=pp,
                       memory_utilisation=memory_utilisation, max_batch=max_batch, kv_bytes=kv_bytes,
                       kernel=kernel, gpu_layers=gpu_layers, context_tokens=context_tokens, build=build,
                       boot_cache=spec.pools[0].boot_cache)


def _as_dict(pred) -> dict:
    b, burn = pred.box, pred.burn
    return {
        "node": b.node.name, "gpu": b.gpu.name, "gpus": b.node.gpu_count, "model": b.model.name,
        "quantisation": b.quant.name, "engine": b.engine.name, "kernel": b.kernel.kernel, "build": b.build,
        "boot_cache": b.boot_cache, "tp": b.tp, "pp": b.pp,
        "replicas": b.replicas, "gpu_layers": b.model.layers if b.split is None else b.split.gpu_layers,
        "weights_gb_per_replica": pred.weights_gb, "kv_budget_gb_per_replica": pred.kv_budget_gb,
        "kv_blocks_per_replica": pred.kv_blocks, "kv_block_tokens": b.engine.kv_block_tokens,
        "model_load_s": pred.load_s, "warm_restart_s": pred.warm_restart_s, "cold_start_s": pred.cold_start_s,
        "single_stream_tok_s": pred.single_stream_tok_s, "prefill_tok_s": pred.prefill_tok_s,
        "prompt_latency_s": pred.prompt_latency_s,
        "concurrency": [r.__dict__ for r in pred.rows],
        "idle_dc_w": pred.idle.dc_w, "idle_wall_w": pred.idle.wall_w,
        "idle_loaded_dc_w": pred.idle_loaded.dc_w, "idle_loaded_wall_w": pred.idle_loaded.wall_w,
        "peak_dc_w": pred.peak.dc_w, "peak_wall_w": pred.peak.wall_w,
        "gpu_power": [r.__dict__ for r in pred.gpu_power],
        "burn": {"gpu_power_w": burn.gpu_power_w[-1].tolist(), "gpu_temp_c": burn.plateau_c.tolist(),
                 "gpu_memory_junction_c": burn.gpu_mem_c[-1].tolist(), "start_c": burn.start_c.tolist(),
                 "gpu_clock": burn.gpu_clock[-1].tolist(), "node_dc_w": float(burn.node_dc_w[-1]),
                 "node_wall_w": float(burn.node_wall_w[-1]), "node_wall_peak_w": float(burn.node_wall_peak_w.max()),
                 "time_to_plateau_s": burn.time_to_plateau_s, "rise_at_60_s": burn.rise_fraction_at(60.0),
                 "settled": burn.settled, "airflow_m3_s": float(burn.airflow_m3_s[-1])},
    }


def _print(pred) -> None:
    from rich.table import Table
    from rich.text import Text

    from twin.model.thermal import CFM_M3_S
    from twin.tools.predict import psu_headroom_frac

    b, burn = pred.box, pred.burn
    out.print(Text.assemble((b.node.name, "bold"), f": {b.node.gpu_count} x {b.gpu.name}, {b.model.name} "
                            f"{b.quant.name} on {b.engine.name}{'' if b.build is None else ' build ' + b.build} "
                            f"(kernel {b.kernel.kernel}), tp={b.tp} pp={b.pp} "
                            f"-> {b.replicas} replica(s)"))
    if b.split is not None:
        out.print(f"CPU offload: {b.split.gpu_layers} of {b.split.layers} layers on the GPUs, "
                  f"{b.split.cpu_layers} in system memory ({b.cpu.name})")
    out.print(f"weights {pred.weights_gb:.1f} GB/replica, KV pool {pred.kv_budget_gb:.1f} GB/replica "
              f"({pred.kv_blocks:,} blocks of {b.engine.kv_block_tokens} tokens); engine first boot "
              f"{pred.load_s:.0f} s (boot cache: {b.boot_cache}), warm restart {pred.warm_restart_s:.0f} s (cold start incl. POST/OS "
              f"{pred.cold_start_s:.0f} s)")
    out.print(f"single-stream decode {pred.single_stream_tok_s:.1f} tok/s; prefill {pred.prefill_tok_s:,.0f} tok/s "
              f"per replica; one prompt alone reaches its first token after {pred.prompt_latency_s:.2f} s")
    t = Table(title="closed-loop concurrency (Azure-median prompts/outputs unless set)")
    for col in ("clients", "batch", "tok/s per stream", "aggregate tok/s", "TTFT s", "latency s"):
        t.add_column(col, justify="right")
    for r in pred.rows:
        t.add_row(str(r.concurrency), str(r.batch), f"{r.stream_tok_s:.1f}", f"{r.aggregate_tok_s:.1f}",
                  f"{r.ttft_s:.2f}", f"{r.latency_s:.1f}")
    out.print(t)
    gt = Table(title="per-GPU board power (busiest replica)")
    for col in ("clients", "decode W", "decode SM clock", "decode GB/s", "prefill W", "mean W"):
        gt.add_column(col, justify="right")
    for r in pred.gpu_power:
        gt.add_row(str(r.concurrency), f"{r.decode_w:.0f}", f"{r.decode_clock:.2f}", f"{r.decode_mem_gb_s:.0f}",
                   f"{r.prefill_w:.0f}", f"{r.mean_w:.0f}")
    out.print(gt)
    out.print(f"power idle {pred.idle.dc_w:.0f} W DC / {pred.idle.wall_w:.0f} W wall; model loaded "
              f"{pred.idle_loaded.dc_w:.0f} / {pred.idle_loaded.wall_w:.0f} W; burn plateau "
              f"{burn.node_dc_w[-1]:.0f} / {burn.node_wall_w[-1]:.0f} W (wall peak {burn.node_wall_peak_w.max():.0f} W); "
              f"all-parts peak {pred.peak.dc_w:.0f} / "
              f"{pred.peak.wall_w:.0f} W; PSU headroom at peak {psu_headroom_frac(b, pred.peak.dc_w):.0%} "
              f"of {b.node.psu_count} x {b.psu.rated_w:.0f} W")
    bt = Table(title=f"burn test: every GPU at full load from idle ({burn.start_c.max():.1f} °C), plateau after "
                     f"{burn.time_to_plateau_s:.0f} s, {burn.rise_fraction_at(60.0):.0%} of the rise at 60 s"
                     f"{'' if burn.settled else ' (not settled: lengthen --burn-s)'}")
    bt.add_column("t s", justify="right")
    for g in range(b.node.gpu_count):
        bt.add_column(f"gpu{g} W / °C", justify="right")
    bt.add_column("node wall W", justify="right")
    bt.add_column("airflow CFM", justify="right")
    times = [s for s in BURN_SAMPLES_S if s <= burn.t_s[-1]]
    for s in times:
        k = int(abs(burn.t_s - s).argmin())
        bt.add_row(f"{burn.t_s[k]:.0f}", *[f"{burn.gpu_power_w[k, g]:.0f} / {burn.gpu_temp_c[k, g]:.1f}"
                                          for g in range(b.node.gpu_count)],
                   f"{burn.node_wall_w[k]:.0f}", f"{burn.airflow_m3_s[k] / CFM_M3_S:.0f}")
    out.print(bt)


def predict_cmd(
        model: Annotated[str, typer.Option("--model", "-m", help="Model name, e.g. llama-3.3-70b")],
        quant: Annotated[str, typer.Option("--quant", help="Quantisation, e.g. awq-int4 (no short flag: -q is --quiet everywhere)")],
        node: Annotated[str, typer.Option(help="Node type (parts, PSU, fans)")] = "refinery-node",
        gpu: Annotated[Optional[str], typer.Option(help="Replace the node's GPU type")] = None,
        gpus: Annotated[Optional[int], typer.Option(min=1, help="Replace the node's GPU count")] = None,
        engine: Annotated[str, typer.Option("--engine", "-e", help="Serving engine profile")] = "vllm",
        tp: Annotated[int, typer.Option(min=1, help="Tensor parallel GPUs per replica")] = 1,
        pp: Annotated[int, typer.Option(min=1, help="Pipeline stages per replica")] = 1,
        max_batch: Annotated[Optional[int], typer.Option(min=1, help="Sequences per replica (slots)")] = None,
        memory_utilisation: Annotated[float, typer.Option(min=0.05, max=1.0, help="Share of VRAM the engine uses")] = 0.92,
        kv_bytes: Annotated[Optional[float], typer.Option(help="KV-cache bytes per element (1 = FP8)")] = None,
        kernel: Annotated[Optional[str], typer.Option(help="GEMM kernel, e.g. awq_marlin, awq, fp8, gguf (default: the engine's pick)")] = None,
        gpu_layers: Annotated[Optional[str], typer.Option(help="llama.cpp layers on the GPUs (N or auto); the rest in system memory")] = None,
        kv_block_tokens: Annotated[Optional[int], typer.Option(help="Paged KV block size in tokens (vLLM default 16)")] = None,
        build: Annotated[Optional[str], typer.Option(help="Engine build era with its own kernel rows, e.g. llama.cpp 2023-12 (default: current)")] = None,
        boot_cache: Annotated[Optional[str], typer.Option(help="What the first boot finds compiled: none, kernels (default: prebuilt FlashInfer kernels in the image) or all (+ torch.compile cache)")] = None,
        concurrency: Annotated[str, typer.Option(help="Comma-separated client counts")] = "1,4,16,64",
        prompt_tokens: Annotated[int, typer.Option(min=1, help="Prompt tokens per request")] = 1020,
        output_tokens: Annotated[int, typer.Option(min=1, help="Output tokens per request")] = 129,
        ambient_c: Annotated[float, typer.Option(min=0, max=50, help="Intake air for the burn test, °C")] = 25.0,
        burn_s: Annotated[float, typer.Option(min=10, max=86400, help="Burn-test length, s")] = 1800.0,
        power_cap_w: Annotated[Optional[float], typer.Option(min=1, help="Per-GPU power cap for the burn test, W")] = None,
        catalogue: Annotated[Optional[list[Path]], typer.Option(help="Extra catalogue YAML (repeatable)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False) -> None:
    """Predict one box: load time, decode/prefill tok/s, concurrency, power and a burn-test curve."""
    from twin.spec.catalogue import load_catalogue
    from twin.tools.predict import predict

    try:
        levels = [int(x) for x in concurrency.split(",") if x.strip()]
    except ValueError:
        fail(f"--concurrency: expected comma-separated integers, got {concurrency!r}")
    if not levels or min(levels) < 1:
        fail("--concurrency: give at least one client count >= 1")
    missing = [p for p in catalogue or [] if not p.is_file()]
    if missing:
        fail([f"--catalogue: no such file {str(p)!r}" for p in missing])
    try:
        cat = load_catalogue(catalogue or [])
    except SpecError as exc:
        fail(exc.problems)
    box = _box(cat, node, gpu, gpus, model, quant, engine, tp, pp, memory_utilisation, max_batch, kv_bytes,
               kernel, _gpu_layers(gpu_layers), kv_block_tokens, prompt_tokens + output_tokens, build, boot_cache)
    pred = predict(box, levels, prompt_tokens, output_tokens, ambient_c, burn_s, power_cap_w)
    if as_json:
        out.print_json(json.dumps(_as_dict(pred)))
    else:
        _print(pred)


def register(app: typer.Typer) -> None:
    """Add `twin predict` to `app`."""
    app.command("predict")(predict_cmd)
