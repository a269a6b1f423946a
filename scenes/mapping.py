"""Which simulated quantity colours the node shells, over which range (pure numpy, no pxr).

``--colour-by`` picks the quantity, ``--colour-range`` its range; the result maps every node and
frame to the heat value ``x = (value - lo) / (hi - lo)`` that scenes.colours turns into a colour.

=============  ==========================================  ======  ==========================
 colour-by      telemetry                                   unit    physical range
=============  ==========================================  ======  ==========================
 gpu_temp       nodes.gpu_temp_max_c (hottest GPU die)      °C      20 .. fan target (84)
 exhaust        nodes.exhaust_c (air leaving the node)      °C      20 .. 45
 power_density  nodes.power_w / topology.height_u           W/U     0 .. 400
 util           mean of gpus.util over the node's GPUs      0..1    0 .. 1
=============  ==========================================  ======  ==========================

Physical lows are the supply air (an idle node breathes 20 °C air and sits at it) or zero; highs
are the GPU fan target from the run's manifest (``thresholds.gpu_fan_target_c``, 84 °C for the
RTX PRO 4500: blowers at full), a 45 °C hot-aisle design limit (the upper end of the 40-45 °C
hot aisles ASHRAE TC 9.9 describes), a 1,600 W PSU per 4U node (400 W per rack unit) and full
utilisation.

``auto`` (the default) fits the range to the run itself, so the story reads whatever the
physics does: ``lo`` = the 5th percentile of every node-frame (what idle and off nodes sit at),
``hi`` = the 99th percentile of the powered node-frames (the surge's peak, robust to a few
outliers such as a node's first seconds with its fans still spinning up). ``LO:HI`` fixes it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin.telemetry.schema import NODE_STATES

AUTO_LO_PERCENTILE = 5.0
AUTO_HI_PERCENTILE = 99.0
MIN_SPAN = 1e-6


@dataclass(frozen=True)
class Quantity:
    name: str
    label: str
    unit: str
    physical: tuple[float, float]
    source: str


QUANTITIES = {
    "gpu_temp": Quantity("gpu_temp", "GPU temperature (hottest die)", "°C", (20.0, 84.0),
                         "nodes.gpu_temp_max_c"),
    "exhaust": Quantity("exhaust", "exhaust air temperature", "°C", (20.0, 45.0), "nodes.exhaust_c"),
    "power_density": Quantity("power_density", "wall power per rack unit", "W/U", (0.0, 400.0),
                              "nodes.power_w / topology.height_u"),
    "util": Quantity("util", "GPU utilisation (node mean)", "", (0.0, 1.0), "mean(gpus.util) per node"),
}
DEFAULT_COLOUR_BY = "gpu_temp"


@dataclass(frozen=True)
class ColourMapping:
    """A resolved mapping: quantity, range mode (auto | physical | manual) and the range."""
    quantity: Quantity
    mode: str
    lo: float
    hi: float

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """Values -> heat x (float32, not clipped; NaN -> 0, the idle end)."""
        x = (np.asarray(values, dtype=np.float64) - self.lo) / max(self.hi - self.lo, MIN_SPAN)
        return np.nan_to_num(x, nan=0.0).astype(np.float32)

    def layer_data(self) -> dict:
        """customLayerData entries stating the mapping (keys under twin:colour_*)."""
        return {"twin:colour_by": self.quantity.name, "twin:colour_quantity": self.quantity.label,
                "twin:colour_source": self.quantity.source, "twin:colour_unit": self.quantity.unit,
                "twin:colour_range_mode": self.mode, "twin:colour_range_lo": float(self.lo),
                "twin:colour_range_hi": float(self.hi)}

    def describe(self) -> str:
        u = f" {self.quantity.unit}" if self.quantity.unit else ""
        return f"{self.quantity.name} {self.lo:.4g}..{self.hi:.4g}{u} ({self.mode})"


def parse_range(text: str | None) -> str | tuple[float, float]:
    """'auto' | 'physical' | 'LO:HI' -> the mode or the numbers; ValueError names --colour-range."""
    t = (text or "auto").strip().lower()
    if t in ("auto", "physical"):
        return t
    parts = t.split(":")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"--colour-range: expected auto, physical or LO:HI (e.g. 20:85), got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"--colour-range: need finite LO < HI, got {text!r}")
    return lo, hi


def quantity(name: str | None) -> Quantity:
    key = (name or DEFAULT_COLOUR_BY).strip().lower().replace("-", "_")
    if key not in QUANTITIES:
        raise ValueError(f"--colour-by: unknown quantity {name!r} (choose from {', '.join(QUANTITIES)})")
    return QUANTITIES[key]


def fit_auto(values: np.ndarray, states: np.ndarray) -> tuple[float, float]:
    """(lo, hi) fitted to a run: see the module doc. values/states: (F, N)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if not finite.any():
        return 0.0, 1.0
    lo = float(np.percentile(v[finite], AUTO_LO_PERCENTILE))
    powered = finite & ~np.isin(states, [NODE_STATES.index("OFF"), NODE_STATES.index("FAILED")])
    pool = v[powered] if powered.any() else v[finite]
    hi = float(np.percentile(pool, AUTO_HI_PERCENTILE))
    if hi - lo < MIN_SPAN:            # a run that never warms up: keep a visible, honest span
        hi = lo + max(abs(lo) * 0.1, 1.0)
    return lo, hi


def resolve(name: str | None, range_text: str | None, values: np.ndarray, states: np.ndarray,
            manifest: dict | None = None) -> ColourMapping:
    """The mapping for quantity `name` over `values` (F, N) of the run."""
    q = quantity(name)
    rng = parse_range(range_text)
    if rng == "auto":
        lo, hi = fit_auto(values, states)
        return ColourMapping(q, "auto", lo, hi)
    if rng == "physical":
        lo, hi = q.physical
        fan = ((manifest or {}).get("thresholds") or {}).get("gpu_fan_target_c")
        if q.name == "gpu_temp" and fan:
            hi = float(fan)
        return ColourMapping(q, "physical", lo, hi)
    return ColourMapping(q, "manual", float(rng[0]), float(rng[1]))


def quantity_values(fr, name: str) -> np.ndarray:
    """(F, N) values of a colour-by quantity from scenes.frames.StageFrames (see QUANTITIES)."""
    if name == "gpu_temp":
        return fr.gpu_temp_max_c
    if name == "exhaust":
        return fr.exhaust_c
    if name == "power_density":
        return fr.power_w / np.maximum(fr.topology.height_u, 1)[None, :]
    if name == "util":
        return fr.gpu_util
    raise ValueError(f"--colour-by: unknown quantity {name!r}")


def for_frames(fr, colour_by: str | None = None, colour_range: str | None = None) -> ColourMapping:
    """The colour mapping of a run's stage frames (scenes.frames.StageFrames): quantity
    `colour_by` (default gpu_temp) over `colour_range` (default auto)."""
    q = quantity(colour_by)
    return resolve(q.name, colour_range, quantity_values(fr, q.name), fr.state, fr.manifest)
