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

The process handling is scenes/data_job.py (no pxr there: `twin run` starts the helper before
it has imported pxr). The helper only ever writes ``data.usdc`` and ``previews/`` in the stage
directory it is given, and the parent waits for it (or stops it) before it returns or raises, so
nothing writes into a run directory that an interrupted run is removing.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from pxr import Sdf

from scenes import ASSETS_DIR, DATA_NAME, layout as lay, mapping as cmap
from scenes.frames import StageFrames, load_frames
from scenes.nodes import read_airflow, write_data_samples


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
