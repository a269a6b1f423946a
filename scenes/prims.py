"""Small prim helpers shared by scenes/stage.py and scenes/fabric.py (Usd API, root layer only)."""
from __future__ import annotations

from pxr import Gf, Sdf, Usd, UsdGeom


def group(stage: Usd.Stage, path: str, kind: str | None = "group") -> Usd.Prim:
    prim = UsdGeom.Xform.Define(stage, path).GetPrim()
    if kind:
        Usd.ModelAPI(prim).SetKind(kind)
    return prim


def ref(stage: Usd.Stage, path: str, asset: str, prim_path: str | None = None,
        instanceable: bool = False, translate=None, yaw_deg: float | None = None) -> Usd.Prim:
    """A prim referencing ./assets/<asset> (typeless def: the asset supplies the type)."""
    prim = stage.DefinePrim(path)
    reference = Sdf.Reference(f"./assets/{asset}", Sdf.Path(prim_path) if prim_path else Sdf.Path())
    prim.GetReferences().AddReference(reference)
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
