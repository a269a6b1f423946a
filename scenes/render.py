"""Render one frame of a run's stage with Blender Cycles on CPU (bpy, the PyPI Blender module).

bpy is imported only here, and only inside a child process (``python -m scenes.render``): a
Blender session is heavy, global and not re-entrant, so `twin render` stays a thin wrapper and a
Blender crash cannot take the CLI down with it.

What Blender keeps from the stage (measured with bpy 5.0.1, /work/shared/reference/usd.md): the
time-sampled ``primvars:displayColor`` arrives as an animated colour attribute, but no
UsdPreviewSurface material survives the import, so this script gives every mesh that carries a
``displayColor`` attribute one material whose base colour is read from that attribute (and
whose emission follows it faintly, so hot nodes glow). Camera: the stage's ``Hero`` camera.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DEFAULT_SIZE = (480, 270)
DEFAULT_SAMPLES = 16
GLOW_STRENGTH = 0.6   # emission strength of the heat colour (visual only)
GLASS_ALPHA = 0.12    # rack door glass coverage (materials.usda Glass has opacity 0.25)


class RenderError(RuntimeError):
    """Rendering failed for a reason the user can act on (bpy missing, bad frame, no stage)."""


def bpy_available() -> tuple[bool, str]:
    """(True, version) when `import bpy` works in a child Python, else (False, reason)."""
    proc = subprocess.run([sys.executable, "-c", "import bpy; print(bpy.app.version_string)"],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["import failed"])[-1]
        return False, f"bpy (Blender as a Python module) cannot be imported: {last}"
    return True, proc.stdout.strip().splitlines()[-1]


def render_frame(stage_root: Path, frame: int, out_png: Path, size: tuple[int, int] = DEFAULT_SIZE,
                 samples: int = DEFAULT_SAMPLES, camera: str = "Hero", timeout_s: float = 900) -> dict:
    """Render `frame` (USD time code = Blender frame) of `stage_root` to `out_png` in a child process."""
    stage_root, out_png = Path(stage_root), Path(out_png)
    if not stage_root.exists():
        raise RenderError(f"{stage_root}: no stage (run `twin scene RUN_DIR` first)")
    job = {"stage": str(stage_root), "frame": int(frame), "out": str(out_png.resolve()),
           "size": list(size), "samples": int(samples), "camera": camera}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "scenes.render", json.dumps(job)], capture_output=True,
                          text=True, timeout=timeout_s, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        errs = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("RENDER-ERROR ")]
        if errs:
            raise RenderError(errs[-1].removeprefix("RENDER-ERROR "))
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RenderError(f"Blender render failed: {tail}")
    return json.loads(lines[-1].removeprefix("RESULT "))


# ------------------------------------------------------------------ child process (bpy inside)
def _heat_material(bpy):
    mat = bpy.data.materials.new("TwinDisplayColor")
    mat.use_nodes = True
    nt = mat.node_tree
    bsdf = nt.nodes.get("Principled BSDF")
    attr = nt.nodes.new("ShaderNodeAttribute")
    attr.attribute_type = "GEOMETRY"
    attr.attribute_name = "displayColor"
    nt.links.new(attr.outputs["Color"], bsdf.inputs["Base Color"])
    nt.links.new(attr.outputs["Color"], bsdf.inputs["Emission Color"])
    bsdf.inputs["Emission Strength"].default_value = GLOW_STRENGTH
    bsdf.inputs["Roughness"].default_value = 0.45
    return mat


def _glass_material(bpy):
    mat = bpy.data.materials.new("TwinGlass")
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    bsdf.inputs["Base Color"].default_value = (0.55, 0.7, 0.75, 1.0)
    bsdf.inputs["Alpha"].default_value = GLASS_ALPHA
    return mat


def _child(job: dict) -> dict:
    try:
        import bpy
    except ImportError as exc:
        raise RenderError(f"bpy (Blender as a Python module) is not installed: {exc}; install it with "
                          f"pip install --no-deps 'bpy==5.0.1' (CPython 3.11; --no-deps keeps numpy 2)") from exc
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if "FINISHED" not in bpy.ops.wm.usd_import(filepath=job["stage"], set_frame_range=True):
        raise RenderError(f"{job['stage']}: Blender could not import the stage")
    scene = bpy.context.scene
    if not scene.frame_start <= job["frame"] <= scene.frame_end:
        raise RenderError(f"--frame {job['frame']}: outside the stage's frames "
                          f"{scene.frame_start}..{scene.frame_end}")
    mat, glass = _heat_material(bpy), _glass_material(bpy)
    coloured = 0
    for obj in bpy.data.objects:
        if obj.type == "MESH" and "displayColor" in obj.data.attributes:
            obj.data.materials.clear()
            # the rack doors' Glass look is lost on import too: keep them see-through
            obj.data.materials.append(glass if obj.name.startswith("GlassDoor") else mat)
            coloured += 1
    cam = bpy.data.objects.get(job["camera"])
    if cam is None or cam.type != "CAMERA":
        raise RenderError(f"camera {job['camera']!r} not in the stage")
    scene.camera = cam
    world = bpy.data.worlds.new("TwinWorld")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.3
    scene.world = world
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = job["samples"]
    # OpenImageDenoise (CPU) turns a 16-sample frame from speckle into a readable still for ~1 s more
    scene.cycles.use_denoising = True
    scene.cycles.denoiser = "OPENIMAGEDENOISE"
    scene.render.resolution_x, scene.render.resolution_y = job["size"]
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = job["out"]
    scene.frame_set(job["frame"])
    bpy.ops.render.render(write_still=True)
    return {"out": job["out"], "frame": job["frame"], "coloured_meshes": coloured,
            "objects": len(bpy.data.objects), "frames": [scene.frame_start, scene.frame_end]}


if __name__ == "__main__":
    try:
        print("RESULT " + json.dumps(_child(json.loads(sys.argv[1]))), flush=True)
    except RenderError as exc:
        print(f"RENDER-ERROR {exc}", flush=True)
        sys.exit(2)
