"""A real client: Blender (the PyPI `bpy` module) imports the stage and renders a frame.

bpy runs in a child Python (scenes.render does the same), so Blender's global state cannot leak
into the rest of the suite. Skipped, with the reason, only where bpy cannot be imported.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pxr")
from scenes import build_stage  # noqa: E402
from scenes.render import bpy_available  # noqa: E402
from synthetic_run import make_synthetic_run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
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
       "cameras": sorted(o.name for o in bpy.data.objects if o.type == "CAMERA")}
# node 0 (rack A01 at y = -1.2, slot 0): centre at (0, -1.2 + 0.08, 0.1 + 3 * 0.04445) m
want = (0.0, -1.12, 0.1 + 3 * 0.04445)
shell = min((o for o in bpy.data.objects if o.name.startswith("Shell")),
            key=lambda o: sum((a - b) ** 2 for a, b in zip(o.matrix_world.translation, want)))
out["shell_offset_m"] = sum((a - b) ** 2 for a, b in zip(shell.matrix_world.translation, want)) ** 0.5
colours = []
for f in (1, 10):
    sc.frame_set(f)
    ev = shell.evaluated_get(bpy.context.evaluated_depsgraph_get())
    colours.append(list(ev.data.attributes["displayColor"].data[0].color)[:3])
out["shell_colours"] = colours
print("JSON " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def syn_stage(tmp_path_factory):
    run = make_synthetic_run(tmp_path_factory.mktemp("bpy") / "syn")
    build_stage(run, previews=False)
    return run


def test_blender_imports_racks_nodes_and_animated_colour(syn_stage):
    proc = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT, str(syn_stage / "stage" / "refinery.usda")],
                          capture_output=True, text=True, timeout=600)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("JSON ")]
    assert line, proc.stderr[-2000:]
    out = json.loads(line[-1][5:])
    assert out["result"] == ["FINISHED"] and out["frames"] == [1, 20]
    assert out["racks"] == ["Rack_A01", "Rack_A02", "Rack_B01", "Rack_B02"]
    assert out["nodes"] == 12
    assert out["shell_offset_m"] < 1e-3          # placed where the stage says
    assert {"Hero", "Front", "Overview"} <= set(out["cameras"])
    # node 0: OFF at time code 1 -> (0.03, 0.03, 0.035); SERVING at 10 (k=9, 41 °C -> palette step
    # rint(16/67 * 255) = 61 = 41.027 °C, f = 1.027/15 = 0.0685 between 40 °C (0.05, 0.65, 0.80)
    # and 55 °C (0.35, 0.80, 0.25)) -> (0.05 + 0.3f, 0.65 + 0.15f, 0.80 - 0.55f) = (0.0705, 0.6603, 0.7623)
    assert out["shell_colours"][0] == pytest.approx([0.03, 0.03, 0.035], abs=0.002)
    assert out["shell_colours"][1] == pytest.approx([0.0705, 0.6603, 0.7623], abs=0.005)


def test_twin_render_shows_heat_colours(syn_stage, tmp_path):
    from PIL import Image
    from typer.testing import CliRunner
    from twin.cli.main import app
    png = tmp_path / "frame.png"
    result = CliRunner().invoke(app, ["render", str(syn_stage), "--frame", "10", "--camera", "Front",
                                      "--width", "160", "--height", "90", "--samples", "4", "-o", str(png)])
    assert result.exit_code == 0, result.output
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert img.shape == (90, 160, 3)
    # the serving nodes are teal (G and B well above R); grey rack/floor pixels have R ~ G ~ B
    teal = (img[..., 1] - img[..., 0] > 40) & (img[..., 2] - img[..., 0] > 40)
    assert teal.sum() > 100, f"only {teal.sum()} heat-coloured pixels"
    bad = CliRunner().invoke(app, ["render", str(syn_stage), "--frame", "999", "-o", str(png), "--force"])
    assert bad.exit_code == 2 and "outside the stage's frames 1..20" in bad.output
