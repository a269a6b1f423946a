"""Temperature -> colour ramp, node-state shading and the quantised palette (pure numpy).

GPU temperature ramp (node shell ``primvars:displayColor``; also burned into the PNG legend):

=========  ==================  =========================================================
 temp °C    RGB (linear 0..1)   meaning
=========  ==================  =========================================================
   25       (0.05, 0.20, 0.85)  idle blue: powered, no load (at/below supply-air + ~5 K)
   40       (0.05, 0.65, 0.80)  teal: light load
   55       (0.35, 0.80, 0.25)  green: steady light serving
   65       (1.00, 0.75, 0.05)  amber: serving
   75       (1.00, 0.40, 0.05)  orange: heavy serving
   84       (0.90, 0.10, 0.05)  orange-red: at the fan target (blowers at full, hardware.md)
   92       (0.60, 0.00, 0.10)  deep red: at the RTX PRO 4500 slowdown estimate (92 °C)
=========  ==================  =========================================================

The stops are anchored to physical marks (idle, the 84 °C fan target, the 92 °C slowdown) so a
colour means the same temperature in every run; the band where serving GPUs live (60-80 °C)
gets most of the hue change, so the surge reads blue -> amber -> orange-red.

Below the first stop the colour is the first stop; above the last, the last. ``primvars:heat``
is the same temperature mapped linearly to 0..1 between the first and last stop.

Node state shading: OFF is near-black (``OFF_RGB``); POWERING_ON, BOOTING and LOADING pulse the
heat colour over ``PULSE_FRAMES`` stage frames (brightness ``PULSE_LEVELS``); FAILED is magenta.

Colours are quantised to a palette so ``scenes/animate.py`` builds each USD value once:
palette index = ``shade * RAMP_STEPS + step`` for the ramp shades, followed by OFF and FAILED.
"""
from __future__ import annotations

import numpy as np

from twin.telemetry.schema import NODE_STATES

# (temperature °C, linear RGB) stops of the GPU temperature ramp
TEMP_STOPS_C = np.array([25.0, 40.0, 55.0, 65.0, 75.0, 84.0, 92.0])
TEMP_STOP_RGB = np.array([
    [0.05, 0.20, 0.85],
    [0.05, 0.65, 0.80],
    [0.35, 0.80, 0.25],
    [1.00, 0.75, 0.05],
    [1.00, 0.40, 0.05],
    [0.90, 0.10, 0.05],
    [0.60, 0.00, 0.10],
])
RAMP_STEPS = 256                       # quantisation of the ramp (0.26 K per step over 25..92 °C)
PULSE_FRAMES = 4                       # a boot pulse lasts 4 stage frames (20 s of simulation at 5 s)
PULSE_LEVELS = (1.0, 0.6, 0.3, 0.6)    # brightness per frame of the pulse
OFF_RGB = (0.03, 0.03, 0.035)
FAILED_RGB = (0.75, 0.0, 0.55)

# shades: 0 = steady, 1.. = distinct pulse brightnesses below 1
_PULSE_SHADES = tuple(sorted({lvl for lvl in PULSE_LEVELS if lvl < 1.0}, reverse=True))
SHADE_FACTORS = (1.0, *_PULSE_SHADES)
OFF_INDEX = len(SHADE_FACTORS) * RAMP_STEPS
FAILED_INDEX = OFF_INDEX + 1
PALETTE_SIZE = FAILED_INDEX + 1

PULSING_STATES = ("POWERING_ON", "BOOTING", "LOADING")

# link utilisation ramp (fabric curves): idle slate -> cyan -> yellow -> red at saturation
UTIL_STOPS = np.array([0.0, 0.3, 0.7, 1.0])
UTIL_STOP_RGB = np.array([
    [0.15, 0.20, 0.30],
    [0.10, 0.80, 0.95],
    [1.00, 0.85, 0.10],
    [1.00, 0.10, 0.05],
])
UTIL_STEPS = 32


def heat_fraction(temp_c: np.ndarray) -> np.ndarray:
    """GPU temperature (°C) -> 0..1 between the first and last ramp stop (float32)."""
    lo, hi = TEMP_STOPS_C[0], TEMP_STOPS_C[-1]
    return np.clip((np.asarray(temp_c, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def ramp_rgb(temp_c: np.ndarray) -> np.ndarray:
    """GPU temperature (°C) -> linear RGB (..., 3), piecewise linear through TEMP_STOPS_C."""
    t = np.asarray(temp_c, dtype=np.float64)
    return np.stack([np.interp(t, TEMP_STOPS_C, TEMP_STOP_RGB[:, c]) for c in range(3)], axis=-1)


def ramp_step(temp_c: np.ndarray) -> np.ndarray:
    """Quantised ramp step 0..RAMP_STEPS-1 of a temperature (°C)."""
    return np.rint(heat_fraction(temp_c) * (RAMP_STEPS - 1)).astype(np.int32)


def palette() -> np.ndarray:
    """(PALETTE_SIZE, 3) float32 RGB for every palette index (see module doc)."""
    steps = np.linspace(TEMP_STOPS_C[0], TEMP_STOPS_C[-1], RAMP_STEPS)
    base = ramp_rgb(steps)
    shades = [base * f for f in SHADE_FACTORS]
    return np.concatenate([*shades, [OFF_RGB], [FAILED_RGB]]).astype(np.float32)


def node_palette_index(temp_c: np.ndarray, states: np.ndarray, frame_index: np.ndarray) -> np.ndarray:
    """Palette index per (frame, node).

    temp_c: (F, N) GPU max temperature °C; states: (F, N) indices into NODE_STATES;
    frame_index: (F,) stage frame numbers (drive the boot pulse phase).
    """
    idx = ramp_step(temp_c)
    pulse = np.asarray(PULSE_LEVELS)[np.asarray(frame_index) % PULSE_FRAMES]          # (F,)
    shade = np.array([SHADE_FACTORS.index(p) for p in pulse], dtype=np.int32)          # (F,)
    pulsing = np.isin(states, [NODE_STATES.index(s) for s in PULSING_STATES])
    idx = np.where(pulsing, shade[:, None] * RAMP_STEPS + idx, idx)
    idx = np.where(states == NODE_STATES.index("OFF"), OFF_INDEX, idx)
    idx = np.where(states == NODE_STATES.index("FAILED"), FAILED_INDEX, idx)
    return idx.astype(np.int32)


def util_step(util: np.ndarray) -> np.ndarray:
    """Link utilisation 0..1 -> quantised step 0..UTIL_STEPS-1."""
    return np.rint(np.clip(np.nan_to_num(util), 0.0, 1.0) * (UTIL_STEPS - 1)).astype(np.int32)


def util_rgb(util: np.ndarray) -> np.ndarray:
    """Link utilisation 0..1 -> linear RGB (..., 3) through UTIL_STOPS."""
    u = np.clip(np.asarray(util, dtype=np.float64), 0.0, 1.0)
    return np.stack([np.interp(u, UTIL_STOPS, UTIL_STOP_RGB[:, c]) for c in range(3)], axis=-1)


def to_srgb8(rgb: np.ndarray) -> np.ndarray:
    """Linear RGB 0..1 -> sRGB uint8 (for the Pillow previews; USD colours stay linear)."""
    c = np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)
    s = np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)
    return np.rint(s * 255).astype(np.uint8)
