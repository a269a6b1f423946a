"""The Python entry points a notebook uses: ``twin.simulate`` (and ``twin.load_run``).

    >>> import twin
    >>> result = twin.simulate("scenarios/tiny.yaml", overrides={"scheduler.policy": "spread"})
    >>> result.summary["latency_p99_s"]
    >>> twin.write_run(result, "runs/tiny-spread")          # a run directory, as `twin run` writes
    >>> twin.load_run("runs/tiny-spread").table("facility").to_pandas()   # pip install 'twin[pandas]'

Imported lazily by ``twin/__init__.py`` so ``import twin`` stays light.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from twin.spec.scenario import Scenario


def simulate(scenario: str | Path | Scenario, *, seed: int | None = None,
             overrides: Mapping[str, Any] | None = None,
             progress: Callable[[float, dict], None] | None = None):
    """Simulate `scenario` in memory and return the SimResult (columns + ``summary``; nothing is
    written). `scenario` is a YAML path or a loaded Scenario; `seed` and `overrides` (dotted
    fields, ``{"pools.0.nodes": 8}``) act like ``twin run --seed/--set``. Raises
    twin.errors.SpecError listing every problem when the scenario is invalid."""
    from twin.model.validate import load_scenario
    from twin.sim.engine import simulate as run_engine

    if isinstance(scenario, Scenario):
        if seed is not None or overrides:
            raise ValueError("seed/overrides apply when loading; pass the scenario's path instead")
        sc = scenario
    else:
        sc = load_scenario(scenario, seed=seed, overrides=dict(overrides or {}))
    return run_engine(sc, progress=progress)


def write_run(result, run_dir: str | Path, *, force: bool = False):
    """Write a SimResult as a run directory (telemetry, manifest, resolved scenario; no stage)
    and return it opened (twin.load_run)."""
    from twin.telemetry.read import load_run
    from twin.telemetry.write import write_run as write

    write(result, Path(run_dir), force=force)
    return load_run(run_dir)
