"""Shared fixtures: a real tiny run (engine end to end) and scenario text helpers."""
from __future__ import annotations

import signal
from pathlib import Path

import pytest

# A shell without job control starts background commands (`pytest &`, some CI runners) with SIGINT
# ignored, and an ignored signal stays ignored across exec: the Ctrl-C tests would then see twin
# run to completion. Give this process and the `twin` processes it starts Python's default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


@pytest.fixture(scope="session")
def tiny_result():
    from twin.sim.engine import simulate
    from twin.model.validate import load_scenario
    return simulate(load_scenario(SCENARIOS / "tiny.yaml"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_result) -> Path:
    """The tiny scenario written as a run directory (telemetry + manifest, no stage)."""
    from twin.telemetry.write import write_run
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    write_run(tiny_result, run_dir)
    return run_dir
