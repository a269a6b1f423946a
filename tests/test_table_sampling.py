"""Per-table sampling (simulation.telemetry, issue 19): each of gpus, nodes and links has its own
interval; means are over that interval, energy integrates per table, the manifest says so."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from twin.cli.main import app
from twin.model.states import SERVING
from twin.sim.sampler import Sampler, SamplerLayout
from twin.telemetry.read import load_run

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "scenarios" / "tiny.yaml"
runner = CliRunner()


def _layout() -> SamplerLayout:
    # one rack, two nodes of one GPU each, no replicas
    return SamplerLayout(
        gpu_node=np.array([0, 1]), gpu_rep=np.array([-1, -1]), node_rack=np.array([0, 0]), nodes_per_rack=2,
        gpus_per_node=1, n_racks=1, pair_rep=np.zeros(0, int), pair_node=np.zeros(0, int),
        rep_n_nodes=np.zeros(0), rep_hidden_bytes=np.zeros(0), rep_hops_intra=np.zeros(0),
        rep_hops_cross=np.zeros(0), rep_weights_per_gpu_b=np.zeros(0), rep_n_gpus=np.zeros(0))


def test_each_table_means_over_its_own_interval():
    # 8 ticks of 0.5 s; racks/facility every 2 ticks, gpus every 4, nodes every 8
    sm = Sampler(_layout(), n_samples=4, ticks_per_sample=2, dt_s=0.5, table_ticks={"gpus": 4, "nodes": 8})
    gpu_w = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0]
    node_w = [100.0, 300.0, 100.0, 300.0, 500.0, 500.0, 700.0, 700.0]
    for k in range(8):
        sm.accumulate(gpu_power_w=np.full(2, gpu_w[k]), gpu_util=np.full(2, k / 8), node_wall_w=np.full(2, node_w[k]),
                      node_dc_w=np.zeros(2), node_gpu_w=np.full(2, gpu_w[k]), rep_tokens_s=np.zeros(0),
                      rep_prefill_tok_s=np.zeros(0), node_load_gb_s=None, it_w=2 * node_w[k], cooling_w=0.0,
                      overhead_w=0.0, facility_w=2 * node_w[k], gpu_throttled=np.zeros(2, bool))
        assert sm.closes_interval(k) == (k % 2 == 1)
        if sm.closes_interval(k):
            sm.snapshot(k, gpu_temp_c=np.array([30.0 + k, 40.0 + k]), gpu_clock=np.ones(2), gpu_fan_frac=np.zeros(2),
                        gpu_throttled=np.zeros(2, bool), node_state=np.full(2, SERVING), rep_kv_reserved_b=np.zeros(0),
                        rep_inflight=np.zeros(0), node_inlet_c=np.full(2, 20.0), node_exhaust_c=np.full(2, 30.0),
                        node_fan_rpm=np.zeros(2), node_airflow_m3_s=np.zeros(2), rack_exhaust_c=np.array([30.0]),
                        rack_demand_m3_s=np.zeros(1), rack_supply_m3_s=np.zeros(1), rack_recirc_frac=np.zeros(1),
                        supply_c=20.0, queued=0, in_flight=0, links=None)
    # gpus: (10+20+30+40)/4 = 25 W, (50+60+70+80)/4 = 65 W; temperature at each interval's end (ticks 3, 7)
    assert sm.gpu.column("power_w")[:, 0].tolist() == [25.0, 65.0]
    assert sm.gpu.column("temp_c")[:, 1].tolist() == [43.0, 47.0]
    # nodes: one row, the mean of all 8 ticks = 400 W
    assert sm.node.column("power_w").tolist() == [[400.0, 400.0]]
    # racks and facility keep the 2-tick interval: two nodes x (100+300)/2, (100+300)/2, 500, 700
    assert sm.rack["power_w"][:, 0].tolist() == [400.0, 400.0, 1000.0, 1400.0]
    assert sm.fac["it_power_w"].tolist() == [400.0, 400.0, 1000.0, 1400.0]
    # the summary's peak is over the racks' instants (ticks 1, 3, 5, 7): GPU 1 at tick 7
    assert sm.peak_gpu_temp_c == 47.0


@pytest.fixture(scope="module")
def coarse_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sampling") / "run"
    res = runner.invoke(app, ["run", str(TINY), "-o", str(out), "--no-stage", "-q",
                              "--set", "simulation.telemetry.gpus.sample_s=10",
                              "--set", "simulation.telemetry.nodes.sample_s=15"])
    assert res.exit_code == 0, res.output
    return out


def test_rows_sit_at_each_tables_interval(coarse_run):
    tel = coarse_run / "telemetry"
    times = {t: np.unique(pq.read_table(tel / f"{t}.parquet", columns=["time_s"]).column(0).to_numpy())
             for t in ("gpus", "nodes", "racks", "facility")}
    # tiny: 600 s, sample_s 5 -> 120 facility/rack samples, 60 GPU, 40 node samples
    assert times["gpus"].tolist() == [10.0 * (i + 1) for i in range(60)]
    assert times["nodes"].tolist() == [15.0 * (i + 1) for i in range(40)]
    assert times["racks"].tolist() == times["facility"].tolist() == [5.0 * (i + 1) for i in range(120)]


def test_energy_is_the_integral_of_power_in_every_table(coarse_run):
    tel, man = coarse_run / "telemetry", json.loads((coarse_run / "manifest.json").read_text())
    nodes = pq.read_table(tel / "nodes.parquet").to_pandas()
    gpus = pq.read_table(tel / "gpus.parquet").to_pandas()
    racks = pq.read_table(tel / "racks.parquet").to_pandas()
    it_kwh = man["summary"]["it_energy_kwh"]
    # wall power of the nodes = IT power; each table at its own interval gives the same energy
    node_kwh = float((nodes.power_w.astype(float) * 15.0).sum()) / 3.6e6
    rack_kwh = float((racks.power_w.astype(float) * 5.0).sum()) / 3.6e6
    assert node_kwh == pytest.approx(it_kwh, rel=1e-6)
    assert rack_kwh == pytest.approx(it_kwh, rel=1e-6)
    # the node table's running energy ends at the integral of its own rows
    assert float(nodes.groupby("node_id").energy_j.last().sum()) / 3.6e6 == pytest.approx(node_kwh, rel=1e-9)
    # GPU board power over 10 s rows = the nodes' GPU power over 15 s rows (both cover the 600 s)
    gpu_kwh = float((gpus.power_w.astype(float) * 10.0).sum()) / 3.6e6
    assert gpu_kwh == pytest.approx(float((nodes.gpu_power_w.astype(float) * 15.0).sum()) / 3.6e6, rel=1e-6)
    assert gpu_kwh > 0


def test_manifest_states_each_tables_interval(coarse_run):
    man = json.loads((coarse_run / "manifest.json").read_text())
    sampling = man["sampling"]
    assert {t: sampling[t]["sample_s"] for t in ("gpus", "nodes", "racks", "facility", "links")} == \
        {"gpus": 10.0, "nodes": 15.0, "racks": 5.0, "facility": 5.0, "links": 5.0}
    assert "mean over the 10 s: power_w, util" in sampling["gpus"]["statistic"]
    run = load_run(coarse_run)
    assert (run.table_sample_s("gpus"), run.table_sample_s("nodes"), run.sample_s) == (10.0, 15.0, 5.0)
    # SQL readers get each table's interval: throttled seconds count GPU rows x 10 s
    assert run.sql("SELECT getvariable('gpus_sample_s') AS s").column(0)[0].as_py() == 10.0


def test_default_sampling_is_simulation_sample_s(tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", str(TINY), "-o", str(out), "--no-stage", "-q"]).exit_code == 0
    man = json.loads((out / "manifest.json").read_text())
    assert {t: v["sample_s"] for t, v in man["sampling"].items()} == {t: 5.0 for t in man["sampling"]}


@pytest.mark.parametrize("value, says", [("2.5", "must be a whole multiple of dt_s (1 s)"),
                                         ("700", "exceeds the run's 600 s"), ("0", "greater than 0")])
def test_a_bad_interval_is_exit_2_naming_the_field(tmp_path, value, says):
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(TINY), "-o", str(out), "--no-stage", "-q",
                              "--set", f"simulation.telemetry.gpus.sample_s={value}"])
    assert res.exit_code == 2
    assert "simulation.telemetry.gpus.sample_s:" in res.output and says in res.output
    assert "Traceback" not in res.output and not out.exists()
