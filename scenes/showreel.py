"""`twin showreel`: a camera move over a run rendered as an image sequence, encoded to MP4.

The whole run is re-staged so that one stage frame is one video frame (``stage_sample_s`` =
run length / (seconds x fps), rounded to whole telemetry samples): every per-frame rule of the
stage (no strobing fans or pulses, at most 3 flashes per second) then holds in the video too,
which rendering every n-th frame of the 720-frame stage would break. The frames are rendered in
one Blender session (scenes.render) at preview quality on the CPU and encoded with
imageio-ffmpeg (its bundled ffmpeg, libx264, yuv420p, so any player opens it).

Output (built in a temporary directory, renamed into place when complete):

    DIR/showreel.mp4      the video
    DIR/frames/*.png      the rendered frames
    DIR/stage/            the stage that was rendered (opens in usdview / Blender)
    DIR/showreel.json     what was made: run, camera, frames, fps, seconds, sizes, colour mapping
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np

MARKER = "showreel.json"
DEFAULT_SECONDS = 8.0
DEFAULT_FPS = 24
DEFAULT_SIZE = (320, 180)
DEFAULT_SAMPLES = 8
Progress = Callable[[str, int, int], None]


def stage_sample_for(duration_s: float, sample_s: float, seconds: float, fps: float) -> float:
    """Simulated seconds per video frame so the run lasts `seconds` (whole telemetry samples)."""
    frames = max(1.0, seconds * fps)
    return max(1, round(duration_s / frames / sample_s)) * sample_s


def encode_mp4(pngs: list[Path], out: Path, fps: float) -> dict:
    """Encode PNG frames to an H.264 MP4 with imageio-ffmpeg; returns size and duration."""
    import imageio_ffmpeg
    from PIL import Image
    first = Image.open(pngs[0])
    w, h = first.size
    writer = imageio_ffmpeg.write_frames(str(out), (w, h), fps=fps, codec="libx264", pix_fmt_in="rgb24",
                                         pix_fmt_out="yuv420p", quality=None, macro_block_size=2,
                                         output_params=["-crf", "20", "-preset", "medium", "-movflags", "+faststart"],
                                         ffmpeg_log_level="error")
    writer.send(None)      # start the generator
    for p in pngs:
        writer.send(np.ascontiguousarray(np.asarray(Image.open(p).convert("RGB"))).tobytes())
    writer.close()
    return {"bytes": out.stat().st_size, "seconds": len(pngs) / fps, "size": [w, h],
            "ffmpeg": imageio_ffmpeg.get_ffmpeg_version()}


def make_showreel(run_dir: Path, out_dir: Path, seconds: float = DEFAULT_SECONDS, fps: int = DEFAULT_FPS,
                  size: tuple[int, int] = DEFAULT_SIZE, samples: int = DEFAULT_SAMPLES, camera: str = "Hero",
                  colour_by: str | None = None, colour_range: str | None = None,
                  progress: Progress | None = None) -> dict:
    """Stage, render and encode into `out_dir` (an empty temporary directory; see module doc)."""
    from scenes import build_stage
    from scenes.render import render_frames
    from twin.telemetry.read import read_manifest

    t0 = time.perf_counter()
    progress = progress or (lambda *_: None)
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    man = read_manifest(run_dir)
    sim = man.get("simulation", {})
    # the stage's timeline is the nodes table's (it may have its own interval: simulation.telemetry)
    every = (man.get("sampling") or {}).get("nodes", {}).get("sample_s") or sim.get("sample_s", 1.0)
    dt = stage_sample_for(float(sim.get("duration_s", 3600.0)), float(every), seconds, fps)
    progress("staging", 0, 1)
    info = build_stage(run_dir, stage_sample_s=dt, out_dir=out_dir / "stage", previews=True,
                       colour_by=colour_by, colour_range=colour_range)
    first, last = math.ceil(info["start_time_code"] - 1e-9), math.floor(info["end_time_code"] + 1e-9)
    frames = list(range(first, last + 1))
    (out_dir / "frames").mkdir()
    pngs = [out_dir / "frames" / f"frame_{i:04d}.png" for i in range(len(frames))]
    t1 = time.perf_counter()
    render_frames(out_dir / "stage" / "refinery.usda", frames, pngs, size=size, samples=samples, camera=camera,
                  progress=lambda done, total: progress("rendering", done, total))
    t2 = time.perf_counter()
    progress("encoding", 0, 1)
    mp4 = encode_mp4(pngs, out_dir / "showreel.mp4", fps)
    record = {"run": str(run_dir), "camera": camera, "frames": len(frames), "fps": fps,
              "seconds": round(mp4["seconds"], 3), "mp4_bytes": mp4["bytes"], "size": mp4["size"],
              "samples": samples, "simulated_seconds_per_frame": dt, "colour": info["colour"],
              "beats": info["beats"], "encoder": f"imageio-ffmpeg (ffmpeg {mp4['ffmpeg']}, libx264 crf 20)",
              "wall_s": {"stage": round(t1 - t0, 1), "render": round(t2 - t1, 1),
                         "encode": round(time.perf_counter() - t2, 1)}}
    (out_dir / MARKER).write_text(json.dumps(record, indent=2) + "\n")
    return record
