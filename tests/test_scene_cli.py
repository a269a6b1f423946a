"""`twin run` (with stage), `twin scene` and `twin render` through Typer's CliRunner."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli.main import app
from twin.telemetry.outputs import MARKER

pytest.importorskip("pxr")
TINY = Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml"
runner = CliRunner()


def test_run_writes_the_stage_and_records_it(tmp_path):
    out = tmp_path / "tiny"
    result = runner.invoke(app, ["run", str(TINY), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    man = json.loads((out / "manifest.json").read_text())
    st = man["stage"]
    assert st["root"] == "stage/refinery.usda" and st["telemetry"] == "stage/telemetry.usdc"
    assert st["frames"] == 120 and st["prims"]["nodes"] == 4 and st["samples"] > 0
    for rel in [st["root"], st["telemetry"], *st["previews"]]:
        assert (out / rel).is_file(), rel
    assert (out / "stage" / "assets" / "node.usda").is_file()   # the stage opens without the repo
    assert [Path(p).name for p in st["previews"]] == ["colour_legend.png", "floor_heatmap.gif"]
    assert st["colour"]["twin:colour_by"] == "gpu_temp" and set(st["beats"]) >= {"idle", "peak"}


def test_stage_paths_are_relative_to_the_run_when_run_dir_is_relative(tmp_path, monkeypatch, tiny_run):
    # the default `-o runs/<name>` is relative, and the run is built in a temporary sibling that is
    # renamed at the end: every path the manifest records must be relative to the final directory
    run = tmp_path / "tiny"
    shutil.copytree(tiny_run, run)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["scene", "tiny", "--force"])
    assert result.exit_code == 0, result.output
    st = json.loads((run / "manifest.json").read_text())["stage"]
    assert st["previews"] == ["stage/previews/colour_legend.png", "stage/previews/floor_heatmap.gif"]
    for rel in [st["root"], st["telemetry"], st["data"], *st["previews"]]:
        assert not Path(rel).is_absolute() and (run / rel).is_file(), rel


def test_scene_regenerates_atomically_with_force(tmp_path, tiny_run):
    run = tmp_path / "tiny"
    shutil.copytree(tiny_run, run)
    first = runner.invoke(app, ["scene", str(run), "--no-previews"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["scene", str(run)])
    assert again.exit_code == 2 and "already exists" in again.output and "--force" in again.output
    assert "choose another directory" not in again.output   # twin scene has no -o: the refusal offers none
    forced = runner.invoke(app, ["scene", str(run), "--force", "--stage-sample-s", "20"])
    assert forced.exit_code == 0, forced.output
    man = json.loads((run / "manifest.json").read_text())
    # 600 s at 20-s frames = 30 frames; paths relative to the run, no temp dirs left behind
    assert man["stage"]["frames"] == 30 and man["stage"]["root"] == "stage/refinery.usda"
    assert not [p for p in run.iterdir() if p.name.startswith(".") and p.name != MARKER]  # the marker is no temporary


@pytest.mark.parametrize("args, message", [
    (["scene", "{missing}"], "no such run directory"),
    (["scene", "{tmp}"], "not a twin run directory"),
    (["scene", "{run}", "--force", "--stage-sample-s", "0"], "--stage-sample-s: must be a positive"),
    (["scene", "{run}", "--force", "--colour-by", "rgb"], "--colour-by: unknown quantity 'rgb'"),
    (["scene", "{run}", "--force", "--colour-range", "90:20"], "--colour-range: need finite LO < HI"),
    (["scene", "{run}", "--force", "--window", "later"], "--window: expected START:END"),
    (["scene", "{run}", "--force", "--window", "9000:9100", "--realtime"], "outside the run's samples"),
    (["render", "{run}", "-o", "{tmp}/x.jpg"], "must be a .png"),
    (["render", "{missing}"], "no stage"),
    (["showreel", "{run}", "-o", "{tmp}/reel", "--width", "161"], "must be even"),
    (["showreel", "{missing}", "-o", "{tmp}/reel"], "no such run directory"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, tiny_run, args, message):
    subs = {"missing": str(tmp_path / "nope"), "run": str(tiny_run), "tmp": str(tmp_path)}
    result = runner.invoke(app, [a.format(**subs) for a in args])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_scene_colour_mapping_and_realtime_window(tmp_path, tiny_run):
    run = tmp_path / "tiny"
    shutil.copytree(tiny_run, run)
    res = runner.invoke(app, ["scene", str(run), "--no-previews", "--colour-by", "exhaust", "--colour-range", "physical",
                              "--window", "300:310", "--realtime"])
    assert res.exit_code == 0, res.output
    assert "colour exhaust 20..45 (physical)" in res.output
    st = json.loads((run / "manifest.json").read_text())["stage"]
    # 10 simulated seconds at 24 frames per second: 241 frames, time code = 24 x seconds
    assert st["frames"] == 241 and st["realtime"] and st["start_time_code"] == 7200.0


def test_render_without_bpy_says_how_to_get_it(tiny_run, tmp_path, monkeypatch):
    run = tmp_path / "tiny"
    shutil.copytree(tiny_run, run)
    assert runner.invoke(app, ["scene", str(run), "--no-previews"]).exit_code == 0
    monkeypatch.setenv("TWIN_BPY_PYTHON", str(tmp_path / "no-python-here"))
    for cmd in (["render", str(run), "-o", str(tmp_path / "f.png")], ["showreel", str(run), "-o", str(tmp_path / "r")]):
        res = runner.invoke(app, cmd)
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1, res.output
        assert "bpy (Blender as a Python module) not found" in lines[0] and "pip install --no-deps bpy==5.0.1" in lines[0]
    assert not (tmp_path / "r").exists() and not (tmp_path / "f.png").exists()
