"""``/Refinery/Room``: walls, ceiling, raised floor over the plenum, cooling units, overhead trays,
the sealed glass cold-aisle containment, ceiling light panels (root layer, static).

The room is a stage choice sized from the racks (scenes/layout.py). Air path it depicts: the
cooling units blow into the floor plenum (0.6 m deep); perforated tiles feed the contained cold
aisle and each rack's bottom opening takes plenum air straight into its glass-sealed front;
exhaust leaves through the perforated rear doors into the hot aisles.
"""
from __future__ import annotations

import numpy as np
from pxr import Gf, Usd, UsdGeom, UsdLux

from scenes import layout as lay
from scenes.prims import bind, boxes, group, label, mesh, ref

ROOM = f"{lay.ROOT}/Room"
WALL_T_M = 0.12
GLASS_T_M = 0.008
DOORWAY_M = 0.62             # the aisle doors stand open this wide (the Hero walks through)
PANEL_GLOW = 3.0             # ceiling light panels (Light look emission)


def author_room(stage: Usd.Stage, layout: lay.Layout, looks) -> None:
    group(stage, ROOM)
    (x0, y0), (x1, y1) = layout.room_min, layout.room_max
    z_top, z_pl = lay.CEILING_Z_M, -lay.PLENUM_DEPTH_M
    t = WALL_T_M
    walls = boxes(np.array([[x0 - t, y0 - t, z_pl], [x0 - t, y1, z_pl], [x0 - t, y0, z_pl], [x1, y0, z_pl]]),
                  np.array([[x1 + t, y0, z_top], [x1 + t, y1 + t, z_top], [x0, y1, z_top], [x1 + t, y1, z_top]]))
    mesh(stage, f"{ROOM}/Walls", *walls, rgb=(0.30, 0.32, 0.36))
    mesh(stage, f"{ROOM}/Ceiling", *boxes(np.array([[x0 - t, y0 - t, z_top]]), np.array([[x1 + t, y1 + t, z_top + 0.05]])),
         rgb=(0.22, 0.23, 0.25))
    mesh(stage, f"{ROOM}/PlenumSlab", *boxes(np.array([[x0, y0, z_pl - 0.05]]), np.array([[x1, y1, z_pl]])),
         rgb=(0.10, 0.11, 0.12))
    perforated, solid = lay.floor_cells(layout)
    h = lay.TILE_M / 2 - 0.004                    # 8 mm seams between deck tiles
    mesh(stage, f"{ROOM}/Deck", *boxes(np.c_[solid - h, np.full(len(solid), -0.03)],
                                       np.c_[solid + h, np.zeros(len(solid))]), rgb=(0.42, 0.44, 0.47))
    pedestals = np.array([[cx, cy] for cx in np.arange(x0, x1 + 1e-6, lay.TILE_M)
                          for cy in np.arange(y0, y1 + 1e-6, lay.TILE_M * 2)])
    mesh(stage, f"{ROOM}/Pedestals", *boxes(np.c_[pedestals - 0.015, np.full(len(pedestals), z_pl)],
                                            np.c_[pedestals + 0.015, np.full(len(pedestals), -0.03)]), rgb=(0.25, 0.26, 0.28))
    group(stage, f"{ROOM}/Tiles", kind=None)
    for k, (x, y) in enumerate(perforated):
        ref(stage, f"{ROOM}/Tiles/Tile_{k:03d}", "floor_tile.usda", instanceable=True, translate=(x, y, 0.0))
    group(stage, f"{ROOM}/Trays", kind=None)
    for k, p in enumerate(lay.tray_centres(layout)):
        ref(stage, f"{ROOM}/Trays/Tray_{k:03d}", "cable_tray.usda", instanceable=True, translate=p)
    _cooling_units(stage, layout)
    _containment(stage, layout, looks)
    _ceiling_lights(stage, layout, looks)


def _cooling_units(stage: Usd.Stage, layout: lay.Layout) -> None:
    """Downflow units against both end walls, in line with the rows, facing the racks."""
    group(stage, f"{ROOM}/Cooling", kind=None)
    (x0, _), (x1, _) = layout.room_min, layout.room_max
    d = lay.COOLING_UNIT_M[1]
    ys = sorted({round(p.xy[1], 6) for p in layout.racks})
    k = 0
    for x, yaw in ((x0 + d / 2 + 0.05, -90.0), (x1 - d / 2 - 0.05, 90.0)):
        for y in ys:
            unit = ref(stage, f"{ROOM}/Cooling/Crah_{k}", "cooling_unit.usda", instanceable=True,
                       translate=(x, y, 0.0), yaw_deg=yaw)
            label(unit, "cooling_unit")
            k += 1


def _containment(stage: Usd.Stage, layout: lay.Layout, looks) -> None:
    """Glass roof over each cold aisle and glass end frames with an open sliding doorway."""
    group(stage, f"{ROOM}/Containment", kind=None)
    half = lay.aisle_half_width(layout)
    rx0, rx1 = layout.racks_min[0], layout.racks_max[0]
    zc = lay.CONTAINMENT_Z_M
    for k, ya in enumerate(lay.aisle_ys(layout)):
        base = f"{ROOM}/Containment/Aisle_{k}"
        group(stage, base, kind=None)
        side = (half - DOORWAY_M / 2)
        lo = [[rx0 - 0.01, ya - half, zc]]
        hi = [[rx1 + 0.01, ya + half, zc + GLASS_T_M]]
        for xe in (rx0 - 0.03, rx1 + 0.03):          # fixed panes each side of the doorway
            lo += [[xe - GLASS_T_M / 2, ya - half, 0.0], [xe - GLASS_T_M / 2, ya + half - side, 0.0]]
            hi += [[xe + GLASS_T_M / 2, ya - half + side, zc], [xe + GLASS_T_M / 2, ya + half, zc]]
        glass = mesh(stage, f"{base}/Glass", *boxes(np.array(lo), np.array(hi)), rgb=(0.55, 0.7, 0.75))
        bind(glass.GetPrim(), looks.glass)
        flo, fhi = [], []
        for x in np.arange(rx0, rx1 + 1e-6, 2 * lay.TILE_M):   # roof glazing bars every 1.2 m
            flo.append([x - 0.008, ya - half, zc + GLASS_T_M])
            fhi.append([x + 0.008, ya + half, zc + GLASS_T_M + 0.012])
        for xe in (rx0 - 0.03, rx1 + 0.03):                 # door posts and the transom
            for yy in (ya - half, ya - half + side, ya + half - side, ya + half):
                flo.append([xe - 0.02, yy - 0.02, 0.0])
                fhi.append([xe + 0.02, yy + 0.02, zc])
            flo.append([xe - 0.02, ya - half, zc - 0.05])
            fhi.append([xe + 0.02, ya + half, zc])
        mesh(stage, f"{base}/Frame", *boxes(np.array(flo), np.array(fhi)), rgb=(0.55, 0.57, 0.6))


def _ceiling_lights(stage: Usd.Stage, layout: lay.Layout, looks) -> None:
    """Light panels in the ceiling over every aisle (emissive meshes) plus RectLights that light
    the room; intensities are a look, not photometry (the heat glow must stay the brightest thing)."""
    stage.DefinePrim(f"{lay.ROOT}/Lights", "Scope")
    rx0, rx1 = layout.racks_min[0], layout.racks_max[0]
    ys = sorted({round(p.xy[1] + np.sign(p.xy[1] or 1) * (lay.RACK_DEPTH_M / 2 + 0.6), 6) for p in layout.racks}
                | {round(y, 6) for y in lay.aisle_ys(layout)})
    z = lay.CEILING_Z_M - 0.01
    lo = np.array([[rx0, y - 0.15, z - 0.02] for y in ys])
    hi = np.array([[rx1, y + 0.15, z] for y in ys])
    panels = mesh(stage, f"{ROOM}/LightPanels", *boxes(lo, hi), rgb=(0.9 * PANEL_GLOW, 0.95 * PANEL_GLOW, PANEL_GLOW))
    bind(panels.GetPrim(), looks.light)
    for k, y in enumerate(ys):
        panel = UsdLux.RectLight.Define(stage, f"{lay.ROOT}/Lights/Panel_{k}")
        panel.CreateWidthAttr(float(rx1 - rx0))
        panel.CreateHeightAttr(0.3)
        panel.CreateIntensityAttr(12.0)
        panel.CreateColorAttr(Gf.Vec3f(0.85, 0.92, 1.0))
        UsdGeom.Xformable(panel).AddTranslateOp().Set(Gf.Vec3d((rx0 + rx1) / 2, y, z - 0.03))
    dome = UsdLux.DomeLight.Define(stage, f"{lay.ROOT}/Lights/Fill")
    dome.CreateIntensityAttr(0.15)
