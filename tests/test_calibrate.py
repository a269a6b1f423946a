"""`twin calibrate`: parse real-world GPU logs, recover known constants, round-trip into predict/run.

Generated logs come from the twin's own burn test of a GPU with known (altered) constants, plus
noise: nvidia-smi's integer temperatures and ~1 % power jitter. The public real trace is an
`nvidia-smi dmon` capture of a Tesla V100 under LLM decode, bradrlaw/ai-server pull request #15
(docs/data/thermal/dmon-20260725-230726.load / .idle), transcribed in tests/data/.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from twin.cli.main import app
from twin.errors import ToolError
from twin.spec.catalogue import load_catalogue
from twin.tools.calibrate import calibrate
from twin.tools.gpu_log import parse_number, read_gpu_log
from twin.tools.predict import Box, burn_test, resolve_box

runner = CliRunner()
DATA = Path(__file__).parent / "data"
CAT = load_catalogue()
TRUTH = {"thermal_resistance_k_per_w": 0.12, "heatsink_heat_capacity_j_per_k": 1300.0,
         "spreader_time_constant_s": 2.5, "spreader_resistance_frac": 0.30}
HEADER = ("timestamp, name, pci.bus_id, power.draw [W], temperature.gpu, utilization.gpu [%], clocks.sm [MHz], "
          "fan.speed [%]")


@pytest.fixture(scope="module")
def truth_box() -> Box:
    base = resolve_box(CAT, "ws-4x4090-tr", "llama-3.3-70b", "awq-int4", "vllm", tp=4)
    return Box(**{**base.__dict__, "gpu": base.gpu.model_copy(update=TRUTH)})


@pytest.fixture(scope="module")
def gen(truth_box) -> tuple[list[str], np.ndarray]:
    """The default generated log (60 s idle, 600 s burn at 24 C), made once."""
    return _rows(truth_box)


def _rows(box: Box, ambient_c: float = 24.0, idle_s: int = 60, burn_s: int = 600, seed: int = 1,
          decimal: str = ".") -> tuple[list[str], np.ndarray]:
    """nvidia-smi --query-gpu CSV rows of `idle_s` idle seconds then a burn, 4 GPUs, with noise."""
    b = burn_test(box, ambient_c=ambient_c, duration_s=burn_s)
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 5, 1, 12, 0, 0).timestamp()
    rows = []
    for k in range(idle_s + burn_s):
        for g in range(box.node.gpu_count):
            if k < idle_s:
                p, t, u, f, clk = box.gpu.idle_power_w, b.start_c[g], 0, box.gpu.min_fan_frac, 210
            else:
                j = k - idle_s
                p, t, u, f, clk = b.gpu_power_w[j, g], b.gpu_temp_c[j, g], 100, b.gpu_fan[j, g], 2520
            ts = datetime.fromtimestamp(t0 + k + 0.01 * g).strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]
            watts = f"{p * (1 + 0.01 * rng.standard_normal()):.2f}".replace(".", decimal)
            rows.append(f"{ts}, NVIDIA GeForce RTX 4090, 00000000:{g + 1:02d}:00.0, {watts} W, "
                        f"{round(t + 0.3 * rng.standard_normal())}, {u} %, {clk} MHz, {round(100 * f)} %")
    return rows, b.gpu_temp_c[-1]


def test_numbers_with_units_locale_commas_and_na():
    assert parse_number("123.45 W") == 123.45
    assert parse_number("123,45 W") == 123.45
    assert parse_number("87 %") == 87 and parse_number("1995 MHz") == 1995
    assert np.isnan(parse_number("[N/A]")) and np.isnan(parse_number("[Not Supported]"))


def test_recovers_known_constants_within_10_percent_from_a_noisy_generated_log(truth_box, gen):
    rows, _ = gen
    fits, pooled = calibrate(read_gpu_log("\n".join([HEADER, *rows]), "gen.csv"), CAT.gpu("rtx-4090"), "gen.csv")
    assert len(fits) == 4
    for q, v in TRUTH.items():
        assert pooled[q].value == pytest.approx(v, rel=0.10), q
    assert pooled["idle_power_w"].value == pytest.approx(truth_box.gpu.idle_power_w, rel=0.10)
    assert pooled["loaded_power_w"].value == pytest.approx(450.0, rel=0.10)
    assert all(f.rms_k < 0.6 for f in fits)        # integer temperatures: ~0.3 K rms at best
    # the uncertainties are honest: the truth within 4 sigma of each estimate (1 % power jitter biases
    # the fast stage a little: errors in the inputs, not just the outputs)
    for q, v in TRUTH.items():
        assert abs(pooled[q].value - v) < 4 * pooled[q].sigma + 0.05 * v, q


def test_calibrated_prediction_plateau_matches_the_log_within_2c(gen, tmp_path):
    rows, plateau = gen
    log = tmp_path / "burn.csv"
    log.write_text("\n".join([HEADER, *rows]) + "\n")
    overlay = tmp_path / "rtx-4090.yaml"
    r = runner.invoke(app, ["calibrate", str(log), "--gpu", "rtx-4090", "-o", str(overlay)])
    assert r.exit_code == 0, r.output
    cat = load_catalogue([overlay])
    box = resolve_box(cat, "ws-4x4090-tr", "llama-3.3-70b", "awq-int4", "vllm", tp=4)
    assert box.gpu.thermal_resistance_k_per_w == pytest.approx(0.12, rel=0.1)
    predicted = burn_test(box, ambient_c=24.0, duration_s=600).plateau_c
    assert predicted == pytest.approx(plateau, abs=2.0)
    # the same through the CLI: predict --catalogue and run --catalogue both accept the overlay
    p = runner.invoke(app, ["predict", "--node", "ws-4x4090-tr", "-m", "llama-3.3-70b", "--quant", "awq-int4", "--tp", "4",
                            "--burn-s", "600", "--ambient-c", "24", "--catalogue", str(overlay), "--json"])
    assert p.exit_code == 0, p.output
    assert json.loads(p.output)["burn"]["gpu_temp_c"] == pytest.approx(plateau.tolist(), abs=2.0)
    # the overlay file is the calibrate tool's: re-writing needs --force, a foreign file is never replaced
    again = runner.invoke(app, ["calibrate", str(log), "--gpu", "rtx-4090", "-o", str(overlay)])
    assert again.exit_code == 2 and "--force" in again.output
    foreign = tmp_path / "mine.yaml"
    foreign.write_text("gpus: []\n")
    r = runner.invoke(app, ["calibrate", str(log), "--gpu", "rtx-4090", "-o", str(foreign), "--force"])
    assert r.exit_code == 2 and "not written by twin calibrate" in r.output
    assert foreign.read_text() == "gpus: []\n"


def test_gaps_several_gpus_units_na_fields_locale_decimals_and_no_header_all_parse(truth_box):
    rows, _ = _rows(truth_box, burn_s=300, decimal=",")
    gappy = [r for i, r in enumerate(rows) if not 4 * 200 <= i < 4 * 230]      # 30 s missing mid-burn
    na_fan = [r.rsplit(", ", 1)[0] + ", [N/A]" for r in gappy]                 # passive boards: no fan reading
    for text in ("\n".join([HEADER, *gappy]), "\n".join([HEADER, *na_fan]), "\n".join(gappy)):
        traces = read_gpu_log(text, "log")
        assert len(traces) == 4
        assert all(len(t) == len(gappy) // 4 for t in traces)
        assert traces[0].t_s[-1] == pytest.approx(359.0, abs=0.1)              # time keeps its gap
        fits, pooled = calibrate(traces, CAT.gpu("rtx-4090"), "log")
        assert pooled["loaded_power_w"].value == pytest.approx(450.0, rel=0.02)
        assert "thermal_resistance_k_per_w" in pooled


def test_openmetrics_from_dcgm_exporter_or_twin_export_parses_like_the_csv(truth_box):
    rows, _ = _rows(truth_box, burn_s=300)
    lines = ["# TYPE DCGM_FI_DEV_POWER_USAGE gauge", "# TYPE DCGM_FI_DEV_GPU_TEMP gauge"]
    for r in rows:
        f = r.split(", ")
        ts = datetime.strptime(f[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
        lab = f'{{gpu="{int(f[2][9:11]) - 1}",node="0",rack="A01"}}'
        lines += [f"DCGM_FI_DEV_POWER_USAGE{lab} {parse_number(f[3])} {ts}",
                  f"DCGM_FI_DEV_GPU_TEMP{lab} {f[4]} {ts * 1000:.0f}",     # ms timestamps (Prometheus text) too
                  f"DCGM_FI_DEV_GPU_UTIL{lab} {parse_number(f[5])} {ts}",
                  f"DCGM_FI_DEV_FAN_SPEED{lab} {parse_number(f[7])} {ts}"]
    om = read_gpu_log("\n".join(lines + ["# EOF"]), "metrics.om")
    csv = read_gpu_log("\n".join([HEADER, *rows]), "log.csv")
    assert len(om) == 4
    assert om[0].temp_c == pytest.approx(csv[0].temp_c)
    assert om[0].power_w == pytest.approx(csv[0].power_w)


def test_public_v100_dmon_trace_gives_a_30_to_60_s_heatsink_stage():
    """bradrlaw/ai-server PR #15: Tesla V100 decoding (~175 W) with a side fan, 1 s dmon samples; the
    capture starts mid-transient at 50 C and creeps to 62 C. Power barely moves, so R and the intake
    are only known together, but the heatsink stage's time constant is identified by the curve."""
    gpu = CAT.gpu("h100-pcie")                                   # nearest catalogue card: only the start values
    load = read_gpu_log((DATA / "v100_dmon_load.txt").read_text(), "v100 load")
    fits, pooled = calibrate(load, gpu, "v100 load")
    tau = pooled["heatsink_time_constant_s"]
    assert 30 <= tau.value <= 60 and tau.sigma < 20
    assert fits[0].rms_k < 0.5
    # the fitted plateau (intake + P R at the logged power) lies a few K above the last sample
    plateau = pooled["intake_c"].value + 175.1 * pooled["thermal_resistance_k_per_w"].value
    assert 62 <= plateau <= 67
    assert pooled["loaded_power_w"].value == pytest.approx(175.1, abs=1.0)
    idle = read_gpu_log((DATA / "v100_dmon_idle.txt").read_text(), "v100 idle")
    _, pooled_idle = calibrate(idle, gpu, "v100 idle")
    assert pooled_idle["idle_power_w"].value == pytest.approx(36.4, abs=0.3)


@pytest.mark.parametrize("text, message", [
    ("", "empty log"),
    ("hello\nworld\n", "no GPU samples found"),
    (HEADER + "\n2026/05/01 12:00:00.000, NVIDIA GeForce RTX 4090, 00000000:01:00.0, [N/A], [N/A], [N/A], "
              "[N/A], [N/A]\n", "nothing to fit"),
    (HEADER + "\n2026/05/01 12:00:0x, NVIDIA GeForce RTX 4090, 00000000:01:00.0, 20 W, 30, 0 %, 210 MHz, 30 %\n",
     "unreadable timestamp"),
])
def test_unusable_logs_give_one_clear_line_and_exit_2(tmp_path, text, message):
    log = tmp_path / "bad.csv"
    log.write_text(text)
    r = runner.invoke(app, ["calibrate", str(log), "--gpu", "rtx-4090"])
    assert r.exit_code == 2
    assert message in r.output and r.output.count("error:") == 1
    assert "Traceback" not in r.output


def test_unknown_gpu_and_missing_log_exit_2(tmp_path):
    r = runner.invoke(app, ["calibrate", str(tmp_path / "nope.csv"), "--gpu", "rtx-4090"])
    assert r.exit_code == 2 and "cannot read" in r.output
    (tmp_path / "x.csv").write_text(HEADER + "\n")
    r = runner.invoke(app, ["calibrate", str(tmp_path / "x.csv"), "--gpu", "rtx-4091"])
    assert r.exit_code == 2 and "unknown gpu" in r.output


def test_idle_only_log_fits_power_but_says_why_no_thermal_constants():
    rows = [f"2026/05/01 12:00:{s:02d}.000, NVIDIA GeForce RTX 4090, 00000000:01:00.0, 20.{s % 3} W, 35, 0 %, "
            f"210 MHz, 30 %" for s in range(30)]
    fits, pooled = calibrate(read_gpu_log("\n".join([HEADER, *rows]), "idle"), CAT.gpu("rtx-4090"), "idle")
    assert pooled["idle_power_w"].value == pytest.approx(20.1, abs=0.01)      # 20.0, 20.1, 20.2 W in turn
    assert "thermal_resistance_k_per_w" not in pooled
    assert any("thermal constants not fitted" in n for n in fits[0].notes)


def test_calibrate_raises_tool_error_not_a_traceback_for_a_csv_without_power_or_temperature():
    with pytest.raises(ToolError, match="needs timestamp"):
        read_gpu_log("timestamp, name\n2026/05/01 12:00:00.000, x\n", "log")


def test_run_applies_a_catalogue_overlay_and_records_it_in_the_resolved_scenario(tmp_path):
    overlay = tmp_path / "pro4500.yaml"
    overlay.write_text("# twin calibrate overlay for rtx-pro-4500-blackwell\ngpus:\n"
                       "  - {base: rtx-pro-4500-blackwell, thermal_resistance_k_per_w: 0.35, source: test}\n")
    tiny = Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml"
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", str(tiny), "-o", str(out), "--no-stage", "-q", "--catalogue", str(overlay)])
    assert r.exit_code == 0, r.output
    man = json.loads((out / "manifest.json").read_text())
    base = tmp_path / "base"
    assert runner.invoke(app, ["run", str(tiny), "-o", str(base), "--no-stage", "-q"]).exit_code == 0
    man0 = json.loads((base / "manifest.json").read_text())
    assert man["scenario"]["sha256"] != man0["scenario"]["sha256"]   # the resolved spec lists the overlay
    hot, cool = man["summary"]["peak_gpu_temp_c"], man0["summary"]["peak_gpu_temp_c"]
    assert hot > cool + 10                                   # 0.35 vs 0.25 K/W at ~200 W
    bad = runner.invoke(app, ["run", str(tiny), "-o", str(tmp_path / "x"), "--catalogue", str(tmp_path / "no.yaml")])
    assert bad.exit_code == 2 and "--catalogue: no such file" in bad.output
