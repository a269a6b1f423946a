"""The run command end to end through Typer's CliRunner."""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from twin.cli.main import app

TINY = Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml"
runner = CliRunner()


def test_run_writes_a_run_directory_and_prints_the_summary(tmp_path):
    out = tmp_path / "tiny"
    result = runner.invoke(app, ["run", str(TINY), "-o", str(out), "--no-stage", "-q"])
    assert result.exit_code == 0, result.output
    for word in ("requests arrived", "TTFT p50", "peak IT (wall) power", "PUE", "throttled GPU-seconds"):
        assert word in result.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["scenario"]["name"] == "tiny" and man["scenario"]["seed"] == 7
    assert len(man["scenario"]["sha256"]) == 64
    assert man["tables"]["gpus"] == 120 * 12  # 600 s / 5 s samples x 12 GPUs
    assert "name: tiny" in (out / "scenario.yaml").read_text()  # the resolved scenario (tests/test_resolved_scenario.py)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp dirs left behind"
    again = runner.invoke(app, ["run", str(TINY), "-o", str(out), "--no-stage", "-q"])
    assert again.exit_code == 2 and "already exists" in again.output
    assert "or -o to choose another directory" in " ".join(again.output.split())   # twin run has -o: it says so
    forced = runner.invoke(app, ["run", str(TINY), "-o", str(out), "--no-stage", "-q", "--force", "--seed", "3"])
    assert forced.exit_code == 0
    assert json.loads((out / "manifest.json").read_text())["scenario"]["seed"] == 3


def test_catalogue_list_and_show():
    result = runner.invoke(app, ["catalogue", "list", "gpus"])
    assert result.exit_code == 0 and "rtx-pro-4500-blackwell" in result.output
    show = runner.invoke(app, ["catalogue", "show", "rtx-pro-4500-blackwell"])
    assert show.exit_code == 0 and "memory_bandwidth_gb_s: 896" in show.output
    bad = runner.invoke(app, ["catalogue", "show", "rtx-pro-4500"])
    assert bad.exit_code == 2 and "did you mean" in bad.output


def test_set_overrides_a_field_and_bad_sets_exit_2(tmp_path):
    out = tmp_path / "tiny"
    result = runner.invoke(app, ["run", str(TINY), "-o", str(out), "--no-stage", "-q",
                                 "--set", "simulation.duration_s=120", "--set", "scheduler.policy=spread"])
    assert result.exit_code == 0, result.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["simulation"]["duration_s"] == 120 and man["tables"]["facility"] == 24
    typo = runner.invoke(app, ["validate", str(TINY), "--set", "scheduler.polcy=spread"])
    assert typo.exit_code == 2 and "scheduler.polcy: unknown field (did you mean 'policy'?)" in typo.output
    malformed = runner.invoke(app, ["validate", str(TINY), "--set", "scheduler"])
    assert malformed.exit_code == 2 and "expected FIELD=VALUE" in malformed.output


def test_set_accepts_the_bracket_spelling_of_error_messages_and_bad_stage_spacing_fails_first(tmp_path):
    bracket = runner.invoke(app, ["validate", str(TINY), "--set", "pools[0].model=llama-3.3-70B"])
    assert bracket.exit_code == 2
    assert "pools[0].model: unknown model 'llama-3.3-70B' (did you mean 'llama-3.3-70b'?)" in bracket.output
    for bad in ("-1", "0"):
        r = runner.invoke(app, ["run", str(TINY), "-o", str(tmp_path / "x"), "-q", "--stage-sample-s", bad])
        assert r.exit_code == 2 and "--stage-sample-s: must be a positive number of seconds" in r.output
        assert not (tmp_path / "x").exists()
