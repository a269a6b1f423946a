"""Build a run's USD stage: ``stage/refinery.usda`` (layout, assets, room, cameras, lights, metadata)
sublayering ``stage/telemetry.usdc`` (the look's time samples) and ``stage/data.usdc`` (the
numbers: telemetry primvars and FX airflow, scenes/data_layer.py), plus previews (legend, floor
heat map).

Reads only the run's telemetry + manifest (scenes/frames.py) and the hand-authored assets, which
are copied next to the stage (``stage/assets/``) so a run directory opens anywhere.

Time: ``time code = simulated seconds / twin:seconds_per_timecode``, played at 24 time codes per
second; compressed by default (5 s per frame: the hour is 30 s of playback) or real time over a
window (1/24 s per frame). Both are stated in customLayerData (docs/stage.md, "Time").

Value resolution note: the root layer is *stronger* than its sublayer and a default value in a
stronger layer beats time samples in a weaker one, so the root never authors a value for an
attribute that telemetry.usdc animates.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
from pxr import Gf, Kind, Sdf, Usd, UsdGeom, UsdLux, UsdShade

import scenes
from scenes import ASSETS_DIR, DATA_NAME, cameras, effects, layout as lay, mapping as cmap
from scenes.mapping import quantity_values
from scenes.fabric import author_fabric, sample_fabric
from scenes.frames import FRAMES_PER_SECOND, StageFrames, load_frames
from scenes.data_job import DataLayerJob, node_rows
from scenes.nodes import TELEMETRY_TOLERANCE, Looks, author_nodes, write_node_samples
from scenes.prims import bind, group, label, ref, xform
from scenes.room import author_room
from twin.telemetry.schema import NODE_STATES

ROOT_NAME = "refinery.usda"
TELEMETRY_NAME = "telemetry.usdc"
TIMECODES_PER_SECOND = FRAMES_PER_SECOND

Progress = Callable[[str, float], None]


def _noop(msg: str, frac: float) -> None:
    return None


def build_stage(run_dir: Path | str, stage_sample_s: float | None = None,
                progress: Progress | None = None, out_dir: Path | str | None = None,
                previews: bool = True, colour_by: str | None = None, colour_range: str | None = None,
                window: tuple[float, float] | None = None, realtime: bool = False,
                data_helper: bool | None = None, data_job: DataLayerJob | None = None) -> dict:
    """Write the stage of the run in `run_dir` into `out_dir` (default run_dir/stage).

    colour_by / colour_range: scenes.mapping (default gpu_temp, auto). window: (start_s, end_s)
    of simulated time; realtime: 24 frames per simulated second over the window. data_helper:
    write data.usdc and the previews in a helper process (default: when the run has
    HELPER_MIN_NODE_ROWS node rows; scenes.data_layer); data_job: a DataLayerJob to use instead
    (`twin run` starts its helper before simulating). The job is closed on return.
    Returns the manifest["stage"] record: paths (relative to run_dir when inside it), prim and
    sample counts, the time mapping, colour mapping, story beats and seconds spent.
    """
    t0 = time.perf_counter()
    progress = progress or _noop
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "stage"
    out.mkdir(parents=True, exist_ok=True)
    for p in (out / ROOT_NAME, out / TELEMETRY_NAME, out / DATA_NAME):   # before a helper writes data.usdc
        if p.exists():
            p.unlink()
    # the numbers (data.usdc) and the previews are written beside everything below: by a helper
    # process on large runs (scenes/data_layer.py), else in-process once the frames are read
    if data_job is None:
        big = data_helper if data_helper is not None else node_rows(run_dir) >= scenes.HELPER_MIN_NODE_ROWS
        data_job = DataLayerJob.start() if big else DataLayerJob()
    try:
        data_job.submit(run_dir, out, stage_sample_s, window, realtime, previews, colour_by, colour_range)
        return _build(run_dir, out, data_job, t0, progress, stage_sample_s, colour_by, colour_range, window,
                      realtime)
    finally:
        data_job.close()


def _build(run_dir: Path, out: Path, data: DataLayerJob, t0: float, progress: Progress, stage_sample_s,
           colour_by, colour_range, window, realtime) -> dict:
    progress("reading telemetry", 0.0)
    # with the data layer in the helper, the look needs the gpus table only to colour by utilisation
    fr = load_frames(run_dir, stage_sample_s, window=window, realtime=realtime,
                     gpus=not data.in_helper or cmap.quantity(colour_by).name == "util")
    mapping = cmap.for_frames(fr, colour_by, colour_range)
    beats = story_beats(fr, mapping)
    shutil.copytree(ASSETS_DIR, out / "assets", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    layout = lay.build_layout(fr.topology)
    timecodes = fr.timecodes
    t_read = time.perf_counter()

    progress("authoring layout", 0.1)
    root_path, tel_path, data_path = out / ROOT_NAME, out / TELEMETRY_NAME, out / DATA_NAME
    tel = Sdf.Layer.CreateNew(str(tel_path))
    root = Sdf.Layer.CreateNew(str(root_path))   # held here: it outlives the stage (below)
    root.subLayerPaths.append("./" + TELEMETRY_NAME)
    stage = Usd.Stage.Open(root)
    looks = _author_looks(stage)
    counts = _author_layout(stage, layout, fr, looks)
    author_room(stage, layout, looks)
    fabric = author_fabric(stage, layout, fr.links, looks)
    cameras.author_cameras(stage, layout, close_up_node(layout, fr))
    _key_light(stage)
    t_layout = time.perf_counter()

    progress("writing time samples", 0.3)
    with Sdf.ChangeBlock():
        node_info = write_node_samples(tel, layout, fr, mapping)
        fab_info = sample_fabric(tel, fabric, fr.links, timecodes)
        samples = node_info["samples"] + fab_info["samples"]
        samples += cameras.write_hero_samples(tel, layout, {k: v["frame"] for k, v in beats.items()}, timecodes)
    _metadata(stage, fr, timecodes, mapping, beats, node_info, fab_info)
    # no stage composes the root from here, so sublayering data.usdc below opens nothing until it is written
    del stage, looks
    t_samples = time.perf_counter()
    tel.Save()
    t_save = time.perf_counter()
    progress(*(("waiting for the data layer and previews", 0.85) if data.in_helper else
               ("writing the data layer and previews", 0.6)))
    data_info = data.result(frames=fr, mapping=mapping)
    root.subLayerPaths.append("./" + DATA_NAME)
    root.Save()
    progress("stage done", 1.0)
    t_end = time.perf_counter()

    def rel(p: Path | str) -> str:
        # resolved on both sides: the helper reports resolved paths, while run_dir may be relative
        # (`twin run -o runs/x` builds in runs/.x.<pid>.tmp and renames it, so an absolute path
        # recorded here would name a directory that no longer exists)
        p, base = Path(p).resolve(), run_dir.resolve()
        try:
            return str(p.relative_to(base))
        except ValueError:
            return str(p)

    return {
        "root": rel(root_path), "telemetry": rel(tel_path), "data": rel(data_path),
        "previews": [rel(p) for p in data_info["previews"]],
        "stage_sample_s": fr.seconds_per_frame, "seconds_per_timecode": fr.seconds_per_frame,
        "realtime": fr.realtime, "window_s": list(fr.window_s), "frames": int(fr.times.size),
        "start_time_code": float(timecodes[0]) if timecodes.size else 0.0,
        "end_time_code": float(timecodes[-1]) if timecodes.size else 0.0,
        "timecodes_per_second": TIMECODES_PER_SECOND,
        "colour": mapping.layer_data(), "beats": {k: v["timecode"] for k, v in beats.items()},
        "prims": counts | {"links": len(fabric.link_paths)}, "samples": samples + data_info["samples"],
        "telemetry_samples": samples, "data_samples": data_info["samples"],
        "telemetry_bytes": tel_path.stat().st_size, "data_bytes": data_info["bytes"],
        "data_process": data_info["process"],
        # read: telemetry, mapping, layout; layout: root-layer prims; samples: telemetry.usdc's
        # specs and samples (in memory); save: telemetry.usdc; data_wait: waiting for (or writing)
        # data.usdc and the previews, then the root's save; data: their own time where written
        "seconds": {"read": round(t_read - t0, 3), "layout": round(t_layout - t_read, 3),
                    "samples": round(t_samples - t_layout, 3), "save": round(t_save - t_samples, 3),
                    "data_wait": round(t_end - t_save, 3), "data": data_info["seconds"],
                    "total": round(t_end - t0, 3)},
    }


def story_beats(fr: StageFrames, mapping: cmap.ColourMapping) -> dict:
    """Frames (and time codes) of the run's story: idle, ignition (half the cascade lit),
    cascade_end (95 % lit), peak (hottest mean of the mapped quantity), decay (back below half
    way after the peak), last."""
    f_n = fr.times.size
    powered = ~np.isin(fr.state, [NODE_STATES.index("OFF"), NODE_STATES.index("FAILED")])
    on = powered.sum(axis=1)
    heat = mapping.normalise(quantity_values(fr, mapping.quantity.name)).mean(axis=1) if f_n else np.zeros(0)

    def first(mask: np.ndarray, default: int) -> int:
        hits = np.flatnonzero(mask)
        return int(hits[0]) if hits.size else default
    rise = on.max() - on[0] if f_n else 0
    ign = first(on >= on[0] + 0.5 * rise, 0) if rise > 0 else 0
    end = first(on >= on[0] + 0.95 * rise, ign) if rise > 0 else 0
    peak = int(np.argmax(heat)) if f_n else 0
    half = heat[0] + 0.5 * (heat[peak] - heat[0]) if f_n else 0.0
    after = np.flatnonzero(heat[peak:] < half)
    decay = int(peak + after[0]) if after.size else max(f_n - 1, 0)
    frames = {"idle": 0, "ignition": ign, "cascade_end": end, "peak": peak, "decay": decay, "last": max(f_n - 1, 0)}
    tc = fr.timecodes
    return {k: {"frame": v, "timecode": float(tc[v]) if f_n else 0.0} for k, v in frames.items()}


def read_beats(root: Path | str) -> dict[str, float]:
    """The story beats (name -> time code) recorded in a stage root's customLayerData."""
    layer = Sdf.Layer.FindOrOpen(str(root))
    data = dict(layer.customLayerData) if layer else {}
    return {k.removeprefix("twin:beat_"): float(v) for k, v in data.items() if k.startswith("twin:beat_")}


def close_up_node(layout: lay.Layout, fr: StageFrames) -> int:
    """The close-up's node: in the middle rack of the first row, the slot nearest eye height."""
    first_row = [k for k, r in enumerate(layout.racks) if r.row == layout.rows[0]]
    rack = sorted(first_row, key=lambda k: layout.racks[k].xy[0])[len(first_row) // 2]
    nodes = np.flatnonzero(layout.node_rack_index == rack)
    return int(nodes[np.argmin(np.abs(layout.node_local[nodes, 2] - 1.1))])


def _metadata(stage: Usd.Stage, fr: StageFrames, timecodes: np.ndarray, mapping: cmap.ColourMapping,
              beats: dict, node_info: dict, fab_info: dict) -> None:
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
    spf = float(fr.seconds_per_frame)
    data = {
        "twin:scenario": str(scen.get("name", "")), "twin:seed": int(scen.get("seed", 0) or 0),
        "twin:version": str(man.get("twin_version", "")), "twin:scenario_sha256": str(scen.get("sha256", "")),
        "twin:time_mapping": "realtime" if fr.realtime else "compressed",
        "twin:seconds_per_timecode": spf, "twin:stage_sample_s": spf,
        "twin:simulated_seconds_per_stage_second": spf * TIMECODES_PER_SECOND,
        "twin:timecode_formula": "timecode = simulated_seconds / twin:seconds_per_timecode",
        "twin:window_start_s": float(fr.window_s[0]), "twin:window_end_s": float(fr.window_s[1]),
        "twin:duration_s": float(fr.duration_s),
        "twin:velocity_units": "metres per simulated second (FX/Airflow velocities)",
        "twin:traffic_gain": float(effects.TRAFFIC_GAIN),
        "twin:traffic_level": "min(1, gain * sqrt(value / run peak))",
        "twin:link_bytes_per_s_peak": float(fab_info["bytes_per_s_peak"]),
        "twin:p2p_gb_s_peak": float(node_info["p2p_peak_gb_s"]),
        "twin:max_flashes_per_second": float(effects.FLASH_MAX_HZ),
        "twin:fan_spin": f"{effects.MAX_SPIN_DEG_PER_FRAME:.1f} deg/frame at the run's peak rpm "
                         f"({node_info['fan_peak_rpm']:.0f}); blur disc above {effects.BLUR_START_RPM:.0f} rpm",
        "twin:legend": "./previews/colour_legend.png",
        "twin:telemetry_tolerance": {k: float(v) for k, v in TELEMETRY_TOLERANCE.items()},
        **{f"twin:beat_{k}": float(v["timecode"]) for k, v in beats.items()},
        **mapping.layer_data(),
    }
    root.customLayerData = data


def _author_looks(stage: Usd.Stage) -> Looks:
    """The one set of materials, referenced once; /Refinery binds Surface for everything below."""
    root = group(stage, lay.ROOT, Kind.Tokens.assembly)
    stage.SetDefaultPrim(root)
    looks = stage.DefinePrim(f"{lay.ROOT}/Looks", "Scope")
    looks.GetReferences().AddReference("./assets/materials.usda", Sdf.Path("/Looks"))
    m = {name: UsdShade.Material(stage.GetPrimAtPath(f"{lay.ROOT}/Looks/{name}"))
         for name in ("Surface", "Light", "Blur", "Glass", "Pulse")}
    out = Looks(surface=m["Surface"], light=m["Light"], blur=m["Blur"], glass=m["Glass"], pulse=m["Pulse"])
    bind(root, out.surface)
    return out


def _author_layout(stage: Usd.Stage, layout: lay.Layout, fr: StageFrames, looks: Looks) -> dict:
    for row in layout.rows:
        group(stage, f"{lay.ROOT}/Row_{lay.prim_name(row)}")
    for rack in layout.racks:
        prim = group(stage, rack.path, Kind.Tokens.assembly)
        label(prim, "rack")
        xform(prim, (*rack.xy, 0.0), rack.yaw_deg)
        ref(stage, f"{rack.path}/Cabinet", "rack.usda", "/Rack/Body", instanceable=True, payload=True)
        door = ref(stage, f"{rack.path}/Door", "rack.usda", "/Rack/Glass", instanceable=True, payload=True)
        bind(door, looks.glass)
    author_nodes(stage, layout, fr, looks)
    return {"rows": len(layout.rows), "racks": len(layout.racks), "nodes": layout.n_nodes,
            "prims": sum(1 for _ in stage.Traverse())}


def _key_light(stage: Usd.Stage) -> None:
    sun = UsdLux.DistantLight.Define(stage, f"{lay.ROOT}/Lights/Key")
    sun.CreateIntensityAttr(0.6)
    sun.CreateAngleAttr(4.0)
    sun.CreateColorAttr(Gf.Vec3f(0.8, 0.88, 1.0))
    UsdGeom.Xformable(sun).AddRotateXYZOp().Set(Gf.Vec3f(40.0, 0.0, 30.0))
