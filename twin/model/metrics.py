"""ONE definition of every summary metric: key, label, unit, better direction, format, percentile.

`twin run` (its summary table), `twin compare`, `twin report`, `twin sweep` (axis labels) and
`twin export` read their labels, units and better-directions from :data:`METRICS`, and every
summary percentile is :func:`percentile`, so two commands can never print two different p99s for
the same run.

Keys are the manifest ``summary`` keys (docs/telemetry.md) and carry their unit in the name
(``_w``, ``_kwh``, ``_s``, ``_usd``); a metric's ``unit``/``scale`` say how it is *shown*
(``peak_it_power_w`` is shown in kW). A few metrics are derived from other keys by
:func:`derived` (rates and per-token figures that make runs of different size comparable).
Pure: numbers in, numbers out, no I/O.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

LOWER, HIGHER, NEITHER = "lower", "higher", ""


def nearest_rank(n: int | np.ndarray, q: float) -> int | np.ndarray:
    """0-based index of the nearest-rank percentile `q` (0..100) in `n` sorted values.

    The ceil(q/100 * n)-th smallest value (1-based), clamped to the largest. Source: the
    nearest-rank method (NIST/SEMATECH e-Handbook of Statistical Methods, 7.2.6.2; Hyndman &
    Fan 1996, definition 1 for q in (0, 100]). `n` may be an array of counts (one index each).
    """
    if np.ndim(n) == 0:
        return max(0, min(n - 1, int(math.ceil(q / 100 * n)) - 1))
    n = np.asarray(n, dtype=np.int64)  # the same double products as the scalar form, elementwise
    return np.maximum(np.minimum(n - 1, np.ceil(q / 100 * n).astype(np.int64) - 1), 0)


def percentile(values: np.ndarray, q: float) -> float | None:
    """Nearest-rank percentile `q` (0..100) of the finite `values`; None when there are none.

    The value of an actual request (no interpolation), so it is deterministic and exactly
    reproducible from the requests table (see :func:`nearest_rank`). The engine's summary, its
    per-interval percentiles, compare, report and sweep all use this one rule.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    k = nearest_rank(v.size, q)
    return float(np.partition(v, k)[k])   # the k-th smallest, as np.sort(v)[k], in linear time


@dataclass(frozen=True)
class Metric:
    """One summary number.

    Attributes:
        key: manifest summary key, unit in the name.
        label: human label.
        unit: unit as shown (after `scale`).
        better: "lower", "higher" or "" (neither: a size or a count of what happened).
        digits: decimals when shown.
        scale: shown value = stored value x scale (W -> kW is 1e-3).
        cost: True for money keys (compare groups them and explains them).
    """

    key: str
    label: str
    unit: str = ""
    better: str = NEITHER
    digits: int = 1
    scale: float = 1.0
    cost: bool = False

    def shown(self, value: Any) -> float | None:
        """`value` in the display unit; None when missing or not finite."""
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value * self.scale

    def format(self, value: Any, unit: bool = True, significant: int = 0) -> str:
        """'94.2 kW', '1,234', 'n/a': the value as every command prints it.

        `significant`: show at least that many significant digits (compare uses 4, so that a
        small run's 0.41 kWh is not printed as 0.4).
        """
        v = self.shown(value)
        if v is None:
            return "n/a"
        digits = self.digits
        if significant and v and not float(v).is_integer():
            digits = min(6, max(digits, significant - 1 - math.floor(math.log10(abs(v)))))
        text = f"{v:,.{digits}f}"
        return f"{text} {self.unit}" if unit and self.unit else text

    @property
    def axis_label(self) -> str:
        """'latency p99 (s)': for plot axes."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


def _m(*args: Any, **kw: Any) -> Metric:
    return Metric(*args, **kw)


_ALL: tuple[Metric, ...] = (
    # size of the run
    _m("duration_s", "simulated duration", "s", NEITHER, 0),
    # requests (counts of what happened)
    _m("requests_arrived", "requests arrived", "", NEITHER, 0),
    _m("requests_completed", "requests completed", "", HIGHER, 0),
    _m("requests_dropped", "requests dropped", "", LOWER, 0),
    _m("drop_pct", "drop rate", "%", LOWER, 2),
    _m("requests_queued", "still queued at end", "", LOWER, 0),
    _m("requests_in_flight", "in flight at end", "", NEITHER, 0),
    _m("request_retries", "request retries", "", LOWER, 0),
    _m("preemptions", "KV preemptions (recompute)", "", LOWER, 0),
    _m("peak_arrival_rate_per_s", "peak arrival rate", "req/s", NEITHER, 2),
    # latency: nearest-rank percentiles (percentile()) over completed requests
    _m("ttft_p50_s", "TTFT p50", "s", LOWER, 2),
    _m("ttft_p99_s", "TTFT p99", "s", LOWER, 2),
    _m("latency_p50_s", "latency p50", "s", LOWER, 1),
    _m("latency_p99_s", "latency p99", "s", LOWER, 1),
    # power and energy (interval means; energy = sum(power_w * sample_s))
    _m("peak_it_power_w", "peak IT (wall) power", "kW", LOWER, 1, 1e-3),
    _m("peak_facility_power_w", "peak facility power", "kW", LOWER, 1, 1e-3),
    _m("it_energy_kwh", "IT energy", "kWh", LOWER, 1),
    _m("facility_energy_kwh", "facility energy", "kWh", LOWER, 1),
    _m("pue", "PUE (energy-weighted)", "", LOWER, 2),
    # heat
    _m("peak_gpu_temp_c", "peak GPU temperature", "°C", LOWER, 1),
    _m("throttled_gpu_s", "throttled GPU-seconds", "GPU·s", LOWER, 0),
    _m("thermal_shutdowns", "thermal shutdowns", "", LOWER, 0),
    # nodes
    _m("nodes_ignited", "ignitions", "units", NEITHER, 0),
    _m("peak_nodes_on", "peak nodes on", "", NEITHER, 0),
    _m("peak_nodes_serving", "peak nodes serving", "", NEITHER, 0),
    _m("faults", "faults", "", NEITHER, 0),
    _m("units_lost", "serving units lost", "", LOWER, 0),
    # work and money (twin.model.economics)
    _m("tokens_served", "tokens served", "tok", HIGHER, 0),
    _m("prompt_tokens_served", "prompt tokens served", "tok", NEITHER, 0),
    _m("output_tokens_per_s", "tokens per second", "tok/s", HIGHER, 1),
    _m("tokens_per_kwh", "tokens per facility kWh", "tok/kWh", HIGHER, 0),
    _m("tokens_per_it_kwh", "tokens per IT kWh", "tok/kWh", HIGHER, 0),
    _m("wh_per_1k_tokens", "energy per 1k tokens", "Wh", LOWER, 3),
    _m("energy_cost_usd", "energy cost", "USD", LOWER, 2, cost=True),
    _m("amortised_capex_usd", "capex share (amortised)", "USD", LOWER, 2, cost=True),
    _m("total_cost_usd", "total cost", "USD", LOWER, 2, cost=True),
    _m("fleet_capex_usd", "fleet capex", "USD", LOWER, 0, cost=True),
    _m("cost_per_mtok_energy_usd", "cost per Mtok (energy)", "USD", LOWER, 3, cost=True),
    _m("cost_per_mtok_usd", "cost per Mtok (total)", "USD", LOWER, 3, cost=True),
    # GPU time by node state (GPU_HOUR_STATES)
    _m("gpu_hours_serving", "GPU-hours serving", "GPU·h", NEITHER, 1),
    _m("gpu_hours_warm", "GPU-hours warm (idle, loaded)", "GPU·h", LOWER, 1),
    _m("gpu_hours_booting", "GPU-hours booting", "GPU·h", LOWER, 1),
    _m("gpu_hours_loading", "GPU-hours loading", "GPU·h", LOWER, 1),
    _m("gpu_hours_draining", "GPU-hours draining", "GPU·h", NEITHER, 1),
    # training jobs (twin.sim.training), present when a scenario has them
    _m("training_jobs", "training jobs", "", NEITHER, 0),
    _m("training_jobs_done", "training jobs done", "", HIGHER, 0),
    _m("training_tokens", "training tokens", "tok", HIGHER, 0),
    _m("training_steps", "training steps", "", HIGHER, 1),
    _m("training_gpu_hours", "training GPU-hours", "GPU·h", NEITHER, 2),
    _m("training_energy_kwh", "training GPU energy", "kWh", LOWER, 2),
    _m("training_preempted_s", "training time preempted", "s", NEITHER, 0),
    # the engine's own speed (not a property of the refinery)
    _m("wall_time_s", "simulation wall time", "s", NEITHER, 1),
)

METRICS: dict[str, Metric] = {m.key: m for m in _ALL}


def metric(key: str) -> Metric:
    """The metric `key`, or a plain one labelled with the key (a summary key added later)."""
    return METRICS.get(key) or Metric(key, key.replace("_", " "))


def _ratio(num: Any, den: Any, scale: float = 1.0) -> float | None:
    if num is None or not den:
        return None
    value = scale * float(num) / float(den)
    return value if math.isfinite(value) else None


def derived(summary: Mapping[str, Any], duration_s: float | None) -> dict[str, float | None]:
    """Rates and per-token figures derived from summary keys, so runs of different size compare.

    drop_pct = 100 x dropped / arrived; output_tokens_per_s = tokens_served / duration;
    wh_per_1k_tokens = facility kWh x 1000 / (tokens / 1000).
    """
    return {
        "duration_s": duration_s,
        "drop_pct": _ratio(summary.get("requests_dropped"), summary.get("requests_arrived"), 100.0),
        "output_tokens_per_s": _ratio(summary.get("tokens_served"), duration_s),
        "wh_per_1k_tokens": _ratio(summary.get("facility_energy_kwh"), summary.get("tokens_served"), 1e6),
    }
