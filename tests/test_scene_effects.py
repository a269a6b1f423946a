"""Pure visual rules of scenes/: traffic gain, P2P flashes (<= 3 per second), fan spin without
strobing, sample holding and swing-door compression, cable catenaries, pulses, camera easing."""
from __future__ import annotations

import numpy as np
import pytest

from scenes import effects, routes
from scenes.animate import keep_mask, swing_door_keep
from scenes.cameras import eased_path, rotate_xyz
from scenes.showreel import stage_sample_for


def test_traffic_level_gain_is_relative_to_the_peak():
    # level = min(1, 2 * sqrt(v / peak)): a quarter of the peak saturates, 1 % of it shows at 20 %
    assert effects.traffic_level(np.array([0.0, 1.0, 25.0, 100.0]), peak=100.0).tolist() == \
        pytest.approx([0.0, 0.2, 1.0, 1.0])
    assert effects.traffic_level(np.array([3.0]), peak=0.0).tolist() == [0.0]      # an idle run stays dark


def test_full_traffic_flashes_three_times_a_second_never_more():
    env = effects.flash_envelope(np.ones((96, 1)))
    onsets = np.flatnonzero(env[:, 0] == 1.0)
    # credit 0.125 a frame from the node's start fraction: every 8th frame, 3 per 24-frame second
    assert np.diff(onsets).tolist() == [8] * (len(onsets) - 1) and len(onsets) >= 11
    assert env[onsets[0] + 1, 0] == pytest.approx(0.45) and env[onsets[0] + 3, 0] == 0.0
    # half the traffic: every 16th frame
    half = np.flatnonzero(effects.flash_envelope(np.full((96, 1), 0.5))[:, 0] == 1.0)
    assert set(np.diff(half).tolist()) == {16}
    assert not effects.flash_envelope(np.zeros((50, 1))).any()                       # no bytes, no flash


def test_flashes_are_desynchronised_across_nodes():
    env = effects.flash_envelope(np.ones((40, 8)))
    first = [int(np.flatnonzero(env[:, n] == 1.0)[0]) for n in range(8)]
    assert len(set(first)) >= 4, first


def test_fan_spin_never_exceeds_half_the_blade_pitch():
    rpm = np.array([[0.0, 100.0], [500.0, 100.0], [1000.0, 100.0], [1000.0, 100.0]])
    angle, blur = effects.fan_spin(rpm)
    step = np.diff(angle, axis=0, prepend=0)
    half_pitch = 360 / 7 / 2
    assert step.max() == pytest.approx(0.45 * 360 / 7) and step.max() < half_pitch
    assert (step >= 0).all()                                   # always forwards: no wagon wheel
    # blur disc: 0 below 60 * 24 / (2 * 7) = 102.9 rpm, full 0.55 from 1000 rpm
    assert blur[:, 1].tolist() == [0.0] * 4 and blur[2, 0] == pytest.approx(0.55)
    assert blur[1, 0] == pytest.approx((500 - 60 * 24 / 14) / (1000 - 60 * 24 / 14) * 0.55, rel=1e-5)


def test_keep_mask_keeps_run_ends():
    codes = np.array([1, 1, 1, 2, 2, 3, 3, 3])[:, None]
    assert keep_mask(codes)[:, 0].tolist() == [True, False, True, True, True, True, False, True]
    arrays = np.array([[[1, 2]], [[1, 2]], [[1, 2]], [[1, 3]]])          # (F, K, G): whole array compared
    assert keep_mask(arrays)[:, 0].tolist() == [True, False, True, True]


def test_swing_door_keeps_the_kink_and_stays_within_tolerance():
    v = np.array([0.0, 1, 2, 3, 4, 5, 5, 5, 5])[:, None]
    assert np.flatnonzero(swing_door_keep(v, 0.01)[:, 0]).tolist() == [0, 5, 8]
    walk = np.cumsum(np.random.default_rng(3).normal(1.0, 0.2, (300, 4)), axis=0)
    keep = swing_door_keep(walk, 0.5)
    f = np.arange(300)
    for k in range(4):
        kept = np.flatnonzero(keep[:, k])
        assert np.abs(np.interp(f, kept, walk[kept, k]) - walk[:, k]).max() <= 0.5 + 1e-9
        assert kept.size < 150


def test_cable_spans_sag_and_are_pinned_at_both_ends():
    r = routes.chain([np.array([0.0, 0, 2.6]), np.array([1.2, 0, 2.6]), np.array([1.2, 0, 3.0])], [0.16, 0.0])
    mid = r.points[np.argmin(np.abs(r.points[:, 0] - 0.6))]
    assert mid[2] == pytest.approx(2.6 - 0.16)                  # 4 s t (1 - t) at t = 1/2
    assert r.pinned[0] == r.pinned[-1] == 1.0 and r.pinned.sum() == 3
    assert r.length_m == pytest.approx(0.4 + 1.2, rel=0.05)


def test_pulses_travel_along_their_route_without_wagon_wheel():
    r = routes.chain([np.array([0.0, 0, 0]), np.array([3.0, 0, 0])], [0.0])
    tracks = routes.pulse_tracks([r, routes.chain([np.zeros(3), np.array([0.2, 0, 0])], [0.0])])
    assert set(tracks.link_of_pulse.tolist()) == {0}            # the 0.2 m route is too short for pulses
    n = tracks.length.size                                       # round(3 / 0.5) = 6 pulses, 3 each way
    assert n == 6 and tracks.direction.tolist() == [1, -1] * 3
    p0, p1 = routes.pulse_positions(tracks, 0), routes.pulse_positions(tracks, 1)
    assert np.allclose(p0[:, 1:], 0) and (p0[:, 0] >= 0).all() and (p0[:, 0] <= 3).all()
    moved = (p1[:, 0] - p0[:, 0]) * tracks.direction
    assert moved == pytest.approx([routes.PULSE_SPEED_M_PER_FRAME] * 6)
    assert 2 * 3.0 / n >= 4 * routes.PULSE_SPEED_M_PER_FRAME     # one-way spacing >= 4 frames of travel


def test_camera_orientation_and_eased_keys():
    # rotateXYZ (90 + pitch, 0, azimuth - 90): camera -Z onto azimuth 0 (+X), +Y up onto +Z
    from pxr import Gf
    rx, ry, rz = rotate_xyz(0.0, 0.0)
    m = Gf.Matrix4d().SetRotate(Gf.Rotation(Gf.Vec3d(1, 0, 0), rx) * Gf.Rotation(Gf.Vec3d(0, 1, 0), ry)
                                * Gf.Rotation(Gf.Vec3d(0, 0, 1), rz))
    assert tuple(m.TransformDir(Gf.Vec3d(0, 0, -1))) == pytest.approx((1, 0, 0), abs=1e-9)
    assert tuple(m.TransformDir(Gf.Vec3d(0, 1, 0))) == pytest.approx((0, 0, 1), abs=1e-9)
    path = eased_path([0, 10, 20], np.array([[0.0], [1.0], [3.0]]), 21)[:, 0]
    assert path[[0, 10, 20]].tolist() == [0.0, 1.0, 3.0]
    # smoothstep: zero speed at the keys, fastest mid-segment (3u^2 - 2u^3 at u = 0.1 -> 0.028)
    assert path[1] == pytest.approx(0.028) and path[11] - path[10] == pytest.approx(2 * 0.028)
    assert np.diff(path).max() == pytest.approx(np.diff(path)[14:16].max())


def test_showreel_frame_spacing_whole_samples():
    # 3600 s in 8 s at 24 fps: 3600 / 192 = 18.75 -> 19 whole 1-s samples per frame
    assert stage_sample_for(3600.0, 1.0, 8.0, 24) == 19.0
    assert stage_sample_for(600.0, 5.0, 1.0, 12) == 50.0


def test_link_brightness_cannot_flicker_faster_than_three_hertz():
    flicker = (np.arange(96) % 2).astype(float)[:, None]          # 12 Hz on/off at 24 fps
    s = effects.smooth_level(flicker)[20:-20, 0]
    assert s.max() - s.min() < 0.02 and s.mean() == pytest.approx(0.5, abs=0.01)
    step = np.r_[np.zeros(30), np.ones(30)][:, None]              # a trend still comes through in 15 frames
    ramp = effects.smooth_level(step)[:, 0]
    assert ramp[21] == 0.0 and ramp[37] == 1.0 and 0.4 < ramp[30] < 0.6
