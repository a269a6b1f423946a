"""The Blender side of scenes/render.py: import the stage, restore looks, render frames (bpy only).

Run as ``python -m scenes.render JOB_JSON`` in a Python that has bpy; prints ``PROGRESS done
total`` after each frame and ``RESULT {...}`` at the end, or ``RENDER-ERROR message`` (exit 2).
Standard view transform (not AgX/Filmic): the heat colours are the data, so the render must not
desaturate a bright orange-red towards white.
"""
from __future__ import annotations

import json
import sys

GLASS_ALPHA = 0.10
TRAFFIC_STRENGTH = 1.0      # emission strength of cables / pulses / P2P (their colours carry the gain)


class JobError(RuntimeError):
    pass


def _attr_node(nt, name: str, kind: str = "GEOMETRY"):
    node = nt.nodes.new("ShaderNodeAttribute")
    node.attribute_type = kind
    node.attribute_name = name
    return node


def _material(bpy, name: str, base_attr: str | None = "displayColor", emit_attr: str | None = None,
              alpha_attr: str | None = None, alpha: float | None = None, roughness: float = 0.5,
              emit_scale_attr: str | None = None):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nt = mat.node_tree
    bsdf = nt.nodes.get("Principled BSDF")
    bsdf.inputs["Roughness"].default_value = roughness
    if base_attr:
        nt.links.new(_attr_node(nt, base_attr).outputs["Color"], bsdf.inputs["Base Color"])
    else:
        bsdf.inputs["Base Color"].default_value = (0.02, 0.02, 0.02, 1.0)
    if emit_attr:
        colour = _attr_node(nt, emit_attr).outputs["Color"]
        if emit_scale_attr:                # pulses: brightness = link level (displayOpacity)
            mul = nt.nodes.new("ShaderNodeVectorMath")
            mul.operation = "SCALE"
            nt.links.new(colour, mul.inputs[0])
            nt.links.new(_attr_node(nt, emit_scale_attr).outputs["Fac"], mul.inputs["Scale"])
            colour = mul.outputs["Vector"]
        nt.links.new(colour, bsdf.inputs["Emission Color"])
        bsdf.inputs["Emission Strength"].default_value = TRAFFIC_STRENGTH
    if alpha_attr:
        nt.links.new(_attr_node(nt, alpha_attr).outputs["Fac"], bsdf.inputs["Alpha"])
    if alpha is not None:
        bsdf.inputs["Alpha"].default_value = alpha
        bsdf.inputs["Base Color"].default_value = (0.55, 0.7, 0.75, 1.0)
        bsdf.inputs["Roughness"].default_value = 0.05
    return mat


def restore_looks(bpy) -> dict:
    """Give every object the look its USD primvars describe (see scenes/render.py)."""
    surface = _material(bpy, "TwinSurface")
    glass = _material(bpy, "TwinGlass", base_attr=None, alpha=GLASS_ALPHA)
    blur = _material(bpy, "TwinBlur", alpha_attr="displayOpacity", roughness=0.6)
    light = _material(bpy, "TwinLight", base_attr=None, emit_attr="displayColor")
    pulse = _material(bpy, "TwinPulse", base_attr=None, emit_attr="displayColor", emit_scale_attr="displayOpacity")
    counts = {"surface": 0, "glass": 0, "blur": 0, "light": 0, "kept": 0}
    for obj in bpy.data.objects:
        data = obj.data
        if obj.type in ("CURVES", "POINTCLOUD"):
            data.materials.clear()
            data.materials.append(pulse if obj.type == "POINTCLOUD" else light)
            counts["light"] += 1
        elif obj.type == "MESH":
            base = obj.name.split(".")[0]
            if base in ("GlassDoor", "GlassSides", "Glass"):
                data.materials.clear()
                data.materials.append(glass)
                counts["glass"] += 1
            elif base == "Blur":
                data.materials.clear()
                data.materials.append(blur)
                counts["blur"] += 1
            elif len(data.materials) and data.materials[0] is not None:
                counts["kept"] += 1           # the USD look came through (shells, room)
            elif "displayColor" in data.attributes:
                data.materials.append(surface)
                counts["surface"] += 1
    for mat in bpy.data.materials:     # emissive shells, cables and pulses are seen, not sampled as
        mat.cycles.emission_sampling = "NONE"    # lights: 2-3x faster; the RectLights light the room
    for obj in bpy.data.objects:       # glass, blur discs and traffic: camera rays only (no shadows)
        if obj.type in ("CURVES", "POINTCLOUD") or obj.name.split(".")[0] in ("GlassDoor", "GlassSides", "Glass", "Blur"):
            obj.visible_shadow = obj.visible_diffuse = obj.visible_glossy = obj.visible_transmission = False
    return counts


def _settings(bpy, scene, job: dict) -> None:
    world = bpy.data.worlds.new("TwinWorld")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.02, 0.025, 0.035, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 1.0
    scene.world = world
    scene.render.engine = "CYCLES"
    c = scene.cycles
    c.device = "CPU"
    c.samples = job["samples"]
    c.use_denoising = True             # OpenImageDenoise on CPU: a 16-sample frame reads cleanly
    c.denoiser = "OPENIMAGEDENOISE"
    c.denoising_prefilter, c.denoising_quality = "FAST", "FAST"   # 1.5 s -> 0.2 s a preview frame
    c.use_adaptive_sampling, c.adaptive_threshold = True, 0.05
    c.max_bounces, c.diffuse_bounces, c.glossy_bounces = 3, 1, 1
    scene.cycles_curves.shape = "RIBBONS"
    c.transmission_bounces, c.transparent_max_bounces = 2, 8
    c.sample_clamp_direct, c.sample_clamp_indirect = 4.0, 1.0   # no glitter from the light panels
    c.caustics_reflective = c.caustics_refractive = False
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.use_persistent_data = True     # keep static BVHs between frames of a sequence
    scene.render.resolution_x, scene.render.resolution_y = job["size"]
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"


def run(job: dict) -> dict:
    try:
        import bpy
    except ImportError as exc:
        raise JobError(f"bpy (Blender as a Python module) is not installed: {exc}") from exc
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if "FINISHED" not in bpy.ops.wm.usd_import(filepath=job["stage"], set_frame_range=True):
        raise JobError(f"{job['stage']}: Blender could not import the stage")
    scene = bpy.context.scene
    bad = [f for f in job["frames"] if not scene.frame_start <= f <= scene.frame_end]
    if bad:
        raise JobError(f"--frame {bad[0]}: outside the stage's frames {scene.frame_start}..{scene.frame_end}")
    cam = bpy.data.objects.get(job["camera"])
    if cam is None or cam.type != "CAMERA":
        names = sorted(o.name for o in bpy.data.objects if o.type == "CAMERA")
        raise JobError(f"--camera {job['camera']}: not in the stage (cameras: {', '.join(names)})")
    scene.camera = cam
    looks = restore_looks(bpy)
    _settings(bpy, scene, job)
    total = len(job["frames"])
    for i, (frame, out) in enumerate(zip(job["frames"], job["outs"])):
        scene.frame_set(frame)
        scene.render.filepath = out
        bpy.ops.render.render(write_still=True)
        print(f"PROGRESS {i + 1} {total}", flush=True)
    return {"outs": job["outs"], "frames": job["frames"], "looks": looks, "objects": len(bpy.data.objects),
            "stage_frames": [scene.frame_start, scene.frame_end], "lens_mm": cam.data.lens}


def main() -> None:
    try:
        print("RESULT " + json.dumps(run(json.loads(sys.argv[1]))), flush=True)
    except JobError as exc:
        print(f"RENDER-ERROR {exc}", flush=True)
        sys.exit(2)
