"""GDDR6X memory junction: runs past 100 C in memory-bound work and throttles at 110 C.

Published: RTX 30-series memory junctions reach ~110 C while the core sits ~50 C when mining
(memory-bound), and the card throttles the memory on it (NebuTech/NBMiner#289); the 3090's back
12 modules sit under the backplate with no heatsink (trexminer/T-Rex#196).
"""
import numpy as np
import pytest

from twin.model import thermal as th
from twin.spec.catalogue import load_catalogue
from twin.tools.box_power import load_test, serving_cpu_util
from twin.tools.predict import decode_gpu_work, resolve_box

CAT = load_catalogue()


def test_memory_clock_throttle_shape():
    assert th.memory_clock_frac(np.array([100.0, 110.0, 112.5, 130.0]), 110.0).tolist() == [1.0, 1.0, 0.75, 0.5]
    assert th.memory_clock_frac(np.array([150.0]), None).tolist() == [1.0]   # HBM / GDDR6 boards: none modelled


def _decode(ambient_c: float):
    """One stream of llama.cpp decode: the memory-bound case (at 2-8 streams llama.cpp's MMVQ kernel
    is partly bound by the CUDA cores' dp4a rate, so less bandwidth is achieved: twin.model.kernels)."""
    box = resolve_box(CAT, "dual-3090-desktop", "llama-3.1-8b", "gguf-q4_k_m", "llama.cpp", tp=1)
    gb_s, u = decode_gpu_work(box, 1, 1100)
    return load_test(box, gb_s, u, serving_cpu_util(box, 200), ambient_c, 1200)


def test_3090_decode_runs_its_memory_past_100c_while_the_core_stays_below_80c():
    run = _decode(25.0)
    assert np.all(run.gpu_mem_c[-1] > 100)
    assert np.all(run.gpu_temp_c[-1] < 80)
    assert np.all(run.gpu_mem_clock[-1] == 1.0)


def test_in_a_warm_case_the_memory_junction_is_the_binding_limit():
    run = _decode(45.0)
    assert np.all(run.gpu_mem_clock[-1] < 1.0)                 # memory clock (and bandwidth) throttled
    assert np.all(run.gpu_mem_c[-1] == pytest.approx(110, abs=th.MEMORY_THROTTLE_SPAN_K))
    assert np.all(run.gpu_temp_c[-1] < CAT.gpu("rtx-3090").slowdown_temp_c)   # the core is nowhere near its limit
