"""Compiled (numba) kernel of the plant's hottest loop: the sealed-rack pressure-flow balance.

twin.model.airflow.rack_balance solves every rack's chamber pressure with up to ~40 passes of
~20 numpy operations over all fan groups; at a tick's scale (hundreds to tens of thousands of
elements) the cost is the per-operation overhead and temporaries, not the arithmetic. This
kernel runs the same solve as scalar loops: the same Newton steps from the last pressures, the
same warm bracket, the same Illinois false position, the same stopping tests, and every
expression in the same order, so that its results are the numpy solver's to the last bit
(tests/test_plant_kernel.py checks that on random inputs and on the surge telemetry).

Only IEEE-exact operations (+ - x / sqrt, comparisons) are compiled: numpy's exp and pow may use
SIMD approximations that libm does not reproduce, so those stay in numpy. Where numpy's min/max/
clip keep or drop the sign of a zero, the helpers below do what numpy's loops do.
The fallback is the numpy solver itself; `kernels="numpy"` selects it (as for the router).
"""
from __future__ import annotations

import math

import numpy as np

from twin.model import airflow as af


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


def _excess(p, out, q_g, f, group_rack, count, b, head0, two_k, cap, q0b, p0b, capb, plenum_pa, leak_c):
    """af.rack_balance's excess(p) into `f` (out: per-rack, q_g: per-group scratch)."""
    n_r = len(p)
    for r in range(n_r):
        out[r] = 0.0
    n_g = len(group_rack)
    for g in range(n_g):  # branch-free and independent per group, so that it vectorises. Plain
        # selects, not numpy's signed-zero rules: these terms only enter sums that start at +0
        # (np.bincount), where a zero's sign is lost, and head only under b^2 + 2 (2k) head
        h = head0[g] + p[group_rack[g]]
        head = h if (h > 0.0 or h != h) else 0.0
        q = (math.sqrt(b[g] * b[g] + 2.0 * two_k[g] * head) - b[g]) / two_k[g]
        q_g[g] = (q if (q < cap[g] or q != q) else cap[g]) * count[g]
    for g in range(n_g):  # then the per-rack sums in group order (np.bincount's order)
        out[group_rack[g]] += q_g[g]
    for r in range(n_r):
        blow = _min(_max(q0b[r] * (1.0 - (p[r] - plenum_pa) / p0b[r]), 0.0), capb[r])
        f[r] = blow - out[r] - _sign(p[r]) * leak_c * math.sqrt(abs(p[r]))


def _slope(p, out, d, group_rack, count, b, head0, two_k, cap, q0b, p0b, capb, plenum_pa, leak_c):
    """af.rack_balance's slope(p) into `d`."""
    n_r = len(p)
    for r in range(n_r):
        out[r] = 0.0
    for g in range(len(group_rack)):
        r = group_rack[g]
        head = head0[g] + p[r]
        root = math.sqrt(b[g] * b[g] + 2.0 * two_k[g] * _max(head, 0.0))
        q = (root - b[g]) / two_k[g]
        out[r] += count[g] / _max(root, 1e-12) if (head > 0 and q < cap[g]) else 0.0
    for r in range(n_r):
        blow = q0b[r] * (1.0 - (p[r] - plenum_pa) / p0b[r])
        dblow = -q0b[r] / p0b[r] if (blow > 0 and blow < capb[r]) else 0.0
        d[r] = dblow - out[r] - 0.5 * leak_c / math.sqrt(_max(abs(p[r]), 1e-6))


def _absmax(f) -> float:
    m = abs(f[0])
    for i in range(1, len(f)):
        a = abs(f[i])
        if a > m or a != a:  # np.max propagates NaN
            m = a
    return m


def _solve(guess, has_guess, group_rack, count, b, head0, two_k, cap, q0b, p0b, capb, plenum_pa, leak_c,
           range_pa, tol, newton_steps, span_pa, steps):
    """The chamber pressures af.rack_balance finds (Newton, warm bracket, Illinois false position)."""
    n_r = len(q0b)
    out, f, d, q_g = np.empty(n_r), np.empty(n_r), np.empty(n_r), np.empty(len(group_rack))
    args = (group_rack, count, b, head0, two_k, cap, q0b, p0b, capb, plenum_pa, leak_c)
    p = guess.copy()
    if has_guess:
        for _ in range(newton_steps):
            _excess(p, out, q_g, f, *args)
            if _absmax(f) < tol:
                return p
            _slope(p, out, d, *args)
            for r in range(n_r):
                p[r] = _clip_s(p[r] - f[r] / _min(d[r], -1e-12), -range_pa, range_pa)
        _excess(p, out, q_g, f, *args)
        if _absmax(f) < tol:
            return p
    lo, hi, f_lo, f_hi = np.empty(n_r), np.empty(n_r), np.empty(n_r), np.empty(n_r)
    ok = np.zeros(n_r, dtype=np.bool_)
    all_ok = False
    if has_guess:
        for r in range(n_r):
            lo[r] = guess[r] - span_pa
            hi[r] = guess[r] + span_pa
        _excess(lo, out, q_g, f_lo, *args)
        _excess(hi, out, q_g, f_hi, *args)
        all_ok = True
        for r in range(n_r):
            ok[r] = f_lo[r] > 0 and f_hi[r] < 0
            all_ok = all_ok and ok[r]
    if not all_ok:
        full_lo, full_hi = np.full(n_r, -range_pa), np.full(n_r, range_pa)
        ff_lo, ff_hi = np.empty(n_r), np.empty(n_r)
        _excess(full_lo, out, q_g, ff_lo, *args)
        _excess(full_hi, out, q_g, ff_hi, *args)
        for r in range(n_r):
            if not ok[r]:
                lo[r], hi[r], f_lo[r], f_hi[r] = full_lo[r], full_hi[r], ff_lo[r], ff_hi[r]
    for r in range(n_r):
        p[r] = 0.5 * (lo[r] + hi[r])
    side = np.zeros(n_r)
    for _ in range(steps):
        for r in range(n_r):
            den = f_hi[r] - f_lo[r]
            x = (lo[r] * f_hi[r] - hi[r] * f_lo[r]) / den if den < 0 else 0.5 * (lo[r] + hi[r])
            p[r] = _clip_a(x, lo[r], hi[r])
        _excess(p, out, q_g, f, *args)
        for r in range(n_r):
            up = f[r] > 0
            if up and side[r] == 1:
                f_hi[r] = 0.5 * f_hi[r]
            if not up and side[r] == -1:
                f_lo[r] = 0.5 * f_lo[r]
            if up:
                lo[r], f_lo[r] = p[r], f[r]
            else:
                hi[r], f_hi[r] = p[r], f[r]
            side[r] = 1.0 if up else -1.0
        if _absmax(f) < tol:
            break
    return p


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


try:  # numba compiles the loops; without it the numpy solver is the (identical) fallback
    from numba import njit
    _jit = njit(cache=True, nogil=True)
    _max, _min, _clip_s, _clip_a, _sign, _absmax = (_jit(fn) for fn in (_max, _min, _clip_s, _clip_a, _sign, _absmax))
    _excess, _slope = _jit(_excess), _jit(_slope)
    _solve_c, _state_c = _jit(_solve), _jit(_state)
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a platform without it working
    _solve_c = _state_c = None

HAVE_NUMBA = _solve_c is not None


def resolve(kernels: str) -> str:
    """"numba" / "numpy" as asked; "auto": numba when it is installed (as the engine's router)."""
    if kernels == "auto":
        return "numba" if HAVE_NUMBA else "numpy"
    if kernels not in ("numba", "numpy"):
        raise ValueError(f"kernels: {kernels!r} is not one of auto, numba, numpy")
    return kernels


def rack_balance_compiled(fans: af.FanGroups, node_rack: np.ndarray, n_racks: int, *, plenum_pa: float,
                          blower_free_flow_m3_s: float, blower_shutoff_pa: float, blower_speed_frac: np.ndarray,
                          leak_area_m2: float, rho_kg_m3: float, guess_pa: np.ndarray | None = None,
                          group_rack: np.ndarray | None = None) -> af.RackAirflow:
    """af.rack_balance through the compiled solve: the same pressures and flows, bit for bit.
    `group_rack` (node_rack[fans.node]) may be passed precomputed: the room's fans never move."""
    if _solve_c is None:
        return af.rack_balance(fans, node_rack, n_racks, plenum_pa=plenum_pa, blower_free_flow_m3_s=blower_free_flow_m3_s,
                               blower_shutoff_pa=blower_shutoff_pa, blower_speed_frac=blower_speed_frac,
                               leak_area_m2=leak_area_m2, rho_kg_m3=rho_kg_m3, guess_pa=guess_pa)
    gr = node_rack[fans.node] if group_rack is None else group_rack
    h = af.balance_terms(fans, n_racks, blower_free_flow_m3_s, blower_shutoff_pa, blower_speed_frac, leak_area_m2,
                         rho_kg_m3)
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
