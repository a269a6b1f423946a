"""The 160 node references and every per-node time sample (shell heat, fans, P2P, FX, telemetry).

Each node is ``assets/node.usda`` referenced once (a component asset; not instanceable, because
its colour is per node; its heavy internals are an instanceable payload inside the asset). The
root layer holds the reference, placement, variant selections and material bindings; the time
samples are ``over`` specs (Sdf fast path, scenes/animate.py): the look (colours, fans, P2P) in
telemetry.usdc, the numbers (FX/Airflow and primvars:telemetry:*) in data.usdc
(scenes/data_layer.py, written beside the look by a helper process on large stages).

Per node (paths below /Refinery/Row_X/Rack_XNN/Node_NN):

====================================  =======================================================
 attribute                             from
====================================  =======================================================
 Shell, FrontMesh displayColor         heat ramp of the mapped quantity (scenes.mapping),
                                       standby blue when OFF, pulsing while booting
 Shell, FrontMesh primvars:emissive    the colour x emission factor (heat-driven glow; the grille:
                                       colour x 0.45, glow x 0.5)
 Shell primvars:heat                   the mapped value x in 0..1 (float[1], so Blender keeps it)
 Fan_k xformOp:rotateY                 visual spin (scenes.effects.fan_spin)
 Blur primvars:displayOpacity          blur disc above the aliasing rpm
 P2P widths, primvars:displayColor     P2P flashes (scenes.effects.flash_envelope)
 FX/Airflow velocities                 airflow / area, m per simulated s, node-local -Y
 FX/Airflow primvars:temperature_c     inlet (intake points), exhaust (exhaust points), °C
 FX/Airflow (inherited) primvars        telemetry:fan_rpm, telemetry:power_w of the node
 Node primvars:telemetry:*             the numbers: power_w, gpu_temp_c[], gpu_temp_max_c, state,
                                       fan_rpm, inlet_c, exhaust_c, airflow_m3_s, p2p_gb_s, gpu_util
====================================  =======================================================
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, Vt

from scenes import colours, effects, layout as lay
from scenes.animate import (attr_spec, swing_door_keep, write_array_series, write_cached_series, write_float_series,
                            write_kept, write_palette_series)
from scenes.frames import StageFrames
from scenes.mapping import ColourMapping, quantity_values
from scenes.prims import attr_default, bind_spec
from twin.telemetry.schema import NODE_STATES

NODE_ASSET = "node.usda"
FRONT_MESH_TINT = 0.45           # the grille: a darker metal in the heat colour, glowing at half the
FRONT_MESH_GLOW = 0.5            # shell's strength, so the fans behind it show through
P2P_STEPS = 16
P2P_WIDTH_M = (0.0015, 0.006)     # flash width at the faintest and brightest flash
P2P_GLOW = 4.0                    # emission multiplier of a full flash (HDR: reads as light)
BLUR_STEPS = 12
VELOCITY_STEP_M_S = 0.01          # FX quantisation (values within a step look identical to a sim)
TEMPERATURE_STEP_C = 0.1
FAN_ANGLE_TOL_DEG = 0.5           # rotor angle written within 0.5° (swing door): a steady fan is 2 keys
# primvars:telemetry:* are written swing-door within these tolerances (units of the primvar): at
# every stage frame the interpolated value is within the tolerance of the frame's exact float32.
# Each is half the step a real instrument or this stage's own FX data resolves, so no reader of
# the stage can tell it from the exact series; the 1-s exact values stay in Parquet.
TELEMETRY_TOLERANCE = {
    "power_w": 0.5,          # half a watt: IPMI DCMI Get Power Reading reports whole watts
    "gpu_temp_c": 0.05,      # half of the FX temperature step (TEMPERATURE_STEP_C); NVML and BMC
    "gpu_temp_max_c": 0.05,  # sensors report whole degrees (nvmlDeviceGetTemperature: unsigned int)
    "inlet_c": 0.05,
    "exhaust_c": 0.05,
    "fan_rpm": 5.0,          # 0.05 % of a chassis fan's range (the spin itself: FAN_ANGLE_TOL_DEG)
    "airflow_m3_s": 1e-4,    # half the FX velocity step x the intake area (0.01 m/s x 0.0258 m2)
    "p2p_gb_s": 0.01,        # 10 MB/s
    "gpu_util": 0.005,       # half of DCGM's 1 % step (DCGM_FI_DEV_GPU_UTIL is an integer percent)
}
CONSUMER_GPU_HINTS = ("4090", "3090", "5090", "geforce")   # node types built on open-air cards


@dataclass(frozen=True)
class Looks:
    surface: UsdShade.Material
    light: UsdShade.Material
    blur: UsdShade.Material
    glass: UsdShade.Material
    pulse: UsdShade.Material


@dataclass(frozen=True)
class Airflow:
    """The node asset's FX points: which are intake / exhaust, and the areas the air passes."""
    side: np.ndarray          # (P,) 0 intake, 1 exhaust
    intake_area_m2: float
    exhaust_area_m2: float


def read_airflow(assets_dir: Path) -> Airflow:
    """Read the FX point layout and areas from assets/node.usda (one definition: the asset)."""
    layer = Sdf.Layer.FindOrOpen(str(Path(assets_dir) / NODE_ASSET))
    spec = layer.GetPrimAtPath("/Node/FX/Airflow")
    a = spec.attributes
    return Airflow(np.array(a["primvars:fx:side"].default, dtype=np.int32),
                   float(a["fx:intake_area_m2"].default), float(a["fx:exhaust_area_m2"].default))


def gpu_variant(node_type: str) -> str:
    """Node asset `gpu` variant: open-air consumer cards for GeForce-based node types, else the
    RTX PRO blower (the run names node types, not cards; see docs/stage.md)."""
    t = node_type.lower()
    return "consumer_open_air" if any(h in t for h in CONSUMER_GPU_HINTS) else "rtx_pro_blower"


def author_nodes(stage: Usd.Stage, layout: lay.Layout, fr: StageFrames, looks: Looks) -> None:
    """Node references, placement, variants, bindings and static ids (root layer), as Sdf specs in
    one change block: the fields ref(), the variant selection, bind() and CreatePrimvar author
    through the Usd API, where each edit was a change notice the open stage processed."""
    T = Sdf.ValueTypeNames
    layer = stage.GetRootLayer()
    surface, light, blur = (m.GetPath() for m in (looks.surface, looks.light, looks.blur))
    with Sdf.ChangeBlock():
        for n, path in enumerate(layout.node_path):
            node = Sdf.CreatePrimInLayer(layer, path)
            node.specifier = Sdf.SpecifierDef
            node.referenceList.Prepend(Sdf.Reference(f"./assets/{NODE_ASSET}"))
            attr_default(node, "xformOp:translate", T.Double3, Gf.Vec3d(*map(float, layout.node_local[n])))
            attr_default(node, "xformOpOrder", T.TokenArray, Vt.TokenArray(["xformOp:translate"]), uniform=True)
            node.variantSelections["gpu"] = gpu_variant(fr.topology.node_type[n])
            bind_spec(node, surface)
            for child, material in (("P2P", light), ("Blur", blur)):   # over the asset's prims
                bind_spec(Sdf.CreatePrimInLayer(layer, f"{path}/{child}"), material)
            for name, type_name, value in (("telemetry:node_id", T.Int, n),
                                           ("telemetry:rack", T.String, layout.racks[layout.node_rack_index[n]].name)):
                attr_default(node, f"primvars:{name}", type_name, value, interpolation=UsdGeom.Tokens.constant)


def write_node_samples(tel: Sdf.Layer, layout: lay.Layout, fr: StageFrames, mapping: ColourMapping) -> dict:
    """The per-node samples of the look (inside an Sdf.ChangeBlock): heat colours, fans, P2P
    flashes. Returns counts and the traffic peaks. The numbers are write_data_samples's."""
    T = Sdf.ValueTypeNames
    tc = fr.timecodes
    specs = partial(node_attrs, tel, layout)

    # shell heat colour + glow, and the same on the front mesh
    x = mapping.normalise(quantity_values(fr, mapping.quantity.name))
    idx = colours.node_palette_index(x, fr.state, np.arange(fr.times.size))
    diffuse, glow = colours.palette()
    used = np.unique(idx).tolist()     # a run uses a few hundred of the palette's entries: build only those

    def colour_values(rgb: np.ndarray, factor: float | None = None) -> list:
        out: list = [None] * len(rgb)
        for i in used:
            c = rgb[i] if factor is None else rgb[i] * factor
            out[i] = Vt.Vec3fArray([Gf.Vec3f(*map(float, c))])
        return out
    dv, ev = colour_values(diffuse), colour_values(glow)
    n = 0
    fd, fv = colour_values(diffuse, FRONT_MESH_TINT), colour_values(glow, FRONT_MESH_GLOW)
    for part, base, emissive in (("/Shell", dv, ev), ("/FrontMesh", fd, fv)):
        n += write_palette_series(tel, specs(part, "primvars:displayColor", T.Color3fArray), tc, idx, base)
        n += write_palette_series(tel, specs(part, "primvars:emissive", T.Color3fArray), tc, idx, emissive)
    step = colours.ramp_step(x)
    n += write_palette_series(tel, specs("/Shell", "primvars:heat", T.FloatArray), tc, step,
                              [Vt.FloatArray([i / (colours.RAMP_STEPS - 1)]) for i in range(colours.RAMP_STEPS)])
    # fans: visual spin + blur disc
    angle, blur = effects.fan_spin(fr.fan_rpm)
    for i in range(3):
        n += write_float_series(tel, specs(f"/Fan_{i + 1}", "xformOp:rotateY", T.Float), tc, angle, FAN_ANGLE_TOL_DEG)
    b_code = np.rint(blur / effects.BLUR_MAX_OPACITY * (BLUR_STEPS - 1)).astype(np.int32)
    n += write_palette_series(tel, specs("/Blur", "primvars:displayOpacity", T.FloatArray), tc, b_code,
                              [Vt.FloatArray([effects.BLUR_MAX_OPACITY * k / (BLUR_STEPS - 1)]) for k in range(BLUR_STEPS)])
    # P2P flashes
    p2p_peak = float(fr.p2p_gb_s.max()) if fr.p2p_gb_s.size else 0.0
    level = effects.traffic_level(fr.p2p_gb_s, p2p_peak)
    bright = effects.flash_envelope(level) * (0.35 + 0.65 * level)
    code = np.rint(bright * (P2P_STEPS - 1)).astype(np.int32)
    frac = np.arange(P2P_STEPS) / (P2P_STEPS - 1)
    widths = [Vt.FloatArray([0.0 if k == 0 else float(P2P_WIDTH_M[0] + f * (P2P_WIDTH_M[1] - P2P_WIDTH_M[0]))])
              for k, f in enumerate(frac)]
    light = [Vt.Vec3fArray([Gf.Vec3f(*(float(c * f * P2P_GLOW) for c in colours.P2P_RGB))]) for f in frac]
    n += write_palette_series(tel, specs("/P2P", "widths", T.FloatArray), tc, code, widths)
    n += write_palette_series(tel, specs("/P2P", "primvars:displayColor", T.Color3fArray), tc, code, light)
    return {"samples": n, "p2p_peak_gb_s": p2p_peak, "fan_peak_rpm": float(fr.fan_rpm.max()) if fr.fan_rpm.size else 0.0}


def write_data_samples(layer: Sdf.Layer, layout: lay.Layout, fr: StageFrames, airflow: Airflow) -> int:
    """The data layer's per-node samples (inside an Sdf.ChangeBlock): FX/Airflow and the
    primvars:telemetry:* numbers. Returns the count."""
    specs = partial(node_attrs, layer, layout)
    return _write_airflow(layer, specs, fr, airflow) + _write_telemetry(layer, specs, fr)


def node_attrs(layer: Sdf.Layer, layout: lay.Layout, suffix: str, name: str, type_name,
               interpolation: str | None = None) -> list[Sdf.Path]:
    """The path of attribute `name` on every node's prim `suffix` ("" for the node itself) in
    `layer`, its spec created where missing (scenes.animate.attr_spec), in node order."""
    return [attr_spec(layer, p + suffix, name, type_name, interpolation=interpolation).path for p in layout.node_path]


def _write_airflow(tel: Sdf.Layer, specs, fr: StageFrames, air: Airflow) -> int:
    """FX/Airflow: velocities from airflow / area and temperatures (quantised). Fan rpm and power
    are the node's primvars:telemetry:fan_rpm / power_w, which the points inherit (constant
    primvars on an ancestor apply to every gprim below it), so they are written once."""
    T = Sdf.ValueTypeNames
    tc = fr.timecodes
    intake = air.side == 0
    v_in = fr.airflow_m3_s / air.intake_area_m2
    v_out = fr.airflow_m3_s / air.exhaust_area_m2
    vcode = np.rint(np.stack([v_in, v_out], axis=-1) / VELOCITY_STEP_M_S).astype(np.int64)

    def velocities(key: tuple) -> Vt.Vec3fArray:
        a, b = (k * VELOCITY_STEP_M_S for k in key)       # air flows front to rear: -Y node-local
        return Vt.Vec3fArray([Gf.Vec3f(0.0, -a if s else -b, 0.0) for s in intake])
    n = write_cached_series(tel, specs("/FX/Airflow", "velocities", T.Vector3fArray), tc, vcode, velocities)
    temps = np.stack([np.nan_to_num(fr.inlet_c), np.nan_to_num(fr.exhaust_c)], axis=-1)
    tcode = np.rint(temps / TEMPERATURE_STEP_C).astype(np.int64)

    def temperature(key: tuple) -> Vt.FloatArray:
        a, b = (k * TEMPERATURE_STEP_C for k in key)
        return Vt.FloatArray([a if s else b for s in intake])
    return n + write_cached_series(tel, specs("/FX/Airflow", "primvars:temperature_c", T.FloatArray), tc, tcode,
                                   temperature)


def _write_telemetry(tel: Sdf.Layer, specs, fr: StageFrames) -> int:
    """primvars:telemetry:* on each node prim (float32, swing-door within TELEMETRY_TOLERANCE; the
    state exactly; the 1-s detail stays in Parquet)."""
    T = Sdf.ValueTypeNames
    tc = fr.timecodes
    series = {"power_w": fr.power_w, "gpu_temp_max_c": np.nan_to_num(fr.gpu_temp_max_c), "fan_rpm": fr.fan_rpm,
              "inlet_c": np.nan_to_num(fr.inlet_c), "exhaust_c": np.nan_to_num(fr.exhaust_c),
              "airflow_m3_s": fr.airflow_m3_s, "p2p_gb_s": fr.p2p_gb_s, "gpu_util": fr.gpu_util}
    # one swing-door pass over every float series (its Python loop is per frame, not per series)
    v = np.concatenate([np.asarray(x, dtype=np.float32) for x in series.values()], axis=1)
    tol = np.repeat([TELEMETRY_TOLERANCE[k] for k in series], fr.power_w.shape[1])
    keep = swing_door_keep(v, tol)
    n = write_kept(tel, [p for name in series for p in specs("", f"primvars:telemetry:{name}", T.Float, "constant")],
                   tc, keep, v.T[keep.T].tolist())
    n += write_palette_series(tel, specs("", "primvars:telemetry:state", T.Token, "constant"), tc, fr.state,
                              list(NODE_STATES))
    n += write_array_series(tel, specs("", "primvars:telemetry:gpu_temp_c", T.FloatArray, "constant"), tc,
                            np.nan_to_num(fr.gpu_temp_c).astype(np.float32), Vt.FloatArray.FromNumpy,
                            TELEMETRY_TOLERANCE["gpu_temp_c"])
    return n
