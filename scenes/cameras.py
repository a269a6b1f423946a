"""``/Refinery/Cameras``: Hero (an eased move down the cold aisle), CloseUp, Overview, Front.

Lenses are in stage units as UsdGeom.Camera defines them (tenths of a scene unit): on this metre
stage an 18 mm lens is ``focalLength = 0.18`` and the 36 x 20.25 mm 16:9 filmback is
``horizontalAperture = 0.36``, ``verticalAperture = 0.2025`` (Blender reads them back as 18 mm
on a 36 x 20.25 mm sensor).

The Hero move is keyed on the run's own story beats (scenes.stage.story_beats): it holds a wide
shot from beyond the aisle's open door while the cascade ignites the racks, pushes in to the
aisle mouth by the time every unit is lit, is inside the aisle at the peak, and ends near the far
door looking up into the trays. Between keys the position, heading and tilt ease in and out
(smoothstep), sampled at every stage frame.
"""
from __future__ import annotations

import numpy as np
from pxr import Gf, Sdf, Usd, UsdGeom

from scenes import layout as lay
from scenes.animate import attr_spec

CAMERAS = f"{lay.ROOT}/Cameras"
MM = 0.01                        # 1 mm in tenths of a metre (the stage unit's tenth)
FILMBACK_MM = (36.0, 20.25)      # 16:9 full-frame width
LENS_MM = {"Hero": 16.0, "CloseUp": 28.0, "Overview": 14.0, "Front": 12.0}


def rotate_xyz(azimuth_deg: float, pitch_deg: float) -> tuple[float, float, float]:
    """xformOp:rotateXYZ that points a camera (looking down -Z, +Y up) along `azimuth` (degrees
    from +X towards +Y) tilted up by `pitch`, with world +Z up."""
    return 90.0 + pitch_deg, 0.0, azimuth_deg - 90.0


def look_at(eye, target) -> tuple[float, float, float]:
    d = np.asarray(target, dtype=np.float64) - np.asarray(eye, dtype=np.float64)
    az = float(np.degrees(np.arctan2(d[1], d[0])))
    pitch = float(np.degrees(np.arctan2(d[2], np.hypot(d[0], d[1]))))
    return rotate_xyz(az, pitch)


def smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def eased_path(key_frames: list[int], key_values: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames, D) values through (K, D) keys at increasing frames, eased in and out per segment."""
    keys = np.asarray(key_frames, dtype=np.float64)
    vals = np.asarray(key_values, dtype=np.float64)
    f = np.arange(n_frames, dtype=np.float64)
    seg = np.clip(np.searchsorted(keys, f, side="right") - 1, 0, len(keys) - 2)
    span = np.maximum(keys[seg + 1] - keys[seg], 1e-9)
    u = smoothstep((f - keys[seg]) / span)[:, None]
    return vals[seg] + u * (vals[seg + 1] - vals[seg])


def hero_keys(layout: lay.Layout, beats: dict) -> tuple[list[int], np.ndarray]:
    """Key frames and (x, y, z, azimuth, pitch) keys of the Hero move (see module doc)."""
    y = lay.aisle_ys(layout)[0]
    x0, x1 = layout.racks_min[0], layout.racks_max[0]
    span = x1 - x0
    frames = [0, beats["cascade_end"], beats["peak"], beats["last"]]
    for i in range(1, len(frames)):                 # strictly increasing, even for short runs
        frames[i] = max(frames[i], frames[i - 1] + 1)
    vals = np.array([
        [x0 - 2.2, y, 1.45, 0.0, 8.0],               # wide, beyond the open door: the whole aisle + trays
        [x0 - 0.9, y, 1.50, -3.0, 9.0],              # at the doorway when every unit is lit
        [x0 + 0.30 * span, y, 1.55, -14.0, 10.0],    # inside, turned to row A at the peak
        [x0 + 0.72 * span, y, 1.60, 12.0, 16.0],     # deep in the aisle, looking up into the trays
    ])
    return frames, vals


def author_cameras(stage: Usd.Stage, layout: lay.Layout, close_node: int) -> None:
    stage.DefinePrim(CAMERAS, "Scope")
    y = lay.aisle_ys(layout)[0]
    x0, y0 = layout.room_min
    rx0, rx1 = layout.racks_min[0], layout.racks_max[0]
    hero = _camera(stage, "Hero", clip=(0.05, 60.0))
    hero.AddTranslateOp()                      # animated (telemetry.usdc)
    hero.AddRotateXYZOp()
    # CloseUp: square on to a node's front through its glass door, a little above it
    node = lay.node_world(layout, close_node, (0.0, 0.40, 0.0))
    rack = layout.racks[layout.node_rack_index[close_node]]
    out = 1.0 if rack.yaw_deg == 0 else -1.0
    eye = node + np.array([0.08 * out, 0.80 * out, 0.12])
    _place(_camera(stage, "CloseUp", clip=(0.02, 30.0)), eye, look_at(eye, node + np.array([0.0, 0.0, -0.01])))
    # Overview: from a high corner of the room over the whole floor
    eye = np.array([x0 + 0.5, y0 + 0.4, lay.CEILING_Z_M - 0.2])
    _place(_camera(stage, "Overview", clip=(0.1, 80.0)), eye, look_at(eye, [(rx0 + rx1) / 2, y, 0.7]))
    # Front: row A's fronts from the far side of the aisle
    half = lay.aisle_half_width(layout)
    eye = np.array([(rx0 + rx1) / 2, y + half - 0.05, 1.05])
    _place(_camera(stage, "Front", clip=(0.05, 60.0)), eye, rotate_xyz(-90.0, 0.0))


def _camera(stage: Usd.Stage, name: str, clip: tuple[float, float]) -> UsdGeom.Camera:
    cam = UsdGeom.Camera.Define(stage, f"{CAMERAS}/{name}")
    cam.CreateFocalLengthAttr(LENS_MM[name] * MM)
    cam.CreateHorizontalApertureAttr(FILMBACK_MM[0] * MM)
    cam.CreateVerticalApertureAttr(FILMBACK_MM[1] * MM)
    cam.CreateClippingRangeAttr(Gf.Vec2f(*clip))
    return cam


def _place(cam: UsdGeom.Camera, eye, rot) -> None:
    cam.AddTranslateOp().Set(Gf.Vec3d(*map(float, eye)))
    cam.AddRotateXYZOp().Set(Gf.Vec3f(*map(float, rot)))


def write_hero_samples(tel: Sdf.Layer, layout: lay.Layout, beats: dict, timecodes: np.ndarray) -> int:
    """The Hero's eased translate + rotate at every stage frame."""
    if timecodes.size == 0:
        return 0
    frames, vals = hero_keys(layout, beats)
    path = eased_path(frames, vals, timecodes.size)
    p_t = attr_spec(tel, f"{CAMERAS}/Hero", "xformOp:translate", Sdf.ValueTypeNames.Double3).path
    p_r = attr_spec(tel, f"{CAMERAS}/Hero", "xformOp:rotateXYZ", Sdf.ValueTypeNames.Float3).path
    for tc, v in zip(timecodes.tolist(), path.tolist()):
        tel.SetTimeSample(p_t, tc, Gf.Vec3d(v[0], v[1], v[2]))
        tel.SetTimeSample(p_r, tc, Gf.Vec3f(*rotate_xyz(v[3], v[4])))
    return 2 * timecodes.size
