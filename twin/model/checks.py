"""Design checks at validation time: does the node fit its PSU, does the rack fit its feed?

Pure functions of catalogue specs and the scenario's `design:` limits; no I/O. Each finding is a
one-line message that names the numbers, e.g.
``topology.node_type: 3x RTX PRO 6000 (600 W) + CPU 350 W + ... = 2,266 W > PSU 1,600 W``.
Errors are raised by :func:`twin.scenario.check_against_catalogue`; warnings travel on
``Scenario.warnings`` and are printed by ``twin validate`` / ``twin run``.

Peak power is "all parts at their limits" (GPU board power, CPU TDP, DIMMs active, platform, NIC,
chassis fans at full speed): the envelope a PSU must survive, not a typical draw.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from twin.model.node_power import peak_parts_w
from twin.model.power import wall_power_w
from twin.spec.catalogue import Catalogue, NodeSpec

if TYPE_CHECKING:  # pragma: no cover
    from twin.spec.scenario import ScenarioSpec


@dataclass(frozen=True)
class Finding:
    level: Literal["error", "warning"]
    message: str


@dataclass(frozen=True)
class PowerTerm:
    label: str    # e.g. "3x RTX PRO 6000 (600 W)"
    power_w: float


def _pretty(name: str) -> str:
    """Catalogue name -> readable label: 'rtx-pro-6000-blackwell' -> 'RTX PRO 6000'."""
    words = [w for w in name.split("-") if w not in ("blackwell",)]
    return " ".join(w.upper() if len(w) <= 4 and not w.isdigit() else w for w in words)


def node_peak_terms(node: NodeSpec, cat: Catalogue) -> list[PowerTerm]:
    """DC power of each part group at its limit (the node-power composition of
    twin.model.node_power at its peak). Sources: the catalogue entries' spec sheets."""
    gpu, cpu, nic, fan = cat.gpu(node.gpu), cat.cpu(node.cpu), cat.nic(node.nic), cat.fan(node.chassis_fan)
    p = peak_parts_w(node, cpu, nic, fan)
    dimm_w, fan_w = float(p.dimm_w), float(p.fan_w)
    return [
        PowerTerm(f"{node.gpu_count}x {_pretty(gpu.name)} ({gpu.board_power_w:,.0f} W)",
                  node.gpu_count * gpu.board_power_w),
        PowerTerm(f"CPU {float(p.cpu_w):,.0f} W", float(p.cpu_w)),
        PowerTerm(f"{node.dimms} DIMMs {dimm_w:,.0f} W", dimm_w),
        PowerTerm(f"platform {float(p.platform_w):,.0f} W", float(p.platform_w)),
        PowerTerm(f"NIC {float(p.nic_w):,.0f} W", float(p.nic_w)),
        PowerTerm(f"{node.chassis_fan_count} fans {fan_w:,.1f} W", fan_w),
    ]


def node_peak_dc_power_w(node: NodeSpec, cat: Catalogue) -> float:
    """Node DC power with every part at its limit (the terms of :func:`node_peak_terms`, added up by
    twin.model.node_power)."""
    gpu = cat.gpu(node.gpu)
    parts = peak_parts_w(node, cat.cpu(node.cpu), cat.nic(node.nic), cat.fan(node.chassis_fan))
    return float(parts.dc_w(node.gpu_count * gpu.board_power_w))


def node_peak_wall_power_w(node: NodeSpec, cat: Catalogue) -> float:
    """Wall (AC) power at the DC peak, through the PSU efficiency curve (twin.power)."""
    psu = cat.psu(node.psu)
    return float(wall_power_w(node_peak_dc_power_w(node, cat), psu, node.psu_count))


def psu_findings(node: NodeSpec, cat: Catalogue, headroom_frac: float, path: str) -> list[Finding]:
    """Error when the node's peak DC power exceeds the PSU rating; warning inside the headroom margin."""
    terms = node_peak_terms(node, cat)
    peak_w = node_peak_dc_power_w(node, cat)
    psu = cat.psu(node.psu)
    rated_w = psu.rated_w * node.psu_count
    psu_label = f"PSU {rated_w:,.0f} W" + (f" ({node.psu_count}x {psu.rated_w:,.0f} W)" if node.psu_count > 1 else "")
    sum_text = " + ".join(t.label for t in terms) + f" = {peak_w:,.0f} W"
    if peak_w > rated_w:
        return [Finding("error", f"{path}: {node.name} breaks its power envelope: {sum_text} > {psu_label}")]
    limit_w = rated_w * (1.0 - headroom_frac)
    if peak_w > limit_w:
        return [Finding("warning", f"{path}: {node.name} leaves under {headroom_frac:.0%} PSU headroom: "
                                   f"{sum_text} > {limit_w:,.0f} W ({1 - headroom_frac:.0%} of {psu_label})")]
    return []


def rack_findings(node: NodeSpec, cat: Catalogue, nodes_per_rack: int, feed_kw: float, continuous_frac: float,
                  path: str) -> list[Finding]:
    """Error when a full rack at peak wall power exceeds its feed; warning above the continuous-load limit."""
    node_wall_w = node_peak_wall_power_w(node, cat)
    rack_kw = nodes_per_rack * node_wall_w / 1000.0
    text = f"{nodes_per_rack} x {node.name} at {node_wall_w:,.0f} W wall peak = {rack_kw:,.1f} kW"
    if rack_kw > feed_kw:
        return [Finding("error", f"{path}: rack exceeds its feed: {text} > feed {feed_kw:,.1f} kW")]
    if rack_kw > feed_kw * continuous_frac:
        return [Finding("warning", f"{path}: rack above the continuous-load limit: {text} > "
                                   f"{feed_kw * continuous_frac:,.1f} kW ({continuous_frac:.0%} of {feed_kw:,.1f} kW feed)")]
    return []


def design_findings(spec: "ScenarioSpec", cat: Catalogue) -> list[Finding]:
    """All design findings for the scenario's node type; with ``design.strict: false`` errors become warnings.

    Assumes the node type exists (check_against_catalogue reports unknown names separately).
    """
    d = spec.design
    node = cat.node(spec.topology.node_type)
    found = psu_findings(node, cat, d.psu_headroom_frac, "topology.node_type")
    found += rack_findings(node, cat, spec.topology.nodes_per_rack, d.rack_feed_kw, d.rack_feed_continuous_frac,
                           "topology.nodes_per_rack")
    if not d.strict:
        found = [Finding("warning", f.message + " (design.strict is false)") if f.level == "error" else f
                 for f in found]
    return found
