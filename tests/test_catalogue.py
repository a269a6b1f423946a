"""The catalogue: published figures, user catalogue files, and validation that names entry + field."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from twin.spec.catalogue import load_catalogue
from twin.cli.main import app
from twin.errors import SpecError
from twin.model.power import psu_efficiency
from twin.model.validate import load_scenario

runner = CliRunner()
TINY = (Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml").read_text()


@pytest.fixture(scope="module")
def cat():
    return load_catalogue()


def catalogue_problems(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "mine.yaml"
    f.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_catalogue([f])
    return exc.value.problems


def test_the_issue_asks_for_these_gpus_cpus_psus_and_models(cat):
    assert {"rtx-pro-4500-blackwell", "rtx-4090", "rtx-3090", "rtx-5090", "l40s", "rtx-6000-ada",
            "h100-pcie"} <= set(cat.names("gpus"))
    assert {"threadripper-pro-7975wx", "epyc-7542", "ryzen-9-7950x"} <= set(cat.names("cpus"))
    assert {"llama-3.3-70b", "llama-3.1-405b", "nemotron-4-340b", "nemotron-3-nano", "nemotron-3-super",
            "nemotron-3-ultra"} <= set(cat.names("models"))
    assert set(cat.model("llama-3.3-70b").quantisations) >= {"bf16", "fp8", "awq-int4", "gguf-q4_k_m"}
    for n in ("ws-4x4090-tr", "dual-3090-desktop", "rtx5090-server", "epyc7542-4x4090"):
        assert n in cat.names("nodes")


def test_every_entry_names_a_source_and_dated_prices(cat):
    for kind, entries in cat.entries.items():
        for name, spec in entries.items():
            assert spec.source.strip(), f"{kind}/{name} has no source"
            price = getattr(spec, "price_usd", None)
            if price is not None and hasattr(spec, "price_date"):
                assert spec.price_date, f"{kind}/{name} has a price without a date"


def test_memory_bandwidth_is_data_rate_times_bus_width(cat):
    # GDDR bandwidth = per-pin Gbit/s x bus width bits / 8 (vendor spec pages)
    assert cat.gpu("rtx-4090").memory_bandwidth_gb_s == pytest.approx(21 * 384 / 8)     # 1,008
    assert cat.gpu("rtx-3090").memory_bandwidth_gb_s == pytest.approx(19.5 * 384 / 8)   # 936
    assert cat.gpu("rtx-5090").memory_bandwidth_gb_s == pytest.approx(28 * 512 / 8)     # 1,792
    # hardware.md: RTX 4090 ~165 TFLOPS dense FP16 tensor; H100 PCIe datasheet 1,513 sparse BF16 / 2
    assert cat.gpu("rtx-4090").tflops("fp16") == pytest.approx(165, rel=0.01)
    assert cat.gpu("h100-pcie").tflops("fp16") == pytest.approx(1513 / 2, rel=0.01)
    # a 3090 has no FP8 tensor cores: FP8 weights compute at its FP16 rate
    assert cat.gpu("rtx-3090").tflops("fp8") == cat.gpu("rtx-3090").tflops("fp16")


def test_kv_cache_per_token_matches_the_configs(cat):
    # 2 (K and V) x layers x KV heads x head dim x 2 bytes (BF16)
    assert cat.model("llama-3.1-405b").kv_bytes_per_token(2.0) == 2 * 126 * 8 * 128 * 2   # 504 KiB
    assert cat.model("llama-3.1-8b").kv_bytes_per_token(2.0) == 2 * 32 * 8 * 128 * 2      # 128 KiB
    assert cat.model("nemotron-3-super").kv_bytes_per_token(2.0) == 8 * 1024              # hardware.md ~8 KiB


def test_psu_curves_hit_the_80_plus_points(cat):
    # 80 PLUS 230 V EU internal: Platinum 92/94/90 %, Gold 90/92/89 % at 20/50/100 % load
    plat, gold = cat.psu("platinum-1200w"), cat.psu("gold-1300w")
    assert psu_efficiency(np.array([0.2, 0.5, 1.0]), plat) == pytest.approx([0.92, 0.94, 0.90])
    assert psu_efficiency(np.array([0.2, 0.5, 1.0]), gold) == pytest.approx([0.90, 0.92, 0.89])
    # between points it interpolates: 35 % load on Platinum = 0.92 + (0.94 - 0.92) * 15/30
    assert float(psu_efficiency(np.array(0.35), plat)) == pytest.approx(0.93)


def test_missing_required_field_names_the_entry_and_field(tmp_path):
    p = catalogue_problems(tmp_path, """
gpus:
  - name: my-gpu
    memory_gb: 24
    dense_tflops: {fp16: 100}
    board_power_w: 300
    idle_power_w: 20
    thermal_resistance_k_per_w: 0.2
    slowdown_temp_c: 90
    shutdown_temp_c: 100
    blower_airflow_m3_s: 0.01
    source: test
""")
    assert p == [f"{tmp_path / 'mine.yaml'}: gpus[0] (my-gpu).memory_bandwidth_gb_s: required field is missing"]


@pytest.mark.parametrize("text, expect", [
    # a NIC's achievable throughput typed in Gbit/s
    ("nics: [{name: fast, line_rate_gbit_s: 100, achievable_gb_s: 95, power_w: 10, latency_s: 1.0e-6, source: t}]",
     "nics[0] (fast).achievable_gb_s (95 GB/s) exceeds line_rate_gbit_s / 8 (12.5 GB/s)"),
    # bits per weight typed where bytes per parameter belong
    ("quantisations: [{name: q5, bytes_per_param: 5.5, compute_precision: fp16, source: t}]",
     "quantisations[0] (q5).bytes_per_param: 5.5 bytes per parameter is more than FP32; looks like bits"),
    # raw parameter count instead of billions
    ("models: [{name: m, family: f, total_params_b: 7.0e9, active_params_b: 7, layers: 32, attention_layers: 32,"
     " hidden_size: 4096, quantisations: [bf16], source: t}]",
     "models[0] (m).total_params_b: 7e+09 billion parameters is implausible"),
    # efficiency in percent
    ("psus: [{name: p, rated_w: 1000, efficiency_load_points: [0.2, 0.5], efficiency_points: [92, 94], source: t}]",
     "psus[0] (p).efficiency_points[0]: Input should be less than or equal to 1"),
    # a price date that is not YYYY-MM
    ("cpus: [{name: c, cores: 8, tdp_w: 100, idle_power_w: 10, price_usd: 300, price_date: 'March 2024', source: t}]",
     "cpus[0] (c).price_date: String should match pattern"),
])
def test_inconsistent_units_fail_with_entry_and_field(tmp_path, text, expect):
    p = catalogue_problems(tmp_path, text)
    assert any(expect in line for line in p), p
    assert all(line.startswith(str(tmp_path / "mine.yaml")) for line in p)


def test_scenario_catalogue_file_adds_a_gpu_and_overrides_an_entry(tmp_path):
    """Users add entries via `catalogue: [file.yaml]`; later files override same-named entries."""
    (tmp_path / "mine.yaml").write_text("""
gpus:
  - name: my-a6000
    memory_gb: 48
    memory_bandwidth_gb_s: 768
    dense_tflops: {fp16: 155}
    board_power_w: 300
    idle_power_w: 22
    thermal_resistance_k_per_w: 0.25
    slowdown_temp_c: 93
    shutdown_temp_c: 102
    blower_airflow_m3_s: 0.01
    source: "NVIDIA RTX A6000 datasheet"
engines:
  - {name: vllm, eta_bandwidth: 0.5, eta_flops: 0.5, continuous_batching: true, default_max_batch: 8,
     warmup_s: 1, source: "my slower vLLM"}
""")
    text = TINY.replace("topology: {rows: 1, racks_per_row: 1, nodes_per_rack: 4}",
                        "topology: {rows: 1, racks_per_row: 1, nodes_per_rack: 4, node_type: a6000-box}")
    text = "catalogue: [mine.yaml, box.yaml]\n" + text
    (tmp_path / "box.yaml").write_text(
        (Path(__file__).resolve().parent.parent / "twin/data/catalogue/parts.yaml").read_text().split("nodes:")[1]
        .split("quantisations:")[0].replace("refinery-node", "a6000-box")
        .replace("gpu: rtx-pro-4500-blackwell", "gpu: my-a6000").join(["nodes:", ""]))
    (tmp_path / "s.yaml").write_text(text)
    sc = load_scenario(tmp_path / "s.yaml")
    node = sc.catalogue.node("a6000-box")
    assert sc.catalogue.gpu(node.gpu).memory_bandwidth_gb_s == 768
    assert sc.catalogue.engine("vllm").eta_bandwidth == 0.5          # the user's file won
    assert load_catalogue().engine("vllm").eta_bandwidth == 0.80     # built-in untouched
    result = runner.invoke(app, ["validate", str(tmp_path / "s.yaml")])
    assert result.exit_code == 0, result.output


def test_bad_scenario_catalogue_file_exits_2_naming_entry_and_field(tmp_path):
    (tmp_path / "bad.yaml").write_text("cpus: [{name: c, cores: 8, tdp_w: -5, idle_power_w: 10, source: t}]\n")
    (tmp_path / "s.yaml").write_text("catalogue: [bad.yaml]\n" + TINY)
    result = runner.invoke(app, ["validate", str(tmp_path / "s.yaml")])
    assert result.exit_code == 2
    assert "cpus[0] (c).tdp_w: Input should be greater than 0" in result.output
    assert "Traceback" not in result.output


def test_catalogue_cli_lists_and_shows_new_entries():
    listed = runner.invoke(app, ["catalogue", "list", "gpus"])
    assert listed.exit_code == 0 and "rtx-4090" in listed.output and "h100-pcie" in listed.output
    shown = runner.invoke(app, ["catalogue", "show", "epyc-7542"])
    assert shown.exit_code == 0 and "tdp_w: 225" in shown.output and "price_date: 2019-08" in shown.output


def test_shipped_files_parse_to_the_same_values_with_libyaml_as_with_pyyaml():
    """The built-in catalogue is parsed with libyaml (trusted=True); it must not change a value."""
    import yaml

    from twin.spec.catalogue import DATA_DIR
    from twin.spec.safe_yaml import load_yaml

    files = sorted(DATA_DIR.glob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text()
        assert load_yaml(text, str(path), 10**6, trusted=True) == yaml.safe_load(text), path.name


def test_user_yaml_never_reaches_libyaml_deep_nesting_is_one_line():
    """libyaml's C composer overflows the stack on deep nesting (SIGSEGV): user text keeps PyYAML."""
    from twin.errors import SpecError
    from twin.spec.safe_yaml import load_yaml

    with pytest.raises(SpecError, match="nested too deeply"):
        load_yaml("[" * 200_000, "user.yaml", 10**6)
