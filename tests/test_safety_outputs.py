"""Data loss (issue 15): --force replaces only what twin wrote, one writer per target, a swap that
survives signals and SIGKILL, plain run names, and -o files that are never silently overwritten.

Every test builds the user's precious data itself and checks it byte for byte afterwards.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli.main import app
from twin.telemetry.atomic import AtomicDir, OutputError, OutputLock, atomic_write
from twin.telemetry.outputs import MARKER, png_signature, read_marker, tag_png
from twin.telemetry.write import write_run

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "scenarios" / "tiny.yaml"
runner = CliRunner()


def tree(path: Path) -> dict[str, bytes]:
    """Every file under `path` with its bytes: what "nothing was touched" is checked against."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def thesis(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("\\chapter{Five years of work}")
    (path / "figures").mkdir()
    (path / "figures" / "fig1.pdf").write_bytes(b"%PDF-1.7 precious")
    return path


def one_error_line(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


# ------------------------------------------------------------------ directories: the marker

def test_a_run_carries_a_marker_listing_every_file_and_its_stage_its_own(tmp_path, tiny_result):
    def stage(tmp: Path) -> dict:
        (tmp / "stage").mkdir()
        (tmp / "stage" / "refinery.usda").write_text("#usda 1.0\n")
        return {}

    write_run(tiny_result, tmp_path / "run", stage=stage)
    run = read_marker(tmp_path / "run")
    assert run.kind == "run"
    assert {"manifest.json", "scenario.yaml", "telemetry/gpus.parquet", "telemetry/links.parquet"} <= run.files
    assert not any(f.startswith("stage/") for f in run.files), "the stage has a marker of its own"
    assert read_marker(tmp_path / "run" / "stage").files == {"refinery.usda"}


def test_sweep_force_never_deletes_a_folder_that_is_not_a_sweep(tmp_path):
    target = thesis(tmp_path / "thesis")
    before = tree(target)
    line = one_error_line(runner.invoke(app, ["sweep", str(ROOT / "scenarios/sweeps/tiny-policies.yaml"),
                                               "-o", str(target), "--force", "--workers", "0", "-q"]))
    assert "not a twin sweep directory" in line and "refusing" in line
    assert tree(target) == before


@pytest.mark.parametrize("kind", ["run", "sweep"])
def test_a_manifest_json_alone_does_not_make_a_folder_twins(tmp_path, kind):
    ext = tmp_path / "browser-extension"
    ext.mkdir()
    (ext / "manifest.json").write_text('{"manifest_version": 3, "name": "my extension"}')
    (ext / "background.js").write_text("chrome.runtime.onInstalled.addListener(() => {});")
    (ext / "telemetry").mkdir()  # even with a telemetry/ folder it is not a run
    before = tree(ext)
    with pytest.raises(OutputError, match="not written by this version of twin"):
        AtomicDir(ext, force=True, kind=kind)
    assert tree(ext) == before


def test_a_run_from_before_the_marker_is_refused_with_the_reason_not_deleted(tmp_path, tiny_result):
    old = tmp_path / "old-run"
    write_run(tiny_result, old)
    (old / MARKER).unlink()  # what every run written before this version looks like
    before = tree(old)
    line = one_error_line(runner.invoke(app, ["run", str(TINY), "-o", str(old), "--force", "--no-stage", "-q"]))
    assert "not written by this version of twin" in line and "delete it yourself" in line
    assert tree(old) == before


def test_force_refuses_a_run_holding_a_file_twin_did_not_write(tmp_path, tiny_result):
    run = tmp_path / "run"
    write_run(tiny_result, run)
    (run / "notes.txt").write_text("what I learnt from this run")
    with pytest.raises(OutputError, match="holds notes.txt, which twin did not write"):
        write_run(tiny_result, run, force=True)
    assert (run / "notes.txt").read_text() == "what I learnt from this run"


def test_force_may_replace_a_run_holding_twins_own_report_but_not_a_csv(tmp_path, tiny_result):
    run = tmp_path / "run"
    write_run(tiny_result, run)
    assert runner.invoke(app, ["report", str(run), "-o", str(run / "report.html")]).exit_code == 0
    assert runner.invoke(app, ["query", str(run), "--recipe", "peak-power", "--format", "csv",
                               "-o", str(run / "peak.csv")]).exit_code == 0
    with pytest.raises(OutputError, match="holds peak.csv"):  # a CSV carries no signature: maybe edited
        write_run(tiny_result, run, force=True)
    (run / "peak.csv").unlink()
    write_run(tiny_result, run, force=True)  # the signed report.html was twin's to replace
    assert not (run / "report.html").exists()


def test_force_refuses_a_run_of_another_kind_and_a_symlink(tmp_path, tiny_result):
    write_run(tiny_result, tmp_path / "run")
    with pytest.raises(OutputError, match="is a twin run directory, not a sweep"):
        AtomicDir(tmp_path / "run", force=True, kind="sweep")
    (tmp_path / "link").symlink_to(tmp_path / "run")
    with pytest.raises(OutputError, match="symbolic link"):
        AtomicDir(tmp_path / "link", force=True, kind="run")
    assert read_marker(tmp_path / "run").kind == "run"


def test_force_replaces_a_run_twin_wrote(tmp_path, tiny_result):
    write_run(tiny_result, tmp_path / "run")
    (tmp_path / "run" / "manifest.json").write_text("{}")
    write_run(tiny_result, tmp_path / "run", force=True)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["scenario"]["name"] == "tiny"


@pytest.mark.parametrize("name", [".", "..", ".hidden", "-rf", "a/b", "runs/..", ""])
def test_a_scenario_name_must_be_a_plain_file_name(tmp_path, name):
    text = TINY.read_text().replace("name: tiny", f"name: {json.dumps(name)}")
    (tmp_path / "s.yaml").write_text(text)
    line = one_error_line(runner.invoke(app, ["validate", str(tmp_path / "s.yaml")]))
    assert "name:" in line


def test_dot_as_output_is_the_current_folder_and_is_refused_when_not_a_run(tmp_path, monkeypatch):
    precious = thesis(tmp_path / "work")
    monkeypatch.chdir(precious)
    before = tree(precious)
    for out in (".", "..", str(precious) + "/."):
        line = one_error_line(runner.invoke(app, ["run", str(TINY), "-o", out, "--force", "--no-stage", "-q"]))
        assert "refusing" in line, line
    assert tree(precious) == before


# ------------------------------------------------------------------ one writer per target

def test_a_second_writer_is_refused_while_the_first_holds_the_target(tmp_path, tiny_result):
    with OutputLock(tmp_path / "run"):
        with pytest.raises(OutputError, match="another twin process is writing it"):
            write_run(tiny_result, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    write_run(tiny_result, tmp_path / "run")  # the lock went with its holder
    assert not list(tmp_path.glob(".*")), "no lock file or temporary left"


def test_a_target_that_appears_while_the_run_is_built_is_not_overwritten(tmp_path, tiny_result):
    def stage(tmp: Path) -> dict:  # someone (not twin) creates the target meanwhile
        thesis(tmp_path / "run")
        return {}

    with pytest.raises(OutputError, match="already exists"):
        write_run(tiny_result, tmp_path / "run", stage=stage)
    assert (tmp_path / "run" / "thesis.tex").is_file() and not (tmp_path / "run" / "manifest.json").exists()


def _start(out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "twin", "run", str(TINY), "-o", str(out), "--no-stage", "-q"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_runs_into_one_output_do_not_both_succeed(tmp_path):
    out = tmp_path / "runs" / "tiny"
    procs = [_start(out) for _ in range(3)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2, 2], results
    for code, err in results:
        if code == 2:
            assert ("another twin process is writing it" in err or "already exists" in err) and "Traceback" not in err
    assert read_marker(out).kind == "run"


# ------------------------------------------------------------------ the --force swap

def test_a_signal_during_the_swap_waits_until_the_new_run_is_in_place(tmp_path, tiny_result, monkeypatch):
    write_run(tiny_result, tmp_path / "run")
    real_rename = os.rename
    calls = []

    def rename(src, dst):  # SIGINT lands between "old aside" and "new in place"
        real_rename(src, dst)
        calls.append(dst)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        write_run(tiny_result, tmp_path / "run", force=True)
    assert len(calls) == 2, "both renames happened before the interrupt was delivered"
    assert read_marker(tmp_path / "run").kind == "run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "no .old, .tmp or lock left"


def test_a_swap_cut_by_sigkill_is_repaired_by_the_next_writer(tmp_path, tiny_result):
    write_run(tiny_result, tmp_path / "run")
    before = tree(tmp_path / "run")
    # the state SIGKILL leaves between the two renames: the old run aside, the new one not yet in place
    os.rename(tmp_path / "run", tmp_path / ".run.4242.7f00.old")
    shutil.copytree(tmp_path / ".run.4242.7f00.old", tmp_path / ".run.4242.7f00.tmp")
    with pytest.raises(OutputError, match="already exists"):
        write_run(tiny_result, tmp_path / "run")  # no --force: the restored run is not replaced
    assert tree(tmp_path / "run") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_an_interrupted_twin_run_leaves_the_old_run_in_place(tmp_path, tiny_result):
    """SIGINT a real `twin run --force` at random moments; the old run or the new one is always there."""
    out = tmp_path / "tiny"
    write_run(tiny_result, out)
    for delay in (0.5, 1.0, 1.5, 2.0, 2.5):
        p = subprocess.Popen([sys.executable, "-m", "twin", "run", str(TINY), "-o", str(out), "--force", "--no-stage", "-q"],
                             env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60)
        assert p.returncode in (0, 130, -signal.SIGINT), p.returncode  # -2: the signal beat the handler (imports)
        assert read_marker(out).kind == "run" and (out / "manifest.json").is_file()
        assert [x.name for x in tmp_path.iterdir() if x.name.startswith(".")] == []


# ------------------------------------------------------------------ single files

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_result) -> Path:
    d = tmp_path_factory.mktemp("outputs") / "tiny"
    write_run(tiny_result, d)
    return d


@pytest.mark.parametrize("args, suffix", [
    (["plot", "{run}", "power", "-o", "{out}"], ".png"),
    (["report", "{run}", "-o", "{out}"], ".html"),
    (["export", "{run}", "-o", "{out}", "--format", "csv"], ".csv"),
    (["export", "{run}", "-o", "{out}"], ".om"),
    (["query", "{run}", "--recipe", "peak-power", "--format", "csv", "-o", "{out}"], ".csv"),
    (["query", "{run}", "--recipe", "peak-power", "--format", "json", "-o", "{out}"], ".json"),
    (["query", "{run}", "--recipe", "peak-power", "--format", "parquet", "-o", "{out}"], ".parquet"),
    (["compare", "{run}", "{run}", "--format", "json", "-o", "{out}"], ".json"),
    (["plot", "{run}", "power", "-o", "{out}"], ".svg"),
    (["plot", "{run}", "power", "-o", "{out}"], ".pdf"),
    (["export", "{run}", "-o", "{out}", "-q"], ".parquet"),
    (["export", "{run}", "-o", "{out}", "-q"], ".prom"),
    (["schema", "-o", "{out}"], ".json"),
])
def test_an_output_file_is_never_written_over_a_users_file(tmp_path, run_dir, args, suffix):
    mine = tmp_path / f"mine{suffix}"
    mine.write_text("name: my precious scenario\n")
    cmd = [a.format(run=run_dir, out=mine) for a in args]
    assert "already exists; pass --force" in one_error_line(runner.invoke(app, cmd))
    assert "refusing to replace it even with --force" in one_error_line(runner.invoke(app, cmd + ["--force"]))
    assert mine.read_text() == "name: my precious scenario\n"
    # twin's own output: written once, refused without --force, replaced with it
    ours = tmp_path / f"ours{suffix}"
    cmd = [a.format(run=run_dir, out=ours) for a in args]
    assert runner.invoke(app, cmd).exit_code == 0
    first = ours.read_bytes()
    assert "already exists" in one_error_line(runner.invoke(app, cmd))
    again = runner.invoke(app, cmd + ["--force"])
    assert again.exit_code == 0, again.output
    assert ours.read_bytes()[:64] == first[:64]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, ours.name]), "no temporaries"


def test_plot_never_writes_a_png_over_a_yaml(tmp_path, run_dir):
    mine = tmp_path / "my.yaml"
    mine.write_text("name: mine\n")
    for extra in ([], ["--force"]):
        one_error_line(runner.invoke(app, ["plot", str(run_dir), "power", "-o", str(mine), *extra]))
    assert mine.read_text() == "name: mine\n"


@pytest.mark.parametrize("make", ["dir", "symlink", "fifo"])
def test_an_output_path_that_is_no_regular_file_is_refused(tmp_path, run_dir, make):
    out = tmp_path / "out.png"
    if make == "dir":
        out.mkdir()
    elif make == "symlink":
        (tmp_path / "target.png").write_bytes(b"user's")
        out.symlink_to(tmp_path / "target.png")
    else:
        os.mkfifo(out)
    one_error_line(runner.invoke(app, ["plot", str(run_dir), "power", "-o", str(out), "--force"]))
    assert make != "symlink" or (tmp_path / "target.png").read_bytes() == b"user's"


def test_twin_pngs_carry_the_signature_and_a_tagged_png_stays_a_png():
    png = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + b"\x00" * 13 + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    assert png_signature(png) is None
    tagged = tag_png(png, "twin render")
    assert png_signature(tagged) == "twin render" and tagged.endswith(b"IEND\xaeB`\x82")
    from PIL import Image
    import io
    from twin.tools.plots import _png
    from matplotlib.figure import Figure
    data = _png(Figure(figsize=(1, 1)))
    assert png_signature(data).startswith("twin plot")
    assert Image.open(io.BytesIO(tag_png(data))).size == (120, 120)


def test_atomic_write_refuses_existing_files_and_a_format_it_cannot_sign(tmp_path):
    p = tmp_path / "x.bin"
    atomic_write(p, lambda fh: fh.write(b"1"))
    with pytest.raises(OutputError, match="already exists"):
        atomic_write(p, lambda fh: fh.write(b"2"))
    with pytest.raises(OutputError, match="cannot tell whether it wrote it"):
        atomic_write(p, lambda fh: fh.write(b"2"), force=True, fmt="bin")
    assert p.read_bytes() == b"1"


def test_scene_force_keeps_a_stage_holding_user_files(tmp_path, run_dir):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    assert runner.invoke(app, ["scene", str(run), "--no-previews", "--stage-sample-s", "60"]).exit_code == 0
    assert read_marker(run / "stage").kind == "stage"
    (run / "stage" / "my-shot.blend").write_bytes(b"BLENDER hours of lighting")
    line = one_error_line(runner.invoke(app, ["scene", str(run), "--force", "--no-previews", "--stage-sample-s", "60"]))
    assert "my-shot.blend" in line and "twin did not write" in line
    assert (run / "stage" / "my-shot.blend").read_bytes() == b"BLENDER hours of lighting"
    (run / "stage" / "my-shot.blend").unlink()
    assert runner.invoke(app, ["scene", str(run), "--force", "--no-previews", "--stage-sample-s", "60"]).exit_code == 0


def test_scene_does_not_write_into_a_folder_twin_did_not_write(tmp_path, run_dir):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / MARKER).unlink()
    before = tree(run)
    assert "not written by this version of twin" in one_error_line(runner.invoke(app, ["scene", str(run)]))
    assert tree(run) == before
