"""The USD stage opened with pxr: structure, assets, metadata, values, FX hand-off, cameras.

Built from the hand-made run of tests/synthetic_run.py (2 rows x 2 racks x 3 nodes, 20 samples
at 10 s) plus synthetic links (tests/stage_links.py), so expected values are computed by hand
from those closed forms. Stage frames = telemetry samples (10 s >= the 5-s default): sample k
(time (k+1)*10 s) sits at time code k+1. The colour range is fixed (--colour-range 30:60) so the
expected colours do not depend on the auto fit (tested in test_scene_colours.py).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pxr = pytest.importorskip("pxr")
from pxr import Gf, Kind, Sdf, Usd, UsdGeom, UsdSemantics, UsdShade, UsdValidation  # noqa: E402

from scenes import build_stage  # noqa: E402
from stage_links import add_synthetic_links  # noqa: E402
from synthetic_run import make_synthetic_run  # noqa: E402

ASSETS = Path(__file__).resolve().parent.parent / "assets"
N_NODES = 12


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    run = make_synthetic_run(tmp_path_factory.mktemp("stage") / "syn")
    n_links = add_synthetic_links(run, spines=2, storage=1)
    info = build_stage(run, colour_range="30:60")
    stage = Usd.Stage.Open(str(run / "stage" / "refinery.usda"))
    return run, info, stage, n_links


def node(stage, rack="A01", slot=1):
    return stage.GetPrimAtPath(f"/Refinery/Row_{rack[0]}/Rack_{rack}/Node_{slot:02d}")


def errors_of(stage) -> list[str]:
    reg = UsdValidation.ValidationRegistry()
    return [e.GetMessage() for e in UsdValidation.ValidationContext(reg.GetOrLoadAllValidators()).Validate(stage)
            if e.GetType() == UsdValidation.ValidationErrorType.Error]


def test_files_layers_and_metadata(syn):
    run, info, stage, _ = syn
    root = stage.GetRootLayer()
    assert list(root.subLayerPaths) == ["./telemetry.usdc", "./data.usdc"]
    for name in ("telemetry.usdc", "data.usdc"):
        assert Sdf.Layer.FindOrOpen(str(run / "stage" / name)).GetFileFormat().formatId == "usdc"
    assert info["previews"] == ["stage/previews/colour_legend.png", "stage/previews/floor_heatmap.gif"]
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z and UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert stage.GetTimeCodesPerSecond() == 24.0 and (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (1.0, 20.0)
    d = root.customLayerData
    assert d["twin:scenario"] == "synthetic" and d["twin:seed"] == 1
    # time mapping: 10 simulated s per time code, 240 simulated s per second of playback
    assert d["twin:time_mapping"] == "compressed" and d["twin:seconds_per_timecode"] == 10.0
    assert d["twin:simulated_seconds_per_stage_second"] == 240.0
    # the colour mapping in force, and the traffic gain
    assert (d["twin:colour_by"], d["twin:colour_range_mode"], d["twin:colour_range_lo"], d["twin:colour_range_hi"]) == \
        ("gpu_temp", "manual", 30.0, 60.0)
    assert d["twin:traffic_gain"] == 2.0 and d["twin:max_flashes_per_second"] == 3.0
    assert (run / "stage" / d["twin:legend"]).is_file()


def test_validators_report_no_errors_on_the_stage_and_every_asset(syn):
    assert not errors_of(syn[2])
    for path in sorted(ASSETS.glob("*.usda")):
        assert not errors_of(Usd.Stage.Open(str(path))), path.name


def test_kinds_assets_payloads_and_instancing(syn):
    _, _, stage, _ = syn
    kind = lambda p: Usd.ModelAPI(stage.GetPrimAtPath(p)).GetKind()  # noqa: E731
    assert kind("/Refinery") == Kind.Tokens.assembly
    assert kind("/Refinery/Row_A") == Kind.Tokens.group
    racks = [p for p in stage.Traverse() if p.GetName().startswith("Rack_")]
    assert sorted(p.GetName() for p in racks) == ["Rack_A01", "Rack_A02", "Rack_B01", "Rack_B02"]
    for rack in racks:
        assert Usd.ModelAPI(rack).GetKind() == Kind.Tokens.assembly
        assert rack.GetChild("Cabinet").IsInstance() and rack.GetChild("Door").IsInstance()
        assert rack.GetChild("Cabinet").HasAuthoredPayloads()          # heavy parts are payloads
        for n in (c for c in rack.GetChildren() if c.GetName().startswith("Node_")):
            # the one node asset, referenced per node (its colour is per node), internals instanced
            assert Usd.ModelAPI(n).GetKind() == Kind.Tokens.component
            assert n.GetPrimStack()[-1].layer.identifier.endswith("assets/node.usda")
            assert Usd.ModelAPI(n).GetAssetInfo()["name"] == "Node"
            assert n.GetVariantSets().GetVariantSelection("gpu") == "rtx_pro_blower"
            assert n.GetVariantSets().GetVariantSelection("lod") == "full"
            assert n.GetChild("Internals").IsInstance() and not n.GetChild("Shell").IsInstance()
            assert n.GetChild("Shell").GetTypeName() == "Mesh" and n.GetChild("FrontMesh").GetTypeName() == "Mesh"
    n_nodes = sum(1 for p in stage.Traverse() if p.GetName().startswith("Node_"))
    assert n_nodes == N_NODES
    # row B turned to face the cold aisle: rack B01 at y = +1.2 rotated 180 degrees about Z
    m = UsdGeom.Xformable(stage.GetPrimAtPath("/Refinery/Row_B/Rack_B01")).ComputeLocalToWorldTransform(0)
    assert m.ExtractTranslation()[1] == pytest.approx(1.2) and m.TransformDir(Gf.Vec3d(0, 1, 0))[1] == pytest.approx(-1.0)
    w = UsdGeom.Xformable(node(stage)).ComputeLocalToWorldTransform(0).ExtractTranslation()
    assert (w[1], w[2]) == pytest.approx((-1.2 + (0.48 - 0.40), 0.1 + 3 * 0.04445))


def test_lod_variant_switches_to_a_proxy(syn):
    stage = Usd.Stage.Open(str(syn[0] / "stage" / "refinery.usda"))
    n = node(stage)
    with Usd.EditContext(stage, stage.GetSessionLayer()):     # the session layer: the file stays as built
        n.GetVariantSets().GetVariantSet("lod").SetVariantSelection("proxy")
    assert not n.GetChild("Internals").IsActive() and n.GetChild("Shell").IsActive()


def test_semantic_labels_and_one_set_of_materials(syn):
    _, _, stage, _ = syn
    def labels(p):
        return list(UsdSemantics.LabelsAPI(p, "class").GetLabelsAttr().Get() or [])
    assert labels(stage.GetPrimAtPath("/Refinery/Row_A/Rack_A01")) == ["rack"]
    assert labels(node(stage)) == ["node"]
    gpus = [p for p in Usd.PrimRange(node(stage).GetChild("Internals"), Usd.TraverseInstanceProxies())
            if p.GetName().startswith("Gpu_")]
    assert len(gpus) == 3 and all(labels(g) == ["gpu"] for g in gpus)
    everything = list(Usd.PrimRange(stage.GetPseudoRoot(), Usd.TraverseInstanceProxies()))
    materials = sorted(str(p.GetPath()) for p in everything if p.IsA(UsdShade.Material))
    assert materials == [f"/Refinery/Looks/{m}" for m in ("Blur", "Glass", "Light", "Pulse", "Surface")]
    shell = node(stage).GetChild("Shell")
    mat, _ = UsdShade.MaterialBindingAPI(shell).ComputeBoundMaterial()
    assert mat.GetPath() == "/Refinery/Looks/Surface"
    emissive = UsdShade.Shader(stage.GetPrimAtPath("/Refinery/Looks/Surface/Shader")).GetInput("emissiveColor")
    assert emissive.GetConnectedSources()[0][0].source.GetPath() == "/Refinery/Looks/Surface/Emission"


def test_node_telemetry_primvars(syn):
    _, _, stage, _ = syn
    n5 = UsdGeom.PrimvarsAPI(node(stage, "A02", 3))   # node 5 = rack A02 slot 2; sample k=7 -> time code 8
    get = lambda name, t: n5.GetPrimvar(f"telemetry:{name}").Get(t)  # noqa: E731
    assert n5.GetPrimvar("telemetry:node_id").Get() == 5
    assert get("power_w", 8) == pytest.approx(200 + 10 * 5 + 5 * 7)
    assert get("gpu_temp_max_c", 8) == pytest.approx(30 + 7 + 5 + 2)
    assert list(get("gpu_temp_c", 8)) == pytest.approx([30 + 7 + 5 + g for g in range(3)])
    assert get("fan_rpm", 8) == pytest.approx(1000 + 10 * 7)
    assert get("exhaust_c", 8) == pytest.approx(22 + 285 / 100)
    assert get("airflow_m3_s", 8) == pytest.approx(0.05) and get("p2p_gb_s", 8) == pytest.approx(7 % 3)
    assert get("gpu_util", 8) == pytest.approx(7 / 20)
    n0 = UsdGeom.PrimvarsAPI(node(stage))
    assert [n0.GetPrimvar("telemetry:state").Get(t) for t in (1, 2, 3, 4, 5, 20)] == \
        ["OFF", "OFF", "BOOTING", "BOOTING", "SERVING", "SERVING"]


def test_shell_colour_emission_heat_and_pulse(syn):
    _, _, stage, _ = syn
    shell = node(stage, "A02", 3).GetChild("Shell")
    # SERVING at 44 °C on 30..60: x = 14/30 -> step rint(0.4667 * 255) = 119 -> 0.46667, between the
    # 0.30 indigo (0.08, 0.05, 0.78) and 0.50 violet (0.38, 0.02, 0.60): f = 0.8333 -> (0.33, 0.025, 0.63)
    rgb = np.array(shell.GetAttribute("primvars:displayColor").Get(8)[0])
    assert rgb == pytest.approx([0.33, 0.025, 0.63], abs=1e-3)
    glow = 0.08 + 1.6 * 119 / 255                              # emission base + gain * heat
    assert np.array(shell.GetAttribute("primvars:emissive").Get(8)[0]) == pytest.approx(rgb * glow, abs=1e-3)
    front = node(stage, "A02", 3).GetChild("FrontMesh")
    assert np.array(front.GetAttribute("primvars:emissive").Get(8)[0]) == pytest.approx(rgb * glow * 0.5, abs=1e-3)
    assert list(shell.GetAttribute("primvars:heat").Get(8)) == pytest.approx([119 / 255])
    s0 = node(stage).GetChild("Shell").GetAttribute("primvars:displayColor")
    assert tuple(s0.Get(1)[0]) == pytest.approx((0.010, 0.035, 0.20))         # OFF: dim standby blue
    # BOOTING at frame 2: node 0's pulse phase = (2 + floor(0.381966 * 16) = 6) % 16 = 8 -> brightness
    # 1 - 0.6 = 0.4 of the 34 °C colour: step rint(4/30 * 255) = 34 -> f = (34/255)/0.3 = 0.4444 between
    # (0.01, 0.09, 0.85) and (0.08, 0.05, 0.78) -> (0.04111, 0.07222, 0.81889) * 0.4
    assert tuple(s0.Get(3)[0]) == pytest.approx((0.016444, 0.028889, 0.327556), abs=1e-4)


def test_fans_spin_below_half_pitch_and_blur_above_the_aliasing_rpm(syn):
    _, _, stage, _ = syn
    rot = node(stage).GetChild("Fan_2").GetAttribute("xformOp:rotateY")
    # rpm = 1000 + 10k, run peak 1190: each frame turns 0.45 * 360/7 * rpm / 1190 degrees; written
    # within 0.5° (swing door), so every frame is within that of the accumulated angle
    step = [0.45 * 360 / 7 * (1000 + 10 * k) / 1190 for k in range(20)]
    for k in range(20):
        assert rot.Get(k + 1) == pytest.approx(sum(step[:k + 1]), abs=0.5)
    assert max(step) < 360 / 7 / 2
    assert len(rot.GetTimeSamples()) < 20                      # a steady ramp needs few keys
    blur = node(stage).GetChild("Blur").GetAttribute("primvars:displayOpacity")
    assert list(blur.Get(1)) == pytest.approx([0.55])           # 1000 rpm: a full blur disc


def test_p2p_flashes_follow_traffic_and_stay_under_three_hertz(syn):
    _, _, stage, _ = syn
    for slot in (1, 2, 3):
        curves = UsdGeom.BasisCurves(node(stage, "B01", slot).GetChild("P2P"))
        w = np.array([curves.GetWidthsAttr().Get(t)[0] for t in range(1, 21)])
        assert (w[[0, 3, 6, 9, 12, 15, 18]] == 0).all()          # p2p = k % 3: no traffic, no flash
        onsets = np.flatnonzero((w[1:] > 0) & (w[:-1] == 0)) + 1
        assert onsets.size >= 1 and (np.diff(onsets) >= 8).all()
    pts = np.array(UsdGeom.BasisCurves(node(stage).GetChild("P2P")).GetPointsAttr().Get())
    assert pts[:, 2].max() < 0.084                              # arcs stay under the node's lid


def test_fx_airflow_points_velocities_and_inherited_primvars(syn):
    _, _, stage, _ = syn
    pts = UsdGeom.Points(node(stage, "A02", 3).GetChild("FX").GetChild("Airflow"))
    side = np.array(UsdGeom.PrimvarsAPI(pts).GetPrimvar("fx:side").Get())
    assert (side == 0).sum() == 12 and (side == 1).sum() == 10
    # 0.05 m³/s through 3 fan annuli pi (0.056² - 0.020²) = 0.025787 m² -> 1.94 m/s; through the rear
    # grille (0.40 - 13 * 0.008) * 0.12 = 0.03552 m² -> 1.41 m/s; front to rear = node-local -Y
    v = np.array(pts.GetVelocitiesAttr().Get(9))
    assert v[side == 0] == pytest.approx(np.tile([0, -1.94, 0], (12, 1)), abs=1e-5)
    assert v[side == 1] == pytest.approx(np.tile([0, -1.41, 0], (10, 1)), abs=1e-5)
    # temperatures: inlet 22 °C at the intake, 22 + 290/100 = 24.9 °C exhaust (k=8)
    t = np.array(UsdGeom.PrimvarsAPI(pts).GetPrimvar("temperature_c").Get(9))
    assert t[side == 0] == pytest.approx([22.0] * 12) and t[side == 1] == pytest.approx([24.9] * 10)
    inherited = UsdGeom.PrimvarsAPI(pts).FindPrimvarWithInheritance("telemetry:fan_rpm")
    assert inherited.Get(9) == pytest.approx(1080)


def test_fabric_cables_are_pinned_catenaries_with_bytes_gain(syn):
    _, info, stage, n_links = syn
    assert n_links == 22 and info["prims"]["links"] == 22      # 12 nic-leaf + 4 x 2 leaf-spine + 2 storage
    fab = stage.GetPrimAtPath("/Refinery/Fabric")
    assert sorted(p.GetName() for p in fab.GetChild("Leaves").GetChildren()) == ["Leaf_A01", "Leaf_A02", "Leaf_B01", "Leaf_B02"]
    link = UsdGeom.BasisCurves(fab.GetChild("Links").GetChild("Link_0000"))
    assert (link.GetTypeAttr().Get(), link.GetBasisAttr().Get(), link.GetWrapAttr().Get()) == ("cubic", "catmullRom", "pinned")
    pts = np.array(link.GetPointsAttr().Get())
    pinned = np.array(UsdGeom.PrimvarsAPI(link).GetPrimvar("fx:pinned").Get())
    assert len(pts) > 10 and pinned[0] == pinned[-1] == 1.0 and 0 < pinned.sum() < len(pts)
    assert link.GetPrim().GetAttribute("fabric:src").Get() == "node:0"
    # util (link 0, sample k) = (k % 5)/4 and bytes = util * 50e9 per 10 s: peak 5e9 B/s; level =
    # min(1, 2 sqrt(util)) is 0 at k % 5 == 0, else 1. Smoothed by the 15-frame triangle (weights
    # (8 - |j|)/64): at k=7 the zeros at k = 0, 5, 10 (j = -7, -2, +3) remove (1 + 6 + 5)/64 -> 0.8125,
    # quantised to rint(0.8125 * 23) = 19 steps -> width 0.006 + 19/23 * 0.008, glow 19/23 of full
    u = 19 / 23
    assert link.GetWidthsAttr().Get(8)[0] == pytest.approx(0.006 + u * 0.008)
    idle, hot = np.array([0.05, 0.06, 0.08]), np.array([0.25, 0.85, 1.0]) * 2.5
    assert np.array(link.GetDisplayColorPrimvar().Get(8)[0]) == pytest.approx(idle + u * (hot - idle), abs=1e-5)
    assert len(link.GetWidthsAttr().GetTimeSamples()) >= 10
    assert stage.GetRootLayer().customLayerData["twin:link_bytes_per_s_peak"] == pytest.approx(5e9)


def test_rdma_pulses_travel_along_the_cables(syn):
    _, _, stage, _ = syn
    pulses = UsdGeom.Points(stage.GetPrimAtPath("/Refinery/Fabric/Pulses"))
    link_of = np.array(UsdGeom.PrimvarsAPI(pulses).GetPrimvar("fabric:link").Get())
    p1, p2 = np.array(pulses.GetPointsAttr().Get(1)), np.array(pulses.GetPointsAttr().Get(2))
    route = np.array(UsdGeom.BasisCurves(stage.GetPrimAtPath("/Refinery/Fabric/Links/Link_0003")).GetPointsAttr().Get())
    for p in p1[link_of == 3]:                                 # every pulse of link 3 lies on its cable
        assert np.linalg.norm(route - p, axis=1).min() < 0.06
    moved = np.linalg.norm(p2 - p1, axis=1)
    # each pulse moves 9 cm a frame along its cable, or wraps from one end of it back to the other
    assert (moved > 0).all() and np.mean(moved <= 0.09 + 1e-5) > 0.9
    # pulse size and brightness follow the same smoothed level (0.8125 for link 0 at k=7, unquantised)
    w, o = np.array(pulses.GetWidthsAttr().Get(8)), np.array(pulses.GetDisplayOpacityPrimvar().Get(8))
    assert w[link_of == 0] == pytest.approx(0.018 + 0.8125 * 0.027) and o[link_of == 0] == pytest.approx(0.8125)


def test_cameras_lenses_in_stage_units_and_the_hero_move(syn):
    _, _, stage, _ = syn
    cams = {p.GetName(): UsdGeom.Camera(p) for p in stage.GetPrimAtPath("/Refinery/Cameras").GetChildren()}
    assert set(cams) == {"Hero", "CloseUp", "Overview", "Front"}
    for name, cam in cams.items():
        f = cam.GetFocalLengthAttr().Get()
        assert 0.05 < f <= 1.0, name                             # tenths of a metre: 16 mm = 0.16
        assert cam.GetHorizontalApertureAttr().Get() / cam.GetVerticalApertureAttr().Get() == pytest.approx(16 / 9)
    assert cams["Hero"].GetFocalLengthAttr().Get() == pytest.approx(0.16)
    hero = cams["Hero"]
    xs = np.array([hero.ComputeLocalToWorldTransform(t).ExtractTranslation()[0] for t in range(1, 21)])
    assert xs[0] < -0.3 - 1.0 < xs[-1]                           # from beyond the aisle's end, in
    assert (np.diff(xs) >= -1e-9).all()                          # one direction, eased
    look = hero.ComputeLocalToWorldTransform(1).TransformDir(Gf.Vec3d(0, 0, -1))
    assert look[0] > 0.9 and look[2] > 0                         # down the aisle, tilted up to the trays


def test_room_has_walls_ceiling_floor_cooling_and_containment(syn):
    _, _, stage, _ = syn
    room = stage.GetPrimAtPath("/Refinery/Room")
    names = {p.GetName() for p in room.GetChildren()}
    assert {"Walls", "Ceiling", "Deck", "PlenumSlab", "Tiles", "Trays", "Cooling", "Containment", "LightPanels"} <= names
    assert all(p.IsInstance() for p in room.GetChild("Cooling").GetChildren())
    glass = room.GetChild("Containment").GetChild("Aisle_0").GetChild("Glass")
    assert UsdShade.MaterialBindingAPI(glass).ComputeBoundMaterial()[0].GetPath() == "/Refinery/Looks/Glass"


def test_stage_sample_spacing_and_realtime_window(tmp_path):
    run = make_synthetic_run(tmp_path / "syn")
    info = build_stage(run, stage_sample_s=30.0, previews=False)
    # 20 samples at 10 s, every 3rd sample (rows 2, 5, ... 17) plus the last (19): 7 frames
    assert info["frames"] == 7 and info["stage_sample_s"] == 30.0
    stage = Usd.Stage.Open(str(run / "stage" / "refinery.usda"))
    # interval mean over (prev frame, frame]: node 0 power 200 + 5k, frame at k=5 covers k = 3..5
    assert UsdGeom.PrimvarsAPI(node(stage)).GetPrimvar("telemetry:power_w").Get(60 / 30) == pytest.approx(200 + 5 * 4)
    assert math.isclose(stage.GetEndTimeCode(), 200 / 30)
    rt = build_stage(run, out_dir=tmp_path / "rt", window=(50.0, 60.0), realtime=True, previews=False)
    # real time: 24 frames per simulated second over 50..60 s -> 241 frames, time code = 24 x seconds
    assert rt["frames"] == 241 and rt["realtime"] and rt["seconds_per_timecode"] == pytest.approx(1 / 24)
    st = Usd.Stage.Open(str(tmp_path / "rt" / "refinery.usda"))
    assert (st.GetStartTimeCode(), st.GetEndTimeCode()) == pytest.approx((1200.0, 1440.0))
    d = st.GetRootLayer().customLayerData
    assert d["twin:time_mapping"] == "realtime" and d["twin:simulated_seconds_per_stage_second"] == pytest.approx(1.0)
    pv = UsdGeom.PrimvarsAPI(node(st)).GetPrimvar("telemetry:power_w")
    # t = 50 s shows sample k=4 (interval 40..50 s); any t in (50, 60] shows k=5
    assert pv.Get(1200) == pytest.approx(220.0) and pv.Get(1201) == pytest.approx(225.0) and pv.Get(1440) == pytest.approx(225.0)


def test_real_tiny_run_stage(tiny_run, tmp_path):
    info = build_stage(tiny_run, out_dir=tmp_path / "stage", previews=False)
    stage = Usd.Stage.Open(str(tmp_path / "stage" / "refinery.usda"))
    # tiny.yaml: 600 s, 5-s samples -> 120 frames; one rack of four nodes
    assert info["frames"] == 120 and info["prims"]["nodes"] == 4
    assert len([p for p in stage.Traverse() if p.GetName().startswith("Node_")]) == 4
    import pyarrow.compute as pc
    from twin.telemetry.read import read_table
    t = read_table(tiny_run, "nodes")
    row = t.filter(pc.and_(pc.equal(t["node_id"], 2), pc.equal(t["time_s"], 300.0)))
    n2 = UsdGeom.PrimvarsAPI(stage.GetPrimAtPath("/Refinery/Row_A/Rack_A01/Node_03"))
    assert n2.GetPrimvar("telemetry:state").Get(60) == row["state"][0].as_py()
    # swing-door keys: within the documented tolerance of the exact value (0.05 degC)
    assert abs(n2.GetPrimvar("telemetry:gpu_temp_max_c").Get(60) - row["gpu_temp_max_c"][0].as_py()) <= 0.05 + 1e-4
    assert not errors_of(stage)


def test_telemetry_primvars_are_within_their_stated_tolerance_at_every_frame(tiny_run, tmp_path):
    """Every node, every frame, read back through pxr (USD's own interpolation between the kept
    keys) against the frame's exact value from scenes.frames; the tolerance is the one the stage
    states in customLayerData. A dropped key that moves a value by more fails this."""
    from scenes.frames import load_frames
    build_stage(tiny_run, out_dir=tmp_path / "stage", previews=False)
    stage = Usd.Stage.Open(str(tmp_path / "stage" / "refinery.usda"))
    tol = stage.GetRootLayer().customLayerData["twin:telemetry_tolerance"]
    assert tol["power_w"] == 0.5 and tol["gpu_temp_c"] == 0.05       # docs/stage.md's table
    fr = load_frames(tiny_run, None)
    nodes = sorted((p for p in stage.Traverse() if p.GetName().startswith("Node_")), key=lambda p: str(p.GetPath()))
    written = 0
    for name in ("power_w", "gpu_temp_max_c", "fan_rpm", "inlet_c", "exhaust_c", "airflow_m3_s", "gpu_temp_c"):
        exact = np.nan_to_num(getattr(fr, name)).astype(np.float32)
        for n, prim in enumerate(nodes):
            pv = UsdGeom.PrimvarsAPI(prim).GetPrimvar(f"telemetry:{name}")
            written += pv.GetAttr().GetNumTimeSamples()
            got = np.array([pv.Get(float(tc)) for tc in fr.timecodes], dtype=np.float64)
            assert np.abs(got - exact[:, n]).max() <= tol[name] * (1 + 1e-6) + 1e-6, (name, n)
    assert written < 0.9 * 7 * len(nodes) * fr.times.size     # and the keys are fewer than the frames


def test_same_run_gives_byte_identical_stage(syn, tmp_path):
    run = syn[0]
    for i in range(2):
        build_stage(run, out_dir=tmp_path / f"s{i}")
    for name in ("refinery.usda", "telemetry.usdc", "previews/floor_heatmap.gif", "previews/colour_legend.png"):
        assert (tmp_path / "s0" / name).read_bytes() == (tmp_path / "s1" / name).read_bytes(), name


def test_unknown_link_endpoint_is_a_clear_error(tmp_path):
    import pyarrow.parquet as pq
    from twin.telemetry.schema import to_table
    from twin.telemetry.write import write_table
    run = make_synthetic_run(tmp_path / "syn")
    t = pq.read_table(run / "telemetry" / "nodes.parquet", columns=["time_s"]).column("time_s").to_numpy()[:1]
    write_table(to_table("links", {"time_s": t, "link_id": [0], "src": ["leaf:Z09"], "dst": ["spine:0"],
                                   "kind": ["leaf-spine"], "bytes": [0.0], "utilisation": [0.5],
                                   "active_flows": [1]}), run / "telemetry" / "links.parquet")
    with pytest.raises(ValueError, match=r"links: endpoint 'leaf:Z09' names no rack"):
        build_stage(run, previews=False)
