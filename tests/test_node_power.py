"""The one node-power composition, against hand sums of the refinery node's catalogue parts.

refinery-node: Threadripper PRO 7975WX (75 W idle, 350 W TDP), 8 DIMMs (3.0 W idle, 4.5 W
active), platform 50 W, ConnectX-7 22 W, 3 chassis fans of 2.5 W at 2,000 rpm, 3x RTX PRO 4500
(200 W board). Catalogue: twin/data/catalogue/parts.yaml.
"""
from __future__ import annotations

import numpy as np
import pytest

from twin.model.checks import node_peak_dc_power_w
from twin.model.node_power import cpu_util_for_state, dimm_activity_for_state, node_parts_w, peak_parts_w
from twin.model.states import FAILED, OFF, POWERING_ON, SERVING
from twin.spec.catalogue import load_catalogue
from twin.tools.predict import node_power, resolve_box

CAT = load_catalogue()
NODE = CAT.node("refinery-node")
PARTS = (CAT.cpu(NODE.cpu), CAT.nic(NODE.nic), CAT.fan(NODE.chassis_fan))


def test_a_serving_node_is_the_sum_of_its_parts():
    # CPU 75 + 275 x 0.2 = 130 W; DIMMs 8 x (3 + 1.5 x 0.5) = 30 W; platform 50 W; NIC 22 W;
    # fans at half speed: 3 x 2.5 W x 0.5^3 = 0.9375 W; GPUs 3 x 150 W
    p = node_parts_w(NODE, *PARTS, cpu_util=0.2, dimm_activity=0.5, fan_rpm=1000.0)
    assert float(p.cpu_w) == pytest.approx(130.0) and float(p.dimm_w) == pytest.approx(30.0)
    assert float(p.fan_w) == pytest.approx(0.9375)
    assert float(p.other_w) == pytest.approx(232.9375)
    assert float(p.upstream_w) == pytest.approx(210.0)
    assert float(p.dc_w(450.0)) == pytest.approx(682.9375)


def test_the_peak_envelope_is_every_part_at_its_limit():
    # 600 W GPUs + 350 CPU + 8 x 4.5 DIMMs + 50 + 22 + 3 x 2.5 fans = 1,065.5 W
    assert float(peak_parts_w(NODE, *PARTS).dc_w(600.0)) == pytest.approx(1065.5)
    assert node_peak_dc_power_w(NODE, CAT) == pytest.approx(1065.5)


def test_parts_that_are_off_draw_nothing_vectorised_over_nodes():
    st = np.array([OFF, POWERING_ON, SERVING, FAILED])
    on = ~np.isin(st, (OFF, FAILED))
    p = node_parts_w(NODE, *PARTS, cpu_util=cpu_util_for_state(NODE, st, 0.2),
                     dimm_activity=dimm_activity_for_state(st),
                     fan_rpm=np.full(4, 2000.0), powered=on, nic_powered=on & (st != POWERING_ON), fans_driven=on)
    # POWERING_ON: CPU at 0.1 (75 + 27.5 W), DIMMs idle (24 W), platform, fans at full speed, NIC still off;
    # SERVING: the CPU at what the workload asks (here 20 %: 130 W)
    assert p.other_w.tolist() == pytest.approx([0.0, 102.5 + 24 + 50 + 7.5, 130 + 30 + 50 + 22 + 7.5, 0.0])


def test_predict_uses_the_same_composition_as_the_engine():
    box = resolve_box(CAT, "refinery-node", "llama-3.3-70b", "awq-int4", pp=3)
    np_ = node_power(box, 150.0, 0.2, 0.5, 0.5)
    parts = node_parts_w(NODE, *PARTS, cpu_util=0.2, dimm_activity=0.5, fan_rpm=1000.0)
    assert np_.dc_w == float(parts.dc_w(450.0))
