"""The heat ramp, node-state shading, traffic colours and the quantised palettes (pure numpy).

The heat ramp works on a normalised value ``x`` in 0..1 (``scenes.mapping`` turns a simulated
quantity into ``x`` with a stated range); it tells the brief's story, cold blue to orange-red:

=======  ===================  ========================================================
   x      RGB (linear 0..1)    reads as
=======  ===================  ========================================================
 0.00     (0.010, 0.090, 0.85)  idle blue: powered, no load (the range's low end)
 0.30     (0.080, 0.050, 0.78)  indigo: light load
 0.50     (0.380, 0.020, 0.60)  violet
 0.65     (0.750, 0.015, 0.20)  crimson: heavy load
 0.78     (1.000, 0.090, 0.012) orange-red: the surge's peak (the range's top quarter)
 1.00     (1.000, 0.200, 0.010) hot orange-red: at or above the range's high end
=======  ===================  ========================================================

No yellow or amber stop: under a key light those render as washed-out yellow, and the brief
asks for blue -> orange-red. Hue classes used by the tests and the render checks (sRGB HSV):
*blue* hue 200-260°, *orange-red* hue 0-30° or >= 350°, both with saturation >= 0.5.

Node-state shading: OFF is a dim standby blue (``STANDBY_RGB``, the node has 3 W of standby
power, so it is not black); POWERING_ON, BOOTING and LOADING pulse the ramp colour smoothly at
``PULSE_PERIOD_FRAMES`` (1.5 Hz at 24 fps, under the 3-flashes-per-second broadcast guideline),
each node at its own phase; FAILED is warning yellow, a hue the ramp never uses.

Emission: every shell also carries ``emissive`` = colour x (EMISSION_BASE + EMISSION_GAIN x x),
so hot shells glow in any lighting and idle ones only faintly.

Palette index = ``shade * RAMP_STEPS + step`` for the ramp shades (shade 0 = steady), then
STANDBY and FAILED, so ``scenes/nodes.py`` builds each USD value once.
"""
from __future__ import annotations

import numpy as np

from twin.telemetry.schema import NODE_STATES

RAMP_X = np.array([0.0, 0.30, 0.50, 0.65, 0.78, 1.0])
RAMP_RGB = np.array([
    [0.010, 0.090, 0.85],
    [0.080, 0.050, 0.78],
    [0.380, 0.020, 0.60],
    [0.750, 0.015, 0.20],
    [1.000, 0.090, 0.012],
    [1.000, 0.200, 0.010],
])
RAMP_STEPS = 256                  # quantisation of x (0.4 % of the range per step)
STANDBY_RGB = (0.010, 0.035, 0.20)
FAILED_RGB = (0.85, 0.70, 0.0)
EMISSION_BASE = 0.08              # emissive = colour x (base + gain x heat): idle barely glows
EMISSION_GAIN = 1.6
STANDBY_EMISSION = 0.35           # standby LEDs: a faint blue glow so OFF racks are not a void

PULSE_PERIOD_FRAMES = 16          # 24 fps / 16 = 1.5 pulses per second (<= 3 Hz guideline)
PULSE_DEPTH = 0.6                 # brightness swings between 1 and 1 - depth
PULSING_STATES = ("POWERING_ON", "BOOTING", "LOADING")
# distinct brightness levels of a cosine pulse sampled at PULSE_PERIOD_FRAMES phases
_PHASES = np.arange(PULSE_PERIOD_FRAMES)
_LEVEL_OF_PHASE = 1.0 - PULSE_DEPTH * (1 - np.cos(2 * np.pi * _PHASES / PULSE_PERIOD_FRAMES)) / 2
SHADE_FACTORS = tuple(sorted({round(float(v), 6) for v in _LEVEL_OF_PHASE}, reverse=True))
_SHADE_OF_PHASE = np.array([SHADE_FACTORS.index(round(float(v), 6)) for v in _LEVEL_OF_PHASE], dtype=np.int32)
STANDBY_INDEX = len(SHADE_FACTORS) * RAMP_STEPS
FAILED_INDEX = STANDBY_INDEX + 1
PALETTE_SIZE = FAILED_INDEX + 1

# traffic: RDMA pulses/cables and the PCIe P2P flashes (brightness comes from scenes.effects)
RDMA_RGB = (0.25, 0.85, 1.0)      # cyan-white light travelling through the trays
CABLE_IDLE_RGB = (0.05, 0.06, 0.08)
P2P_RGB = (0.55, 0.95, 1.0)


def ramp_rgb(x: np.ndarray) -> np.ndarray:
    """Normalised heat x (clipped to 0..1) -> linear RGB (..., 3), piecewise linear through RAMP_X."""
    v = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return np.stack([np.interp(v, RAMP_X, RAMP_RGB[:, c]) for c in range(3)], axis=-1)


def ramp_step(x: np.ndarray) -> np.ndarray:
    """Quantised ramp step 0..RAMP_STEPS-1 of a normalised heat x (NaN -> 0)."""
    v = np.clip(np.nan_to_num(np.asarray(x, dtype=np.float64)), 0.0, 1.0)
    return np.rint(v * (RAMP_STEPS - 1)).astype(np.int32)


def emission_factor(x: np.ndarray) -> np.ndarray:
    """Emission multiplier of the shell colour at normalised heat x."""
    return EMISSION_BASE + EMISSION_GAIN * np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)


def palette() -> tuple[np.ndarray, np.ndarray]:
    """(PALETTE_SIZE, 3) float32 diffuse colours and the matching emissive colours."""
    x = np.linspace(0.0, 1.0, RAMP_STEPS)
    base = ramp_rgb(x)
    glow = base * emission_factor(x)[:, None]
    diffuse = np.concatenate([*[base * f for f in SHADE_FACTORS], [STANDBY_RGB], [FAILED_RGB]])
    emissive = np.concatenate([*[glow * f for f in SHADE_FACTORS],
                               [np.array(STANDBY_RGB) * STANDBY_EMISSION], [np.array(FAILED_RGB) * 0.8]])
    return diffuse.astype(np.float32), emissive.astype(np.float32)


def node_phase(n_nodes: int, period: int, salt: int) -> np.ndarray:
    """Deterministic per-node phase 0..period-1 (a Weyl sequence, so neighbours differ).

    The golden-ratio step spreads consecutive node ids evenly over the period; `salt` gives
    each effect (boot pulse, P2P flash) its own arrangement. No RNG: same run -> same stage.
    """
    golden = 0.6180339887498949
    frac = (np.arange(n_nodes) * golden + salt * 0.3819660112501051) % 1.0
    return np.floor(frac * period).astype(np.int64)


def node_palette_index(x: np.ndarray, states: np.ndarray, frame_no: np.ndarray) -> np.ndarray:
    """Palette index per (frame, node).

    x: (F, N) normalised heat; states: (F, N) indices into NODE_STATES; frame_no: (F,) stage
    frame numbers (they drive each node's pulse phase, offset per node by node_phase).
    """
    idx = ramp_step(x)
    phase = (np.asarray(frame_no)[:, None] + node_phase(idx.shape[1], PULSE_PERIOD_FRAMES, 1)[None, :]) \
        % PULSE_PERIOD_FRAMES
    shade = _SHADE_OF_PHASE[phase]
    pulsing = np.isin(states, [NODE_STATES.index(s) for s in PULSING_STATES])
    idx = np.where(pulsing, shade * RAMP_STEPS + idx, idx)
    idx = np.where(states == NODE_STATES.index("OFF"), STANDBY_INDEX, idx)
    idx = np.where(states == NODE_STATES.index("FAILED"), FAILED_INDEX, idx)
    return idx.astype(np.int32)


def to_srgb8(rgb: np.ndarray) -> np.ndarray:
    """Linear RGB 0..1 -> sRGB uint8 (IEC 61966-2-1; the previews; USD colours stay linear)."""
    c = np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)
    s = np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)
    return np.rint(s * 255).astype(np.uint8)


def hue_class(srgb8: np.ndarray) -> np.ndarray:
    """'blue' / 'orange-red' / '' per sRGB pixel (..., 3) by HSV hue and saturation (see module doc)."""
    c = np.asarray(srgb8, dtype=np.float64) / 255.0
    mx, mn = c.max(axis=-1), c.min(axis=-1)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-9), 0.0)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    d = np.maximum(mx - mn, 1e-9)
    h = np.where(mx == r, ((g - b) / d) % 6, np.where(mx == g, (b - r) / d + 2, (r - g) / d + 4)) * 60.0
    vivid = (sat >= 0.5) & (mx > 0.02)
    out = np.full(c.shape[:-1], "", dtype=object)
    out[vivid & (h >= 200) & (h <= 260)] = "blue"
    out[vivid & ((h <= 30) | (h >= 350))] = "orange-red"
    return out
