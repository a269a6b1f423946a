"""`twin predict`: what one box does with one model, without running the discrete-event engine.

Pure functions over catalogue specs. Every number comes from the same physics the engine uses
(twin.serving roofline, twin.power, twin.thermal); this module only composes them for a single
node in steady state:

- load time:     weights / min(NVMe read, PCIe H2D) + engine warm-up (hardware.md "Boot and load")
- decode tok/s:  1 / serving.decode_token_interval_s at the given batch and context
- prefill tok/s: 1 / serving.prefill_seconds_per_token
- concurrency:   a closed-loop "wave" model (below)
- burn test:     every GPU at board power (activity 1), the node's fans and thermal RC stepped
                 with thermal.rc_step_c until the temperatures plateau.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin.model import power as pw
from twin.model import serving as sv
from twin.model import thermal as th
from twin.model.node_power import DIMM_ACTIVITY, node_parts_w, node_wall_w

# the engine's fan-controller and idle-state estimates, so that predict and `twin run` agree
from twin.model.power import CPU_UTIL_WARM
from twin.model.states import SERVING
from twin.model.thermal import CHASSIS_FAN_TAU_S, FAN_START_C, GPU_FAN_TAU_S
from twin.spec.catalogue import (
    Catalogue,
    CpuSpec,
    EngineSpec,
    FanSpec,
    GpuSpec,
    ModelSpec,
    NicSpec,
    NodeSpec,
    PsuSpec,
    QuantSpec,
)

INTRA_NODE_HOP_LATENCY_S = 5e-6  # as twin.engine: one PCIe P2P pipeline hop (launch + sync)
SERVING_DIMM_ACTIVITY = DIMM_ACTIVITY[SERVING]
PLATEAU_BAND_K = 1.0             # "plateau": within 1 K of the final temperature from then on


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

    @property
    def replicas(self) -> int:
        """Replicas of tp x pp GPUs that fit on the node's GPUs."""
        return self.node.gpu_count // (self.tp * self.pp)

    @property
    def perf(self) -> sv.ReplicaPerf:
        return sv.replica_perf(self.model, self.quant, self.gpu, self.engine, self.tp, self.pp,
                               self.memory_utilisation, self.max_batch, self.kv_bytes)


def resolve_box(cat: Catalogue, node: str, model: str, quantisation: str, engine: str = "vllm", *,
                gpu: str | None = None, gpu_count: int | None = None, tp: int = 1, pp: int = 1,
                memory_utilisation: float = 0.92, max_batch: int | None = None,
                kv_bytes: float | None = None) -> Box:
    """Look every name up (KeyError names the missing one); `gpu`/`gpu_count` replace the node's GPUs."""
    n = cat.node(node)
    if gpu is not None or gpu_count is not None:
        n = n.model_copy(update={"gpu": gpu or n.gpu, "gpu_count": gpu_count or n.gpu_count,
                                 "name": f"{n.name}+{gpu_count or n.gpu_count}x{gpu or n.gpu}"})
    if tp * pp > n.gpu_count:
        raise ValueError(f"tp x pp = {tp * pp} GPUs exceeds the {n.gpu_count} GPUs of one {n.name}; "
                         "predict models a single box")
    return Box(node=n, gpu=cat.gpu(n.gpu), cpu=cat.cpu(n.cpu), psu=cat.psu(n.psu), nic=cat.nic(n.nic),
               fan=cat.fan(n.chassis_fan), model=cat.model(model), quant=cat.quant(quantisation),
               engine=cat.engine(engine), tp=tp, pp=pp, memory_utilisation=memory_utilisation,
               max_batch=max_batch, kv_bytes=kv_bytes)


# ---------------------------------------------------------------------------------------- serving
def model_load_s(weights_gb: float, nvme_read_gb_s: float, pcie_h2d_gb_s: float, warmup_s: float) -> float:
    """Weights NVMe -> VRAM plus engine warm-up, s: size / min(NVMe, H2D) + warm-up.

    Source: hardware.md "Boot and load times" (the engine's LOADING + warm-up phases).
    """
    return weights_gb / min(nvme_read_gb_s, pcie_h2d_gb_s) + warmup_s


def decode_interval_s(box: Box, batch: float, context_tokens: float) -> float:
    """Seconds between tokens of each of `batch` sequences whose mean context is `context_tokens`.

    The engine's decode step (serving.decode_token_interval_s) with its TP all-reduces and its
    intra-node pipeline hops over PCIe P2P, at full clock.
    """
    pf, p2p = box.perf, box.node.pcie_p2p_gb_s
    b = max(float(batch), 1.0)
    per_micro = b / min(pf.pp, b)
    hop_s = (pf.pp - 1) * float(sv.pipeline_hop_s(per_micro, pf.hidden_size, p2p, INTRA_NODE_HOP_LATENCY_S))
    tp_s = float(sv.tp_allreduce_s(per_micro, pf.layers, pf.hidden_size, pf.tp, p2p, box.node.tp_allreduce_latency_s))
    return float(sv.decode_token_interval_s(
        np.array([b]), np.array([b * context_tokens]), weights_bytes=pf.weights_bytes,
        active_fraction=pf.active_fraction, active_params=pf.active_params,
        kv_bytes_per_token=pf.kv_bytes_per_token, state_bytes_per_seq=pf.state_bytes_per_seq, tp=pf.tp,
        pp=pf.pp, bandwidth_gb_s=pf.bandwidth_gb_s, dense_tflops=pf.decode_tflops, eta_bw=pf.eta_bw,
        eta_fl=pf.eta_fl, clock=np.array([1.0]), step_overhead_s=pf.step_overhead_s, hop_s=hop_s,
        tp_comm_s=tp_s)[0])


def prefill_tokens_per_s(box: Box) -> float:
    """Prompt tokens/s of one replica: compute-bound roofline (serving.prefill_seconds_per_token)
    plus the TP all-reduce traffic per token (serving.tp_prefill_s_per_token), as in the engine."""
    pf = box.perf
    return 1.0 / (float(sv.prefill_seconds_per_token(pf.active_params, pf.prefill_gpus, pf.prefill_tflops, pf.eta_fl))
                  + sv.tp_prefill_s_per_token(pf.layers, pf.hidden_size, pf.tp, box.node.pcie_p2p_gb_s))


def kv_fit_sequences(box: Box, tokens_per_seq: float) -> int:
    """How many sequences of `tokens_per_seq` the replica's KV budget holds (max_batch aside)."""
    pf = box.perf
    per_seq = tokens_per_seq * pf.kv_bytes_per_token + pf.state_bytes_per_seq
    return int(pf.kv_capacity_bytes // per_seq) if per_seq > 0 else pf.max_batch


@dataclass(frozen=True)
class ConcurrencyRow:
    """Steady state at `concurrency` closed-loop clients spread over the node's replicas."""
    concurrency: int
    batch: int                 # sequences decoding together on the busiest replica
    stream_tok_s: float        # decode tokens/s each of those sequences sees
    aggregate_tok_s: float     # output tokens/s of the whole node, prefill time included
    ttft_s: float              # mean time to first token
    latency_s: float           # mean request latency (prompt + all output tokens)


def replica_wave(box: Box, clients: int, prompt_tokens: float, output_tokens: float) -> tuple[int, float, float, float, float]:
    """One replica serving `clients` requests that arrive together and are re-sent on completion.

    Requests run in waves of b = min(clients, max_batch, KV fit): a wave prefills its b prompts
    one after another (FIFO) and then decodes O tokens at the batch-b interval, so
      T_wave = b * P * s_prefill + O * interval(b),   aggregate = b * O / T_wave,
      TTFT = (b + 1) / 2 * P * s_prefill (+ earlier waves),  latency = T_wave (+ earlier waves).
    Without continuous batching this is exactly llama.cpp's behaviour; with it, it is the steady
    state of equal-length requests. Returns (b, stream tok/s, aggregate tok/s, TTFT s, latency s).
    """
    if clients <= 0:
        return 0, 0.0, 0.0, 0.0, 0.0
    pf = box.perf
    fit = kv_fit_sequences(box, prompt_tokens + output_tokens)
    b = max(1, min(clients, pf.max_batch, fit))
    waves = math.ceil(clients / b)
    interval = decode_interval_s(box, b, prompt_tokens + output_tokens / 2)
    s_prefill = 1.0 / prefill_tokens_per_s(box)
    t_wave = b * prompt_tokens * s_prefill + output_tokens * interval
    earlier = (waves - 1) / 2 * t_wave  # mean wait for the waves ahead
    ttft = (b + 1) / 2 * prompt_tokens * s_prefill + earlier
    return b, 1.0 / interval, b * output_tokens / t_wave, ttft, t_wave + earlier


def concurrency_table(box: Box, concurrencies: list[int], prompt_tokens: float,
                      output_tokens: float) -> list[ConcurrencyRow]:
    """replica_wave for each concurrency, clients dealt round-robin over the node's replicas."""
    rows = []
    for c in concurrencies:
        per = [c // box.replicas + (i < c % box.replicas) for i in range(box.replicas)]
        waves = [replica_wave(box, k, prompt_tokens, output_tokens) for k in per]
        busiest = waves[0]
        # client-weighted means over the replicas
        ttft = sum(k * w[3] for k, w in zip(per, waves)) / max(c, 1)
        latency = sum(k * w[4] for k, w in zip(per, waves)) / max(c, 1)
        rows.append(ConcurrencyRow(concurrency=c, batch=busiest[0], stream_tok_s=busiest[1],
                                   aggregate_tok_s=sum(w[2] for w in waves), ttft_s=ttft, latency_s=latency))
    return rows


# ------------------------------------------------------------------------------------------ power
@dataclass(frozen=True)
class NodePower:
    """DC (after the PSU) and wall (AC) power of the node, W."""
    dc_w: float
    wall_w: float


def node_power(box: Box, gpu_w: np.ndarray | float, cpu_util: float, dimm_activity: float,
               fan_frac: float) -> NodePower:
    """The node-power composition (twin.model.node_power, as the engine) with every GPU at `gpu_w`
    and the chassis fans at `fan_frac` of full speed; wall through the PSU efficiency curve."""
    n = box.node
    gpus = float(np.sum(np.broadcast_to(gpu_w, (n.gpu_count,))))
    parts = node_parts_w(n, box.cpu, box.nic, box.fan, cpu_util=cpu_util, dimm_activity=dimm_activity,
                         fan_rpm=fan_frac * box.fan.max_rpm)
    return NodePower(dc_w=float(parts.dc_w(gpus)), wall_w=node_wall_w(n, parts, gpus, box.psu))


def idle_power(box: Box, loaded: bool = False) -> NodePower:
    """Powered on and idle, chassis fans at minimum speed.

    Bare (`loaded=False`): GPUs, CPU and DIMMs at idle. Loaded: the engine's WARM state, i.e. the
    model resident (+loaded_idle_extra_w per GPU) and the engine polling (CPU_UTIL_WARM).
    """
    gpu_w = box.gpu.idle_power_w + (box.gpu.loaded_idle_extra_w if loaded else 0.0)
    return node_power(box, gpu_w, CPU_UTIL_WARM if loaded else 0.0, 0.0, box.fan.min_rpm / box.fan.max_rpm)


def peak_power(box: Box) -> NodePower:
    """Every part at its rated maximum at once: GPUs at board power, CPU at TDP, fans at full speed."""
    return node_power(box, box.gpu.board_power_w, 1.0, 1.0, 1.0)


def psu_headroom_frac(box: Box, dc_w: float) -> float:
    """Share of the PSUs' combined rating left at a DC load: 1 - dc / (rated * count)."""
    return 1.0 - dc_w / (box.psu.rated_w * box.node.psu_count)


@dataclass(frozen=True)
class BurnTest:
    """Sustained all-GPU load (activity 1) from a cold start, sampled every dt_s."""
    t_s: np.ndarray           # (T,)
    gpu_power_w: np.ndarray   # (T, G)
    gpu_temp_c: np.ndarray    # (T, G)
    gpu_clock: np.ndarray     # (T, G)
    node_dc_w: np.ndarray     # (T,)
    node_wall_w: np.ndarray   # (T,)
    airflow_m3_s: np.ndarray  # (T,)

    @property
    def plateau_c(self) -> np.ndarray:
        return self.gpu_temp_c[-1]

    @property
    def time_to_plateau_s(self) -> float:
        """First time after which every GPU stays within PLATEAU_BAND_K of its final temperature."""
        off = np.abs(self.gpu_temp_c - self.gpu_temp_c[-1]).max(axis=1) > PLATEAU_BAND_K
        last = np.flatnonzero(off)
        return float(self.t_s[last[-1] + 1]) if len(last) and last[-1] + 1 < len(self.t_s) else float(self.t_s[0])

    @property
    def settled(self) -> bool:
        """True when the last minute moved the hottest GPU by less than 0.2 K (a real plateau)."""
        k = min(len(self.t_s) - 1, max(1, int(round(60.0 / (self.t_s[1] - self.t_s[0])))))
        return bool(abs(self.gpu_temp_c[-1].max() - self.gpu_temp_c[-1 - k].max()) < 0.2)


def burn_test(box: Box, ambient_c: float = 25.0, duration_s: float = 1800.0, dt_s: float = 1.0,
              power_cap_w: float | None = None) -> BurnTest:
    """Every GPU at full activity (gpu-burn style) in `ambient_c` intake air, stepped like the engine.

    Per tick: clock = min(thermal throttle, power cap); GPU power = power.gpu_power_w(a=1);
    CPU at the node's serving utilisation; chassis fans follow the hottest GPU and the blowers
    their own GPU (thermal.fan_curve_frac, first-order spin-up); GPU intake = ambient + the share
    of CPU/platform heat that pre-heats it; die temperature by thermal.rc_step_c.
    Source: hardware.md "GPU power model" and "Thermal model"; the same composition as
    twin.sim.plant.Plant.step for one node at constant inlet.
    """
    n, gpu, cpu, fan = box.node, box.gpu, box.cpu, box.fan
    steps = int(math.floor(duration_s / dt_s + 1e-9))
    G = n.gpu_count
    temp = np.full(G, float(ambient_c))   # die
    sink = temp.copy()                   # heatsink
    blower = np.zeros(G)
    rpm = float(fan.min_rpm)
    out = {k: np.zeros((steps, G)) for k in ("p", "t", "c")}
    dc_t, wall_t, air_t = np.zeros(steps), np.zeros(steps), np.zeros(steps)
    # heat released upstream of the GPUs (CPU, memory, platform), as the engine's plant
    other_w = float(node_parts_w(n, cpu, box.nic, fan, cpu_util=n.cpu_util_serving, dimm_activity=SERVING_DIMM_ACTIVITY,
                                 fan_rpm=0.0).upstream_w)
    for k in range(steps):
        clock = th.throttle_clock_frac(temp, gpu.slowdown_temp_c, gpu.shutdown_temp_c)
        if power_cap_w is not None:
            clock = np.minimum(clock, pw.clock_for_power_cap(power_cap_w, gpu.idle_power_w, gpu.board_power_w, 1.0))
        p_gpu = pw.gpu_power_w(gpu.idle_power_w, gpu.board_power_w, np.ones(G), clock)
        rpm_target = fan.max_rpm * float(th.fan_curve_frac(temp.max(), fan.min_rpm / fan.max_rpm, FAN_START_C,
                                                           gpu.fan_target_c))
        rpm = float(th.first_order_lag(np.float64(rpm), np.float64(rpm_target), CHASSIS_FAN_TAU_S, dt_s))
        power = node_power(box, p_gpu, n.cpu_util_serving, SERVING_DIMM_ACTIVITY, rpm / fan.max_rpm)
        airflow = (n.chassis_fan_count * float(pw.fan_airflow_m3_s(fan.max_airflow_m3_s, rpm, fan.max_rpm))
                   + gpu.blower_airflow_m3_s * float(blower.sum()))
        intake = ambient_c + float(th.exhaust_c(0.0, n.gpu_preheat_frac * other_w, airflow))
        temp, sink = th.gpu_step_c(temp, sink, intake, p_gpu, blower, gpu, dt_s)
        blower = th.first_order_lag(blower, th.fan_curve_frac(temp, gpu.min_fan_frac, FAN_START_C, gpu.fan_target_c),
                                    GPU_FAN_TAU_S, dt_s)
        out["p"][k], out["t"][k], out["c"][k] = p_gpu, temp, clock
        dc_t[k], wall_t[k], air_t[k] = power.dc_w, power.wall_w, airflow
    return BurnTest(t_s=(np.arange(steps) + 1) * dt_s, gpu_power_w=out["p"], gpu_temp_c=out["t"],
                    gpu_clock=out["c"], node_dc_w=dc_t, node_wall_w=wall_t, airflow_m3_s=air_t)


# ---------------------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class Prediction:
    """Everything `twin predict` prints."""
    box: Box
    weights_gb: float
    kv_budget_gb: float
    load_s: float
    cold_start_s: float
    single_stream_tok_s: float
    prefill_tok_s: float
    rows: list[ConcurrencyRow]
    idle: NodePower
    idle_loaded: NodePower
    peak: NodePower
    burn: BurnTest


def predict(box: Box, concurrencies: list[int], prompt_tokens: float = 1020, output_tokens: float = 129,
            ambient_c: float = 25.0, burn_s: float = 1800.0, power_cap_w: float | None = None) -> Prediction:
    """Compose the single-box figures (defaults: Azure 2023 conversation medians 1,020 / 129 tokens)."""
    n = box.node
    plan = sv.replica_memory_plan(box.model, box.quant, box.gpu, box.tp * box.pp, box.memory_utilisation,
                                  box.kv_bytes)
    weights_node_gb = plan.weights_gb * box.replicas
    load = model_load_s(weights_node_gb, n.nvme_read_gb_s, n.pcie_h2d_gb_s, box.engine.warmup_s)
    return Prediction(
        box=box, weights_gb=plan.weights_gb, kv_budget_gb=plan.kv_budget_gb, load_s=load,
        cold_start_s=n.power_on_s + n.post_s + n.os_boot_s + load,
        single_stream_tok_s=1.0 / decode_interval_s(box, 1, prompt_tokens),
        prefill_tok_s=prefill_tokens_per_s(box),
        rows=concurrency_table(box, concurrencies, prompt_tokens, output_tokens),
        idle=idle_power(box), idle_loaded=idle_power(box, loaded=True), peak=peak_power(box),
        burn=burn_test(box, ambient_c, burn_s, 1.0, power_cap_w))
