"""Pillow previews of a stage: an animated floor-plan heat map and the colour-ramp legend.

* ``floor_heatmap.gif``: top-down plan of the room; each rack footprint is cut into one strip per
  node (slot 1 nearest the cold aisle), coloured exactly like the stage's node shells (same palette
  index: ramp colour, boot pulse, dark when off, magenta when failed). Simulation clock and a
  legend are burned into every frame. At most MAX_GIF_FRAMES frames (evenly chosen stage frames).
* ``colour_ramp.png``: the GPU temperature ramp with its stops labelled, plus the state swatches.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from scenes import colours
from scenes.frames import StageFrames

PX_PER_M = 60           # plan scale
MAX_GIF_FRAMES = 180    # a 1-h surge at 5-s frames is 720 frames: keep every 4th
GIF_FRAME_MS = 80
LEGEND_H = 46
BG = (24, 26, 30)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _clock(t_s: float) -> str:
    t = int(round(t_s))
    return f"t = {t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d}"


def ramp_strip(width: int, height: int) -> Image.Image:
    """Horizontal strip of the temperature ramp from the first to the last stop (sRGB)."""
    temps = np.linspace(colours.TEMP_STOPS_C[0], colours.TEMP_STOPS_C[-1], width)
    row = colours.to_srgb8(colours.ramp_rgb(temps))
    return Image.fromarray(np.repeat(row[None, :, :], height, axis=0), "RGB")


def _draw_legend(img: Image.Image, x0: int, y0: int, width: int) -> None:
    """Ramp strip with stop labels (°C) and state swatches, drawn onto img at (x0, y0)."""
    d = ImageDraw.Draw(img)
    f = _font(11)
    img.paste(ramp_strip(width, 12), (x0, y0))
    lo, hi = colours.TEMP_STOPS_C[0], colours.TEMP_STOPS_C[-1]
    for t in colours.TEMP_STOPS_C:
        x = x0 + int(round((t - lo) / (hi - lo) * (width - 1)))
        d.line([(x, y0 + 12), (x, y0 + 16)], fill=(220, 220, 220))
        d.text((x, y0 + 17), f"{t:g}", fill=(220, 220, 220), font=f, anchor="ma")
    d.text((x0 + width + 6, y0), "GPU °C", fill=(220, 220, 220), font=f)
    sx = x0 + width + 60
    for label, rgb in (("off", colours.OFF_RGB), ("failed", colours.FAILED_RGB)):
        d.rectangle([sx, y0, sx + 12, y0 + 12], fill=tuple(colours.to_srgb8(rgb).tolist()), outline=(120, 120, 120))
        d.text((sx + 16, y0), label, fill=(220, 220, 220), font=f)
        sx += 60


def write_legend(path: Path) -> Path:
    """colour_ramp.png: the GPU temperature ramp (stops labelled) and the state swatches."""
    img = Image.new("RGB", (520, 44), BG)
    _draw_legend(img, 10, 8, 300)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, optimize=True)
    return path


def plan_rects(fr: StageFrames) -> tuple[np.ndarray, tuple[int, int]]:
    """(N, 4) pixel rectangles (x0, y0, x1, y1) of every node's strip and the plan size (w, h).

    +X is right, +Y is up on the image. Each rack footprint (0.6 x 1.2 m) is split along its depth
    into one strip per node slot; slot 0 sits at the rack's front (the cold-aisle side).
    """
    topo = fr.topology
    w_m, d_m, margin = 0.6, 1.2, 0.8
    xy = topo.rack_xy
    x_lo, x_hi = xy[:, 0].min() - w_m / 2 - margin, xy[:, 0].max() + w_m / 2 + margin
    y_lo, y_hi = xy[:, 1].min() - d_m / 2 - margin, xy[:, 1].max() + d_m / 2 + margin
    size = (int(np.ceil((x_hi - x_lo) * PX_PER_M)), int(np.ceil((y_hi - y_lo) * PX_PER_M)))
    per_rack = np.bincount(topo.rack_id).astype(float)[topo.rack_id]
    strip = d_m / per_rack
    front = np.where(np.array(topo.facing) == "+y", 1.0, -1.0)      # +y: front edge at the higher y
    edge = xy[:, 1] + front * d_m / 2
    ya = edge - front * topo.slot * strip
    yb = ya - front * strip
    x0 = (xy[:, 0] - w_m / 2 - x_lo) * PX_PER_M
    x1 = (xy[:, 0] + w_m / 2 - x_lo) * PX_PER_M
    top = (y_hi - np.maximum(ya, yb)) * PX_PER_M
    bot = (y_hi - np.minimum(ya, yb)) * PX_PER_M
    rects = np.rint(np.stack([x0, top, x1, bot], axis=1)).astype(int)
    rects[:, 3] -= 1    # one dark pixel between strips so the nodes read as separate
    return rects, size


def write_floor_heatmap(path: Path, fr: StageFrames) -> Path:
    """floor_heatmap.gif: nodes coloured by GPU temperature over time, clock + legend burned in."""
    rects, (w, h) = plan_rects(fr)
    temp = np.nan_to_num(fr.gpu_temp_max_c, nan=float(colours.TEMP_STOPS_C[0]))
    idx = colours.node_palette_index(temp, fr.state, np.arange(fr.times.size))
    pal = [tuple(c) for c in colours.to_srgb8(colours.palette()).tolist()]
    pick = np.unique(np.linspace(0, max(fr.times.size - 1, 0), min(MAX_GIF_FRAMES, fr.times.size)).round().astype(int))
    W, H = max(w, 420), h + LEGEND_H + 20
    f = _font(14)
    frames = []
    for k in pick:
        img = Image.new("RGB", (W, H), BG)
        d = ImageDraw.Draw(img)
        for n, (x0, y0, x1, y1) in enumerate(rects):
            d.rectangle([x0, y0 + 20, x1 - 2, y1 + 20], fill=pal[idx[k, n]])   # 2-px gap between racks
        d.text((6, 3), f"{fr.manifest.get('scenario', {}).get('name', '')}  {_clock(fr.times[k])}",
               fill=(235, 235, 235), font=f)
        _draw_legend(img, 8, h + 24, min(220, W - 200))
        frames.append(img)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=GIF_FRAME_MS, loop=0, optimize=False)
    return path


def write_previews(out_dir: Path, fr: StageFrames) -> list[Path]:
    """Both previews into out_dir (stage/previews)."""
    out_dir = Path(out_dir)
    paths = [write_legend(out_dir / "colour_ramp.png")]
    if fr.times.size:
        paths.append(write_floor_heatmap(out_dir / "floor_heatmap.gif", fr))
    return paths
