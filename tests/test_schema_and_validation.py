"""`twin schema` (JSON Schema from the pydantic specs), one-pass validation and `twin --version`."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from twin.cli.main import app
from twin.cli.schema import schema_text

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
runner = CliRunner()


def test_shipped_schema_is_the_generated_one():
    """scenarios/scenario.schema.json is what editors point at; regenerate with
    `twin schema -o scenarios/scenario.schema.json` when a spec changes."""
    assert (ROOT / "scenarios" / "scenario.schema.json").read_text() == schema_text()


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_shipped_scenario_passes_the_schema(path):
    schema = json.loads(schema_text())
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(path.read_text()))


def test_schema_catches_what_an_editor_should_underline():
    schema = json.loads(schema_text())
    v = jsonschema.Draft202012Validator(schema)
    doc = yaml.safe_load((ROOT / "scenarios" / "tiny.yaml").read_text())
    doc["scheduler"]["polcy"] = "spread"                 # typo: unknown key
    doc["simulation"]["dt_s"] = -1                       # out of range
    doc["workload"]["arrival"] = {"process": "bursty"}  # not one of the choices
    messages = sorted(e.message for e in v.iter_errors(doc))
    assert any("polcy" in m for m in messages)
    assert any("-1 is less than or equal to the minimum of 0" in m for m in messages)
    assert any("'bursty' is not one of ['gamma', 'poisson']" in m for m in messages)
    props = schema["$defs"]["SimulationSpec"]["properties"]
    assert props["seed"]["default"] == 42 and "description" in schema


def test_twin_schema_command_writes_json(tmp_path):
    r = runner.invoke(app, ["schema", "-o", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "s.json").read_text())["title"] == "twin scenario"
    bad = runner.invoke(app, ["schema", "-o", str(tmp_path / "s.yaml")])
    assert bad.exit_code == 2 and "name it .json" in bad.output


def test_validation_reports_schema_and_semantic_problems_in_one_pass(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\n"
        "simulation: {duration_s: 600, dt_s: -1, sample_s: 5}\n"            # schema: range
        "topology: {rows: 1, racks_per_row: 1, nodes_per_rack: 4, rack_unit: 42}\n"  # schema: typo
        "pools:\n  - {name: llama, model: llama-3.3-70B, quantisation: awq-int4, tp: 1, pp: 3, nodes: 4}\n"
        "scheduler: {policy: cascad, initial_on_nodes: 1}\n")                  # two catalogue/registry names
    r = runner.invoke(app, ["validate", str(path)])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    text = "\n".join(lines)
    assert "simulation.dt_s: Input should be greater than 0" in text
    assert "topology.rack_unit: unknown field (did you mean 'rack_units'?)" in text
    assert "pools[0].model: unknown model 'llama-3.3-70B' (did you mean 'llama-3.3-70b'?)" in text
    assert "scheduler.policy: unknown policy 'cascad' (did you mean 'cascade'?)" in text
    assert len(lines) == 4 and "Traceback" not in r.output


def test_a_missing_required_field_still_reports_alone(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\npools:\n  - {name: x, model: llama-3.3-70b, quantisation: awq-int4}\n")
    r = runner.invoke(app, ["validate", str(path)])
    assert r.exit_code == 2 and "pools[0].nodes: required field is missing" in r.output


def test_version():
    from importlib import metadata

    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"twin {metadata.version('twin')}"
