"""Generate the hand-authored USD assets in this folder (run once: ``python assets/make_assets.py``).

Plain USDA text (no pxr: only scenes/ imports pxr), readable and diffable. Metres, Z up, fronts
facing +Y (the stage turns row B by 180°). Every asset's default prim carries its kind,
``assetInfo`` and, for racks, nodes, GPUs, switches and cooling units, a semantic label. No asset
carries materials: the stage binds its one set of Looks (materials.usda).

Dimensions (sources: EIA-310 rack units of 44.45 mm and 19-inch rails at 482.6 mm; 600 x 1200 mm
42U cabinets; 600 mm raised-floor tiles; 120 mm fans; full-height dual-slot PCIe cards
111 x 267 mm; room parts in room_assets.py):

=================  =====================================================================
node.usda          THE node component: Shell, FrontMesh, Internals (instanceable payload),
                   Fan_1..3 rotors, Blur discs, P2P arcs, FX/Airflow points; variant sets
                   ``gpu`` (rtx_pro_blower | consumer_open_air) and ``lod`` (full | proxy)
node_internals     board, 3 GPU cards, PSU, NIC and 3 fan housings (variant set ``gpu``)
gpu.usda           PCIe card 0.040 x 0.267 x 0.111 m; variant set ``card`` (blower_2slot | open_air_3slot)
fan.usda           120 x 120 x 25 mm fan: /Fan/Housing (static) and /Fan/Rotor (7 blades)
psu.usda           ATX 1600 W power supply 0.150 x 0.200 x 0.086 m (Dark Power Pro 13)
nic.usda           low-profile NIC 0.069 x 0.168 x 0.015 m with two QSFP cages
materials.usda     /Looks: Surface (displayColor + emissive), Glass, Blur (displayOpacity), Light, Pulse
=================  =====================================================================

Positions that scenes/layout.py relies on (keep in sync): node depth 0.80 m with its ears at the
front face, NIC at node-local (0.07, -0.30, 0.03).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from room_assets import ROOM_ASSETS  # noqa: E402
from usda_text import U, MeshBuilder, asset, f5, mesh_usda, vec, xform_ref  # noqa: E402

MATERIALS = '''#usda 1.0
(
    defaultPrim = "Looks"
    doc = "The stage's one set of looks (UsdPreviewSurface). Surface: base colour from primvars:displayColor, emission from primvars:emissive (black when absent). Glass: rack doors and containment. Blur: fan blur discs, opacity from primvars:displayOpacity. Light: self-lit traffic (cables, P2P flashes, light panels), emission from primvars:displayColor. Pulse: the RDMA pulses, emission from displayColor, opacity (brightness) from displayOpacity."
    metersPerUnit = 1
    upAxis = "Z"
)

def Scope "Looks"
{
    def Material "Surface"
    {
        token outputs:surface.connect = </Looks/Surface/Shader.outputs:surface>

        def Shader "Shader"
        {
            uniform token info:id = "UsdPreviewSurface"
            color3f inputs:diffuseColor.connect = </Looks/Surface/Colour.outputs:result>
            color3f inputs:emissiveColor.connect = </Looks/Surface/Emission.outputs:result>
            float inputs:metallic = 0
            float inputs:roughness = 0.65
            token outputs:surface
        }

        def Shader "Colour"
        {
            uniform token info:id = "UsdPrimvarReader_float3"
            float3 inputs:fallback = (0.5, 0.5, 0.5)
            string inputs:varname = "displayColor"
            float3 outputs:result
        }

        def Shader "Emission"
        {
            uniform token info:id = "UsdPrimvarReader_float3"
            float3 inputs:fallback = (0, 0, 0)
            string inputs:varname = "emissive"
            float3 outputs:result
        }
    }

    def Material "Glass"
    {
        token outputs:surface.connect = </Looks/Glass/Shader.outputs:surface>

        def Shader "Shader"
        {
            uniform token info:id = "UsdPreviewSurface"
            color3f inputs:diffuseColor = (0.55, 0.7, 0.75)
            float inputs:ior = 1.5
            float inputs:metallic = 0
            float inputs:opacity = 0.15
            float inputs:roughness = 0.03
            token outputs:surface
        }
    }

    def Material "Blur"
    {
        token outputs:surface.connect = </Looks/Blur/Shader.outputs:surface>

        def Shader "Shader"
        {
            uniform token info:id = "UsdPreviewSurface"
            color3f inputs:diffuseColor.connect = </Looks/Blur/Colour.outputs:result>
            float inputs:opacity.connect = </Looks/Blur/Opacity.outputs:result>
            float inputs:roughness = 0.6
            token outputs:surface
        }

        def Shader "Colour"
        {
            uniform token info:id = "UsdPrimvarReader_float3"
            float3 inputs:fallback = (0.1, 0.1, 0.1)
            string inputs:varname = "displayColor"
            float3 outputs:result
        }

        def Shader "Opacity"
        {
            uniform token info:id = "UsdPrimvarReader_float"
            float inputs:fallback = 0
            string inputs:varname = "displayOpacity"
            float outputs:result
        }
    }

    def Material "Light"
    {
        token outputs:surface.connect = </Looks/Light/Shader.outputs:surface>

        def Shader "Shader"
        {
            uniform token info:id = "UsdPreviewSurface"
            color3f inputs:diffuseColor = (0.02, 0.02, 0.02)
            color3f inputs:emissiveColor.connect = </Looks/Light/Emission.outputs:result>
            float inputs:roughness = 0.4
            token outputs:surface
        }

        def Shader "Emission"
        {
            uniform token info:id = "UsdPrimvarReader_float3"
            float3 inputs:fallback = (0, 0, 0)
            string inputs:varname = "displayColor"
            float3 outputs:result
        }
    }
    def Material "Pulse"
    {
        token outputs:surface.connect = </Looks/Pulse/Shader.outputs:surface>

        def Shader "Shader"
        {
            uniform token info:id = "UsdPreviewSurface"
            color3f inputs:diffuseColor = (0.02, 0.02, 0.02)
            color3f inputs:emissiveColor.connect = </Looks/Pulse/Emission.outputs:result>
            float inputs:opacity.connect = </Looks/Pulse/Opacity.outputs:result>
            token outputs:surface
        }

        def Shader "Emission"
        {
            uniform token info:id = "UsdPrimvarReader_float3"
            float3 inputs:fallback = (0, 0, 0)
            string inputs:varname = "displayColor"
            float3 outputs:result
        }

        def Shader "Opacity"
        {
            uniform token info:id = "UsdPrimvarReader_float"
            float inputs:fallback = 0
            string inputs:varname = "displayOpacity"
            float outputs:result
        }
    }
}
'''

# ---------------------------------------------------------------------------------- node
NODE_W, NODE_D, NODE_H = 0.44, 0.80, 4 * U - 0.002
PSU_W, PSU_D, PSU_H = 0.150, 0.200, 0.086
GPU_X = (-0.12, -0.06, 0.0)          # card centres, node-local
GPU_Y = 0.02
GPU_H = 0.111
FAN_X = (-0.14, 0.0, 0.14)
FAN_Y = 0.355
FAN_HUB_R, FAN_BLADE_R = 0.020, 0.056
REAR_VENT = (-0.20, 0.20, -0.06, 0.06)   # x0, x1, z0, z1 of the rear exhaust grille
REAR_BARS, REAR_BAR_W = 13, 0.008
SHELL_RGB = (0.35, 0.35, 0.38)


def _shell() -> tuple[MeshBuilder, MeshBuilder]:
    """(Shell body, FrontMesh grille). The body keeps a solid bezel; the grille is its own prim."""
    W, D, H = NODE_W, NODE_D, NODE_H
    x0, x1, y0, y1, z0, z1 = -W / 2, W / 2, -D / 2, D / 2, -H / 2, H / 2
    t = 0.004
    m = MeshBuilder()
    m.box((x0, y0, z1 - t), (x1, y1, z1))            # lid
    m.box((x0, y0, z0), (x1, y1, z0 + t))            # floor
    m.box((x0, y0, z0), (x0 + t, y1, z1))            # sides
    m.box((x1 - t, y0, z0), (x1, y1, z1))
    vx0, vx1, vz0, vz1 = REAR_VENT                   # rear panel around the exhaust grille
    m.box((x0, y0, z0), (x1, y0 + t, vz0))
    m.box((x0, y0, vz1), (x1, y0 + t, z1))
    m.box((x0, y0, vz0), (vx0, y0 + t, vz1))
    m.box((vx1, y0, vz0), (x1, y0 + t, vz1))
    for i in range(REAR_BARS):
        bx = vx0 + (i + 0.5) * (vx1 - vx0) / REAR_BARS - REAR_BAR_W / 2
        m.box((bx, y0, vz0), (bx + REAR_BAR_W, y0 + t, vz1))
    m.box((x0, y1 - t, z1 - 0.012), (x1, y1, z1))   # front bezel: top and bottom borders
    m.box((x0, y1 - t, z0), (x1, y1, z0 + 0.012))
    m.box((x0 - 0.021, y1 - 0.003, z0), (x0, y1, z1))     # rack ears (482.6 mm overall)
    m.box((x1, y1 - 0.003, z0), (x1 + 0.021, y1, z1))
    m.box((x0 - 0.018, y1, -0.04), (x0 - 0.006, y1 + 0.03, 0.04))   # handles
    m.box((x1 + 0.006, y1, -0.04), (x1 + 0.018, y1 + 0.03, 0.04))
    g = MeshBuilder()                                # the mesh front, in front of the fans
    for i in range(23):
        bx = x0 + i * (W - 0.006) / 22
        g.box((bx, y1 - t, z0 + 0.012), (bx + 0.006, y1, z1 - 0.012))
    for j in range(1, 6):
        bz = z0 + j * H / 6
        g.box((x0, y1 - t, bz - 0.002), (x1, y1, bz + 0.002))
    return m, g


def intake_area_m2() -> float:
    """Swept annulus of the three 120 mm fans (hub to blade tip): where the intake air passes."""
    return len(FAN_X) * math.pi * (FAN_BLADE_R ** 2 - FAN_HUB_R ** 2)


def exhaust_area_m2() -> float:
    """Open area of the rear grille: the vent rectangle minus its bars."""
    vx0, vx1, vz0, vz1 = REAR_VENT
    return (vx1 - vx0 - REAR_BARS * REAR_BAR_W) * (vz1 - vz0)


def _airflow_points() -> tuple[list[tuple[float, float, float]], list[int]]:
    """Intake points on the fan annuli just inside the mesh, exhaust points across the rear grille."""
    pts, side = [], []
    r = (FAN_HUB_R + FAN_BLADE_R) / 2
    for fx in FAN_X:
        for k in range(4):
            a = math.pi / 4 + k * math.pi / 2
            pts.append((fx + r * math.cos(a), FAN_Y + 0.02, r * math.sin(a)))
            side.append(0)
    vx0, vx1, vz0, vz1 = REAR_VENT
    for z in (vz0 / 2, vz1 / 2):
        for i in range(5):
            pts.append((vx0 + (i + 0.5) * (vx1 - vx0) / 5, -NODE_D / 2 - 0.005, z))
            side.append(1)
    return pts, side


def p2p_arcs() -> tuple[list[int], list[tuple[float, float, float]]]:
    """GPU1-2, 2-3, 1-3 arcs over the card tops near their front ends, kept under the lid."""
    top, y, pts = GPU_H / 2, GPU_Y + 0.11, []
    for a, b in ((0, 1), (1, 2), (0, 2)):
        rise = 0.010 * (b - a) + 0.004
        for k in range(7):
            s = k / 6
            pts.append((GPU_X[a] + s * (GPU_X[b] - GPU_X[a]), y, top + 0.002 + rise * math.sin(math.pi * s)))
    return [7, 7, 7], pts


def node() -> str:
    shell, grille = _shell()
    blur = MeshBuilder()
    for fx in FAN_X:
        blur.annulus_y(fx, 0.0, FAN_HUB_R, FAN_BLADE_R + 0.001, FAN_Y + 0.0135)
    counts, arcs = p2p_arcs()
    pts, side = _airflow_points()
    lo = [min(p[i] for p in arcs) - 0.01 for i in range(3)]
    hi = [max(p[i] for p in arcs) + 0.01 for i in range(3)]
    plo = [min(p[i] for p in pts) - 0.01 for i in range(3)]
    phi = [max(p[i] for p in pts) + 0.01 for i in range(3)]
    fans = []
    for i, fx in enumerate(FAN_X):
        fans.append(f'    def Xform "Fan_{i + 1}"\n    {{\n        double3 xformOp:translate = ({f5(fx)}, {f5(FAN_Y)}, 0)\n'
                    f'        float xformOp:rotateY = 0\n'
                    f'        uniform token[] xformOpOrder = ["xformOp:translate", "xformOp:rotateY"]\n'
                    f'{xform_ref("Rotor", "@./fan.usda@</Fan/Rotor>", indent=2, meta="instanceable = true")}\n    }}')
    body = "\n".join([
        mesh_usda("Shell", shell, SHELL_RGB, extra=(
            '        color3f[] primvars:emissive = [(0, 0, 0)] (\n            interpolation = "constant"\n        )\n'
            '        float[] primvars:heat = [0] (\n            interpolation = "constant"\n        )')),
        mesh_usda("FrontMesh", grille, SHELL_RGB, extra=(
            '        color3f[] primvars:emissive = [(0, 0, 0)] (\n            interpolation = "constant"\n        )')),
        xform_ref("Internals", "@./node_internals.usda@", arc="payload", meta="instanceable = true"),
        *fans,
        mesh_usda("Blur", blur, (0.16, 0.16, 0.18), extra=(
            '        float[] primvars:displayOpacity = [0] (\n            interpolation = "constant"\n        )\n'
            '        uniform bool doubleSided = 1')),
        f'    def BasisCurves "P2P"\n    {{\n        uniform token type = "linear"\n'
        f'        int[] curveVertexCounts = {counts}\n        point3f[] points = [{", ".join(vec(p) for p in arcs)}]\n'
        f'        float3[] extent = [{vec(lo)}, {vec(hi)}]\n'
        f'        float[] widths = [0] (\n            interpolation = "constant"\n        )\n'
        f'        color3f[] primvars:displayColor = [(0, 0, 0)] (\n            interpolation = "constant"\n        )\n    }}',
        f'    def Scope "FX"\n    {{\n        def Points "Airflow" (\n            doc = "Intake (fx:side 0) and exhaust (fx:side 1) emitters. velocities: m per SIMULATED second '
        f'(airflow / area, node-local, front to rear = -Y); see customLayerData twin:seconds_per_timecode. Fan rpm and power: the inherited node primvars:telemetry:fan_rpm / power_w."\n        )\n        {{\n'
        f'            point3f[] points = [{", ".join(vec(p) for p in pts)}]\n'
        f'            float3[] extent = [{vec(plo)}, {vec(phi)}]\n'
        f'            float[] widths = [0.01] (\n                interpolation = "constant"\n            )\n'
        f'            vector3f[] velocities\n'
        f'            int[] primvars:fx:side = [{", ".join(map(str, side))}] (\n                interpolation = "vertex"\n            )\n'
        f'            float[] primvars:temperature_c (\n                interpolation = "vertex"\n            )\n'
        f'            custom float fx:intake_area_m2 = {f5(intake_area_m2())}\n'
        f'            custom float fx:exhaust_area_m2 = {f5(exhaust_area_m2())}\n        }}\n    }}',
        '    variantSet "gpu" = {\n'
        '        "consumer_open_air" {\n            over "Internals" (\n                variants = {\n'
        '                    string gpu = "consumer_open_air"\n                }\n            )\n            {\n            }\n        }\n'
        '        "rtx_pro_blower" {\n            over "Internals" (\n                variants = {\n'
        '                    string gpu = "rtx_pro_blower"\n                }\n            )\n            {\n            }\n        }\n    }',
        '    variantSet "lod" = {\n        "full" {\n        }\n        "proxy" {\n'
        + "".join(f'            over "{p}" (\n                active = false\n            )\n            {{\n            }}\n'
                  for p in ("FrontMesh", "Internals", "Fan_1", "Fan_2", "Fan_3", "Blur", "P2P"))
        + '        }\n    }',
    ])
    meta = ('variants = {\n        string gpu = "rtx_pro_blower"\n        string lod = "full"\n    }\n'
            '    prepend variantSets = ["gpu", "lod"]')
    return asset("node.usda", "Node", "4U GPU node 0.44 x 0.80 x 0.176 m: coloured Shell + FrontMesh, instanced "
                 "internals, spinning fans, P2P arcs and FX airflow points", body, "component", "node", meta)


def gpu() -> str:
    w, d, h = 0.040, 0.267, GPU_H
    variants = []
    for name, thick, colour in (("blower_2slot", w, (0.12, 0.12, 0.13)), ("open_air_3slot", 0.052, (0.2, 0.2, 0.22))):
        card = MeshBuilder()
        card.box((-thick / 2, -d / 2, -h / 2), (thick / 2, d / 2, h / 2))
        # a blower card breathes in at its tail and exhausts through its bracket: with the node's
        # intake fans at the front (+Y) the bracket faces the rear (-Y) and the blower the front
        fans = MeshBuilder()
        if name == "blower_2slot":
            fans.cylinder_y(0.0, 0.0, 0.032, d / 2, d / 2 + 0.002, 20)
        else:      # open-air cards: three axial fans on the side facing +X
            for k in range(3):
                cy = -d / 2 + (k + 0.5) * d / 3
                fans.box((thick / 2, cy - 0.038, -0.038), (thick / 2 + 0.002, cy + 0.038, 0.038))
        bracket = MeshBuilder()
        bracket.box((-thick / 2, -d / 2 - 0.002, -h / 2 - 0.01), (thick / 2, -d / 2, h / 2 + 0.005))
        inner = "\n".join([mesh_usda("Shroud", card, colour, indent=3), mesh_usda("Bracket", bracket, (0.6, 0.6, 0.62), indent=3),
                           mesh_usda("Fans", fans, (0.02, 0.02, 0.02), indent=3)])
        variants.append(f'        "{name}" {{\n{inner}\n        }}')
    body = '    variantSet "card" = {\n' + "\n".join(variants) + "\n    }"
    meta = 'variants = {\n        string card = "blower_2slot"\n    }\n    prepend variantSets = "card"'
    return asset("gpu.usda", "Gpu", "PCIe GPU card 0.111 x 0.267 m: blower dual-slot (RTX PRO) or open-air",
                 body, "subcomponent", "gpu", meta)


def fan() -> str:
    s, depth = 0.120, 0.025
    housing = MeshBuilder()
    wall = 0.006
    housing.box((-s / 2, -depth / 2, -s / 2), (s / 2, depth / 2, -s / 2 + wall))
    housing.box((-s / 2, -depth / 2, s / 2 - wall), (s / 2, depth / 2, s / 2))
    housing.box((-s / 2, -depth / 2, -s / 2), (-s / 2 + wall, depth / 2, s / 2))
    housing.box((s / 2 - wall, -depth / 2, -s / 2), (s / 2, depth / 2, s / 2))
    rotor = MeshBuilder()
    rotor.cylinder_y(0.0, 0.0, FAN_HUB_R, -depth / 2 + 0.002, depth / 2 - 0.002, 16)
    blades = 7                               # scenes/effects.py FAN_BLADES
    for b in range(blades):                  # twisted flat blades radiating from the hub
        a = 2 * math.pi * b / blades
        r0, r1, half = FAN_HUB_R - 0.002, FAN_BLADE_R, 0.35
        pts = [(r * math.cos(a + da), y, r * math.sin(a + da))
               for r, da, y in ((r0, -half * 0.6, -0.008), (r1, -half, -0.008), (r1, half, 0.008), (r0, half * 0.6, 0.008))]
        rotor.poly(pts)
        rotor.poly(list(reversed(pts)))      # two-sided
    body = "\n".join([f'    def Xform "Housing"\n    {{\n{mesh_usda("Frame", housing, (0.05, 0.05, 0.05), indent=2)}\n    }}',
                      f'    def Xform "Rotor"\n    {{\n{mesh_usda("Blades", rotor, (0.15, 0.15, 0.16), indent=2)}\n    }}'])
    return asset("fan.usda", "Fan", "120 mm fan, axis along Y: Housing (static) and Rotor (hub + 7 blades)",
                 body, "subcomponent")


def psu() -> str:
    # be quiet! Dark Power Pro 13 1600 W (hardware.md): ATX, 150 W x 200 D x 86 H mm (vendor spec)
    w, d, h = PSU_W, PSU_D, PSU_H
    m = MeshBuilder()
    m.box((-w / 2, -d / 2, -h / 2), (w / 2, d / 2, h / 2))
    grill = MeshBuilder()                    # rear exhaust grille
    grill.cylinder_y(0.0, 0.0, 0.035, -d / 2 - 0.001, -d / 2, 20)
    body = "\n".join([mesh_usda("Case", m, (0.08, 0.08, 0.09)), mesh_usda("FanGrill", grill, (0.02, 0.02, 0.02))])
    return asset("psu.usda", "Psu", "ATX 1600 W power supply 0.150 x 0.200 x 0.086 m", body, "subcomponent")


def nic() -> str:
    board = MeshBuilder()
    board.box((-0.0345, -0.084, -0.001), (0.0345, 0.084, 0.001))
    cages = MeshBuilder()
    for cx in (-0.017, 0.017):
        cages.box((cx - 0.0095, 0.070, 0.001), (cx + 0.0095, 0.086, 0.0135))
    body = "\n".join([mesh_usda("Board", board, (0.05, 0.3, 0.12)), mesh_usda("Cages", cages, (0.7, 0.7, 0.72))])
    return asset("nic.usda", "Nic", "Low-profile dual-port 400G NIC 0.069 x 0.168 m", body, "subcomponent")


def node_internals() -> str:
    board = MeshBuilder()
    board.box((-0.21, -0.38, -NODE_H / 2 + 0.006), (0.21, 0.30, -NODE_H / 2 + 0.008))
    heatsink = MeshBuilder()                 # CPU heat sink
    heatsink.box((0.07, -0.20, -NODE_H / 2 + 0.008), (0.16, -0.10, -NODE_H / 2 + 0.06))
    dimms = MeshBuilder()
    for i in range(8):
        dx = 0.05 + (i % 4) * 0.012 + (0.13 if i >= 4 else 0)
        dimms.box((dx, -0.24, -NODE_H / 2 + 0.008), (dx + 0.006, -0.06, -NODE_H / 2 + 0.04))
    lines = [mesh_usda("Board", board, (0.04, 0.25, 0.1)), mesh_usda("CpuHeatsink", heatsink, (0.7, 0.7, 0.72)),
             mesh_usda("Dimms", dimms, (0.1, 0.1, 0.12))]
    lines += [xform_ref(f"Gpu_{i + 1}", "@./gpu.usda@", (gx, GPU_Y, 0)) for i, gx in enumerate(GPU_X)]
    lines += [xform_ref(f"FanHousing_{i + 1}", "@./fan.usda@</Fan/Housing>", (fx, FAN_Y, 0)) for i, fx in enumerate(FAN_X)]
    # one PSU on the board, rear left (x < 0): clear of the DIMMs, CPU cooler and NIC on the right
    # and behind the GPU cards (which end at y = -0.11)
    lines.append(xform_ref("Psu", "@./psu.usda@", (-0.13, -NODE_D / 2 + 0.004 + PSU_D / 2, -NODE_H / 2 + 0.008 + PSU_H / 2)))
    lines.append(xform_ref("Nic", "@./nic.usda@", (0.07, -0.30, 0.03), rotate=(0, 0, 180)))
    variants = []
    for name, card in (("consumer_open_air", "open_air_3slot"), ("rtx_pro_blower", "blower_2slot")):
        overs = "".join(f'            over "Gpu_{i + 1}" (\n                variants = {{\n                    string card = "{card}"\n'
                        f'                }}\n            )\n            {{\n            }}\n' for i in range(len(GPU_X)))
        variants.append(f'        "{name}" {{\n{overs}        }}')
    lines.append('    variantSet "gpu" = {\n' + "\n".join(variants) + "\n    }")
    meta = 'variants = {\n        string gpu = "rtx_pro_blower"\n    }\n    prepend variantSets = "gpu"'
    return asset("node_internals.usda", "NodeInternals", "Node internals: board, 3 GPUs, PSU, NIC, 3 fan housings",
                 "\n".join(lines), "subcomponent", None, meta)


ASSETS = {
    "materials.usda": lambda: MATERIALS, "node.usda": node, "node_internals.usda": node_internals,
    "gpu.usda": gpu, "fan.usda": fan, "psu.usda": psu, "nic.usda": nic, **ROOM_ASSETS,
}


def main() -> None:
    for name, make in ASSETS.items():
        (HERE / name).write_text(make())
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
