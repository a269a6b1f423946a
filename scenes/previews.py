"""Pillow previews of a stage: the colour legend and an animated floor-plan heat map.

* ``colour_legend.png``: the heat ramp labelled with the mapping in force (quantity, unit, range
  and how it was chosen), the state swatches (standby, failed, boot pulse) and the traffic rule.
* ``floor_heatmap.gif``: top-down plan; each rack footprint is cut into one strip per node (slot
  1 nearest the cold aisle), coloured like the stage's node shells (same mapping, pulse, standby
  and failed colours, the ramp quantised to GIF_RAMP_STEPS for the 256-colour GIF). Simulation
  clock and legend burned in. At most MAX_GIF_FRAMES frames (evenly chosen stage frames).

The GIF is drawn as palette-indexed numpy arrays (one label image of node strips, recoloured
per frame), so it costs milliseconds per frame.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from scenes import colours, effects
from scenes.frames import StageFrames
from scenes.mapping import ColourMapping, quantity_values

PX_PER_M = 60           # plan scale
MAX_GIF_FRAMES = 180    # a 1-h surge at 5-s frames is 720 frames: keep every 4th
GIF_FRAME_MS = 80
GIF_RAMP_STEPS = 24
LEGEND_H = 46
BG = (24, 26, 30)
TEXT = (225, 225, 225)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _clock(t_s: float) -> str:
    t = int(round(t_s))
    return f"t = {t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d}"


def ramp_strip(width: int, height: int) -> Image.Image:
    """Horizontal strip of the heat ramp, x = 0 (left) to 1 (right), sRGB."""
    row = colours.to_srgb8(colours.ramp_rgb(np.linspace(0.0, 1.0, width)))
    return Image.fromarray(np.repeat(row[None, :, :], height, axis=0), "RGB")


def write_legend(path: Path, mapping: ColourMapping, fr: StageFrames | None = None) -> Path:
    """colour_legend.png: what the shell colours, pulses and traffic lights mean in this stage."""
    img = Image.new("RGB", (640, 150), BG)
    d = ImageDraw.Draw(img)
    f, fb = _font(12), _font(14)
    q = mapping.quantity
    unit = f" {q.unit}" if q.unit else ""
    d.text((12, 8), f"node shells: {q.label} ({q.source})", fill=TEXT, font=fb)
    x0, w = 12, 420
    img.paste(ramp_strip(w, 16), (x0, 32))
    for k in range(5):
        u = k / 4
        x = x0 + int(round(u * (w - 1)))
        d.line([(x, 48), (x, 53)], fill=TEXT)
        anchor = "la" if k == 0 else "ra" if k == 4 else "ma"     # the end labels stay inside the image
        d.text((x, 55), f"{mapping.lo + u * (mapping.hi - mapping.lo):.3g}{unit}", fill=TEXT, font=f, anchor=anchor)
    d.text((x0 + w + 10, 32), f"range: {mapping.mode}", fill=TEXT, font=f)
    sx = 12
    for name, rgb in (("off (standby)", colours.STANDBY_RGB), ("failed", colours.FAILED_RGB),
                      ("booting: 1.5 Hz pulse", colours.ramp_rgb(0.0))):
        d.rectangle([sx, 76, sx + 14, 90], fill=tuple(colours.to_srgb8(rgb).tolist()), outline=(120, 120, 120))
        d.text((sx + 20, 77), name, fill=TEXT, font=f)
        sx += 190
    gain = effects.TRAFFIC_GAIN
    lines = [f"RDMA cables + pulses, PCIe P2P flashes: level = min(1, {gain:g} x sqrt(traffic / run peak))"]
    if fr is not None:
        peak_l = float(fr.links.bytes_per_s.max()) / 1e6 if fr.links is not None and fr.links.bytes_per_s.size else 0.0
        peak_p = float(fr.p2p_gb_s.max()) if fr.p2p_gb_s.size else 0.0
        lines.append(f"run peaks: link {peak_l:,.1f} MB/s, P2P {peak_p:.3g} GB/s per node; P2P <= {effects.FLASH_MAX_HZ:g} flashes/s")
    for i, text in enumerate(lines):
        d.text((12, 102 + 18 * i), text, fill=TEXT, font=f)
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


def _gif_palette() -> tuple[list[int], int]:
    """256-entry GIF palette: background, text, the ramp x shades, standby, failed."""
    x = np.linspace(0.0, 1.0, GIF_RAMP_STEPS)
    base = colours.ramp_rgb(x)
    cols = [np.array(BG) / 255, np.array(TEXT) / 255]
    ramp0 = len(cols)
    cols += [c for f in colours.SHADE_FACTORS for c in base * f]
    cols += [np.array(colours.STANDBY_RGB), np.array(colours.FAILED_RGB)]
    srgb = [colours.to_srgb8(c) if i >= 2 else np.rint(c * 255).astype(np.uint8) for i, c in enumerate(cols)]
    flat = [int(v) for c in srgb for v in c] + [0] * (3 * (256 - len(srgb)))
    return flat, ramp0


def write_floor_heatmap(path: Path, fr: StageFrames, mapping: ColourMapping) -> Path:
    """floor_heatmap.gif: nodes coloured like the shells over time, clock + legend burned in."""
    rects, (w, h) = plan_rects(fr)
    x = mapping.normalise(quantity_values(fr, mapping.quantity.name))
    idx = colours.node_palette_index(x, fr.state, np.arange(fr.times.size))
    flat, ramp0 = _gif_palette()
    # stage palette index -> GIF palette index (ramp steps coarsened to GIF_RAMP_STEPS)
    shade, step = np.divmod(np.arange(colours.PALETTE_SIZE), colours.RAMP_STEPS)
    lut = ramp0 + shade * GIF_RAMP_STEPS + np.rint(step / (colours.RAMP_STEPS - 1) * (GIF_RAMP_STEPS - 1)).astype(int)
    n_ramp = len(colours.SHADE_FACTORS) * GIF_RAMP_STEPS
    lut[colours.STANDBY_INDEX], lut[colours.FAILED_INDEX] = ramp0 + n_ramp, ramp0 + n_ramp + 1
    W, H = max(w, 420), h + LEGEND_H + 20
    labels = np.full((H, W), -1, dtype=np.int64)
    for n, (x0, y0, x1, y1) in enumerate(rects):
        labels[y0 + 20:y1 + 21, x0:x1 - 1] = n                     # 2-px gap between racks
    base = Image.new("P", (W, H), 0)
    base.putpalette(flat)
    d = ImageDraw.Draw(base)
    ly, lw = h + 26, min(220, W - 200)
    for i in range(lw):                                             # legend strip in ramp colours
        d.line([(8 + i, ly), (8 + i, ly + 11)], fill=ramp0 + int(round(i / (lw - 1) * (GIF_RAMP_STEPS - 1))))
    q = mapping.quantity
    d.text((8, ly + 14), f"{mapping.lo:.3g} .. {mapping.hi:.3g} {q.unit}  {q.name} ({mapping.mode})", fill=1, font=_font(11))
    base_px = np.asarray(base)
    at = np.flatnonzero(labels >= 0)            # plan pixels that belong to a node strip
    node_at = labels.ravel()[at]
    pick = np.unique(np.linspace(0, max(fr.times.size - 1, 0), min(MAX_GIF_FRAMES, fr.times.size)).round().astype(int))
    f = _font(14)
    title = fr.manifest.get("scenario", {}).get("name", "")
    frames = []
    for k in pick:
        px = base_px.copy()
        px.ravel()[at] = lut[idx[k]][node_at]
        img = Image.fromarray(px.astype(np.uint8), "P")
        img.putpalette(flat)
        ImageDraw.Draw(img).text((6, 3), f"{title}  {_clock(fr.times[k])}", fill=1, font=f)
        frames.append(img)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=GIF_FRAME_MS, loop=0, optimize=False)
    return path


def write_previews(out_dir: Path, fr: StageFrames, mapping: ColourMapping) -> list[Path]:
    """Both previews into out_dir (stage/previews)."""
    out_dir = Path(out_dir)
    paths = [write_legend(out_dir / "colour_legend.png", mapping, fr)]
    if fr.times.size:
        paths.append(write_floor_heatmap(out_dir / "floor_heatmap.gif", fr, mapping))
    return paths
