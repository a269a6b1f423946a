"""twin.export against the synthetic run (formulas in tests/synthetic_run.py).

Default synthetic run: 12 nodes x 3 GPUs, 20 samples of 10 s; GPU power = 50 + 5k W,
util = k/20, node states OFF (k<2) -> BOOTING (k<4) -> SERVING; 10 completions per sample.
"""
from __future__ import annotations

import csv
import math

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from synthetic_run import make_synthetic_run
from twin.tools.export import DEFAULT_START_EPOCH, export
from twin.errors import ToolError
from twin.telemetry.read import load_run

GPUS, NODES, RACKS, S = 36, 12, 4, 20
# 4 GPU families + 2 node + 2 rack + 11 facility + node-state (7 series)
EXPECTED_SAMPLES = GPUS * S * 4 + NODES * S * 2 + RACKS * S * 2 + 11 * S + 7 * S


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return load_run(make_synthetic_run(tmp_path_factory.mktemp("e") / "run"))


@pytest.fixture(scope="module")
def families(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("om") / "run.om"
    assert export(run, out, "openmetrics") == EXPECTED_SAMPLES
    text = out.read_text()
    return text, {f.name: f for f in text_string_to_metric_families(text)}


def _value(fam, ts, **labels):
    hits = [s.value for s in fam.samples
            if float(s.timestamp) == ts and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(hits) == 1, hits
    return hits[0]


def test_openmetrics_parses_with_expected_families_and_counts(families):
    text, fams = families
    assert text.endswith("# EOF\n")
    assert sum(len(f.samples) for f in fams.values()) == EXPECTED_SAMPLES == 3880
    assert len(fams["DCGM_FI_DEV_POWER_USAGE"].samples) == GPUS * S
    # one TYPE line per family, never repeated
    types = [ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE")]
    assert len(types) == len(set(types)) == len(fams)
    assert fams["twin_facility_power_watts"].unit == "watts"
    assert fams["twin_requests_completed"].type == "counter"


def test_dcgm_samples_have_dcgm_labels_and_formula_values(families):
    _, fams = families
    t_last = DEFAULT_START_EPOCH + 200.0
    power = fams["DCGM_FI_DEV_POWER_USAGE"]
    assert set(power.samples[0].labels) == {"gpu", "node", "rack", "Hostname"}
    # GPU power 50 + 5k: k=19 -> 145 W; node 11 (rack B02, slot 2) GPU index 2
    assert _value(power, t_last, node="11", gpu="2") == 145.0
    assert _value(power, t_last, node="11", gpu="2", rack="B02", Hostname="b02-n02") == 145.0
    # temp = 30 + k + n + i = 30 + 19 + 11 + 2
    assert _value(fams["DCGM_FI_DEV_GPU_TEMP"], t_last, node="11", gpu="2") == 62.0
    # util k/20 at k=5 (t=60 s) = 25 %
    assert _value(fams["DCGM_FI_DEV_GPU_UTIL"], DEFAULT_START_EPOCH + 60.0, node="0", gpu="0") == 25.0


def test_facility_metrics(families):
    _, fams = families
    t_last = DEFAULT_START_EPOCH + 200.0
    assert _value(fams["twin_facility_power_watts"], t_last) == 6300.0  # 1.5 x 4200 W
    assert _value(fams["twin_pue"], t_last) == 1.5
    assert _value(fams["twin_requests_completed"], t_last) == 200  # 10 per sample, cumulative
    assert _value(fams["twin_nodes"], DEFAULT_START_EPOCH + 10.0, state="off") == NODES
    assert _value(fams["twin_nodes"], DEFAULT_START_EPOCH + 50.0, state="serving") == NODES


def test_series_are_contiguous_and_time_ordered(families):
    _, fams = families
    seen, last = set(), None
    for s in fams["DCGM_FI_DEV_GPU_TEMP"].samples:
        key = tuple(sorted(s.labels.items()))
        if key != last:
            assert key not in seen
            seen.add(key)
            prev_t = -math.inf
        assert float(s.timestamp) > prev_t
        prev_t, last = float(s.timestamp), key
    assert len(seen) == GPUS


def test_start_epoch_option(run, tmp_path):
    out = tmp_path / "x.om"
    export(run, out, "openmetrics", start_epoch=1000)
    first = next(ln for ln in out.read_text().splitlines() if ln.startswith("DCGM_FI_DEV_POWER_USAGE{"))
    assert first.endswith(" 50.0 1010.0")


def test_nan_is_written_as_openmetrics_nan(run, tmp_path):
    import shutil

    copy = tmp_path / "nan"
    shutil.copytree(run.path, copy)
    path = copy / "telemetry" / "facility.parquet"
    table = pq.read_table(path)
    idx = table.schema.get_field_index("latency_p99_s")
    nan = pa.array([math.nan] * table.num_rows, pa.float32())
    pq.write_table(table.set_column(idx, "latency_p99_s", nan), path)
    out = tmp_path / "nan.om"
    export(load_run(copy), out, "openmetrics")
    text = out.read_text()
    assert f"twin_latency_p99_seconds NaN {DEFAULT_START_EPOCH + 10.0}" in text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert all(math.isnan(s.value) for s in fams["twin_latency_p99_seconds"].samples)


def test_csv_long_format(run, tmp_path):
    out = tmp_path / "run.csv"
    assert export(run, out, "csv") == EXPECTED_SAMPLES
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == EXPECTED_SAMPLES
    assert list(rows[0]) == ["metric", "timestamp_s", "time_s", "value", "gpu", "node", "rack", "hostname", "state"]
    hit = [r for r in rows if r["metric"] == "DCGM_FI_DEV_POWER_USAGE" and r["node"] == "11" and r["gpu"] == "2"
           and float(r["time_s"]) == 200.0]
    assert len(hit) == 1 and float(hit[0]["value"]) == 145.0 and hit[0]["rack"] == "B02"
    assert float(hit[0]["timestamp_s"]) == DEFAULT_START_EPOCH + 200.0


def test_output_is_atomic_and_errors_are_tool_errors(run, tmp_path):
    with pytest.raises(ToolError, match="does not exist"):
        export(run, tmp_path / "missing" / "x.om")
    with pytest.raises(ToolError, match="unknown export format"):
        export(run, tmp_path / "x.om", "xml")
    export(run, tmp_path / "ok.om")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.om"]  # no temp files left behind


@pytest.mark.skipif(__import__("shutil").which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_export(run, tmp_path):
    import subprocess

    out = tmp_path / "run.om"
    export(run, out)
    proc = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(out), str(tmp_path / "db")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert str(EXPECTED_SAMPLES) in proc.stdout  # NUM SAMPLES column of the block table
