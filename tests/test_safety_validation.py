"""Validation refuses what the engine cannot run (issue 15): resource bounds derived before the
simulation, booleans that are not numbers, infinite catalogue figures, racks that cannot hold their
nodes, link faults on cables that do not exist; and user strings print literally (no rich markup).

The resource numbers are checked against hand computations (expected arrivals of tiny.yaml) and
against what the engine itself builds (the cables in a run's links table).
"""
from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from twin.cli.main import app
from twin.errors import SpecError
from twin.model.resources import ARRIVAL_GRID_S, estimate, excess_integral_s, expected_requests, resource_problems
from twin.model.validate import load_scenario, scenario_from_text
from twin.model.workload import arrival_times_s
from twin.spec.catalogue import load_catalogue
from twin.spec.scenario import SurgeSpec
from twin.telemetry.atomic import write_json_atomic

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "scenarios" / "tiny.yaml"
TINY_DOC = yaml.safe_load(TINY.read_text())
runner = CliRunner()


def problems_of(overrides: dict) -> list[str]:
    try:
        load_scenario(TINY, overrides=overrides)
    except SpecError as exc:
        return exc.problems
    return []


# ------------------------------------------------------------------ resource bounds

def test_expected_arrivals_of_tiny_by_hand():
    # 1 request/s for 600 s, x10 surge: ramp 60-90 s (half of 30 s), plateau 300 s, decay 60 s (half)
    # excess integral = 15 + 300 + 30 = 345 s -> 600 + 9 x 345 = 3,705 requests (the run drew 3,712)
    sc = load_scenario(TINY)
    assert expected_requests(sc.spec) == pytest.approx(3705)


def test_the_surge_integral_is_cut_at_the_end_of_the_run():
    surge = SurgeSpec(start_s=60, ramp_s=30, peak_multiplier=10, plateau_s=300, decay_s=60)
    assert excess_integral_s(75, surge) == pytest.approx(0.5 * 15 * 0.5)      # half way up the ramp
    assert excess_integral_s(100, surge) == pytest.approx(15 + 10)            # ramp + 10 s of plateau
    assert excess_integral_s(420, surge) == pytest.approx(15 + 300 + 22.5)    # 30 s into the decay: 30 x (1 + 0.5) / 2
    assert excess_integral_s(1e308, SurgeSpec(start_s=1e308, ramp_s=1e308)) == 0.0  # no overflow into inf/nan


def test_the_arrival_grid_matches_the_workload_model():
    assert inspect.signature(arrival_times_s).parameters["grid_s"].default == ARRIVAL_GRID_S


def test_the_estimated_cables_are_the_engines():
    """A link fault makes the engine model tiny's fabric; its links table has one row per cable and sample
    (the estimate also counts the cables of a fabric the engine skips: an over-estimate, never under)."""
    from twin.sim.engine import simulate
    sc = load_scenario(TINY, overrides={"faults": [{"at_s": 10, "kind": "link_down", "target": "node:0"}]})
    links = simulate(sc).columns["links"]
    est = estimate(sc.spec, sc.catalogue)
    assert est.rows["links"] == len(set(links["link_id"])) * est.samples == len(links["link_id"])


@pytest.mark.parametrize("overrides, field", [
    ({"workload.base_rate_per_s": 1e300}, "workload.base_rate_per_s or workload.surge.peak_multiplier"),
    ({"workload.surge.peak_multiplier": 1e300}, "workload.base_rate_per_s or workload.surge.peak_multiplier"),
    ({"workload.base_rate_per_s": 2e6}, "workload.base_rate_per_s"),
    ({"workload.arrival.shape": 1e-300}, "workload.arrival.shape"),
    ({"scheduler.interval_s": 1e-9}, "scheduler.interval_s"),
    ({"simulation.sample_s": 601}, "simulation: sample_s (601) exceeds"),
    ({"simulation.sample_s": 1e9}, "simulation: sample_s"),
    ({"simulation.duration_s": 2e7, "simulation.dt_s": 100, "simulation.sample_s": 100}, "simulation.duration_s"),
    ({"simulation.duration_s": 2e6, "simulation.dt_s": 1, "topology.racks_per_row": 99, "topology.rows": 26,
      "design.strict": False}, "simulation.dt_s"),
])
def test_a_scenario_the_engine_cannot_run_is_refused_naming_the_field(overrides, field):
    found = problems_of(overrides)
    assert any(p.startswith(field) for p in found), found


def test_memory_is_bounded_by_the_machine_and_says_what_to_change():
    hall = {"topology.rows": 20, "topology.racks_per_row": 80, "topology.nodes_per_rack": 10, "pools.0.nodes": 16000, "workload.base_rate_per_s": 600,
            "scheduler.initial_on_nodes": 1200, "design.strict": False}
    cat = load_catalogue()
    spec = scenario_from_text(TINY.read_text(), base_dir=ROOT, overrides={**hall, "simulation.sample_s": 1}).spec
    assert resource_problems(spec, cat, machine_memory_b=24e9) == []
    small = resource_problems(spec, cat, machine_memory_b=3e9)  # ~2.8 GB, mostly telemetry rows
    # rows by hand: 600 samples x (16,000 nodes x (3 GPUs + 1) + 1,600 racks + 1 + 16,000 NIC cables
    # + 1,600 leaves x 2 spines) = 50,880,600; requests 600/s x 3,705 s of tiny's envelope = 2,223,000
    assert len(small) == 1 and re.match(r"simulation\.sample_s: the run needs an estimated [2-9]\.\d GB of memory "
                                        r"\(50,880,600 telemetry rows at sample_s 1 s, 2,223,000 expected requests\)", small[0])
    assert "this machine can give (80% of 3.0 GB); raise sample_s" in small[0]
    spec = scenario_from_text(TINY.read_text(), base_dir=ROOT, overrides={**hall, "simulation.sample_s": 10}).spec
    busy = resource_problems(spec, cat, machine_memory_b=1.5e9)  # ~1.4 GB, mostly the 2.2 M requests
    assert len(busy) == 1 and busy[0].startswith("workload.base_rate_per_s: the run needs an estimated 1.")


def test_a_16000_node_hour_stays_valid_on_a_24_gb_machine():
    """The hall scale the engine is built for: 16,000 nodes (48,000 GPUs) for an hour, telemetry every 5 s."""
    doc = yaml.safe_load((ROOT / "scenarios" / "surge.yaml").read_text())
    doc["topology"].update(rows=20, racks_per_row=80)
    doc["pools"][0]["nodes"], doc["pools"][1]["nodes"] = 12800, 3200
    doc["workload"]["base_rate_per_s"] = 600
    doc["simulation"]["sample_s"] = 5
    doc["design"] = {"strict": False}
    spec = scenario_from_text(yaml.safe_dump(doc), base_dir=ROOT / "scenarios").spec
    est = estimate(spec, load_catalogue())
    assert est.nodes == 16000 and est.memory_b < 0.8 * 24e9
    assert resource_problems(spec, load_catalogue(), machine_memory_b=24e9) == []


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_scenario_fits(path):
    # an 8 GB machine; the 16,000-node hall peaks at 6.8 GB (tests/test_resources_fit.py), over the
    # 80 % of 8 GB a run may plan on, and needs 10
    sc = load_scenario(path)
    machine_b = 10e9 if path.name == "hall-16000.yaml" else 8e9
    assert resource_problems(sc.spec, sc.catalogue, machine_memory_b=machine_b) == []


# ------------------------------------------------------------------ numbers are numbers

@pytest.mark.parametrize("overrides, field", [
    ({"pools.0.nodes": True}, "pools[0].nodes"),
    ({"simulation.duration_s": True}, "simulation.duration_s"),
    ({"workload.base_rate_per_s": False}, "workload.base_rate_per_s"),
    ({"scheduler.warm_pool_nodes": True}, "scheduler.warm_pool_nodes"),
    ({"faults": [{"at_s": True, "kind": "node_crash", "target": 0}]}, "faults[0].at_s"),
    ({"faults": [{"at_s": 1, "kind": "power_cap", "value": True}]}, "faults[0].value"),
])
def test_booleans_are_not_numbers(overrides, field):
    found = problems_of(overrides)
    assert any(p.startswith(field) and "not the boolean" in p for p in found), found


def test_a_boolean_where_a_boolean_belongs_still_works():
    assert problems_of({"fabric.enabled": False, "scheduler.power_off_idle": True}) == []


def _catalogue_problems(tmp_path: Path, gpu_patch: dict) -> list[str]:
    base = load_catalogue().gpu("rtx-pro-4500-blackwell").model_dump(mode="json")
    base.update(name="my-gpu", **gpu_patch)
    (tmp_path / "cat.yaml").write_text(yaml.safe_dump({"gpus": [base]}))
    try:
        load_catalogue([tmp_path / "cat.yaml"])
    except SpecError as exc:
        return exc.problems
    return []


@pytest.mark.parametrize("patch", [{"memory_gb": float("inf")}, {"board_power_w": float("nan")},
                                   {"memory_gb": True}, {"dense_tflops": {"fp16": True}}])
def test_catalogue_files_refuse_infinities_nans_and_booleans(tmp_path, patch):
    found = _catalogue_problems(tmp_path, patch)
    assert found and all("cat.yaml: gpus[0] (my-gpu)." in p for p in found), found


def test_no_nan_reaches_a_manifest(tmp_path):
    write_json_atomic(tmp_path / "m.json", {"p99": float("nan"), "nested": [float("inf"), 1.5]})

    def strict(name: str):
        raise AssertionError(f"{name} in JSON")
    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=strict) == {"nested": [None, 1.5], "p99": None}


def test_a_run_without_completed_requests_writes_valid_json(tmp_path):
    out = tmp_path / "quiet"
    result = runner.invoke(app, ["run", str(TINY), "--set", "workload.base_rate_per_s=1e-6", "-o", str(out), "--no-stage", "-q"])
    assert result.exit_code == 0, result.output
    man = json.loads((out / "manifest.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in manifest"))
    assert man["summary"]["ttft_p99_s"] is None
    assert runner.invoke(app, ["report", str(out), "-o", str(tmp_path / "r.html")]).exit_code == 0


# ------------------------------------------------------------------ layouts and cables

@pytest.mark.parametrize("overrides, room", [
    ({"topology.nodes_per_rack": 30, "pools.0.nodes": 30, "design.strict": False}, "room for 10"),
    ({"topology.rack_units": 1}, "room for 0"),
    ({"topology.first_node_u": 40}, "room for 0"),
])
def test_nodes_must_fit_in_their_rack(overrides, room):
    found = problems_of(overrides)
    assert any(p.startswith("topology.nodes_per_rack:") and room in p for p in found), found


def test_a_rack_exactly_full_is_fine():
    assert problems_of({"topology.nodes_per_rack": 10, "pools.0.nodes": 9, "design.strict": False}) == []  # U3..U42


@pytest.mark.parametrize("target, ok", [
    ("node:0-leaf:A01", True), ("leaf:A01-node:3", True), ("leaf:A01-spine:1", True), ("spine:0-leaf:A01", True),
    ("node:0-spine:0", False), ("spine:0-spine:1", False), ("leaf:A01-leaf:A01", False), ("node:0-node:1", False),
])
def test_a_link_fault_must_name_a_cable_that_exists(target, ok):
    found = problems_of({"faults": [{"at_s": 10, "kind": "link_down", "target": target}]})
    assert (found == []) if ok else any(p.startswith("faults[0].target: no cable between") for p in found), found


# ------------------------------------------------------------------ user strings print literally

@pytest.mark.parametrize("name", ["[/bold]", "[link=https://evil.example]click[/link]", "[bold red]x[/]"])
def test_square_brackets_in_user_strings_print_as_typed(tmp_path, name):
    text = TINY.read_text().replace("model: llama-3.3-70b", f"model: {json.dumps(name)}")
    (tmp_path / "s.yaml").write_text(text)
    result = runner.invoke(app, ["validate", str(tmp_path / "s.yaml")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert name in result.output  # literally, not interpreted (nor a MarkupError after the fact)


def test_an_output_path_with_brackets_does_not_crash_the_summary(tmp_path):
    out = tmp_path / "[/bold]" / "[link=x]run"
    result = runner.invoke(app, ["run", str(TINY), "-o", str(out), "--no-stage", "-q"])
    assert result.exit_code == 0, result.output
    # the summary's title folds a long path over lines (pytest-xdist's tmp paths are longer)
    assert "[/bold]" in "".join(result.output.split()) and (out / "manifest.json").is_file()
    again = runner.invoke(app, ["run", str(TINY), "-o", str(out), "--no-stage", "-q"])
    assert again.exit_code == 2 and "[link=x]run already exists" in again.output


def test_pool_names_with_markup_print_in_query_tables(tmp_path):
    text = TINY.read_text().replace("name: llama,", 'name: "[/bold]$\\\\frac$",')
    (tmp_path / "s.yaml").write_text(text)
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", str(tmp_path / "s.yaml"), "-o", str(out), "--no-stage", "-q"]).exit_code == 0
    result = runner.invoke(app, ["query", str(out), "SELECT DISTINCT pool FROM topology"])
    assert result.exit_code == 0 and "[/bold]" in result.output, result.output
    assert runner.invoke(app, ["plot", str(out), "ignition", "-o", str(tmp_path / "p.png")]).exit_code == 0


def test_nan_is_not_a_finite_duration():
    with pytest.raises(SpecError, match="finite"):
        scenario_from_text(TINY.read_text().replace("duration_s: 600", "duration_s: .nan"))
