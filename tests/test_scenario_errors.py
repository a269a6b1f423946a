"""Bad input: one clear message each, naming the field; exit code 2; nothing written."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli.main import app
from twin.errors import SpecError
from twin.model.validate import scenario_from_text

TINY = (Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml").read_text()
runner = CliRunner()


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as exc:
        scenario_from_text(text)
    return exc.value.problems


def test_unknown_part_names_suggest_the_right_one():
    p = problems(TINY.replace("model: llama-3.3-70b", "model: llama-3.3-70B"))
    assert p == ["pools[0].model: unknown model 'llama-3.3-70B' (did you mean 'llama-3.3-70b'?)"]
    p = problems(TINY.replace("name: tiny", "name: tiny\ntopology: {node_type: refinery-nod}").replace(
        "topology: {rows: 1, racks_per_row: 1, nodes_per_rack: 4}\n", ""))
    assert any(x.startswith("topology.node_type: unknown node 'refinery-nod'") and "refinery-node" in x for x in p)


def test_zero_or_negative_durations_name_the_field():
    p = problems(TINY.replace("duration_s: 600", "duration_s: -5"))
    assert p == ["simulation.duration_s: Input should be greater than 0"]
    p = problems(TINY.replace("ramp_s: 30", "ramp_s: -1"))
    assert p == ["workload.surge.ramp_s: Input should be greater than or equal to 0"]


def test_model_that_does_not_fit_says_how_much_it_needs_and_has():
    text = TINY.replace("quantisation: awq-int4, tp: 1, pp: 3", "quantisation: bf16, tp: 1, pp: 3")
    (msg,) = problems(text)
    assert msg.startswith("pools[0]: llama-3.3-70b in bf16 needs 141.2 GB of weights")
    assert "has 89.5 GB usable (3 x 31.84 GiB x 0.92 - 1.5 GiB engine reserve)" in msg


def test_impossible_parallelism():
    p = problems(TINY.replace("tp: 1, pp: 3", "tp: 3, pp: 1"))
    assert any(x.startswith("pools[0].tp: tensor parallel 3 must divide llama-3.3-70b's 64 attention heads") for x in p)
    p = problems(TINY.replace("tp: 1, pp: 3", "tp: 1, pp: 2"))
    assert "pools[0]: tp x pp = 2 GPUs does not divide the 3 GPUs per node" in p


def test_unknown_field_gets_a_did_you_mean():
    p = problems(TINY.replace("base_rate_per_s: 1", "base_rate_per_sec: 1"))
    assert p == ["workload.base_rate_per_sec: unknown field (did you mean 'base_rate_per_s'?)"]


def test_every_problem_is_reported_at_once():
    text = TINY.replace("duration_s: 600", "duration_s: 0").replace("sigma: 0.8, max: 4096", "sigma: 0.8, max: -4")
    assert len(problems(text)) == 2


def test_malformed_yaml_points_at_the_line():
    (msg,) = problems("name: x\npools: [\n")
    assert msg.startswith("<scenario>: malformed YAML at line 3")


@pytest.mark.parametrize("edit", [
    lambda t: t.replace("model: llama-3.3-70b", "model: gpt-9"),
    lambda t: t.replace("duration_s: 600", "duration_s: 0"),
    lambda t: t.replace("quantisation: awq-int4", "quantisation: bf16"),
    lambda t: t.replace("tp: 1, pp: 3", "tp: 3, pp: 1"),
    lambda t: t + "\n  - [unclosed\n",
])
def test_cli_exits_2_with_one_line_per_problem_and_writes_nothing(tmp_path, edit):
    scen = tmp_path / "bad.yaml"
    scen.write_text(edit(TINY))
    out = tmp_path / "runs" / "bad"
    result = runner.invoke(app, ["run", str(scen), "-o", str(out), "--no-stage", "-q"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "error:" in result.output
    assert not out.exists() and not any((tmp_path / "runs").glob("*")) if (tmp_path / "runs").exists() else True
    assert runner.invoke(app, ["validate", str(scen)]).exit_code == 2


def test_missing_scenario_file():
    result = runner.invoke(app, ["validate", "nope.yaml"])
    assert result.exit_code == 2 and "no such scenario file" in result.output


def test_shipped_scenarios_validate():
    for path in sorted((Path(__file__).resolve().parent.parent / "scenarios").glob("*.yaml")):
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 0, f"{path.name}: {result.output}"
