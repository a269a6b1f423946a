"""Scenario checks of a pool's serving choices: build era, kernel, CPU offload, KV block size.

Each problem is one line naming the field path (`pools[0].kernel: ...`); `twin predict` rewrites
the path to its option (`--kernel: ...`). Called from twin.model.validate.check_against_catalogue.
"""
from __future__ import annotations

from typing import Any

from twin.model.kernels import KernelError, build_eras, select_kernel
from twin.spec.catalogue import Catalogue, GpuSpec, ModelSpec, NodeSpec


def serving_problems(path: str, pool: Any, model: ModelSpec, node: NodeSpec, gpu: GpuSpec,
                     cat: Catalogue) -> list[str]:
    """Problems with `pool`'s build, kernel, gpu_layers and kv_block_tokens (empty when all is well)."""
    problems: list[str] = []
    engine = cat.engine(pool.engine)
    build = getattr(pool, "build", None)
    if build is not None and build not in build_eras(cat, pool.engine):
        eras = build_eras(cat, pool.engine)
        problems.append(f"{path}.build: unknown {pool.engine} build {build!r}; builds with their own kernel rows: "
                        f"{', '.join(eras) or 'none'} (omit build for the current one)")
        build = None  # check the kernel against the current rows
    if pool.quantisation in model.quantisations:
        try:
            select_kernel(cat, pool.engine, pool.quantisation, gpu, pool.kernel, build)
        except KernelError as exc:
            problems.append(f"{path}.kernel: {exc}")
    if pool.gpu_layers is not None:
        if not engine.cpu_offload:
            problems.append(f"{path}.gpu_layers: {pool.engine} cannot keep layers in system memory "
                            "(CPU offload is a llama.cpp feature); remove gpu_layers or use engine llama.cpp")
        elif pool.gpu_layers != "auto" and pool.gpu_layers > model.layers:
            problems.append(f"{path}.gpu_layers: {pool.gpu_layers} exceeds {pool.model}'s {model.layers} layers")
        else:
            quant = cat.quant(pool.quantisation)
            share = 1.0 if pool.gpu_layers == "auto" else 1.0 - pool.gpu_layers / model.layers
            cpu_gb = share * model.total_params_b * quant.bytes_per_param
            if pool.gpu_layers != "auto" and cpu_gb > node.memory_gb:
                problems.append(f"{path}.gpu_layers: the {model.layers - pool.gpu_layers} layers left in system "
                                f"memory need {cpu_gb:.0f} GB but a {node.name} has {node.memory_gb:g} GB")
            elif pool.gpu_layers == "auto" and model.total_params_b * quant.bytes_per_param > node.memory_gb \
                    + node.gpu_count * gpu.memory_bytes / 1e9:
                problems.append(f"{path}.gpu_layers: {pool.model} in {pool.quantisation} needs "
                                f"{model.total_params_b * quant.bytes_per_param:.0f} GB, more than the VRAM and "
                                f"system memory of a {node.name} together")
    if pool.kv_block_tokens is not None and pool.kv_block_tokens > model.max_context:
        problems.append(f"{path}.kv_block_tokens: {pool.kv_block_tokens} tokens per block exceeds "
                        f"{pool.model}'s context of {model.max_context} tokens")
    return problems
