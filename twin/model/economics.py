"""Economics of a run: energy cost, tokens per kWh, cost per million tokens, GPU-hours by state.

Pure functions of numbers (units in the names: ``_usd``, ``_kwh``, ``_s``, ``_h``); no I/O.
:func:`run_economics` assembles the summary keys documented in docs/telemetry.md and is called
from :func:`twin.results.collect`.

Conventions (also in docs/planning.md):
- Tokens served = output tokens of *completed* requests (a dropped or unfinished request earned
  nothing); prompt tokens of completed requests are reported alongside.
- Energy is facility energy (IT x PUE: cooling, distribution losses and fixed overhead
  included), because that is what the electricity bill charges.
- Capex is amortised straight-line over calendar time for every installed node, whether it is
  OFF or SERVING: idle hardware still depreciates, which is exactly the cost of a warm pool or an
  oversized fleet.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

SECONDS_PER_YEAR = 365.25 * 86400.0  # Julian year, the usual convention for straight-line depreciation

# Node states grouped the way the design discussion counts GPU time (twin.telemetry.NODE_STATES).
GPU_HOUR_STATES: dict[str, tuple[str, ...]] = {
    "booting": ("POWERING_ON", "BOOTING"),
    "loading": ("LOADING",),
    "warm": ("WARM",),
    "serving": ("SERVING",),
    "draining": ("DRAINING",),
}


def energy_cost_usd(energy_kwh: float, electricity_usd_per_kwh: float) -> float:
    """Cost of `energy_kwh` at a flat tariff. Source: definition (kWh x USD/kWh)."""
    return energy_kwh * electricity_usd_per_kwh


def amortised_capex_usd(capex_usd: float, duration_s: float, amortisation_years: float) -> float:
    """Straight-line depreciation of `capex_usd` over `amortisation_years`, charged for `duration_s`.

    Source: straight-line depreciation (cost / useful life) pro-rated to the run's wall-clock span.
    """
    return capex_usd * duration_s / (amortisation_years * SECONDS_PER_YEAR)


def tokens_per_kwh(tokens: float, energy_kwh: float) -> float | None:
    """Tokens produced per kWh; None when no energy was used."""
    return tokens / energy_kwh if energy_kwh > 0 else None


def cost_per_million_tokens_usd(cost_usd: float, tokens: float) -> float | None:
    """USD per 1e6 tokens; None when no token was served (the cost is not per anything)."""
    return cost_usd / tokens * 1e6 if tokens > 0 else None


def tflops_per_kusd(tflops: float, price_usd: float) -> float:
    """Price-performance in TFLOPS per 1,000 USD.

    The design issue's figure for the RTX PRO 4500: 53.8 FP32 TFLOPS / 2.999 kUSD = 17.9.
    """
    return tflops / (price_usd / 1000.0)


def gpu_hours_by_state(node_state_counts: Mapping[str, np.ndarray], gpus_per_node: int,
                       sample_s: float) -> dict[str, float]:
    """GPU-hours spent per state group (GPU_HOUR_STATES), from per-sample node counts per state.

    Each sample row is an interval of `sample_s` seconds (docs/telemetry.md), so
    GPU-h = sum(nodes in state) x gpus_per_node x sample_s / 3600.
    """
    out = {}
    for group, states in GPU_HOUR_STATES.items():
        node_samples = sum(float(np.sum(node_state_counts[s])) for s in states)
        out[group] = node_samples * gpus_per_node * sample_s / 3600.0
    return out


def run_economics(*, facility_energy_kwh: float, it_energy_kwh: float, output_tokens: float,
                  prompt_tokens: float, duration_s: float, n_nodes: int, node_capex: float | None,
                  electricity_usd_per_kwh: float, amortisation_years: float,
                  gpu_hours: Mapping[str, float]) -> dict[str, float | None]:
    """Summary keys for one run (docs/telemetry.md, "economics" keys).

    `output_tokens` / `prompt_tokens`: sums over completed requests. `node_capex`: USD per node
    (None when the catalogue has no price: capex-based keys are then None).
    """
    energy_usd = energy_cost_usd(facility_energy_kwh, electricity_usd_per_kwh)
    fleet_usd = node_capex * n_nodes if node_capex is not None else None
    capex_usd = (amortised_capex_usd(fleet_usd, duration_s, amortisation_years)
                 if fleet_usd is not None else None)
    total_usd = energy_usd + capex_usd if capex_usd is not None else None
    return {
        "tokens_served": int(output_tokens),
        "prompt_tokens_served": int(prompt_tokens),
        "energy_cost_usd": energy_usd,
        "tokens_per_kwh": tokens_per_kwh(output_tokens, facility_energy_kwh),
        "tokens_per_it_kwh": tokens_per_kwh(output_tokens, it_energy_kwh),
        "fleet_capex_usd": fleet_usd,
        "amortised_capex_usd": capex_usd,
        "total_cost_usd": total_usd,
        "cost_per_mtok_energy_usd": cost_per_million_tokens_usd(energy_usd, output_tokens),
        "cost_per_mtok_usd": (cost_per_million_tokens_usd(total_usd, output_tokens)
                              if total_usd is not None else None),
        **{f"gpu_hours_{k}": v for k, v in gpu_hours.items()},
    }
