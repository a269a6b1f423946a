"""OpenMetrics export of a real engine run round-trips: every sample parsed back with
prometheus_client's parser equals the Parquet value it came from (float32 columns exactly,
after casting the parsed value back to float32), and no sample is missing or extra.

tests/test_export.py checks formulas on the synthetic run; this checks the engine's tiny run,
whose float32 values are not round numbers, so a lossy number format would fail here.
"""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from twin.tools.export import export

DEFAULT_START_EPOCH = 1_767_225_600  # given explicitly, so the file is reproducible
from twin.telemetry.read import load_run


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("om") / "tiny.om"
    n = export(load_run(tiny_run), out, "openmetrics", start_epoch=DEFAULT_START_EPOCH)
    fams = {f.name: f for f in text_string_to_metric_families(out.read_text())}
    assert sum(len(f.samples) for f in fams.values()) == n
    return fams


def _parquet(run_dir, table):
    return pq.read_table(run_dir / "telemetry" / f"{table}.parquet").to_pydict()


# OpenMetrics family, source table, source column: exported as-is (NaN stays NaN)
DIRECT = [
    ("DCGM_FI_DEV_POWER_USAGE", "gpus", "power_w"),
    ("DCGM_FI_DEV_GPU_TEMP", "gpus", "temp_c"),
    ("twin_gpu_clock_ratio", "gpus", "clock_factor"),
    ("twin_node_power_watts", "nodes", "power_w"),
    ("twin_node_inlet_celsius", "nodes", "inlet_c"),
    ("twin_rack_power_watts", "racks", "power_w"),
    ("twin_rack_inlet_celsius", "racks", "inlet_c"),
    ("twin_facility_power_watts", "facility", "facility_power_w"),
    ("twin_it_power_watts", "facility", "it_power_w"),
    ("twin_cooling_power_watts", "facility", "cooling_power_w"),
    ("twin_pue", "facility", "pue"),
    ("twin_facility_energy_joules", "facility", "facility_energy_j"),
    ("twin_requests_queued", "facility", "queued"),
    ("twin_requests_in_flight", "facility", "in_flight"),
    ("twin_ttft_p99_seconds", "facility", "ttft_p99_s"),
    ("twin_latency_p99_seconds", "facility", "latency_p99_s"),
]


def _key(table: str, cols: dict, i: int, rack_names: dict[int, str]) -> tuple:
    t = DEFAULT_START_EPOCH + cols["time_s"][i]
    if table == "gpus":
        return (str(cols["node_id"][i]), str(cols["gpu_index"][i]), t)
    if table == "nodes":
        return (str(cols["node_id"][i]), t)
    if table == "racks":
        return (rack_names[cols["rack_id"][i]], t)
    return (t,)


def _sample_key(table: str, s) -> tuple:
    t = float(s.timestamp)
    if table == "gpus":
        return (s.labels["node"], s.labels["gpu"], t)
    if table == "nodes":
        return (s.labels["node"], t)
    if table == "racks":
        return (s.labels["rack"], t)
    return (t,)


@pytest.mark.parametrize("family,table,column", DIRECT)
def test_every_sample_round_trips(exported, tiny_run, family, table, column):
    cols = _parquet(tiny_run, table)
    topo = _parquet(tiny_run, "topology")
    rack_names = dict(zip(topo["rack_id"], topo["rack_name"]))
    dtype = pq.read_schema(tiny_run / "telemetry" / f"{table}.parquet").field(column).type.to_pandas_dtype()
    expected = {_key(table, cols, i, rack_names): v for i, v in enumerate(cols[column])}
    got = {_sample_key(table, s): s.value for s in exported[family].samples}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        # cast back to the column's type: float32 text must parse to the same float32
        same = np.array_equal(np.array(got[key]).astype(dtype), np.array(value).astype(dtype), equal_nan=True)
        assert same, (family, key, got[key], value)


def test_derived_families_round_trip(exported, tiny_run):
    f = _parquet(tiny_run, "facility")
    t = [DEFAULT_START_EPOCH + x for x in f["time_s"]]
    completed = dict(zip(t, np.cumsum(f["completed"])))
    assert {float(s.timestamp): s.value for s in exported["twin_requests_completed"].samples} == completed
    dropped = dict(zip(t, np.cumsum(f["dropped"])))
    assert {float(s.timestamp): s.value for s in exported["twin_requests_dropped"].samples} == dropped
    for state in ("off", "booting", "loading", "warm", "serving", "draining", "failed"):
        got = {float(s.timestamp): s.value for s in exported["twin_nodes"].samples if s.labels["state"] == state}
        assert got == dict(zip(t, f[f"nodes_{state}"])), state
    g = _parquet(tiny_run, "gpus")
    util = {(str(n), str(i), DEFAULT_START_EPOCH + ts): round(float(u) * 100, 1)
            for n, i, ts, u in zip(g["node_id"], g["gpu_index"], g["time_s"], g["util"])}
    got = {(s.labels["node"], s.labels["gpu"], float(s.timestamp)): s.value
           for s in exported["DCGM_FI_DEV_GPU_UTIL"].samples}
    assert got.keys() == util.keys()
    assert all(got[k] == pytest.approx(v, abs=0.05 + 1e-9) for k, v in util.items())  # 1 decimal place


def test_dcgm_energy_counter_is_the_integral_of_gpu_power(exported, tiny_run):
    """DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ) at the last sample = sum(power_w x sample_s) x 1000."""
    g = _parquet(tiny_run, "gpus")
    sample_s = __import__("json").loads((tiny_run / "manifest.json").read_text())["simulation"]["sample_s"]
    gpu0 = [p for p, gid in zip(g["power_w"], g["gpu_id"]) if gid == 0]
    last = max(float(s.timestamp) for s in exported["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"].samples)
    got = [s.value for s in exported["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"].samples
           if float(s.timestamp) == last and s.labels["node"] == "0" and s.labels["gpu"] == "0"]
    assert got == [pytest.approx(sum(float(p) for p in gpu0) * sample_s * 1000, abs=0.5)]
