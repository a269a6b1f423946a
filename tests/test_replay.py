"""`twin replay`: a run served at /metrics as if live, and scraped by a real Prometheus."""
from __future__ import annotations

import subprocess
import threading
import time
import urllib.request

import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_prometheus_dashboard import _binaries, _free_port, _get
from twin.errors import ToolError
from twin.telemetry.read import load_run
from twin.tools.replay import Replay, make_server, parse_speed


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _facility(tiny_run, t: float) -> dict:
    f = pq.read_table(tiny_run / "telemetry" / "facility.parquet").to_pylist()
    return next(r for r in f if r["time_s"] == t)


def test_speed_parsing():
    assert parse_speed("60x") == 60.0 and parse_speed("0.5") == 0.5
    for bad in ("fast", "0x", "-2x", "nanx"):
        with pytest.raises(ToolError):
            parse_speed(bad)


def test_replay_clock_maps_wall_seconds_to_samples(tiny_run):
    clock = Clock()
    rep = Replay(load_run(tiny_run), speed=60, clock=clock)
    assert rep.sim_time() == 5.0                 # t = 0: the first sample (sample_s = 5)
    clock.now += 2.0                             # 2 wall s x 60 = 120 simulated s
    assert rep.sim_time() == 120.0
    clock.now += 1.0 / 60 * 3                    # +3 s: 123 s -> the sample at 120 s
    assert rep.sim_time() == 120.0
    clock.now += 3600                            # past the end: hold the last sample
    assert rep.sim_time() == 600.0
    looped = Replay(load_run(tiny_run), speed=60, loop=True, clock=clock)
    clock.now += 11.0                            # 660 s simulated -> 60 s into the second lap
    assert looped.sim_time() == 60.0


def test_scrape_text_has_the_sample_values(tiny_run):
    clock = Clock()
    rep = Replay(load_run(tiny_run), speed=10, clock=clock)
    clock.now += 30.0                            # 300 s
    fams = {f.name: f for f in text_string_to_metric_families(rep.text())}
    row = _facility(tiny_run, 300.0)
    assert fams["twin_facility_power_watts"].samples[0].value == pytest.approx(row["facility_power_w"], rel=1e-6)
    assert fams["twin_requests_queued"].samples[0].value == row["queued"]
    assert all(s.timestamp is None for s in fams["DCGM_FI_DEV_GPU_TEMP"].samples)  # Prometheus stamps them
    assert len(fams["DCGM_FI_DEV_GPU_TEMP"].samples) == 12                       # one per GPU, this sample only
    assert fams["twin_replay_simulation_seconds"].samples[0].value == 300.0


def test_http_server_serves_metrics(tiny_run):
    rep = Replay(load_run(tiny_run), speed=60)
    server = make_server(rep, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = resp.read().decode()
        assert "DCGM_FI_DEV_POWER_USAGE{" in body and "twin_pue " in body
    finally:
        server.shutdown()
        server.server_close()


def test_a_real_prometheus_scrapes_the_replay(tiny_run, tmp_path):
    prom, _ = _binaries()
    rep = Replay(load_run(tiny_run), speed=60)
    server = make_server(rep, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n"
                      f"  - job_name: twin\n    static_configs: [{{targets: ['127.0.0.1:{server.server_address[1]}']}}]\n")
    proc = subprocess.Popen([prom, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base, deadline, result = f"http://127.0.0.1:{port}", time.monotonic() + 45, []
        while time.monotonic() < deadline and not result:
            time.sleep(0.5)
            try:
                result = _get(base, "/api/v1/query", query='DCGM_FI_DEV_GPU_TEMP{Hostname="a01-n00", gpu="0"}')["data"]["result"]
            except OSError:
                continue
        assert result, "Prometheus never scraped the replay"
        assert result[0]["metric"]["job"] == "twin" and result[0]["metric"]["modelName"].startswith("NVIDIA")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        server.shutdown()
        server.server_close()
