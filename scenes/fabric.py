"""``/Refinery/Fabric``: leaf (ToR) and spine switches, storage, and one BasisCurve per link.

Switches: a tor_switch asset on top of every rack (leaf), spines above the cold-aisle centre line
evenly along X at tray height, storage beyond the last rack (positions: scenes.layout).
Cables: linear BasisCurves routed up into the overhead trays and across; colour (utilisation ramp
of scenes.colours), width and opacity are time-sampled from the `links` table's utilisation
(mean over each stage frame window), quantised to UTIL_STEPS.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pxr import Gf, Kind, Sdf, Usd, UsdGeom, Vt

from scenes import colours, layout as lay
from scenes.animate import attr_spec, write_palette_series
from scenes.frames import Links
from scenes.prims import group, ref

FABRIC = f"{lay.ROOT}/Fabric"
LINK_WIDTH_M = {"nic-leaf": (0.004, 0.012), "leaf-spine": (0.008, 0.03), "storage-spine": (0.008, 0.03)}
LINK_OPACITY = (0.15, 1.0)    # idle links stay faintly visible; saturated ones are opaque


@dataclass(frozen=True)
class FabricPrims:
    link_paths: tuple[str, ...]     # indexed like Links.link_id
    kinds: tuple[str, ...]


def _count(names: set[str], kind: str) -> int:
    ks = [int(n.split(":", 1)[1]) for n in names if n.startswith(kind + ":")]
    return max(ks) + 1 if ks else 0


def author_fabric(stage: Usd.Stage, layout: lay.Layout, links: Links | None) -> FabricPrims:
    """Define switches and link curves (static parts) on the root layer."""
    group(stage, FABRIC)
    group(stage, f"{FABRIC}/Leaves")
    for rack in layout.racks:   # ToR on the rack roof, turned like its rack
        ref(stage, f"{FABRIC}/Leaves/Leaf_{lay.prim_name(rack.name)}", "tor_switch.usda", instanceable=True,
             translate=(*rack.xy, lay.RACK_HEIGHT_M), yaw_deg=rack.yaw_deg)
    if links is None or not len(links.link_id):
        return FabricPrims((), ())
    names = set(links.src) | set(links.dst)
    n_spines, n_storage = _count(names, "spine"), _count(names, "storage")
    pos = lay.endpoint_positions(layout, names, n_spines, n_storage)
    for kind, folder in (("spine", "Spines"), ("storage", "Storage")):
        keys = sorted(n for n in names if n.startswith(kind + ":"))
        if keys:
            group(stage, f"{FABRIC}/{folder}")
        for name in keys:
            ref(stage, f"{FABRIC}/{folder}/{lay.prim_name(name).title()}", "tor_switch.usda", instanceable=True,
                 translate=pos[name] - np.array([0.0, 0.0, lay.TOR_HEIGHT_M / 2]))
    UsdGeom.Scope.Define(stage, f"{FABRIC}/Links")
    paths = []
    for lid, src, dst, kind in zip(links.link_id, links.src, links.dst, links.kind):
        path = f"{FABRIC}/Links/Link_{int(lid):04d}"
        pts = lay.link_polyline(pos[src], pos[dst])
        c = UsdGeom.BasisCurves.Define(stage, path)
        c.CreateTypeAttr(UsdGeom.Tokens.linear)
        c.CreateCurveVertexCountsAttr([len(pts)])
        c.CreatePointsAttr(Vt.Vec3fArray([Gf.Vec3f(*map(float, p)) for p in pts]))
        c.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*map(float, pts.min(0) - 0.03)),
                                          Gf.Vec3f(*map(float, pts.max(0) + 0.03))]))
        c.CreateWidthsAttr()
        c.SetWidthsInterpolation(UsdGeom.Tokens.constant)
        c.CreateDisplayColorPrimvar(UsdGeom.Tokens.constant)
        c.CreateDisplayOpacityPrimvar(UsdGeom.Tokens.constant)
        prim = c.GetPrim()
        prim.CreateAttribute("fabric:src", Sdf.ValueTypeNames.String, custom=True).Set(src)
        prim.CreateAttribute("fabric:dst", Sdf.ValueTypeNames.String, custom=True).Set(dst)
        prim.CreateAttribute("fabric:kind", Sdf.ValueTypeNames.Token, custom=True).Set(kind)
        paths.append(path)
    Usd.ModelAPI(stage.GetPrimAtPath(FABRIC)).SetKind(Kind.Tokens.group)
    return FabricPrims(tuple(paths), tuple(links.kind))


def link_width_m(kind: str, util: np.ndarray) -> np.ndarray:
    """Curve width (m) of a link of `kind` at utilisation 0..1 (linear between idle and full)."""
    lo, hi = LINK_WIDTH_M.get(kind, LINK_WIDTH_M["nic-leaf"])
    return lo + np.clip(util, 0.0, 1.0) * (hi - lo)


def sample_fabric(tel: Sdf.Layer, fabric: FabricPrims, links: Links | None, timecodes: np.ndarray) -> int:
    """Time-sample every link's colour, width and opacity from utilisation (inside a ChangeBlock)."""
    if links is None or not fabric.link_paths:
        return 0
    T = Sdf.ValueTypeNames
    step = colours.util_step(links.util)                        # (F, L)
    u = np.arange(colours.UTIL_STEPS) / (colours.UTIL_STEPS - 1)
    rgb = [Vt.Vec3fArray([Gf.Vec3f(*map(float, c))]) for c in colours.util_rgb(u)]
    opac = [Vt.FloatArray([float(LINK_OPACITY[0] + f * (LINK_OPACITY[1] - LINK_OPACITY[0]))]) for f in u]
    n = write_palette_series(tel, [attr_spec(tel, p, "primvars:displayColor", T.Color3fArray).path
                                   for p in fabric.link_paths], timecodes, step, rgb)
    n += write_palette_series(tel, [attr_spec(tel, p, "primvars:displayOpacity", T.FloatArray).path
                                    for p in fabric.link_paths], timecodes, step, opac)
    # widths depend on the kind: offset codes per kind so each (kind, step) has its own Vt value
    kinds = sorted(set(fabric.kinds))
    widths = [Vt.FloatArray([float(w)]) for k in kinds for w in link_width_m(k, u)]
    code = step + np.array([kinds.index(k) for k in fabric.kinds])[None, :] * colours.UTIL_STEPS
    n += write_palette_series(tel, [attr_spec(tel, p, "widths", T.FloatArray).path for p in fabric.link_paths],
                              timecodes, code, widths)
    return n
