"""`twin replay RUN --speed 60x`: serve a finished run on localhost as if it were live.

Prometheus scrapes http://127.0.0.1:PORT/metrics (add it as a scrape target) and the Grafana
dashboard (grafana/twin-refinery.json) shows the twin moving. Thin: the work is in
twin.tools.replay. Ctrl-C stops it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from twin.cli.common import QuietOption


def replay(run_dir: Annotated[Path, typer.Argument(help="Run directory")],
           speed: Annotated[str, typer.Option(help="Replay speed: simulated seconds per wall second, e.g. 60x")] = "60x",
           port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1 (dcgm-exporter's is 9400)")] = 9400,
           loop: Annotated[bool, typer.Option("--loop/--once", help="Start over at the end (default: hold the last sample)")] = False,
           stop_after_s: Annotated[Optional[float], typer.Option(help="Stop after this many wall seconds")] = None,
           quiet: QuietOption = False) -> None:
    """Serve RUN_DIR's telemetry at /metrics on 127.0.0.1, replayed faster than real time."""
    from twin.cli.tools import _load, _user_errors
    from twin.tools.replay import Replay, make_server, parse_speed

    with _user_errors():
        factor = parse_speed(speed)
        if not 0 <= port <= 65535:
            from twin.errors import ToolError
            raise ToolError(f"--port {port}: must be 0..65535")
        rep = Replay(_load(run_dir), speed=factor, loop=loop)
        server = make_server(rep, "127.0.0.1", port)
    host, bound = server.server_address[:2]
    if not quiet:
        typer.echo(f"serving {run_dir} ({rep.duration_s:g} s simulated) at http://{host}:{bound}/metrics, "
                   f"{factor:g}x: the whole run in {rep.duration_s / factor:,.0f} s of wall time; Ctrl-C stops",
                   err=True)
    deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
    try:
        server.timeout = 0.5
        while deadline is None or time.monotonic() < deadline:
            server.handle_request()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
