"""Generate the hand-authored USD assets in this folder (run once: ``python assets/make_assets.py``).

The assets are written as plain USDA text so that the generator needs no pxr (only ``scenes/``
imports pxr) and the outputs are readable and diffable. Every asset is in metres, Z up, with
its front facing +Y (the stage rotates racks of row B by 180 degrees about Z).

Dimensions (sources: EIA-310 rack units of 44.45 mm and 19-inch rails at 482.6 mm; typical
600 x 1200 mm 42U cabinets; 600 mm raised-floor tiles; 120 mm fans; full-height dual-slot PCIe
cards 111 x 267 mm):

=================  =====================================================================
rack.usda          glass-door 42U cabinet 0.60 W x 1.20 D x 2.00 H, bottom plenum opening
node_shell.usda    4U chassis shell 0.44 W x 0.80 D x 0.176 H with a mesh (grille) front
node_internals     board, 3 GPU cards, PSU, NIC and 3 fan housings inside the shell
gpu.usda           dual-slot PCIe card 0.040 W x 0.267 D x 0.111 H with a blower shroud
fan.usda           120 x 120 x 25 mm fan: /Fan/Housing (static) and /Fan/Rotor (7 blades)
psu.usda           ATX 1600 W power supply 0.150 W x 0.200 D x 0.086 H (Dark Power Pro 13)
nic.usda           low-profile NIC 0.069 W x 0.168 D x 0.015 H with two QSFP cages
floor_tile.usda    0.60 x 0.60 m perforated grille tile (25 % open area)
cable_tray.usda    0.60 m overhead ladder tray segment, 0.30 W x 0.10 H
tor_switch.usda    1U top-of-rack switch 0.44 W x 0.50 D x 0.044 H with port row
materials.usda     /Looks/DisplayColor (UsdPreviewSurface fed by displayColor) and /Looks/Glass
=================  =====================================================================
Shapes are Mesh prims (not Cube gprims) so every client keeps their colour.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
U = 0.04445  # EIA-310 rack unit, metres


@dataclass
class MeshBuilder:
    """Accumulate quads/polygons into one mesh (points + faceVertexCounts + indices)."""
    points: list[tuple[float, float, float]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)

    def poly(self, pts: list[tuple[float, float, float]]) -> None:
        base = len(self.points)
        self.points.extend(pts)
        self.counts.append(len(pts))
        self.indices.extend(range(base, base + len(pts)))

    def box(self, lo: tuple[float, float, float], hi: tuple[float, float, float]) -> None:
        """Axis-aligned box; faces wound counter-clockwise seen from outside (right-handed)."""
        x0, y0, z0 = lo
        x1, y1, z1 = hi
        base = len(self.points)
        self.points.extend([(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0),
                            (x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)])
        for face in ((0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4), (2, 3, 7, 6), (1, 2, 6, 5), (3, 0, 4, 7)):
            self.counts.append(4)
            self.indices.extend(base + i for i in face)

    def cylinder_y(self, cx: float, cz: float, r: float, y0: float, y1: float, n: int = 16) -> None:
        """Cylinder along Y (fan hubs, GPU blower wheels)."""
        base = len(self.points)
        for y in (y0, y1):
            for i in range(n):
                a = 2 * math.pi * i / n
                self.points.append((cx + r * math.cos(a), y, cz + r * math.sin(a)))
        for i in range(n):
            j = (i + 1) % n
            self.counts.append(4)
            self.indices.extend([base + i, base + j, base + n + j, base + n + i])
        self.counts.append(n)
        self.indices.extend(base + n + i for i in range(n))          # +Y cap
        self.counts.append(n)
        self.indices.extend(base + (n - 1 - i) for i in range(n))    # -Y cap

    def extent(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        xs, ys, zs = zip(*self.points)
        return (min(xs), min(ys), min(zs)), (max(xs), max(ys), max(zs))


def _f(v: float) -> str:
    return f"{v:.5g}"


def _vec(p) -> str:
    return "(" + ", ".join(_f(c) for c in p) + ")"


def mesh_usda(name: str, m: MeshBuilder, colour: tuple[float, float, float], material: str | None,
              indent: int = 1, extra: str = "") -> str:
    """USDA text of one Mesh prim with a constant displayColor and an optional material binding."""
    pad = "    " * indent
    lo, hi = m.extent()
    schemas = '\n' + pad + '    prepend apiSchemas = ["MaterialBindingAPI"]\n' + pad if material else ""
    lines = [
        f'{pad}def Mesh "{name}" ({schemas})' if material else f'{pad}def Mesh "{name}"',
        f"{pad}{{",
        f"{pad}    float3[] extent = [{_vec(lo)}, {_vec(hi)}]",
        f"{pad}    int[] faceVertexCounts = [{', '.join(map(str, m.counts))}]",
        f"{pad}    int[] faceVertexIndices = [{', '.join(map(str, m.indices))}]",
        f"{pad}    point3f[] points = [{', '.join(_vec(p) for p in m.points)}]",
        f"{pad}    color3f[] primvars:displayColor = [{_vec(colour)}] (",
        f'{pad}        interpolation = "constant"',
        f"{pad}    )",
        f'{pad}    uniform token subdivisionScheme = "none"',
    ]
    if material:
        lines.append(f"{pad}    rel material:binding = <{material}>")
    if extra:
        lines.append(extra)
    lines.append(f"{pad}}}")
    return "\n".join(lines)


def header(default_prim: str, doc: str) -> str:
    return (f'#usda 1.0\n(\n    defaultPrim = "{default_prim}"\n    doc = "{doc}"\n'
            f'    metersPerUnit = 1\n    upAxis = "Z"\n)\n\n')


def looks(root: str) -> str:
    """A Looks scope that references the shared materials file (one definition for all assets)."""
    return f'    def Scope "Looks" (\n        prepend references = @./materials.usda@</Looks>\n    )\n    {{\n    }}\n'


def asset(name: str, doc: str, body: str, kind: str = "component") -> str:
    kind_line = f'        kind = "{kind}"\n' if kind else ""
    return (header(name, doc) + f'def Xform "{name}" (\n{kind_line}    )\n{{\n' + looks(name) + body + "\n}\n")


# ---------------------------------------------------------------------------------- materials
MATERIALS = '''#usda 1.0
(
    defaultPrim = "Looks"
    doc = "Shared looks: one UsdPreviewSurface driven by primvars:displayColor, and glass for rack doors."
    metersPerUnit = 1
    upAxis = "Z"
)

def Scope "Looks"
{
    def Material "DisplayColor"
    {
        token outputs:surface.connect = </Looks/DisplayColor/Surface.outputs:surface>

        def Shader "Surface"
        {
            uniform token info:id = "UsdPreviewSurface"
            color3f inputs:diffuseColor.connect = </Looks/DisplayColor/ColorReader.outputs:result>
            float inputs:metallic = 0.2
            float inputs:roughness = 0.45
            token outputs:surface
        }

        def Shader "ColorReader"
        {
            uniform token info:id = "UsdPrimvarReader_float3"
            float3 inputs:fallback = (0.5, 0.5, 0.5)
            string inputs:varname = "displayColor"
            float3 outputs:result
        }
    }

    def Material "Glass"
    {
        token outputs:surface.connect = </Looks/Glass/Surface.outputs:surface>

        def Shader "Surface"
        {
            uniform token info:id = "UsdPreviewSurface"
            color3f inputs:diffuseColor = (0.55, 0.7, 0.75)
            float inputs:ior = 1.5
            float inputs:metallic = 0
            float inputs:opacity = 0.25
            float inputs:roughness = 0.05
            token outputs:surface
        }
    }
}
'''

DC = "DisplayColor"


def bind(root: str, look: str = DC) -> str:
    return f"/{root}/Looks/{look}"


# ---------------------------------------------------------------------------------- rack
def rack() -> str:
    W, D, H = 0.60, 1.20, 2.00
    x0, x1, y0, y1 = -W / 2, W / 2, -D / 2, D / 2
    post, t = 0.04, 0.015
    frame = MeshBuilder()
    for px in (x0, x1 - post):                     # four vertical posts
        for py in (y0, y1 - post):
            frame.box((px, py, 0.0), (px + post, py + post, H))
    frame.box((x0, y0, H - 0.03), (x1, y1, H))      # roof
    frame.box((x0, y0 + post, 0.05), (x0 + t, y1 - post, H - 0.03))   # side panels
    frame.box((x1 - t, y0 + post, 0.05), (x1, y1 - post, H - 0.03))
    # base: a frame of four bars around the bottom plenum opening (cold air rises through it)
    frame.box((x0, y0, 0.0), (x1, y0 + 0.15, 0.05))
    frame.box((x0, y1 - 0.15, 0.0), (x1, y1, 0.05))
    frame.box((x0, y0 + 0.15, 0.0), (x0 + 0.08, y1 - 0.15, 0.05))
    frame.box((x1 - 0.08, y0 + 0.15, 0.0), (x1, y1 - 0.15, 0.05))
    rails = MeshBuilder()                           # 19-inch mounting rails front and rear
    for rx in (-0.2413 - 0.016, 0.2413):
        for ry in (y1 - 0.12, y0 + 0.10):
            rails.box((rx, ry, 0.10), (rx + 0.016, ry + 0.02, 0.10 + 42 * U))
    door = MeshBuilder()                            # front glass door, hinge side left
    door.box((x0 + 0.01, y1, 0.06), (x1 - 0.01, y1 + 0.006, H - 0.04))
    door_frame = MeshBuilder()
    door_frame.box((x0, y1, 0.05), (x0 + 0.03, y1 + 0.02, H - 0.03))
    door_frame.box((x1 - 0.03, y1, 0.05), (x1, y1 + 0.02, H - 0.03))
    door_frame.box((x0, y1, H - 0.06), (x1, y1 + 0.02, H - 0.03))
    door_frame.box((x0, y1, 0.05), (x1, y1 + 0.02, 0.08))
    door_frame.box((x1 - 0.06, y1 + 0.02, 1.0), (x1 - 0.045, y1 + 0.05, 1.2))   # handle
    rear = MeshBuilder()                            # perforated rear door: vertical slats
    n = 14
    for i in range(n):
        sx = x0 + 0.03 + i * (W - 0.06) / n
        rear.box((sx, y0 - 0.02, 0.06), (sx + 0.02, y0, H - 0.04))
    body = "\n".join([
        mesh_usda("Frame", frame, (0.07, 0.07, 0.08), bind("Rack")),
        mesh_usda("Rails", rails, (0.55, 0.55, 0.58), bind("Rack")),
        mesh_usda("DoorFrame", door_frame, (0.1, 0.1, 0.11), bind("Rack")),
        mesh_usda("GlassDoor", door, (0.55, 0.7, 0.75), bind("Rack", "Glass")),
        mesh_usda("RearDoor", rear, (0.09, 0.09, 0.1), bind("Rack")),
    ])
    return asset("Rack", "Glass-door 42U 19-inch rack, 0.60 x 1.20 x 2.00 m, bottom plenum opening", body)


# ---------------------------------------------------------------------------------- node shell
NODE_W, NODE_D, NODE_H = 0.44, 0.80, 4 * U - 0.002
PSU_W, PSU_D, PSU_H = 0.150, 0.200, 0.086


def node_shell() -> str:
    W, D, H = NODE_W, NODE_D, NODE_H
    x0, x1, y0, y1, z0, z1 = -W / 2, W / 2, -D / 2, D / 2, -H / 2, H / 2
    t = 0.004
    m = MeshBuilder()
    m.box((x0, y0, z1 - t), (x1, y1, z1))            # lid
    m.box((x0, y0, z0), (x1, y1, z0 + t))            # floor
    m.box((x0, y0, z0), (x0 + t, y1, z1))            # sides
    m.box((x1 - t, y0, z0), (x1, y1, z1))
    m.box((x0, y0, z0), (x1, y0 + t, z1))            # rear panel
    # mesh front: border + grille bars in front of the fans, so the fans stay visible
    m.box((x0, y1 - t, z1 - 0.012), (x1, y1, z1))
    m.box((x0, y1 - t, z0), (x1, y1, z0 + 0.012))
    for i in range(23):
        bx = x0 + i * (W - 0.006) / 22
        m.box((bx, y1 - t, z0), (bx + 0.006, y1, z1))
    for j in range(1, 6):
        bz = z0 + j * H / 6
        m.box((x0, y1 - t, bz - 0.002), (x1, y1, bz + 0.002))
    m.box((x0 - 0.021, y1 - 0.003, z0), (x0, y1, z1))     # rack ears (482.6 mm overall)
    m.box((x1, y1 - 0.003, z0), (x1 + 0.021, y1, z1))
    m.box((x0 - 0.018, y1, -0.04), (x0 - 0.006, y1 + 0.03, 0.04))   # handles
    m.box((x1 + 0.006, y1, -0.04), (x1 + 0.018, y1 + 0.03, 0.04))
    return (header("NodeShell", "4U node shell 0.44 x 0.80 x 0.176 m with mesh front; coloured per node")
            + mesh_usda("NodeShell", m, (0.35, 0.35, 0.38), None, indent=0,
                        extra='    float primvars:heat = 0 (\n        interpolation = "constant"\n    )'
                        )
            + "\n")


# ---------------------------------------------------------------------------------- parts
def gpu() -> str:
    w, d, h = 0.040, 0.267, 0.111
    card = MeshBuilder()
    card.box((-w / 2, -d / 2, -h / 2), (w / 2, d / 2, h / 2))
    # a blower card breathes in at its tail and exhausts through its bracket: with the node's
    # intake fans at the front (+Y) the bracket faces the rear (-Y) and the blower the front
    bracket = MeshBuilder()
    bracket.box((-w / 2, -d / 2 - 0.002, -h / 2 - 0.01), (w / 2, -d / 2, h / 2 + 0.005))
    blower = MeshBuilder()
    blower.cylinder_y(0.0, 0.0, 0.032, d / 2, d / 2 + 0.002, 20)
    body = "\n".join([
        mesh_usda("Shroud", card, (0.12, 0.12, 0.13), bind("Gpu")),
        mesh_usda("Bracket", bracket, (0.6, 0.6, 0.62), bind("Gpu")),
        mesh_usda("Blower", blower, (0.02, 0.02, 0.02), bind("Gpu")),
    ])
    return asset("Gpu", "Dual-slot full-height PCIe GPU card, 0.040 x 0.267 x 0.111 m", body, kind="subcomponent")


def fan() -> str:
    s, depth = 0.120, 0.025
    housing = MeshBuilder()
    wall = 0.006
    housing.box((-s / 2, -depth / 2, -s / 2), (s / 2, depth / 2, -s / 2 + wall))
    housing.box((-s / 2, -depth / 2, s / 2 - wall), (s / 2, depth / 2, s / 2))
    housing.box((-s / 2, -depth / 2, -s / 2), (-s / 2 + wall, depth / 2, s / 2))
    housing.box((s / 2 - wall, -depth / 2, -s / 2), (s / 2, depth / 2, s / 2))
    rotor = MeshBuilder()
    rotor.cylinder_y(0.0, 0.0, 0.02, -depth / 2 + 0.002, depth / 2 - 0.002, 16)
    blades = 7
    for b in range(blades):                 # twisted flat blades radiating from the hub
        a = 2 * math.pi * b / blades
        r0, r1, half = 0.018, 0.056, 0.35   # radii (m) and blade half-angle (rad)
        pts = []
        for r, da, y in ((r0, -half * 0.6, -0.008), (r1, -half, -0.008), (r1, half, 0.008), (r0, half * 0.6, 0.008)):
            pts.append((r * math.cos(a + da), y, r * math.sin(a + da)))
        rotor.poly(pts)
        rotor.poly(list(reversed(pts)))     # two-sided
    # Housing and Rotor are referenced on their own (</Fan/Housing>, </Fan/Rotor>), and a binding
    # to a material outside the referenced prim is dropped by USD, so each carries its own Looks.
    def part(name: str, mesh: str, m: MeshBuilder, colour: tuple[float, float, float]) -> str:
        inner = looks("Fan").replace("\n    ", "\n        ").replace("    def Scope", "        def Scope", 1)
        return (f'    def Xform "{name}"\n    {{\n' + inner
                + mesh_usda(mesh, m, colour, f"/Fan/{name}/Looks/{DC}", indent=2) + "\n    }")
    body = "\n".join([part("Housing", "Frame", housing, (0.05, 0.05, 0.05)),
                      part("Rotor", "Blades", rotor, (0.15, 0.15, 0.16))])
    return asset("Fan", "120 mm fan, axis along Y: Housing (static) and Rotor (hub + 7 blades), "
                 "each with its own Looks so they can be referenced separately", body, kind="subcomponent")


def psu() -> str:
    # be quiet! Dark Power Pro 13 1600 W (hardware.md): ATX, 150 W x 200 D x 86 H mm (vendor spec)
    w, d, h = PSU_W, PSU_D, PSU_H
    m = MeshBuilder()
    m.box((-w / 2, -d / 2, -h / 2), (w / 2, d / 2, h / 2))
    grill = MeshBuilder()                          # rear exhaust grille
    grill.cylinder_y(0.0, 0.0, 0.035, -d / 2 - 0.001, -d / 2, 20)
    body = "\n".join([mesh_usda("Case", m, (0.08, 0.08, 0.09), bind("Psu")),
                      mesh_usda("FanGrill", grill, (0.02, 0.02, 0.02), bind("Psu"))])
    return asset("Psu", "ATX 1600 W power supply 0.150 x 0.200 x 0.086 m", body, kind="subcomponent")


def nic() -> str:
    board = MeshBuilder()
    board.box((-0.0345, -0.084, -0.001), (0.0345, 0.084, 0.001))
    cages = MeshBuilder()
    for cx in (-0.017, 0.017):
        cages.box((cx - 0.0095, 0.070, 0.001), (cx + 0.0095, 0.086, 0.0135))
    body = "\n".join([mesh_usda("Board", board, (0.05, 0.3, 0.12), bind("Nic")),
                      mesh_usda("Cages", cages, (0.7, 0.7, 0.72), bind("Nic"))])
    return asset("Nic", "Low-profile dual-port 400G NIC 0.069 x 0.168 m", body, kind="subcomponent")


# positions of parts inside the node, node-local metres (also used by scenes/layout.py for the
# fan rotors and the P2P curves: keep in sync with scenes/layout.py NODE_GEOMETRY)
GPU_X = (-0.12, -0.06, 0.0)
GPU_Y = 0.02
FAN_X = (-0.14, 0.0, 0.14)
FAN_Y = 0.355


def node_internals() -> str:
    board = MeshBuilder()
    board.box((-0.21, -0.38, -NODE_H / 2 + 0.006), (0.21, 0.30, -NODE_H / 2 + 0.008))
    heatsink = MeshBuilder()                    # CPU heat sink
    heatsink.box((0.07, -0.20, -NODE_H / 2 + 0.008), (0.16, -0.10, -NODE_H / 2 + 0.06))
    dimms = MeshBuilder()
    for i in range(8):
        dx = 0.05 + (i % 4) * 0.012 + (0.13 if i >= 4 else 0)
        dimms.box((dx, -0.24, -NODE_H / 2 + 0.008), (dx + 0.006, -0.06, -NODE_H / 2 + 0.04))
    lines = [mesh_usda("Board", board, (0.04, 0.25, 0.1), bind("NodeInternals")),
             mesh_usda("CpuHeatsink", heatsink, (0.7, 0.7, 0.72), bind("NodeInternals")),
             mesh_usda("Dimms", dimms, (0.1, 0.1, 0.12), bind("NodeInternals"))]
    for i, gx in enumerate(GPU_X):
        lines.append(f'    def Xform "Gpu_{i + 1}" (\n        prepend references = @./gpu.usda@\n    )\n    {{\n'
                     f'        double3 xformOp:translate = ({_f(gx)}, {_f(GPU_Y)}, 0)\n'
                     f'        uniform token[] xformOpOrder = ["xformOp:translate"]\n    }}')
    for i, fx in enumerate(FAN_X):
        lines.append(f'    def Xform "FanHousing_{i + 1}" (\n        prepend references = @./fan.usda@</Fan/Housing>\n    )\n    {{\n'
                     f'        double3 xformOp:translate = ({_f(fx)}, {_f(FAN_Y)}, 0)\n'
                     f'        uniform token[] xformOpOrder = ["xformOp:translate"]\n    }}')
    # one PSU on the board, rear left (x < 0): clear of the DIMMs, CPU cooler and NIC on the right
    # and behind the GPU cards (which end at y = -0.11)
    psu_z = -NODE_H / 2 + 0.008 + PSU_H / 2
    lines.append(f'    def Xform "Psu" (\n        prepend references = @./psu.usda@\n    )\n    {{\n'
                 f'        double3 xformOp:translate = (-0.13, {_f(-NODE_D / 2 + 0.004 + PSU_D / 2)}, {_f(psu_z)})\n'
                 f'        uniform token[] xformOpOrder = ["xformOp:translate"]\n    }}')
    lines.append(f'    def Xform "Nic" (\n        prepend references = @./nic.usda@\n    )\n    {{\n'
                 f'        double3 xformOp:translate = (0.07, -0.30, 0.03)\n'
                 f'        double3 xformOp:rotateXYZ = (0, 0, 180)\n'
                 f'        uniform token[] xformOpOrder = ["xformOp:translate", "xformOp:rotateXYZ"]\n    }}')
    return asset("NodeInternals", "Node internals: board, 3 GPUs, PSU, NIC, 3 fan housings", "\n".join(lines),
                 kind="subcomponent")


def floor_tile() -> str:
    s, t = 0.60, 0.025
    m = MeshBuilder()
    b = 0.03
    m.box((-s / 2, -s / 2, -t), (s / 2, -s / 2 + b, 0.0))          # border
    m.box((-s / 2, s / 2 - b, -t), (s / 2, s / 2, 0.0))
    m.box((-s / 2, -s / 2 + b, -t), (-s / 2 + b, s / 2 - b, 0.0))
    m.box((s / 2 - b, -s / 2 + b, -t), (s / 2, s / 2 - b, 0.0))
    n = 12                                   # grille bars: ~25 % open area between them
    pitch = (s - 2 * b) / n
    for i in range(n + 1):
        c = -s / 2 + b + i * pitch
        m.box((c - 0.006, -s / 2 + b, -t), (c + 0.006, s / 2 - b, 0.0))
        m.box((-s / 2 + b, c - 0.006, -t), (s / 2 - b, c + 0.006, 0.0))
    return asset("FloorTile", "0.60 m perforated raised-floor grille tile", mesh_usda("Grille", m, (0.55, 0.6, 0.66), bind("FloorTile")))


def cable_tray() -> str:
    L, W, H = 0.60, 0.30, 0.10
    m = MeshBuilder()
    m.box((-L / 2, -W / 2, 0.0), (L / 2, -W / 2 + 0.004, H))      # side rails
    m.box((-L / 2, W / 2 - 0.004, 0.0), (L / 2, W / 2, H))
    for i in range(3):                                              # rungs
        x = -L / 2 + 0.1 + i * 0.2
        m.box((x - 0.01, -W / 2, 0.0), (x + 0.01, W / 2, 0.006))
    return asset("CableTray", "0.60 m overhead ladder cable tray segment, 0.30 x 0.10 m", mesh_usda("Tray", m, (0.75, 0.62, 0.1), bind("CableTray")))


def tor_switch() -> str:
    case = MeshBuilder()
    case.box((-0.22, -0.25, 0.0), (0.22, 0.25, U - 0.001))
    ports = MeshBuilder()
    for i in range(16):
        px = -0.2 + i * 0.025
        ports.box((px, 0.25, 0.01), (px + 0.018, 0.253, 0.03))
    body = "\n".join([mesh_usda("Case", case, (0.12, 0.14, 0.18), bind("TorSwitch")),
                      mesh_usda("Ports", ports, (0.1, 0.7, 0.3), bind("TorSwitch"))])
    return asset("TorSwitch", "1U top-of-rack / spine switch 0.44 x 0.50 x 0.044 m, 16 QSFP ports", body)


ASSETS = {
    "materials.usda": lambda: MATERIALS, "rack.usda": rack, "node_shell.usda": node_shell,
    "node_internals.usda": node_internals, "gpu.usda": gpu, "fan.usda": fan, "psu.usda": psu,
    "nic.usda": nic, "floor_tile.usda": floor_tile, "cable_tray.usda": cable_tray, "tor_switch.usda": tor_switch,
}


def main() -> None:
    for name, make in ASSETS.items():
        (HERE / name).write_text(make())
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
