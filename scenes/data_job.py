"""The helper process that writes a stage's data layer (scenes/data_layer.py explains why): started,
handed its work, waited for or stopped. No pxr and no numpy here, so `twin run` can start the
helper before it simulates without paying the stage's imports up front."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from scenes import DATA_NAME
from twin.errors import ToolError


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

    @classmethod
    def start(cls) -> "DataLayerJob":
        """A job with a helper process starting now (in-process if no process can be started)."""
        job = cls()
        # the helper imports this very tree of `scenes` and `twin`, whatever the caller's sys.path
        # or working directory (`-m` puts the working directory first; the work's paths are absolute)
        tree = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (tree, os.environ.get("PYTHONPATH")) if p)}
        # files, not pipes: a helper that prints many warnings cannot block on a full pipe
        job._out, job._err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        try:
            job._proc = subprocess.Popen([sys.executable, "-m", "scenes.data_layer"], stdin=subprocess.PIPE,
                                         stdout=job._out, stderr=job._err, env=env, cwd=tree)
        except OSError:
            job._proc = None
        return job

    @property
    def in_helper(self) -> bool:
        return self._proc is not None

    def submit(self, run_dir: Path | str, out_dir: Path | str, stage_sample_s: float | None = None,
               window: tuple[float, float] | None = None, realtime: bool = False, previews: bool = False,
               colour_by: str | None = None, colour_range: str | None = None) -> None:
        """The work: write_data_layer's arguments; a helper starts on it at once."""
        self._args = {"run_dir": str(Path(run_dir).resolve()), "out_dir": str(Path(out_dir).resolve()),
                      "stage_sample_s": stage_sample_s, "window": list(window) if window is not None else None,
                      "realtime": bool(realtime), "previews": bool(previews), "colour_by": colour_by,
                      "colour_range": colour_range}
        if self._proc is not None:
            try:
                self._proc.stdin.write((json.dumps(self._args) + "\n").encode())
                self._proc.stdin.close()
            except OSError:   # the helper is gone already: its error comes with result()
                pass

    def result(self, frames=None, mapping=None) -> dict:
        """Wait for the work (or do it here, from `frames` and `mapping` when the caller has read
        them already); its record, with "process": "helper" | "in-process". A failed helper raises
        twin.errors.ToolError with its last line of error output."""
        if self._args is None:
            raise RuntimeError("DataLayerJob.result() before submit()")
        if self._proc is None:
            from scenes.data_layer import write_data_layer
            return {**write_data_layer(**self._args, frames=frames, mapping=mapping), "process": "in-process"}
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
