"""Compiled (numba) passes of the plant's tick (twin.sim.plant_step.CompiledStep): Plant.step's
inline numpy (GPU states and work, P-states, the throttle, node parts, GPU board power, PSU
losses, the sealed chamber's mixing) as loops over GPUs, nodes and racks, each writing into
buffers the plant owns.

At a tick's scale (hundreds of elements) Plant.step's cost is the ~150 numpy calls' per-call
overhead, not the arithmetic; these passes do the same arithmetic in the same order, element by
element, so every result is numpy's to the last bit (tests/test_plant_step.py on random inputs
and the surge telemetry). What is not IEEE-exact stays numpy between the passes: every pow
(the MoE share (1 - f)^e, the chassis fans' (rpm / max)^3, the board's c^3) and exp, and the
pairwise sums (np.sum, np.mean). The signed-zero and NaN rules of numpy's min/max/clip are
twin.sim.plant_kernel's helpers. A bincount is a sequential sum from +0 in index order: here a
loop in the same order.
"""
from __future__ import annotations

from twin.sim import plant_kernel as pk

_max, _min, _clip_s, _clip_a = pk._max, pk._min, pk._clip_s, pk._clip_a

# GPU state flags (gpu_flags): bits of one int8 per GPU
F_POWERED = 1     # not OFF / FAILED (before gpu_ok)
F_LOADING = 2
F_RESIDENT = 4    # WARM, SERVING, DRAINING
F_SERVING = 8     # resident and hosting a replica
F_ON = 16         # powered and on the bus (after gpu_ok)


def _gpu_states(st, gpn, has_rep, gpu_ok, pair_rep, pair_gpu, prefill_frac, decode_frac, rep_share, has_share,
                off, failed, loading, warm, serving, draining, flags, util):
    """Plant.step's GPU masks (as flags) and SM-busy share: bincount over (replica, GPU) pairs of
    (prefill + decode) x share, where serving, clipped to [0, 1]."""
    for g in range(len(util)):
        s = st[g // gpn]
        f = 0
        if s != off and s != failed:
            f |= F_POWERED
            if gpu_ok[g]:
                f |= F_ON
        if s == loading:
            f |= F_LOADING
        if s == warm or s == serving or s == draining:
            f |= F_RESIDENT
            if has_rep[g]:
                f |= F_SERVING
        flags[g] = f
        util[g] = 0.0
    for i in range(len(pair_rep)):
        r = pair_rep[i]
        w = (prefill_frac[r] + decode_frac[r]) * rep_share[r] if has_share else (prefill_frac[r] + decode_frac[r]) * 1.0
        util[pair_gpu[i]] += w
    for g in range(len(util)):
        util[g] = _clip_s(util[g] if flags[g] & F_SERVING else 0.0, 0.0, 1.0)


def _rep_exponent(clock, rep_gpus, batch, rep_pp, rep_clock, e):
    """Each replica's clock (the slowest of its GPUs; padding reads 1) and its MoE exponent
    max(b / min(pp, b), 1), b = max(batch, 1) (pw.replica_gpu_work, plant_kernel._work_exponent)."""
    n_g = len(clock)
    for r in range(len(batch)):
        m = 1.0
        first = True
        for j in range(rep_gpus.shape[1]):
            gi = rep_gpus[r, j]
            c = clock[gi] if gi < n_g else 1.0
            m = c if first else _min(m, c)
            first = False
        rep_clock[r] = m
        b = _max(batch[r], 1.0)
        e[r] = _max(b / _min(rep_pp[r], b), 1.0)


def _gpu_work(rep_pool, pool_k, untouched, rep_clock, batch, kv_tokens, interval_s, decode_time_frac, prefill_tok_s,
              pair_rep, pair_gpu, flags, mem_clock, train, has_train, t_s, last_work, gpu_temp, cap_w,
              rep_gb, rep_u, gb_s, sm_u, util, idle_w, c_th, c_lim, nw, idx, kc):
    """Each replica's DRAM GB/s and SM utilisation (plant_kernel._work per replica, its pool's
    constants in pool_k rows: weights, kv/token, state/seq, n_gpus, pp, peak FLOP/s, active params,
    2 x active params, prefill GPUs, split share, has split), summed per GPU over the pairs; the
    loading/serving selects, training, the P-state, the thermal throttle and the board limiter's
    over-limit GPUs after their first Newton step (plant_kernel._limit_over's arithmetic and
    _first_step into `nw`; plant_kernel.limit_step steps them on). Returns how many still move.
    `kc`: the per-run constants (CompiledStep.work_k)."""
    (chunk, loading_gb_s, train_act, train_dram, bw, decay, ctx, idle_p0, idle_p8, slowdown, shutdown, board_w,
     w_dram, w_mem, w_sm, floor) = (kc[0], kc[1], kc[2], kc[3], kc[4], kc[5], kc[6], kc[7], kc[8], kc[9], kc[10],
                                    kc[11], kc[12], kc[13], kc[14], kc[15])
    ctx_holds = ctx != 0.0
    for i in range(len(batch)):
        q = pool_k[rep_pool[i]]
        wb, kvb, sb, ng, pp, ps, ap, two_ap, pg, frac, split = q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8], q[9], q[10]
        b, dec, pre = _max(batch[i], 1.0), batch[i] > 0, prefill_tok_s[i]
        iv, fr = (interval_s[i], decode_time_frac[i]) if dec else (1.0, 0.0)
        read = _min(pp, b) * (wb * (1.0 - untouched[i])) + kv_tokens[i] * kvb + b * sb
        peak = ps * _max(rep_clock[i], 1e-3)
        gb = fr * read / iv / ng / 1e9 + pre * wb / ng / chunk / 1e9
        u = _clip_a(fr * 2.0 * ap * b / iv / ng / peak + two_ap * pre / pg / peak, 0.0, 1.0)
        if split > 0.0:
            gb *= frac
            u *= frac
        rep_gb[i], rep_u[i] = gb, u
    n_gpu = len(gb_s)
    for g in range(n_gpu):
        gb_s[g] = 0.0
        sm_u[g] = 0.0
    for i in range(len(pair_rep)):
        gb_s[pair_gpu[i]] += rep_gb[pair_rep[i]]
        sm_u[pair_gpu[i]] += rep_u[pair_rep[i]]
    n = 0
    for g in range(n_gpu):
        f = flags[g]
        srv = (f & F_SERVING) != 0
        x = (loading_gb_s if f & F_LOADING else (gb_s[g] if srv else 0.0)) * mem_clock[g]
        u = _min(sm_u[g], 1.0) if srv else 0.0
        if has_train:
            tr = train[g] if f & F_RESIDENT else 0.0
            u = _min(u + tr * train_act, 1.0)
            x = x + tr * train_dram * bw * mem_clock[g]
            util[g] = _clip_s(util[g] + tr, 0.0, 1.0)
        gb_s[g], sm_u[g] = x, u
        if (f & F_POWERED) and (x > 0 or u > 0):
            last_work[g] = t_s
        active = (t_s - last_work[g]) < decay or ((f & (F_RESIDENT | F_LOADING)) != 0 and ctx_holds)
        idle = idle_p0 if active else idle_p8
        idle_w[g] = idle
        c_th[g] = _clip_s(1.0 - (gpu_temp[g] - slowdown) / (shutdown - slowdown) * 0.5, 0.5, 1.0)
        # the board limiter at min(TGP, cap): plant_kernel._limit_over's arithmetic
        gg = _max(x, 0.0)
        bb = (w_mem - w_dram) * gg
        c3 = w_sm * _clip_a(u, 0.0, 1.0)
        room = _min(board_w, cap_w[g]) - idle - w_dram * gg
        c_lim[g] = 1.0
        if bb + c3 > room:
            n = pk._first_step(g, bb, c3, room, nw, idx, n, floor, c_lim)
    return n


def _clock0(n_left, idx, x, c_lim, flags, c_th, fresh, gpu_temp, fan_min, fan_start, fan_span, gpu_fan, clock0, powered):
    """clock0 = min(throttle, board limiter) on powered GPUs, else 1 (`powered`: on the bus); on the
    first tick the blowers at their set point (thermal.fan_curve_frac). The board limiter's clocks:
    `c_lim`, and the `n_left` GPUs still moving after the last Newton step (idx, x)."""
    for i in range(n_left):
        c_lim[idx[i]] = x[i]
    for g in range(len(clock0)):
        on = (flags[g] & F_ON) != 0
        powered[g] = on
        clock0[g] = _min(c_th[g], c_lim[g]) if on else 1.0
        if fresh:
            gpu_fan[g] = fan_min + (1.0 - fan_min) * _clip_s((gpu_temp[g] - fan_start) / fan_span, 0.0, 1.0) if on else 0.0


def _node_pre(st, gpu_temp, fan_rpm, fan_ok, fresh, pair_node, pair_rep, pair_busy, pair_share, tokens_s,
              prefill_tok_s, cpu_extra, has_extra, is_loaded, cpu_table, dimm_table, on, driven, gmax, ratio, busy, tok,
              cpu_util, cpu_w, dimm_w, plat_w, nic_w, ki, kc):
    """Plant.step's node half before GPU power: on / driven, the hottest GPU, chassis fan rpm (lag
    towards its target), the host CPU utilisation (_host_util), and node_parts_w's CPU, DIMM,
    platform and NIC power; `ratio` = rpm / max rpm for the fans' cube (numpy's pow, outside).
    `ki`, `kc`: the per-run integer and float constants (CompiledStep.node_ki / node_k)."""
    gpn, off, failed, powering_on = ki[0], ki[1], ki[2], ki[3]
    (min_rpm, max_rpm, fan_start, fan_span, k_fan, cspt, cores, cpu_idle, cpu_tdp, dimms, dimm_idle, dimm_power,
     platform_w, nic_power) = (kc[0], kc[1], kc[2], kc[3], kc[4], kc[5], kc[6], kc[7], kc[8], kc[9], kc[10], kc[11],
                               kc[12], kc[13])
    n_nodes = len(st)
    for n in range(n_nodes):
        busy[n] = 0.0
        tok[n] = 0.0
    for i in range(len(pair_node)):
        nd = pair_node[i]
        s = st[nd]
        lv = 1.0 if (s == ki[4] or s == ki[5] or s == ki[6]) else 0.0
        busy[nd] += pair_busy[i] * lv
        r = pair_rep[i]
        tok[nd] += (tokens_s[r] + prefill_tok_s[r]) * pair_share[i]
    for n in range(n_nodes):
        s = st[n]
        o = s != off and s != failed
        on[n] = o
        m = gpu_temp[n * gpn]
        for g in range(n * gpn + 1, (n + 1) * gpn):
            m = _max(m, gpu_temp[g])
        gmax[n] = m
        target = min_rpm + (max_rpm - min_rpm) * _clip_s((m - fan_start) / fan_span, 0.0, 1.0)
        if s == powering_on:
            target = max_rpm
        d = o and fan_ok[n]
        driven[n] = d
        if not d:
            target = 0.0
        rpm = fan_rpm[n]
        if fresh and d and s != powering_on:
            rpm = target
        rpm = target + (rpm - target) * k_fan
        fan_rpm[n] = rpm
        ratio[n] = rpm / max_rpm
        host = _clip_s((busy[n] + tok[n] * cspt) / cores, 0.0, 1.0)
        if has_extra:
            host = _clip_s(host + cpu_extra[n], 0.0, 1.0)
        cu = host if is_loaded[s] else cpu_table[s]
        cpu_util[n] = cu
        cpu_w[n] = cpu_idle + (cpu_tdp - cpu_idle) * _clip_s(cu, 0.0, 1.0) if o else 0.0
        dimm_w[n] = dimms * (dimm_idle + (dimm_power - dimm_idle) * dimm_table[s]) if o else 0.0
        plat_w[n] = platform_w if o else 0.0
        nic_w[n] = nic_power if (o and s != powering_on) else 0.0


def _node_other(driven, ratio3, fan_count, fan_max_w, cpu_w, dimm_w, plat_w, nic_w, psu_ok, fan_w, other, upstream,
                psus):
    """The chassis fans' affinity-law power and NodeParts.other_w / upstream_w; PSUs sharing the load."""
    for n in range(len(driven)):
        fw = fan_count * (fan_max_w * ratio3[n]) if driven[n] else 0.0
        fan_w[n] = fw
        other[n] = cpu_w[n] + dimm_w[n] + plat_w[n] + nic_w[n] + fw
        upstream[n] = cpu_w[n] + dimm_w[n] + plat_w[n]
        psus[n] = psu_ok[n] if psu_ok[n] > 1 else 1


def _interp(x, xp, fp):
    """np.interp of one finite x (numpy's compiled_base: the ends, an exact point, slope x dx + y)."""
    n = len(xp)
    if x < xp[0]:
        return fp[0]
    if x > xp[n - 1]:
        return fp[n - 1]
    j = 0
    while j + 1 < n and xp[j + 1] <= x:
        j += 1
    if j == n - 1 or xp[j] == x:
        return fp[j]
    slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
    y = slope * (x - xp[j]) + fp[j]
    if y != y:
        y = slope * (x - xp[j + 1]) + fp[j + 1]
        if y != y and fp[j] == fp[j + 1]:
            y = fp[j]
    return y


def _power(gpn, powered, idle_w, gb_s, sm_u, c, c3, other, psus, psu_ok, on, pts, eff, g_pow, node_gpu, node_dc, wall,
           over, kc):
    """GPU board power of the `powered` GPUs (pw.gpu_board_power_w with c = clip(clock), c3 = c^3
    from numpy), per node
    its GPUs' sum, DC and wall power (pw.wall_power_w through the PSU curve) and the PSU overloads
    (returns how many, their nodes in `over`). `kc`: CompiledStep.power_k."""
    w_dram, w_chip, w_sm, rated, standby, fix_loss, prop_loss, psu_count = kc[0], kc[1], kc[2], kc[3], kc[4], kc[5], kc[6], kc[7]
    n_over = 0
    for n in range(len(other)):
        s = 0.0
        for g in range(n * gpn, (n + 1) * gpn):
            if powered[g]:
                cg = c[g]
                p = idle_w[g] + (w_dram + w_chip * (cg * cg)) * _max(gb_s[g], 0.0) + w_sm * _clip_s(sm_u[g], 0.0, 1.0) * c3[g]
            else:
                p = 0.0
            g_pow[g] = p
            s += p
        node_gpu[n] = s
        dc = s + other[n]
        node_dc[n] = dc
        x = _max(dc / (rated * psus[n]), 0.0)
        if x < pts[0]:
            e = x / (x + fix_loss + prop_loss * x) if x > 0 else 0.0
        else:
            e = _interp(x, pts, eff)
        wall[n] = dc / e if dc > 0 else standby * psus[n]
        if on[n] and psu_ok[n] < psu_count and dc > psu_ok[n] * rated:
            over[n_over] = n
            n_over += 1
    return n_over


def _sealed_air(node_rack, node_m3_s, blower, leak, blow_c, rack_exhaust, rack_in, hot, inlet, demand):
    """af.sealed_inlet_c per rack, the share of intake that leaked in from the hot aisle, each
    node's inlet and each rack's server flow (bincount in node order)."""
    for r in range(len(blower)):
        li = _max(-leak[r], 0.0)
        total = blower[r] + li
        hc = rack_exhaust[r]
        mixed = (blower[r] * blow_c + li * hc) / _max(total, 1e-12)
        rack_in[r] = (mixed if total > 1e-12 else hc) if li > 0 else blow_c
        seen = li + blower[r]
        hot[r] = li / seen if seen > 0 else 0.0
        demand[r] = 0.0
    for n in range(len(node_rack)):
        r = node_rack[n]
        inlet[n] = rack_in[r]
        demand[r] += node_m3_s[n]


def _hot_nodes(gpn, powered, gpu_temp, shutdown, out):
    """np.unique of the nodes with a powered GPU at or above its shutdown temperature (GPUs are
    numbered node by node, so node order is sorted order); returns how many."""
    m = 0
    for n in range(len(out)):
        for g in range(n * gpn, (n + 1) * gpn):
            if powered[g] and gpu_temp[g] >= shutdown:
                out[m] = n
                m += 1
                break
    return m


# ------------------------------------------------------------ the passes CompiledStep calls, fused
# (one dispatch each; the numpy sections sit between them)

def _pre(st, has_rep, gpu_ok, gpair_rep, gpair_gpu, prefill_frac, decode_frac, rep_share, has_share, flags, util,
         clock, rep_gpus, decode_batch, rep_pp, rep_clock, e, gpu_temp, fan_rpm, fan_ok, fresh, pair_node, pair_rep,
         pair_busy, pair_share, tokens_s, prefill_tok_s, cpu_extra, has_extra, is_loaded, cpu_table, dimm_table, on,
         driven, gmax, ratio, busy, tok, cpu_util, cpu_w, dimm_w, plat_w, nic_w, ki, kc):
    """Before the tick's first pow: GPU states and utilisation, replica clocks and MoE exponents,
    the nodes' fans, host CPU and parts (ki: gpn, OFF, FAILED, POWERING_ON, WARM, SERVING,
    DRAINING, LOADING)."""
    _gpu_states(st, ki[0], has_rep, gpu_ok, gpair_rep, gpair_gpu, prefill_frac, decode_frac, rep_share, has_share,
                ki[1], ki[2], ki[7], ki[4], ki[5], ki[6], flags, util)
    _rep_exponent(clock, rep_gpus, decode_batch, rep_pp, rep_clock, e)
    _node_pre(st, gpu_temp, fan_rpm, fan_ok, fresh, pair_node, pair_rep, pair_busy, pair_share, tokens_s,
              prefill_tok_s, cpu_extra, has_extra, is_loaded, cpu_table, dimm_table, on, driven, gmax, ratio, busy, tok,
              cpu_util, cpu_w, dimm_w, plat_w, nic_w, ki, kc)


def _mid(n_left, idx, x, c_lim, flags, c_th, fresh, gpu_temp, gpu_fan, clock0, powered, fan_x, driven, ratio3, cpu_w, dimm_w,
         plat_w, nic_w, psu_ok, fan_w, other, upstream, psus, kc, sealed, ratio, speed, shutoff, free, s, b, head0, cap,
         guess, has_guess, group_rack, count, two_k, q0b, p0b, capb, plenum, leak_c, fan_node, k_pa, cd_area, rho,
         blower, leak, node, kb):
    """After the limiter's Newton steps: clock0 (and the first tick's blowers), the nodes' other
    power and PSUs, and max(max(f, f_min / 5), 0.05) per blower for the heatsink's f^0.8
    (thermal.gpu_stage_resistances; kc: fan_min, FAN_START_C, fan span, chassis fans, fan W, f floor);
    sealed racks: the chamber balance at this tick's fan speeds (_balance; it needs nothing the
    facility cap decides). Returns the chamber pressures (`guess` when not sealed)."""
    _clock0(n_left, idx, x, c_lim, flags, c_th, fresh, gpu_temp, kc[0], kc[1], kc[2], gpu_fan, clock0, powered)
    _node_other(driven, ratio3, kc[3], kc[4], cpu_w, dimm_w, plat_w, nic_w, psu_ok, fan_w, other, upstream, psus)
    for g in range(len(gpu_fan)):
        fan_x[g] = _max(_max(gpu_fan[g], kc[5]), 0.05)
    if not sealed:
        return guess
    return _balance(ratio, gpu_fan, speed, shutoff, free, s, b, head0, cap, guess, has_guess, group_rack, count, two_k,
                    q0b, p0b, capb, plenum, leak_c, fan_node, k_pa, cd_area, rho, blower, leak, node, kb)


def _power_ladder(gpn, powered, idle_w, gb_s, sm_u, c, c3, other, psus, psu_ok, on, pts, eff, g_pow, node_gpu, node_dc,
                  wall, over, kc, x, lk, r_s, d, l1, l2, e1, e2):
    """_power, then plant_kernel's ladder rates from x = f^0.8 (lk: CompiledStep.ladder_k)."""
    n = _power(gpn, powered, idle_w, gb_s, sm_u, c, c3, other, psus, psu_ok, on, pts, eff, g_pow, node_gpu, node_dc,
               wall, over, kc)
    _ladder(x, lk[0], lk[1], lk[2], lk[3], lk[4], lk[5], r_s, d, l1, l2, e1, e2)
    return n


def _balance(ratio, gpu_fan, speed, shutoff, free, s, b, head0, cap, guess, has_guess, group_rack, count, two_k, q0b,
             p0b, capb, plenum, leak_c, fan_node, k_pa, cd_area, rho, blower, leak, node, kb):
    """plant_kernel.rack_balance_compiled's passes: the fan speeds (chassis rpm / max, then each
    blower), their terms, each rack's chamber pressure, the flows (kb: af's range, tolerance,
    Newton steps, guess span, steps). Returns the pressures."""
    n_nodes = len(ratio)
    for i in range(n_nodes):
        speed[i] = ratio[i]
    for g in range(len(gpu_fan)):
        speed[n_nodes + g] = gpu_fan[g]
    _fan_terms(speed, shutoff, free, s, b, head0, cap)
    p = _solve(guess, has_guess, group_rack, count, b, head0, two_k, cap, q0b, p0b, capb, plenum, leak_c, kb[0], kb[1],
               int(kb[2]), kb[3], int(kb[4]))
    _state(p, group_rack, fan_node, n_nodes, count, free, shutoff, k_pa, s, q0b, p0b, capb, plenum, cd_area, rho, blower,
           leak, node)
    return p


def _air_heat(sealed, node_rack, node_m3_s, blower, leak, blow_c, rack_in, hot, inlet, demand, gpn, on, cpu_w,
              upstream_w, node_dc, g_pow, gb_s, powered, r_s, d, l1, l2, e1, e2, cpu_temp, gpu_temp, gpu_sink, gpu_mem,
              gpu_fan, rack_exhaust, exhaust, flow, flow_w, mem_clock, throttled, k, supply_c, hot_nodes, was_throttled,
              changed):
    """Sealed racks: the chamber's mixing (_sealed_air, from the start-of-tick rack exhausts);
    then plant_kernel's heat step, the hot nodes and the GPUs whose throttle flag changed (the first
    len(changed), in order). Returns (how many nodes are hot, how many GPUs changed)."""
    if sealed:
        _sealed_air(node_rack, node_m3_s, blower, leak, blow_c, rack_exhaust, rack_in, hot, inlet, demand)
    n_hot = _heat(gpn, node_rack, on, node_m3_s, inlet, cpu_w, upstream_w, node_dc, g_pow, gb_s, powered, r_s, d, l1,
                  l2, e1, e2, cpu_temp, gpu_temp, gpu_sink, gpu_mem, gpu_fan, rack_exhaust, exhaust, flow, flow_w,
                  mem_clock, throttled, k, supply_c)
    n_changed = 0
    for g in range(len(throttled)):
        if throttled[g] != was_throttled[g] and n_changed < len(changed):
            changed[n_changed] = g
            n_changed += 1
    if n_hot == 0:
        return 0, n_changed
    return _hot_nodes(gpn, powered, gpu_temp, k[26], hot_nodes), n_changed


try:
    from numba import njit
    _jit = njit(cache=True, nogil=True)
    _ladder, _heat, _fan_terms, _solve, _state = pk.ladder_rates, pk.heat, pk._fan_terms_c, pk._solve_c, pk._state_c
    (_gpu_states, _rep_exponent, _gpu_work, _clock0, _node_pre, _node_other, _interp, _power, _sealed_air,
     _hot_nodes) = (_jit(f) for f in (_gpu_states, _rep_exponent, _gpu_work, _clock0, _node_pre, _node_other, _interp,
                                      _power, _sealed_air, _hot_nodes))
    _balance = _jit(_balance)
    pre, mid, power_ladder, air_heat = (_jit(f) for f in (_pre, _mid, _power_ladder, _air_heat))
    balance = _balance
    gpu_work, interp, power, limit_step = _gpu_work, _interp, _power, pk.limit_step
except ImportError:  # pragma: no cover - without numba the plant takes its numpy path (plant_kernel.resolve)
    pre = gpu_work = mid = power_ladder = balance = air_heat = interp = power = limit_step = None
