"""The stage's data layer, ``stage/data.usdc``: the numbers beside the look.

The root ``refinery.usda`` sublayers two heavy layers with disjoint opinions:

- ``telemetry.usdc``, the look: heat colours and glow, fan spin, P2P flashes, RDMA pulses, the
  hero camera (scenes/stage.py, scenes/nodes.py, scenes/fabric.py);
- ``data.usdc``, the numbers: every node's ``primvars:telemetry:*`` and its ``FX/Airflow``
  points (velocities, temperatures) for FX artists and scripts (scenes/nodes.py
  ``write_data_samples``). An artist who only renders the look can mute it.

Why a layer of its own, written by another process: Sdf authoring holds the GIL and the data are
half of the surge's time samples (0.38 M of 0.76 M). On a large stage a helper process
(``python -m scenes.data_layer``) writes data.usdc and the previews from the run directory while
the parent writes the root and the look, so the stage costs about the larger half, not the sum.
A Python start-up with numpy, pyarrow and pxr costs ~0.7 s: ``twin run`` starts the helper
before it simulates (DataLayerJob.start), so the start-up is spent on the second core while the
simulation runs, and hands it the run once the telemetry is written. Small stages (fewer than
HELPER_MIN_NODE_ROWS node rows) write everything in-process. The files do not depend on where
they were written (tests/test_stage_data_layer.py).

The helper only ever writes ``data.usdc`` and ``previews/`` in the stage directory it is given,
and the parent waits for it (or stops it) before it returns or raises, so nothing writes into a
run directory that an interrupted run is removing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pxr import Sdf

from twin.errors import ToolError

from scenes import HELPER_MIN_NODE_ROWS, layout as lay, mapping as cmap  # noqa: F401 (re-exported)
from scenes.frames import StageFrames, load_frames
from scenes.nodes import read_airflow, write_data_samples

DATA_NAME = "data.usdc"
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"


def write_data_layer(run_dir: Path | str, out_dir: Path | str, stage_sample_s: float | None = None,
                     window: tuple[float, float] | None = None, realtime: bool = False, previews: bool = False,
                     colour_by: str | None = None, colour_range: str | None = None,
                     frames: StageFrames | None = None, mapping: cmap.ColourMapping | None = None) -> dict:
    """Write out_dir/data.usdc (and, with `previews`, out_dir/previews) for the run in `run_dir`:
    the frames build_stage reads (or `frames`, already read) and its colour mapping (or
    `mapping`). Returns {"samples", "bytes", "previews" (paths), "seconds"}."""
    t0 = time.perf_counter()
    fr = frames if frames is not None else load_frames(
        Path(run_dir), stage_sample_s, window=tuple(window) if window is not None else None, realtime=realtime)
    layout = lay.build_layout(fr.topology)
    path = Path(out_dir) / DATA_NAME
    if path.exists():
        path.unlink()
    layer = Sdf.Layer.CreateNew(str(path))
    with Sdf.ChangeBlock():
        n = write_data_samples(layer, layout, fr, read_airflow(ASSETS_DIR))
    layer.Save()
    shown: list[str] = []
    if previews:
        from scenes.previews import write_previews
        mapping = mapping if mapping is not None else cmap.for_frames(fr, colour_by, colour_range)
        shown = [str(p) for p in write_previews(Path(out_dir) / "previews", fr, mapping)]
    return {"samples": n, "bytes": path.stat().st_size, "previews": shown,
            "seconds": round(time.perf_counter() - t0, 3)}


def node_rows(run_dir: Path | str) -> int:
    """Rows of the run's nodes table (its Parquet footer), 0 if it cannot be read."""
    import pyarrow.parquet as pq
    try:
        return int(pq.ParquetFile(Path(run_dir) / "telemetry" / "nodes.parquet").metadata.num_rows)
    except (OSError, ValueError):
        return 0


class DataLayerJob:
    """data.usdc (+ previews) in the making. `DataLayerJob.start()` starts a helper process that
    imports what it needs and waits; `submit()` hands it the work, `result()` waits for it. A job
    made with DataLayerJob() has no helper: `result()` writes in-process. `close()` stops a
    helper that still runs (or never got work) and waits for it to be gone: call it in a
    ``finally``."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._out = self._err = None
        self._args: dict | None = None
        self._local: dict = {}

    @classmethod
    def start(cls) -> "DataLayerJob":
        """A job with a helper process starting now (in-process if no process can be started)."""
        job = cls()
        # the helper imports this very tree of `scenes` and `twin`, whatever the caller's sys.path
        tree = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (tree, os.environ.get("PYTHONPATH")) if p)}
        # files, not pipes: a helper that prints many warnings cannot block on a full pipe
        job._out, job._err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        try:
            job._proc = subprocess.Popen([sys.executable, "-m", "scenes.data_layer"], stdin=subprocess.PIPE,
                                         stdout=job._out, stderr=job._err, env=env)
        except OSError:
            job._proc = None
        return job

    @property
    def in_helper(self) -> bool:
        return self._proc is not None

    def submit(self, run_dir: Path | str, out_dir: Path | str, stage_sample_s: float | None = None,
               window: tuple[float, float] | None = None, realtime: bool = False, previews: bool = False,
               colour_by: str | None = None, colour_range: str | None = None, *,
               frames: StageFrames | None = None, mapping: cmap.ColourMapping | None = None) -> None:
        """The work: write_data_layer's arguments (`frames` and `mapping` serve only in-process)."""
        self._args = {"run_dir": str(Path(run_dir).resolve()), "out_dir": str(Path(out_dir).resolve()),
                      "stage_sample_s": stage_sample_s, "window": list(window) if window is not None else None,
                      "realtime": bool(realtime), "previews": bool(previews), "colour_by": colour_by,
                      "colour_range": colour_range}
        self._local = {"frames": frames, "mapping": mapping}
        if self._proc is not None:
            try:
                self._proc.stdin.write((json.dumps(self._args) + "\n").encode())
                self._proc.stdin.close()
            except OSError:   # the helper is gone already: its error comes with result()
                pass

    def result(self) -> dict:
        """Wait for the work (or do it here); its record, with "process": "helper" | "in-process".
        A failed helper raises twin.errors.ToolError with its last line of error output."""
        if self._args is None:
            raise RuntimeError("DataLayerJob.result() before submit()")
        if self._proc is None:
            return {**write_data_layer(**self._args, **self._local), "process": "in-process"}
        code = self._proc.wait()
        self._out.seek(0)
        self._err.seek(0)
        out, err = self._out.read().decode(errors="replace"), self._err.read().decode(errors="replace")
        if code != 0:
            tail = [line for line in err.strip().splitlines() if line.strip()][-1:] or [f"exit status {code}"]
            raise ToolError(f"writing the stage's {DATA_NAME} failed: {tail[0]}")
        return {**json.loads(out), "process": "helper"}

    def close(self) -> None:
        """Stop the helper if it still runs, and wait until it is gone."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
            proc.wait()
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()
        for f in (self._out, self._err):
            if f is not None:
                f.close()
        self._out = self._err = None


def main() -> int:
    """The helper process: one JSON line on stdin (write_data_layer's keywords), the record on
    stdout. No line (the parent closed stdin without work) is a quiet exit."""
    import scenes.previews  # noqa: F401  (everything imported before the work arrives)
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    sys.stdout.write(json.dumps(write_data_layer(**json.loads(line))))
    return 0


if __name__ == "__main__":
    code = main()
    # the parent waits for this process to end: skip the interpreter's teardown of pxr and
    # friends (0.16 s measured), as the twin command does (twin.cli.main._exit_now)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
