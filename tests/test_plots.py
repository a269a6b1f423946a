"""twin.plots: figures built from the synthetic run carry the right data, units and titles.

Synthetic formulas: GPU temp = 30 + k + node + gpu_index °C at t = (k+1)*10 s; 12 nodes, 20 samples.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from synthetic_run import make_synthetic_run
from twin.tools.plots import DPI, FIGSIZE_IN, PLOTS, PlotOptions, figure, plot
from twin.errors import ToolError
from twin.telemetry.read import load_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return load_run(make_synthetic_run(tmp_path_factory.mktemp("p") / "run"))


@pytest.mark.parametrize("kind", sorted(PLOTS))
def test_every_kind_writes_a_png_of_the_promised_size(run, tmp_path, kind):
    out = plot(run, kind, tmp_path / f"{kind}.png", PlotOptions(at_s=100))
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.size == (int(FIGSIZE_IN[0] * DPI), int(FIGSIZE_IN[1] * DPI))
    assert [p.name for p in tmp_path.iterdir()] == [f"{kind}.png"]  # temp file renamed away


@pytest.mark.parametrize("kind", sorted(PLOTS))
def test_titles_name_the_scenario_and_axes_have_units(run, kind):
    fig = figure(run, kind, PlotOptions(at_s=100))
    ax = fig.axes[0]
    assert "synthetic" in ax.get_title()
    labels = [a.get_ylabel() for a in fig.axes if a.get_ylabel()]
    assert labels and all(("(" in lab) or lab in ("requests", "nodes") for lab in labels), labels


def test_power_plot_data_is_kilowatts(run):
    ax = figure(run, "power").axes[0]
    facility = ax.get_lines()[0].get_ydata()
    assert facility[-1] == pytest.approx(6.3)  # 1.5 x 4200 W at the last sample


def test_gpu_temp_envelope_and_default_slowdown(run):
    ax = figure(run, "gpu-temp").axes[0]
    median, hi, slowdown = ax.get_lines()
    assert hi.get_ydata()[-1] == 62.0       # 30 + 19 + 11 + 2
    assert median.get_ydata()[0] == 36.5    # median over n + i at k=0: 30 + median(n+i) = 30 + 6.5
    assert set(slowdown.get_ydata()) == {90.0}


def test_gpu_temp_reads_slowdown_threshold_from_manifest(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run.path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["thresholds"] = {"gpu_slowdown_c": 83.0}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    lines = figure(load_run(copy), "gpu-temp").axes[0].get_lines()
    assert set(lines[-1].get_ydata()) == {83.0}


def test_heatmap_colours_nodes_by_max_gpu_temp_at_nearest_sample(run):
    fig = figure(run, "heatmap", PlotOptions(at_s=104))  # nearest sample t=100 s, k=9
    ax = fig.axes[0]
    assert "t = 100 s" in ax.get_title()
    values = np.asarray(ax.collections[0].get_array())
    assert values.tolist() == [30 + 9 + n + 2 for n in range(12)]  # max over gpu_index 0..2


def test_heatmap_outside_run_and_unknown_kind_are_tool_errors(run, tmp_path):
    with pytest.raises(ToolError, match="outside the run"):
        figure(run, "heatmap", PlotOptions(at_s=5000))
    with pytest.raises(ToolError, match="did you mean 'heatmap'"):
        figure(run, "heatmp")
    with pytest.raises(ToolError, match="does not exist"):
        plot(run, "power", tmp_path / "nope" / "x.png")
