"""The run's story as data: typed event kinds and the log that becomes the `events` table.

Parts emit events through one `EventLog` they receive in their constructor; the log stamps the
simulated time (from the clock it is given) and the node's rack, and keeps the order in which
things happened at one instant (docs/telemetry.md "events"). No part writes files.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Callable

import numpy as np


class Kind(StrEnum):
    """Every event kind the engine emits (the `kind` strings of the events table)."""
    INITIAL = "initial"                      # node WARM at t=0
    STATE_CHANGE = "state_change"            # detail "OLD->NEW"
    IGNITE = "ignite"
    READY = "ready"
    DRAIN = "drain"
    UNDRAIN = "undrain"
    IGNITION_DELAYED = "ignition_delayed"    # a facility power cap has no room for the unit
    FAULT = "fault"
    FAULT_CLEARED = "fault_cleared"
    PSU_DEGRADED = "psu_degraded"
    REPLICA_LOST = "replica_lost"
    UNIT_LOST = "unit_lost"
    UNIT_DISCONNECTED = "unit_disconnected"
    UNIT_RECONNECTED = "unit_reconnected"
    REQUEST_RETRY = "request_retry"
    THROTTLE_START = "throttle_start"
    THROTTLE_END = "throttle_end"
    THERMAL_SHUTDOWN = "thermal_shutdown"
    COOLING_OVERLOAD = "cooling_overload"
    COOLING_RECOVERED = "cooling_recovered"
    POWER_CAP_ENGAGED = "power_cap_engaged"
    POWER_CAP_RELEASED = "power_cap_released"
    POWER_CAP_INFEASIBLE = "power_cap_infeasible"


class EventLog:
    """Append-only list of (time_s, kind, node, rack, replica, detail)."""

    def __init__(self, node_rack: np.ndarray, clock: Callable[[], float]) -> None:
        self._node_rack = node_rack
        self._clock = clock
        self.rows: list[tuple[float, str, int, int, int, str]] = []

    def now(self) -> float:
        """Simulated time, s."""
        return self._clock()

    def emit(self, kind: Kind, node: int = -1, replica: int = -1, detail: str = "") -> None:
        rack = int(self._node_rack[node]) if node >= 0 else -1
        self.rows.append((self._clock(), kind.value, node, rack, replica, detail))

    def count(self, kind: Kind) -> int:
        return sum(1 for e in self.rows if e[1] == kind.value)

    def columns(self) -> dict[str, np.ndarray | list]:
        """The `events` table (docs/telemetry.md)."""
        ev = self.rows
        return {"time_s": np.array([e[0] for e in ev], dtype=float), "kind": [e[1] for e in ev],
                "node_id": np.array([e[2] for e in ev], dtype=np.int64),
                "rack_id": np.array([e[3] for e in ev], dtype=np.int64),
                "replica_id": np.array([e[4] for e in ev], dtype=np.int64), "detail": [e[5] for e in ev]}
