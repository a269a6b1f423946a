"""The notebook path: `import twin` stays light, twin.simulate, run.tables, pandas."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import twin

TINY = Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml"


def test_import_twin_is_light():
    code = ("import sys, twin; heavy = [m for m in ('pyarrow', 'duckdb', 'simpy', 'numpy', 'pandas') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]"


def test_simulate_write_and_read_back_as_pandas(tmp_path, tiny_result):
    result = twin.simulate(TINY)
    assert result.summary == tiny_result.summary  # same scenario and seed, same numbers
    run = twin.write_run(result, tmp_path / "tiny")
    assert isinstance(run.tables, list) and "facility" in run.tables  # a property, like run.name
    frame = run.table("facility", columns=["time_s", "pue"]).to_pandas()
    assert list(frame.columns) == ["time_s", "pue"] and len(frame) == 120
    assert frame["time_s"].iloc[-1] == 600.0


def test_simulate_takes_overrides_like_the_cli():
    spread = twin.simulate(TINY, seed=3, overrides={"simulation.duration_s": 60})
    assert spread.scenario.seed == 3 and spread.scenario.spec.simulation.duration_s == 60
    from twin.errors import SpecError
    with pytest.raises(SpecError, match="scheduler.polcy: unknown field"):
        twin.simulate(TINY, overrides={"scheduler.polcy": "spread"})
