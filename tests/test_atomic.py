"""Run directories appear whole or not at all; --force replaces only runs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli.main import app
from twin.telemetry.write import write_run
from twin.telemetry.atomic import AtomicDir, RunExistsError

TINY = Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml"
runner = CliRunner()


def leftovers(parent: Path) -> list[str]:
    """Hidden temporaries AtomicDir would leave if it failed to clean up."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError, OSError])
def test_an_interruption_while_writing_leaves_nothing(tmp_path, tiny_result, exc):
    def stage(tmp: Path) -> dict:
        assert (tmp / "telemetry" / "gpus.parquet").exists(), "telemetry is already written at this point"
        raise exc("Ctrl-C / crash / disk full while the stage is being written")

    with pytest.raises(exc):
        write_run(tiny_result, tmp_path / "run", stage=stage)
    assert not (tmp_path / "run").exists()
    assert leftovers(tmp_path) == []


def test_an_interrupted_forced_rerun_keeps_the_previous_run(tmp_path, tiny_result):
    write_run(tiny_result, tmp_path / "run")
    before = (tmp_path / "run" / "manifest.json").read_text()

    def stage(tmp: Path) -> dict:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_run(tiny_result, tmp_path / "run", force=True, stage=stage)
    assert (tmp_path / "run" / "manifest.json").read_text() == before
    assert leftovers(tmp_path) == []


def test_an_existing_run_needs_force(tmp_path, tiny_result):
    write_run(tiny_result, tmp_path / "run")
    with pytest.raises(RunExistsError, match="pass --force"):
        write_run(tiny_result, tmp_path / "run")
    write_run(tiny_result, tmp_path / "run", force=True)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["scenario"]["name"] == "tiny"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("make", ["file", "folder"])
def test_force_never_replaces_something_that_is_not_a_run(tmp_path, make, monkeypatch):
    target = tmp_path / "precious"
    if make == "file":
        target.write_text("thesis")
    else:
        target.mkdir()
        (target / "thesis.tex").write_text("thesis")
    with pytest.raises(RunExistsError, match="not a twin run directory"):
        AtomicDir(target, force=True, kind="run")
    import twin.sim.engine

    def no_simulation(*args, **kwargs):
        raise AssertionError("the refusal must come before the simulation")
    monkeypatch.setattr(twin.sim.engine, "simulate", no_simulation)
    result = runner.invoke(app, ["run", str(TINY), "-o", str(target), "--no-stage", "-q", "--force"])
    assert result.exit_code == 2 and "refusing to replace" in result.output
    assert "Traceback" not in result.output
    assert (target.read_text() if make == "file" else (target / "thesis.tex").read_text()) == "thesis"
    assert leftovers(tmp_path) == []


def test_force_may_fill_an_empty_directory(tmp_path, tiny_result):
    (tmp_path / "run").mkdir()
    write_run(tiny_result, tmp_path / "run", force=True)
    assert (tmp_path / "run" / "manifest.json").is_file()


def test_an_unwritable_output_is_a_one_line_error(tmp_path):
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, ["run", str(TINY), "-o", str(tmp_path / "file" / "run"), "--no-stage", "-q"])
    assert result.exit_code == 2, result.output
    assert "cannot write" in result.output and "Traceback" not in result.output
