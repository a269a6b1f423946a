"""Parts and models: frozen, validated specs loaded from YAML data files.

The built-in catalogue lives in ``twin/data/catalogue/*.yaml``; every numeric entry carries a
``source`` string (spec sheet, standard, or "estimate: ..." with the reasoning). Scenarios may
add or override entries with their own catalogue files (``catalogue: [my_parts.yaml]``). An entry
with ``base: NAME`` is an overlay: its fields replace those of the earlier entry NAME and the rest
are kept (what ``twin calibrate -o`` writes).

Specs are pydantic models with ``frozen=True`` and ``extra="forbid"``: an entry with a missing
field, an unknown key or a value out of range fails with the entry and field named.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from twin.errors import SpecError, format_validation_error
from twin.spec.base import Arch, Frac, NonNeg, Pos, Spec
from twin.spec.kernels import BootSpec, KernelSpec
from twin.spec.safe_yaml import load_yaml, read_input

MAX_CATALOGUE_BYTES = 2_000_000

DATA_DIR = Path(__file__).parent.parent / "data" / "catalogue"


class GpuSpec(Spec):
    """A GPU board. Powers are board powers (TGP includes the blower fan)."""
    name: str
    memory_gb: Pos
    memory_bandwidth_gb_s: Pos
    dense_tflops: dict[Literal["fp32", "fp16", "fp8", "fp4", "int8"], Pos]
    board_power_w: Pos
    idle_power_w: Pos
    thermal_resistance_k_per_w: Pos  # die to local air at full fan speed (steady state: T = T_air + P R)
    heatsink_heat_capacity_j_per_k: Pos = 450.0  # heatsink + shroud thermal mass (mass x c_p)
    fan_target_c: float = 84.0
    slowdown_temp_c: float
    shutdown_temp_c: float
    blower_airflow_m3_s: Pos  # at full fan speed
    min_fan_frac: Frac = 0.3
    pcie_gen: int = 5
    boost_clock_mhz: Pos | None = None  # max SM clock; exporters scale it by the clock factor (DCGM_FI_DEV_SM_CLOCK)
    price_usd: NonNeg | None = None
    price_date: str | None = None
    price_source: str | None = None  # where price_usd comes from (list, reseller, estimate)
    # ---- board power split and P-states (twin.model.power.gpu_board_power_w); None = derived
    idle_p0_w: Pos | None = None            # P0/P2 with nothing running (clocks up); None: 2 x idle_power_w
    pstate_decay_s: NonNeg = 10.0           # after the last kernel until the board drops to P8
    context_holds_p0: bool = False          # stays in P0 while a CUDA context is open (Tesla-class)
    memory_type: Literal["gddr6", "gddr6x", "gddr7", "hbm2", "hbm2e", "hbm3", "hbm3e"] = "gddr6"
    memory_w_per_gb_s: NonNeg | None = None  # board W per GB/s of achieved DRAM traffic at full clock
    sm_power_w: Pos | None = None           # SM power at 100 % math utilisation and full clock
    transient_peak_frac: NonNeg = 0.0       # 1-s wall-meter peaks above the power limit, share of it
    # ---- two-stage die/heatsink and memory junction (twin.model.thermal.gpu_thermal_step)
    spreader_time_constant_s: Pos = 3.0     # die + spreader stage (1-5 s in published burns)
    spreader_resistance_frac: Annotated[float, Field(gt=0, lt=1)] = 0.35  # its share of R at full fan
    memory_junction_max_c: float | None = None   # memory-clock throttle; None: none modelled
    memory_resistance_k_per_w: Pos = 1.0    # memory junction to heatsink
    memory_time_constant_s: Pos = 30.0      # memory modules + pads
    blower_free_flow_m3_s: Pos | None = None  # fan curve (twin.model.airflow); None: 1.5 x blower_airflow
    blower_shutoff_pa: Pos = 150.0
    # --- serving (twin/model/kernels.py): architecture keys the kernel table; memory as
    # nvidia-smi reports it; FP16-accumulate and power-limited sustained tensor rates
    architecture: Arch | None = None
    memory_gib: Pos | None = None          # total MiB / 1024 as nvidia-smi reports; default memory_gb
    fp16_acc16_tflops: Pos | None = None   # dense FP16 with FP16 accumulate (GeForce: 2x fp16); default fp16
    sustained_frac: Annotated[float, Field(gt=0, le=1)] = 1.0  # sustained / datasheet tensor rate at the board's power limit
    sustained_source: str | None = None
    source: str

    @model_validator(mode="after")
    def _ordered(self) -> "GpuSpec":
        if self.idle_power_w >= self.board_power_w:
            raise ValueError(f"idle_power_w ({self.idle_power_w}) must be below board_power_w ({self.board_power_w})")
        if not self.fan_target_c < self.slowdown_temp_c < self.shutdown_temp_c:
            raise ValueError("temperatures must satisfy fan_target_c < slowdown_temp_c < shutdown_temp_c")
        if "fp16" not in self.dense_tflops:
            raise ValueError("dense_tflops must include fp16")
        if self.idle_p0_w is not None and not self.idle_power_w <= self.idle_p0_w < self.board_power_w:
            raise ValueError(f"idle_p0_w ({self.idle_p0_w}) must lie between idle_power_w (P8, "
                             f"{self.idle_power_w}) and board_power_w ({self.board_power_w})")
        return self

    @property
    def memory_bytes(self) -> float:
        """Total VRAM in bytes as nvidia-smi reports it (GiB x 2^30)."""
        return (self.memory_gib if self.memory_gib is not None else self.memory_gb) * 2.0 ** 30

    def sustained_tflops(self, precision: str) -> float:
        """Dense tensor TFLOPS the board sustains at its power limit (`fp16_acc16`: FP16 accumulate)."""
        if precision == "fp16_acc16":
            return (self.fp16_acc16_tflops or self.dense_tflops["fp16"]) * self.sustained_frac
        return self.tflops(precision) * self.sustained_frac

    def tflops(self, precision: str) -> float:
        """Dense tensor TFLOPS at `precision`, falling back to the next wider format available."""
        for p in {"fp4": ("fp4", "fp8", "fp16"), "fp8": ("fp8", "fp16"), "int8": ("int8", "fp8", "fp16")}.get(
                precision, (precision, "fp16")):
            if p in self.dense_tflops:
                return self.dense_tflops[p]
        return self.dense_tflops["fp16"]


PriceDate = Annotated[str, Field(pattern=r"^\d{4}-\d{2}$")]  # YYYY-MM the list price applied


class CpuSpec(Spec):
    name: str
    cores: Annotated[int, Field(ge=1)]
    tdp_w: Pos  # package power at full load (AMD desktop: PPT)
    idle_power_w: Pos
    price_usd: NonNeg | None = None
    price_date: PriceDate | None = None
    # --- serving on the CPU (twin/model/offload.py): memory channels x MT/s, cores x clock x FLOP/cycle
    memory_channels: Annotated[int, Field(ge=1)] | None = None
    max_memory_mt_s: Annotated[int, Field(ge=100)] | None = None  # fastest DIMM speed the CPU supports
    memory_read_eta: Annotated[float, Field(gt=0, le=1)] = 0.7  # achievable share of channel bandwidth (streaming reads)
    per_core_read_gb_s: Pos = 25.0    # one core's streaming read bandwidth (estimate: Zen 3/4 20-30 GB/s)
    all_core_ghz: Pos | None = None   # sustained all-core clock under AVX load
    fp32_flops_per_cycle: Pos = 32.0  # per core: 2 x 256-bit FMA pipes (Zen 3/4) = 2 x 8 x 2
    source: str


class PsuSpec(Spec):
    """A power supply with its AC->DC efficiency curve (load fraction -> efficiency)."""
    name: str
    rated_w: Pos
    efficiency_load_points: list[Frac]
    efficiency_points: list[Annotated[float, Field(gt=0, le=1)]]
    standby_w: NonNeg = 3.0
    price_usd: NonNeg | None = None
    price_date: PriceDate | None = None
    # the same supply on 115 V mains (80 PLUS 115 V internal points); None: no 115 V curve known
    efficiency_load_points_115v: list[Frac] | None = None
    efficiency_points_115v: list[Annotated[float, Field(gt=0, le=1)]] | None = None
    source: str

    @model_validator(mode="after")
    def _curve(self) -> "PsuSpec":
        for suffix, pts, eff in (("", self.efficiency_load_points, self.efficiency_points),
                                 ("_115v", self.efficiency_load_points_115v, self.efficiency_points_115v)):
            if suffix and pts is None and eff is None:
                continue
            if pts is None or eff is None or len(pts) != len(eff) or len(pts) < 2:
                raise ValueError(f"efficiency_load_points{suffix} and efficiency_points{suffix} need the same "
                                 "length (>= 2)")
            if any(b <= a for a, b in zip(pts, pts[1:])):
                raise ValueError(f"efficiency_load_points{suffix} must increase")
        return self

    def curve(self, input_v: int = 230) -> tuple[list[float], list[float]]:
        """(load points, efficiencies) at `input_v` mains (230: the default curve)."""
        if input_v == 115:
            if self.efficiency_points_115v is None or self.efficiency_load_points_115v is None:
                raise KeyError(f"psu {self.name!r} has no 115 V efficiency curve")
            return self.efficiency_load_points_115v, self.efficiency_points_115v
        return self.efficiency_load_points, self.efficiency_points


class NicSpec(Spec):
    name: str
    line_rate_gbit_s: Pos
    achievable_gb_s: Pos
    power_w: Pos
    latency_s: Pos
    source: str

    @model_validator(mode="after")
    def _units(self) -> "NicSpec":
        # a common slip: achievable throughput typed in Gbit/s instead of GB/s
        if self.achievable_gb_s > self.line_rate_gbit_s / 8:
            raise ValueError(f"achievable_gb_s ({self.achievable_gb_s:g} GB/s) exceeds line_rate_gbit_s / 8 "
                             f"({self.line_rate_gbit_s / 8:g} GB/s); give achievable_gb_s in GB/s, not Gbit/s")
        return self


class FanSpec(Spec):
    """A chassis fan; affinity laws scale flow ~ rpm, power ~ rpm^3."""
    name: str
    diameter_mm: Pos
    max_rpm: Pos
    min_rpm: Pos
    max_power_w: Pos
    max_airflow_m3_s: Pos  # in the chassis (system impedance), not free air
    # fan curve at full speed (twin.model.airflow): None = 1.5 x max_airflow_m3_s / 30 Pa (estimates)
    free_air_flow_m3_s: Pos | None = None
    max_static_pa: Pos | None = None
    source: str


class NodeSpec(Spec):
    """A server: parts by catalogue name plus platform figures and state timings."""
    name: str
    chassis: str
    height_u: Annotated[int, Field(ge=1)]
    gpu: str
    gpu_count: Annotated[int, Field(ge=1)]
    cpu: str
    psu: str
    psu_count: Annotated[int, Field(ge=1)] = 1
    nic: str
    chassis_fan: str
    chassis_fan_count: Annotated[int, Field(ge=0)]
    dimms: Annotated[int, Field(ge=1)]
    dimm_power_w: Pos
    dimm_idle_w: Pos
    memory_gb: Pos
    dimm_mt_s: Annotated[int, Field(ge=100)] | None = None  # DDR transfer rate the DIMMs run at (serving on the CPU)
    platform_power_w: Pos  # board, BMC, chipset, NVMe, CPU cooler fan
    nvme_read_gb_s: Pos
    pcie_h2d_gb_s: Pos
    pcie_p2p_gb_s: Pos
    # per TP all-reduce call: launch + sync (+ host bounce without P2P). Estimate: ~20 us with
    # PCIe P2P; ~50 us on GeForce (P2P off), fitted to vllm-project/vllm#6955 (4x3090 Ti, 70B AWQ:
    # TP2 30 tok/s, TP4 46 tok/s single stream => ~10 ms fixed per token over 160 all-reduces)
    tp_allreduce_latency_s: Pos = 20e-6
    power_on_s: Pos   # PSU + fans spin-up until POST starts
    post_s: Pos       # BIOS POST incl. memory training
    os_boot_s: Pos    # OS + container start
    boot_jitter_frac: Frac = 0.1
    cpu_util_serving: Frac = 0.2
    cpu_util_booting: Frac = 0.5
    cpu_util_loading: Frac = 0.3
    gpu_preheat_frac: Frac = 0.5  # share of CPU/platform heat that warms the GPUs' intake air
    input_voltage_v: Literal[115, 230] = 230  # mains the PSUs run on (selects their 80 PLUS curve)
    price_usd: NonNeg | None = None
    price_date: str | None = None
    price_source: str | None = None  # where price_usd comes from (quote, sum of parts, estimate)
    source: str


class QuantSpec(Spec):
    name: str
    bytes_per_param: Pos
    compute_precision: Literal["fp16", "fp8", "fp4", "int8", "fp32"]
    kv_bytes: Pos = 2.0
    source: str

    @field_validator("bytes_per_param")
    @classmethod
    def _bytes_not_bits(cls, v: float) -> float:
        if v > 4:
            raise ValueError(f"{v:g} bytes per parameter is more than FP32; looks like bits per weight "
                             f"(give bytes: bits / 8 = {v / 8:g})")
        return v


class ModelSpec(Spec):
    """An LLM's shape. KV bytes/token = 2 * attention_layers * kv_heads * head_dim * kv_bytes."""
    name: str
    family: str
    total_params_b: Pos
    active_params_b: Pos
    layers: Annotated[int, Field(ge=1)]
    attention_layers: Annotated[int, Field(ge=0)]
    attention_heads: Annotated[int, Field(ge=0)] = 0
    kv_heads: Annotated[int, Field(ge=0)] = 0
    head_dim: Annotated[int, Field(ge=0)] = 0
    hidden_size: Annotated[int, Field(ge=1)]
    state_mb_per_seq: NonNeg = 0.0  # fixed recurrent (Mamba) state per sequence
    max_context: Annotated[int, Field(ge=1)] = 131072
    vocab_size: Annotated[int, Field(ge=0)] = 0  # tokenizer vocabulary; training logits memory (0: unknown, omitted)
    quantisations: list[str]
    vocab_size: Annotated[int, Field(ge=0)] = 0  # input embedding rows: read one row per token, not all
    tied_embeddings: bool = False               # True: the same table is the output head (read in full)
    source: str

    @field_validator("total_params_b", "active_params_b")
    @classmethod
    def _billions(cls, v: float) -> float:
        if v > 100_000:
            raise ValueError(f"{v:g} billion parameters is implausible; give the count in billions (70.6, not 70.6e9)")
        return v

    @model_validator(mode="after")
    def _shape(self) -> "ModelSpec":
        if self.active_params_b > self.total_params_b:
            raise ValueError("active_params_b cannot exceed total_params_b")
        if self.attention_layers > self.layers:
            raise ValueError("attention_layers cannot exceed layers")
        return self

    def kv_bytes_per_token(self, kv_bytes: float) -> float:
        return 2.0 * self.attention_layers * self.kv_heads * self.head_dim * kv_bytes


class EngineSpec(Spec):
    """A serving engine's efficiency factors (fractions of roofline it achieves)."""
    name: str
    eta_bandwidth: Annotated[float, Field(gt=0, le=1)]
    eta_flops: Annotated[float, Field(gt=0, le=1)]
    continuous_batching: bool
    tensor_parallel: bool = True  # False: multi-GPU splits layers (pipeline), e.g. llama.cpp's default
    # False: pipeline stages work in turn on one batch (llama.cpp layer split), so a prompt is
    # prefilled at one stage's speed; True: micro-batches keep every stage busy (vLLM PP)
    pipeline_overlap: bool = True
    default_max_batch: Annotated[int, Field(ge=1)]
    warmup_s: NonNeg  # CUDA graphs, compile, allocator warm-up after weights are in VRAM
    step_overhead_s: NonNeg = 0.0  # fixed per decode iteration (scheduler, sampling, launch)
    # host CPU the engine uses while serving (twin.model.power.host_cpu_util)
    host_busy_cores: NonNeg = 1.0          # cores per replica its loops keep busy
    host_core_s_per_token: NonNeg = 5e-5   # core-seconds per token (tokenise, detokenise, stream); estimate
    # --- serving v2 (twin/model/kernels.py, kvcache.py, coldstart.py, offload.py)
    kv_block_tokens: Annotated[int, Field(ge=1)] = 16   # paged KV block (vLLM --block-size default 16)
    preemption: Literal["recompute", "none"] = "recompute"  # vLLM V1: evict newest, recompute later
    activation_reserve_gib: NonNeg = 0.0  # per GPU: profiled activations + CUDA graphs + non-torch memory
    max_batched_tokens: Annotated[int, Field(ge=1)] = 8192  # prefill chunk (vLLM max_num_batched_tokens)
    cpu_offload: bool = False            # can keep layers in system memory (llama.cpp -ngl)
    cpu_eta_compute: Annotated[float, Field(gt=0, le=1)] = 0.5  # CPU prefill: share of cores x GHz x FLOP/cycle
    boot: BootSpec | None = None        # cold-start phases; None: warmup_s only
    source: str


KINDS: dict[str, type[Spec]] = {
    "gpus": GpuSpec, "cpus": CpuSpec, "psus": PsuSpec, "nics": NicSpec, "fans": FanSpec,
    "nodes": NodeSpec, "quantisations": QuantSpec, "models": ModelSpec, "engines": EngineSpec,
    "kernels": KernelSpec,
}


@dataclass(frozen=True)
class Catalogue:
    """All parts by kind and name."""
    entries: dict[str, dict[str, Spec]] = field(default_factory=dict)

    def get(self, kind: str, name: str) -> Any:
        try:
            return self.entries[kind][name]
        except KeyError:
            raise KeyError(name) from None

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries.get(kind, {}))

    def gpu(self, name: str) -> GpuSpec: return self.get("gpus", name)
    def cpu(self, name: str) -> CpuSpec: return self.get("cpus", name)
    def psu(self, name: str) -> PsuSpec: return self.get("psus", name)
    def nic(self, name: str) -> NicSpec: return self.get("nics", name)
    def fan(self, name: str) -> FanSpec: return self.get("fans", name)
    def node(self, name: str) -> NodeSpec: return self.get("nodes", name)
    def model(self, name: str) -> ModelSpec: return self.get("models", name)
    def quant(self, name: str) -> QuantSpec: return self.get("quantisations", name)
    def engine(self, name: str) -> EngineSpec: return self.get("engines", name)
    def kernel_rows(self) -> list[KernelSpec]: return list(self.entries.get("kernels", {}).values())


def _parse_file(path: Path, entries: dict[str, dict[str, Spec]], problems: list[str],
                shipped: bool = False) -> None:
    try:  # type and size checked before reading; alias bombs, duplicate keys, one-line messages
        text = read_input(path, MAX_CATALOGUE_BYTES, "catalogue file")
        doc = load_yaml(text, str(path), MAX_CATALOGUE_BYTES, trusted=shipped) or {}
    except SpecError as exc:
        problems.extend(exc.problems)
        return
    if not isinstance(doc, dict):
        problems.append(f"{path}: top level must be a mapping of kinds ({', '.join(KINDS)})")
        return
    for kind, items in doc.items():
        if kind not in KINDS:
            problems.append(f"{path}: unknown catalogue kind {kind!r} (expected one of {', '.join(KINDS)})")
            continue
        if not isinstance(items, list):
            problems.append(f"{path}: {kind}: must be a list of entries")
            continue
        for i, item in enumerate(items):
            label = f"{kind}[{i}]" + (f" ({item.get('name')})" if isinstance(item, dict) and "name" in item else "")
            if isinstance(item, dict) and "base" in item:  # an overlay: these fields over an earlier entry
                base = entries.get(kind, {}).get(item["base"]) if isinstance(item["base"], str) else None
                if base is None:
                    problems.append(f"{path}: {label}.base: no earlier {kind[:-1]} {item['base']!r} to overlay")
                    continue
                item = {**base.model_dump(), "name": item["base"],
                        **{k: v for k, v in item.items() if k != "base"}}
            try:
                spec = KINDS[kind].model_validate(item)
            except ValidationError as exc:
                problems.extend(f"{path}: {label}.{p}" for p in format_validation_error(exc))
                continue
            entries.setdefault(kind, {})[spec.name] = spec


def load_catalogue(extra_files: list[Path] | tuple[Path, ...] = ()) -> Catalogue:
    """Load the built-in catalogue plus user files (later files override same-named entries).

    Raises SpecError listing every problem (file, entry, field) and cross-reference errors
    (a node naming a GPU that does not exist).
    """
    entries: dict[str, dict[str, Spec]] = {}
    problems: list[str] = []
    for path in sorted(DATA_DIR.glob("*.yaml")):  # the package's own files: libyaml may parse them
        _parse_file(path, entries, problems, shipped=True)
    for path in extra_files:
        _parse_file(Path(path), entries, problems)
    cat = Catalogue(entries)
    for node in entries.get("nodes", {}).values():
        for kind, ref in (("gpus", node.gpu), ("cpus", node.cpu), ("psus", node.psu), ("nics", node.nic),
                          ("fans", node.chassis_fan)):
            if ref not in entries.get(kind, {}):
                problems.append(f"nodes ({node.name}).{kind[:-1]}: unknown {kind[:-1]} {ref!r}")
    for model in entries.get("models", {}).values():
        for q in model.quantisations:
            if q not in entries.get("quantisations", {}):
                problems.append(f"models ({model.name}).quantisations: unknown quantisation {q!r}")
    for row in entries.get("kernels", {}).values():
        if row.engine not in entries.get("engines", {}):
            problems.append(f"kernels ({row.name}).engine: unknown engine {row.engine!r}")
        for q in row.quantisations:
            if q not in entries.get("quantisations", {}):
                problems.append(f"kernels ({row.name}).quantisations: unknown quantisation {q!r}")
    if problems:
        raise SpecError(problems)
    return cat
