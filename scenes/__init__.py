"""USD stage generator: reads a finished run's telemetry + assets/ and writes stage/ (see docs/stage.md)."""
from __future__ import annotations

from pathlib import Path


def build_stage(run_dir, stage_sample_s=None, progress=None, **kwargs) -> dict:
    """Write run_dir/stage (refinery.usda + telemetry.usdc + previews); see scenes.stage.build_stage."""
    from scenes.stage import build_stage as _build   # pxr imported lazily: `twin run --no-stage` stays light
    return _build(run_dir, stage_sample_s=stage_sample_s, progress=progress, **kwargs)


def stage_beats(root: Path | str) -> dict[str, float]:
    """The story beats (name -> time code) a stage's customLayerData records (twin:beat_*)."""
    from scenes.stage import read_beats
    return read_beats(root)


__all__ = ["build_stage", "stage_beats"]
