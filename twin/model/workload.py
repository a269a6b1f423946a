"""Request arrivals and sizes: a bursty renewal process modulated by a surge envelope.

Arrivals: a base rate times the surge envelope m(t) gives the intensity lambda(t). We draw a
unit-rate renewal process (Gamma inter-arrivals with shape k and mean 1, so the coefficient of
variation is 1/sqrt(k); BurstGPT fits k = 0.25-0.5) and map it through the inverse of the
cumulative intensity Lambda(t) (time rescaling; Brown et al. 2002). k = 1 is Poisson.

Sizes: truncated lognormal prompt and output token counts (Azure LLM inference traces 2023:
conversation median ~1,020 input / 129 output tokens). Pools are drawn by their `mix` weights.

Registries: ARRIVAL_PROCESSES maps the YAML `workload.arrival.process` name to a sampler.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from twin.spec.scenario import LengthSpec, ScenarioSpec, SurgeSpec


def surge_multiplier(t_s: np.ndarray, surge: SurgeSpec) -> np.ndarray:
    """Envelope m(t): 1 before start, linear ramp to peak, plateau, linear decay back to 1."""
    t = np.asarray(t_s, dtype=float)
    peak = surge.peak_multiplier
    t1 = surge.start_s + surge.ramp_s
    t2 = t1 + surge.plateau_s
    t3 = t2 + surge.decay_s
    xs = [surge.start_s, t1, t2, t3]
    ys = [1.0, peak, peak, 1.0]
    # np.interp needs increasing xs; zero-length phases collapse to steps
    eps = 1e-9
    xs = [xs[0], max(xs[1], xs[0] + eps), max(xs[2], xs[1] + 2 * eps), max(xs[3], xs[2] + 3 * eps)]
    return np.interp(t, xs, ys, left=1.0, right=1.0)


def rate_per_s(t_s: np.ndarray, base_rate_per_s: float, surge: SurgeSpec) -> np.ndarray:
    """Arrival intensity lambda(t) = base * m(t), requests per second."""
    return base_rate_per_s * surge_multiplier(t_s, surge)


def _unit_gamma(rng: np.random.Generator, n: int, shape: float) -> np.ndarray:
    return rng.gamma(shape, 1.0 / shape, size=n)


def _unit_poisson(rng: np.random.Generator, n: int, shape: float) -> np.ndarray:
    return rng.exponential(1.0, size=n)


ARRIVAL_PROCESSES: dict[str, Callable[[np.random.Generator, int, float], np.ndarray]] = {
    "gamma": _unit_gamma,
    "poisson": _unit_poisson,
}


def arrival_times_s(duration_s: float, base_rate_per_s: float, surge: SurgeSpec, process: str, shape: float,
                    rng: np.random.Generator, grid_s: float = 0.25) -> np.ndarray:
    """Arrival times in [0, duration_s) by time-rescaling a unit-rate renewal process."""
    grid = np.arange(0.0, duration_s + grid_s, grid_s)
    lam = rate_per_s(grid, base_rate_per_s, surge)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (lam[1:] + lam[:-1]) * np.diff(grid))])
    total = cum[-1]
    draw = ARRIVAL_PROCESSES[process]
    # draw in blocks until the unit-rate process passes Lambda(duration)
    n_guess = int(total + 6 * np.sqrt(total / min(shape, 1.0)) + 16)
    gaps = draw(rng, n_guess, shape)
    tau = np.cumsum(gaps)
    while tau[-1] < total:
        more = draw(rng, n_guess, shape)
        tau = np.concatenate([tau, tau[-1] + np.cumsum(more)])
    tau = tau[tau < total]
    t = np.interp(tau, cum, grid)
    return t[t < duration_s]


def token_lengths(spec: LengthSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """Lognormal(median, sigma) token counts, rounded and truncated to [min, max]."""
    x = rng.lognormal(mean=np.log(spec.median), sigma=spec.sigma, size=n)
    return np.clip(np.rint(x), spec.min, spec.max).astype(np.int64)


def mean_tokens(spec: LengthSpec, rng_seed: int = 0, n: int = 20000) -> float:
    """Mean of the truncated distribution (Monte Carlo with a private fixed seed; for planning only)."""
    return float(token_lengths(spec, n, np.random.default_rng(rng_seed)).mean())


@dataclass(frozen=True)
class Requests:
    """All requests of a run, sorted by arrival."""
    arrival_s: np.ndarray     # float64
    prompt_tokens: np.ndarray  # int64
    output_tokens: np.ndarray  # int64, >= 1
    pool: np.ndarray          # int64 pool id

    @property
    def n(self) -> int:
        return int(self.arrival_s.size)


def generate_requests(spec: ScenarioSpec, seed_seq: np.random.SeedSequence) -> Requests:
    """Draw every request of the run from independent child streams of `seed_seq`.

    Separate streams for times, prompt lengths, output lengths and pools keep each draw stable
    when another part of the workload spec changes.
    """
    w = spec.workload
    s_time, s_prompt, s_out, s_pool = (np.random.default_rng(s) for s in seed_seq.spawn(4))
    t = arrival_times_s(spec.simulation.duration_s, w.base_rate_per_s, w.surge, w.arrival.process,
                        w.arrival.shape, s_time)
    n = t.size
    mix = np.array([p.mix for p in spec.pools], dtype=float)
    pool = s_pool.choice(len(mix), size=n, p=mix / mix.sum()) if len(mix) > 1 else np.zeros(n, dtype=np.int64)
    return Requests(arrival_s=t, prompt_tokens=token_lengths(w.prompt_tokens, n, s_prompt),
                    output_tokens=np.maximum(token_lengths(w.output_tokens, n, s_out), 1),
                    pool=pool.astype(np.int64))
