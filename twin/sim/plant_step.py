"""Plant.step through compiled passes (twin.sim.plant_step_kernel, twin.sim.plant_kernel): the
same tick as Plant's numpy step, in the same order, to the last bit, with the per-tick numpy
calls fused into loops over GPUs, nodes and racks and the buffers allocated once per run.

Between the passes stays numpy what must be numpy's own: the MoE share's pow per pool, the
board limiter's x^3 per Newton step, the chassis fans' cube, the board power's c^3, the
heatsink's f^0.8 and the ladder's exponentials, and the pairwise sums (rack exhaust mean,
blower total, IT power). The facility cap (the ClockLimiter) sits between the GPU clocks and
GPU power as in the numpy step. `Plant(kernels="numpy")` keeps the numpy step, which is the
reference (tests/test_plant_step.py compares them).

The board limiter's first Newton step runs inside the work pass (from c = 1, whose cube needs no
pow); each later step is one numpy pow over the GPUs still moving and one short kernel call
(NewtonRounds). The tick's outputs go into two buffer sets that alternate, so a tick
allocates nothing and the outputs the engine reads stay intact until the tick after next.
FacilityTerms is cooling.plant_power per tick with its load-independent terms cached (both paths).
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np

from twin.model import airflow as af
from twin.model import cooling
from twin.model import power as pw
from twin.model import thermal as th
from twin.model.cpu_load import CPU_COOLER_R_K_PER_W, CPU_HEAT_CAPACITY_J_PER_K
from twin.model.node_power import _DIMM_TABLE
from twin.model.states import DRAINING, FAILED, IS_LOADED, LOADING, OFF, POWERING_ON, SERVING, WARM
from twin.model.thermal import CHASSIS_FAN_TAU_S, FAN_START_C, GPU_FAN_TAU_S
from twin.model.training import TRAIN_DRAM_FRAC, TRAINING_ACTIVITY
from twin.sim import plant_kernel as pk
from twin.sim import plant_step_kernel as sk


def _as_slice(reps: np.ndarray) -> slice | np.ndarray:
    """A pool's replica ids as a slice when they are consecutive (a view instead of a gather)."""
    r = np.asarray(reps)
    return slice(int(r[0]), int(r[-1]) + 1) if np.array_equal(r, np.arange(r[0], r[-1] + 1)) else r


class NewtonRounds:
    """The Python side of the limiter's rounds: numpy's x^3 over the m GPUs still moving, then
    limit_step, until none moves or n_steps are done (the first step is the caller's kernel's).
    Row views of nw per m are made once and kept (a tick's m repeat)."""

    def __init__(self, nw: np.ndarray) -> None:
        self.nw, self._views = nw, {}

    def run(self, n: int, idx: np.ndarray, c_lim: np.ndarray) -> int:
        """Steps 2..LIMIT_NEWTON_STEPS; returns how many still move after the last (their clocks:
        nw[NW_X, :n])."""
        nw, views, power, step_c = self.nw, self._views, np.power, pk.limit_step
        steps, floor = pw.LIMIT_NEWTON_STEPS, pw.CLOCK_FLOOR
        for step in range(2, steps + 1):
            if not n:
                break
            v = views.get(n)
            if v is None:
                v = views[n] = (nw[pk.NW_X, :n], nw[pk.NW_X3, :n])
            power(v[0], 3, v[1])
            n = step_c(nw, idx, n, floor, c_lim, step, steps)
        return n


class BoardLimit:
    """pw.clock_for_board_limit for a room's (G,) GPUs with the Newton bookkeeping compiled and x^3
    by numpy between the passes: the same clocks, bit for bit. Each step takes only the GPUs whose
    clock still moves (limit_step: a fixed point or a 2-cycle settles a GPU's last clock early).
    Owns its buffers; `clock` returns a new array."""

    def __init__(self, gpu, n_gpus: int) -> None:
        self.w = (float(pw.gpu_dram_w_per_gb_s(gpu)), float(pw.gpu_memory_w_per_gb_s(gpu)), float(pw.gpu_sm_power_w(gpu)))
        self.idx = np.empty(n_gpus, dtype=np.int64)
        self.nw = np.empty((6, n_gpus))
        self.rounds = NewtonRounds(self.nw)

    def clock(self, limit_w: np.ndarray, idle_w: np.ndarray, mem_gb_s: np.ndarray, sm_util: np.ndarray) -> np.ndarray:
        c = np.ones(len(idle_w))
        n = pk._limit_over_c(limit_w, idle_w, mem_gb_s, sm_util, *self.w, self.nw, self.idx, pw.CLOCK_FLOOR, c)
        n = self.rounds.run(n, self.idx, c)
        c[self.idx[:n]] = self.nw[pk.NW_X, :n]   # still moving after the last step
        return c


class CompiledStep:
    """The compiled tick of one Plant: per-run constants and buffers (the plant's integrated state
    stays the plant's and is updated in place)."""

    def __init__(self, plant, loading_gb_s: float, chunk_tokens: float) -> None:
        p = plant
        gpu, fac, dt, N, G, R = p.gpu, p.fac, p.dt, p.N, p.G, p.R
        if not np.array_equal(p.topo.gpu_node, np.arange(G) // p.gpn):
            raise ValueError("topology: GPUs must be numbered node by node for the compiled plant step")
        lay = p.lay
        self.loading_gb_s, self.chunk = float(loading_gb_s), float(chunk_tokens)
        # per pool, the constants of pw.replica_gpu_work in the order plant_step_kernel._gpu_work
        # reads them (one row per pool)
        rows = []
        for pf, split in zip(lay.perf, lay.splits):
            rows.append([float(pf.weights_bytes), float(pf.kv_bytes_per_token), float(pf.state_bytes_per_seq),
                         float(pf.n_gpus), float(pf.pp), pf.decode_tflops * 1e12, float(pf.active_params),
                         2.0 * pf.active_params, float(pf.prefill_gpus), 1.0 if split is None else split.gpu_frac,
                         0.0 if split is None else 1.0])
        self.pool_k = np.array(rows, dtype=float).reshape(len(rows), 11)
        self.pools = [(_as_slice(reps), 1.0 - pf.active_fraction) for pf, reps in zip(lay.perf, lay.pool_reps)
                      if len(reps)]
        self.rep_pp = np.asarray(lay.rep_pp, dtype=float)
        n_rep = lay.n_rep
        self.rep_clock, self.e, self.untouched, self.rep_gb, self.rep_u = (np.empty(n_rep) for _ in range(5))
        self.ones_rep, self.zeros_g, self.zeros_n, self.zeros_r = np.ones(n_rep), np.zeros(G), np.zeros(N), np.zeros(R)
        self.rack_in, self.leak = np.empty(R), np.empty(R)
        self.flags = np.zeros(G, dtype=np.int8)
        self.gb_s, self.sm_u, self.c_th, self.c, self.c3, self.c_lim = (np.empty(G) for _ in range(6))
        self.idx = np.empty(G, dtype=np.int64)
        self.nw = np.empty((6, G))   # the board limiter's Newton state (plant_kernel.NW_*)
        self.rounds, self.nx = NewtonRounds(self.nw), self.nw[pk.NW_X]
        self.board_w = BoardLimit(gpu, G).w                      # (w_dram, w_mem, w_sm)
        self.busy, self.tok, self.ratio, self.ratio3 = (np.empty(N) for _ in range(4))
        self.driven = np.zeros(N, dtype=bool)
        self.dimm_w, self.plat_w, self.nic_w, self.fan_w, self.upstream = (np.empty(N) for _ in range(5))
        self.over = np.empty(N, dtype=np.int64)
        self.live = np.array([WARM, SERVING, DRAINING], dtype=np.int64)
        self.is_loaded = np.ascontiguousarray(IS_LOADED)
        self.k_fan = float(np.exp(-dt / CHASSIS_FAN_TAU_S))          # thermal.first_order_lag's factor
        self.psu_pts = np.ascontiguousarray(p._psu_curve.load_frac, dtype=float)
        self.psu_eff = np.ascontiguousarray(p._psu_curve.efficiency, dtype=float)
        self.w_chip = pw.gpu_memory_w_per_gb_s(gpu) - pw.gpu_dram_w_per_gb_s(gpu)
        self.sealed = fac.containment == "sealed"
        if self.sealed:  # the balance's fixed terms once: fans, racks, blowers and air never change
            sr = fac.sealed_rack
            h = af.balance_terms(p._fan_groups, R, sr.blower_free_flow_m3_s, sr.blower_shutoff_pa,
                                 sr.blower_speed_frac, sr.leakage_area_m2, fac.air_density_kg_m3)
            # own buffers for the speed terms: every tick rewrites them in place (plant_kernel.BalanceCache)
            self.terms = replace(h, **{f: np.empty(N + G) for f in ("s", "b", "head0", "cap")})
            self.group_rack = np.ascontiguousarray(p.topo.node_rack[p._fan_groups.node])
        self._heat_setup(p)
        # the kernels' per-run constants (plant_step_kernel: each kernel names its rows)
        w_dram, w_mem, w_sm = self.board_w
        f64 = partial(np.array, dtype=float)
        self.work_k = f64([self.chunk, self.loading_gb_s, TRAINING_ACTIVITY, TRAIN_DRAM_FRAC, gpu.memory_bandwidth_gb_s,
                           gpu.pstate_decay_s, 1.0 if gpu.context_holds_p0 else 0.0, pw.gpu_active_idle_w(gpu),
                           gpu.idle_power_w, gpu.slowdown_temp_c, gpu.shutdown_temp_c, gpu.board_power_w, w_dram, w_mem,
                           w_sm, pw.CLOCK_FLOOR])
        node, fan, cpu = p.node, p.fan, p.cpu
        self.node_ki = np.array([p.gpn, OFF, FAILED, POWERING_ON, WARM, SERVING, DRAINING, LOADING], dtype=np.int64)
        self.node_k = f64([fan.min_rpm, fan.max_rpm, FAN_START_C, gpu.fan_target_c - FAN_START_C, self.k_fan,
                           p.core_s_per_token, cpu.cores, cpu.idle_power_w, cpu.tdp_w, node.dimms, node.dimm_idle_w,
                           node.dimm_power_w, node.platform_power_w, p.nic.power_w])
        self.mid_k = f64([gpu.min_fan_frac, FAN_START_C, gpu.fan_target_c - FAN_START_C, node.chassis_fan_count,
                          fan.max_power_w, self.hb["fan_floor"]])
        pc = p._psu_curve
        self.power_k = f64([w_dram, self.w_chip, w_sm, p.psu.rated_w, p.psu.standby_w, pc.fixed_loss, pc.prop_loss,
                            node.psu_count])
        self.ladder_a = f64(self.ladder_k)
        self.balance_k = f64([af.BALANCE_RANGE_PA, af.BALANCE_TOL_M3_S, af.NEWTON_STEPS, af.GUESS_SPAN_PA,
                              af.BALANCE_STEPS])
        self.hot_nodes = np.empty(N, dtype=p._no_nodes.dtype)
        self.changed = np.empty(min(G, 1000), dtype=np.int64)   # Alarms.throttle_changed: the first 1,000
        self.blower, self.node_m3_s = np.empty(R), np.empty(N)   # (open racks: placeholders for the balance's)
        # the tick's outputs in two sets that alternate tick by tick: PlantOutputs holds one tick's, which
        # the engine, sampler, jobs and lifecycle read before the next tick, while the other is written
        # (so nothing the next tick reads, e.g. out.gpu_clock, is overwritten under it); no fresh arrays
        self._sets = [{**{k: np.empty(G) for k in ("util", "clock0", "g_pow")},
                       **{k: np.empty(N) for k in ("gmax", "cpu_util", "cpu_w", "node_gpu", "node_dc", "wall", "inlet",
                                                   "node_m3_s", "exhaust")},
                       **{k: np.empty(R) for k in ("demand", "hot", "blower")}} for _ in range(2)]
        self.o, self._tick = self._sets[0], 0
        # what only this tick's passes (and the clock limiter, at once) read: one set
        self.idle_w, self.powered, self.on = np.empty(G), np.empty(G, dtype=bool), np.empty(N, dtype=bool)
        self.other, self.psus = np.empty(N), np.empty(N, dtype=np.int64)
        if self.sealed:
            self.cd_area = af.ORIFICE_CD * fac.sealed_rack.leakage_area_m2
            self.rho = float(fac.air_density_kg_m3)
        e0, i0 = np.empty(0), np.empty(0, dtype=np.int64)
        self.no_balance = (self.ratio, e0, e0, e0, e0, e0, e0, e0, self.zeros_r, False, i0, e0, e0, e0, e0, e0, 0.0,
                           0.0, i0, e0, 0.0, 0.0, self.blower, self.leak, self.node_m3_s, self.balance_k)

    # ------------------------------------------------------------------ heat constants
    def _heat_setup(self, p) -> None:
        """The compiled heat step's per-run constants (each computed as Plant._heat_numpy computes
        it, so the same bytes) and the buffers it writes into."""
        gpu, node, fac, dt, G = p.gpu, p.node, p.fac, p.dt, p.G
        r_spr, _ = th.gpu_stage_resistances(gpu, np.ones(1))
        c_die, c_sink = th.gpu_spreader_capacity_j_per_k(gpu), th.gpu_heatsink_capacity_j_per_k(gpu)
        a, b, c = -1.0 / (r_spr * c_die), 1.0 / (r_spr * c_die), 1.0 / (r_spr * c_sink)
        lim = gpu.memory_junction_max_c
        self.heat_k = (
            float(dt), CPU_COOLER_R_K_PER_W, float(np.exp(-dt / (CPU_COOLER_R_K_PER_W * CPU_HEAT_CAPACITY_J_PER_K))),
            CPU_HEAT_CAPACITY_J_PER_K, th.NO_FLOW_M3_S, float(node.gpu_preheat_frac),
            fac.air_density_kg_m3 * th.CP_AIR_J_PER_KG_K, float(r_spr), a, b, c, float(c_die), float(c_sink),
            float(pw.gpu_dram_w_per_gb_s(gpu)), float(gpu.memory_resistance_k_per_w),
            float(np.exp(-dt / gpu.memory_time_constant_s)), 0.0 if lim is None else float(lim), lim is not None,
            th.MEMORY_THROTTLE_SPAN_K, 1.0 - th.MEMORY_THROTTLE_MIN, th.MEMORY_THROTTLE_MIN, float(gpu.min_fan_frac),
            FAN_START_C, float(gpu.fan_target_c - FAN_START_C), float(np.exp(-dt / GPU_FAN_TAU_S)),
            float(gpu.slowdown_temp_c), float(gpu.shutdown_temp_c))
        self.ladder_k = (gpu.thermal_resistance_k_per_w - r_spr, 1.0 / r_spr, a, b * c, c_sink, float(dt))
        self.hb = {k: np.empty(G) for k in ("x", "r_s", "d", "l1", "l2")}
        # the ladder's two exponents per GPU as the rows of one buffer: one numpy exp for both
        self.hb["e12"] = np.empty((2, G))
        self.hb["e1"], self.hb["e2"] = self.hb["e12"]
        self.hb.update(exhaust=np.empty(p.N), flow=np.empty(p.R), flow_w=np.empty(p.R),
                       throttled=np.zeros(G, dtype=bool))
        self.hb["fan_floor"] = gpu.min_fan_frac * 0.2
        p.gpu_temp, p.gpu_sink, p.gpu_mem = (np.array(x, dtype=float) for x in (p.gpu_temp, p.gpu_sink, p.gpu_mem))
        p.gpu_mem_clock = np.ones(G)
        p.fan_rpm, p.gpu_fan = np.array(p.fan_rpm, dtype=float), np.array(p.gpu_fan, dtype=float)

    # ------------------------------------------------------------------ the tick, in Plant.step's order
    def clocks(self, p, st, gpu_ok, serving, rep_share, gpu_train, cpu_extra_util):
        """GPU work, P-states and clocks before any facility cap; the nodes' other parts. Returns
        (gpu_util, powered, idle_w, clock0, on, gmax, cpu_util, cpu_w, other_w, psus)."""
        lay = p.lay
        o = self.o = self._sets[self._tick & 1]
        self._tick += 1
        util, idle_w, clock0, powered = o["util"], self.idle_w, o["clock0"], self.powered
        on, gmax, cpu_util, cpu_w = self.on, o["gmax"], o["cpu_util"], o["cpu_w"]
        other, psus = self.other, self.psus
        flags, e, untouched = self.flags, self.e, self.untouched
        sk.pre(st, p._has_rep, gpu_ok, p.gpair_rep, p.gpair_gpu, serving.prefill_frac, serving.decode_frac,
               self.ones_rep if rep_share is None else rep_share, rep_share is not None, flags, util, p.out.gpu_clock,
               lay.rep_gpus, serving.decode_batch, self.rep_pp, self.rep_clock, e, p.gpu_temp, p.fan_rpm, p.fan_ok,
               p.fresh, p.pair_node, p.pair_rep, p._pair_busy, p._pair_share, serving.tokens_s, serving.prefill_tok_s,
               self.zeros_n if cpu_extra_util is None else cpu_extra_util, cpu_extra_util is not None,
               self.is_loaded, p._cpu_table, _DIMM_TABLE, on, self.driven, gmax, self.ratio, self.busy, self.tok,
               cpu_util, cpu_w, self.dimm_w, self.plat_w, self.nic_w, self.node_ki, self.node_k)
        for reps, base in self.pools:  # as serving.weight_bytes_read's (1 - f) ** b: numpy's pow per pool
            if isinstance(reps, slice):
                np.power(base, e[reps], out=untouched[reps])
            else:
                untouched[reps] = base ** e[reps]
        np.power(self.ratio, 3, out=self.ratio3)   # pw.fan_power_w's affinity-law cube
        n = sk.gpu_work(lay.rep_pool, self.pool_k, untouched, self.rep_clock, serving.decode_batch, serving.kv_tokens,
                        serving.interval_s, serving.decode_time_frac, serving.prefill_tok_s, p.gpair_rep, p.gpair_gpu,
                        flags, p.gpu_mem_clock, self.zeros_g if gpu_train is None else gpu_train, gpu_train is not None,
                        p.t_s, p.gpu_last_work_s, p.gpu_temp, p.gpu_cap_w, self.rep_gb, self.rep_u, self.gb_s,
                        self.sm_u, util, idle_w, self.c_th, self.c_lim, self.nw, self.idx, self.work_k)
        # the board limiter's Newton steps after the first (in gpu_work), x^3 by numpy between them,
        # each on the GPUs whose clock still moves
        n = self.rounds.run(n, self.idx, self.c_lim)
        fx = self.hb["x"]
        # clock0, the nodes' other power, and (sealed racks) the chamber balance at this tick's fan speeds
        if self.sealed:
            sr, h, fans = p.fac.sealed_rack, self.terms, p._fan_groups
            plenum = float(sr.plenum_pa * p.plenum_frac ** 2)
            guess = p.rack_pa
            bal = (self.ratio, p._fan_speed, fans.shutoff_pa, fans.free_flow_m3_s, h.s, h.b, h.head0, h.cap,
                   self.zeros_r if guess is None else guess, guess is not None, self.group_rack, fans.count, h.two_k,
                   h.q0b, h.p0b, h.capb, plenum, h.leak_c, fans.node, fans.k_pa_s2_m6, self.cd_area, self.rho,
                   o["blower"], self.leak, o["node_m3_s"], self.balance_k)
        else:
            bal = self.no_balance
        pa = sk.mid(n, self.idx, self.nx, self.c_lim, flags, self.c_th, p.fresh, p.gpu_temp, p.gpu_fan, clock0, powered, fx,
                    self.driven, self.ratio3, cpu_w, self.dimm_w, self.plat_w, self.nic_w, p.psu_ok, self.fan_w, other,
                    self.upstream, psus, self.mid_k, self.sealed, *bal)
        if self.sealed:
            p.rack_pa = pa
        p.fresh = False
        np.power(fx, th.FAN_RESISTANCE_EXPONENT, out=fx)   # the heatsink's f^0.8 (thermal.gpu_thermal_resistance_k_per_w)
        return util, powered, idle_w, clock0, on, gmax, cpu_util, cpu_w, other, psus

    def power(self, p, clock, powered, idle_w, other, psus, on):
        """GPU board power at the clocks the limiter chose; node GPU, DC and wall power; overloads;
        the heat ladder's rates (their exponentials by numpy)."""
        hb = self.hb
        c, c3 = self.c, self.c3
        pw.clip(clock, 0.0, 1.0, out=c)
        np.power(c, 3, out=c3)   # pw.gpu_board_power_w's c ** 3
        o = self.o
        g_pow, node_gpu, node_dc, wall = o["g_pow"], o["node_gpu"], o["node_dc"], o["wall"]
        e1, e2 = hb["e1"], hb["e2"]
        n = sk.power_ladder(p.gpn, powered, idle_w, self.gb_s, self.sm_u, c, c3, other, psus, p.psu_ok, on,
                            self.psu_pts, self.psu_eff, g_pow, node_gpu, node_dc, wall, self.over, self.power_k,
                            hb["x"], self.ladder_a, hb["r_s"], hb["d"], hb["l1"], hb["l2"], e1, e2)
        np.exp(hb["e12"], out=hb["e12"])   # numpy's exp per element (tests/test_plant_step.py)
        return g_pow, node_gpu, node_dc, wall, self.over[:n].copy()

    def air_heat(self, p, on, cpu_w, node_dc, g_pow, powered) -> tuple[np.ndarray, ...]:
        """Plant._air (sealed racks: the balance `clocks` solved) and Plant._heat_numpy through
        plant_kernel.heat: (airflow, inlet, demand, supply, recirc, exhaust, throttled, hot nodes,
        throttle changes); the integrated state updated in place."""
        R, hb = p.R, self.hb
        if self.sealed:
            o = self.o
            blower, node_m3_s = o["blower"], o["node_m3_s"]
            # blowers drawing more than the running CRAHs deliver pull room air back through the floor;
            # np.mean is np.add.reduce / count
            blow_c = float(af.blower_intake_c(p.supply_c, float(np.add.reduce(p.rack_exhaust) / R),
                                              float(np.add.reduce(blower)), p.crah_airflow_m3_s))
            hot, inlet, demand, supply = o["hot"], o["inlet"], o["demand"], blower
        else:
            node_m3_s, inlet, demand, supply, hot = p._air()
            blow_c = 0.0
        thr, exhaust = hb["throttled"], self.o["exhaust"]
        n_hot, n_changed = sk.air_heat(
            self.sealed, p.topo.node_rack, node_m3_s, supply, self.leak, blow_c, self.rack_in, hot, inlet, demand,
            p.gpn, on, cpu_w, self.upstream, node_dc, g_pow, self.gb_s, powered, hb["r_s"], hb["d"], hb["l1"],
            hb["l2"], hb["e1"], hb["e2"], p.cpu_temp, p.gpu_temp, p.gpu_sink, p.gpu_mem, p.gpu_fan, p.rack_exhaust,
            exhaust, hb["flow"], hb["flow_w"], p.gpu_mem_clock, thr, self.heat_k, float(p.supply_c),
            self.hot_nodes, p.gpu_throttled, self.changed)
        hb["throttled"] = p.gpu_throttled  # the two flag buffers alternate
        hot_nodes = self.hot_nodes[:n_hot].copy() if n_hot else p._no_nodes
        return (node_m3_s, inlet, demand, supply, hot, exhaust, thr, hot_nodes,
                self.changed[:n_changed].copy())

    def heat(self, p, on, airflow, inlet, cpu_w, upstream_w, node_dc, g_pow, gb_s, powered) -> tuple[np.ndarray, ...]:
        """Plant._heat_numpy alone through the same compiled passes (blower terms, ladder, exponentials,
        heat, hot nodes) on given air: (exhaust, throttled, hot nodes). For tests of the heat step."""
        hb = self.hb
        x = hb["x"]
        np.maximum(p.gpu_fan, hb["fan_floor"], out=x)
        np.maximum(x, 0.05, out=x)
        np.power(x, th.FAN_RESISTANCE_EXPONENT, out=x)
        e1, e2 = hb["e1"], hb["e2"]
        pk.ladder_rates(x, *self.ladder_k, hb["r_s"], hb["d"], hb["l1"], hb["l2"], e1, e2)
        np.exp(hb["e12"], out=hb["e12"])   # numpy's exp per element (tests/test_plant_step.py)
        thr = hb["throttled"]
        r = np.empty(p.R)
        n_hot, _ = sk.air_heat(False, p.topo.node_rack, airflow, r, r, 0.0, r, r, inlet, r, p.gpn, on, cpu_w,
                               upstream_w, node_dc, g_pow, gb_s, powered, hb["r_s"], hb["d"], hb["l1"], hb["l2"], e1,
                               e2, p.cpu_temp, p.gpu_temp, p.gpu_sink, p.gpu_mem, p.gpu_fan, p.rack_exhaust,
                               hb["exhaust"], hb["flow"], hb["flow_w"], p.gpu_mem_clock, thr, self.heat_k,
                               float(p.supply_c), self.hot_nodes, thr, self.changed)
        hb["throttled"] = p.gpu_throttled
        return hb["exhaust"].copy(), thr, self.hot_nodes[:n_hot].copy() if n_hot else p._no_nodes


class FacilityTerms:
    """cooling.plant_power and thermal.room_supply_c once per tick, with what does not depend on
    the IT load (CRAH fan power, pumps, UPS rating, the chiller's capacity / COP x EIR(T)) and the
    room's lag factor computed once per cooling condition instead of every call: the same float
    operations in the same order, so the same bits (tests/test_plant_step.py against cooling.py,
    which stays the sourced reference). Both plant paths use it."""

    def __init__(self, fac, n_racks: int) -> None:
        self.fac, self.R = fac, n_racks
        self.key: tuple[float, float] | None = None
        self._room: tuple[float, float] | None = None

    def _constants(self, capacity_w: float, crah_airflow_m3_s: float) -> None:
        fac = self.fac
        plant, el = fac.plant, fac.electrical
        design = fac.cooling_capacity_kw * 1e3
        self.ups_rating = el.ups_rating_kw * 1e3 if el.ups_rating_kw else design
        self.fans = float(cooling.crah_fan_power_w(crah_airflow_m3_s, fac.plenum_airflow_per_rack_m3_s * self.R,
                                                   plant.crah_pressure_pa, plant.crah_fan_efficiency,
                                                   plant.crah_variable_speed, plant.crah_min_speed_frac))
        self.pumps = cooling.pump_power_w(design, plant.pump_w_per_kw)
        cond_c = cooling.condenser_entering_c(plant.outdoor_wet_bulb_c, plant.tower_approach_k)
        # chiller_power_w's capacity / COP_ref x EIR_FT, left to right as there
        self.k_chiller = (capacity_w / plant.chiller_cop_ref * cooling.chiller_eir_ft(plant.chilled_water_c, cond_c)
                          if capacity_w > 0 else 0.0)
        self.key = (capacity_w, crah_airflow_m3_s)

    def at(self, it_w: float, capacity_w: float, crah_airflow_m3_s: float) -> tuple[float, float, float, float]:
        """(facility, cooling, overhead, heat excess) W at IT load `it_w`: cooling.plant_power's
        total_w, cooling_w, overhead_w and heat_excess_w (design capacity: the facility's)."""
        if self.key != (capacity_w, crah_airflow_m3_s):
            self._constants(capacity_w, crah_airflow_m3_s)
        fac = self.fac
        el, fixed_w = fac.electrical, fac.fixed_overhead_kw * 1e3
        it_w = float(it_w)
        ups = cooling.loss_w(it_w, self.ups_rating, el.ups_no_load_frac, el.ups_proportional_frac, el.ups_square_frac)
        trafo = cooling.loss_w(it_w + ups, self.ups_rating, el.transformer_no_load_frac, 0.0,
                               el.transformer_square_frac)
        heat = it_w + self.fans + ups + trafo + fixed_w
        removed = min(heat, capacity_w)
        chiller = 0.0
        if capacity_w > 0:
            q = cooling._clamp(removed, 0.0, capacity_w)
            if q > 0:
                chiller = self.k_chiller * cooling.chiller_eir_fplr(q / capacity_w)
        tower = cooling.heat_rejection_w(removed + chiller, fac.plant.tower_w_per_kw)
        cooling_w = self.fans + self.pumps + chiller + tower
        overhead_w = ups + trafo + fixed_w
        return it_w + cooling_w + overhead_w, cooling_w, overhead_w, heat - removed

    def room_supply_c(self, supply_c: float, excess_w: float, dt_s: float) -> float:
        """thermal.room_supply_c at the facility's set point, heat capacity and recovery time, the
        recovery's exp(-dt / tau) (numpy's, as first_order_lag takes it) once per dt."""
        fac = self.fac
        if excess_w > 0:
            return th.room_supply_c(supply_c, fac.supply_air_c, excess_w, fac.room_heat_capacity_j_per_k,
                                    fac.supply_recovery_s, dt_s)
        if self._room is None or self._room[0] != dt_s:
            self._room = (dt_s, float(np.exp(-dt_s / fac.supply_recovery_s)))
        sp = float(fac.supply_air_c)
        return sp + (float(supply_c) - sp) * self._room[1]
