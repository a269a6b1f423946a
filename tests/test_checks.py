"""Design checks: node peak vs PSU, rack vs feed - against hand-added spec-sheet numbers."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.spec.catalogue import load_catalogue
from twin.model.checks import node_peak_dc_power_w, node_peak_wall_power_w, psu_findings, rack_findings
from twin.cli.main import app
from twin.errors import SpecError
from twin.model.validate import scenario_from_text

TINY = (Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml").read_text()
CAT = load_catalogue()


def tiny_with(node_type: str, extra: str = "") -> str:
    return TINY.replace("topology: {", f"topology: {{node_type: {node_type}, ") + extra


def test_pro_6000_node_peak_is_the_sum_of_its_parts_at_their_limits():
    # 3 x 600 W (PRO 6000 board power) + 350 W (7975WX TDP) + 8 x 4.5 W DIMMs + 50 W platform
    # + 22 W ConnectX-7 + 3 x 2.5 W fans = 1800 + 350 + 36 + 50 + 22 + 7.5 = 2265.5 W
    assert node_peak_dc_power_w(CAT.node("refinery-node-pro6000"), CAT) == pytest.approx(2265.5)
    # the shipped node: 3 x 200 W instead -> 600 + 465.5 = 1065.5 W
    assert node_peak_dc_power_w(CAT.node("refinery-node"), CAT) == pytest.approx(1065.5)


def test_psu_envelope_check_fires_for_3x_pro_6000_and_names_the_numbers():
    with pytest.raises(SpecError) as exc:
        scenario_from_text(tiny_with("refinery-node-pro6000"))
    (line,) = [p for p in exc.value.problems if "PSU" in p]
    assert line.startswith("topology.node_type: ")
    assert "3x RTX PRO 6000 (600 W) + CPU 350 W" in line and "= 2,266 W > PSU 1,600 W" in line


def test_psu_envelope_check_is_silent_for_3x_pro_4500():
    sc = scenario_from_text(TINY)
    assert sc.spec.topology.node_type == "refinery-node"
    assert sc.warnings == ()
    assert psu_findings(CAT.node("refinery-node"), CAT, 0.10, "x") == []


def test_pro_5000_node_fits_the_psu_but_warns_when_asking_for_20_percent_headroom():
    node = CAT.node("refinery-node-pro5000-72gb")
    # 3 x 300 W + 465.5 W = 1365.5 W = 85 % of 1,600 W: inside the default 10 % headroom (1,440 W)
    assert psu_findings(node, CAT, 0.10, "x") == []
    (f,) = psu_findings(node, CAT, 0.20, "x")  # limit 0.8 x 1,600 = 1,280 W
    assert f.level == "warning" and "1,366 W > 1,280 W" in f.message


def test_rack_feed_check_against_hand_computed_wall_power():
    node = CAT.node("refinery-node")
    # DC 1065.5 W is 66.6 % of 1,600 W; Titanium curve 96 % @50 %, 94 % @100 % ->
    # eff = 0.96 - 0.02 x (0.6659 - 0.5) / 0.5 = 0.95336; wall = 1065.5 / 0.95336 = 1117.6 W
    assert node_peak_wall_power_w(node, CAT) == pytest.approx(1117.6, abs=0.2)
    assert rack_findings(node, CAT, 10, 22.2, 0.8, "x") == []           # 11.2 kW
    (warn,) = rack_findings(node, CAT, 16, 22.2, 0.8, "x")              # 17.9 kW > 0.8 x 22.2 = 17.76 kW
    assert warn.level == "warning" and "17.9 kW > 17.8 kW" in warn.message
    (error,) = rack_findings(node, CAT, 20, 22.2, 0.8, "x")             # 22.4 kW > 22.2 kW
    assert error.level == "error" and "22.4 kW > feed 22.2 kW" in error.message


def test_non_strict_design_turns_the_envelope_error_into_a_warning():
    sc = scenario_from_text(tiny_with("refinery-node-pro6000", "design: {strict: false}\n"))
    assert len(sc.warnings) == 1 and "2,266 W > PSU 1,600 W" in sc.warnings[0]


def test_cli_validate_prints_design_warnings_and_errors(tmp_path):
    ok = tmp_path / "warn.yaml"
    ok.write_text(tiny_with("refinery-node-pro5000-72gb", "design: {psu_headroom_frac: 0.2}\n"))
    res = CliRunner().invoke(app, ["validate", str(ok)])
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "PSU headroom" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny_with("refinery-node-pro6000"))
    res = CliRunner().invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2 and "breaks its power envelope" in res.output
    assert "Traceback" not in res.output
