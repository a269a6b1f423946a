"""Scenario sweeps: a grid, a uniform random sample, or a Sobol / Latin hypercube design over
scenario fields, run in parallel on Dask.

A sweep spec (YAML, see docs/planning.md and scenarios/sweeps/) names a base scenario and axes,
each a dotted scenario field (``scheduler.policy``, ``pools.0.nodes``) with a list of values or,
in random mode, a ``{min, max}`` range. Every variant is ``load_scenario(base, overrides=...)``
+ ``simulate`` + the run summary, executed in a worker process (no telemetry written, no stage).

This is the only module that imports dask. Dask beats a hand-written process pool here because
the same code runs on a local cluster or on an existing multi-machine one (``--scheduler
tls://host:8786``), retries work lost with a dead worker, and reports completions as they
arrive.

Trust (docs/safety.md): Dask returns results as pickles, and unpickling runs code, so the
scheduler and every worker behind it can run code in this process. Connect only to a cluster you
control; over a network use ``tls://`` with certificates (Dask's Security: mutual TLS, so only
holders of a certificate signed by your CA can join), see :func:`scheduler_security`.

Determinism: a variant's row depends only on the base scenario, its overrides (incl. the seed)
and the catalogue, never on which worker ran it or in which order; rows are written in variant
order and wall times go to sweep.json, not to the table, so sweep.parquet is byte-identical for
the same spec.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Union, get_args, get_origin

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from twin.errors import SpecError, ToolError, format_validation_error, suggest
from twin.spec.base import NumbersAreNumbers
from twin.spec.scenario import MAX_SCENARIO_BYTES, PlainName
from twin.spec.safe_yaml import read_input

MAX_VARIANTS = 10_000
SWEEP_KIND = "sweep"  # the marker kind (twin.telemetry.outputs) of a sweep directory
# tcp://host:port or tls://host:port; host a DNS name, an IPv4 address or [IPv6]
_SCHEDULER = re.compile(r"^(?P<scheme>[a-z]+)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
                        r":(?P<port>[0-9]{1,5})$")


class _Spec(NumbersAreNumbers):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class RangeAxis(_Spec):
    """A uniform range for random sampling; `integer` draws whole numbers in [min, max]."""
    min: Annotated[float, Field(ge=-1e15, le=1e15)]  # within int64 and float precision for integer draws
    max: Annotated[float, Field(ge=-1e15, le=1e15)]
    integer: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> "RangeAxis":
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) must not exceed max ({self.max:g})")
        if self.integer and math.ceil(self.min) > math.floor(self.max):
            raise ValueError(f"no whole number lies in [{self.min:g}, {self.max:g}]")
        return self


class PlotSpec(_Spec):
    """Summary keys for the comparison plot (one point per variant)."""
    x: str = "total_cost_usd"
    y: str = "latency_p99_s"


class SweepSpec(_Spec):
    name: PlainName  # a plain file name: runs/sweeps/<name>
    description: str = ""
    base: str  # scenario YAML, relative to the sweep file
    # grid: every combination; random: independent uniform draws; sobol / lhs: a scrambled Sobol
    # sequence or a Latin hypercube over all axes at once (scipy.stats.qmc), which covers the space
    # evenly with far fewer variants than a grid
    mode: Literal["grid", "random", "sobol", "lhs"] = "grid"
    samples: Annotated[int, Field(ge=1, le=MAX_VARIANTS)] | None = None  # sampled modes: how many variants
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0  # sampled modes: sampling seed (numpy refuses negatives)
    axes: Annotated[dict[str, Union[Annotated[list[Any], Field(min_length=1)], RangeAxis]], Field(min_length=1)]
    plot: PlotSpec = PlotSpec()

    @model_validator(mode="after")
    def _mode(self) -> "SweepSpec":
        if self.mode != "grid" and self.samples is None:
            raise ValueError(f"mode {self.mode} needs samples (how many variants to draw)")
        if self.mode == "sobol" and self.samples and self.samples & (self.samples - 1):
            raise ValueError(f"mode sobol needs samples a power of 2 (Sobol points balance only then), "
                             f"got {self.samples}; try {1 << max(0, self.samples.bit_length() - 1)} or "
                             f"{1 << self.samples.bit_length()}")
        if self.mode == "grid":
            if self.samples is not None:
                raise ValueError("samples applies to the sampled modes (random, sobol, lhs); a grid runs every combination")
            ranges = [k for k, v in self.axes.items() if isinstance(v, RangeAxis)]
            if ranges:
                raise ValueError(f"axes.{ranges[0]}: a grid needs a list of values ({{min, max}} is for the "
                                 f"sampled modes random, sobol and lhs)")
            n = math.prod(len(v) for v in self.axes.values())
            if n > MAX_VARIANTS:
                raise ValueError(f"the grid has {n:,} variants (more than {MAX_VARIANTS:,}); use mode sobol, lhs or random")
        return self


@dataclass(frozen=True)
class Variant:
    id: str                       # "v000", in plan order
    overrides: dict[str, Any]     # dotted scenario field -> value


@dataclass(frozen=True)
class SweepPlan:
    spec: SweepSpec
    base_path: Path
    variants: tuple[Variant, ...]


@dataclass
class SweepResult:
    plan: SweepPlan
    rows: list[dict[str, Any]]            # in variant order
    wall_time_s: dict[str, float]         # per variant (not in the table: it is not deterministic)
    total_wall_time_s: float = 0.0
    executor: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "ok"]


# --- planning -------------------------------------------------------------------------------

def _model_of(annotation: Any) -> Any:
    """The pydantic model or list-of-model inside an annotation (Optional/Annotated unwrapped)."""
    for cand in (annotation, *get_args(annotation)):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
        if get_origin(cand) is list:
            return cand
    return None


def check_field_path(dotted: str) -> str | None:
    """None if `dotted` names a scenario field (digits index lists), else the problem."""
    from twin.spec.scenario import ScenarioSpec

    model: Any = ScenarioSpec
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if get_origin(model) is list:
            if not part.isdigit():
                return f"{'.'.join(parts[:i])} is a list; index it with a number, e.g. {'.'.join(parts[:i])}.0"
            (model,) = get_args(model)
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return f"{'.'.join(parts[:i])} is a value, not a section"
        if part not in model.model_fields:
            where = ".".join(parts[:i]) or "the scenario"
            return f"unknown field {part!r} in {where}{suggest(part, model.model_fields)}"
        model = _model_of(model.model_fields[part].annotation) or model.model_fields[part].annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        # a whole-section value would reset the base scenario's other fields in it to defaults
        return "names a whole section; sweep one of its fields"
    return None


def _draw(axis: list[Any] | RangeAxis, rng: np.random.Generator) -> Any:
    if isinstance(axis, RangeAxis):
        if axis.integer:
            return int(rng.integers(math.ceil(axis.min), math.floor(axis.max), endpoint=True))
        return float(rng.uniform(axis.min, axis.max))
    return axis[int(rng.integers(len(axis)))]


def _from_unit(axis: list[Any] | RangeAxis, u: float) -> Any:
    """Map a unit-interval coordinate u in [0, 1) onto an axis: a range linearly (integers in equal
    bins, so each whole number is as likely), a list by equal bins."""
    if isinstance(axis, RangeAxis):
        if axis.integer:
            lo, hi = math.ceil(axis.min), math.floor(axis.max)
            return int(min(hi, lo + math.floor(u * (hi - lo + 1))))
        return float(axis.min + u * (axis.max - axis.min))
    return axis[min(len(axis) - 1, int(math.floor(u * len(axis))))]


def _qmc_points(mode: str, dims: int, n: int, seed: int) -> np.ndarray:
    """n points in [0, 1)^dims from a scrambled Sobol sequence or a Latin hypercube (seeded)."""
    from scipy.stats import qmc

    if mode == "sobol":
        return qmc.Sobol(dims, scramble=True, rng=seed).random_base2(int(math.log2(n)))
    return qmc.LatinHypercube(dims, rng=seed).random(n)


def plan_sweep(path: Path | str) -> SweepPlan:
    """Read and validate a sweep spec and expand its variants. Raises SpecError (field paths)."""
    from twin.model.validate import load_scenario
    from twin.spec.scenario import parse_yaml

    path = Path(path)
    text = read_input(path, MAX_SCENARIO_BYTES, "sweep file")  # type and size before reading
    try:
        spec = SweepSpec.model_validate(parse_yaml(text, str(path)))
    except ValidationError as exc:
        fields = {"": list(SweepSpec.model_fields), "plot": list(PlotSpec.model_fields)}
        raise SpecError(format_validation_error(exc, fields)) from None
    problems = [f"axes.{k}: {p}" for k in spec.axes if (p := check_field_path(k))]
    base = (path.parent / spec.base).resolve() if not Path(spec.base).is_absolute() else Path(spec.base)
    if not base.is_file():
        problems.append(f"base: no such scenario file {str(base)!r}")
    if problems:
        raise SpecError(problems)
    try:
        load_scenario(base)  # the base itself must be valid; variants may still fail individually
    except SpecError as exc:
        raise SpecError([f"base ({base}): {p}" for p in exc.problems]) from None
    keys = list(spec.axes)
    if spec.mode == "grid":
        combos = [dict(zip(keys, values)) for values in itertools.product(*spec.axes.values())]
    elif spec.mode == "random":
        rng = np.random.default_rng(spec.seed)
        combos = [{k: _draw(spec.axes[k], rng) for k in keys} for _ in range(spec.samples or 0)]
    else:
        points = _qmc_points(spec.mode, len(keys), spec.samples or 0, spec.seed)
        combos = [{k: _from_unit(spec.axes[k], float(u)) for k, u in zip(keys, row)} for row in points]
    width = max(3, len(str(len(combos) - 1)))
    variants = tuple(Variant(f"v{i:0{width}d}", c) for i, c in enumerate(combos))
    return SweepPlan(spec=spec, base_path=base, variants=variants)


# --- running --------------------------------------------------------------------------------

def _flatten(summary: dict[str, Any]) -> dict[str, Any]:
    """Nested summary dicts (drop_reasons) become 'drop_reasons.<key>' columns."""
    out: dict[str, Any] = {}
    for k, v in summary.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def run_variant(base_path: str, overrides: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Simulate one variant and return (row fields, wall time s). Never raises: failures are rows.

    Runs in a Dask worker process (or in-process for serial sweeps); module-level so it pickles
    by reference.
    """
    from twin.model.validate import load_scenario
    from twin.sim.engine import simulate

    t0 = time.perf_counter()
    try:
        sc = load_scenario(base_path, overrides=overrides)
        summary = simulate(sc).summary
    except SpecError as exc:
        return {"status": "invalid", "error": "; ".join(exc.problems)}, time.perf_counter() - t0
    except Exception as exc:  # a bug or resource error in one variant must not sink the sweep
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}, time.perf_counter() - t0
    return {"status": "ok", "error": "", **_flatten(summary)}, time.perf_counter() - t0


Progress = Callable[[int, int, int], None]  # (done, total, failed)


def scheduler_security(scheduler: str | None, ca_file: Path | None = None, cert: Path | None = None,
                       key: Path | None = None) -> Any:
    """Check a --scheduler address and build the Dask Security for it (None for plain tcp://).

    The address must be tcp://host:port or tls://host:port. tls:// needs a CA file and a client
    certificate, given here or in the Dask config (distributed.comm.tls.ca-file,
    distributed.comm.tls.client.cert/key); the connection then requires encryption and mutual
    authentication. Raises ToolError with one line naming the option.
    """
    if scheduler is None:
        if any(x is not None for x in (ca_file, cert, key)):
            raise ToolError("--tls-ca-file/--tls-cert/--tls-key apply to --scheduler tls://host:port only")
        return None
    m = _SCHEDULER.match(scheduler.strip())
    if not m or m["scheme"] not in ("tcp", "tls") or not 1 <= int(m["port"]) <= 65535:
        raise ToolError(f"--scheduler {scheduler!r}: expected tcp://host:port or tls://host:port "
                        f"(e.g. tls://10.0.0.5:8786), the address `dask scheduler` prints")
    files = {"--tls-ca-file": ca_file, "--tls-cert": cert, "--tls-key": key}
    for option, f in files.items():
        if f is not None and not Path(f).is_file():
            raise ToolError(f"{option} {f}: no such file")
    if m["scheme"] == "tcp":
        if any(f is not None for f in files.values()):
            raise ToolError(f"--scheduler {scheduler}: TLS certificates need a tls:// address")
        return None
    from distributed.security import Security

    kwargs = {k: str(v) for k, v in (("tls_ca_file", ca_file), ("tls_client_cert", cert),
                                     ("tls_client_key", key)) if v is not None}
    security = Security(require_encryption=True, **kwargs)  # unset fields come from the Dask config
    if not security.tls_ca_file or not security.tls_client_cert:
        raise ToolError(f"--scheduler {scheduler}: tls:// needs --tls-ca-file and --tls-cert (or "
                        f"distributed.comm.tls.ca-file and .client.cert in the Dask config)")
    return security


def run_sweep(plan: SweepPlan, *, workers: int = 2, scheduler: str | None = None, security: Any = None,
              progress: Progress | None = None) -> SweepResult:
    """Run every variant: serially in-process (workers=0), on a local Dask cluster of `workers`
    single-threaded processes, or on the existing cluster at `scheduler` (tcp:// or tls://,
    `security` from :func:`scheduler_security`). That cluster is trusted: see the module docstring.

    A variant that fails validation or raises becomes a row with status invalid/failed; a worker
    lost mid-run becomes status failed. Raises ToolError when `scheduler` is malformed, cannot be
    reached or refuses the connection.
    """
    t0 = time.perf_counter()
    n = len(plan.variants)
    results: list[tuple[dict[str, Any], float] | None] = [None] * n
    failed = 0

    def record(i: int, res: tuple[dict[str, Any], float]) -> None:
        nonlocal failed
        results[i] = res
        failed += res[0]["status"] != "ok"
        if progress:
            progress(sum(r is not None for r in results), n, failed)

    base = str(plan.base_path.resolve())
    if scheduler is None and workers <= 0:
        executor = {"kind": "serial"}
        for i, v in enumerate(plan.variants):
            record(i, run_variant(base, v.overrides))
    else:
        from dask.distributed import Client, LocalCluster, as_completed

        with contextlib.ExitStack() as stack:
            if scheduler:
                if security is None:
                    security = scheduler_security(scheduler)  # checks the address; None for tcp://
                try:
                    client = stack.enter_context(Client(scheduler, timeout="10s", security=security))
                except (OSError, TimeoutError, ValueError) as exc:  # refused, TLS handshake, bad config
                    raise ToolError(f"--scheduler {scheduler}: cannot connect ({str(exc).splitlines()[0]})") from None
                executor = {"kind": "dask", "scheduler": scheduler,
                            "workers": len(client.scheduler_info().get("workers", {}))}
            else:
                cluster = stack.enter_context(LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    silence_logs=logging.ERROR))
                client = stack.enter_context(Client(cluster))
                executor = {"kind": "dask-local", "workers": workers}
            futures = {client.submit(run_variant, base, v.overrides, pure=False, retries=1): i
                       for i, v in enumerate(plan.variants)}
            for fut in as_completed(futures):
                try:
                    res = fut.result()
                except Exception as exc:  # worker died twice, cancelled, ...
                    res = ({"status": "failed", "error": f"{type(exc).__name__}: {exc}"}, 0.0)
                record(futures[fut], res)
    rows, walls = [], {}
    for v, res in zip(plan.variants, results):
        fields, wall = res  # type: ignore[misc]
        rows.append({"variant": v.id, **v.overrides, **fields})
        walls[v.id] = round(wall, 3)
    return SweepResult(plan=plan, rows=rows, wall_time_s=walls, total_wall_time_s=time.perf_counter() - t0,
                       executor=executor)


# --- output ---------------------------------------------------------------------------------

def to_table(result: SweepResult) -> pa.Table:
    """One row per variant: variant, axis columns, status, error, then summary keys (union)."""
    rows = result.rows
    names: list[str] = []
    for r in rows:
        names.extend(k for k in r if k not in names)
    cols = {}
    for name in names:
        values = [r.get(name) for r in rows]
        if name.startswith("drop_reasons."):  # a reason absent from a completed run's summary is 0 drops
            values = [0 if v is None and r["status"] == "ok" else v for v, r in zip(values, rows)]
        try:
            cols[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types on one axis, e.g. [1, "a"]
            cols[name] = pa.array([None if v is None else str(v) for v in values])
    return pa.table(cols)


def write_sweep(result: SweepResult, out_dir: Path, *, force: bool = False, lock: Any = None) -> dict[str, Any]:
    """Write sweep.parquet, sweep.json and the comparison plot into `out_dir` atomically.

    `lock`: the OutputLock on `out_dir` the caller holds (twin.telemetry.atomic), if any.
    """
    import pyarrow.parquet as pq

    from twin.telemetry.atomic import AtomicDir, write_json_atomic
    from twin.tools.plots import sweep_scatter

    spec = result.plan.spec
    table = to_table(result)
    with AtomicDir(Path(out_dir), force=force, kind=SWEEP_KIND, lock=lock) as tmp:  # --force: only a sweep twin wrote
        pq.write_table(table, tmp / "sweep.parquet", compression="zstd")
        points = [(r["variant"], r.get(spec.plot.x), r.get(spec.plot.y), r.get(next(iter(spec.axes))))
                  for r in result.rows if r["status"] == "ok"]
        points = [p for p in points if isinstance(p[1], (int, float)) and isinstance(p[2], (int, float))
                  and math.isfinite(p[1]) and math.isfinite(p[2])]
        plot_file = None
        if points:
            plot_file = "sweep.png"
            from twin.model.metrics import metric

            sweep_scatter(points, metric(spec.plot.x).axis_label, metric(spec.plot.y).axis_label,
                          next(iter(spec.axes)), f"{spec.name}: one point per variant", tmp / plot_file)
        meta = {
            "name": spec.name, "spec": spec.model_dump(mode="json"), "base": str(result.plan.base_path),
            "variants": [{"id": v.id, "overrides": v.overrides} for v in result.plan.variants],
            "failures": [{"variant": r["variant"], "status": r["status"], "error": r["error"]}
                         for r in result.failures],
            "executor": result.executor, "wall_time_s": result.wall_time_s,
            "total_wall_time_s": round(result.total_wall_time_s, 3), "plot": plot_file,
            "rows": table.num_rows,
        }
        write_json_atomic(tmp / "sweep.json", meta)
    return meta

