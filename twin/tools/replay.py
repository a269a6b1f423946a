"""Serve a finished run as if it were live: `/metrics` on localhost for Prometheus to scrape.

The replay clock runs `speed` times faster than the wall clock from the moment the server
starts; each scrape gets the last telemetry sample at or before the replay time, in the
Prometheus text format *without* timestamps, so Prometheus stamps the values with its own
scrape time and a dashboard on "last 15 minutes" shows the twin moving. The families are
export's (twin.tools.families): dcgm-exporter names and labels for GPUs, twin_* for the rest.

Only the standard library's http.server here; values come through DuckDB (twin.telemetry.sql).
"""
from __future__ import annotations

import threading
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from twin.errors import ToolError
from twin.telemetry.read import Run
from twin.tools.families import families_for, family_sql, hardware, header

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text exposition format


def parse_speed(text: str) -> float:
    """'60x', '60' or '0.5x' -> 60.0 / 0.5; ToolError for anything not a positive number."""
    raw = str(text).strip().lower().removesuffix("x")
    try:
        speed = float(raw)
    except ValueError:
        raise ToolError(f"--speed {text!r}: expected a factor like 60x") from None
    if not speed > 0 or speed != speed or speed == float("inf"):
        raise ToolError(f"--speed {text!r}: must be a positive factor, e.g. 60x")
    return speed


@dataclass
class Replay:
    """A run on a replay clock: sim time = (clock() - started) x speed, wrapping when `loop`."""

    run: Run
    speed: float = 60.0
    loop: bool = False
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.started = self.clock()
        self.hw = hardware(self.run)
        self.families = families_for(self.run, self.hw)
        self.times = [float(t) for t in self.run.sql("SELECT DISTINCT time_s FROM facility ORDER BY 1")
                      .column(0).to_pylist()]
        if not self.times:
            raise ToolError(f"{self.run.path}: the facility table is empty; nothing to replay")
        self._cache: tuple[float, str] | None = None
        self._lock = threading.Lock()

    @property
    def duration_s(self) -> float:
        return self.times[-1]

    def sim_time(self) -> float:
        """The sample shown now: the last sample time <= the replay clock (the first before it)."""
        t = (self.clock() - self.started) * self.speed
        if self.loop:
            t %= self.duration_s
        i = bisect_right(self.times, t) - 1
        return self.times[max(0, min(i, len(self.times) - 1))]

    def _table_time(self, table: str, t: float) -> float:
        """The row of `table` a scrape at sample `t` sees: its latest at or before t (a table may
        sample on its own, coarser interval: simulation.telemetry), else its first."""
        every = self.run.table_sample_s(table) if table in ("gpus", "nodes") else self.run.sample_s
        if every == self.run.sample_s:
            return t
        return max(1.0, float(int(t / every + 1e-9))) * every  # rows sit at (s + 1) x every

    def text(self, t: float | None = None) -> str:
        """The exposition text of sample `t` (default: now on the replay clock)."""
        t = self.sim_time() if t is None else t
        with self._lock:
            if self._cache and self._cache[0] == t:
                return self._cache[1]
            parts = [f"# twin replay of {self.run.name}: simulation time {t:g} s of {self.duration_s:g} s\n"]
            for fam in self.families:
                parts.append(header(fam, "ms"))
                at = self._table_time(fam.table, t)
                lines = self.run.sql(family_sql(fam, self.hw, None, "ms", at_time_s=at)).column(0).to_pylist()
                parts.extend(lines)
            parts.append(_info(self.run, t, self.speed))
            self._cache = (t, "".join(parts))
            return self._cache[1]


def _info(run: Run, t: float, speed: float) -> str:
    name = run.name.replace("\\", "\\\\").replace('"', '\\"')
    return ("# HELP twin_replay_simulation_seconds Simulation time of the sample being served (s).\n"
            "# TYPE twin_replay_simulation_seconds gauge\n"
            f'twin_replay_simulation_seconds{{scenario="{name}"}} {t!r}\n'
            "# HELP twin_replay_speed Replay clock speed (simulated s per wall s).\n"
            "# TYPE twin_replay_speed gauge\n"
            f'twin_replay_speed{{scenario="{name}"}} {speed!r}\n')


def make_server(replay: Replay, host: str = "127.0.0.1", port: int = 9400) -> ThreadingHTTPServer:
    """An HTTP server answering GET /metrics with `replay.text()` (port 0 picks a free one)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.split("?")[0] != "/metrics":
                body = b"twin replay: scrape /metrics\n"
                self.send_response(404 if self.path != "/" else 200)
                ctype = "text/plain; charset=utf-8"
            else:
                body = replay.text().encode()
                self.send_response(200)
                ctype = CONTENT_TYPE
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # scrapes every few seconds: keep quiet
            pass

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise ToolError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
