"""Scenario YAML -> validated, frozen specs.

`load_scenario(path)` reads with ``yaml.safe_load`` (size-limited), validates every section
with pydantic (unknown keys, types, ranges), then cross-checks against the catalogue (part
names, models fitting VRAM, parallelism vs GPUs per node). All problems are collected and
raised together as one :class:`SpecError`, each line naming its field path.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictInt, ValidationInfo, field_validator, model_validator

from twin.errors import SpecError
from twin.spec.base import Frac, NonNeg, Pos, Section
from twin.spec.catalogue import Catalogue
from twin.spec.safe_yaml import load_yaml
from twin.spec.simulation import SimulationSpec

MAX_SCENARIO_BYTES = 1_000_000
# A plain file name: the run directory is runs/<name>, so ".", "..", "a/b", ".hidden" and "-x"
# (which would name runs/ itself, its parent, a subfolder, a hidden folder or an option) are refused.
PLAIN_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"


def _plain_name(value: str) -> str:
    if not re.fullmatch(PLAIN_NAME, value):
        raise ValueError(f"{value!r} is not a plain file name (letters, digits, '_', '.', '-'; not starting "
                         f"with '.' or '-'): the output goes to runs/<name>")
    return value


# the pattern goes into the JSON Schema (editors check it as you type); the validator words the error
PlainName = Annotated[str, Field(max_length=80, json_schema_extra={"pattern": PLAIN_NAME}), AfterValidator(_plain_name)]

PosInt = Annotated[int, Field(ge=1)]

# What an engine's first boot on a node finds already compiled (twin/model/coldstart.py):
#   none:    nothing: FlashInfer JIT-compiles its kernels on first use and torch.compile runs from scratch
#            (a fresh `pip install vllm`; vllm-project/vllm#47456, #44881);
#   kernels: the image ships prebuilt FlashInfer kernels (flashinfer-jit-cache, installed by vLLM's own
#            Dockerfile: vllm-project/vllm#54529) but not the model's torch.compile artifacts;
#   all:     kernels + the torch.compile cache (VLLM_CACHE_ROOT, ~/.cache/vllm) baked into the image or
#            on a persisted volume (vllm-project/vllm#49782: 79 s -> 48 s to /v1/models on an A10).
# Default `kernels`: a production fleet runs a container image, and the official one carries the kernel
# cache; the compile cache is per model and config and is opt-in (a volume or a baked image).
BootCache = Literal["none", "kernels", "all"]
DEFAULT_BOOT_CACHE: BootCache = "kernels"


class SealedRackSpec(Section):
    """Sealed glass-door racks fed from the floor plenum by blowers (twin.model.airflow)."""
    blower_free_flow_m3_s: Pos = 0.60  # per rack, at full speed against no pressure (~1,270 CFM; estimate: rack-door EC blower unit)
    blower_shutoff_pa: Pos = 100.0     # estimate: EC blower shut-off pressure
    blower_speed_frac: Annotated[float, Field(ge=0, le=1.5)] = 1.0
    plenum_pa: NonNeg = 12.5           # raised-floor static pressure, 0.05 in. w.g. (typical design; estimate)
    leakage_area_m2: NonNeg = 0.01     # effective gaps: rails, cable cut-outs, door seals (estimate: ~1 % of a 0.6 x 2 m door)


class PlantSpec(Section):
    """Cooling plant (twin.model.cooling). Defaults: a chilled-water CRAH room with a water-cooled
    chiller and cooling tower."""
    crah_pressure_pa: Pos = 375.0      # total rise: coil ~150 + filter ~100 + casing ~50 + floor/tiles ~75 Pa (estimate)
    crah_fan_efficiency: Annotated[float, Field(gt=0, le=1)] = 0.6   # EC plug fan + motor + drive (estimate)
    crah_variable_speed: bool = False  # constant-speed CRAH fans: a fixed share of facility power
    crah_min_speed_frac: Frac = 0.3
    pump_w_per_kw: NonNeg = 28.7       # ASHRAE 90.1 App. G: CHW 22 W/gpm x 2 gpm/ton + CW 19 W/gpm x 3 gpm/ton
    chiller_cop_ref: Pos = 3.67        # DOE-2 reciprocating chiller at 6.67 C CHW / 29.4 C condenser water (EnergyPlus dataset)
    chilled_water_c: Annotated[float, Field(ge=2, le=20)] = 10.0     # CHW supply for 18-22 C CRAH air (estimate)
    outdoor_wet_bulb_c: Annotated[float, Field(ge=-20, le=35)] = 20.0  # site-dependent; set per site
    tower_approach_k: NonNeg = 4.0     # cooling-tower design approach ~7 F (ASHRAE HVAC Systems and Equipment ch. 40)
    tower_w_per_kw: NonNeg = 16.7      # ASHRAE 90.1 App. G tower: 38.2 gpm/hp at 3 gpm/ton


class ElectricalSpec(Section):
    """UPS and transformer losses a P_rated + b P + c P^2 / P_rated (Schneider Electric WP 113)."""
    ups_rating_kw: Pos | None = None   # None: sized like the cooling plant (cooling_capacity_kw)
    ups_no_load_frac: Frac = 0.013     # estimate: modern double-conversion UPS, ~93 % at 25 %, ~96 % at full load
    ups_proportional_frac: Frac = 0.02
    ups_square_frac: Frac = 0.01
    transformer_no_load_frac: Frac = 0.005   # estimate: dry-type distribution transformer ~98.5 % at load
    transformer_square_frac: Frac = 0.01


class FacilitySpec(Section):
    supply_air_c: Annotated[float, Field(ge=5, le=40)] = 20.0  # CRAH supply (hardware.md: 18-22 C)
    plenum_airflow_per_rack_m3_s: Pos = 0.45  # perforated tiles in front of a rack (~950 CFM, one high-flow grate; estimate)
    cooling_capacity_kw: Pos = 400.0
    fixed_overhead_kw: NonNeg = 5.0  # lighting, controls, security (the plant's fixed load)
    air_density_kg_m3: Pos = 1.20  # standard air, 20 C, sea level (hardware.md)
    recirculation_top_bias: Annotated[float, Field(ge=0, le=1)] = 0.5  # share of extra recirculation at the top
    room_heat_capacity_j_per_k: Pos = 5.0e6  # room air + rack/floor thermal mass (estimate)
    supply_recovery_s: Pos = 300.0  # time constant for supply air to return to set point
    # sealed: each rack's front chamber balances blower supply, server fans and leakage
    # (twin.model.airflow); open: intake shortfall drawn from the hot aisle over the rack top
    containment: Literal["sealed", "open"] = "sealed"
    sealed_rack: SealedRackSpec = SealedRackSpec()
    plant: PlantSpec = PlantSpec()
    electrical: ElectricalSpec = ElectricalSpec()


class TopologySpec(Section):
    rows: Annotated[int, Field(ge=1, le=26)] = 2
    racks_per_row: Annotated[int, Field(ge=1, le=99)] = 8
    nodes_per_rack: PosInt = 10
    node_type: str = "refinery-node"
    rack_units: PosInt = 42
    first_node_u: PosInt = 3
    rack_width_m: Pos = 0.6
    rack_depth_m: Pos = 1.2
    cold_aisle_m: Pos = 1.2


class PoolPlacement(Section):
    """Where a pool runs when it shares nodes (issue 20): several pools per node, GPU subsets,
    GPU memory shares, CPU-only pools pinned to cores. Inherited by PoolSpec; all optional."""
    colocate: str | None = None  # name of another pool whose nodes this pool shares (takes no nodes of its own)
    device: Literal["gpu", "cpu"] = "gpu"  # cpu: a CPU-only engine (llama.cpp) on `cores` and `ram_gb`
    gpus: list[Annotated[int, Field(ge=0)]] | None = None  # GPU indices of each node this pool uses (default: all)
    gpu_memory_share: Annotated[float, Field(gt=0, le=1)] | None = None  # share of each GPU's memory (vLLM gpu_memory_utilization); replaces memory_utilisation
    cores: PosInt | None = None  # CPU cores pinned to this pool (taskset / llama.cpp --threads)
    ram_gb: Pos | None = None  # system RAM reserved for this pool (CPU-only weights + KV)

    @property
    def memory_fraction(self) -> float:
        """Share of each of its GPUs' memory the pool may use: gpu_memory_share, else memory_utilisation."""
        return self.gpu_memory_share if self.gpu_memory_share is not None else self.memory_utilisation  # type: ignore[attr-defined]


class PoolSpec(PoolPlacement):
    name: str
    model: str
    quantisation: str
    engine: str = "vllm"
    tp: PosInt = 1
    pp: PosInt = 1
    nodes: PosInt  # nodes assigned to this pool (in topology order after earlier pools)
    max_batch: PosInt | None = None  # per replica; default: the engine's
    memory_utilisation: Annotated[float, Field(gt=0, le=1)] = 0.92  # share of VRAM the engine may use
    mix: Frac = 1.0  # share of arriving requests asking for this pool's model
    kv_bytes: Annotated[float, Field(gt=0, le=4)] | None = None  # KV-cache bytes per element (1 = FP8 KV); default: the quantisation's
    # serving (twin/model/kernels.py, kvcache.py, offload.py); checked in twin/model/validate.py
    kernel: str | None = None  # GEMM kernel, e.g. awq_marlin, awq, fp8, gguf; default: what the engine picks
    gpu_layers: Annotated[int, Field(ge=0)] | Literal["auto"] | None = None  # llama.cpp -ngl; rest in system memory
    kv_block_tokens: Annotated[int, Field(ge=1)] | None = None  # paged KV block; default: the engine's (vLLM 16)
    build: str | None = None  # engine build era with its own kernel rows (llama.cpp "2023-12"); default: current builds
    boot_cache: BootCache = DEFAULT_BOOT_CACHE  # what a node's first boot finds cached (twin/model/coldstart.py)


class LengthSpec(Section):
    """Lognormal token-count distribution, truncated to [min, max]."""
    median: Pos
    sigma: Annotated[float, Field(ge=0, le=4)] = 1.0
    min: PosInt = 1
    max: PosInt = 32768

    @model_validator(mode="after")
    def _bounds(self) -> "LengthSpec":
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class SurgeSpec(Section):
    start_s: NonNeg = 600.0
    ramp_s: NonNeg = 300.0
    peak_multiplier: Annotated[float, Field(ge=1)] = 12.0
    plateau_s: NonNeg = 1200.0
    decay_s: NonNeg = 600.0


class ArrivalSpec(Section):
    process: Literal["gamma", "poisson"] = "gamma"
    shape: Annotated[float, Field(gt=0, le=100)] = 0.5  # Gamma shape k; CV = 1/sqrt(k) (BurstGPT: 0.25-0.5)


class WorkloadSpec(Section):
    base_rate_per_s: Pos = 10.0
    arrival: ArrivalSpec = ArrivalSpec()
    prompt_tokens: LengthSpec = LengthSpec(median=1020, sigma=1.0, max=8192)  # Azure 2023 conversation
    output_tokens: LengthSpec = LengthSpec(median=129, sigma=0.9, max=2048)
    surge: SurgeSpec = SurgeSpec()
    timeout_s: Pos = 120.0  # a request still queued after this is dropped (queue_timeout)


class SchedulerSpec(Section):
    policy: str = "cascade"
    warm_pool_nodes: Annotated[int, Field(ge=0)] = 10  # nodes kept WARM (ready) beyond demand
    initial_on_nodes: Annotated[int, Field(ge=0)] = 10  # nodes already WARM at t=0
    max_concurrent_boots: PosInt = 16
    target_utilisation: Annotated[float, Field(gt=0, le=1)] = 0.7
    interval_s: Pos = 10.0
    scale_down_delay_s: NonNeg = 300.0
    hysteresis: Annotated[float, Field(ge=0, le=1)] = 0.2
    max_ramp_kw_per_min: Pos = 60.0  # power_ramp_limited policy
    power_off_idle: bool = True  # scaled-down nodes go OFF (else stay WARM)


class FabricSectionSpec(Section):
    """The RDMA fabric (twin.model.fabric): a two-tier leaf-spine, or with `racks_per_pod` a
    three-tier pod Clos whose pods meet through `super_spines` in `spines` planes."""
    enabled: bool = True
    spines: PosInt = 2  # spine switches: of the hall (two-tier) or of each pod
    oversubscription: Pos = 1.0  # leaf downlink / uplink (1.0 = non-blocking)
    racks_per_pod: Annotated[int, Field(ge=0)] = 0  # 0: two-tier leaf-spine; > 0: pods of this many racks
    super_spines: Annotated[int, Field(ge=0, validate_default=True)] = 0  # pod fabric only: a multiple of spines (one plane per pod spine)
    pod_oversubscription: Annotated[float, Field(gt=0, validate_default=True)] = 1.0  # pod fabric only: pod spine downlink / uplink to the super-spines
    switch_latency_s: Pos = 0.7e-6
    load_from: Literal["nvme", "network"] = "nvme"
    storage_targets: Annotated[int, Field(ge=0)] = 1
    storage_gb_s: Pos = 46.0

    # field validators (not one model validator) so that an error names its field path
    @field_validator("super_spines")
    @classmethod
    def _planes(cls, v: int, info: ValidationInfo) -> int:
        pods, spines = info.data.get("racks_per_pod"), info.data.get("spines")
        if pods is None or spines is None:
            return v  # an earlier field is already wrong
        if pods > 0 and v == 0:
            raise ValueError(f"a pod fabric (racks_per_pod {pods}) needs super-spines joining its pods: give a "
                             f"multiple of spines ({spines}), one plane of super-spines per pod spine")
        if pods == 0 and v > 0:
            raise ValueError("super-spines join pods: set fabric.racks_per_pod too (0 = a two-tier leaf-spine)")
        if v % spines:
            raise ValueError(f"{v} super-spines do not split into {spines} planes (one per pod spine): "
                             f"give a multiple of {spines}")
        return v

    @field_validator("pod_oversubscription")
    @classmethod
    def _pod_only(cls, v: float, info: ValidationInfo) -> float:
        if info.data.get("racks_per_pod") == 0 and v != 1.0:
            raise ValueError("applies to a pod fabric only: set fabric.racks_per_pod (and super_spines)")
        return v


FAULT_KINDS = ("node_crash", "gpu_failure", "fan_failure", "psu_failure", "cooling_failure",
               "cooling_capacity", "power_cap", "facility_power_cap", "link_down", "switch_down")
NODE_FAULTS = ("node_crash", "gpu_failure", "fan_failure", "psu_failure")


class FaultSpec(Section):
    """One scheduled fault (docs/faults.md): what breaks, when, for how long, how badly."""
    at_s: NonNeg
    kind: Literal[FAULT_KINDS]  # type: ignore[valid-type]
    # node id (int), GPU id for gpu_failure, or a fabric name ('spine:0'); StrictInt so that
    # `target: true` or `target: 1.0` are errors rather than node 1
    target: StrictInt | str | None = None
    duration_s: Pos | None = None  # None: the fault lasts until the end of the run
    value: float | None = None


class EconomicsSpec(Section):
    """Prices for run economics (twin.economics); override per site."""
    # US EIA Electric Power Monthly, Table 5.3: average commercial-sector retail price
    # ~12.7-13.1 US cents/kWh in 2023-2024.
    electricity_usd_per_kwh: NonNeg = 0.13
    # Straight-line server depreciation: Amazon 2025 10-K, servers 5 years (shortened from 6).
    amortisation_years: Pos = 5.0
    node_price_usd: NonNeg | None = None  # default: the catalogue node's price_usd


class DesignSpec(Section):
    """Limits for the validation-time design checks (twin.checks)."""
    # Keep the node's all-parts-at-limit DC power this far below the PSU rating (warning beyond,
    # error above the rating). Estimate: common sizing practice keeps sustained PSU load <= 90 %.
    psu_headroom_frac: Annotated[float, Field(ge=0, lt=1)] = 0.10
    # Rack feed: 3-phase 400 V 32 A = sqrt(3) x 400 x 32 = 22.2 kW (IEC 60309 32 A); continuous
    # load kept to 80 % of the breaker (NEC 210.20(A) practice) -> warning above 17.7 kW.
    rack_feed_kw: Pos = 22.2
    rack_feed_continuous_frac: Annotated[float, Field(gt=0, le=1)] = 0.8
    strict: bool = True  # False: envelope violations become warnings, so the what-if still runs


TRAINING_METHODS = ("full", "lora", "qlora")
OPTIMIZER_NAMES = ("adamw", "adamw_fp32", "adamw_bf16", "adamw_8bit", "sgd")


class TrainingJobSpec(Section):
    """One training job (twin.model.training): what trains, how, on which GPUs of which node."""
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=80)]
    model: str
    method: Literal[TRAINING_METHODS] = "lora"  # type: ignore[valid-type]
    trainer: str = "torchtune"  # efficiency profile (twin.model.training.TRAINERS)
    batch: PosInt = 16  # sequences per optimizer step, all GPUs together
    micro_batch: PosInt = 4  # sequences per GPU per forward/backward (gradient accumulation makes up the batch)
    seq_len: PosInt = 2048  # tokens per sequence (packed)
    steps: PosInt | None = None  # optimizer steps to run ...
    tokens: Pos | None = None  # ... or training tokens to process (give one)
    lora_rank: PosInt = 16
    lora_targets: Literal["qv", "attention", "all_linear"] = "all_linear"
    optimizer: Literal[OPTIMIZER_NAMES] = "adamw"  # type: ignore[valid-type]
    recompute: bool = True  # activation checkpointing (full recompute)
    parallel: Literal["ddp", "fsdp"] = "ddp"  # fsdp shards weights, grads and optimizer states over the GPUs
    optimizer_offload: bool = False  # optimizer states paged to system RAM
    node: Annotated[int, Field(ge=0)] = 0  # node id (topology order)
    gpus: list[Annotated[int, Field(ge=0)]] | None = None  # GPU indices on that node (default: all)
    start_s: NonNeg = 0.0
    preemptible: bool = True  # yields GPU time to inference pools on the same GPUs (training.policy)

    @model_validator(mode="after")
    def _length(self) -> "TrainingJobSpec":
        if (self.steps is None) == (self.tokens is None):
            raise ValueError("give exactly one of steps or tokens")
        return self


class TrainingSpec(Section):
    """Training jobs beside the inference traffic, and how they share GPUs with it."""
    # inference_first: a preemptible job runs only in GPU time inference leaves idle;
    # time_slice: jobs and engines get equal time slices of a shared GPU (CUDA default without MPS)
    policy: Literal["inference_first", "time_slice"] = "inference_first"
    jobs: list[TrainingJobSpec] = []


class ScenarioSpec(Section):
    name: PlainName
    description: str = ""
    catalogue: list[str] = []
    simulation: SimulationSpec = SimulationSpec()
    facility: FacilitySpec = FacilitySpec()
    topology: TopologySpec = TopologySpec()
    pools: Annotated[list[PoolSpec], Field(min_length=1)]
    workload: WorkloadSpec = WorkloadSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    fabric: FabricSectionSpec = FabricSectionSpec()
    faults: list[FaultSpec] = []
    economics: EconomicsSpec = EconomicsSpec()
    design: DesignSpec = DesignSpec()
    training: TrainingSpec = TrainingSpec()


def _fields_at(model: type[BaseModel], prefix: str = "", out: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Allowed keys per dotted section path, for did-you-mean suggestions."""
    out = {} if out is None else out
    out[prefix] = list(model.model_fields)
    for name, f in model.model_fields.items():
        ann = f.annotation
        args = getattr(ann, "__args__", ())
        for cand in (ann, *args):
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                _fields_at(cand, f"{prefix}.{name}" if prefix else name, out)
    return out


FIELDS_AT = _fields_at(ScenarioSpec)


@dataclass(frozen=True)
class Scenario:
    """A validated scenario plus the catalogue it resolves against."""
    spec: ScenarioSpec
    catalogue: Catalogue
    text: str
    sha256: str
    source_path: Path | None = None
    warnings: tuple[str, ...] = ()  # design-check findings that do not stop the run (twin.checks)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def seed(self) -> int:
        return self.spec.simulation.seed


def parse_yaml(text: str, origin: str = "<scenario>") -> dict[str, Any]:
    doc = load_yaml(text, origin, MAX_SCENARIO_BYTES)
    if not isinstance(doc, dict):
        raise SpecError([f"{origin}: top level must be a mapping with keys like name, pools, workload"])
    return doc


def _set_dotted(doc: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `dotted` (e.g. "scheduler.policy", "pools.0.nodes": digits index a list) to `value`."""
    node: Any = doc
    parts = dotted.split(".")
    for i, p in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list) and p.isdigit():
            if int(p) >= len(node):
                raise SpecError([f"{dotted}: index {p} is past the end of a list of {len(node)}"])
            if last:
                node[int(p)] = value
            else:
                node = node[int(p)]
        elif isinstance(node, dict):
            if last:
                node[p] = value
            else:
                node = node.setdefault(p, {})
        else:
            raise SpecError([f"{dotted}: cannot set inside a non-mapping"])
