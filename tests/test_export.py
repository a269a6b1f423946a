"""twin.export against the synthetic run (formulas in tests/synthetic_run.py).

Default synthetic run: 12 nodes x 3 GPUs, 20 samples of 10 s; GPU power = 50 + 5k W,
util = k/20, node states OFF (k<2) -> BOOTING (k<4) -> SERVING; 10 completions per sample.
"""
from __future__ import annotations

import csv
import math
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from synthetic_run import make_synthetic_run
from twin.tools.export import export, start_epoch_for
from twin.errors import ToolError
from twin.telemetry.read import load_run

GPUS, NODES, RACKS, S = 36, 12, 4, 20
# 9 GPU families (8 DCGM + clock ratio) + 2 node + 2 rack + 13 facility + node-state (7 series)
EXPECTED_SAMPLES = GPUS * S * 9 + NODES * S * 2 + RACKS * S * 2 + 13 * S + 7 * S
DEFAULT_START_EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z, given explicitly: exports are then reproducible


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return load_run(make_synthetic_run(tmp_path_factory.mktemp("e") / "run"))


@pytest.fixture(scope="module")
def families(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("om") / "run.om"
    assert export(run, out, "openmetrics", start_epoch=DEFAULT_START_EPOCH) == EXPECTED_SAMPLES
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
    assert sum(len(f.samples) for f in fams.values()) == EXPECTED_SAMPLES == 7520
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
    # dcgm-exporter's label set, plus node and rack
    assert set(power.samples[0].labels) == {"gpu", "UUID", "device", "modelName", "Hostname", "pci_bus_id",
                                            "node", "rack"}
    first = power.samples[0].labels
    assert first["modelName"] == "NVIDIA RTX PRO 4500 Blackwell" and first["device"] == "nvidia0"
    assert re.fullmatch(r"GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", first["UUID"])
    assert first["pci_bus_id"] == "00000000:01:00.0"
    assert len({s.labels["UUID"] for s in power.samples}) == GPUS  # one stable UUID per GPU
    # GPU power 50 + 5k: k=19 -> 145 W; node 11 (rack B02, slot 2) GPU index 2
    assert _value(power, t_last, node="11", gpu="2") == 145.0
    assert _value(power, t_last, node="11", gpu="2", rack="B02", Hostname="b02-n02") == 145.0
    # temp = 30 + k + n + i = 30 + 19 + 11 + 2
    assert _value(fams["DCGM_FI_DEV_GPU_TEMP"], t_last, node="11", gpu="2") == 62.0
    # util k/20 at k=5 (t=60 s) = 25 %
    assert _value(fams["DCGM_FI_DEV_GPU_UTIL"], DEFAULT_START_EPOCH + 60.0, node="0", gpu="0") == 25.0


def test_derived_dcgm_fields_by_hand(families):
    """FB in MiB from the GPU's 32 GB (as GiB) and 20 GB used; SM clock = clock factor 1 x 2,617 MHz
    boost; energy in mJ = running sum of (50 + 5k) W x 10 s; event reasons 0x1 idle at util 0,
    0x20 SW thermal slowdown while throttled."""
    _, fams = families
    t_last = DEFAULT_START_EPOCH + 200.0
    assert _value(fams["DCGM_FI_DEV_FB_USED"], t_last, node="3", gpu="1") == 20 * 1024
    assert _value(fams["DCGM_FI_DEV_FB_FREE"], t_last, node="3", gpu="1") == (32 - 20) * 1024
    assert _value(fams["DCGM_FI_DEV_SM_CLOCK"], t_last, node="3", gpu="1") == 2617
    energy = fams["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]
    assert energy.type == "unknown"  # OpenMetrics: a counter sample would need _total; the name stays DCGM's
    assert _value(energy, t_last, node="3", gpu="1") == sum(50 + 5 * k for k in range(20)) * 10 * 1000
    reasons = fams["DCGM_FI_DEV_CLOCKS_EVENT_REASONS"]
    assert _value(reasons, DEFAULT_START_EPOCH + 10.0, node="0", gpu="0") == 0x1  # util 0/20
    assert _value(reasons, t_last, node="0", gpu="0") == 0                          # 49 °C, busy
    assert {s.value for s in reasons.samples} == {0x1, 0}  # run A never reaches 90 °C


def test_throttled_gpu_reports_sw_thermal_slowdown(tmp_path):
    # 64 samples: GPU (node 11, index 2) is at 30 + 63 + 11 + 2 = 106 °C > 90 at k = 63
    run = load_run(make_synthetic_run(tmp_path / "hot", samples=64))
    out = tmp_path / "hot.om"
    export(run, out, start_epoch=0)
    fams = {f.name: f for f in text_string_to_metric_families(out.read_text())}
    assert _value(fams["DCGM_FI_DEV_CLOCKS_EVENT_REASONS"], 640.0, node="11", gpu="2") == 0x20


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


def test_start_epoch_option_and_millisecond_timestamps(run, tmp_path):
    out = tmp_path / "x.om"
    export(run, out, "openmetrics", start_epoch=1000)
    first = next(ln for ln in out.read_text().splitlines() if ln.startswith("DCGM_FI_DEV_POWER_USAGE{"))
    assert first.endswith(" 50.0 1010.000")
    prom = tmp_path / "x.prom"
    export(run, prom, start_epoch=1000.25)  # Prometheus text format: integer milliseconds
    first = next(ln for ln in prom.read_text().splitlines() if ln.startswith("DCGM_FI_DEV_POWER_USAGE{"))
    assert first.endswith(" 50.0 1010250")


def test_default_epoch_ends_the_run_now(run):
    """'last 1 hour' in Grafana shows a fresh export: the last sample (t = 200 s) is stamped now."""
    assert start_epoch_for(run, None, now_s=1_800_000_000.7) == 1_800_000_000 - 200
    assert start_epoch_for(run, 5.0, now_s=1_800_000_000) == 5.0


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
    export(load_run(copy), out, "openmetrics", start_epoch=DEFAULT_START_EPOCH)
    text = out.read_text()
    assert f"twin_latency_p99_seconds NaN {DEFAULT_START_EPOCH + 10}.000" in text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert all(math.isnan(s.value) for s in fams["twin_latency_p99_seconds"].samples)


def test_csv_long_format(run, tmp_path):
    out = tmp_path / "run.csv"
    assert export(run, out, "csv", start_epoch=DEFAULT_START_EPOCH) == EXPECTED_SAMPLES
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
    with pytest.raises(ToolError, match="a .om file is openmetrics, not csv"):
        export(run, tmp_path / "x.om", "csv")
    with pytest.raises(ToolError, match="unknown extension '.xml'"):
        export(run, tmp_path / "x.xml")
    export(run, tmp_path / "ok.om")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.om"]  # no temp files left behind


def test_parquet_long_format_equals_csv(run, tmp_path):
    n = export(run, tmp_path / "m.parquet", start_epoch=DEFAULT_START_EPOCH)
    export(run, tmp_path / "m.csv", start_epoch=DEFAULT_START_EPOCH)
    table = pq.read_table(tmp_path / "m.parquet")
    assert table.num_rows == n == EXPECTED_SAMPLES
    with open(tmp_path / "m.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["value"]) for r in rows[:50]] == table.column("value").to_pylist()[:50]


@pytest.mark.skipif(__import__("shutil").which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_export(run, tmp_path):
    import subprocess

    out = tmp_path / "run.om"
    export(run, out, start_epoch=DEFAULT_START_EPOCH)
    proc = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(out), str(tmp_path / "db")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert str(EXPECTED_SAMPLES) in proc.stdout  # NUM SAMPLES column of the block table


@pytest.mark.skipif(__import__("shutil").which("promtool") is None, reason="promtool not installed")
def test_promtool_check_metrics_parses_the_prometheus_text_export(run, tmp_path):
    """`promtool check metrics` parses every line (integer-millisecond timestamps). What it still
    lints is dcgm-exporter's own naming, kept on purpose: camelCase labels (modelName, UUID...)
    and a DCGM counter without _total."""
    import subprocess

    out = tmp_path / "run.prom"
    export(run, out, start_epoch=DEFAULT_START_EPOCH)
    with open(out, "rb") as fh:
        proc = subprocess.run(["promtool", "check", "metrics"], stdin=fh, capture_output=True, text=True, timeout=60)
    report = proc.stdout + proc.stderr
    assert "error while linting" not in report and "parsing error" not in report, report[:500]
    assert proc.returncode in (0, 3), report[:500]  # 3 = lint findings only
    allowed = ("label names should be written in 'snake_case' not 'camelCase'",
               'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter metrics should have "_total" suffix')
    assert all(any(a in line for a in allowed) for line in report.splitlines() if line.strip()), report[:500]


def test_scrape_interval_keeps_one_sample_per_interval_and_counters_count_everything(run, tmp_path):
    out = tmp_path / "s.om"
    n = export(run, out, start_epoch=0, scrape_s=40)  # 200 s of 10 s samples -> t = 40, 80, ..., 200
    assert n == EXPECTED_SAMPLES // 4
    fams = {f.name: f for f in text_string_to_metric_families(out.read_text())}
    assert {float(s.timestamp) for s in fams["twin_pue"].samples} == {40.0, 80.0, 120.0, 160.0, 200.0}
    assert _value(fams["twin_requests_completed"], 200.0) == 200  # every sample counted, not every 4th
    with pytest.raises(ToolError, match="whole multiple of the run's 10 s"):
        export(run, out, scrape_s=15)
