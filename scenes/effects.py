"""Visual dynamics derived from the telemetry: traffic levels, P2P flashes, fan spin (pure numpy).

Every rule here is about what a viewer sees at the stage's playback rate (24 frames per second),
and each is stated in docs/stage.md:

* **Traffic level** (RDMA links and PCIe P2P): ``level = min(1, gain * sqrt(value / peak))``,
  ``peak`` = the run's busiest frame of that traffic, ``gain`` = TRAFFIC_GAIN (2): a link at a
  quarter of the run's peak is at full brightness, one at 1 % of it at 20 %. The square root
  keeps the light links visible next to the heavy ones (link bytes span three decades in the
  surge); brightness stays monotonic in bytes.
* **Link brightness** is smooth_level(level): a 15-frame triangle, so a cable cannot flicker faster
  than 3 Hz even when its 5-s byte counts jump from frame to frame.
* **P2P flashes**: a node flashes when its flash credit (``level * FLASH_MAX_HZ / fps`` per frame)
  reaches 1, never sooner than ``MIN_FLASH_GAP_FRAMES`` after its last flash: at most 3 flashes per
  second per node (the broadcast guideline, ITU-R BT.1702 / Ofcom 2.4: no more than 3 flashes a
  second). Each node's credit starts at its own fraction, so nodes never flash in step.
* **Fan spin**: a rotor turns ``MAX_SPIN_DEG_PER_FRAME * rpm / peak_rpm`` per frame, below half the
  blade pitch (51.4° for 7 blades), so blades never appear to run backwards (no wagon wheel).
  Above BLUR_START_RPM a real 7-blade fan filmed at 24 fps aliases anyway, so a blur disc fades
  in over the rotor (opacity up to BLUR_MAX_OPACITY at BLUR_FULL_RPM). The true rpm stays data.
"""
from __future__ import annotations

import numpy as np

from scenes.colours import node_phase

FPS = 24.0
TRAFFIC_GAIN = 2.0
FLASH_MAX_HZ = 3.0
MIN_FLASH_GAP_FRAMES = int(np.ceil(FPS / FLASH_MAX_HZ))     # 8 frames between flash onsets
FLASH_SHAPE = (1.0, 0.45, 0.15)                             # envelope of one flash, per frame
FAN_BLADES = 7                                              # assets/fan.usda rotor
MAX_SPIN_DEG_PER_FRAME = 0.45 * 360.0 / FAN_BLADES          # 23.1°: under half the blade pitch
BLUR_START_RPM = 60.0 * FPS / (2 * FAN_BLADES)              # 102.9 rpm: blade rate = Nyquist at 24 fps
BLUR_FULL_RPM = 1000.0
BLUR_MAX_OPACITY = 0.55


def traffic_level(values: np.ndarray, peak: float | None = None, gain: float = TRAFFIC_GAIN) -> np.ndarray:
    """Visual level 0..1 of traffic values (any unit; peak in the same unit, default their max)."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, None)
    p = float(v.max()) if peak is None and v.size else float(peak or 0.0)
    if p <= 0:
        return np.zeros(v.shape, dtype=np.float32)
    return np.minimum(1.0, gain * np.sqrt(v / p)).astype(np.float32)


def smooth_level(level: np.ndarray, frames: int = MIN_FLASH_GAP_FRAMES) -> np.ndarray:
    """(F, K) levels through two passes of a `frames`-frame moving average (a triangle 2 x frames - 1
    wide). An 8-frame box has its first zero at 24 / 8 = 3 Hz, two of them cut the sidelobes above
    to under 5 %: link brightness follows the traffic's trend but cannot flicker faster than the
    3-flashes-a-second guideline (the 5-s telemetry windows of a busy link jump every frame)."""
    v = np.asarray(level, dtype=np.float64)
    if v.shape[0] < 2 or frames < 2:
        return v.astype(np.float32)
    kernel = np.convolve(np.ones(frames), np.ones(frames)) / frames ** 2
    pad = kernel.size // 2
    padded = np.concatenate([np.repeat(v[:1], pad, axis=0), v, np.repeat(v[-1:], pad, axis=0)])
    out = np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(v.shape[1])], axis=1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def flash_envelope(level: np.ndarray, salt: int = 2) -> np.ndarray:
    """(F, N) flash brightness 0..1 from (F, N) traffic levels (see module doc)."""
    lv = np.asarray(level, dtype=np.float64)
    f_n, n = lv.shape
    rate = lv * (FLASH_MAX_HZ / FPS)                     # flash credit gained per frame
    credit = node_phase(n, 1000, salt) / 1000.0          # desynchronised start
    since = np.full(n, MIN_FLASH_GAP_FRAMES, dtype=np.int64)
    env = np.zeros((f_n, n), dtype=np.float32)
    shape = np.asarray(FLASH_SHAPE)
    for f in range(f_n):
        credit = credit + rate[f]
        since = since + 1
        fire = (credit >= 1.0) & (since >= MIN_FLASH_GAP_FRAMES) & (lv[f] > 0)
        credit = np.where(fire, credit - 1.0, np.minimum(credit, 1.0))
        since = np.where(fire, 0, np.where(lv[f] > 0, since, np.maximum(since, shape.size)))  # a gap ends a flash
        alive = since < shape.size
        env[f] = np.where(alive, shape[np.minimum(since, shape.size - 1)], 0.0) * (lv[f] > 0)
    return env


def fan_spin(rpm: np.ndarray, peak_rpm: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(visual rotor angle °, blur-disc opacity) per frame from (F, N) rpm."""
    r = np.clip(np.nan_to_num(np.asarray(rpm, dtype=np.float64)), 0.0, None)
    peak = float(r.max()) if peak_rpm is None and r.size else float(peak_rpm or 0.0)
    step = MAX_SPIN_DEG_PER_FRAME * r / peak if peak > 0 else np.zeros_like(r)
    angle = np.cumsum(step, axis=0)        # accumulated, never wrapped: sub-frame blur stays forward
    blur = np.clip((r - BLUR_START_RPM) / (BLUR_FULL_RPM - BLUR_START_RPM), 0.0, 1.0) * BLUR_MAX_OPACITY
    return angle.astype(np.float32), blur.astype(np.float32)
