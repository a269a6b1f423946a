"""The run directory records the scenario that ran (issue 16): --set and --seed applied, defaults
filled in, overrides listed in the manifest; re-running the run's scenario.yaml reproduces its
Parquet byte for byte."""
from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from twin.cli.main import app

TINY = Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml"
runner = CliRunner()


def _run(*args: str) -> None:
    result = runner.invoke(app, ["run", *args, "--no-stage", "-q"])
    assert result.exit_code == 0, result.output


def test_rerunning_a_runs_scenario_reproduces_its_parquet_byte_for_byte(tmp_path):
    first, again = tmp_path / "spread99", tmp_path / "again"
    _run(str(TINY), "-o", str(first), "--set", "scheduler.policy=spread", "--set", "workload.base_rate_per_s=0.5",
         "--seed", "99")
    resolved = yaml.safe_load((first / "scenario.yaml").read_text())
    assert resolved["scheduler"]["policy"] == "spread"     # the override, not tiny.yaml's cascade
    assert resolved["simulation"]["seed"] == 99            # the --seed, not tiny.yaml's 7
    assert resolved["workload"]["base_rate_per_s"] == 0.5
    assert resolved["fabric"]["spines"] == 2               # a default tiny.yaml never mentions
    man = json.loads((first / "manifest.json").read_text())
    assert man["scenario"]["overrides"] == {"scheduler.policy": "spread", "workload.base_rate_per_s": 0.5,
                                            "simulation.seed": 99}
    assert man["scenario"]["seed"] == 99 and man["scenario"]["source"] == str(TINY)

    _run(str(first / "scenario.yaml"), "-o", str(again))
    names = sorted(p.name for p in (first / "telemetry").iterdir())
    assert names == sorted(p.name for p in (again / "telemetry").iterdir()) and "gpus.parquet" in names
    for name in names:
        assert (first / "telemetry" / name).read_bytes() == (again / "telemetry" / name).read_bytes(), name
    second = json.loads((again / "manifest.json").read_text())
    assert second["scenario"]["sha256"] == man["scenario"]["sha256"]
    assert second["summary"] == man["summary"]


def test_the_override_changes_the_run(tmp_path):
    """Guard for the test above: the overrides really change the telemetry, so equality means something."""
    _run(str(TINY), "-o", str(tmp_path / "plain"))
    _run(str(TINY), "-o", str(tmp_path / "seed99"), "--seed", "99")
    a = (tmp_path / "plain" / "telemetry" / "requests.parquet").read_bytes()
    b = (tmp_path / "seed99" / "telemetry" / "requests.parquet").read_bytes()
    assert a != b
