"""Sealed racks: the pressure-flow balance of each rack's front chamber.

The refinery's racks are glass tubes: a sealed front chamber fed from the floor plenum by blowers,
drained by the servers' fans into the hot aisle (room pressure, 0 Pa) and by leakage through rails
and cable cut-outs. Per rack the chamber pressure p settles where what flows in equals what flows
out:

    Q_blower(p) = sum of Q_fan(p) over the rack's server fans + Q_leak(p)

A deficit (servers want more than the blowers give) depressurises the chamber: server flow drops
against the extra static pressure and hot-aisle air leaks back in through the leakage area, which
heats the intake. A surplus pressurises it: servers get a little more flow and cold air leaks out.
Every flow is a fan curve against an impedance, so the balance is monotone in p and bisection
finds it. Pure numpy, vectorised over racks and fans. Sources in each docstring; the open-rack
model (hot air spilling over the top) stays in twin.model.thermal.recirculation_frac.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.spec.catalogue import FanSpec, GpuSpec

ORIFICE_CD = 0.61             # sharp-edged orifice discharge coefficient (ISO 5167; ASHRAE Fundamentals ch. 21)
FAN_OVERRUN_FRAC = 1.5        # a fan pushed by the pressure difference delivers at most 1.5 x free flow (estimate)
DEFAULT_FREE_FLOW_RATIO = 1.5  # free-air flow / in-chassis flow when a fan's curve is not catalogued (estimate)
DEFAULT_SHUTOFF_PA = 30.0      # shut-off pressure of an uncatalogued chassis fan (estimate: 120 mm, ~3 mm H2O)
BALANCE_RANGE_PA = 1000.0     # chamber pressure searched in [-1 kPa, +1 kPa]: far beyond any fan's shut-off
BALANCE_STEPS = 30            # at most; each rack stops once its flow residual < BALANCE_TOL_M3_S
BALANCE_TOL_M3_S = 1e-10      # 0.0002 CFM: far below any flow that matters
GUESS_SPAN_PA = 5.0           # warm-start bracket around the last solution
NEWTON_STEPS = 4              # from the last solution, before falling back to the bracket


def fan_impedance_pa_s2_m6(free_flow_m3_s: np.ndarray | float, shutoff_pa: np.ndarray | float,
                           operating_flow_m3_s: np.ndarray | float) -> np.ndarray:
    """System impedance k (dP = k Q^2) that puts a fan's operating point at `operating_flow_m3_s`
    on its linear full-speed curve dP = P0 (1 - Q / Q0): k = P0 (1 - Q_op / Q0) / Q_op^2.

    The catalogue gives each fan's in-chassis flow (FanSpec.max_airflow_m3_s, GpuSpec.blower_airflow_m3_s)
    and its free-air curve; their intersection defines the chassis impedance (fan laws + quadratic
    system curve, ASHRAE Handbook HVAC Systems and Equipment, ch. 21).
    """
    q0 = np.asarray(free_flow_m3_s, dtype=float)
    q = np.asarray(operating_flow_m3_s, dtype=float)
    return np.asarray(shutoff_pa, dtype=float) * (1.0 - q / q0) / q ** 2


def fan_flow_m3_s(assist_pa: np.ndarray, free_flow_m3_s: np.ndarray, shutoff_pa: np.ndarray,
                  speed_frac: np.ndarray, k_pa_s2_m6: np.ndarray) -> np.ndarray:
    """Flow of a fan at speed s through impedance k, helped by `assist_pa` upstream pressure.

    Fan curve at speed s (affinity laws: flow ~ s, pressure ~ s^2): dP_fan = P0 s^2 (1 - Q / (Q0 s)).
    Balance dP_fan + assist = k Q^2, i.e. k Q^2 + (P0 s / Q0) Q - (P0 s^2 + assist) = 0, positive
    root. A fan that cannot overcome a suction (P0 s^2 + assist <= 0) stalls at 0 (no backflow);
    an assisted fan is capped at FAN_OVERRUN_FRAC x its free flow.
    """
    s = np.clip(np.asarray(speed_frac, dtype=float), 0.0, None)
    p0 = np.asarray(shutoff_pa, dtype=float)
    q0 = np.asarray(free_flow_m3_s, dtype=float)
    k = np.asarray(k_pa_s2_m6, dtype=float)
    b = p0 * s / q0
    head = p0 * s ** 2 + np.asarray(assist_pa, dtype=float)
    q = (-b + np.sqrt(b ** 2 + 4.0 * k * np.maximum(head, 0.0))) / (2.0 * k)
    return np.clip(np.where(head > 0, q, 0.0), 0.0, FAN_OVERRUN_FRAC * q0 * np.maximum(s, 1e-9))


def leakage_flow_m3_s(chamber_pa: np.ndarray, area_m2: float, rho_kg_m3: float) -> np.ndarray:
    """Signed leakage out of the chamber through an effective area: Q = Cd A sqrt(2 |dp| / rho),
    positive outwards (cold air lost), negative inwards (hot-aisle air drawn in). The orifice law
    makes leakage grow as sqrt(dP)."""
    p = np.asarray(chamber_pa, dtype=float)
    return np.sign(p) * ORIFICE_CD * area_m2 * np.sqrt(2.0 * np.abs(p) / rho_kg_m3)


def blower_flow_m3_s(chamber_pa: np.ndarray, plenum_pa: float, free_flow_m3_s: float, shutoff_pa: float,
                     speed_frac: np.ndarray | float) -> np.ndarray:
    """Rack supply blower pushing plenum air into the chamber: the linear fan curve at speed s
    against the pressure rise it must make, chamber - plenum (no impedance of its own: the tile
    and duct losses are inside its curve). 0 when the chamber out-pressures it."""
    s = np.clip(np.asarray(speed_frac, dtype=float), 0.0, None)
    rise = np.asarray(chamber_pa, dtype=float) - plenum_pa
    q = free_flow_m3_s * s * (1.0 - rise / np.maximum(shutoff_pa * s ** 2, 1e-12))
    return np.clip(q, 0.0, FAN_OVERRUN_FRAC * free_flow_m3_s * np.maximum(s, 1e-9))


@dataclass(frozen=True)
class FanGroups:
    """Every server fan of the room as flat arrays: group i is `count[i]` identical fans of node
    `node[i]` at speed `speed[i]` on curve (free_flow, shutoff) through impedance k."""
    node: np.ndarray
    count: np.ndarray
    free_flow_m3_s: np.ndarray
    shutoff_pa: np.ndarray
    k_pa_s2_m6: np.ndarray
    speed_frac: np.ndarray

    def node_flow_m3_s(self, chamber_pa_of_group: np.ndarray, n_nodes: int) -> np.ndarray:
        q = self.count * fan_flow_m3_s(chamber_pa_of_group, self.free_flow_m3_s, self.shutoff_pa,
                                       self.speed_frac, self.k_pa_s2_m6)
        return np.bincount(self.node, weights=q, minlength=n_nodes)


@dataclass(frozen=True)
class RackAirflow:
    """The balanced state: per rack chamber pressure and flows, per node server flow (m^3/s, Pa)."""
    chamber_pa: np.ndarray
    blower_m3_s: np.ndarray
    leak_m3_s: np.ndarray      # signed: > 0 cold air out, < 0 hot air in
    node_m3_s: np.ndarray

    @property
    def leak_in_m3_s(self) -> np.ndarray:
        return np.maximum(-self.leak_m3_s, 0.0)


@dataclass(frozen=True)
class BalanceTerms:
    """fan_flow_m3_s and blower_flow_m3_s with their per-fan and per-rack constants hoisted out of
    the balance's iteration (the same formulas, evaluated once per solve)."""
    s: np.ndarray       # fan speed, clipped at 0
    b: np.ndarray       # P0 s / Q0
    head0: np.ndarray   # P0 s^2
    two_k: np.ndarray   # 2 k
    cap: np.ndarray     # FAN_OVERRUN_FRAC x Q0 x s
    leak_c: float       # Cd A sqrt(2 / rho)
    q0b: np.ndarray     # blower free flow at its speed
    p0b: np.ndarray     # blower shut-off pressure at its speed
    capb: np.ndarray    # blower overrun cap


def balance_terms(fans: FanGroups, n_racks: int, blower_free_flow_m3_s: float, blower_shutoff_pa: float,
                  blower_speed_frac: np.ndarray | float, leak_area_m2: float, rho_kg_m3: float) -> BalanceTerms:
    """The constants rack_balance iterates with (see fan_flow_m3_s, blower_flow_m3_s, leakage_flow_m3_s)."""
    speed = np.broadcast_to(np.asarray(blower_speed_frac, dtype=float), (n_racks,))
    s = np.clip(fans.speed_frac, 0.0, None)
    sb = np.clip(speed, 0.0, None)
    return BalanceTerms(s=s, b=fans.shutoff_pa * s / fans.free_flow_m3_s, head0=fans.shutoff_pa * s ** 2,
                        two_k=2.0 * fans.k_pa_s2_m6, cap=FAN_OVERRUN_FRAC * fans.free_flow_m3_s * np.maximum(s, 1e-9),
                        leak_c=ORIFICE_CD * leak_area_m2 * np.sqrt(2.0 / rho_kg_m3), q0b=blower_free_flow_m3_s * sb,
                        p0b=np.maximum(blower_shutoff_pa * sb ** 2, 1e-12),
                        capb=FAN_OVERRUN_FRAC * blower_free_flow_m3_s * np.maximum(sb, 1e-9))


def rack_balance(fans: FanGroups, node_rack: np.ndarray, n_racks: int, *, plenum_pa: float,
                 blower_free_flow_m3_s: float, blower_shutoff_pa: float, blower_speed_frac: np.ndarray,
                 leak_area_m2: float, rho_kg_m3: float, guess_pa: np.ndarray | None = None) -> RackAirflow:
    """Solve every rack's chamber pressure: blower in = server fans out + leakage.

    f(p) = Q_blower(p) - sum Q_fan(p) - Q_leak(p) falls monotonically with p (the blower gives less
    and the fans and leaks take more as the chamber pressure rises), so a bracketing root finder on
    [-BALANCE_RANGE_PA, +BALANCE_RANGE_PA] converges for every rack at once; each rack stops on its
    own residual (< BALANCE_TOL_M3_S), so a rack's pressure does not depend on its neighbours'
    convergence. With `guess_pa` (the
    last tick's pressures) Newton's method from it is tried first (the excess is smooth and
    monotone, so a step or two suffices when little changed), then a bracket of +-GUESS_SPAN_PA
    around it where that still brackets the root.
    """
    n_nodes = len(node_rack)
    group_rack = node_rack[fans.node]
    group_slot = group_rack  # fan group -> rack, for the per-rack sum of their flows
    speed = np.broadcast_to(np.asarray(blower_speed_frac, dtype=float), (n_racks,))
    h = balance_terms(fans, n_racks, blower_free_flow_m3_s, blower_shutoff_pa, blower_speed_frac, leak_area_m2,
                      rho_kg_m3)
    b, head0, two_k, cap, leak_c, q0b, p0b, capb = h.b, h.head0, h.two_k, h.cap, h.leak_c, h.q0b, h.p0b, h.capb

    def _state(p: np.ndarray) -> RackAirflow:
        return RackAirflow(chamber_pa=p,
                           blower_m3_s=blower_flow_m3_s(p, plenum_pa, blower_free_flow_m3_s, blower_shutoff_pa, speed),
                           leak_m3_s=leakage_flow_m3_s(p, leak_area_m2, rho_kg_m3),
                           node_m3_s=fans.node_flow_m3_s(p[group_rack], n_nodes))

    def excess(p: np.ndarray) -> np.ndarray:
        head = np.maximum(head0 + p[group_rack], 0.0)
        q = np.minimum((np.sqrt(b * b + 2.0 * two_k * head) - b) / two_k, cap) * fans.count
        out = np.bincount(group_slot, weights=q, minlength=n_racks)
        blow = np.minimum(np.maximum(q0b * (1.0 - (p - plenum_pa) / p0b), 0.0), capb)
        return blow - out - np.sign(p) * leak_c * np.sqrt(np.abs(p))

    def slope(p: np.ndarray) -> np.ndarray:
        """d excess / dp (< 0): blower curve, fans (dq/dhead = 1 / sqrt(b^2 + 4 k head)), orifice."""
        head = head0 + p[group_rack]
        root = np.sqrt(b * b + 2.0 * two_k * np.maximum(head, 0.0))
        q = (root - b) / two_k
        dq = np.where((head > 0) & (q < cap), fans.count / np.maximum(root, 1e-12), 0.0)
        blow = q0b * (1.0 - (p - plenum_pa) / p0b)
        dblow = np.where((blow > 0) & (blow < capb), -q0b / p0b, 0.0)
        return (dblow - np.bincount(group_slot, weights=dq, minlength=n_racks)
                - 0.5 * leak_c / np.sqrt(np.maximum(np.abs(p), 1e-6)))

    # each rack's solve is independent (its excess depends on its own pressure only), so each
    # rack stops on its own tolerance: a converged rack's pressure is frozen while the others
    # iterate, and a room's answer for a rack is the answer for that rack alone
    done = np.zeros(n_racks, dtype=bool)
    p = np.zeros(n_racks)
    if guess_pa is not None:  # Newton from the last solution: a step or two when little changed
        p = np.asarray(guess_pa, dtype=float).copy()
        for _ in range(NEWTON_STEPS):
            f = excess(p)
            done = np.abs(f) < BALANCE_TOL_M3_S
            if done.all():
                return _state(p)
            p = np.where(done, p, np.clip(p - f / np.minimum(slope(p), -1e-12), -BALANCE_RANGE_PA, BALANCE_RANGE_PA))
        done = np.abs(excess(p)) < BALANCE_TOL_M3_S
        if done.all():
            return _state(p)
    ok = np.zeros(n_racks, dtype=bool)
    if guess_pa is not None:  # a bracket around the last solution, where it still holds
        lo, hi = guess_pa - GUESS_SPAN_PA, guess_pa + GUESS_SPAN_PA
        f_lo, f_hi = excess(lo), excess(hi)
        ok = (f_lo > 0) & (f_hi < 0)
    if not ok.all():
        full_lo, full_hi = np.full(n_racks, -BALANCE_RANGE_PA), np.full(n_racks, BALANCE_RANGE_PA)
        ff_lo, ff_hi = excess(full_lo), excess(full_hi)   # > 0 at the low end, < 0 at the high end
        lo = full_lo if guess_pa is None else np.where(ok, lo, full_lo)
        hi = full_hi if guess_pa is None else np.where(ok, hi, full_hi)
        f_lo = ff_lo if guess_pa is None else np.where(ok, f_lo, ff_lo)
        f_hi = ff_hi if guess_pa is None else np.where(ok, f_hi, ff_hi)
    p = np.where(done, p, 0.5 * (lo + hi))
    side = np.zeros(n_racks)
    for _ in range(BALANCE_STEPS):
        den = f_hi - f_lo
        x = np.where(den < 0, (lo * f_hi - hi * f_lo) / np.where(den < 0, den, -1.0), 0.5 * (lo + hi))
        p = np.where(done, p, np.clip(x, lo, hi))
        f = excess(p)
        # (a converged rack's bracket moves on with its frozen pressure; nothing reads it again)
        up = f > 0                      # the root lies above p: p becomes the new low end
        f_hi = np.where(up & (side == 1), 0.5 * f_hi, f_hi)      # same end moved twice: halve the other
        f_lo = np.where(~up & (side == -1), 0.5 * f_lo, f_lo)
        lo, f_lo = np.where(up, p, lo), np.where(up, f, f_lo)
        hi, f_hi = np.where(up, hi, p), np.where(up, f_hi, f)
        side = np.where(up, 1.0, -1.0)
        done = done | (np.abs(f) < BALANCE_TOL_M3_S)
        if done.all():
            break
    return _state(p)


def sealed_inlet_c(supply_c: np.ndarray | float, hot_c: np.ndarray, blower_m3_s: np.ndarray,
                   leak_in_m3_s: np.ndarray) -> np.ndarray:
    """Chamber (server intake) temperature: blower air at the supply temperature mixed adiabatically
    with the hot-aisle air leaking in. No leak-in: the supply temperature exactly."""
    leak = np.asarray(leak_in_m3_s, dtype=float)
    total = np.asarray(blower_m3_s, dtype=float) + leak
    supply = np.asarray(supply_c, dtype=float)  # np.where broadcasts it
    mixed = (blower_m3_s * supply + leak * np.asarray(hot_c, dtype=float)) / np.maximum(total, 1e-12)
    return np.where(leak > 0, np.where(total > 1e-12, mixed, np.asarray(hot_c, dtype=float)), supply)


def server_fan_groups(node_count: int, chassis_fan: FanSpec, chassis_fans_per_node: int, chassis_speed: np.ndarray,
                      gpu: GpuSpec, gpu_node: np.ndarray, gpu_fan_frac: np.ndarray) -> FanGroups:
    """The room's server fans as FanGroups: per node its chassis fans (one group) and each GPU's
    blower (one group each). Each fan's impedance is set by its catalogued in-chassis flow on its
    curve (fan_impedance_pa_s2_m6), so at 0 Pa chamber pressure every fan delivers exactly the
    flow the open-rack model uses."""
    q0_c = chassis_fan.free_air_flow_m3_s or DEFAULT_FREE_FLOW_RATIO * chassis_fan.max_airflow_m3_s
    p0_c = chassis_fan.max_static_pa or DEFAULT_SHUTOFF_PA
    q0_g = gpu.blower_free_flow_m3_s or DEFAULT_FREE_FLOW_RATIO * gpu.blower_airflow_m3_s
    k_c = float(fan_impedance_pa_s2_m6(q0_c, p0_c, chassis_fan.max_airflow_m3_s))
    k_g = float(fan_impedance_pa_s2_m6(q0_g, gpu.blower_shutoff_pa, gpu.blower_airflow_m3_s))
    n_g = len(gpu_node)
    return FanGroups(node=np.concatenate([np.arange(node_count), np.asarray(gpu_node)]),
                     count=np.concatenate([np.full(node_count, float(chassis_fans_per_node)), np.ones(n_g)]),
                     free_flow_m3_s=np.concatenate([np.full(node_count, q0_c), np.full(n_g, q0_g)]),
                     shutoff_pa=np.concatenate([np.full(node_count, p0_c), np.full(n_g, gpu.blower_shutoff_pa)]),
                     k_pa_s2_m6=np.concatenate([np.full(node_count, k_c), np.full(n_g, k_g)]),
                     speed_frac=np.concatenate([np.asarray(chassis_speed, dtype=float), np.asarray(gpu_fan_frac, dtype=float)]))


def blower_intake_c(supply_c: float, room_hot_c: float, blower_total_m3_s: float, crah_m3_s: float) -> float:
    """Air the rack blowers draw from the floor: CRAH supply while the CRAHs deliver at least what the
    blowers take; beyond that the blowers pull room (hot-aisle) air into the plenum, mixed in."""
    if blower_total_m3_s <= crah_m3_s or blower_total_m3_s <= 0:
        return supply_c
    short = blower_total_m3_s - crah_m3_s
    return (crah_m3_s * supply_c + short * room_hot_c) / blower_total_m3_s
