"""The stage's data layer (scenes/data_layer.py): the same files from a helper process as in-process,
clear errors from a failed helper, and no helper left behind, whatever happens."""
from __future__ import annotations

import pytest

pytest.importorskip("pxr")
from pxr import Usd, UsdGeom  # noqa: E402

from scenes import DATA_NAME, HELPER_MIN_NODE_ROWS, build_stage  # noqa: E402
from scenes.data_job import DataLayerJob, node_rows  # noqa: E402
from synthetic_run import make_synthetic_run  # noqa: E402
from twin.errors import ToolError  # noqa: E402


@pytest.fixture(scope="module")
def syn_run(tmp_path_factory):
    return make_synthetic_run(tmp_path_factory.mktemp("data-layer") / "syn")


def test_helper_and_in_process_write_the_same_bytes(syn_run, tmp_path):
    a = build_stage(syn_run, out_dir=tmp_path / "helper", data_helper=True)
    b = build_stage(syn_run, out_dir=tmp_path / "local", data_helper=False)
    assert (a["data_process"], b["data_process"]) == ("helper", "in-process")
    for name in ("refinery.usda", "telemetry.usdc", DATA_NAME, "previews/floor_heatmap.gif",
                 "previews/colour_legend.png"):
        assert (tmp_path / "helper" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert a["samples"] == b["samples"] == a["telemetry_samples"] + a["data_samples"]
    assert a["data_samples"] > 0 and a["telemetry_samples"] > 0


def test_the_root_composes_both_layers_and_the_numbers_live_in_data(syn_run, tmp_path):
    build_stage(syn_run, out_dir=tmp_path / "s", data_helper=True, previews=False)
    root = tmp_path / "s" / "refinery.usda"
    stage = Usd.Stage.Open(str(root))
    assert list(stage.GetRootLayer().subLayerPaths) == ["./telemetry.usdc", f"./{DATA_NAME}"]
    node = next(p for p in stage.Traverse() if p.GetName().startswith("Node_"))
    power = UsdGeom.PrimvarsAPI(node).GetPrimvar("telemetry:power_w").GetAttr()
    # the value comes from data.usdc, and the look layer carries none of the numbers
    assert power.GetNumTimeSamples() > 0
    layers = [spec.layer.identifier for spec in power.GetPropertyStack(Usd.TimeCode.Default())]
    assert len(layers) == 1 and layers[0].endswith(DATA_NAME)
    # muting data.usdc leaves the look: the shell colour still animates
    stage.MuteLayer(str(tmp_path / "s" / DATA_NAME))
    assert not UsdGeom.PrimvarsAPI(node).GetPrimvar("telemetry:power_w").GetAttr().HasAuthoredValue()
    shell = stage.GetPrimAtPath(f"{node.GetPath()}/Shell")
    assert UsdGeom.PrimvarsAPI(shell).GetPrimvar("displayColor").GetAttr().GetNumTimeSamples() > 0


def test_a_failing_helper_is_one_clear_error(tmp_path):
    job = DataLayerJob.start()
    try:
        assert job.in_helper
        job.submit(tmp_path / "no-such-run", tmp_path / "out")
        with pytest.raises(ToolError, match=r"writing the stage's data\.usdc failed: \S.*manifest\.json"):
            job.result()
    finally:
        job.close()
    assert not (tmp_path / "out").exists()


def test_a_helper_without_work_exits_quietly_and_close_waits_for_it(tmp_path):
    job = DataLayerJob.start()
    proc = job._proc
    job.close()
    assert proc.poll() is not None          # gone when close() returns
    job.close()                              # and a second close is harmless


def test_close_stops_a_helper_at_work(syn_run, tmp_path):
    job = DataLayerJob.start()
    proc = job._proc
    (tmp_path / "out").mkdir()
    job.submit(syn_run, tmp_path / "out", previews=True)
    job.close()                              # as build_stage's `finally` does on Ctrl-C
    assert proc.poll() is not None


def test_the_helper_threshold_is_read_from_the_run(syn_run, tiny_run):
    # the synthetic and tiny runs stay in-process; the surge (576,000 node rows) does not
    assert 0 < node_rows(syn_run) < HELPER_MIN_NODE_ROWS
    assert 0 < node_rows(tiny_run) < HELPER_MIN_NODE_ROWS
    assert 160 * 3600 >= HELPER_MIN_NODE_ROWS
    assert node_rows(syn_run / "missing") == 0


def test_an_interrupted_stage_stops_its_helper_before_it_raises(syn_run, tmp_path, monkeypatch):
    """Ctrl-C while the parent writes the look: build_stage's `finally` stops the helper and waits
    for it, so an AtomicDir removing the run next has no process writing into it."""
    import scenes.stage as st

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(st, "_build", interrupted)
    job = DataLayerJob.start()
    proc = job._proc
    with pytest.raises(KeyboardInterrupt):
        build_stage(syn_run, out_dir=tmp_path / "s", data_job=job)
    assert proc.poll() is not None


def test_twin_run_starts_the_helper_before_simulating_when_the_run_is_large(tmp_path, monkeypatch):
    """`twin run` decides from the scenario's estimated node rows; here the threshold is lowered so
    that tiny qualifies, and the run records that its data layer came from the helper."""
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    import scenes
    from twin.cli.main import app

    started = []
    real_start = scenes.start_data_helper

    def spy():
        job = real_start()
        started.append(job.in_helper)
        return job
    monkeypatch.setattr(scenes, "HELPER_MIN_NODE_ROWS", 1)
    monkeypatch.setattr(scenes, "start_data_helper", spy)
    tiny = Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml"
    res = CliRunner().invoke(app, ["run", str(tiny), "-o", str(tmp_path / "run"), "-q"])
    assert res.exit_code == 0, res.output
    man = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert started == [True] and man["stage"]["data_process"] == "helper"
    assert (tmp_path / "run" / man["stage"]["data"]).stat().st_size == man["stage"]["data_bytes"] > 0
    # the default threshold keeps tiny in-process
    monkeypatch.setattr(scenes, "HELPER_MIN_NODE_ROWS", HELPER_MIN_NODE_ROWS)
    res = CliRunner().invoke(app, ["run", str(tiny), "-o", str(tmp_path / "run2"), "-q"])
    assert json.loads((tmp_path / "run2" / "manifest.json").read_text())["stage"]["data_process"] == "in-process"
    assert started == [True]


def test_the_helper_imports_this_tree_whatever_the_working_directory(syn_run, tmp_path, monkeypatch):
    """`python -m` puts the working directory first on sys.path: a folder with its own `scenes/`
    must not change what the helper runs."""
    decoy = tmp_path / "work"
    (decoy / "scenes").mkdir(parents=True)
    (decoy / "scenes" / "__init__.py").write_text("raise SystemExit('the decoy scenes package was imported')\n")
    monkeypatch.chdir(decoy)
    (tmp_path / "out").mkdir()
    job = DataLayerJob.start()
    try:
        job.submit(syn_run, tmp_path / "out")
        assert job.result()["samples"] > 0
    finally:
        job.close()
