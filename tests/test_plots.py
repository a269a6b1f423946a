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


def test_gpu_temp_bands_cover_powered_gpus_only_and_default_slowdown(run):
    fig = figure(run, "gpu-temp")
    ax, count_ax = fig.axes[0], fig.axes[1]
    median, hi, slowdown = ax.get_lines()
    assert hi.get_ydata()[-1] == 62.0       # 30 + 19 + 11 + 2
    # nodes are OFF for k < 2: no powered GPU, so no band there (not a band of cold, unpowered cards)
    assert np.isnan(median.get_ydata()[:2]).all()
    assert median.get_ydata()[2] == 38.5    # k=2, all 36 GPUs booting: 30 + 2 + median(n + i) = 30 + 2 + 6.5
    assert set(slowdown.get_ydata()) == {90.0}
    counts = count_ax.get_lines()[0].get_ydata()
    assert counts[0] == 0 and counts[-1] == 36 and "powered GPUs" in count_ax.get_ylabel()


def test_latency_is_on_a_log_axis_per_window_of_completions(run):
    ax = figure(run, "latency").axes[0]
    assert ax.get_yscale() == "log"
    lines = {ln.get_label(): ln.get_ydata() for ln in ax.get_lines()}
    # every synthetic request: TTFT 0.2 s, latency 2 s, so p50 = p99 in every window with completions
    assert set(lines["latency p99"][np.isfinite(lines["latency p99"])]) == {2.0}
    assert set(lines["TTFT p50"][np.isfinite(lines["TTFT p50"])]) == {0.2}
    lo, hi = ax.get_ylim()
    assert lo < 0.2 and hi > 2.0  # p50 and p99 both on the chart


def test_gpu_temp_reads_slowdown_threshold_from_manifest(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run.path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["thresholds"] = {"gpu_slowdown_c": 83.0}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    lines = figure(load_run(copy), "gpu-temp").axes[0].get_lines()
    assert set(lines[-1].get_ydata()) == {83.0}


def test_heatmap_is_rack_by_slot_coloured_by_max_gpu_temp_at_nearest_sample(run):
    fig = figure(run, "heatmap", PlotOptions(at_s=104))  # nearest sample t=100 s, k=9
    ax = fig.axes[0]
    assert "t = 100 s" in ax.get_title()
    grid = np.ma.filled(np.asarray(ax.collections[0].get_array(), dtype=float).reshape(3, 5), np.nan)
    # columns A01, A02, (aisle), B01, B02; rows are slots 0..2; node n = 3 x rack + slot
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A01", "A02", "", "B01", "B02"]
    for col, rack in ((0, 0), (1, 1), (3, 2), (4, 3)):
        assert grid[:, col].tolist() == [30 + 9 + (3 * rack + slot) + 2 for slot in range(3)]
    assert np.isnan(grid[:, 2]).all()
    assert ax.get_ylabel() == "slot in rack (0 = bottom)"


def test_heatmap_outside_run_and_unknown_kind_are_tool_errors(run, tmp_path):
    with pytest.raises(ToolError, match="outside the run"):
        figure(run, "heatmap", PlotOptions(at_s=5000))
    with pytest.raises(ToolError, match="did you mean 'heatmap'"):
        figure(run, "heatmp")
    with pytest.raises(ToolError, match="does not exist"):
        plot(run, "power", tmp_path / "nope" / "x.png")
