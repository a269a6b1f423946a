"""The facility power cap controller (the `facility_power_cap` fault): GPU clocks that hold it.

Each tick the plant hands a CapPreview (clocks before the cap, each GPU's idle floor, DRAM
traffic and SM utilisation, the nodes' other DC power, the plant's facility function); the
controller bisects for one uniform per-GPU limit (twin.model.facility) and returns the clocks. It also budgets ignitions: a unit may start only if the facility would still fit
with every GPU at its lowest clock. Regime changes (engaged / released / infeasible) are events,
not every tick. Without a cap (`cap_w` infinite) it returns the clocks unchanged.

One controller exists; the plant only knows the ClockLimiter protocol, which is the seam for
another. When the plant runs compiled (CapPreview.kernels "numba") each trial limit goes through
twin.sim.plant_step_kernel's passes (CapSearch): the same clocks and watts as the numpy
functions, bit for bit (tests/test_plant_step.py).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np

from twin.model import power as pw
from twin.model.facility import BINDING, INFEASIBLE, UNDER, solve_gpu_limit_w
from twin.sim.events import EventLog, Kind
from twin.sim.layout import Layout
from twin.sim import plant_step_kernel as sk
from twin.sim.plant import CapPreview
from twin.sim.plant_step import BoardLimit
from twin.spec.catalogue import GpuSpec, PsuSpec

_REGIME_EVENT = {UNDER: Kind.POWER_CAP_RELEASED, BINDING: Kind.POWER_CAP_ENGAGED,
                 INFEASIBLE: Kind.POWER_CAP_INFEASIBLE}


class FacilityCap:
    """Holds facility power <= cap_w by limiting every GPU alike."""

    def __init__(self, gpu: GpuSpec, psu: PsuSpec, input_v: int, gpu_node: np.ndarray, n_nodes: int,
                 layout: Layout, node_floor_wall_w: float, log: EventLog) -> None:
        self.gpu, self.psu, self.input_v, self.gpu_node, self.N = gpu, psu, input_v, gpu_node, n_nodes
        self.lay, self.log = layout, log
        self.node_floor_wall_w = node_floor_wall_w  # a loading node with idle GPUs: what capping cannot remove
        self.cap_w = math.inf          # W at the utility meter
        self.gpu_limit_w = math.inf    # per-GPU limit applied now
        self.regime = UNDER
        self.floor_w = 0.0             # facility power with every GPU at its lowest clock (+ units let in since)
        self.floor_it_w = 0.0          # the IT power behind it
        # facility W at an IT load: the plant's (Plant.facility_w), set by the engine once both exist
        self.facility_w_at: Callable[[float], float] = lambda it_w: it_w
        self._search: CapSearch | None = None   # the compiled search's buffers, made on first use

    def clock_limit(self, pv: CapPreview) -> np.ndarray:
        """GPU clocks that keep facility power <= cap_w this tick (everything else taken as given)."""
        if not math.isfinite(self.cap_w):
            return pv.clock0
        gpu = self.gpu
        if pv.kernels == "numba" and sk.power is not None:
            if self._search is None:
                self._search = CapSearch(gpu, self.psu, self.input_v, self.gpu_node, self.N)
            clock_at, it_at = partial(self._search.clock_at, pv), partial(self._search.it_at, pv)
        else:
            def clock_at(limit_w: float) -> np.ndarray:
                return np.minimum(pv.clock0, pw.clock_for_board_limit(limit_w, pv.idle_w, pv.mem_gb_s, pv.sm_util,
                                                                      gpu))

            def it_at(limit_w: float) -> float:
                g = np.where(pv.powered, pw.gpu_board_power_w(pv.idle_w, pv.mem_gb_s, pv.sm_util, clock_at(limit_w),
                                                              gpu), 0.0)
                dc = np.bincount(self.gpu_node, weights=g, minlength=self.N) + pv.other_dc_w
                return float(pw.wall_power_w(dc, self.psu, pv.psus_working, self.input_v).sum())

        sol = solve_gpu_limit_w(lambda lim: pv.facility_w_at(it_at(lim)), self.cap_w, float(gpu.board_power_w))
        self.floor_w = sol.floor_w  # the scheduler's ignition budget starts from here
        self.floor_it_w = it_at(0.0)
        self.gpu_limit_w = sol.limit_w
        cap_kw = self.cap_w / 1e3
        if sol.regime == UNDER:
            self._transition(UNDER, f"facility {sol.full_w / 1e3:.1f} kW under cap {cap_kw:.1f} kW")
            return pv.clock0
        if sol.regime == INFEASIBLE:
            self._transition(INFEASIBLE, f"facility {sol.floor_w / 1e3:.1f} kW at lowest GPU clocks > cap "
                                         f"{cap_kw:.1f} kW")
        else:
            self._transition(BINDING, f"GPUs limited to {sol.limit_w:.0f} W to hold facility <= {cap_kw:.1f} kW "
                                      f"(uncapped {sol.full_w / 1e3:.1f} kW)")
        return clock_at(sol.limit_w)

    def set_cap(self, cap_w: float) -> None:
        """A new cap (inf lifts it; the release is an event at once)."""
        self.cap_w = cap_w
        if not math.isfinite(cap_w):
            self._transition(UNDER, "cap lifted")

    def _transition(self, new: str, detail: str) -> None:
        """Record the controller's regime changes (not every tick)."""
        if new == self.regime:
            return
        self.regime = new
        self.log.emit(_REGIME_EVENT[new], -1, -1, detail)

    def allows_ignition(self, u: int) -> bool:
        """Under a cap, ignite unit u only if the facility would still fit with every GPU at its lowest
        clock (the controller can then absorb the newcomer by capping clocks further)."""
        if not math.isfinite(self.cap_w):
            return True
        nodes = self.lay.unit_nodes[u]
        add_it = len(nodes) * self.node_floor_wall_w
        # the plant's marginal watts for that IT (fans, pumps, chiller part load, UPS losses)
        f = self.facility_w_at
        add_w = f(self.floor_it_w + add_it) - f(self.floor_it_w)
        if self.floor_w + add_w <= self.cap_w:
            self.floor_w += add_w
            self.floor_it_w += add_it
            return True
        self.log.emit(Kind.IGNITION_DELAYED, int(nodes[0]), -1,
                      f"unit {u}: facility_power_cap {self.cap_w / 1e3:.1f} kW (floor {self.floor_w / 1e3:.1f} kW "
                      f"+ {add_w / 1e3:.1f} kW)")
        return False


class CapSearch:
    """FacilityCap's clock_at / it_at for one room through compiled passes: the board limiter at a
    uniform limit (plant_step.BoardLimit), numpy's c^3, then GPU, node DC and wall power
    (plant_step_kernel's power pass) and numpy's pairwise sum of the wall watts. Owns its buffers."""

    def __init__(self, gpu: GpuSpec, psu: PsuSpec, input_v: int, gpu_node: np.ndarray, n_nodes: int) -> None:
        g = len(gpu_node)
        self.gpn = g // max(n_nodes, 1)
        if not np.array_equal(gpu_node, np.arange(g) // max(self.gpn, 1)):
            raise ValueError("topology: GPUs must be numbered node by node for the compiled cap search")
        self.limiter = BoardLimit(gpu, g)
        curve = pw.psu_curve(psu, input_v)   # what wall_power_w builds per call: the same numbers
        self.pts = np.ascontiguousarray(curve.load_frac, dtype=float)
        self.eff = np.ascontiguousarray(curve.efficiency, dtype=float)
        w_dram, w_mem, w_sm = self.limiter.w
        self.power_k = np.array([w_dram, w_mem - w_dram, w_sm, psu.rated_w, psu.standby_w, curve.fixed_loss,
                                 curve.prop_loss, 0.0], dtype=float)
        self.lim, self.c, self.c3, self.g_pow = (np.empty(g) for _ in range(4))
        self.node_gpu, self.dc, self.wall = np.empty(n_nodes), np.empty(n_nodes), np.empty(n_nodes)
        self.off, self.over = np.zeros(n_nodes, dtype=bool), np.empty(n_nodes, dtype=np.int64)

    def clock_at(self, pv: CapPreview, limit_w: float) -> np.ndarray:
        """min(clock0, pw.clock_for_board_limit(limit_w, ...)), a new array."""
        self.lim.fill(limit_w)   # the scalar limit as numpy broadcasts it: the same value per GPU
        return np.minimum(pv.clock0, self.limiter.clock(self.lim, pv.idle_w, pv.mem_gb_s, pv.sm_util))

    def it_at(self, pv: CapPreview, limit_w: float) -> float:
        """IT (wall) power with every GPU limited to limit_w, W."""
        c, c3 = self.c, self.c3
        pw.clip(self.clock_at(pv, limit_w), 0.0, 1.0, out=c)
        np.power(c, 3, out=c3)
        sk.power(self.gpn, pv.powered, pv.idle_w, pv.mem_gb_s, pv.sm_util, c, c3, pv.other_dc_w, pv.psus_working,
                 pv.psus_working, self.off, self.pts, self.eff, self.g_pow, self.node_gpu, self.dc, self.wall, self.over,
                 self.power_k)
        return float(self.wall.sum())
