"""One node and the model it serves, every part resolved from the catalogue (`twin predict`'s unit)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from twin.model.kernels import select_kernel
from twin.model.offload import OffloadSplit, auto_gpu_layers
from twin.model.replica import ServingPlan, serving_plan
from twin.spec.catalogue import (
    Catalogue,
    CpuSpec,
    EngineSpec,
    FanSpec,
    GpuSpec,
    KernelSpec,
    ModelSpec,
    NicSpec,
    NodeSpec,
    PsuSpec,
    QuantSpec,
)
from twin.spec.scenario import DEFAULT_BOOT_CACHE, BootCache


@dataclass(frozen=True)
class Box:
    """One node and the model it serves (every part resolved from the catalogue)."""
    node: NodeSpec
    gpu: GpuSpec
    cpu: CpuSpec
    psu: PsuSpec
    nic: NicSpec
    fan: FanSpec
    model: ModelSpec
    quant: QuantSpec
    engine: EngineSpec
    tp: int = 1
    pp: int = 1
    memory_utilisation: float = 0.92
    max_batch: int | None = None
    kv_bytes: float | None = None
    kernel: KernelSpec | None = None     # the kernel-table row (resolve_box: the engine's default)
    split: OffloadSplit | None = None    # llama.cpp layers in system memory; None: all on the GPUs
    build: str | None = None             # engine build era of the kernel row (None: current builds)
    boot_cache: BootCache = DEFAULT_BOOT_CACHE  # what a first boot finds compiled (twin.model.coldstart)

    @property
    def replicas(self) -> int:
        """Replicas of tp x pp GPUs that fit on the node's GPUs."""
        return self.node.gpu_count // (self.tp * self.pp)

    @property
    def plan(self) -> ServingPlan:
        if self.kernel is None:
            raise ValueError("Box.kernel is unset; build boxes with resolve_box")
        return serving_plan(self.model, self.quant, self.gpu, self.engine, self.kernel, self.tp, self.pp,
                            self.memory_utilisation, self.kv_bytes, self.max_batch)


def resolve_box(cat: Catalogue, node: str, model: str, quantisation: str, engine: str = "vllm", *,
                gpu: str | None = None, gpu_count: int | None = None, tp: int = 1, pp: int = 1,
                memory_utilisation: float = 0.92, max_batch: int | None = None,
                kv_bytes: float | None = None, kernel: str | None = None,
                gpu_layers: int | str | None = None, context_tokens: float = 4096, build: str | None = None,
                boot_cache: BootCache = DEFAULT_BOOT_CACHE) -> Box:
    """Look every name up (KeyError names the missing one); `gpu`/`gpu_count` replace the node's GPUs.

    `kernel`: a kernel-table kernel (KernelError if it does not run here); default the engine's.
    `build`: an engine build era with its own kernel rows (KernelError naming the eras if unknown).
    `boot_cache`: what the engine's first boot finds compiled (twin.spec.scenario.BootCache).
    `gpu_layers`: llama.cpp layers on the GPUs (an int, or "auto": as many as fit with
    `context_tokens` of KV per slot); the rest stay in system memory.
    """
    n = cat.node(node)
    if gpu is not None or gpu_count is not None:
        n = n.model_copy(update={"gpu": gpu or n.gpu, "gpu_count": gpu_count or n.gpu_count,
                                 "name": f"{n.name}+{gpu_count or n.gpu_count}x{gpu or n.gpu}"})
    if tp * pp > n.gpu_count:
        raise ValueError(f"tp x pp = {tp * pp} GPUs exceeds the {n.gpu_count} GPUs of one {n.name}; "
                         "predict models a single box")
    g = cat.gpu(n.gpu)
    box = Box(node=n, gpu=g, cpu=cat.cpu(n.cpu), psu=cat.psu(n.psu), nic=cat.nic(n.nic),
              fan=cat.fan(n.chassis_fan), model=cat.model(model), quant=cat.quant(quantisation),
              engine=cat.engine(engine), tp=tp, pp=pp, memory_utilisation=memory_utilisation,
              max_batch=max_batch, kv_bytes=kv_bytes, kernel=select_kernel(cat, engine, quantisation, g, kernel, build),
              build=build, boot_cache=boot_cache)
    if gpu_layers is None:
        return box
    layers = box.model.layers
    on_gpu = (auto_gpu_layers(box.plan, memory_utilisation, context_tokens, box.plan.max_batch)
              if gpu_layers == "auto" else min(int(gpu_layers), layers))
    return box if on_gpu >= layers else replace(box, split=OffloadSplit(layers=layers, gpu_layers=on_gpu))
