"""Sweeps: Dask rows equal one-by-one runs, spec errors name field paths, failures are rows."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from twin.cli.main import app
from twin.sim.engine import simulate
from twin.errors import SpecError
from twin.model.validate import load_scenario
from twin.tools.sweep import plan_sweep, run_sweep, to_table, write_sweep

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
TINY = SCENARIOS / "tiny.yaml"


def spec_file(tmp_path: Path, body: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"name: t\nbase: {TINY}\n" + body)
    return path


def same(a, b) -> bool:
    return (a is None and b is None) or a == b or (isinstance(a, float) and isinstance(b, float)
                                                    and math.isnan(a) and math.isnan(b))


def test_four_variant_sweep_on_a_local_dask_cluster_equals_running_each_variant_alone(tmp_path):
    plan = plan_sweep(spec_file(tmp_path, "axes:\n  scheduler.warm_pool_nodes: [0, 2]\n  simulation.seed: [3, 4]\n"))
    seen = []
    result = run_sweep(plan, workers=2, progress=lambda done, total, failed: seen.append((done, total, failed)))
    assert result.executor == {"kind": "dask-local", "workers": 2}
    assert [r["variant"] for r in result.rows] == ["v000", "v001", "v002", "v003"]
    assert seen[-1] == (4, 4, 0) and [s[0] for s in seen] == [1, 2, 3, 4]
    for row, (warm, seed) in zip(result.rows, [(0, 3), (0, 4), (2, 3), (2, 4)]):
        assert (row["scheduler.warm_pool_nodes"], row["simulation.seed"], row["status"]) == (warm, seed, "ok")
        alone = simulate(load_scenario(TINY, overrides={"scheduler.warm_pool_nodes": warm,
                                                        "simulation.seed": seed})).summary
        for key, value in alone.items():
            if isinstance(value, dict):
                for k, v in value.items():
                    assert row[f"{key}.{k}"] == v, (row["variant"], key, k)
            else:
                assert same(row[key], value), (row["variant"], key, row[key], value)
    # the seeds really differ, so equality above is not vacuous
    assert result.rows[0]["requests_arrived"] != result.rows[1]["requests_arrived"]


def test_sweep_table_is_byte_identical_between_runs(tmp_path):
    plan = plan_sweep(spec_file(tmp_path, "axes:\n  simulation.seed: [1, 2]\nplot: {x: energy_cost_usd, y: latency_p99_s}\n"))
    for out in ("a", "b"):
        write_sweep(run_sweep(plan, workers=0), tmp_path / out)
    a, b = ((tmp_path / o / "sweep.parquet").read_bytes() for o in ("a", "b"))
    assert a == b
    meta = json.loads((tmp_path / "a" / "sweep.json").read_text())
    assert meta["rows"] == 2 and meta["plot"] == "sweep.png" and (tmp_path / "a" / "sweep.png").stat().st_size > 0


def test_a_failing_variant_is_reported_not_fatal(tmp_path):
    plan = plan_sweep(spec_file(tmp_path, "axes:\n  topology.node_type: [refinery-node, refinery-node-pro6000]\n"))
    result = run_sweep(plan, workers=0)
    ok, bad = result.rows
    assert ok["status"] == "ok" and ok["tokens_served"] > 0
    assert bad["status"] == "invalid" and "2,266 W > PSU 1,600 W" in bad["error"]
    table = to_table(result)
    assert table.num_rows == 2 and table.column("tokens_served").to_pylist()[1] is None


@pytest.mark.parametrize("body, expected", [
    ("axes:\n  scheduler.polcy: [cascade]\n", "axes.scheduler.polcy: unknown field 'polcy' in scheduler (did you mean 'policy'?)"),
    ("axes:\n  pools.nodes: [1]\n", "axes.pools.nodes: pools is a list; index it with a number, e.g. pools.0"),
    ("axes:\n  scheduler: [1]\n", "axes.scheduler: names a whole section"),
    ("axis:\n  simulation.seed: [1]\n", "axis: unknown field (did you mean 'axes'?)"),
    ("mode: random\naxes:\n  simulation.seed: [1]\n", "mode random needs samples"),
    ("axes:\n  simulation.seed: {min: 1, max: 5}\n", "axes.simulation.seed: a grid needs a list of values"),
])
def test_bad_sweep_spec_names_the_field_path(tmp_path, body, expected):
    with pytest.raises(SpecError) as exc:
        plan_sweep(spec_file(tmp_path, body))
    assert any(expected in p for p in exc.value.problems), exc.value.problems


def test_random_mode_draws_reproducibly_within_the_ranges(tmp_path):
    body = ("mode: random\nsamples: 6\nseed: 11\naxes:\n  scheduler.policy: [cascade, spread]\n"
            "  workload.base_rate_per_s: {min: 0.5, max: 2.0}\n  simulation.seed: {min: 1, max: 3, integer: true}\n")
    a, b = (plan_sweep(spec_file(tmp_path, body)) for _ in range(2))
    assert a.variants == b.variants and len(a.variants) == 6
    for v in a.variants:
        assert v.overrides["scheduler.policy"] in ("cascade", "spread")
        assert 0.5 <= v.overrides["workload.base_rate_per_s"] <= 2.0
        assert v.overrides["simulation.seed"] in (1, 2, 3)


def test_cli_sweep_writes_the_directory_and_reports_errors(tmp_path):
    good = spec_file(tmp_path, "axes:\n  pools.0.max_batch: [16, 32]\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["sweep", str(good), "-o", str(out), "--workers", "0", "-q"])
    assert res.exit_code == 0, res.output
    assert "2/2 variants ok" in res.output
    assert pq.read_table(out / "sweep.parquet").column("pools.0.max_batch").to_pylist() == [16, 32]
    res = CliRunner().invoke(app, ["sweep", str(good), "-o", str(out), "--workers", "0", "-q"])
    assert res.exit_code == 2 and "already exists" in res.output
    bad = spec_file(tmp_path, "axes:\n  scheduler.polcy: [x]\n", "bad.yaml")
    res = CliRunner().invoke(app, ["sweep", str(bad), "-o", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "axes.scheduler.polcy: unknown field" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "o2").exists()


def test_sweep_on_an_existing_scheduler_address(tmp_path):
    distributed = pytest.importorskip("distributed")
    plan = plan_sweep(spec_file(tmp_path, "axes:\n  simulation.seed: [5, 6]\n"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        result = run_sweep(plan, scheduler=cluster.scheduler_address)
    assert result.executor == {"kind": "dask", "scheduler": cluster.scheduler_address, "workers": 1}
    assert to_table(result).equals(to_table(run_sweep(plan, workers=0)))


@pytest.mark.parametrize("spec", sorted((SCENARIOS / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_sweep_specs_plan_cleanly(spec):
    plan = plan_sweep(spec)
    assert plan.variants and plan.base_path.is_file()


def test_sobol_and_latin_hypercube_plans_cover_each_axis_evenly(tmp_path):
    """16 Sobol points / 8 LHS points over a range and a 4-value list: a Latin hypercube puts
    exactly one point in each of its 8 equal bins per axis (McKay, Beckman & Conover 1979);
    scrambled Sobol points with n = 2^4 put 16/4 = 4 in each quarter (a (t, m, s)-net property)."""
    axes = "axes:\n  workload.base_rate_per_s: {min: 0.5, max: 1.5}\n  scheduler.warm_pool_nodes: [0, 1, 2, 3]\n"
    lhs = plan_sweep(spec_file(tmp_path, "mode: lhs\nsamples: 8\nseed: 5\n" + axes, "lhs.yaml"))
    rates = [v.overrides["workload.base_rate_per_s"] for v in lhs.variants]
    assert sorted(int((r - 0.5) / 1.0 * 8) for r in rates) == list(range(8))
    sobol = plan_sweep(spec_file(tmp_path, "mode: sobol\nsamples: 16\nseed: 5\n" + axes, "sobol.yaml"))
    warm = [v.overrides["scheduler.warm_pool_nodes"] for v in sobol.variants]
    assert sorted(warm) == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    quarters = [int((v.overrides["workload.base_rate_per_s"] - 0.5) * 4) for v in sobol.variants]
    assert sorted(quarters) == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    again = plan_sweep(spec_file(tmp_path, "mode: sobol\nsamples: 16\nseed: 5\n" + axes, "sobol2.yaml"))
    assert [v.overrides for v in again.variants] == [v.overrides for v in sobol.variants]  # seeded


def test_sobol_needs_a_power_of_two():
    from twin.tools.sweep import SweepSpec
    with pytest.raises(ValueError, match="power of 2.*try 8 or 16"):
        SweepSpec(name="t", base="x.yaml", mode="sobol", samples=12, axes={"simulation.seed": [1]})
