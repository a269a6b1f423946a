"""Load a scenario and check it against the catalogue and the physics.

The spec layer (twin.spec.scenario) says what a scenario may contain; this module adds the checks
that need the model: names against the catalogue and registries, parallelism against the model
architecture, weights against GPU memory (twin.model.serving) and node peaks against PSUs and
rack feeds (twin.model.checks). Every problem is one line naming its field path.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from twin.errors import SpecError, format_validation_error, suggest
from twin.model import sharing, training
from twin.model.checks import design_findings
from twin.model.fabric import cable_between, cable_rule, element_names, parse_element, shape_of
from twin.model.policies import POLICIES
from twin.model.resources import resource_problems
from twin.model.serving_checks import serving_problems
from twin.spec.catalogue import Catalogue, load_catalogue
from twin.spec.safe_yaml import read_input
from twin.spec.scenario import (
    FIELDS_AT,
    MAX_SCENARIO_BYTES,
    NODE_FAULTS,
    Scenario,
    ScenarioSpec,
    _set_dotted,
    parse_yaml,
)
from twin.spec.topology import rack_names


def load_scenario(path: Path | str, *, seed: int | None = None,
                  overrides: dict[str, Any] | None = None) -> Scenario:
    """Read, validate and cross-check a scenario file. Raises SpecError with every problem."""
    path = Path(path)
    text = read_input(path, MAX_SCENARIO_BYTES, "scenario file")  # type and size before reading
    return scenario_from_text(text, origin=str(path), base_dir=path.parent, seed=seed, overrides=overrides)


def scenario_from_text(text: str, *, origin: str = "<scenario>", base_dir: Path | None = None,
                       seed: int | None = None, overrides: dict[str, Any] | None = None) -> Scenario:
    doc = parse_yaml(text, origin)
    if seed is not None:
        doc.setdefault("simulation", {})
        if isinstance(doc["simulation"], dict):
            doc["simulation"]["seed"] = seed
    for key, value in (overrides or {}).items():
        _set_dotted(doc, key, value)
    schema_problems: list[str] = []
    try:
        spec = ScenarioSpec.model_validate(doc)
    except ValidationError as exc:
        # one pass: report the schema problems *and* what the catalogue and physics checks find in
        # the rest of the scenario (checked with the broken fields at their defaults)
        schema_problems = format_validation_error(exc, FIELDS_AT)
        spec, bad = _without_invalid_fields(doc, exc)
        if spec is None:
            raise SpecError(schema_problems) from None
    base_dir = base_dir or Path.cwd()
    extra = [(base_dir / p) if not Path(p).is_absolute() else Path(p) for p in spec.catalogue]
    problems = [f"catalogue[{i}]: no such file {str(p)!r}" for i, p in enumerate(extra) if not p.exists()]
    if problems:
        raise SpecError(schema_problems + problems)
    catalogue = load_catalogue(extra)
    problems = check_against_catalogue(spec, catalogue)
    if schema_problems:
        problems = [p for p in problems if not any(p.startswith(b) for b in bad)]
        raise SpecError(schema_problems + problems)
    if not problems:  # what the run would cost: only for a scenario that is otherwise runnable
        problems = resource_problems(spec, catalogue)
    if problems:
        raise SpecError(problems)
    canonical = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=True)
    warnings = tuple(f.message for f in design_findings(spec, catalogue) if f.level == "warning")
    return Scenario(spec=spec, catalogue=catalogue, text=text,
                    sha256=hashlib.sha256(canonical.encode()).hexdigest(),
                    source_path=None, warnings=warnings)


def _without_invalid_fields(doc: dict[str, Any], exc: ValidationError,
                            rounds: int = 3) -> tuple[ScenarioSpec | None, list[str]]:
    """The scenario with every field pydantic rejected removed (so its default applies), and the
    paths removed; (None, paths) when a required field cannot be repaired that way."""
    import copy

    from twin.errors import loc_to_path

    doc = copy.deepcopy(doc)
    removed: list[str] = []
    for _ in range(rounds):
        for err in exc.errors(include_url=False):
            loc = [p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in ("int", "str", "float")))]
            if err["type"] == "missing" or not loc:
                return None, removed
            parent: Any = doc
            for part in loc[:-1]:
                try:
                    parent = parent[part]
                except (KeyError, IndexError, TypeError):
                    parent = None
                    break
            if isinstance(parent, dict):
                parent.pop(loc[-1], None)
            elif isinstance(parent, list) and isinstance(loc[-1], int) and loc[-1] < len(parent):
                return None, removed  # a bad list item cannot be defaulted
            removed.append(loc_to_path(tuple(loc)))
        try:
            return ScenarioSpec.model_validate(doc), removed
        except ValidationError as again:
            exc = again
    return None, removed


def check_against_catalogue(spec: ScenarioSpec, cat: Catalogue) -> list[str]:
    """Cross-field checks that need the catalogue: names exist, models fit, parallelism fits."""
    problems: list[str] = []

    def known(kind: str, name: str, path: str) -> bool:
        if name in cat.entries.get(kind, {}):
            return True
        problems.append(f"{path}: unknown {kind[:-1]} {name!r}{suggest(name, cat.names(kind))}")
        return False

    topo = spec.topology
    node_ok = known("nodes", topo.node_type, "topology.node_type")
    if node_ok:
        problems.extend(_rack_fit_problems(spec, cat))
    if spec.scheduler.policy not in POLICIES:
        problems.append(f"scheduler.policy: unknown policy {spec.scheduler.policy!r}"
                        f"{suggest(spec.scheduler.policy, POLICIES)}; choose one of {', '.join(sorted(POLICIES))}")
    total_nodes = topo.rows * topo.racks_per_row * topo.nodes_per_rack
    used = sum(p.nodes for p in spec.pools if p.colocate is None)  # guests share their host's nodes
    if used > total_nodes:
        problems.append(f"pools: assign {used} nodes but the topology has {total_nodes} "
                        f"({topo.rows} rows x {topo.racks_per_row} racks x {topo.nodes_per_rack} nodes)")
    names = [p.name for p in spec.pools]
    for i, pool in enumerate(spec.pools):
        path = f"pools[{i}]"
        if names.count(pool.name) > 1:
            problems.append(f"{path}.name: duplicate pool name {pool.name!r}")
        ok = known("models", pool.model, f"{path}.model") & known("quantisations", pool.quantisation, f"{path}.quantisation")
        ok &= known("engines", pool.engine, f"{path}.engine")
        if not (ok and node_ok):
            continue
        model, node = cat.model(pool.model), cat.node(topo.node_type)
        gpu = cat.gpu(node.gpu)
        if pool.quantisation not in model.quantisations:
            problems.append(f"{path}.quantisation: {pool.model} is not offered in {pool.quantisation!r}; "
                            f"choose one of {', '.join(model.quantisations)}")
        if pool.device == "cpu":  # no GPU parallelism or VRAM to check (pool_placement_problems)
            problems.extend(serving_problems(path, pool, model, node, gpu, cat))  # build / kernel: layout selects a row
            continue
        gpus = pool.tp * pool.pp
        if pool.tp > 1 and not cat.engine(pool.engine).tensor_parallel:
            problems.append(f"{path}.tp: {pool.engine} splits a model across GPUs by layers (pipeline), not "
                            f"tensor parallel; use pp: {pool.tp * pool.pp} with tp: 1")
        if model.attention_heads and model.attention_heads % pool.tp:
            problems.append(f"{path}.tp: tensor parallel {pool.tp} must divide {pool.model}'s "
                            f"{model.attention_heads} attention heads")
        elif model.kv_heads and model.kv_heads % pool.tp and pool.tp % model.kv_heads:
            problems.append(f"{path}.tp: tensor parallel {pool.tp} and {pool.model}'s {model.kv_heads} KV heads "
                            f"must divide one another (vLLM shards or replicates whole KV heads)")
        if pool.pp > model.layers:
            problems.append(f"{path}.pp: {pool.pp} pipeline stages exceed {pool.model}'s {model.layers} layers")
        if pool.tp > node.gpu_count:
            problems.append(f"{path}.tp: tensor parallel {pool.tp} exceeds the {node.gpu_count} GPUs of one "
                            f"{node.name}; use pipeline parallel (pp) across nodes")
        if pool.gpus is not None:  # a GPU subset: checked by pool_placement_problems
            pass
        elif gpus > node.gpu_count and gpus % node.gpu_count:
            problems.append(f"{path}: tp x pp = {gpus} GPUs must be a multiple of {node.gpu_count} "
                            f"(GPUs per node) when a replica spans nodes")
        elif gpus <= node.gpu_count and node.gpu_count % gpus:
            problems.append(f"{path}: tp x pp = {gpus} GPUs does not divide the {node.gpu_count} GPUs per node")
        nodes_per_replica = max(1, gpus // node.gpu_count)
        if pool.nodes % nodes_per_replica:
            problems.append(f"{path}.nodes: {pool.nodes} is not a multiple of the {nodes_per_replica} nodes "
                            f"one replica spans")
        serving = serving_problems(path, pool, model, node, gpu, cat)
        problems.extend(serving)
        engine = cat.engine(pool.engine)
        usable_b = gpus * (gpu.memory_bytes * pool.memory_fraction - engine.activation_reserve_gib * 2**30)
        weights_gb = model.total_params_b * cat.quant(pool.quantisation).bytes_per_param
        # offloaded pools hold only their GPU layers in VRAM (serving_problems checks the rest)
        if pool.gpu_layers is None and weights_gb * 1e9 >= usable_b:
            mem = gpu.memory_gib if gpu.memory_gib is not None else gpu.memory_gb
            problems.append(
                f"{path}: {pool.model} in {pool.quantisation} needs {weights_gb:.1f} GB of weights but a "
                f"replica of {gpus} x {gpu.name} has {usable_b / 1e9:.1f} GB usable ({gpus} x {mem:g} GiB x "
                f"{pool.memory_fraction:g} - {engine.activation_reserve_gib:g} GiB engine reserve); raise tp/pp "
                f"or pick a smaller quantisation"
                + (" or keep layers in system memory (gpu_layers: auto)" if engine.cpu_offload else ""))
    if node_ok:  # several pools per node, training jobs (issue 20)
        problems.extend(pool_placement_problems(spec, cat))
        problems.extend(training_problems(spec, cat))
    if node_ok:  # node peak vs PSU, rack vs feed (twin.checks); warnings go on Scenario.warnings
        problems.extend(f.message for f in design_findings(spec, cat) if f.level == "error")
    mixes = sum(p.mix for p in spec.pools)
    if mixes <= 0:
        problems.append("pools: at least one pool needs mix > 0")
    n_units = sum(p.nodes for p in spec.pools if p.colocate is None)
    if spec.scheduler.initial_on_nodes > n_units:
        problems.append(f"scheduler.initial_on_nodes: {spec.scheduler.initial_on_nodes} exceeds the "
                        f"{n_units} nodes in pools")
    for i, f in enumerate(spec.faults):
        if f.at_s > spec.simulation.duration_s:
            problems.append(f"faults[{i}].at_s: {f.at_s} is after the end of the run ({spec.simulation.duration_s} s)")
        n_targets = total_nodes * cat.node(topo.node_type).gpu_count if (f.kind == "gpu_failure" and node_ok) \
            else total_nodes
        if f.kind in NODE_FAULTS and (not isinstance(f.target, int) or not 0 <= f.target < n_targets):
            what = "a GPU id" if f.kind == "gpu_failure" else "a node id"
            problems.append(f"faults[{i}].target: {f.kind} needs {what} 0..{n_targets - 1}")
        if f.kind == "power_cap" and (f.value is None or f.value <= 0):
            problems.append(f"faults[{i}].value: power_cap needs a positive per-GPU limit in W")
        if f.kind == "facility_power_cap" and (f.value is None or f.value <= 0):
            problems.append(f"faults[{i}].value: facility_power_cap needs a positive facility limit in kW")
        if f.kind == "cooling_capacity" and (f.value is None or f.value <= 0):
            problems.append(f"faults[{i}].value: cooling_capacity needs a positive capacity in kW")
        if f.kind == "cooling_failure" and f.value is not None and not 0 <= f.value <= 1:
            problems.append(f"faults[{i}].value: cooling_failure value is the remaining airflow fraction 0..1")
        if f.kind in ("link_down", "switch_down"):
            problems.extend(_fabric_target_problems(f"faults[{i}].target", f.kind, f.target, spec))
    return problems


def _rack_fit_problems(spec: ScenarioSpec, cat: Catalogue) -> list[str]:
    """The nodes must fit in the rack: slots stack from first_node_u, height_u each (twin.spec.topology)."""
    t, height = spec.topology, cat.node(spec.topology.node_type).height_u
    top_u = t.first_node_u + t.nodes_per_rack * height - 1
    if top_u <= t.rack_units:
        return []
    room = max(0, (t.rack_units - t.first_node_u + 1) // height)
    return [f"topology.nodes_per_rack: {t.nodes_per_rack} x {height}U {t.node_type} from U{t.first_node_u} reach "
            f"U{top_u}, past the {t.rack_units}U rack (room for {room}); lower nodes_per_rack or first_node_u, "
            f"or raise rack_units"]


def _fabric_target_problems(path: str, kind: str, target: Any, spec: ScenarioSpec) -> list[str]:
    """A link/switch fault must name an element of the fabric this scenario builds."""
    example = "e.g. 'spine:0', 'leaf:A01', 'node:3' (its NIC) or a cable 'leaf:A01-spine:0'"
    parsed = parse_element(target) if isinstance(target, str) else None
    if parsed is None:
        return [f"{path}: {kind} needs a fabric element, {example}"]
    t, fab = spec.topology, spec.fabric
    n_racks = t.rows * t.racks_per_row
    shape = shape_of(fab, rack_names(t.rows, t.racks_per_row), np.arange(n_racks * t.nodes_per_rack) // t.nodes_per_rack)
    known = element_names(shape)
    ends = parsed[1].split("-", 1) if parsed[0] == "link" else [parsed[1]]
    bad = [e for e in ends if e not in known]
    if bad:
        return [f"{path}: unknown fabric element {bad[0]!r}{suggest(bad[0], sorted(known))}; {example}"]
    if parsed[0] == "link" and not cable_between(shape, ends[0], ends[1]):
        return [f"{path}: no cable between {ends[0]} and {ends[1]}; {cable_rule(shape)}"]
    if not fab.enabled:
        return [f"{path}: {kind} needs fabric.enabled: true"]
    return []


def pool_placement_problems(spec: ScenarioSpec, cat: Catalogue) -> list[str]:
    """Several pools per node (issue 20): colocation, GPU subsets, CPU-only pools, and the
    per-GPU memory / per-node core and RAM splits (twin.model.sharing), with the arithmetic."""
    problems: list[str] = []
    node = cat.node(spec.topology.node_type)
    cpu = cat.cpu(node.cpu)
    names = {p.name: i for i, p in enumerate(spec.pools)}
    for i, pool in enumerate(spec.pools):
        path = f"pools[{i}]"
        # gpu_memory_share replaces memory_utilisation (a resolved scenario.yaml carries both)
        if pool.colocate is not None:
            host = names.get(pool.colocate)
            if host is None or host == i:
                problems.append(f"{path}.colocate: {pool.colocate!r} is not another pool"
                                f"{suggest(pool.colocate, [n for n in names if n != pool.name])}")
            elif spec.pools[host].colocate is not None:
                problems.append(f"{path}.colocate: {pool.colocate!r} is itself colocated; name the pool that owns the nodes")
            elif pool.nodes > spec.pools[host].nodes:
                problems.append(f"{path}.nodes: {pool.nodes} exceeds the {spec.pools[host].nodes} nodes of "
                                f"{pool.colocate!r} it shares")
        per_node = node.gpu_count if pool.gpus is None else len(pool.gpus)
        if pool.gpus is not None:
            if not pool.gpus or len(set(pool.gpus)) != len(pool.gpus) or max(pool.gpus) >= node.gpu_count:
                problems.append(f"{path}.gpus: give distinct GPU indices 0..{node.gpu_count - 1} of a {node.name}")
            elif per_node % (pool.tp * pool.pp):
                problems.append(f"{path}.gpus: tp x pp = {pool.tp * pool.pp} GPUs does not divide the "
                                f"{per_node} GPUs {pool.gpus} this pool uses")
        if pool.device == "gpu" and (pool.gpus is not None or pool.colocate is not None) \
                and pool.tp * pool.pp > per_node:
            problems.append(f"{path}: a pool on a share of a node keeps each replica inside one node; "
                            f"tp x pp = {pool.tp * pool.pp} exceeds its {per_node} GPUs")
        if pool.device == "cpu":
            for field in ("gpus", "gpu_memory_share"):
                if getattr(pool, field) is not None:
                    problems.append(f"{path}.{field}: a CPU-only pool (device: cpu) uses no GPU")
            if pool.tp * pool.pp != 1:
                problems.append(f"{path}.tp: a CPU-only pool runs one process per node; use tp: 1, pp: 1")
            if pool.cores is None:
                problems.append(f"{path}.cores: a CPU-only pool needs the cores it is pinned to (e.g. cores: 12)")
            if pool.ram_gb is None:
                problems.append(f"{path}.ram_gb: a CPU-only pool needs the RAM it reserves for weights and KV (e.g. ram_gb: 96)")
            if cpu.memory_channels is None or cpu.all_core_ghz is None:
                problems.append(f"{path}.device: {cpu.name} has no memory_channels / all_core_ghz in the catalogue; "
                                f"a CPU-only pool needs them (twin/model/offload.py)")
            if pool.ram_gb is not None and pool.model in cat.entries.get("models", {}) \
                    and pool.quantisation in cat.entries.get("quantisations", {}):
                need = cat.model(pool.model).total_params_b * cat.quant(pool.quantisation).bytes_per_param
                if need > pool.ram_gb:
                    problems.append(f"{path}.ram_gb: {pool.model} in {pool.quantisation} needs {need:.1f} GB of "
                                    f"weights but the pool reserves {pool.ram_gb:g} GB of RAM")
        if pool.cores is not None and pool.cores > cpu.cores:
            problems.append(f"{path}.cores: {pool.cores} exceeds the {cpu.cores} cores of a {cpu.name}")
    if problems:
        return problems
    problems.extend(_split_problems(spec, cat))
    return problems


def _tenants(spec: ScenarioSpec, cat: Catalogue):
    """Pools on each GPU and each node of the scenario's topology: ({gpu: [pool id]}, {node: [pool id]})."""
    from twin.spec.scenario import Scenario  # a spec + catalogue is all build_topology reads
    from twin.spec.topology import build_topology

    topo = build_topology(Scenario(spec=spec, catalogue=cat, text="", sha256=""))
    on_gpu: dict[int, list[int]] = {}
    for r in topo.replicas:
        for gid in r.gpu_ids:
            on_gpu.setdefault(gid, []).append(r.pool_id)
    on_node = {nd: list(pools) for nd, pools in enumerate(topo.node_pools) if pools}
    return on_gpu, on_node, topo.gpus_per_node


def _split_problems(spec: ScenarioSpec, cat: Catalogue) -> list[str]:
    """Memory shares per GPU, cores and RAM per node, each over-subscription once with its sum."""
    node = cat.node(spec.topology.node_type)
    gpu, cpu = cat.gpu(node.gpu), cat.cpu(node.cpu)
    on_gpu, on_node, g = _tenants(spec, cat)
    seen: set[str] = set()
    problems: list[str] = []
    for gid, pools in sorted(on_gpu.items()):
        if len(pools) < 2:
            continue
        label = f"GPU {gid % g} of a {node.name} ({gpu.name}, {gpu.memory_gb:g} GB)"
        shares = {f"{spec.pools[p].name} {'gpu_memory_share' if spec.pools[p].gpu_memory_share else 'memory_utilisation'}":
                  spec.pools[p].memory_fraction for p in pools}
        msg = sharing.oversubscription(shares, gpu.memory_gb, label)
        if msg and msg not in seen:
            seen.add(msg)
            problems.append(f"pools[{max(pools)}].gpu_memory_share: {msg}; lower the shares")
    # (pool field, what the pools do with it, this node's capacity, its unit): one check per resource
    node_resources = (("cores", "pin", cpu.cores, f"cores > the {cpu.cores} of its {cpu.name}"),
                      ("ram_gb", "reserve", node.memory_gb, f"GB > its {node.memory_gb:g} GB of RAM"))
    for nd, pools in sorted(on_node.items()):
        for field, verb, capacity, beyond in node_resources:
            asked = {spec.pools[p].name: getattr(spec.pools[p], field) for p in pools if getattr(spec.pools[p], field)}
            if sum(asked.values()) <= capacity:
                continue
            msg = (f"pools[{max(pools)}].{field}: the pools on a {node.name} {verb} "
                   f"{' + '.join(f'{k} {v:g}' for k, v in asked.items())} = {sum(asked.values()):g} {beyond}")
            if msg not in seen:
                seen.add(msg)
                problems.append(msg)
    return problems


def training_problems(spec: ScenarioSpec, cat: Catalogue) -> list[str]:
    """Training jobs: names, placement, batch arithmetic, and memory beside the pools on the same
    GPUs (twin.model.training.memory_refusal), one line each with the arithmetic."""
    jobs = spec.training.jobs
    if not jobs:
        return []
    problems: list[str] = []
    t = spec.topology
    node = cat.node(t.node_type)
    gpu = cat.gpu(node.gpu)
    n_nodes = t.rows * t.racks_per_row * t.nodes_per_rack
    names = [j.name for j in jobs]
    placed = not pool_placement_problems(spec, cat)  # tenants are only known for a valid placement
    on_gpu, on_node, g = _tenants(spec, cat) if placed else ({}, {}, node.gpu_count)
    job_gb: dict[int, list[tuple[str, float]]] = {}
    for k, job in enumerate(jobs):
        path = f"training.jobs[{k}]"
        if names.count(job.name) > 1:
            problems.append(f"{path}.name: duplicate job name {job.name!r}")
        if job.model not in cat.entries.get("models", {}):
            problems.append(f"{path}.model: unknown model {job.model!r}{suggest(job.model, cat.names('models'))}")
            continue
        if job.trainer not in training.TRAINERS:
            problems.append(f"{path}.trainer: unknown trainer {job.trainer!r}; choose one of "
                            f"{', '.join(sorted(training.TRAINERS))}")
            continue
        if job.node >= n_nodes:
            problems.append(f"{path}.node: {job.node} is not a node id 0..{n_nodes - 1}")
            continue
        if placed and job.node not in on_node:
            problems.append(f"{path}.node: node {job.node} serves no pool, so nothing powers it on; "
                            f"give it a pool (mix: 0 for a training-only box)")
        idx = job.gpus if job.gpus is not None else list(range(node.gpu_count))
        if not idx or len(set(idx)) != len(idx) or max(idx) >= node.gpu_count:
            problems.append(f"{path}.gpus: give distinct GPU indices 0..{node.gpu_count - 1} of a {node.name}")
            continue
        model = cat.model(job.model)
        if job.seq_len > model.max_context:
            problems.append(f"{path}.seq_len: {job.seq_len} exceeds {job.model}'s context of {model.max_context}")
        if job.batch % (job.micro_batch * len(idx)):
            problems.append(f"{path}.batch: {job.batch} is not a multiple of micro_batch {job.micro_batch} x "
                            f"{len(idx)} GPUs = {job.micro_batch * len(idx)} sequences per micro-step")
        s = training.setup_for_job(job, cat, node)
        mem = training.training_memory(s)
        for i in idx:
            gid = job.node * g + i
            used = sum(spec.pools[p].memory_fraction for p in on_gpu.get(gid, [])) * gpu.memory_gb
            job_gb.setdefault(gid, []).append((job.name, mem.total_gb))
            free = gpu.memory_gb - used - sum(gb for _, gb in job_gb[gid][:-1])
            msg = training.memory_refusal(s, free, path)
            if msg:
                if used >= 0.05 or len(job_gb[gid]) > 1:  # say who else holds the GPU's memory
                    msg += (f" (GPU {i} keeps {gpu.memory_gb - free:.1f} GB for "
                            f"{', '.join([spec.pools[p].name for p in on_gpu.get(gid, [])] + [n for n, _ in job_gb[gid][:-1]])})")
                problems.append(msg)
                break
        if mem.host_optimizer_gb:
            ram = sum(spec.pools[p].ram_gb or 0.0 for p in on_node.get(job.node, []))
            if mem.host_optimizer_gb + ram > node.memory_gb:
                problems.append(f"{path}.optimizer_offload: {mem.host_optimizer_gb:.1f} GB of optimizer states + "
                                f"{ram:g} GB reserved by pools > the {node.memory_gb:g} GB of RAM of a {node.name}")
    return problems

