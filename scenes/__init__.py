"""USD stage generator: reads a finished run's telemetry + assets/ and writes stage/ (see docs/stage.md)."""
from __future__ import annotations

from pathlib import Path

# node rows from which a stage's data layer is written by a helper process (scenes/data_layer.py, scenes/data_job.py):
# its start-up (~0.7 s) pays for itself. The surge has 576,000; the tests' small runs a few thousand.
HELPER_MIN_NODE_ROWS = 50_000
DATA_NAME = "data.usdc"         # the stage's data layer (stage/data.usdc)
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"   # the hand-authored assets


def build_stage(run_dir, stage_sample_s=None, progress=None, **kwargs) -> dict:
    """Write run_dir/stage (refinery.usda + telemetry.usdc + previews); see scenes.stage.build_stage."""
    from scenes.stage import build_stage as _build   # pxr imported lazily: `twin run --no-stage` stays light
    return _build(run_dir, stage_sample_s=stage_sample_s, progress=progress, **kwargs)


def start_data_helper():
    """A scenes.data_job.DataLayerJob whose helper process starts now; pass it to
    build_stage(data_job=...) to have it write data.usdc and the previews."""
    from scenes.data_job import DataLayerJob   # no pxr: the helper imports it, not this process
    return DataLayerJob.start()


def stage_beats(root: Path | str) -> dict[str, float]:
    """The story beats (name -> time code) a stage's customLayerData records (twin:beat_*)."""
    from scenes.stage import read_beats
    return read_beats(root)


__all__ = ["ASSETS_DIR", "DATA_NAME", "HELPER_MIN_NODE_ROWS", "build_stage", "stage_beats", "start_data_helper"]
