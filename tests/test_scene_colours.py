"""Pure pieces of scenes/: heat ramp, palette and state shading, colour mapping, frames helpers,
previews. Expected values are computed by hand (or with the standard library's colorsys)."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest

from scenes import colours, mapping
from scenes.frames import frame_rows, window_mean
from twin.model.states import NODE_STATES


def hue_deg(srgb8) -> tuple[float, float]:
    h, s, _ = colorsys.rgb_to_hsv(*(c / 255 for c in srgb8))
    return h * 360, s


def test_ramp_hits_its_stops_and_interpolates_linearly():
    assert colours.ramp_rgb(np.array([0.0, 1.0])) == pytest.approx(np.array([[0.010, 0.090, 0.85], [1.0, 0.2, 0.01]]))
    # halfway between the 0.30 indigo (0.08, 0.05, 0.78) and the 0.50 violet (0.38, 0.02, 0.60)
    assert colours.ramp_rgb(np.array(0.4)) == pytest.approx([0.23, 0.035, 0.69])
    assert colours.ramp_rgb(np.array([-1.0, 7.0])) == pytest.approx(colours.ramp_rgb(np.array([0.0, 1.0])))


def test_idle_reads_blue_and_the_top_quarter_orange_red():
    # the story's two ends by HSV hue of the sRGB colour (colorsys): blue 200-260°, orange-red <= 30°
    for x in (0.0, 0.1, 0.2):
        h, s = hue_deg(colours.to_srgb8(colours.ramp_rgb(np.array(x))))
        assert 200 <= h <= 260 and s > 0.5, (x, h)
    for x in (0.78, 0.9, 1.0):
        h, s = hue_deg(colours.to_srgb8(colours.ramp_rgb(np.array(x))))
        assert h <= 30 and s > 0.5, (x, h)
    h, s = hue_deg(colours.to_srgb8(colours.STANDBY_RGB))     # off = dim standby blue, not black
    assert 200 <= h <= 260 and s > 0.5 and max(colours.to_srgb8(colours.STANDBY_RGB)) > 40
    h, _ = hue_deg(colours.to_srgb8(colours.FAILED_RGB))       # failed: a hue the ramp never uses
    assert 40 <= h <= 70


def test_hue_class_agrees_with_colorsys():
    px = np.array([[25, 85, 237], [255, 80, 20], [240, 240, 240], [130, 20, 160], [10, 10, 12]])
    expected = []
    for p in px:
        h, s = hue_deg(p)
        vivid = s >= 0.5 and max(p) > 5
        expected.append("blue" if vivid and 200 <= h <= 260 else "orange-red" if vivid and (h <= 30 or h >= 350) else "")
    assert colours.hue_class(px).tolist() == expected == ["blue", "orange-red", "", "", ""]


def test_palette_index_states_and_desynchronised_boot_pulse():
    st = np.array([[NODE_STATES.index(s) for s in ("SERVING", "OFF", "FAILED", "BOOTING")]])
    idx = colours.node_palette_index(np.full((1, 4), 0.5), st, np.array([0]))
    diffuse, glow = colours.palette()
    step = round(0.5 * 255)
    assert idx[0, 0] == step
    assert tuple(diffuse[idx[0, 1]]) == pytest.approx(colours.STANDBY_RGB)
    assert tuple(diffuse[idx[0, 2]]) == pytest.approx(colours.FAILED_RGB)
    # emission grows with heat: base + gain * x
    assert glow[step] == pytest.approx(diffuse[step] * (colours.EMISSION_BASE + colours.EMISSION_GAIN * step / 255), rel=1e-5)
    # 16 booting nodes over 16 frames: each pulses with period 16 frames (1.5 Hz at 24 fps) but
    # they are not in step: at any frame they show more than one brightness
    f_n, n = 32, 16
    st = np.full((f_n, n), NODE_STATES.index("BOOTING"))
    lum = diffuse[colours.node_palette_index(np.zeros((f_n, n)), st, np.arange(f_n))].sum(axis=2)
    assert np.allclose(lum[:16], lum[16:])                         # period 16 frames
    assert all(len(np.unique(np.round(lum[f], 5))) > 4 for f in range(f_n))
    # brightness follows 1 - depth * (1 - cos(2 pi k / 16)) / 2: between 1 and 1 - 0.6
    ratio = lum / lum.max()
    assert ratio.min() == pytest.approx(1 - colours.PULSE_DEPTH, abs=1e-3)


def test_srgb_encoding():
    # IEC 61966-2-1: 0.5 linear -> 1.055 * 0.5**(1/2.4) - 0.055 = 0.7354 -> 188; 0.002 -> 12.92*0.002*255 = 6.6 -> 7
    assert colours.to_srgb8(np.array([0.0, 0.002, 0.5, 1.0])).tolist() == [0, 7, 188, 255]


def test_colour_range_parsing_and_errors():
    assert mapping.parse_range(None) == "auto" and mapping.parse_range("physical") == "physical"
    assert mapping.parse_range("20:85") == (20.0, 85.0)
    for bad, msg in (("hot", "expected auto"), ("9:3", "LO < HI"), ("1:nan", "LO < HI")):
        with pytest.raises(ValueError, match=msg):
            mapping.parse_range(bad)
    with pytest.raises(ValueError, match=r"--colour-by: unknown quantity 'rgb'"):
        mapping.quantity("rgb")
    assert mapping.quantity("power-density").name == "power_density"


def test_auto_range_is_fitted_to_idle_and_peak():
    # 2 frames x 10 nodes: values 0..19; the first frame's nodes are OFF, the second's SERVING
    v = np.arange(20, dtype=float).reshape(2, 10)
    st = np.array([[NODE_STATES.index("OFF")] * 10, [NODE_STATES.index("SERVING")] * 10])
    m = mapping.resolve("gpu_temp", "auto", v, st)
    # lo: 5th percentile of 0..19 = 0.05 * 19 = 0.95; hi: 99th percentile of the powered 10..19 = 10 + 0.99 * 9
    assert (m.lo, m.hi, m.mode) == pytest.approx((0.95, 18.91, "auto")) or (m.lo, m.hi) == pytest.approx((0.95, 18.91))
    assert m.normalise(np.array([0.95, 18.91, np.nan])) == pytest.approx([0.0, 1.0, 0.0])
    phys = mapping.resolve("gpu_temp", "physical", v, st, {"thresholds": {"gpu_fan_target_c": 84.0}})
    assert (phys.lo, phys.hi) == (20.0, 84.0)
    assert mapping.resolve("util", "physical", v, st).hi == 1.0
    manual = mapping.resolve("exhaust", "25:45", v, st)
    assert manual.layer_data()["twin:colour_range_mode"] == "manual" and manual.normalise(np.array(35.0)) == 0.5
    flat = mapping.resolve("gpu_temp", "auto", np.full((2, 3), 20.0), np.zeros((2, 3), int))
    assert flat.hi > flat.lo                                   # a run that never warms up still maps


def test_frame_rows_and_window_means():
    # 20 samples at 10 s, frames every 30 s: every 3rd sample (index 2, 5, ...) plus the last one
    assert frame_rows(20, 10.0, 30.0).tolist() == [2, 5, 8, 11, 14, 17, 19]
    assert frame_rows(5, 5.0, 5.0).tolist() == [0, 1, 2, 3, 4]
    v = np.array([1.0, 2, 3, 4, 5, 6])
    assert window_mean(v, np.array([2, 5])).tolist() == [2.0, 5.0]       # (1+2+3)/3, (4+5+6)/3
    assert window_mean(v, np.array([0, 5])).tolist() == [1.0, 4.0]       # (2+3+4+5+6)/5
    # real time: frames share rows; each shows its own row's interval value
    assert window_mean(v, np.array([3, 3, 4]), np.array([2, 2, 3])).tolist() == [4.0, 4.0, 5.0]


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
