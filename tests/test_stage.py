"""The USD stage opened with pxr: structure, metadata, kinds, instancing, sample values and counts.

Built from the hand-made run of tests/synthetic_run.py (2 rows x 2 racks x 3 nodes, 20 samples
at 10 s) plus synthetic links (tests/stage_links.py), so every expected value below is computed
by hand from those closed forms. Stage frames = telemetry samples (10 s >= the 5-s default), so
sample k (time (k+1)*10 s) sits at time code k+1.
"""
from __future__ import annotations

import math

import pytest

pxr = pytest.importorskip("pxr")
from pxr import Kind, Sdf, Usd, UsdGeom, UsdValidation  # noqa: E402

from scenes import build_stage  # noqa: E402
from stage_links import add_synthetic_links  # noqa: E402
from synthetic_run import make_synthetic_run  # noqa: E402

N_NODES = 12


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    run = make_synthetic_run(tmp_path_factory.mktemp("stage") / "syn")
    n_links = add_synthetic_links(run, spines=2, storage=1)
    info = build_stage(run)
    stage = Usd.Stage.Open(str(run / "stage" / "refinery.usda"))
    return run, info, stage, n_links


def node(stage, rack="A01", slot=1, row=None):
    row = row or rack[0]
    return stage.GetPrimAtPath(f"/Refinery/Row_{row}/Rack_{rack}/Node_{slot:02d}")


def test_files_and_layers(syn):
    run, info, stage, _ = syn
    assert (run / "stage" / "refinery.usda").is_file() and (run / "stage" / "telemetry.usdc").is_file()
    root = stage.GetRootLayer()
    assert list(root.subLayerPaths) == ["./telemetry.usdc"]
    assert Sdf.Layer.FindOrOpen(str(run / "stage" / "telemetry.usdc")).GetFileFormat().formatId == "usdc"
    # the root layer holds no time samples: all of them live in telemetry.usdc
    assert not any(root.ListTimeSamplesForPath(p.path) for p in
                   [a for prim in [root.GetPrimAtPath(n.GetPath()) for n in stage.Traverse()] if prim
                    for a in prim.attributes])
    assert info["prims"]["nodes"] == N_NODES and info["frames"] == 20
    assert info["previews"] == ["stage/previews/colour_ramp.png", "stage/previews/floor_heatmap.gif"]


def test_metadata(syn):
    _, _, stage, _ = syn
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert stage.GetTimeCodesPerSecond() == 24.0
    # 20 samples at 10 s: time codes = seconds / 10 -> 1 .. 20
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (1.0, 20.0)
    assert stage.GetDefaultPrim().GetPath() == "/Refinery"
    data = stage.GetRootLayer().customLayerData
    assert data["twin:scenario"] == "synthetic" and data["twin:seed"] == 1 and data["twin:version"] == "test"
    assert data["twin:seconds_per_timecode"] == 10.0


def test_hierarchy_kinds_and_instancing(syn):
    _, _, stage, _ = syn
    kind = lambda p: Usd.ModelAPI(stage.GetPrimAtPath(p)).GetKind()  # noqa: E731
    assert kind("/Refinery") == Kind.Tokens.assembly
    assert kind("/Refinery/Row_A") == kind("/Refinery/Row_B") == Kind.Tokens.group
    racks = [p for p in stage.Traverse() if p.GetName().startswith("Rack_")]
    assert sorted(p.GetName() for p in racks) == ["Rack_A01", "Rack_A02", "Rack_B01", "Rack_B02"]
    for rack in racks:
        assert Usd.ModelAPI(rack).GetKind() == Kind.Tokens.group
        nodes = [c for c in rack.GetChildren() if c.GetName().startswith("Node_")]
        assert [c.GetName() for c in nodes] == ["Node_01", "Node_02", "Node_03"]
        assert rack.GetChild("Frame").IsInstance()
        for n in nodes:
            assert Usd.ModelAPI(n).GetKind() == Kind.Tokens.component
            shell = n.GetChild("Shell")
            assert shell.GetTypeName() == "Mesh" and not shell.IsInstance() and not shell.IsInstanceProxy()
            assert n.GetChild("Internals").IsInstance()
            assert [n.GetChild(f"Fan_{i}").GetChild("Rotor").IsInstance() for i in (1, 2, 3)] == [True] * 3
            assert n.GetChild("P2P").GetTypeName() == "BasisCurves"
    # row B is turned to face the cold aisle: rack B01 at y = +1.2 rotated 180 degrees about Z
    m = UsdGeom.Xformable(stage.GetPrimAtPath("/Refinery/Row_B/Rack_B01")).ComputeLocalToWorldTransform(0)
    assert m.ExtractTranslation()[1] == pytest.approx(1.2)
    assert m.TransformDir(pxr.Gf.Vec3d(0, 1, 0))[1] == pytest.approx(-1.0)
    # node 0 (slot 0, u_position 3, 4U): z = 0.1 + 3 * 0.04445 (synthetic z_m), front on the rails
    w = UsdGeom.Xformable(node(stage)).ComputeLocalToWorldTransform(0).ExtractTranslation()
    assert w[2] == pytest.approx(0.1 + 3 * 0.04445)
    assert w[1] == pytest.approx(-1.2 + (0.48 - 0.40))


def test_validators_report_no_errors(syn):
    _, _, stage, _ = syn
    reg = UsdValidation.ValidationRegistry()
    errors = [e for e in UsdValidation.ValidationContext(reg.GetOrLoadAllValidators()).Validate(stage)
              if e.GetType() == UsdValidation.ValidationErrorType.Error]
    assert not errors, [e.GetMessage() for e in errors[:5]]


def test_node_telemetry_values(syn):
    _, _, stage, _ = syn
    # node 5 = rack A02 (row A, 2 racks x 3 nodes), slot 2 -> Node_03; sample k=7 -> time code 8
    n5 = node(stage, "A02", 3)
    assert n5.GetAttribute("telemetry:node_id").Get() == 5
    assert n5.GetAttribute("telemetry:power_w").Get(8) == pytest.approx(200 + 10 * 5 + 5 * 7)
    assert n5.GetAttribute("telemetry:gpu_temp_max_c").Get(8) == pytest.approx(30 + 7 + 5 + 2)
    assert list(n5.GetAttribute("telemetry:gpu_temp_c").Get(8)) == pytest.approx([30 + 7 + 5 + g for g in range(3)])
    assert n5.GetAttribute("telemetry:fan_rpm").Get(8) == pytest.approx(1000 + 10 * 7)
    n0 = node(stage)
    assert [n0.GetAttribute("telemetry:state").Get(t) for t in (1, 2, 3, 4, 5, 20)] == \
        ["OFF", "OFF", "BOOTING", "BOOTING", "SERVING", "SERVING"]


def test_shell_colour_heat_and_pulse(syn):
    _, _, stage, _ = syn
    shell = node(stage, "A02", 3).GetChild("Shell")
    # SERVING at 44 °C -> palette step rint(19/67 * 255) = 72 = 25 + 72*67/255 = 43.918 °C, on the
    # ramp between 40 °C (0.05, 0.65, 0.80) and 55 °C (0.35, 0.80, 0.25): f = 3.918/15 = 0.26118
    # -> (0.05 + 0.3f, 0.65 + 0.15f, 0.80 - 0.55f) = (0.12835, 0.68918, 0.65635)
    rgb = shell.GetAttribute("primvars:displayColor").Get(8)[0]
    assert tuple(rgb) == pytest.approx((0.12835, 0.68918, 0.65635), abs=0.001)
    assert shell.GetAttribute("primvars:heat").Get(8) == pytest.approx((44 - 25) / (92 - 25), abs=1 / 255)
    s0 = node(stage).GetChild("Shell").GetAttribute("primvars:displayColor")
    assert tuple(s0.Get(1)[0]) == pytest.approx((0.03, 0.03, 0.035))        # OFF: near black
    # BOOTING at frame index 2 (time code 3): pulse brightness PULSE_LEVELS[2 % 4] = 0.3 of the
    # 34 °C colour: step rint(9/67 * 255) = 34 = 33.933 °C, f = 8.933/15 = 0.59556 between 25 °C
    # (0.05, 0.20, 0.85) and 40 °C (0.05, 0.65, 0.80): (0.05, 0.46800, 0.82022) * 0.3
    assert tuple(s0.Get(3)[0]) == pytest.approx((0.015, 0.14040, 0.24607), abs=0.001)
    # frame index 3: brightness 0.6 of the 35 °C colour: step 38 = 34.984 °C, f = 0.66562:
    # (0.05, 0.49953, 0.81672) * 0.6
    assert tuple(s0.Get(4)[0]) == pytest.approx((0.03, 0.29972, 0.49003), abs=0.001)


def test_fan_spin_is_accumulated_rotation(syn):
    run, info, stage, _ = syn
    # rpm = 1000 + 10k; one sample = 10 s = rpm/60*10 turns = rpm*60 degrees. Largest step
    # (k=19): 1190*60 = 71400° -> divisor ceil(71400/90) = 794 so no fan turns > 90° per frame.
    assert info["fan_spin_divisor"] == 794
    rot = node(stage).GetChild("Fan_2").GetAttribute("xformOp:rotateY")
    assert rot.Get(1) == pytest.approx(1000 * 60 / 794, rel=1e-5)
    assert rot.Get(2) == pytest.approx((1000 + 1010) * 60 / 794, rel=1e-5)
    assert rot.Get(20) == pytest.approx(sum(1000 + 10 * k for k in range(20)) * 60 / 794, rel=1e-5)


def test_held_values_are_not_repeated(syn):
    run, _, stage, _ = syn
    tel = Sdf.Layer.FindOrOpen(str(run / "stage" / "telemetry.usdc"))
    p = node(stage).GetPath()
    # inlet is 22 °C throughout: only the first and last frames are written
    assert tel.ListTimeSamplesForPath(p.AppendProperty("telemetry:inlet_c")) == [1.0, 20.0]
    # state OFF(k 0-1) BOOTING(2-3) SERVING(4-19): the ends of each run -> k = 0,1,2,3,4,19
    assert tel.ListTimeSamplesForPath(p.AppendProperty("telemetry:state")) == [1, 2, 3, 4, 5, 20]
    # and the held value plays back between written samples (linear interpolation of equal ends)
    assert node(stage).GetAttribute("telemetry:inlet_c").Get(10.5) == pytest.approx(22.0)


def test_p2p_arcs_follow_traffic(syn):
    _, _, stage, _ = syn
    curves = UsdGeom.BasisCurves(node(stage).GetChild("P2P"))
    assert list(curves.GetCurveVertexCountsAttr().Get()) == [3, 3, 3]
    # p2p = k % 3 GB/s. k=0 -> 0: invisible; k=2 -> 2 GB/s on the 28 GB/s scale, 16 steps:
    # step rint(2/28*15) = 1 -> width 0.002 + 1/15*0.010, opacity 0.35 + 0.65/15
    assert curves.GetDisplayOpacityPrimvar().Get(1)[0] == 0.0
    assert curves.GetWidthsAttr().Get(3)[0] == pytest.approx(0.002 + 0.010 / 15, rel=1e-5)
    assert curves.GetDisplayOpacityPrimvar().Get(3)[0] == pytest.approx(0.35 + 0.65 / 15, rel=1e-5)


def test_fabric_switches_and_link_curves(syn):
    _, info, stage, n_links = syn
    # 12 nic-leaf + 4 racks x 2 spines + 1 storage x 2 spines = 22 links
    assert n_links == 22 and info["prims"]["links"] == 22
    fab = stage.GetPrimAtPath("/Refinery/Fabric")
    assert Usd.ModelAPI(fab).GetKind() == Kind.Tokens.group
    leaves = fab.GetChild("Leaves").GetChildren()
    assert sorted(p.GetName() for p in leaves) == ["Leaf_A01", "Leaf_A02", "Leaf_B01", "Leaf_B02"]
    assert all(p.IsInstance() for p in leaves)
    top = UsdGeom.Xformable(fab.GetChild("Leaves").GetChild("Leaf_A01")).ComputeLocalToWorldTransform(0)
    assert tuple(top.ExtractTranslation()) == pytest.approx((0.0, -1.2, 2.0))   # on the A01 roof
    assert [p.GetName() for p in fab.GetChild("Spines").GetChildren()] == ["Spine_0", "Spine_1"]
    sp = UsdGeom.Xformable(fab.GetChild("Spines").GetChild("Spine_0")).ComputeLocalToWorldTransform(0)
    assert sp.ExtractTranslation()[1] == pytest.approx(0.0)           # over the cold-aisle centre line
    st = UsdGeom.Xformable(fab.GetChild("Storage").GetChild("Storage_0")).ComputeLocalToWorldTransform(0)
    assert st.ExtractTranslation()[0] > 0.6 + 0.3                     # beyond the last rack in X
    link = UsdGeom.BasisCurves(fab.GetChild("Links").GetChild("Link_0000"))
    assert link.GetPrim().GetAttribute("fabric:src").Get() == "node:0"
    assert link.GetPrim().GetAttribute("fabric:kind").Get() == "nic-leaf"
    # util(link 0, sample k) = (k % 5)/4. k=3 -> 0.75, quantised to rint(0.75*31)/31 = 23/31;
    # width nic-leaf 0.004 + 23/31 * 0.008; colour between 0.7 (1, .85, .10) and 1.0 (1, .10, .05)
    u = 23 / 31
    f = (u - 0.7) / 0.3
    assert link.GetWidthsAttr().Get(4)[0] == pytest.approx(0.004 + u * 0.008, rel=1e-5)
    assert tuple(link.GetDisplayColorPrimvar().Get(4)[0]) == pytest.approx((1.0, 0.85 - 0.75 * f, 0.10 - 0.05 * f), abs=1e-5)
    assert link.GetDisplayOpacityPrimvar().Get(4)[0] == pytest.approx(0.15 + u * 0.85, rel=1e-5)
    # k=0 -> idle: thinnest, the slate idle colour
    assert tuple(link.GetDisplayColorPrimvar().Get(1)[0]) == pytest.approx((0.15, 0.20, 0.30), abs=1e-6)


def test_hero_camera_walks_the_aisle(syn):
    _, _, stage, _ = syn
    cam = UsdGeom.Camera(stage.GetPrimAtPath("/Refinery/Cameras/Hero"))
    a = cam.ComputeLocalToWorldTransform(1).ExtractTranslation()
    b = cam.ComputeLocalToWorldTransform(20).ExtractTranslation()
    assert a[1] == b[1] == pytest.approx(0.0) and a[2] == pytest.approx(1.7)
    assert b[0] > a[0]
    look = cam.ComputeLocalToWorldTransform(1).TransformDir(pxr.Gf.Vec3d(0, 0, -1))
    assert look[0] > 0.8 and look[1] < 0                            # down the aisle, towards row A
    assert stage.GetPrimAtPath("/Refinery/Lights/Key").IsA(pxr.UsdLux.DistantLight)


def test_stage_sample_spacing(tmp_path):
    run = make_synthetic_run(tmp_path / "syn")
    info = build_stage(run, stage_sample_s=30.0, previews=False)
    # 20 samples at 10 s, every 3rd sample (rows 2, 5, ... 17) plus the last (19): 7 frames
    assert info["frames"] == 7 and info["stage_sample_s"] == 30.0
    stage = Usd.Stage.Open(str(run / "stage" / "refinery.usda"))
    # interval mean over (prev frame, frame]: node 0 power 200 + 5k, frame at k=5 covers k = 3..5
    assert node(stage).GetAttribute("telemetry:power_w").Get(60 / 30) == pytest.approx(200 + 5 * 4)
    assert math.isclose(stage.GetEndTimeCode(), 200 / 30)


def test_real_tiny_run_stage(tiny_run, tmp_path):
    info = build_stage(tiny_run, out_dir=tmp_path / "stage", previews=False)
    stage = Usd.Stage.Open(str(tmp_path / "stage" / "refinery.usda"))
    # tiny.yaml: 600 s, 5-s samples -> 120 frames; one rack of four nodes
    assert info["frames"] == 120 and info["prims"]["nodes"] == 4
    nodes = [p for p in stage.Traverse() if p.GetName().startswith("Node_")]
    assert len(nodes) == 4
    import pyarrow.compute as pc
    from twin.telemetry.read import read_table
    t = read_table(tiny_run, "nodes")
    row = t.filter(pc.and_(pc.equal(t["node_id"], 2), pc.equal(t["time_s"], 300.0)))
    n2 = stage.GetPrimAtPath("/Refinery/Row_A/Rack_A01/Node_03")
    assert n2.GetAttribute("telemetry:state").Get(60) == row["state"][0].as_py()
    assert n2.GetAttribute("telemetry:gpu_temp_max_c").Get(60) == pytest.approx(row["gpu_temp_max_c"][0].as_py())


def test_same_run_gives_byte_identical_stage(syn, tmp_path):
    run = syn[0]
    for i in range(2):
        build_stage(run, out_dir=tmp_path / f"s{i}")
    for name in ("refinery.usda", "telemetry.usdc", "previews/floor_heatmap.gif", "previews/colour_ramp.png"):
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
