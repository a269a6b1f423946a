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
