"""The fabric's compiled per-tick sharing (twin.model.fabric_kernel) against its numpy code:
the same rates, loads and link accumulators, bit for bit, including over-asked links (max-min)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.model import fabric_kernel as fk
from twin.model.validate import load_scenario
from twin.sim.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not fk.HAVE_NUMBA, reason="numba not installed")


def _fabric(kernels: str):
    fab = Engine(load_scenario(ROOT / "scenarios" / "fabric-congestion.yaml"), kernels=kernels).network.fabric
    assert fab.compiled == (kernels == "numba")  # the path asked for is the one that runs
    return fab


def _run(kernels: str, seed: int) -> tuple[list[bytes], int]:
    fab, rng = _fabric(kernels), np.random.default_rng(seed)
    out, squeezed = [], 0
    for k in range(40):
        active = np.flatnonzero(rng.uniform(0, 1, fab.n_rep) < 0.7)
        loading = np.flatnonzero(rng.uniform(0, 1, fab.N) < (0.5 if k % 4 == 0 else 0.0))
        # pipeline demand from idle to far beyond the spines (1e6 tok/s x 36 KB = 36 GB/s per hop)
        tok_s = rng.uniform(0, 1, fab.n_rep) * 10.0 ** rng.uniform(2, 6.5, fab.n_rep)
        fab.step(active, loading, tok_s)
        squeezed += int((fab.rep_nic_gb_s < fab.nic_gb_s).any())
        out += [a.tobytes() for a in (fab.rep_nic_gb_s, fab.loading_rate_gb_s, fab.node_load_gb_s,
                                      fab.node_nic_gb_s, fab._acc_bytes, fab._acc_flows)]
        if k % 5 == 4:
            t, b, u, f = fab.sample(float(k + 1), 5)
            out += [repr(t).encode(), b.tobytes(), u.tobytes(), f.tobytes()]
    return out, squeezed


def test_compiled_sharing_gives_the_numpy_bytes(monkeypatch):
    from twin.model import fabric_flows as ff
    fillings = {"numpy": 0, "numba": 0}
    real_np, real_nb = ff.max_min_fair_sparse_gb_s, fk.max_min_fair_gb_s

    def counted(path, real):
        def fill(*a):
            fillings[path] += 1
            return real(*a)
        return fill
    monkeypatch.setattr(ff, "max_min_fair_sparse_gb_s", counted("numpy", real_np))
    monkeypatch.setattr(fk, "max_min_fair_gb_s", counted("numba", real_nb))
    a, squeezed = _run("numpy", seed=3)
    n_numpy, fillings["numpy"] = fillings["numpy"], 0
    b, _ = _run("numba", seed=3)
    # beyond one elastic filling per flow set (<= 40), over-asked links ran the max-min branch;
    # the compiled path ran its own filling as often, and never numpy's
    assert squeezed > 5 and n_numpy > 40 and fillings == {"numpy": 0, "numba": n_numpy}
    assert len(a) == len(b) and [i for i, (x, y) in enumerate(zip(a, b)) if x != y] == []


def _random_incidence(rng: np.random.Generator, trial: int):
    """A random sparse (flow, link) incidence with capacities and demands that exercise every
    branch: flows on no link, zero and negative demands, infinite demands and capacities, zero
    capacities, a few repeated capacities (many links at one level), equal demands, and magnitudes
    where an ulp is above the 1e-12 demand margin (a flow then needs a second round to stop)."""
    n_f, n_l = int(rng.integers(1, 80)), int(rng.integers(1, 40))
    flow, link = [], []
    for f in range(n_f):
        links = rng.choice(n_l, size=min(int(rng.integers(0, 6)), n_l), replace=False)
        flow += [f] * len(links)
        link += links.tolist()
    cap = rng.uniform(0.5, 100.0, n_l) if trial % 9 < 6 else rng.choice([1.0, 2.0, 4.0, 46.0], size=n_l)
    if trial % 5 == 0:
        cap[rng.integers(0, n_l)] = np.inf
    if trial % 13 == 0:
        cap[rng.integers(0, n_l)] = 0.0
    if trial % 17 == 0:
        cap = cap * 1e7
    if trial % 2:
        demand = rng.choice([np.inf, 0.0, -1.0, 3.0, 25.0, 1e6, 12345.678], size=n_f)
    else:
        demand = rng.uniform(0.0, 50.0, n_f) * (1e5 if trial % 19 == 0 else 1.0)
    if trial % 3 == 0:
        demand[rng.random(n_f) < 0.3] = np.inf
    if trial % 11 == 0:
        demand = np.round(demand)
    return np.array(flow, dtype=np.int64), np.array(link, dtype=np.int64), n_f, cap, demand


@pytest.mark.filterwarnings("ignore:invalid value")          # numpy's inf * 0 on an unused link
def test_compiled_max_min_gives_the_numpy_rates_bit_for_bit():
    from twin.model.maxmin import max_min_fair_sparse_gb_s
    rng = np.random.default_rng(19)
    for trial in range(2000):
        args = _random_incidence(rng, trial)
        want = max_min_fair_sparse_gb_s(*args)
        got = fk.max_min_fair_gb_s(*args)
        assert got.tobytes() == want.tobytes(), (trial, want, got)


@pytest.mark.parametrize("levels", ["few", "many"])
def test_compiled_max_min_on_a_hall_sized_problem(levels):
    # 5,000 flows over 4,000 links: thousands of rounds, where the compiled filling evaluates
    # only the links that may decide each round; "few": four link capacities (ties at every level)
    from twin.model.maxmin import max_min_fair_sparse_gb_s
    rng = np.random.default_rng(7)
    n_f, n_l = 5000, 4000
    flow = np.repeat(np.arange(n_f), rng.integers(1, 6, n_f))
    link = rng.integers(0, n_l, flow.size)
    _, first = np.unique(flow * n_l + link, return_index=True)   # a path never repeats a link
    first.sort()
    flow, link = flow[first], link[first]
    cap = rng.choice([46.0, 100.0, 200.0, 400.0], n_l) if levels == "few" else rng.uniform(10.0, 400.0, n_l)
    demand = np.where(rng.random(n_f) < 0.5, np.inf, rng.uniform(0.01, 60.0, n_f))
    want = max_min_fair_sparse_gb_s(flow, link, n_f, cap, demand)
    assert fk.max_min_fair_gb_s(flow, link, n_f, cap, demand).tobytes() == want.tobytes()


def test_compiled_max_min_textbook_example():
    # Bertsekas & Gallager's example: flows 0 and 1 share link 0 (capacity 1), flows 0, 2 and 3
    # share link 1 (capacity 1): 1/3 each on link 1, and flow 1 takes link 0's remaining 2/3
    flow, link = np.array([0, 0, 1, 2, 3]), np.array([0, 1, 0, 1, 1])
    rates = fk.max_min_fair_gb_s(flow, link, 4, np.array([1.0, 1.0]), np.full(4, np.inf))
    np.testing.assert_allclose(rates, [1 / 3, 2 / 3, 1 / 3, 1 / 3])
    capped = fk.max_min_fair_gb_s(flow, link, 4, np.array([1.0, 1.0]), np.array([np.inf, 0.1, np.inf, np.inf]))
    np.testing.assert_allclose(capped, [1 / 3, 0.1, 1 / 3, 1 / 3])   # flow 1 asks for less than it could get
