"""Small prim helpers shared by the stage modules (Usd API, root layer only)."""
from __future__ import annotations

from pxr import Gf, Sdf, Usd, UsdGeom, UsdSemantics, UsdShade, Vt

import numpy as np


def group(stage: Usd.Stage, path: str, kind: str | None = "group") -> Usd.Prim:
    prim = UsdGeom.Xform.Define(stage, path).GetPrim()
    if kind:
        Usd.ModelAPI(prim).SetKind(kind)
    return prim


def ref(stage: Usd.Stage, path: str, asset: str, prim_path: str | None = None,
        instanceable: bool = False, translate=None, yaw_deg: float | None = None,
        payload: bool = False) -> Usd.Prim:
    """A prim referencing (or payloading) ./assets/<asset> (typeless def: the asset supplies the type)."""
    prim = stage.DefinePrim(path)
    target = Sdf.Path(prim_path) if prim_path else Sdf.Path()
    if payload:
        prim.GetPayloads().AddPayload(Sdf.Payload(f"./assets/{asset}", target))
    else:
        prim.GetReferences().AddReference(Sdf.Reference(f"./assets/{asset}", target))
    if instanceable:
        prim.SetInstanceable(True)
    if translate is not None or yaw_deg is not None:
        xform(prim, translate, yaw_deg)
    return prim


def xform(prim: Usd.Prim, translate=None, yaw_deg: float | None = None) -> None:
    x = UsdGeom.Xformable(prim)
    if translate is not None:
        x.AddTranslateOp().Set(Gf.Vec3d(*map(float, translate)))
    if yaw_deg is not None:
        x.AddRotateZOp().Set(float(yaw_deg))


def bind(prim: Usd.Prim, material: UsdShade.Material) -> None:
    UsdShade.MaterialBindingAPI.Apply(prim).Bind(material)


def bind_spec(prim: Sdf.PrimSpec, material: Sdf.Path) -> None:
    """bind() as Sdf specs, for authoring inside an Sdf.ChangeBlock: the MaterialBindingAPI schema
    and the material:binding target (on a spec that has no API schemas yet)."""
    prim.SetInfo("apiSchemas", Sdf.TokenListOp.Create(prependedItems=["MaterialBindingAPI"]))
    Sdf.RelationshipSpec(prim, "material:binding", False).targetPathList.explicitItems = [material]


def attr_default(prim: Sdf.PrimSpec, name: str, type_name: Sdf.ValueTypeName, value=None, uniform: bool = False,
                 custom: bool = False, interpolation: str | None = None) -> Sdf.AttributeSpec:
    """A new attribute spec on `prim` with its default `value` (none: declared only) and, for a
    primvar, its interpolation: what Create*Attr(...).Set(value) authors through the Usd API, for
    authoring inside an Sdf.ChangeBlock."""
    spec = Sdf.AttributeSpec(prim, name, type_name, Sdf.VariabilityUniform if uniform else Sdf.VariabilityVarying,
                             custom)
    if value is not None:
        spec.default = value
    if interpolation is not None:
        spec.SetInfo("interpolation", interpolation)
    return spec


def label(prim: Usd.Prim, cls: str) -> None:
    """Semantic class label (UsdSemantics, shipped by usd-core >= 24.11)."""
    UsdSemantics.LabelsAPI.Apply(prim, "class").CreateLabelsAttr([cls])


def mesh(stage: Usd.Stage, path: str, points: np.ndarray, counts, indices, rgb=(0.3, 0.3, 0.32)) -> UsdGeom.Mesh:
    """A static Mesh with a constant displayColor (room geometry)."""
    m = UsdGeom.Mesh.Define(stage, path)
    pts = np.asarray(points, dtype=np.float32)
    m.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(pts))
    m.CreateFaceVertexCountsAttr(Vt.IntArray([int(c) for c in counts]))
    m.CreateFaceVertexIndicesAttr(Vt.IntArray([int(i) for i in indices]))
    m.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*map(float, pts.min(0))), Gf.Vec3f(*map(float, pts.max(0)))]))
    m.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    m.CreateDisplayColorPrimvar(UsdGeom.Tokens.constant).Set(Vt.Vec3fArray([Gf.Vec3f(*map(float, rgb))]))
    return m


def boxes(los: np.ndarray, his: np.ndarray) -> tuple[np.ndarray, list[int], list[int]]:
    """Points, counts and indices of many axis-aligned boxes (K, 3) lo/hi corners in one mesh."""
    los, his = np.atleast_2d(los), np.atleast_2d(his)
    corner = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]])
    pts = los[:, None, :] + corner[None, :, :] * (his - los)[:, None, :]
    faces = np.array([(0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4), (2, 3, 7, 6), (1, 2, 6, 5), (3, 0, 4, 7)])
    idx = (faces[None, :, :] + 8 * np.arange(len(los))[:, None, None]).ravel()
    return pts.reshape(-1, 3), [4] * (6 * len(los)), idx.tolist()
