"""Pod fabrics on the stage: super-spines get a place above the spine row and spine->super cables
a route (scenes.layout.endpoint_positions, scenes.routes.route_link)."""
from __future__ import annotations

import numpy as np
import pytest

from scenes import layout as lay
from scenes import routes
from scenes.frames import read_topology


@pytest.fixture(scope="module")
def layout(tiny_run):
    return lay.build_layout(read_topology(tiny_run))


def test_super_spines_sit_one_rise_above_the_spines_evenly_along_x(layout):
    names = {"spine:0", "spine:1", "super:0", "super:1", "super:2", "super:3"}
    pos = lay.endpoint_positions(layout, names, n_spines=2, n_storage=0, n_super=4)
    assert pos["super:0"][2] == pytest.approx(pos["spine:0"][2] + lay.SUPER_RISE_M)
    xs = [pos[f"super:{k}"][0] for k in range(4)]
    x_lo, x_hi = layout.racks_min[0], layout.racks_max[0]
    assert xs == pytest.approx([x_lo + (k + 0.5) * (x_hi - x_lo) / 4 for k in range(4)])  # by hand


def test_a_spine_to_super_cable_runs_from_the_spine_up_to_the_super_spine(layout):
    names = {"spine:1", "super:3"}
    pos = lay.endpoint_positions(layout, names, n_spines=2, n_storage=0, n_super=4)
    for src, dst in (("spine:1", "super:3"), ("super:3", "spine:1")):   # either order names the same cable
        r = routes.route_link(layout, src, dst, pos, lane=0)
        assert np.allclose(r.points[0], pos["spine:1"])
        assert np.linalg.norm(r.points[-1] - pos["super:3"]) < 0.06   # the drop into the switch (lane offset)
        assert r.points[:, 2].max() <= pos["super:3"][2] + 1e-9       # never above the super-spine row


def test_an_unknown_endpoint_kind_names_the_kinds_that_exist(layout):
    with pytest.raises(ValueError, match="super:"):
        lay.endpoint_positions(layout, {"core:0"}, 0, 0)
