"""Room assets: rack cabinet, perforated floor tile, overhead cable tray, switch, cooling unit.

=================  =====================================================================
rack.usda          sealed glass 42U cabinet 0.60 W x 1.20 D x 2.00 H (glass door and sides), bottom plenum opening:
                   /Rack/Body (frame, rails, door frame, perforated rear door) and
                   /Rack/Glass (door and side panes) so the stage can bind glass to the panes alone
floor_tile.usda    0.60 x 0.60 m perforated grille tile (25 % open area) over the plenum
cable_tray.usda    0.60 m overhead ladder tray segment 0.30 W x 0.10 H, hung from the ceiling
                   on two threaded rods (tray at 2.60 m, ceiling at 3.40 m: scenes/layout.py)
tor_switch.usda    1U switch 0.44 W x 0.50 D x 0.044 H with a port row (leaves and spines)
cooling_unit.usda  downflow CRAH 1.80 W x 0.90 D x 1.95 H: top return grille, louvred front,
                   blows into the floor plenum (typical 25-30 kW class unit footprint)
=================  =====================================================================
"""
from __future__ import annotations

from usda_text import U, MeshBuilder, asset, mesh_usda

TRAY_Z_M, CEILING_Z_M = 2.60, 3.40      # scenes/layout.py TRAY_Z_M, CEILING_Z_M


def rack() -> str:
    W, D, H = 0.60, 1.20, 2.00
    x0, x1, y0, y1 = -W / 2, W / 2, -D / 2, D / 2
    post = 0.04
    frame = MeshBuilder()
    for px in (x0, x1 - post):                     # four vertical posts
        for py in (y0, y1 - post):
            frame.box((px, py, 0.0), (px + post, py + post, H))
    frame.box((x0, y0, H - 0.03), (x1, y1, H))      # roof
    sides = MeshBuilder()                           # glass side panels: the cabinet is a sealed glass tube
    sides.box((x0 + 0.004, y0 + post, 0.05), (x0 + 0.012, y1 - post, H - 0.03))
    sides.box((x1 - 0.012, y0 + post, 0.05), (x1 - 0.004, y1 - post, H - 0.03))
    for px in (x0, x1 - 0.012):                     # side rails that hold the side glass
        for z in (0.05, 1.0, H - 0.06):
            frame.box((px, y0 + post, z), (px + 0.012, y1 - post, z + 0.03))
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
    body = "\n".join([mesh_usda("Frame", frame, (0.07, 0.07, 0.08), 2), mesh_usda("Rails", rails, (0.55, 0.55, 0.58), 2),
                      mesh_usda("DoorFrame", door_frame, (0.1, 0.1, 0.11), 2), mesh_usda("RearDoor", rear, (0.09, 0.09, 0.1), 2)])
    glass = "\n".join([mesh_usda("GlassDoor", door, (0.55, 0.7, 0.75), 2), mesh_usda("GlassSides", sides, (0.55, 0.7, 0.75), 2)])
    parts = (f'    def Xform "Body"\n    {{\n{body}\n    }}\n'
             f'    def Xform "Glass"\n    {{\n{glass}\n    }}')
    return asset("rack.usda", "Rack", "Sealed glass 42U 19-inch rack 0.60 x 1.20 x 2.00 m with a bottom plenum opening: "
                 "Body and Glass (door and side panes)", parts, "component", "rack")


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
    return asset("floor_tile.usda", "FloorTile", "0.60 m perforated raised-floor grille tile over the plenum",
                 mesh_usda("Grille", m, (0.55, 0.6, 0.66)), "component")


def cable_tray() -> str:
    L, W, H = 0.60, 0.30, 0.10
    m = MeshBuilder()
    m.box((-L / 2, -W / 2, 0.0), (L / 2, -W / 2 + 0.004, H))      # side rails
    m.box((-L / 2, W / 2 - 0.004, 0.0), (L / 2, W / 2, H))
    for i in range(3):                                              # rungs
        x = -L / 2 + 0.1 + i * 0.2
        m.box((x - 0.01, -W / 2, 0.0), (x + 0.01, W / 2, 0.006))
    rods = MeshBuilder()                                            # M10 threaded hangers
    for y in (-W / 2 - 0.01, W / 2 + 0.01):
        rods.box((-0.005, y - 0.005, 0.0), (0.005, y + 0.005, CEILING_Z_M - TRAY_Z_M))
        rods.box((-0.02, y - 0.02, -0.008), (0.02, y + 0.02, 0.0))  # trapeze foot under the rail
    body = "\n".join([mesh_usda("Tray", m, (0.75, 0.62, 0.1)), mesh_usda("Hangers", rods, (0.3, 0.3, 0.32))])
    return asset("cable_tray.usda", "CableTray", "0.60 m overhead ladder cable tray segment, 0.30 x 0.10 m, "
                 "on two ceiling hangers", body, "component")


def tor_switch() -> str:
    case = MeshBuilder()
    case.box((-0.22, -0.25, 0.0), (0.22, 0.25, U - 0.001))
    ports = MeshBuilder()
    for i in range(16):
        px = -0.2 + i * 0.025
        ports.box((px, 0.25, 0.01), (px + 0.018, 0.253, 0.03))
    body = "\n".join([mesh_usda("Case", case, (0.12, 0.14, 0.18)), mesh_usda("Ports", ports, (0.1, 0.7, 0.3))])
    return asset("tor_switch.usda", "TorSwitch", "1U leaf / spine switch 0.44 x 0.50 x 0.044 m, 16 QSFP ports",
                 body, "component", "switch")


def cooling_unit() -> str:
    W, D, H = 1.80, 0.90, 1.95
    x0, x1, y0, y1 = -W / 2, W / 2, -D / 2, D / 2
    cab = MeshBuilder()
    cab.box((x0, y0, 0.0), (x1, y1 - 0.02, H - 0.02))
    cab.box((x0, y1 - 0.02, 0.0), (x1, y1, 0.12))                  # plinth
    louvres = MeshBuilder()                                        # three louvred front panels
    for k in range(3):
        px0 = x0 + 0.04 + k * (W - 0.08) / 3
        px1 = px0 + (W - 0.08) / 3 - 0.03
        for j in range(22):
            z = 0.18 + j * 0.075
            louvres.box((px0, y1 - 0.02, z), (px1, y1 + 0.01, z + 0.03))
    top = MeshBuilder()                                            # top return-air grille
    for i in range(30):
        gx = x0 + 0.05 + i * (W - 0.1) / 30
        top.box((gx, y0 + 0.05, H - 0.02), (gx + 0.02, y1 - 0.05, H))
    panel = MeshBuilder()
    panel.box((x1 - 0.32, y1 - 0.02, 1.55), (x1 - 0.08, y1 + 0.004, 1.72))
    body = "\n".join([mesh_usda("Cabinet", cab, (0.62, 0.64, 0.67)), mesh_usda("Louvres", louvres, (0.42, 0.44, 0.47)),
                      mesh_usda("ReturnGrille", top, (0.3, 0.31, 0.33)), mesh_usda("Display", panel, (0.05, 0.35, 0.45))])
    return asset("cooling_unit.usda", "CoolingUnit", "Downflow CRAH unit 1.80 x 0.90 x 1.95 m: top return, "
                 "discharge into the floor plenum", body, "component", "cooling_unit")


ROOM_ASSETS = {"rack.usda": rack, "floor_tile.usda": floor_tile, "cable_tray.usda": cable_tray,
               "tor_switch.usda": tor_switch, "cooling_unit.usda": cooling_unit}
