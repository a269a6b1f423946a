"""The lifecycle alone: state-machine legality, ignition steps, failure holds, traffic following.

The parts come from an Engine built for scenarios/tiny.yaml (4 one-node units, refinery-node:
power-on 10 s, POST + OS 120 s, weights at 4.5 GB/s, vLLM first-start warm-up 98.6 s) but are driven by hand: no
tick runs, state is set directly and expectations are computed from those catalogue figures.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.model.states import (
    BOOTING,
    DRAINING,
    FAILED,
    LEGAL,
    LOADING,
    NODE_STATES,
    OFF,
    POWERING_ON,
    SERVING,
    WARM,
)
from twin.model.validate import scenario_from_text
from twin.sim.engine import Engine

TINY = (Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml").read_text()


class ZeroJitter:
    """A boot RNG whose draws are all 0: every boot takes exactly POST + OS."""
    def normal(self, loc: float, scale: float, size: int) -> np.ndarray:
        return np.zeros(size)


def engine(text: str = TINY) -> Engine:
    e = Engine(scenario_from_text(text))
    e.life.boot_rng = ZeroJitter()
    return e


def changes(e: Engine, node: int) -> list[tuple[float, str]]:
    return [(t, d) for t, k, n, _, _, d in e.log.rows if k == "state_change" and n == node]


@pytest.mark.parametrize("old", range(len(NODE_STATES)))
def test_set_state_allows_exactly_the_legal_transitions(old):
    e = engine()
    for new in range(len(NODE_STATES)):
        e.life.state[0] = old
        if new == old:
            e.life.set_state(0, new)  # no-op, no event
        elif (old, new) in LEGAL:
            e.life.set_state(0, new)
            assert e.log.rows[-1][1:] == ("state_change", 0, 0, -1, f"{NODE_STATES[old]}->{NODE_STATES[new]}")
        else:
            with pytest.raises(RuntimeError, match=f"illegal transition {NODE_STATES[old]}->{NODE_STATES[new]}"):
                e.life.set_state(0, new)
            assert e.life.state[0] == old


def run_with_loader(e: Engine, until: float) -> None:
    """Drive weight loading as the tick would: every second at the NVMe rate."""
    def loader():
        while True:
            e.life.progress_loading(e.network.loading_rate_b_s())
            yield e.env.timeout(1.0)
    e.env.process(loader())
    e.env.run(until=until)


def test_an_ignition_powers_on_boots_loads_and_warms_up_in_order():
    e = engine()
    e.life.ignite(1)
    run_with_loader(e, 400)
    # 40 GB of AWQ weights at 3 workers x 1.5 GB/s (vLLM first boot, twin.model.coldstart): 8.9 s
    load_s = e.lay.unit_load_bytes_per_node[1] / 4.5e9
    got = changes(e, 1)
    assert [d for _, d in got] == ["OFF->POWERING_ON", "POWERING_ON->BOOTING", "BOOTING->LOADING", "LOADING->WARM"]
    assert [t for t, _ in got[:3]] == [0.0, 10.0, 130.0]
    # loading ends on the first whole second after the weights are in, then the first start's warm-up:
    # init 24 + torch.compile 45 + KV profiling 8 + CUDA graphs 0.8 s x 27 layers per stage = 98.6 s
    warm = 24 + 45 + 8 + 0.8 * 27
    assert 130 + load_s + warm <= got[3][0] <= 130 + load_s + warm + 1
    assert e.life.unit_ready[1]
    assert [r[1] for r in e.log.rows if r[1] in ("ignite", "ready")] == ["ignite", "ready"]


def test_a_loss_during_boot_abandons_the_ignition_and_a_repair_frees_the_node():
    e = engine()
    lost = []
    e.life.on_unit_lost = lambda: lost.append(e.env.now)
    e.life.ignite(2)
    e.env.run(until=50)
    assert e.life.state[2] == BOOTING
    e.life.hold_node(2, "test")
    assert e.life.state[2] == FAILED and e.life.unit_failed[2] and lost == [50]
    run_with_loader(e, 400)
    assert e.life.state[2] == FAILED, "the abandoned boot never resumes"
    e.life.release_node(2)
    assert e.life.state[2] == OFF and changes(e, 2)[-1] == (400.0, "FAILED->OFF")


def test_two_causes_hold_a_node_until_both_are_released():
    e = engine()
    e.life.state[0] = SERVING
    e.life.hold_node(0, "first")
    e.life.hold_node(0, "second")
    assert changes(e, 0) == [(0.0, "SERVING->FAILED")]
    e.life.release_node(0)
    assert e.life.state[0] == FAILED, "the second cause still holds it"
    e.life.release_node(0)
    assert e.life.state[0] == OFF


def test_a_failure_on_a_powered_off_node_keeps_it_from_being_ignited():
    e = engine()
    e.life.hold_node(3, "test")
    assert e.life.state[3] == FAILED and changes(e, 3) == [(0.0, "OFF->FAILED")]
    assert e.life.unit_failed[3] and not e.life.replacing[0], "nothing was serving: no replacement asked"


def test_serving_follows_traffic_and_drained_units_power_down_when_empty():
    e = engine()
    life = e.life
    life.state[:] = [WARM, SERVING, DRAINING, DRAINING]
    life.unit_ready[:] = True
    life.unit_draining[2:] = True
    life.follow_traffic(np.array([2, 0, 0, 1]))  # one replica per node: nodes 0 and 3 have requests
    assert life.state.tolist() == [SERVING, WARM, OFF, DRAINING]
    # unit 2 is done draining (OFF, not ready); unit 3 still drains its last request
    assert life.unit_draining.tolist() == [False, False, False, True]
    assert not life.unit_ready[2] and life.unit_ready[3]


def test_only_ready_healthy_reachable_replicas_take_requests():
    e = engine()
    life = e.life
    life.unit_ready[:] = [True, True, True, False]
    life.unit_draining[1] = True
    life.rep_lost[2] = True
    cut = np.array([False, False, False, False])
    assert life.ready_replicas(np.arange(4), cut).tolist() == [0]
    cut[0] = True
    assert life.ready_replicas(np.arange(4), cut).tolist() == []


def test_loading_progresses_only_on_loading_nodes():
    e = engine()
    e.life.state[:] = [LOADING, POWERING_ON, LOADING, OFF]
    e.life.load_left[:] = [10e9, 5e9, 1e9, 3e9]
    e.life.progress_loading(np.full(4, 6e9))  # one 1 s tick at 6 GB/s
    assert e.life.load_left.tolist() == [4e9, 5e9, 0.0, 3e9]
