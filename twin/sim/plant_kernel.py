"""Compiled (numba) kernels of the plant's hottest loops: the sealed-rack pressure-flow balance
(with its fan constants cached across ticks, BalanceCache), the heat step, the board power
limiter's Newton steps (_limit_over, limit_step; twin.sim.plant_step.BoardLimit drives them).

twin.model.airflow.rack_balance solves every rack's chamber pressure with up to ~40 passes of
~20 numpy operations over all fan groups; at a tick's scale (hundreds to tens of thousands of
elements) the cost is the per-operation overhead and temporaries, not the arithmetic. This
kernel runs the same solve rack by rack as scalar loops over that rack's fan groups: the same
Newton steps from the last pressure, the same warm bracket, the same Illinois false position,
the same per-rack stopping test, and every expression in the same order, so that its results
are the numpy solver's to the last bit
(tests/test_plant_kernel.py checks that on random inputs and on the surge telemetry).

Only IEEE-exact operations (+ - x / sqrt, comparisons) are compiled: numpy's exp and pow may use
SIMD approximations that libm does not reproduce, so those stay in numpy. Where numpy's min/max/
clip keep or drop the sign of a zero, the helpers below do what numpy's loops do.
The fallback is the numpy solver itself; `kernels="numpy"` selects it (as for the router).
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from twin.model import airflow as af
from twin.sim import compiled


def _max(a: float, b: float) -> float:
    """np.maximum: b when equal (so max(-0, 0) = 0, max(0, -0) = -0); NaN propagates."""
    return a if (a > b or a != a) else b


def _min(a: float, b: float) -> float:
    """np.minimum: a zero of either sign against the other gives -0; NaN propagates."""
    if a < b or a != a:
        return a
    if b < a or b != b:
        return b
    return a if math.copysign(1.0, a) < 0 else b


def _clip_s(x: float, lo: float, hi: float) -> float:
    """np.clip with scalar bounds: x itself unless strictly outside (keeps -0 at a 0 bound)."""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


def _clip_a(x: float, lo: float, hi: float) -> float:
    """np.clip with an array bound: min(max(x, lo), hi), each taking the bound when equal."""
    t = x if (x > lo or x != x) else lo
    return t if (t < hi or t != t) else hi


def _sign(x: float) -> float:
    if x > 0:
        return 1.0
    if x < 0:
        return -1.0
    return x if x != x else 0.0


def _excess(r, p, start, order, count, b, head0, two_k, cap, q0b, p0b, capb, plenum_pa, leak_c):
    """af.rack_balance's excess(p) of rack r alone at pressure p (its fan groups: order[start[r]:start[r+1]])."""
    out = 0.0
    for i in range(start[r], start[r + 1]):  # the rack's groups in group order: np.bincount's sum
        g = order[i]
        # plain selects, not numpy's signed-zero rules: these terms only enter a sum that starts at
        # +0 (np.bincount), where a zero's sign is lost, and head only under b^2 + 2 (2k) head
        h = head0[g] + p
        head = h if (h > 0.0 or h != h) else 0.0
        q = (math.sqrt(b[g] * b[g] + 2.0 * two_k[g] * head) - b[g]) / two_k[g]
        out += (q if (q < cap[g] or q != q) else cap[g]) * count[g]
    blow = _min(_max(q0b[r] * (1.0 - (p - plenum_pa) / p0b[r]), 0.0), capb[r])
    return blow - out - _sign(p) * leak_c * math.sqrt(abs(p))


def _slope(r, p, start, order, count, b, head0, two_k, cap, q0b, p0b, capb, plenum_pa, leak_c):
    """af.rack_balance's slope(p) of rack r alone."""
    out = 0.0
    for i in range(start[r], start[r + 1]):
        g = order[i]
        head = head0[g] + p
        root = math.sqrt(b[g] * b[g] + 2.0 * two_k[g] * _max(head, 0.0))
        q = (root - b[g]) / two_k[g]
        out += count[g] / _max(root, 1e-12) if (head > 0 and q < cap[g]) else 0.0
    blow = q0b[r] * (1.0 - (p - plenum_pa) / p0b[r])
    dblow = -q0b[r] / p0b[r] if (blow > 0 and blow < capb[r]) else 0.0
    return dblow - out - 0.5 * leak_c / math.sqrt(_max(abs(p), 1e-6))


def _by_rack(group_rack, n_r):
    """Counting sort of the fan groups by rack, stable (each rack's groups keep their order)."""
    start = np.zeros(n_r + 1, dtype=np.int64)
    for g in range(len(group_rack)):
        start[group_rack[g] + 1] += 1
    for r in range(n_r):
        start[r + 1] += start[r]
    fill = start[:n_r].copy()
    order = np.empty(len(group_rack), dtype=np.int64)
    for g in range(len(group_rack)):
        r = group_rack[g]
        order[fill[r]] = g
        fill[r] += 1
    return start, order


def _solve_rack(r, g0, has_guess, a, range_pa, tol, newton_steps, span_pa, steps):
    """One rack's chamber pressure as af.rack_balance finds it (Newton from the guess, warm bracket,
    Illinois false position), stopping on the rack's own residual."""
    p = g0
    if has_guess:
        for _ in range(newton_steps):
            f = _excess(r, p, *a)
            if abs(f) < tol:
                return p
            p = _clip_s(p - f / _min(_slope(r, p, *a), -1e-12), -range_pa, range_pa)
        if abs(_excess(r, p, *a)) < tol:
            return p
    ok = False
    lo = hi = f_lo = f_hi = 0.0
    if has_guess:
        lo, hi = g0 - span_pa, g0 + span_pa
        f_lo, f_hi = _excess(r, lo, *a), _excess(r, hi, *a)
        ok = f_lo > 0 and f_hi < 0
    if not ok:
        lo, hi = -range_pa, range_pa
        f_lo, f_hi = _excess(r, lo, *a), _excess(r, hi, *a)
    p = 0.5 * (lo + hi)
    side = 0.0
    for _ in range(steps):
        den = f_hi - f_lo
        x = (lo * f_hi - hi * f_lo) / den if den < 0 else 0.5 * (lo + hi)
        p = _clip_a(x, lo, hi)
        f = _excess(r, p, *a)
        up = f > 0
        if up and side == 1:
            f_hi = 0.5 * f_hi
        if not up and side == -1:
            f_lo = 0.5 * f_lo
        if up:
            lo, f_lo = p, f
        else:
            hi, f_hi = p, f
        side = 1.0 if up else -1.0
        if abs(f) < tol:
            break
    return p


def _solve(guess, has_guess, group_rack, count, b, head0, two_k, cap, q0b, p0b, capb, plenum_pa, leak_c,
           range_pa, tol, newton_steps, span_pa, steps):
    """The chamber pressures af.rack_balance finds, rack by rack."""
    n_r = len(q0b)
    start, order = _by_rack(group_rack, n_r)
    a = (start, order, count, b, head0, two_k, cap, q0b, p0b, capb, plenum_pa, leak_c)
    p = np.empty(n_r)
    for r in range(n_r):
        p[r] = _solve_rack(r, guess[r], has_guess, a, range_pa, tol, newton_steps, span_pa, steps)
    return p


def _fan_terms(speed, shutoff, free, s, b, head0, cap):
    """af.balance_terms' speed terms per fan group (s, b, head0, cap), each as numpy evaluates it
    (np.clip(., 0, None) is np.maximum; s ** 2 is np.square, s x s)."""
    for g in range(len(speed)):
        sg = _max(speed[g], 0.0)
        s[g] = sg
        b[g] = shutoff[g] * sg / free[g]
        head0[g] = shutoff[g] * (sg * sg)
        cap[g] = af.FAN_OVERRUN_FRAC * free[g] * _max(sg, 1e-9)


def _state(p, group_rack, group_node, n_nodes, count, free, shutoff, k, s, q0b, p0b, capb, plenum_pa, cd_area,
           rho, blower, leak, node):
    """af.rack_balance's _state(p): blower_flow_m3_s, leakage_flow_m3_s, FanGroups.node_flow_m3_s."""
    for r in range(len(p)):
        blower[r] = _clip_a(q0b[r] * (1.0 - (p[r] - plenum_pa) / p0b[r]), 0.0, capb[r])
        leak[r] = _sign(p[r]) * cd_area * math.sqrt(2.0 * abs(p[r]) / rho)
    for i in range(n_nodes):
        node[i] = 0.0
    for g in range(len(group_rack)):
        bg = shutoff[g] * s[g] / free[g]
        head = shutoff[g] * (s[g] * s[g]) + p[group_rack[g]]
        q = (-bg + math.sqrt(bg * bg + 4.0 * k[g] * _max(head, 0.0))) / (2.0 * k[g])
        node[group_node[g]] += count[g] * _clip_a(q if head > 0 else 0.0, 0.0,
                                                   af.FAN_OVERRUN_FRAC * free[g] * _max(s[g], 1e-9))


# ------------------------------------------------------------ the board power limiter (plant_step.BoardLimit):
# only x^3 (numpy's pow) is numpy's, between the passes; x^2 is np.square there, x x here.

# The limiter's state lives in one (6, G) buffer `nw` (rows NW_B, NW_C, NW_ROOM, NW_X, NW_XP,
# NW_X3: B, C, room, the clock x, the clock one step before, x^3), so that a Newton step is one
# short dispatch and numpy's pow one call on two row views.
NW_B, NW_C, NW_ROOM, NW_X, NW_XP, NW_X3 = 0, 1, 2, 3, 4, 5


def _newton(b, c3, room, xi, x3, floor):
    """One Newton step of pw.clock_for_board_limit at clock xi (x3 = xi^3 by numpy's pow)."""
    x2 = xi * xi
    f = b * x2 + c3 * x3 - room
    fp = _max(2.0 * b * xi + 3.0 * c3 * x2, 1e-12)
    return _clip_a(xi - f / fp, floor, 1.0)


def _first_step(g, b, c3, room, nw, idx, n, floor, c_lim):
    """GPU g over its limit at full clock: the first Newton step from x = 1, whose cube needs no
    pow (1^3 = 1 exactly, IEEE 754 pow(1, y) = 1); a clock that does not move settles (c_lim), the
    others join the moving set at position n. Returns the new size of the set."""
    xn = _newton(b, c3, room, 1.0, 1.0, floor)
    if xn == 1.0:
        c_lim[g] = xn
        return n
    idx[n] = g
    nw[0, n], nw[1, n], nw[2, n], nw[3, n], nw[4, n] = b, c3, room, xn, 1.0
    return n + 1


def _limit_over(limit, idle, gb_s, sm, w_dram, w_mem, w_sm, nw, idx, floor, c_lim):
    """The GPUs over their limit at full clock, in GPU order (pw's boolean mask), after their
    first Newton step (_first_step); returns how many still move."""
    n = 0
    for i in range(len(gb_s)):
        g = _max(gb_s[i], 0.0)
        b = (w_mem - w_dram) * g
        c3 = w_sm * _clip_a(sm[i], 0.0, 1.0)
        room = limit[i] - idle[i] - w_dram * g
        if b + c3 > room:
            n = _first_step(i, b, c3, room, nw, idx, n, floor, c_lim)
    return n


def _limit_step(nw, idx, m, floor, c_lim, step, n_steps):
    """Newton step `step` (1-based, of n_steps) of the board limiter (pw.clock_for_board_limit's
    arithmetic) on the m GPUs still moving (nw's rows; x3 = x^3 by numpy). A step is a function
    of x alone, so a GPU whose clock did not move sits at its fixed point, and one whose clock
    came back to where it was two steps ago repeats that pair to the end: either way its clock
    after n_steps is known now, goes to c_lim, and the GPU leaves the set; the others are
    compacted, in order, to the front. Returns how many are still moving."""
    k = 0
    for i in range(m):
        xi = nw[3, i]
        xn = _newton(nw[0, i], nw[1, i], nw[2, i], xi, nw[5, i], floor)
        if xn == xi:
            c_lim[idx[i]] = xn
        elif xn == nw[4, i]:  # a 2-cycle xn, xi, xn, ...: the last step lands on xn if n_steps - step is even
            c_lim[idx[i]] = xn if (n_steps - step) % 2 == 0 else xi
        else:
            nw[0, k], nw[1, k], nw[2, k], nw[3, k], nw[4, k], idx[k] = nw[0, i], nw[1, i], nw[2, i], xn, xi, idx[i]
            k += 1
    return k


# ------------------------------------------------------------ heat: GPU/CPU temperatures, air, fans
# Plant._heat_numpy's arithmetic as loops over nodes and their GPUs, in the same order, writing
# into buffers the plant owns. The transcendentals (the heatsink's f^0.8 and the ladder's two
# exponentials per GPU) depend only on the start-of-tick blower speeds: the plant evaluates them
# with numpy's own ufuncs into buffers between `_ladder_rates` and `_heat`, so both paths use
# numpy's exp/pow and agree to the last bit (libm's differ from numpy's in the last bit for ~1 %
# of arguments). Every other exponential is a per-run constant (first-order lags).

def _ladder_rates(x, r_sink_full, inv_r_spr, a, bc, c_sink, dt, r_s, d, l1, l2, e1, e2):
    """From x = max(f, f_min)^0.8 per GPU: R_sink, the ladder's d and eigenvalues (thermal.rc2_step_c),
    and l dt into e1/e2 (exponentiated by the caller)."""
    for g in range(len(x)):
        rs = r_sink_full / x[g]
        dd = -(inv_r_spr + 1.0 / rs) / c_sink
        half_tr = (a + dd) / 2.0
        disc = math.sqrt(half_tr * half_tr - (a * dd - bc))
        r_s[g], d[g] = rs, dd
        l1[g], l2[g] = half_tr + disc, half_tr - disc
        e1[g], e2[g] = l1[g] * dt, l2[g] * dt


def _heat(gpn, node_rack, on, airflow, inlet, cpu_w, upstream_w, node_dc, g_pow, gb_s, powered,
          r_s, d, l1, l2, e1, e2, cpu_temp, gpu_temp, gpu_sink, gpu_mem, gpu_fan, rack_exhaust,
          exhaust, flow, flow_w, mem_clock, throttled, k, supply_c):
    """One tick of heat (Plant._heat_numpy): CPU and GPU temperatures, exhausts, rack exhausts, the
    memory-clock throttle, blower speeds; integrated state in place. Returns the count of GPUs at or
    above their shutdown temperature. `k`: the per-run constants (Plant._heat_constants)."""
    (dt, r_cpu, k_cpu, c_cpu, no_flow, preheat_frac, rc_air, r_spr, a, b, c, c_die, c_sink, w_dram, r_mem,
     k_mem, limit, has_limit, span, one_minus_min, mem_min, fan_min, fan_start, fan_span, k_fan,
     slowdown, shutdown) = k
    n_nodes = len(on)
    for r in range(len(flow)):
        flow[r] = 0.0
        flow_w[r] = 0.0
    n_hot = 0
    for n in range(n_nodes):
        cpu0 = cpu_temp[n]
        target = inlet[n] + cpu_w[n] * r_cpu
        cpu1 = target + (cpu0 - target) * k_cpu
        cpu_temp[n] = cpu1
        cpu_stored = c_cpu * (cpu1 - cpu0)
        stream = on[n] and airflow[n] > no_flow
        preheat = 0.0
        if stream:
            preheat = 0.0 + preheat_frac * (upstream_w[n] - cpu_stored / dt) / (rc_air * airflow[n])
        amb = inlet[n] + preheat
        stored = 0.0
        for g in range(n * gpn, (n + 1) * gpn):
            p = g_pow[g]
            die0, sink0 = gpu_temp[g], gpu_sink[g]
            sink_ss = amb + p * r_s[g]
            die_ss = sink_ss + p * r_spr
            xd, xs = die0 - die_ss, sink0 - sink_ss
            kk = 1.0 / (l1[g] - l2[g])
            de = e1[g] - e2[g]
            die1 = die_ss + kk * ((e1[g] * (a - l2[g]) - e2[g] * (a - l1[g])) * xd + de * b * xs)
            sink1 = sink_ss + kk * (de * c * xd + (e1[g] * (d[g] - l2[g]) - e2[g] * (d[g] - l1[g])) * xs)
            mem_target = sink1 + w_dram * gb_s[g] * r_mem
            mem1 = mem_target + (gpu_mem[g] - mem_target) * k_mem
            gpu_temp[g], gpu_sink[g], gpu_mem[g] = die1, sink1, mem1
            stored += c_die * (die1 - die0) + c_sink * (sink1 - sink0)
            if has_limit:
                mem_clock[g] = _clip_s(1.0 - (mem1 - limit) / span * one_minus_min, mem_min, 1.0)
            else:
                mem_clock[g] = 1.0
            fan_target = 0.0
            if powered[g]:
                fan_target = fan_min + (1.0 - fan_min) * _clip_s((die1 - fan_start) / fan_span, 0.0, 1.0)
            gpu_fan[g] = fan_target + (gpu_fan[g] - fan_target) * k_fan
            throttled[g] = powered[g] and die1 > slowdown
            if powered[g] and die1 >= shutdown:
                n_hot += 1
        air_w = node_dc[n] - (stored + cpu_stored) / dt
        ex = inlet[n] + air_w / (rc_air * airflow[n]) if stream else inlet[n]
        exhaust[n] = ex
        r = node_rack[n]
        flow[r] += airflow[n]
        flow_w[r] += airflow[n] * ex
    for r in range(len(flow)):
        rack_exhaust[r] = flow_w[r] / _max(flow[r], 1e-9) if flow[r] > 1e-9 else supply_c
    for n in range(n_nodes):  # a node with no stream of its own: the air at its back is the rack's
        if not (on[n] and airflow[n] > no_flow):
            r = node_rack[n]
            exhaust[n] = rack_exhaust[r] if flow[r] > 1e-9 else inlet[n]
    return n_hot


try:  # numba compiles the loops; without it the numpy solver is the (identical) fallback
    from numba import njit
    _jit = njit(cache=True, nogil=True)
    _max, _min, _clip_s, _clip_a, _sign = (_jit(fn) for fn in (_max, _min, _clip_s, _clip_a, _sign))
    _excess, _slope, _by_rack, _solve_rack = _jit(_excess), _jit(_slope), _jit(_by_rack), _jit(_solve_rack)
    _solve_c, _state_c = _jit(_solve), _jit(_state)
    ladder_rates, heat = _jit(_ladder_rates), _jit(_heat)
    _newton, _first_step = _jit(_newton), _jit(_first_step)
    _fan_terms_c, _limit_over_c, limit_step = _jit(_fan_terms), _jit(_limit_over), _jit(_limit_step)
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a platform without it working
    _solve_c = _state_c = ladder_rates = heat = _fan_terms_c = _limit_over_c = limit_step = None

HAVE_NUMBA = _solve_c is not None


resolve = compiled.resolve  # one rule for every kernel (twin.sim.compiled)


class BalanceCache:
    """What rack_balance_compiled keeps between the ticks of one room: af.balance_terms with the
    fan-speed terms recomputed (compiled) on every call and the rest (impedances, leakage, blowers,
    each group's rack) reused while the fans, racks and scalar inputs are the same objects and values.
    A fan failure or state change only changes speeds, which are never cached."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.terms: af.BalanceTerms | None = None
        self.group_rack = np.zeros(0, dtype=np.int64)

    def terms_for(self, fans: af.FanGroups, node_rack: np.ndarray, key: tuple, n_racks: int,
                  args: tuple) -> af.BalanceTerms:
        if self.key is None or self.key[0] is not fans or self.key[1] is not node_rack or self.key[2:] != key[2:]:
            h = af.balance_terms(fans, n_racks, *args)
            # own buffers for the speed terms: the next call rewrites them in place
            self.terms = replace(h, **{f: np.empty(len(fans.node)) for f in ("s", "b", "head0", "cap")})
            self.group_rack, self.key = node_rack[fans.node], key
        h = self.terms
        _fan_terms_c(fans.speed_frac, fans.shutoff_pa, fans.free_flow_m3_s, h.s, h.b, h.head0, h.cap)
        return h


def rack_balance_compiled(fans: af.FanGroups, node_rack: np.ndarray, n_racks: int, *, plenum_pa: float,
                          blower_free_flow_m3_s: float, blower_shutoff_pa: float, blower_speed_frac: np.ndarray,
                          leak_area_m2: float, rho_kg_m3: float, guess_pa: np.ndarray | None = None,
                          cache: BalanceCache | None = None) -> af.RackAirflow:
    """af.rack_balance through the compiled solve: the same pressures and flows, bit for bit.
    `cache`: the BalanceCache of the room this is called for tick after tick (the caller owns it)."""
    if _solve_c is None:
        return af.rack_balance(fans, node_rack, n_racks, plenum_pa=plenum_pa, blower_free_flow_m3_s=blower_free_flow_m3_s,
                               blower_shutoff_pa=blower_shutoff_pa, blower_speed_frac=blower_speed_frac,
                               leak_area_m2=leak_area_m2, rho_kg_m3=rho_kg_m3, guess_pa=guess_pa)
    args = (blower_free_flow_m3_s, blower_shutoff_pa, blower_speed_frac, leak_area_m2, rho_kg_m3)
    key = (fans, node_rack, n_racks, float(blower_free_flow_m3_s), float(blower_shutoff_pa),
           np.asarray(blower_speed_frac, dtype=float).tobytes(), float(leak_area_m2), float(rho_kg_m3))
    cache = BalanceCache() if cache is None else cache
    h = cache.terms_for(fans, node_rack, key, n_racks, args)
    gr = cache.group_rack
    has_guess = guess_pa is not None
    guess = np.asarray(guess_pa, dtype=float) if has_guess else np.zeros(n_racks)
    p = _solve_c(guess, has_guess, gr, fans.count, h.b, h.head0, h.two_k, h.cap, h.q0b, h.p0b, h.capb,
                 float(plenum_pa), h.leak_c, af.BALANCE_RANGE_PA, af.BALANCE_TOL_M3_S, af.NEWTON_STEPS,
                 af.GUESS_SPAN_PA, af.BALANCE_STEPS)
    n_nodes = len(node_rack)
    blower, leak, node = np.empty(n_racks), np.empty(n_racks), np.empty(n_nodes)
    _state_c(p, gr, fans.node, n_nodes, fans.count, fans.free_flow_m3_s, fans.shutoff_pa, fans.k_pa_s2_m6, h.s,
             h.q0b, h.p0b, h.capb, float(plenum_pa), af.ORIFICE_CD * leak_area_m2, float(rho_kg_m3), blower, leak, node)
    return af.RackAirflow(chamber_pa=p, blower_m3_s=blower, leak_m3_s=leak, node_m3_s=node)
