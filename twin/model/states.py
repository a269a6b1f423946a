"""Node states and the legal transitions between them (the lifecycle state machine).

OFF -> POWERING_ON -> BOOTING -> LOADING -> WARM <-> SERVING -> DRAINING -> WARM | OFF, and FAILED
from any powered state. The names are also the `state` strings of the telemetry `nodes` table.
"""
from __future__ import annotations

import numpy as np

NODE_STATES = ("OFF", "POWERING_ON", "BOOTING", "LOADING", "WARM", "SERVING", "DRAINING", "FAILED")

STATE = {name: i for i, name in enumerate(NODE_STATES)}
OFF, POWERING_ON, BOOTING, LOADING, WARM, SERVING, DRAINING, FAILED = range(len(NODE_STATES))

LEGAL: frozenset[tuple[int, int]] = frozenset({
    (OFF, POWERING_ON), (POWERING_ON, BOOTING), (BOOTING, LOADING), (LOADING, WARM),
    (WARM, SERVING), (SERVING, WARM), (WARM, DRAINING), (SERVING, DRAINING),
    (DRAINING, WARM), (DRAINING, OFF), (DRAINING, SERVING), (WARM, OFF),
    *((s, FAILED) for s in (POWERING_ON, BOOTING, LOADING, WARM, SERVING, DRAINING)),
})


def is_legal(old: int, new: int) -> bool:
    return (old, new) in LEGAL


def state_mask(*states: int) -> np.ndarray:
    """(len(NODE_STATES),) read-only bool table: `state_mask(A, B)[state_array]` is
    `np.isin(state_array, (A, B))` with one gather instead of a set-membership test."""
    m = np.zeros(len(NODE_STATES), dtype=bool)
    m[list(states)] = True
    m.flags.writeable = False
    return m


IS_POWERED = state_mask(POWERING_ON, BOOTING, LOADING, WARM, SERVING, DRAINING)  # not OFF / FAILED
IS_LOADED = state_mask(WARM, SERVING, DRAINING)                                  # model resident in VRAM
IS_STARTING = state_mask(POWERING_ON, BOOTING, LOADING)                          # holding a boot slot
