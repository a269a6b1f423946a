"""The brief's story on the default surge's stage (pxr): idle reads blue, the peak orange-red,
traffic is visible, FX data is there, lenses are in stage units, nothing flashes above 3 Hz.

Colour classes are computed here from the stage's linear RGB with the IEC 61966-2-1 sRGB curve and
colorsys HSV (blue: hue 200-260°, orange-red: hue <= 30° or >= 350°, saturation >= 0.5), not with
the code under test. The physics may change; the assertions are the story, not exact values.
"""
from __future__ import annotations

import colorsys
import numpy as np
import pytest

pytest.importorskip("pxr")
from pxr import Sdf, Usd, UsdGeom, UsdValidation  # noqa: E402



@pytest.fixture(scope="module")
def surge(tmp_path_factory):
    from surge_run import surge_run
    from twin.telemetry.read import read_manifest
    run = surge_run(tmp_path_factory)
    return run, read_manifest(run)["stage"], Usd.Stage.Open(str(run / "stage" / "refinery.usda"))


def colour_class(linear_rgb) -> str:
    c = np.clip(np.asarray(linear_rgb, dtype=float), 0, 1)
    s = np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)
    h, sat, v = colorsys.rgb_to_hsv(*s)
    if sat < 0.5 or v < 0.02:
        return ""
    h *= 360
    return "blue" if 200 <= h <= 260 else "orange-red" if h <= 30 or h >= 350 else ""


def flashes_per_second(series: np.ndarray, fps: int = 24, rel: float = 0.1) -> int:
    """Most flashes in any one-second window: a flash is a rise of more than `rel` of the series'
    brightest value after a fall of as much (a pair of opposing luminance changes of 10 % or more,
    as ITU-R BT.1702 counts them; float rounding between held samples is not a flash)."""
    s = np.asarray(series, dtype=float)
    thr = rel * max(np.abs(s).max(), 1e-9)
    onsets, low, high, armed = [], s[0], s[0], True
    for f, v in enumerate(s):
        if armed and v - low > thr:
            onsets.append(f)
            armed, high = False, v
        elif not armed:
            high = max(high, v)
            if high - v > thr:
                armed, low = True, v
        else:
            low = min(low, v)
    on = np.array(onsets)
    return max((int(((on >= f) & (on < f + fps)).sum()) for f in range(len(s))), default=0)


def nodes(stage):
    return [p for p in stage.Traverse() if p.GetName().startswith("Node_")]


def test_idle_reads_blue_and_the_hottest_frame_orange_red(surge):
    _, _, stage = surge
    ns = nodes(stage)
    assert len(ns) == 160
    t0, t1 = stage.GetStartTimeCode(), stage.GetEndTimeCode()
    times = np.arange(t0, t1 + 1)
    temps = np.array([[UsdGeom.PrimvarsAPI(n).GetPrimvar("telemetry:gpu_temp_max_c").Get(t) for n in ns] for t in times[::5]])
    hottest = times[::5][int(np.argmax(temps.mean(axis=1)))]

    def share(t, cls):
        got = [colour_class(n.GetChild("Shell").GetAttribute("primvars:displayColor").Get(t)[0]) for n in ns]
        return sum(g == cls for g in got) / len(got)
    assert share(t0, "blue") >= 0.8
    assert share(hottest, "orange-red") >= 0.5
    # OFF nodes are a dim standby blue, not black
    off = [n for n in ns if UsdGeom.PrimvarsAPI(n).GetPrimvar("telemetry:state").Get(t0) == "OFF"]
    assert off and all(colour_class(n.GetChild("Shell").GetAttribute("primvars:displayColor").Get(t0)[0]) == "blue"
                       for n in off)


def test_traffic_is_visible_and_nothing_flashes_above_three_hertz(surge):
    _, _, stage = surge
    times = np.arange(stage.GetStartTimeCode(), stage.GetEndTimeCode() + 1)
    links = list(stage.GetPrimAtPath("/Refinery/Fabric/Links").GetChildren())
    busy = [c for c in links if len(UsdGeom.BasisCurves(c).GetWidthsAttr().GetTimeSamples()) >= 20]
    assert len(busy) >= 16
    p2p = [n.GetChild("P2P") for n in nodes(stage)]
    flashing = [c for c in p2p if len(UsdGeom.BasisCurves(c).GetWidthsAttr().GetTimeSamples()) >= 20]
    assert len(flashing) >= 100
    worst = 0
    for c in flashing:
        w = np.array([UsdGeom.BasisCurves(c).GetWidthsAttr().Get(t)[0] for t in times])
        worst = max(worst, flashes_per_second(w))
    assert 1 <= worst <= 3
    lum = lambda rgb: 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]  # noqa: E731
    for n in nodes(stage)[::4]:                                 # boot pulses and heat changes
        a = n.GetChild("Shell").GetAttribute("primvars:displayColor")
        assert flashes_per_second(np.array([lum(a.Get(t)[0]) for t in times])) <= 3, n.GetPath()
    for c in busy[::8]:
        a = UsdGeom.BasisCurves(c).GetDisplayColorPrimvar()
        assert flashes_per_second(np.array([lum(a.Get(t)[0]) for t in times])) <= 3, c.GetPath()


def test_fx_airflow_points_carry_velocities_from_the_run(surge):
    import pyarrow.compute as pc
    from twin.telemetry.read import read_table
    run, _, stage = surge
    n = stage.GetPrimAtPath("/Refinery/Row_A/Rack_A04/Node_05")
    pts = UsdGeom.Points(n.GetChild("FX").GetChild("Airflow"))
    assert len(pts.GetVelocitiesAttr().GetTimeSamples()) >= 20
    node_id = UsdGeom.PrimvarsAPI(n).GetPrimvar("telemetry:node_id").Get()
    t = read_table(run, "nodes")
    row = t.filter(pc.and_(pc.equal(t["node_id"], node_id), pc.equal(t["time_s"], 2000.0)))
    airflow = row["airflow_m3_s"][0].as_py()
    area = pts.GetPrim().GetAttribute("fx:intake_area_m2").Get()
    side = np.array(UsdGeom.PrimvarsAPI(pts).GetPrimvar("fx:side").Get())
    v = np.array(pts.GetVelocitiesAttr().Get(2000.0 / 5.0))
    assert airflow > 0 and v[side == 0, 1] == pytest.approx(-airflow / area, abs=0.006)


def test_lenses_mapping_and_validation(surge):
    run, info, stage = surge
    for cam in stage.GetPrimAtPath("/Refinery/Cameras").GetChildren():
        assert UsdGeom.Camera(cam).GetFocalLengthAttr().Get() <= 1.0, cam.GetPath()
    d = stage.GetRootLayer().customLayerData
    assert d["twin:colour_by"] == "gpu_temp" and d["twin:colour_range_mode"] == "auto"
    assert d["twin:colour_range_lo"] < d["twin:colour_range_hi"]
    assert (run / "stage" / "previews" / "colour_legend.png").is_file()
    assert set(info["beats"]) == {"idle", "ignition", "cascade_end", "peak", "decay", "last"}
    reg = UsdValidation.ValidationRegistry()
    errs = [e for e in UsdValidation.ValidationContext(reg.GetOrLoadAllValidators()).Validate(stage)
            if e.GetType() == UsdValidation.ValidationErrorType.Error]
    assert not errs, [e.GetMessage() for e in errs[:3]]
    assert sum(1 for p in stage.Traverse() if p.IsInstance()) > 700
    assert Sdf.Layer.FindOrOpen(str(run / "stage" / "telemetry.usdc")).GetFileFormat().formatId == "usdc"
