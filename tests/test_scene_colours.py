"""Pure pieces of scenes/: colour ramp, palette, sRGB, frame selection, window means, holds, previews."""
from __future__ import annotations

import numpy as np
import pytest

from scenes import colours
from scenes.frames import frame_rows, window_mean
from twin.model.states import NODE_STATES


def test_ramp_hits_its_stops_and_interpolates_linearly():
    assert colours.ramp_rgb(np.array([25.0, 92.0])) == pytest.approx(np.array([[0.05, 0.20, 0.85], [0.60, 0.00, 0.10]]))
    # halfway between the 40 °C teal (0.05, 0.65, 0.80) and 55 °C green (0.35, 0.80, 0.25)
    assert colours.ramp_rgb(np.array(47.5)) == pytest.approx([0.20, 0.725, 0.525])
    # the fan target (84 °C) is orange-red, the slowdown (92 °C) deep red
    assert colours.ramp_rgb(np.array(84.0)) == pytest.approx([0.90, 0.10, 0.05])
    assert colours.ramp_rgb(np.array([10.0, 120.0])) == pytest.approx(colours.ramp_rgb(np.array([25.0, 92.0])))
    # heat: 25 °C -> 0, 92 °C -> 1, (58.5 - 25) / 67 = 0.5
    assert colours.heat_fraction(np.array([25.0, 58.5, 92.0, 200.0])) == pytest.approx([0, 0.5, 1, 1])


def test_palette_index_states():
    temp = np.array([[58.5, 58.5, 58.5, 58.5]])
    st = np.array([[NODE_STATES.index(s) for s in ("SERVING", "OFF", "FAILED", "BOOTING")]])
    idx = colours.node_palette_index(temp, st, np.array([1]))
    pal = colours.palette()
    step = round(0.5 * 255)       # 58.5 °C is half way up the ramp
    assert idx[0, 0] == step
    assert tuple(pal[idx[0, 1]]) == pytest.approx(colours.OFF_RGB)
    assert tuple(pal[idx[0, 2]]) == pytest.approx(colours.FAILED_RGB)
    # booting at frame 1: brightness PULSE_LEVELS[1] = 0.6 of the steady colour
    assert pal[idx[0, 3]] == pytest.approx(0.6 * pal[step], rel=1e-6)


def test_srgb_encoding():
    # IEC 61966-2-1: 0.5 linear -> 1.055 * 0.5**(1/2.4) - 0.055 = 0.7354 -> 188; 0.002 -> 12.92*0.002*255 = 6.6 -> 7
    assert colours.to_srgb8(np.array([0.0, 0.002, 0.5, 1.0])).tolist() == [0, 7, 188, 255]


def test_frame_rows_and_window_means():
    # 20 samples at 10 s, frames every 30 s: every 3rd sample (index 2, 5, ...) plus the last one
    assert frame_rows(20, 10.0, 30.0).tolist() == [2, 5, 8, 11, 14, 17, 19]
    assert frame_rows(5, 5.0, 5.0).tolist() == [0, 1, 2, 3, 4]
    v = np.array([1.0, 2, 3, 4, 5, 6])
    assert window_mean(v, np.array([2, 5])).tolist() == [2.0, 5.0]       # (1+2+3)/3, (4+5+6)/3
    assert window_mean(v, np.array([0, 5])).tolist() == [1.0, 4.0]       # (2+3+4+5+6)/5


def test_keep_mask_keeps_run_ends():
    from scenes.animate import keep_mask
    codes = np.array([1, 1, 1, 2, 2, 3, 3, 3])[:, None]
    assert keep_mask(codes)[:, 0].tolist() == [True, False, True, True, True, True, False, True]
    arrays = np.array([[[1, 2]], [[1, 2]], [[1, 2]], [[1, 3]]])          # (F, K, G): whole array compared
    assert keep_mask(arrays)[:, 0].tolist() == [True, False, True, True]


def test_floor_plan_strips(tmp_path):
    from scenes.frames import load_frames
    from scenes.previews import PX_PER_M, plan_rects
    from synthetic_run import make_synthetic_run
    fr = load_frames(make_synthetic_run(tmp_path / "syn"))
    rects, (w, h) = plan_rects(fr)
    # racks 0.6 m wide at 60 px/m = 36 px; 3 nodes split the 1.2 m depth into 24-px strips
    assert (rects[:, 2] - rects[:, 0]).tolist() == [36] * 12
    assert (rects[:, 3] - rects[:, 1] + 1).tolist() == [24] * 12
    # row A (y < 0) is drawn below row B, and slot 0 is the strip nearest the aisle (y = 0)
    assert rects[0, 1] > rects[6, 1]
    assert rects[0, 1] < rects[1, 1] < rects[2, 1]
    assert w == round((0.6 + 0.6 + 1.6) * PX_PER_M) and h == round((2.4 + 1.2 + 1.6) * PX_PER_M)
