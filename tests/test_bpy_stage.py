"""A real client: Blender (the PyPI `bpy` module) imports the stage, keeps colours, emission and
instancing, and renders the story: the Hero's idle frame reads blue, its peak frame orange-red.

bpy runs in a child Python (scenes.render does the same), so Blender's global state cannot leak
into the rest of the suite. Skipped, with the reason, only where no Python can import bpy.
Renders are tiny (160 x 90, 4 samples, denoised) so each takes seconds.
"""
from __future__ import annotations

import colorsys
import json
import subprocess

import numpy as np
import pytest

pytest.importorskip("pxr")
from scenes import build_stage  # noqa: E402
from scenes.render import bpy_available, find_bpy_python  # noqa: E402
from synthetic_run import make_synthetic_run  # noqa: E402

OK, WHY = bpy_available()
pytestmark = pytest.mark.skipif(not OK, reason=WHY)

IMPORT_SCRIPT = r"""
import json, sys, bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
res = bpy.ops.wm.usd_import(filepath=sys.argv[1], set_frame_range=True)
sc = bpy.context.scene
out = {"result": sorted(res), "frames": [sc.frame_start, sc.frame_end],
       "racks": sorted(o.name for o in bpy.data.objects if o.name.startswith("Rack_")),
       "nodes": sum(o.name.startswith("Node_") for o in bpy.data.objects),
       "instances": sum(o.instance_type == "COLLECTION" for o in bpy.data.objects),
       "types": sorted({o.type for o in bpy.data.objects})}
cams = {o.name: o.data for o in bpy.data.objects if o.type == "CAMERA"}
out["hero"] = [cams["Hero"].lens, cams["Hero"].sensor_width, cams["Hero"].sensor_height]
# node 5 (rack A02, slot 2): centre at (0.6, -1.2 + 0.08, 0.1 + 11 * 0.04445) m
want = (0.6, -1.12, 0.1 + 11 * 0.04445)
shell = min((o for o in bpy.data.objects if o.name.startswith("Shell")),
            key=lambda o: sum((a - b) ** 2 for a, b in zip(o.matrix_world.translation, want)))
out["shell_offset_m"] = sum((a - b) ** 2 for a, b in zip(shell.matrix_world.translation, want)) ** 0.5
mat = shell.data.materials[0]
links = {(l.from_node.type, getattr(l.from_node, "attribute_name", ""), l.to_socket.name) for l in mat.node_tree.links}
out["material"] = [mat.name, sorted(f"{a}:{b}->{c}" for a, b, c in links if a == "ATTRIBUTE")]
sc.frame_set(8)
ev = shell.evaluated_get(bpy.context.evaluated_depsgraph_get())
out["colour"] = list(ev.data.attributes["displayColor"].data[0].color)[:3]
out["emissive"] = list(ev.data.attributes["emissive"].data[0].color)[:3]
out["heat"] = ev.data.attributes["heat"].data[0].value
print("JSON " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def syn_stage(tmp_path_factory):
    run = make_synthetic_run(tmp_path_factory.mktemp("bpy") / "syn")
    build_stage(run, previews=False, colour_range="30:60")
    return run


def test_blender_keeps_colours_emission_and_instancing(syn_stage):
    python, _ = find_bpy_python()
    proc = subprocess.run([python, "-c", IMPORT_SCRIPT, str(syn_stage / "stage" / "refinery.usda")],
                          capture_output=True, text=True, timeout=900)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("JSON ")]
    assert line, proc.stderr[-2000:]
    out = json.loads(line[-1][5:])
    assert out["result"] == ["FINISHED"] and out["frames"] == [1, 20]
    assert out["racks"] == ["Rack_A01", "Rack_A02", "Rack_B01", "Rack_B02"] and out["nodes"] == 12
    assert out["shell_offset_m"] < 1e-3                      # placed where the stage says
    # instancing survives as collection instances: racks, doors, internals, 3 rotors per node, ...
    assert out["instances"] >= 4 + 4 + 12 * 4
    assert {"CURVES", "POINTCLOUD", "MESH", "CAMERA", "LIGHT"} <= set(out["types"])
    assert out["hero"] == pytest.approx([16.0, 36.0, 20.25])  # a 16 mm lens on a 16:9 sensor
    # the USD look comes through: base colour from displayColor, emission from primvars:emissive
    name, wires = out["material"]
    assert name == "Surface" and {"ATTRIBUTE:displayColor->Base Color", "ATTRIBUTE:emissive->Emission Color"} <= set(wires)
    # the same values as the stage (test_stage.py): 44 °C on 30..60 -> (0.33, 0.025, 0.63), glow x 0.8267
    assert out["colour"] == pytest.approx([0.33, 0.025, 0.63], abs=2e-3)
    assert out["emissive"] == pytest.approx([c * (0.08 + 1.6 * 119 / 255) for c in (0.33, 0.025, 0.63)], abs=2e-3)
    assert out["heat"] == pytest.approx(119 / 255, abs=1e-4)


def pixel_classes(png) -> dict:
    from PIL import Image
    img = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3) / 255
    count = {"blue": 0, "orange-red": 0}
    for r, g, b in img:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        if s >= 0.5 and v > 0.08:
            h *= 360
            if 200 <= h <= 260:
                count["blue"] += 1
            elif h <= 30 or h >= 350:
                count["orange-red"] += 1
    return count


def test_hero_idle_reads_blue_and_peak_orange_red(tmp_path_factory, tmp_path):
    from typer.testing import CliRunner
    from surge_run import surge_run
    from twin.cli.main import app
    run = surge_run(tmp_path_factory)
    got = {}
    for beat in ("idle", "peak"):
        png = tmp_path / f"{beat}.png"
        res = CliRunner().invoke(app, ["render", str(run), "--frame", beat, "--camera", "Hero", "--width", "160",
                                       "--height", "90", "--samples", "4", "-o", str(png)])
        assert res.exit_code == 0, res.output
        got[beat] = pixel_classes(png)
    idle, peak = got["idle"], got["peak"]
    assert idle["blue"] > 3 * max(idle["orange-red"], 1) and idle["blue"] > 300, got
    assert peak["orange-red"] > 2 * peak["blue"] and peak["orange-red"] > 1000, got


def test_render_errors_are_one_line(syn_stage, tmp_path):
    from typer.testing import CliRunner
    from twin.cli.main import app
    png = tmp_path / "x.png"
    for args, msg in ((["--frame", "999"], "outside the stage's frames 1..20"),
                      (["--camera", "Crane"], "--camera Crane: not in the stage"),
                      (["--frame", "dawn"], "neither a frame number nor a beat")):
        res = CliRunner().invoke(app, ["render", str(syn_stage), "-o", str(png), "--width", "32", "--height", "18",
                                       "--samples", "1", *args])
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1 and msg in lines[0], res.output
        assert not png.exists()


def test_showreel_renders_a_sequence_and_encodes_an_mp4(tiny_run, tmp_path):
    import imageio_ffmpeg
    from typer.testing import CliRunner
    from twin.cli.main import app
    out = tmp_path / "reel"
    res = CliRunner().invoke(app, ["showreel", str(tiny_run), "-o", str(out), "--seconds", "1", "--fps", "6",
                                   "--width", "64", "--height", "36", "--samples", "2", "-q"])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "showreel.json").read_text())
    # tiny: 600 s of 5-s samples in 6 frames -> 100 s per frame -> time codes 1..6
    assert rec["frames"] == 6 and rec["simulated_seconds_per_frame"] == 100.0
    assert len(list((out / "frames").glob("frame_*.png"))) == 6
    frames, secs = imageio_ffmpeg.count_frames_and_secs(str(out / "showreel.mp4"))
    assert frames == 6 and secs == pytest.approx(1.0, abs=0.2)
    again = CliRunner().invoke(app, ["showreel", str(tiny_run), "-o", str(out), "-q"])
    assert again.exit_code == 2 and "already exists" in again.output
