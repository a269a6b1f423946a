"""Engine start: first boot vs warm restart (twin.model.coldstart), phase by phase by hand."""
import pytest

from twin.model.coldstart import start_phases
from twin.spec.catalogue import load_catalogue
from twin.tools.predict import engine_start, resolve_box

CAT = load_catalogue()


def test_vllm_first_boot_and_warm_restart_of_70b_awq_on_two_3090s():
    box = resolve_box(CAT, "dual-3090-desktop", "llama-3.3-70b", "awq-int4", "vllm", tp=2)
    w = 70.6 * 0.567                                     # 40.03 GB of weights
    # first boot: init 24 s + weights at 2 workers x 1.5 GB/s (below the 7 GB/s NVMe) + compile 45
    # + KV profiling 8 + CUDA graphs 0.8 s x 80 layers
    first = engine_start(box, warm=False)
    assert first.weights_s == pytest.approx(w / 3.0)
    assert first.total_s == pytest.approx(24 + w / 3.0 + 45 + 8 + 64)
    # warm restart: page cache / drive at min(NVMe 7, H2D 12) GB/s and the compile cache
    warm = engine_start(box, warm=True)
    assert warm.total_s == pytest.approx(24 + w / 7.0 + 7.5 + 8 + 64)
    assert first.total_s > 1.4 * warm.total_s


def test_llama_cpp_mmaps_the_gguf_from_the_drive_then_the_page_cache():
    eng, node = CAT.engine("llama.cpp"), CAT.node("rtx5090-server")
    first = start_phases(eng, node, 4.87, 1, 32, warm=False)
    warm = start_phases(eng, node, 4.87, 1, 32, warm=True)
    assert first.total_s == pytest.approx(2 + 4.87 / 6.0)       # init + NVMe 6 GB/s, no compile or graphs
    assert warm.total_s == pytest.approx(2 + 4.87 / 25.0)       # page cache at PCIe H2D 25 GB/s


def test_an_engine_without_boot_phases_keeps_weights_plus_warmup():
    eng = CAT.engine("vllm").model_copy(update={"boot": None})
    p = start_phases(eng, CAT.node("refinery-node"), 40.0, 3, 80, warm=False)
    assert p.total_s == pytest.approx(40 / 6 + 60)


def test_a_first_boot_pays_the_kernel_jit_once():
    """RTX 5090, 23.43 GB NVFP4 (vllm#44881's setup): init 24 + 23.43 / 1.5 GB/s + compile 45 +
    profiling 8 + 0.8 s x 40 layers + 120 s FlashInfer JIT (vllm#47456); a restart hits the JIT cache."""
    eng, node = CAT.engine("vllm"), CAT.node("rtx5090-server")
    first = start_phases(eng, node, 23.43, 1, 40, warm=False, first_use_jit_s=120.0)
    warm = start_phases(eng, node, 23.43, 1, 40, warm=True, first_use_jit_s=120.0)
    assert first.total_s == pytest.approx(24 + 23.43 / 1.5 + 45 + 8 + 32 + 120)
    assert warm.jit_s == 0.0 and warm.total_s == pytest.approx(24 + 23.43 / 6.0 + 7.5 + 8 + 32)


# --------------------------------------------------------------------- what a first boot finds cached
NANO_W_GB = 31.6 * 0.5625          # Nemotron 3 Nano in NVFP4: 17.775 GB per replica
# refinery node, 3 replicas: init 24 + 3 x 17.775 GB at 3 workers x 1.5 GB/s (below the 6 GB/s NVMe)
# + KV profiling 8 + CUDA graphs 0.8 s x 52 layers; then compile 45 (none/kernels) or 7.5 (all) and the
# 120 s FlashInfer JIT of the nvfp4 row (none only)
NANO_BASE_S = 24 + 3 * NANO_W_GB / 4.5 + 8 + 0.8 * 52


@pytest.mark.parametrize("cache, extra_s", [("none", 45 + 120), ("kernels", 45), ("all", 7.5)])
def test_a_first_boot_pays_what_its_boot_cache_lacks(cache, extra_s):
    box = resolve_box(CAT, "refinery-node", "nemotron-3-nano", "nvfp4", boot_cache=cache)
    assert engine_start(box, warm=False).total_s == pytest.approx(NANO_BASE_S + extra_s)
    # a warm restart has every cache whatever the first boot found: weights at min(NVMe 6, H2D 25)
    assert engine_start(box, warm=True).total_s == pytest.approx(24 + 3 * NANO_W_GB / 6.0 + 7.5 + 8 + 0.8 * 52)


def test_the_default_boot_cache_is_the_images_prebuilt_kernels():
    box = resolve_box(CAT, "refinery-node", "nemotron-3-nano", "nvfp4")
    assert box.boot_cache == "kernels"
    assert engine_start(box, warm=False).jit_s == 0.0


def test_an_unknown_boot_cache_is_refused():
    with pytest.raises(ValueError, match="boot_cache must be one of none, kernels, all"):
        start_phases(CAT.engine("vllm"), CAT.node("refinery-node"), 1.0, 3, 52, warm=False, boot_cache="hot")


def _surge_layout(overrides):
    from pathlib import Path

    from twin.model.validate import load_scenario
    from twin.sim.layout import build_layout
    from twin.spec.topology import build_topology
    sc = load_scenario(Path(__file__).resolve().parent.parent / "scenarios" / "surge.yaml", overrides=overrides)
    return build_layout(sc, build_topology(sc), sc.catalogue.node(sc.spec.topology.node_type))


def test_the_engine_s_first_start_of_a_unit_follows_the_pool_boot_cache():
    """LOADING is followed by the pool's warm-up (twin.sim.layout): the nano pool (pools[1], nvfp4,
    52 layers) pays 24 + 45 + 8 + 0.8 x 52 = 118.6 s with the image's kernels, 120 s more without them,
    and 24 + 7.5 + 8 + 41.6 = 81.1 s with the compile cache too; restarts are 81.1 s in every case."""
    default = _surge_layout({})
    cold = _surge_layout({"pools.1.boot_cache": "none"})
    full = _surge_layout({"pools.1.boot_cache": "all"})
    assert default.pool_warmup_first_s[1] == pytest.approx(24 + 45 + 8 + 0.8 * 52)
    assert cold.pool_warmup_first_s[1] == pytest.approx(24 + 45 + 8 + 0.8 * 52 + 120)
    assert full.pool_warmup_first_s[1] == pytest.approx(24 + 7.5 + 8 + 0.8 * 52)
    for lay in (default, cold, full):
        assert lay.pool_warmup_cached_s[1] == pytest.approx(24 + 7.5 + 8 + 0.8 * 52)
    # the INT8 340B pool has no first-use JIT row: no cache changes only its compile
    assert cold.pool_warmup_first_s[0] == pytest.approx(default.pool_warmup_first_s[0])
