"""THE composition of a node's power: GPUs + CPU + memory + platform + NIC + chassis fans.

One definition, used by the engine (vectorised over nodes every tick), `twin predict` (one box)
and the design checks (the peak envelope). Each part's model is a pure function of
twin.model.power; this module only says which parts a node has, when each draws, and in which
order they add up (so that every caller gets the same watts to the last bit).

DC power = GPUs + (CPU + DIMMs + platform + NIC + fans); wall power goes through the PSU curve
for the node's mains voltage (power.wall_power_w). GPU board power itself is
power.gpu_board_power_w (idle by P-state + memory term + SM term). Parts that are off draw nothing: CPU, DIMMs and platform when the node is
unpowered, the NIC also during POWERING_ON (link training starts with the OS), fans when they
are not driven (a coasting fan draws nothing). Source: hardware.md "Node power".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.model import power as pw
from twin.model.states import BOOTING, DRAINING, IS_LOADED, LOADING, NODE_STATES, POWERING_ON, SERVING, WARM
from twin.spec.catalogue import CpuSpec, FanSpec, NicSpec, NodeSpec, PsuSpec

CPU_UTIL_POWERING_ON = 0.1  # estimate: BMC + firmware before the OS (hardware.md "Boot and load")
# DIMM activity (0 idle .. 1 full) by node state: the OS and the weight copies stream memory
DIMM_ACTIVITY = {POWERING_ON: 0.0, BOOTING: 1.0, LOADING: 1.0, WARM: 0.0, SERVING: 0.5, DRAINING: 0.5}


def cpu_util_table(node: NodeSpec) -> np.ndarray:
    """CPU utilisation by lifecycle state outside the loaded states: POWERING_ON, the node's boot
    and load figures, 0 when off (indexed by state)."""
    table = np.zeros(len(NODE_STATES))
    table[[POWERING_ON, BOOTING, LOADING]] = CPU_UTIL_POWERING_ON, node.cpu_util_booting, node.cpu_util_loading
    return table


def cpu_util_for_state(node: NodeSpec, state: np.ndarray, work_util: np.ndarray | float,
                       table: np.ndarray | None = None) -> np.ndarray:
    """CPU utilisation by lifecycle state: the node's boot and load figures, and while a model is
    resident (WARM, SERVING, DRAINING) what the workload asks of it (`work_util`:
    power.host_cpu_util of the engines' busy loops and per-token host work). One gather from a
    per-state table (cpu_util_table(node); pass it to build it once), no per-state masks: this
    runs every tick over every node."""
    st = np.asarray(state)
    tab = cpu_util_table(node) if table is None else table
    return np.where(IS_LOADED[st], np.asarray(work_util, dtype=float), tab[st])


_DIMM_TABLE = np.zeros(len(NODE_STATES))
_DIMM_TABLE[list(DIMM_ACTIVITY)] = list(DIMM_ACTIVITY.values())
_DIMM_TABLE.flags.writeable = False


def dimm_activity_for_state(state: np.ndarray) -> np.ndarray:
    """DIMM activity by lifecycle state (DIMM_ACTIVITY; 0 for OFF and FAILED), one table gather."""
    return _DIMM_TABLE[np.asarray(state)]


@dataclass(frozen=True)
class NodeParts:
    """DC power of a node's non-GPU parts, W (arrays over nodes, or 0-d for one node)."""
    cpu_w: np.ndarray
    dimm_w: np.ndarray
    platform_w: np.ndarray
    nic_w: np.ndarray
    fan_w: np.ndarray

    @property
    def upstream_w(self) -> np.ndarray:
        """Heat released upstream of the GPUs in the chassis air (CPU, memory, platform)."""
        return self.cpu_w + self.dimm_w + self.platform_w

    @property
    def other_w(self) -> np.ndarray:
        """Everything but the GPUs."""
        return self.cpu_w + self.dimm_w + self.platform_w + self.nic_w + self.fan_w

    def dc_w(self, gpu_w: np.ndarray | float) -> np.ndarray:
        """Node DC power with its GPUs drawing `gpu_w` in total."""
        return gpu_w + self.other_w


def node_parts_w(node: NodeSpec, cpu: CpuSpec, nic: NicSpec, fan: FanSpec, *, cpu_util: np.ndarray | float,
                 dimm_activity: np.ndarray | float, fan_rpm: np.ndarray | float,
                 powered: np.ndarray | bool = True, nic_powered: np.ndarray | bool = True,
                 fans_driven: np.ndarray | bool = True) -> NodeParts:
    """Power of every non-GPU part from its operating point (power.cpu_power_w linear in
    utilisation, DIMMs from idle to active, the platform constant, the NIC on/off, chassis fans by
    the affinity law in rpm)."""
    return NodeParts(
        cpu_w=np.where(powered, pw.cpu_power_w(cpu.idle_power_w, cpu.tdp_w, cpu_util), 0.0),
        dimm_w=np.where(powered, node.dimms * (node.dimm_idle_w + (node.dimm_power_w - node.dimm_idle_w)
                                               * np.asarray(dimm_activity, dtype=float)), 0.0),
        platform_w=np.where(powered, node.platform_power_w, 0.0),
        nic_w=np.where(nic_powered, nic.power_w, 0.0),
        fan_w=np.where(fans_driven, node.chassis_fan_count * pw.fan_power_w(fan.max_power_w, fan_rpm, fan.max_rpm),
                       0.0),
    )


def peak_parts_w(node: NodeSpec, cpu: CpuSpec, nic: NicSpec, fan: FanSpec) -> NodeParts:
    """Every non-GPU part at its limit: CPU at TDP, DIMMs active, fans at full speed."""
    return node_parts_w(node, cpu, nic, fan, cpu_util=1.0, dimm_activity=1.0, fan_rpm=fan.max_rpm)


def node_wall_w(node: NodeSpec, parts: NodeParts, gpu_w: float, psu: PsuSpec) -> float:
    """Wall power of one node whose GPUs draw `gpu_w` in total, all its PSUs working, on the node's
    mains voltage (the PSU's 80 PLUS curve for it)."""
    return float(pw.wall_power_w(np.float64(float(parts.dc_w(gpu_w))), psu, node.psu_count, node.input_voltage_v))
