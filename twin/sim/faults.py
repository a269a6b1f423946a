"""Faults: one small handler per kind (FAULT_HANDLERS), each applying its fault and returning
the function that undoes it when the fault's duration ends (None: nothing to undo).

Overlapping faults compose instead of clobbering each other (issue 15):
* failures are reference-counted: a node is held FAILED by every active cause (crash, last PSU
  gone, PSU overload trip, thermal shutdown) and repaired only when the last one clears; a GPU
  is swapped only when every fault on it has cleared; each PSU fault takes one PSU and each
  repair gives one back; a fan stays dead while any fault on it is active;
* degradations keep every active value and apply the most severe one (the lowest per-GPU cap,
  facility cap, CRAH share or cooling capacity); when the last clears the healthy value returns.

Time: the run covers [0, horizon); a fault at or after the horizon never happens, and one whose
clearing falls at or after it lasts until the end (docs/faults.md).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import simpy

from twin.sim.events import EventLog, Kind
from twin.sim.lifecycle import Lifecycle
from twin.sim.network import Network
from twin.sim.plant import Plant
from twin.sim.power_cap import FacilityCap
from twin.spec.scenario import FaultSpec

Undo = Callable[[], None]
COOLING_FAILURE_DEFAULT_FRAC = 0.3  # default: most of the room's CRAH units down


class Active:
    """The values in force for one degradation; the most severe (lowest) one applies."""

    def __init__(self) -> None:
        self._values: dict[int, float] = {}
        self._next = 0

    def add(self, value: float) -> int:
        self._next += 1
        self._values[self._next] = value
        return self._next

    def remove(self, token: int) -> None:
        del self._values[token]

    def __len__(self) -> int:
        return len(self._values)

    def least(self, healthy: float) -> float:
        return min(self._values.values(), default=healthy)


@dataclass
class Fleet:
    """What fault handlers may change: the parts, and the degradations currently in force."""
    life: Lifecycle
    plant: Plant
    cap: FacilityCap
    network: Network
    log: EventLog
    psu_count: int
    healthy_cooling_w: float
    active: dict[tuple[str, object], Active] = field(default_factory=dict)

    def degradation(self, kind: str, target: object = None) -> Active:
        return self.active.setdefault((kind, target), Active())


def _node_crash(fl: Fleet, f: FaultSpec, reason: str) -> Undo:
    nd = int(f.target)
    fl.life.hold_node(nd, reason)
    return lambda: fl.life.release_node(nd)


def _psu_failure(fl: Fleet, f: FaultSpec, reason: str) -> Undo | None:
    nd, pl = int(f.target), fl.plant
    if pl.psu_ok[nd] == 0:
        return None  # no working PSU left to fail
    pl.psu_ok[nd] -= 1
    if pl.psu_ok[nd] == 0:
        fl.life.hold_node(nd, reason)
    else:  # redundant supplies: the others carry the load (the plant checks their rating each tick)
        fl.log.emit(Kind.PSU_DEGRADED, nd, -1, f"{int(pl.psu_ok[nd])} of {fl.psu_count} PSUs left")

    def swap() -> None:
        pl.psu_ok[nd] += 1
        if pl.psu_ok[nd] == 1:
            fl.life.release_node(nd)
        fl.life.clear_psu_trip(nd)  # a technician who swaps a PSU resets an overload trip
    return swap


def _gpu_failure(fl: Fleet, f: FaultSpec, reason: str) -> Undo:
    g = int(f.target)
    fl.life.hold_gpu(g, reason)
    return lambda: fl.life.release_gpu(g)


def _fan_failure(fl: Fleet, f: FaultSpec, reason: str) -> Undo:
    nd = int(f.target)
    faults = fl.degradation("fan_failure", nd)
    token = faults.add(0.0)
    fl.plant.fan_ok[nd] = False

    def repair() -> None:
        faults.remove(token)
        fl.plant.fan_ok[nd] = not len(faults)
    return repair


def _degrade(fl: Fleet, kind: str, value: float, healthy: float, apply: Callable[[float], None]) -> Undo:
    """Register `value` among the active `kind` degradations and apply the most severe."""
    active = fl.degradation(kind)
    token = active.add(value)
    apply(active.least(healthy))

    def clear() -> None:
        active.remove(token)
        apply(active.least(healthy))
    return clear


def _cooling_failure(fl: Fleet, f: FaultSpec, reason: str) -> Undo:
    # CRAH units lost: their share of plenum airflow AND of coil capacity goes (both scale with plenum_frac)
    frac = COOLING_FAILURE_DEFAULT_FRAC if f.value is None else float(f.value)
    return _degrade(fl, f.kind, frac, 1.0, lambda v: setattr(fl.plant, "plenum_frac", v))


def _cooling_capacity(fl: Fleet, f: FaultSpec, reason: str) -> Undo:
    return _degrade(fl, f.kind, float(f.value) * 1e3, fl.healthy_cooling_w,
                    lambda v: setattr(fl.plant, "cooling_capacity_w", v))


def _power_cap(fl: Fleet, f: FaultSpec, reason: str) -> Undo:
    return _degrade(fl, f.kind, float(f.value), math.inf, lambda v: fl.plant.gpu_cap_w.__setitem__(slice(None), v))


def _facility_power_cap(fl: Fleet, f: FaultSpec, reason: str) -> Undo:
    return _degrade(fl, f.kind, float(f.value) * 1e3, math.inf, fl.cap.set_cap)


def _fabric(fl: Fleet, f: FaultSpec, reason: str) -> Undo | None:
    if fl.network.fabric is None:
        return None
    target = str(f.target)
    fl.network.fail(target, f"{reason} {target}")
    return lambda: fl.network.restore(target, f"{reason} {target} cleared")


FAULT_HANDLERS: dict[str, Callable[[Fleet, FaultSpec, str], Undo | None]] = {
    "node_crash": _node_crash,
    "gpu_failure": _gpu_failure,
    "fan_failure": _fan_failure,
    "psu_failure": _psu_failure,
    "cooling_failure": _cooling_failure,
    "cooling_capacity": _cooling_capacity,
    "power_cap": _power_cap,
    "facility_power_cap": _facility_power_cap,
    "link_down": _fabric,
    "switch_down": _fabric,
}


def fault_node(f: FaultSpec, gpus_per_node: int) -> int:
    """The node a fault names (its GPU's node for gpu_failure), -1 for room-wide and fabric faults."""
    if not isinstance(f.target, int):
        return -1
    return int(f.target) // gpus_per_node if f.kind == "gpu_failure" else int(f.target)


def fault_process(env: simpy.Environment, i: int, f: FaultSpec, fleet: Fleet, gpus_per_node: int,
                  horizon_s: float) -> Generator:
    """Apply faults[i] at its time; undo it when its duration ends (inside the run)."""
    if f.at_s >= horizon_s:
        return  # after the end of the run: never happens
    yield env.timeout(f.at_s)
    nd = fault_node(f, gpus_per_node)
    target = f.target if f.target is not None else ""
    # the fault event comes first so that the reactions it causes follow it in the table
    words = (f"faults[{i}]", f.kind, str(target), "" if f.value is None else f"{f.value:g}")
    fleet.log.emit(Kind.FAULT, nd, -1, " ".join(w for w in words if w))
    undo = FAULT_HANDLERS[f.kind](fleet, f, f"{f.kind} faults[{i}]")
    if f.duration_s is not None:
        yield env.timeout(f.duration_s)  # at or after the horizon the run has ended first
        if undo is not None:
            undo()
        fleet.log.emit(Kind.FAULT_CLEARED, nd, -1, f"faults[{i}] {f.kind}")
