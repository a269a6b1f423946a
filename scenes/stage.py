"""Build a run's USD stage: ``stage/refinery.usda`` (layout, assets, cameras, lights, metadata)
sublayering ``stage/telemetry.usdc`` (every time sample), plus Pillow previews.

Reads only the run's telemetry + manifest (scenes/frames.py) and the hand-authored assets, which
are copied next to the stage (``stage/assets/``) so a run directory opens anywhere.

Time: one USD time code per stage frame spacing, i.e. ``timecode = simulation_s / stage_sample_s``,
played at TIMECODES_PER_SECOND (1 h at 5 s per frame -> 720 frames, 30 s of playback at 24 fps).

Value resolution note: the root layer is *stronger* than its sublayer and a default value in a
stronger layer beats time samples in a weaker one, so the root never authors a value for an
attribute that telemetry.usdc animates (it only declares it).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
from pxr import Gf, Kind, Sdf, Usd, UsdGeom, UsdLux, UsdShade, Vt

from scenes import colours, layout as lay
from scenes.animate import attr_spec, write_float_series, write_palette_series, write_series
from scenes.fabric import author_fabric, sample_fabric
from scenes.frames import StageFrames, load_frames
from scenes.prims import group, ref, xform
from twin.telemetry.schema import NODE_STATES

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
ROOT_NAME = "refinery.usda"
TELEMETRY_NAME = "telemetry.usdc"
TIMECODES_PER_SECOND = 24.0
HERO_YAW_DEG = 25.0            # hero camera turned from the aisle axis towards row A
HERO_PITCH_DEG = 12.0          # and tilted down so the whole rack height is in view
P2P_FULL_SCALE_GB_S = 28.0   # PCIe 5.0 P2P achievable between RTX PRO cards (hardware.md: ~20-28 GB/s)
P2P_WIDTH_M = (0.002, 0.012)  # P2P arc width at zero and full-scale traffic
P2P_STEPS = 16                # quantisation of P2P width/opacity
P2P_RGB = (0.2, 0.9, 1.0)

Progress = Callable[[str, float], None]


def _noop(msg: str, frac: float) -> None:
    return None


def build_stage(run_dir: Path | str, stage_sample_s: float | None = None,
                progress: Progress | None = None, out_dir: Path | str | None = None,
                previews: bool = True) -> dict:
    """Write the stage of the run in `run_dir` into `out_dir` (default run_dir/stage).

    Returns the manifest["stage"] record: paths (relative to run_dir when inside it), prim and
    sample counts, stage_sample_s, frame count and seconds spent.
    """
    t0 = time.perf_counter()
    progress = progress or _noop
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "stage"
    progress("reading telemetry", 0.0)
    fr = load_frames(run_dir, stage_sample_s)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ASSETS_DIR, out / "assets", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    layout = lay.build_layout(fr.topology)
    timecodes = fr.times / fr.stage_sample_s

    progress("authoring layout", 0.1)
    root_path, tel_path = out / ROOT_NAME, out / TELEMETRY_NAME
    for p in (root_path, tel_path):
        if p.exists():
            p.unlink()
    tel = Sdf.Layer.CreateNew(str(tel_path))
    stage = Usd.Stage.CreateNew(str(root_path))
    stage.GetRootLayer().subLayerPaths.append("./" + TELEMETRY_NAME)
    _metadata(stage, fr, timecodes)
    counts = _author_layout(stage, layout, fr)
    fabric = author_fabric(stage, layout, fr.links)
    _author_cameras_lights(stage, layout)
    stage.GetRootLayer().Save()
    t_layout = time.perf_counter() - t0

    progress("writing time samples", 0.3)
    t1 = time.perf_counter()
    with Sdf.ChangeBlock():
        samples = _write_node_samples(tel, layout, fr, timecodes)
        samples += sample_fabric(tel, fabric, fr.links, timecodes)
        samples += _write_camera_samples(tel, layout, timecodes)
    tel.Save()
    t_samples = time.perf_counter() - t1
    progress("writing previews", 0.85)
    preview_paths: list[str] = []
    if previews:
        from scenes.previews import write_previews
        preview_paths = [str(p) for p in write_previews(out / "previews", fr)]
    progress("stage done", 1.0)

    def rel(p: Path | str) -> str:
        p = Path(p)
        try:
            return str(p.relative_to(run_dir))
        except ValueError:
            return str(p)

    return {
        "root": rel(root_path), "telemetry": rel(tel_path), "previews": [rel(p) for p in preview_paths],
        "stage_sample_s": fr.stage_sample_s, "frames": int(fr.times.size),
        "start_time_code": float(timecodes[0]) if timecodes.size else 0.0,
        "end_time_code": float(timecodes[-1]) if timecodes.size else 0.0,
        "timecodes_per_second": TIMECODES_PER_SECOND, "fan_spin_divisor": fr.fan_spin_divisor,
        "prims": counts | {"links": len(fabric.link_paths)}, "samples": samples,
        "telemetry_bytes": tel_path.stat().st_size,
        "seconds": {"layout": round(t_layout, 3), "samples": round(t_samples, 3),
                    "total": round(time.perf_counter() - t0, 3)},
    }


def _metadata(stage: Usd.Stage, fr: StageFrames, timecodes: np.ndarray) -> None:
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    stage.SetTimeCodesPerSecond(TIMECODES_PER_SECOND)
    stage.SetFramesPerSecond(TIMECODES_PER_SECOND)
    stage.SetStartTimeCode(float(timecodes[0]) if timecodes.size else 0.0)
    stage.SetEndTimeCode(float(timecodes[-1]) if timecodes.size else 0.0)
    man = fr.manifest
    scen = man.get("scenario", {})
    root = stage.GetRootLayer()
    root.documentation = "AI Inference Refinery digital twin stage (generated by `twin run` / `twin scene`)"
    root.customLayerData = {
        "twin:scenario": str(scen.get("name", "")), "twin:seed": int(scen.get("seed", 0) or 0),
        "twin:version": str(man.get("twin_version", "")), "twin:scenario_sha256": str(scen.get("sha256", "")),
        "twin:stage_sample_s": float(fr.stage_sample_s),
        "twin:seconds_per_timecode": float(fr.stage_sample_s),
        "twin:duration_s": float(fr.duration_s), "twin:fan_spin_divisor": float(fr.fan_spin_divisor),
    }


def _author_layout(stage: Usd.Stage, layout: lay.Layout, fr: StageFrames) -> dict:
    root = group(stage, lay.ROOT, Kind.Tokens.assembly)
    stage.SetDefaultPrim(root)
    looks = stage.DefinePrim(f"{lay.ROOT}/Looks", "Scope")
    looks.GetReferences().AddReference("./assets/materials.usda", Sdf.Path("/Looks"))
    material = UsdShade.Material(stage.GetPrimAtPath(f"{lay.ROOT}/Looks/DisplayColor"))

    _author_room(stage, layout)
    for row in layout.rows:
        group(stage, f"{lay.ROOT}/Row_{lay.prim_name(row)}")
    for rack in layout.racks:
        group(stage, rack.path)
        xform(stage.GetPrimAtPath(rack.path), (*rack.xy, 0.0), rack.yaw_deg)
        ref(stage, f"{rack.path}/Frame", "rack.usda", instanceable=True)
    counts, pts = [3, 3, 3], lay.p2p_arcs_local()[1]
    for n, path in enumerate(layout.node_path):
        node = UsdGeom.Xform.Define(stage, path).GetPrim()
        Usd.ModelAPI(node).SetKind(Kind.Tokens.component)
        xform(node, layout.node_local[n])
        for name, tname in (("power_w", "Float"), ("gpu_temp_c", "FloatArray"), ("gpu_temp_max_c", "Float"),
                            ("state", "Token"), ("fan_rpm", "Float"), ("inlet_c", "Float"), ("p2p_gb_s", "Float")):
            node.CreateAttribute(f"telemetry:{name}", getattr(Sdf.ValueTypeNames, tname), custom=True)
        node.CreateAttribute("telemetry:node_id", Sdf.ValueTypeNames.Int, custom=True).Set(n)
        node.CreateAttribute("telemetry:rack", Sdf.ValueTypeNames.String, custom=True).Set(
            layout.racks[layout.node_rack_index[n]].name)
        shell = ref(stage, f"{path}/Shell", "node_shell.usda")
        UsdShade.MaterialBindingAPI.Apply(shell).Bind(material)
        ref(stage, f"{path}/Internals", "node_internals.usda", instanceable=True)
        for i, fx in enumerate(lay.FAN_X_M):
            fan = UsdGeom.Xform.Define(stage, f"{path}/Fan_{i + 1}")
            fan.AddTranslateOp().Set(Gf.Vec3d(fx, lay.FAN_Y_M, 0.0))
            fan.AddRotateYOp()   # value only in telemetry.usdc (see module doc)
            ref(stage, f"{path}/Fan_{i + 1}/Rotor", "fan.usda", "/Fan/Rotor", instanceable=True)
        curves = UsdGeom.BasisCurves.Define(stage, f"{path}/P2P")
        curves.CreateTypeAttr(UsdGeom.Tokens.linear)
        curves.CreateCurveVertexCountsAttr(counts)
        curves.CreatePointsAttr(Vt.Vec3fArray([Gf.Vec3f(*map(float, p)) for p in pts]))
        curves.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*map(float, pts.min(0) - 0.01)),
                                               Gf.Vec3f(*map(float, pts.max(0) + 0.01))]))
        curves.CreateWidthsAttr()
        curves.SetWidthsInterpolation(UsdGeom.Tokens.constant)
        curves.CreateDisplayColorPrimvar(UsdGeom.Tokens.constant).Set(Vt.Vec3fArray([Gf.Vec3f(*P2P_RGB)]))
        curves.CreateDisplayOpacityPrimvar(UsdGeom.Tokens.constant)
    return {"rows": len(layout.rows), "racks": len(layout.racks), "nodes": layout.n_nodes,
            "prims": sum(1 for _ in stage.Traverse())}


def _author_room(stage: Usd.Stage, layout: lay.Layout) -> None:
    group(stage, f"{lay.ROOT}/Room")
    (x0, y0), (x1, y1) = layout.extent_min, layout.extent_max
    floor = UsdGeom.Mesh.Define(stage, f"{lay.ROOT}/Room/Floor")
    floor.CreatePointsAttr([(x0, y0, -0.03), (x1, y0, -0.03), (x1, y1, -0.03), (x0, y1, -0.03)])
    floor.CreateFaceVertexCountsAttr([4])
    floor.CreateFaceVertexIndicesAttr([0, 1, 2, 3])
    floor.CreateExtentAttr([(x0, y0, -0.03), (x1, y1, -0.03)])
    floor.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    floor.CreateDisplayColorPrimvar(UsdGeom.Tokens.constant).Set([(0.32, 0.33, 0.35)])
    group(stage, f"{lay.ROOT}/Room/Tiles")
    for k, (x, y) in enumerate(lay.tile_centres(layout)):
        ref(stage, f"{lay.ROOT}/Room/Tiles/Tile_{k:03d}", "floor_tile.usda", instanceable=True,
             translate=(x, y, 0.0))
    group(stage, f"{lay.ROOT}/Room/Trays")
    for k, p in enumerate(lay.tray_centres(layout)):
        ref(stage, f"{lay.ROOT}/Room/Trays/Tray_{k:03d}", "cable_tray.usda", instanceable=True, translate=p)


def _author_cameras_lights(stage: Usd.Stage, layout: lay.Layout) -> None:
    stage.DefinePrim(f"{lay.ROOT}/Cameras", "Scope")
    hero = UsdGeom.Camera.Define(stage, f"{lay.ROOT}/Cameras/Hero")
    hero.CreateFocalLengthAttr(18.0)        # mm on the default 20.955 mm aperture: a wide aisle view
    hero.CreateClippingRangeAttr(Gf.Vec2f(0.05, 200.0))
    hero.AddTranslateOp()                   # animated: walks the cold aisle (telemetry.usdc)
    # camera -Z -> world +X turned 25 degrees towards row A (-Y) so its fronts face the lens; +Y -> +Z
    hero.AddRotateXYZOp().Set(Gf.Vec3f(90.0 - HERO_PITCH_DEG, 0.0, -90.0 - HERO_YAW_DEG))
    over = UsdGeom.Camera.Define(stage, f"{lay.ROOT}/Cameras/Overview")
    over.CreateFocalLengthAttr(20.0)
    over.CreateClippingRangeAttr(Gf.Vec2f(0.1, 500.0))
    (x0, y0), (x1, y1) = layout.extent_min, layout.extent_max
    span = max(x1 - x0, y1 - y0)
    # from beyond the -X end, above the first cold aisle, pitched 35 degrees down, looking along +X
    over.AddTranslateOp().Set(Gf.Vec3d(x0 - 0.6 * span, lay.aisle_ys(layout)[0], 1.0 + 0.6 * span))
    over.AddRotateXYZOp().Set(Gf.Vec3f(55.0, 0.0, -90.0))
    # facing the first row's fronts square-on from the far side of the aisle: every node visible
    front = UsdGeom.Camera.Define(stage, f"{lay.ROOT}/Cameras/Front")
    front.CreateFocalLengthAttr(12.0)
    front.CreateClippingRangeAttr(Gf.Vec2f(0.05, 200.0))
    front.AddTranslateOp().Set(Gf.Vec3d((x0 + x1) / 2, lay.aisle_ys(layout)[0] + 0.55, 1.05))
    front.AddRotateXYZOp().Set(Gf.Vec3f(90.0, 0.0, 180.0))   # camera -Z -> world -Y
    stage.DefinePrim(f"{lay.ROOT}/Lights", "Scope")
    sun = UsdLux.DistantLight.Define(stage, f"{lay.ROOT}/Lights/Key")
    sun.CreateIntensityAttr(2.5)
    sun.CreateAngleAttr(2.0)
    UsdGeom.Xformable(sun).AddRotateXYZOp().Set(Gf.Vec3f(40.0, 0.0, 30.0))
    dome = UsdLux.DomeLight.Define(stage, f"{lay.ROOT}/Lights/Fill")
    dome.CreateIntensityAttr(0.4)
    for k, y in enumerate(lay.aisle_ys(layout)):   # ceiling panel over each cold aisle
        panel = UsdLux.RectLight.Define(stage, f"{lay.ROOT}/Lights/Aisle_{k}")
        panel.CreateWidthAttr(float(x1 - x0 - 2.0))
        panel.CreateHeightAttr(0.6)
        panel.CreateIntensityAttr(30.0)
        UsdGeom.Xformable(panel).AddTranslateOp().Set(Gf.Vec3d((x0 + x1) / 2, y, 3.2))


def _write_node_samples(tel: Sdf.Layer, layout: lay.Layout, fr: StageFrames, timecodes: np.ndarray) -> int:
    """Shell colour + heat, fan spin, P2P arcs and telemetry:* attributes of every node."""
    T = Sdf.ValueTypeNames
    paths = layout.node_path

    def specs(suffix: str, name: str, tname) -> list[Sdf.Path]:
        return [attr_spec(tel, p + suffix, name, tname).path for p in paths]

    temp = np.nan_to_num(fr.gpu_temp_max_c, nan=float(colours.TEMP_STOPS_C[0]))
    frame_no = np.arange(fr.times.size)
    pal = [Vt.Vec3fArray([Gf.Vec3f(*map(float, c))]) for c in colours.palette()]
    idx = colours.node_palette_index(temp, fr.state, frame_no)
    n = write_palette_series(tel, specs("/Shell", "primvars:displayColor", T.Color3fArray), timecodes, idx, pal)
    step = colours.ramp_step(temp)
    n += write_palette_series(tel, specs("/Shell", "primvars:heat", T.Float), timecodes, step,
                              [i / (colours.RAMP_STEPS - 1) for i in range(colours.RAMP_STEPS)])
    for i in range(len(lay.FAN_X_M)):
        n += write_float_series(tel, specs(f"/Fan_{i + 1}", "xformOp:rotateY", T.Float), timecodes, fr.fan_angle_deg)
    # P2P arcs: width and opacity follow nodes.p2p_gb_s on a 16-step scale; invisible when idle
    p2p_step = np.rint(np.clip(fr.p2p_gb_s / P2P_FULL_SCALE_GB_S, 0, 1) * (P2P_STEPS - 1)).astype(np.int32)
    p2p_step = np.where((fr.p2p_gb_s > 0) & (p2p_step == 0), 1, p2p_step)
    frac = np.arange(P2P_STEPS) / (P2P_STEPS - 1)
    widths = [Vt.FloatArray([float(P2P_WIDTH_M[0] + f * (P2P_WIDTH_M[1] - P2P_WIDTH_M[0]))]) for f in frac]
    opac = [Vt.FloatArray([0.0 if s == 0 else float(0.35 + 0.65 * f)]) for s, f in enumerate(frac)]
    n += write_palette_series(tel, specs("/P2P", "widths", T.FloatArray), timecodes, p2p_step, widths)
    n += write_palette_series(tel, specs("/P2P", "primvars:displayOpacity", T.FloatArray), timecodes, p2p_step, opac)
    # numeric telemetry on the node prim (float32; the 1-s detail stays in Parquet)
    for name, values in (("power_w", fr.power_w), ("gpu_temp_max_c", temp), ("fan_rpm", fr.fan_rpm),
                         ("inlet_c", np.nan_to_num(fr.inlet_c)), ("p2p_gb_s", fr.p2p_gb_s)):
        n += write_float_series(tel, specs("", f"telemetry:{name}", T.Float), timecodes, values)
    n += write_palette_series(tel, specs("", "telemetry:state", T.Token), timecodes, fr.state, list(NODE_STATES))
    g = np.nan_to_num(fr.gpu_temp_c).astype(np.float32)
    gl = g.tolist()
    n += write_series(tel, specs("", "telemetry:gpu_temp_c", T.FloatArray), timecodes, g,
                      lambda f, k: Vt.FloatArray(gl[f][k]))
    return n


def _write_camera_samples(tel: Sdf.Layer, layout: lay.Layout, timecodes: np.ndarray) -> int:
    """Hero camera walks the aisle from the first to the last stage frame (linear in time)."""
    if timecodes.size == 0:
        return 0
    path = attr_spec(tel, f"{lay.ROOT}/Cameras/Hero", "xformOp:translate", Sdf.ValueTypeNames.Double3).path
    eyes = lay.hero_camera_path(layout, 2)
    for tc, eye in zip((timecodes[0], timecodes[-1]), eyes):
        tel.SetTimeSample(path, float(tc), Gf.Vec3d(*map(float, eye)))
    return 2
