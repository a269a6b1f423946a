"""``/Refinery/Fabric``: leaf and spine switches, storage, cables routed through the overhead trays
(scenes.routes) and the RDMA pulses that travel along them.

Brightness and width follow the ``links`` table's bytes (window mean per stage frame) through the
stated visual gain of scenes.effects.traffic_level, relative to the run's busiest link-frame, so
the light traffic of an in-rack pipeline still shows. ``fabric:bytes_per_s_peak`` (on
/Refinery/Fabric) records that reference; ``customLayerData`` states the gain.

* Link_####: a pinned Catmull-Rom cable; ``widths`` and ``primvars:displayColor`` (the Light
  look's emission) time-sampled from its level; ``primvars:fx:pinned`` marks the pins;
  ``fabric:src``/``fabric:dst``/``fabric:kind`` name the endpoints.
* Pulses: one Points prim holding the pulses of every link that carries bytes at some frame;
  ``points`` move along the routes every frame, ``widths`` and ``primvars:displayOpacity``
  (brightness) follow the link's level (0 = invisible), ``primvars:fabric:link`` names each
  pulse's link.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pxr import Gf, Kind, Sdf, Usd, UsdGeom, Vt

from scenes import colours, effects, layout as lay, routes
from scenes.animate import attr_spec, write_palette_series
from scenes.frames import Links
from scenes.prims import attr_default, bind, bind_spec, group, label, ref

FABRIC = f"{lay.ROOT}/Fabric"
LEVEL_STEPS = 24
CABLE_WIDTH_M = {"nic-leaf": (0.006, 0.014), "leaf-spine": (0.010, 0.026), "storage-spine": (0.010, 0.026)}
CABLE_GLOW = 2.5                   # emission of a cable at full level (x RDMA_RGB)
PULSE_WIDTH_M = (0.018, 0.045)     # pulse diameter at the faintest and the busiest link
PULSE_GLOW = 6.0


@dataclass(frozen=True)
class FabricPrims:
    link_paths: tuple[str, ...]     # indexed like Links.link_id
    kinds: tuple[str, ...]
    tracks: routes.PulseTracks | None


def _count(names: set[str], kind: str) -> int:
    ks = [int(n.split(":", 1)[1]) for n in names if n.startswith(kind + ":")]
    return max(ks) + 1 if ks else 0


def author_fabric(stage: Usd.Stage, layout: lay.Layout, links: Links | None, looks) -> FabricPrims:
    """Define switches, cable curves and the pulse points (static parts) on the root layer."""
    group(stage, FABRIC)
    group(stage, f"{FABRIC}/Leaves")
    for rack in layout.racks:   # each rack's leaf, hung under the aisle tray in front of it, ports to the rack
        leaf = ref(stage, f"{FABRIC}/Leaves/Leaf_{lay.prim_name(rack.name)}", "tor_switch.usda", instanceable=True,
                   translate=lay.leaf_centre(layout, rack) - np.array([0.0, 0.0, lay.TOR_HEIGHT_M / 2]),
                   yaw_deg=rack.yaw_deg + 180.0)
        bind(leaf, looks.surface)
    if links is None or not len(links.link_id):
        return FabricPrims((), (), None)
    names = set(links.src) | set(links.dst)
    n_spines, n_storage, n_super = _count(names, "spine"), _count(names, "storage"), _count(names, "super")
    pos = lay.endpoint_positions(layout, names, n_spines, n_storage, n_super)
    for kind, folder in (("spine", "Spines"), ("super", "SuperSpines"), ("storage", "Storage")):
        keys = sorted(n for n in names if n.startswith(kind + ":"))
        if keys:
            group(stage, f"{FABRIC}/{folder}")
        for name in keys:
            box = ref(stage, f"{FABRIC}/{folder}/{lay.prim_name(name).title()}", "tor_switch.usda", instanceable=True,
                      translate=pos[name] - np.array([0.0, 0.0, lay.TOR_HEIGHT_M / 2]))
            bind(box, looks.surface)
    UsdGeom.Scope.Define(stage, f"{FABRIC}/Links")
    paths, route_list = [], []
    root, light = stage.GetRootLayer(), looks.light.GetPath()
    # the cables are plain specs on the root layer, written in one change block: through the Usd
    # API each of their ~15 edits was a change notice the stage processed (~1 ms a cable)
    with Sdf.ChangeBlock():
        for lane, (lid, src, dst, kind) in enumerate(zip(links.link_id, links.src, links.dst, links.kind)):
            path = f"{FABRIC}/Links/Link_{int(lid):04d}"
            r = routes.route_link(layout, src, dst, pos, lane)
            _cable(root, path, r, src, dst, kind, light)
            paths.append(path)
            route_list.append(r)
    busy = [i for i in range(len(route_list)) if links.bytes_per_s[:, i].max() > 0]   # links that ever carry bytes
    tracks = routes.pulse_tracks([route_list[i] for i in busy], busy) if busy else None
    if tracks is not None and tracks.length.size == 0:
        tracks = None
    if tracks is not None:
        _pulses(stage, tracks, links, looks)
    fab = stage.GetPrimAtPath(FABRIC)
    Usd.ModelAPI(fab).SetKind(Kind.Tokens.group)
    label(fab, "network")
    return FabricPrims(tuple(paths), tuple(links.kind), tracks)


def _pulses(stage: Usd.Stage, tracks: routes.PulseTracks, links: Links, looks) -> None:
    pulses = UsdGeom.Points.Define(stage, f"{FABRIC}/Pulses")
    pulses.CreatePointsAttr()
    pulses.CreateWidthsAttr()
    pulses.SetWidthsInterpolation(UsdGeom.Tokens.vertex)
    pulses.CreateDisplayColorPrimvar(UsdGeom.Tokens.constant).Set(
        Vt.Vec3fArray([Gf.Vec3f(*(float(c * PULSE_GLOW) for c in colours.RDMA_RGB))]))
    pulses.CreateDisplayOpacityPrimvar(UsdGeom.Tokens.vertex)
    pts = tracks.points
    pulses.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*map(float, pts.min(0) - 0.05)), Gf.Vec3f(*map(float, pts.max(0) + 0.05))]))
    UsdGeom.PrimvarsAPI(pulses).CreatePrimvar("fabric:link", Sdf.ValueTypeNames.IntArray, UsdGeom.Tokens.vertex).Set(
        Vt.IntArray([int(links.link_id[i]) for i in tracks.link_of_pulse]))
    bind(pulses.GetPrim(), looks.pulse)


def _cable(layer: Sdf.Layer, path: str, r: routes.Route, src: str, dst: str, kind: str, light: Sdf.Path) -> None:
    """A pinned Catmull-Rom BasisCurves cable bound to the Light look, as Sdf specs: the fields
    UsdGeom.BasisCurves.Define, its Create*Attr calls and MaterialBindingAPI.Bind author."""
    T = Sdf.ValueTypeNames
    prim = Sdf.CreatePrimInLayer(layer, path)
    prim.specifier = Sdf.SpecifierDef
    prim.typeName = "BasisCurves"
    attr_default(prim, "type", T.Token, UsdGeom.Tokens.cubic, uniform=True)
    attr_default(prim, "basis", T.Token, UsdGeom.Tokens.catmullRom, uniform=True)
    attr_default(prim, "wrap", T.Token, UsdGeom.Tokens.pinned, uniform=True)
    attr_default(prim, "curveVertexCounts", T.IntArray, Vt.IntArray([len(r.points)]))
    attr_default(prim, "points", T.Point3fArray, Vt.Vec3fArray.FromNumpy(r.points.astype(np.float32)))
    attr_default(prim, "extent", T.Float3Array, Vt.Vec3fArray([Gf.Vec3f(*map(float, r.points.min(0) - 0.03)),
                                                              Gf.Vec3f(*map(float, r.points.max(0) + 0.03))]))
    attr_default(prim, "widths", T.FloatArray, interpolation=UsdGeom.Tokens.constant)
    attr_default(prim, "primvars:displayColor", T.Color3fArray, interpolation=UsdGeom.Tokens.constant)
    attr_default(prim, "primvars:fx:pinned", T.FloatArray, Vt.FloatArray.FromNumpy(r.pinned),
                 interpolation=UsdGeom.Tokens.vertex)
    attr_default(prim, "fabric:src", T.String, src, custom=True)
    attr_default(prim, "fabric:dst", T.String, dst, custom=True)
    attr_default(prim, "fabric:kind", T.Token, kind, custom=True)
    bind_spec(prim, light)


def link_level(links: Links) -> tuple[np.ndarray, float]:
    """(F, L) visual level of every link (traffic gain, then smoothed under 3 Hz) and the peak
    bytes/s it is relative to."""
    peak = float(links.bytes_per_s.max()) if links.bytes_per_s.size else 0.0
    return effects.smooth_level(effects.traffic_level(links.bytes_per_s, peak)), peak


def sample_fabric(tel: Sdf.Layer, fabric: FabricPrims, links: Links | None, timecodes: np.ndarray) -> dict:
    """Time-sample every cable's width/colour and the pulses (inside a ChangeBlock)."""
    if links is None or not fabric.link_paths:
        return {"samples": 0, "bytes_per_s_peak": 0.0}
    T = Sdf.ValueTypeNames
    level, peak = link_level(links)
    step = np.rint(level * (LEVEL_STEPS - 1)).astype(np.int32)          # (F, L)
    u = np.arange(LEVEL_STEPS) / (LEVEL_STEPS - 1)
    idle, hot = np.array(colours.CABLE_IDLE_RGB), np.array(colours.RDMA_RGB) * CABLE_GLOW
    rgb = [Vt.Vec3fArray([Gf.Vec3f(*map(float, idle + f * (hot - idle)))]) for f in u]
    n = write_palette_series(tel, [attr_spec(tel, p, "primvars:displayColor", T.Color3fArray).path
                                   for p in fabric.link_paths], timecodes, step, rgb)
    kinds = sorted(set(fabric.kinds))
    widths = []
    for k in kinds:
        lo, hi = CABLE_WIDTH_M.get(k, CABLE_WIDTH_M["nic-leaf"])
        widths += [Vt.FloatArray([float(lo + f * (hi - lo))]) for f in u]
    code = step + np.array([kinds.index(k) for k in fabric.kinds])[None, :] * LEVEL_STEPS
    n += write_palette_series(tel, [attr_spec(tel, p, "widths", T.FloatArray).path for p in fabric.link_paths],
                              timecodes, code, widths)
    n += _sample_pulses(tel, fabric.tracks, level, timecodes)
    return {"samples": n, "bytes_per_s_peak": peak}


def _sample_pulses(tel: Sdf.Layer, tracks: routes.PulseTracks | None, level: np.ndarray, timecodes: np.ndarray) -> int:
    """Pulse positions every frame; widths and displayOpacity (brightness) from the link level."""
    if tracks is None or tracks.length.size == 0:
        return 0
    base = f"{FABRIC}/Pulses"
    T = Sdf.ValueTypeNames
    p_pts = attr_spec(tel, base, "points", T.Point3fArray).path
    p_w = attr_spec(tel, base, "widths", T.FloatArray).path
    p_o = attr_spec(tel, base, "primvars:displayOpacity", T.FloatArray).path
    n = 0
    for f, t in enumerate(timecodes.tolist()):
        lv = level[f, tracks.link_of_pulse].astype(np.float32)
        w = np.where(lv > 0, PULSE_WIDTH_M[0] + lv * (PULSE_WIDTH_M[1] - PULSE_WIDTH_M[0]), 0.0).astype(np.float32)
        tel.SetTimeSample(p_pts, t, Vt.Vec3fArray.FromNumpy(routes.pulse_positions(tracks, f).astype(np.float32)))
        tel.SetTimeSample(p_w, t, Vt.FloatArray.FromNumpy(w))
        tel.SetTimeSample(p_o, t, Vt.FloatArray.FromNumpy(lv))
        n += 3
    return n
