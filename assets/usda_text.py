"""Helpers that write USD assets as plain USDA text (no pxr: only scenes/ imports pxr).

MeshBuilder accumulates boxes, cylinders and polygons into one Mesh; ``mesh_usda`` prints it with
a constant ``displayColor`` (every client keeps a Mesh's colour; see docs/stage.md); ``asset``
wraps a body in a default prim carrying its kind, ``assetInfo`` and an optional semantic label
(``SemanticsLabelsAPI:class``). Assets carry no materials: the stage binds its one set of Looks
(assets/materials.usda) so 160 node references do not bring 160 copies of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

ASSET_VERSION = "2"
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

    def _rings(self, cx: float, cz: float, rings: list[tuple[float, float]], n: int) -> int:
        """Append n points on each (radius, y) circle around (cx, cz); return the first index."""
        base = len(self.points)
        for r, y in rings:
            for i in range(n):
                a = 2 * math.pi * i / n
                self.points.append((cx + r * math.cos(a), y, cz + r * math.sin(a)))
        return base

    def cylinder_y(self, cx: float, cz: float, r: float, y0: float, y1: float, n: int = 16) -> None:
        """Closed cylinder along Y (fan hubs, GPU blower wheels)."""
        base = self._rings(cx, cz, [(r, y0), (r, y1)], n)
        for i in range(n):
            j = (i + 1) % n
            self.counts.append(4)
            self.indices.extend([base + i, base + j, base + n + j, base + n + i])
        self.counts.append(n)
        self.indices.extend(base + n + i for i in range(n))          # +Y cap
        self.counts.append(n)
        self.indices.extend(base + (n - 1 - i) for i in range(n))    # -Y cap

    def annulus_y(self, cx: float, cz: float, r0: float, r1: float, y: float, n: int = 24) -> None:
        """Flat ring facing +Y (fan blur discs), one quad per segment."""
        base = self._rings(cx, cz, [(r0, y), (r1, y)], n)
        for i in range(n):
            j = (i + 1) % n
            self.counts.append(4)
            self.indices.extend([base + i, base + n + i, base + n + j, base + j])

    def extent(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        xs, ys, zs = zip(*self.points)
        return (min(xs), min(ys), min(zs)), (max(xs), max(ys), max(zs))


def f5(v: float) -> str:
    return f"{v:.5g}"


def vec(p) -> str:
    return "(" + ", ".join(f5(c) for c in p) + ")"


def mesh_usda(name: str, m: MeshBuilder, colour: tuple[float, float, float], indent: int = 1,
              extra: str = "", meta: str = "") -> str:
    """USDA text of one Mesh prim with a constant displayColor (no material: the stage binds)."""
    pad = "    " * indent
    lo, hi = m.extent()
    head = f'{pad}def Mesh "{name}"' + (f" (\n{pad}    {meta}\n{pad})" if meta else "")
    lines = [
        head, f"{pad}{{",
        f"{pad}    float3[] extent = [{vec(lo)}, {vec(hi)}]",
        f"{pad}    int[] faceVertexCounts = [{', '.join(map(str, m.counts))}]",
        f"{pad}    int[] faceVertexIndices = [{', '.join(map(str, m.indices))}]",
        f"{pad}    point3f[] points = [{', '.join(vec(p) for p in m.points)}]",
        f"{pad}    color3f[] primvars:displayColor = [{vec(colour)}] (",
        f'{pad}        interpolation = "constant"',
        f"{pad}    )",
        f'{pad}    uniform token subdivisionScheme = "none"',
    ]
    if extra:
        lines.append(extra)
    lines.append(f"{pad}}}")
    return "\n".join(lines)


def header(default_prim: str, doc: str) -> str:
    return (f'#usda 1.0\n(\n    defaultPrim = "{default_prim}"\n    doc = "{doc}"\n'
            f'    metersPerUnit = 1\n    upAxis = "Z"\n)\n\n')


def prim_meta(file_name: str, name: str, kind: str | None, label: str | None, extra: str = "") -> str:
    """Metadata block of an asset's default prim: kind, assetInfo, semantic label, extras."""
    parts = []
    if kind:
        parts.append(f'kind = "{kind}"')
    parts.append(f'assetInfo = {{\n        asset identifier = @./{file_name}@\n        string name = "{name}"\n'
                 f'        string version = "{ASSET_VERSION}"\n    }}')
    if label:
        parts.append('prepend apiSchemas = ["SemanticsLabelsAPI:class"]')
    if extra:
        parts.append(extra)
    return "\n    ".join(parts)


def asset(file_name: str, name: str, doc: str, body: str, kind: str | None = "component",
          label: str | None = None, meta: str = "", type_name: str = "Xform") -> str:
    """A whole asset file: header + default prim (kind, assetInfo, semantics) + body."""
    label_attr = f'    token[] semantics:labels:class = ["{label}"]\n' if label else ""
    return (header(name, doc) + f'def {type_name} "{name}" (\n    {prim_meta(file_name, name, kind, label, meta)}\n)\n{{\n'
            + label_attr + body + "\n}\n")


def xform_ref(name: str, target: str, translate=(0.0, 0.0, 0.0), rotate=None, indent: int = 1,
              meta: str = "", arc: str = "references") -> str:
    """A child Xform that references (or payloads) another asset, placed by translate (+ rotateXYZ)."""
    pad = "    " * indent
    ops = [f"{pad}    double3 xformOp:translate = {vec(translate)}"]
    order = ['"xformOp:translate"']
    if rotate is not None:
        ops.append(f"{pad}    double3 xformOp:rotateXYZ = {vec(rotate)}")
        order.append('"xformOp:rotateXYZ"')
    extra = f"\n{pad}    {meta}" if meta else ""
    return (f'{pad}def Xform "{name}" (\n{pad}    prepend {arc} = {target}{extra}\n{pad})\n{pad}{{\n'
            + "\n".join(ops) + f"\n{pad}    uniform token[] xformOpOrder = [{', '.join(order)}]\n{pad}}}")
