"""The default surge simulated once per test session and shared by the story and Blender tests.

Session fixtures live in conftest.py, which this branch does not own, so the run is cached under
the session's base temporary directory instead: the first module that asks simulates it (~15 s),
later ones reuse it.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def surge_run(tmp_path_factory) -> Path:
    """A run directory of scenarios/surge.yaml with its default stage."""
    run = tmp_path_factory.getbasetemp() / "shared-surge" / "surge"
    if not (run / "stage" / "refinery.usda").is_file():
        from scenes import build_stage
        from twin.model.validate import load_scenario
        from twin.sim.engine import simulate
        from twin.telemetry.write import write_run
        write_run(simulate(load_scenario(ROOT / "scenarios" / "surge.yaml")), run, force=True,
                  stage=lambda tmp: build_stage(tmp))       # as `twin run` does: manifest["stage"] recorded
    return run
