"""Training physics: memory and step time of full fine-tunes, LoRA and QLoRA on one node's GPUs.

Pure functions of catalogue specs and numbers; no SimPy, no I/O. Units are in the names.

**FLOPs per token** (dense decoder, causal attention in a fused/flash kernel), N = active params:
- Linear layers: forward 2N. Backward needs dX = dY Wᵀ (2N) and, for a weight that trains,
  dW = Xᵀ dY (2N more), so a full fine-tune costs 6N per token (Kaplan et al. 2020 §2.1;
  Narayanan et al. 2021 eq. 3). LoRA freezes W: 4N, plus the adapters' own 6·N_adapter
  (Hu et al. 2021, §4.2: skipping the frozen weights' gradients gave +25 % throughput on GPT-3).
- Attention scores and values: 4·L·s·d forward per token for a full s x s matrix (PaLM,
  Chowdhery et al. 2022, App. B counts 12·L·s·d for forward + backward); a causal flash kernel
  skips the masked half, so 2·L·s·d forward and twice that backward.
- Activation checkpointing (full recompute) runs the forward again: +2N + 2·L·s·d.

**Memory per GPU**: weights + gradients + optimizer states (bytes per trainable parameter from
the optimizer table: mixed-precision AdamW is 2 + 2 + 12 = 16 B, ZeRO, Rajbhandari et al. 2020)
+ activations (Korthikanti et al. 2022 eq. 1: 34·s·b·h bytes per layer with 16-bit activations;
a flash kernel drops the 5·a·s²·b term; full recompute keeps only each layer's 2·s·b·h input
plus one layer being recomputed) + logits (b·s·V in BF16 plus the FP32 copy the loss upcasts)
+ the CUDA context. FSDP (ZeRO-3) divides weights, gradients and states by the GPUs; DDP
replicates them.

**Step time**: per micro-batch the roofline max(compute, weight streaming), plus QLoRA's separate
NF4 -> BF16 dequantisation traffic; times the gradient-accumulation count; plus the optimizer
update (memory-bound), paging of offloaded states over PCIe, and gradient / weight collectives
over the node's GPU-to-GPU path. Collectives are charged in full (not overlapped): GeForce cards
without P2P route NCCL through host memory, and the out-of-sample checks in docs/validation.md
show no sign of hiding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from twin.model import power as pw
from twin.spec.catalogue import Catalogue, GpuSpec, ModelSpec, NodeSpec

GB = 1e9
METHODS = ("full", "lora", "qlora")
LORA_TARGETS = ("qv", "attention", "all_linear")
PARALLEL = ("ddp", "fsdp")
FROZEN_BYTES = {"lora": 2.0,  # BF16 base weights
                # NF4: 4 bits + double-quantised constants 0.127 bits/param (Dettmers et al. 2023, §3)
                "qlora": (4.0 + 0.127) / 8.0}
ACT_BYTES_PER_SBH = 34.0      # Korthikanti et al. 2022, eq. (1) without the 5as/h attention-matrix term
CHECKPOINT_BYTES_PER_SBH = 2.0  # full recompute: the BF16 input of every layer (same paper, §4)
LOGIT_BYTES = 6.0             # BF16 logits + their FP32 upcast inside the cross-entropy loss
CUDA_CONTEXT_GB = 0.5         # estimate: CUDA context + allocator slack per process (0.3-0.6 GB on Ampere/Ada)
TRAINING_ACTIVITY = 1.0       # GEMM-bound training keeps the SMs busy: the board runs at its power limit
TRAIN_DRAM_FRAC = 0.5         # estimate: GEMM-bound training reads DRAM at ~half its peak (weights, activations, optimizer)


@dataclass(frozen=True)
class OptimizerBytes:
    """Bytes per *trainable* parameter: working weight copy, gradient, optimizer states."""
    weight: float
    grad: float
    state: float
    source: str


OPTIMIZERS: dict[str, OptimizerBytes] = {
    "adamw": OptimizerBytes(2, 2, 12, "mixed precision: BF16 weights/grads, FP32 master + m + v (ZeRO K=12)"),
    "adamw_fp32": OptimizerBytes(4, 4, 8, "FP32 training: FP32 weights/grads, FP32 m + v"),
    "adamw_bf16": OptimizerBytes(2, 2, 4, "pure BF16 (torchtune dtype: bf16): m and v in BF16"),
    "adamw_8bit": OptimizerBytes(2, 2, 2, "bitsandbytes block-wise 8-bit m and v (Dettmers et al. 2022)"),
    "sgd": OptimizerBytes(2, 2, 0, "plain SGD, no momentum"),
}


@dataclass(frozen=True)
class TrainerProfile:
    """A training framework's achieved fractions of the GPU's dense tensor FLOPS and bandwidth."""
    name: str
    eta_flops: float
    eta_bandwidth: float
    source: str


# torchtune, eager: Llama-2-7B LoRA (q,v rank 8, activation checkpointing) on 1x RTX 4090 at
# batch 4 x 2,048 runs 2,582 tok/s (pytorch/torchtune README, 2024). 6N + 4·L·s·d =
# 4.26e10 FLOP/token x 2,582 = 110 TFLOP/s = 0.67 of the 4090's 165.2 dense BF16 TFLOPS.
# Bandwidth: optimizer steps and weight streaming are elementwise/GEMV-like, as vLLM decode (0.80).
TRAINERS: dict[str, TrainerProfile] = {
    "torchtune": TrainerProfile("torchtune", 0.67, 0.80,
                                "fitted to pytorch/torchtune README: Llama2-7B LoRA 1x RTX 4090, 2,582 tok/s"),
}


@dataclass(frozen=True)
class TrainingSetup:
    """One training job resolved against the catalogue: what runs, on which GPUs, how."""
    model: ModelSpec
    gpu: GpuSpec
    n_gpus: int
    method: Literal["full", "lora", "qlora"]
    batch: int                 # sequences per optimizer step, all GPUs together
    micro_batch: int           # sequences per GPU per forward/backward
    seq_len: int
    optimizer: str = "adamw"
    lora_rank: int = 16
    lora_targets: str = "all_linear"
    recompute: bool = True
    parallel: Literal["ddp", "fsdp"] = "ddp"
    optimizer_offload: bool = False  # states paged to host RAM (bitsandbytes paged / ZeRO-Offload)
    trainer: str = "torchtune"
    vocab_size: int = 0        # 0: unknown, logits memory omitted
    p2p_gb_s: float = 10.0     # GPU-to-GPU collective bandwidth (node pcie_p2p_gb_s)
    h2d_gb_s: float = 12.0     # host <-> GPU for offloaded states (node pcie_h2d_gb_s)

    @property
    def accumulation(self) -> int:
        """Micro-steps per optimizer step: batch / (micro_batch x data-parallel GPUs), rounded up."""
        return max(1, math.ceil(self.batch / (self.micro_batch * self.n_gpus)))


def ffn_size(model: ModelSpec, vocab_size: int = 0) -> float:
    """MLP intermediate width implied by the parameter count of a gated (SwiGLU) decoder.

    N = 2·V·d (untied embeddings) + L·(attention + 3·d·f), attention = 2·d·q + 2·d·kv with
    q = heads x head_dim and kv = kv_heads x head_dim (Llama architecture); solved for f.
    Llama-2-7B: (6.74e9 - 2.6e8) / 32 = 2.02e8 per layer, attention 6.7e7 -> f = 11,010 (config: 11,008).
    """
    d = model.hidden_size
    q = (model.attention_heads * model.head_dim) or d
    kv = (model.kv_heads * model.head_dim) or q
    per_layer = (model.active_params_b * 1e9 - 2.0 * vocab_size * d) / model.layers
    attn = 2.0 * d * q + 2.0 * d * kv
    return max(0.0, (per_layer - attn) / (3.0 * d))


def lora_params(model: ModelSpec, rank: int, targets: str = "all_linear", vocab_size: int = 0) -> float:
    """Trainable adapter parameters: rank x (in + out) for every adapted d_in x d_out matrix.

    Targets: "qv" (Hu et al. 2021's default), "attention" (q, k, v, o) or "all_linear" (plus
    gate, up, down: the QLoRA paper's choice). Llama-2-7B, q/v rank 8: 8 x (4,096 + 4,096) x 2 x 32 = 4.19 M.
    """
    d = model.hidden_size
    q = (model.attention_heads * model.head_dim) or d
    kv = (model.kv_heads * model.head_dim) or q
    per_layer = {"qv": (d + q) + (d + kv),
                 "attention": (d + q) + 2 * (d + kv) + (q + d)}.get(targets)
    if per_layer is None:
        per_layer = (d + q) + 2 * (d + kv) + (q + d) + 3 * (d + ffn_size(model, vocab_size))
    return float(rank * per_layer * model.attention_layers)


def trainable_params(s: TrainingSetup) -> float:
    """Full fine-tune: every parameter; LoRA/QLoRA: the adapters only."""
    if s.method == "full":
        return s.model.total_params_b * 1e9
    return lora_params(s.model, s.lora_rank, s.lora_targets, s.vocab_size)


def flops_per_token(s: TrainingSetup) -> float:
    """Model FLOPs one training token costs (module docstring), incl. recompute and attention."""
    n = s.model.active_params_b * 1e9
    attn_fwd = 2.0 * s.model.attention_layers * s.seq_len * ((s.model.attention_heads * s.model.head_dim)
                                                              or s.model.hidden_size)
    linear_bwd = 4.0 * n if s.method == "full" else 2.0 * n + 6.0 * trainable_params(s)
    recompute = (2.0 * n + attn_fwd) if s.recompute else 0.0
    return 2.0 * n + attn_fwd + linear_bwd + 2.0 * attn_fwd + recompute


@dataclass(frozen=True)
class TrainingMemory:
    """Per-GPU memory of a training job, GB (host RAM for offloaded states separately)."""
    weights_gb: float
    grads_gb: float
    optimizer_gb: float
    activations_gb: float
    logits_gb: float
    context_gb: float
    host_optimizer_gb: float   # states kept in system RAM (optimizer_offload), whole job

    @property
    def total_gb(self) -> float:
        return (self.weights_gb + self.grads_gb + self.optimizer_gb + self.activations_gb + self.logits_gb
                + self.context_gb)


def training_memory(s: TrainingSetup) -> TrainingMemory:
    """Memory one GPU needs (module docstring). Source: ZeRO (2020), Korthikanti et al. (2022)."""
    opt = OPTIMIZERS[s.optimizer]
    total = s.model.total_params_b * 1e9
    train = trainable_params(s)
    frozen_b = 0.0 if s.method == "full" else (total * FROZEN_BYTES[s.method])
    shard = s.n_gpus if s.parallel == "fsdp" else 1
    weights = (frozen_b + train * opt.weight) / shard
    grads = train * opt.grad / shard
    states = train * opt.state / shard
    sbh = s.micro_batch * s.seq_len * s.model.hidden_size
    if s.recompute:
        acts = s.model.layers * CHECKPOINT_BYTES_PER_SBH * sbh + ACT_BYTES_PER_SBH * sbh
    else:
        acts = s.model.layers * ACT_BYTES_PER_SBH * sbh
    logits = s.micro_batch * s.seq_len * s.vocab_size * LOGIT_BYTES
    return TrainingMemory(weights_gb=weights / GB, grads_gb=grads / GB,
                          optimizer_gb=0.0 if s.optimizer_offload else states / GB,
                          activations_gb=acts / GB, logits_gb=logits / GB, context_gb=CUDA_CONTEXT_GB,
                          host_optimizer_gb=train * opt.state / GB if s.optimizer_offload else 0.0)


@dataclass(frozen=True)
class StepTime:
    """One optimizer step of a training job, seconds, and what it achieves."""
    accumulation: int
    compute_s: float         # GEMM FLOPs at eta_fl x dense TFLOPS (all micro-steps)
    streaming_s: float       # weight reads at eta_bw x bandwidth (all micro-steps; the roofline's other arm)
    dequant_s: float         # QLoRA NF4 -> BF16 temporaries (all micro-steps)
    optimizer_s: float       # the update, memory-bound
    offload_s: float         # paging offloaded states host <-> GPU
    comm_s: float            # DDP gradient all-reduce / FSDP gathers and reduce-scatters
    step_s: float
    tokens_per_step: int
    flops_per_token: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.step_s

    def samples_per_s(self, seq_len: int) -> float:
        return self.tokens_per_s / seq_len


def step_time(s: TrainingSetup, clock_frac: float = 1.0, time_share: float = 1.0) -> StepTime:
    """Seconds per optimizer step (module docstring), at an SM clock fraction and a GPU time share.

    `clock_frac` scales the compute arm only (memory-bound parts follow memory clock, not SM clock);
    `time_share` in (0, 1] is the fraction of GPU time this job gets when engines time-slice the GPU
    (twin.model.sharing), stretching the whole step.
    """
    prof, opt = TRAINERS[s.trainer], OPTIMIZERS[s.optimizer]
    total = s.model.total_params_b * 1e9
    train = trainable_params(s)
    fpt = flops_per_token(s)
    micro_tokens = s.micro_batch * s.seq_len
    flops_s = prof.eta_flops * s.gpu.tflops("fp16") * 1e12 * max(clock_frac, 1e-3)
    bw = prof.eta_bandwidth * s.gpu.memory_bandwidth_gb_s * GB
    passes = 3 if s.recompute else 2                       # forward, (recompute), backward read the weights
    weight_bytes = total * (opt.weight if s.method == "full" else FROZEN_BYTES[s.method])
    shard = s.n_gpus if s.parallel == "fsdp" else 1
    compute_micro = fpt * micro_tokens / flops_s
    stream_micro = (passes * weight_bytes + train * opt.grad) / bw
    dequant_micro = passes * total * (FROZEN_BYTES["qlora"] + 2.0) / bw if s.method == "qlora" else 0.0
    acc = s.accumulation
    micro = max(compute_micro, stream_micro) + dequant_micro
    optimizer_s = train / shard * (2 * opt.weight + opt.grad + 2 * opt.state) / bw
    offload_s = 2.0 * train / shard * opt.state / (s.h2d_gb_s * GB) if s.optimizer_offload else 0.0
    ring = (s.n_gpus - 1) / s.n_gpus
    if s.n_gpus == 1:
        comm_s = 0.0
    elif s.parallel == "ddp":  # one ring all-reduce of the gradients per optimizer step
        comm_s = 2.0 * ring * train * opt.grad / (s.p2p_gb_s * GB)
    else:  # FSDP: all-gather weights for forward and backward, reduce-scatter gradients, every micro-step
        comm_s = acc * ring * (2.0 * (weight_bytes + (train * opt.weight if s.method != "full" else 0.0))
                               + train * opt.grad) / (s.p2p_gb_s * GB)
    step = (acc * micro + optimizer_s + offload_s + comm_s) / max(time_share, 1e-6)
    return StepTime(accumulation=acc, compute_s=acc * compute_micro, streaming_s=acc * stream_micro,
                    dequant_s=acc * dequant_micro, optimizer_s=optimizer_s, offload_s=offload_s, comm_s=comm_s,
                    step_s=step, tokens_per_step=acc * micro_tokens * s.n_gpus, flops_per_token=fpt)


def mfu(s: TrainingSetup, st: StepTime) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s per GPU over the GPU's dense BF16 peak."""
    return st.flops_per_token * st.tokens_per_s / (s.n_gpus * s.gpu.tflops("fp16") * 1e12)


def _count(n: float) -> str:
    """4.19e6 -> '4.2 M', 6.74e9 -> '6.74 B' (parameter counts in messages)."""
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"


def memory_refusal(s: TrainingSetup, usable_gb: float, where: str) -> str | None:
    """One line with the arithmetic when the job does not fit `usable_gb` per GPU, else None."""
    m = training_memory(s)
    if m.total_gb <= usable_gb:
        return None
    opt = OPTIMIZERS[s.optimizer]
    if m.activations_gb + m.logits_gb > m.weights_gb + m.grads_gb + m.optimizer_gb:
        hint = "use a smaller micro_batch (gradient accumulation keeps the batch)" + ("" if s.recompute else " or recompute")
    elif s.method == "full":
        hint = "use fsdp, an 8-bit optimizer, optimizer_offload or LoRA/QLoRA"
    else:
        hint = "use qlora, fsdp or a smaller micro_batch"
    return (f"{where}: {s.model.name} {s.method} needs {m.total_gb:.1f} GB per GPU but {s.gpu.name} has "
            f"{usable_gb:.1f} GB: weights {m.weights_gb:.1f} + grads {m.grads_gb:.1f} + optimizer "
            f"{m.optimizer_gb:.1f} ({s.optimizer}: {opt.state:g} B/param x {_count(trainable_params(s))} "
            f"trainable) + activations {m.activations_gb:.1f} + logits {m.logits_gb:.1f} + context "
            f"{m.context_gb:.1f}; {hint}")


def setup_for_job(job, cat: Catalogue, node: NodeSpec) -> TrainingSetup:
    """A scenario's TrainingJobSpec resolved on a node type (names already checked by validation)."""
    model = cat.model(job.model)
    n_gpus = len(job.gpus) if job.gpus is not None else node.gpu_count
    return TrainingSetup(model=model, gpu=cat.gpu(node.gpu), n_gpus=n_gpus, method=job.method, batch=job.batch,
                         micro_batch=job.micro_batch, seq_len=job.seq_len, optimizer=job.optimizer,
                         lora_rank=job.lora_rank, lora_targets=job.lora_targets, recompute=job.recompute,
                         parallel=job.parallel, optimizer_offload=job.optimizer_offload, trainer=job.trainer,
                         vocab_size=model.vocab_size, p2p_gb_s=node.pcie_p2p_gb_s, h2d_gb_s=node.pcie_h2d_gb_s)


def job_steps(job, s: TrainingSetup) -> int:
    """Optimizer steps a job runs: `steps`, or `tokens` / tokens per step rounded up."""
    if job.steps is not None:
        return int(job.steps)
    per_step = s.accumulation * s.micro_batch * s.seq_len * s.n_gpus
    return max(1, math.ceil(job.tokens / per_step))


def nominal_training_clock(gpu: GpuSpec) -> float:
    """SM clock share a board settles to under training load at its power limit (power model).

    The trainer efficiencies were fitted to runs on boards at their limit, so a step's compute
    scales with clock / this nominal clock: only clocks *below* it (a cap, a throttle, a shared
    facility limit) slow training further. Source: twin.model.power.clock_for_board_limit.
    """
    gb_s = TRAIN_DRAM_FRAC * gpu.memory_bandwidth_gb_s
    return float(pw.clock_for_board_limit(gpu.board_power_w, pw.gpu_active_idle_w(gpu), gb_s, TRAINING_ACTIVITY, gpu))
