"""Arrivals and sizes: envelope shape, rates, burstiness, determinism."""
import numpy as np
import pytest

from twin.spec.scenario import LengthSpec, SurgeSpec
from twin.model.workload import arrival_times_s, surge_multiplier, token_lengths

SURGE = SurgeSpec(start_s=100, ramp_s=100, peak_multiplier=12, plateau_s=200, decay_s=100)


def test_envelope_ramps_holds_and_decays():
    m = surge_multiplier(np.array([0, 100, 150, 200, 300, 400, 450, 500, 900]), SURGE)
    assert m.tolist() == pytest.approx([1, 1, 6.5, 12, 12, 12, 6.5, 1, 1])


def test_mean_rate_and_surge_ratio():
    rng = np.random.default_rng(1)
    t = arrival_times_s(20000, 5.0, SurgeSpec(start_s=30000), "gamma", 0.5, rng)
    assert t.size / 20000 == pytest.approx(5.0, rel=0.05)
    surge = arrival_times_s(600, 5.0, SURGE, "poisson", 1.0, np.random.default_rng(2))
    base = ((surge >= 0) & (surge < 100)).sum() / 100
    peak = ((surge >= 200) & (surge < 400)).sum() / 200
    assert peak / base == pytest.approx(12, rel=0.25)


@pytest.mark.parametrize("shape", [0.25, 0.5, 1.0])
def test_gamma_inter_arrivals_have_cv_one_over_sqrt_shape(shape):
    t = arrival_times_s(40000, 2.0, SurgeSpec(start_s=1e9), "gamma", shape, np.random.default_rng(3))
    gaps = np.diff(t)
    assert gaps.std() / gaps.mean() == pytest.approx(1 / np.sqrt(shape), rel=0.08)


def test_lengths_follow_the_lognormal_median_and_bounds():
    x = token_lengths(LengthSpec(median=1020, sigma=1.0, min=1, max=8192), 50000, np.random.default_rng(4))
    assert np.median(x) == pytest.approx(1020, rel=0.03)
    assert x.min() >= 1 and x.max() <= 8192


def test_same_seed_same_arrivals():
    a = arrival_times_s(600, 5.0, SURGE, "gamma", 0.5, np.random.default_rng(9))
    b = arrival_times_s(600, 5.0, SURGE, "gamma", 0.5, np.random.default_rng(9))
    assert np.array_equal(a, b)
