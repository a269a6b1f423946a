"""The engine's serving with the new physics: paged KV growth and preemption in the request book,
a lone prompt's TTFT on a pipeline-parallel replica, and first start vs cached restart (hand values)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.model import replica as rp
from twin.model.workload import Requests
from twin.model.validate import scenario_from_text
from twin.sim.engine import simulate
from twin.sim.events import EventLog
from twin.sim.requests import INFLIGHT, QUEUED, RequestBook

ROOT = Path(__file__).resolve().parent.parent


def _book(prompt, out, cap_b, block_b=100.0):
    n = len(prompt)
    req = Requests(arrival_s=np.zeros(n), prompt_tokens=np.array(prompt), output_tokens=np.array(out),
                   pool=np.zeros(n, np.int64))
    res = np.ceil(np.array(prompt) / 16) * block_b          # paged: the prompt's blocks
    bk = RequestBook(req, res, np.full(n, 10_000), np.array([cap_b]), n_replicas=1, timeout_s=100.0,
                     rep_first_node=np.array([0]), log=EventLog(np.array([0]), lambda: 0.0),
                     full_b=np.ceil((np.array(prompt) + np.array(out)) / 16) * block_b)
    bk.arrive(0.0, 1.0)
    bk.admit(np.array([bk.queues[0].popleft() for _ in range(n)]), np.zeros(n, np.int64), 0.0)
    return bk


def test_decoded_tokens_take_blocks_and_a_dry_pool_preempts_the_newest_sequence():
    # 3 sequences of 32-token prompts (2 blocks of 100 B each) in a 7-block pool: 6 blocks used
    bk = _book([32, 32, 32], [50, 50, 50], cap_b=700.0)
    assert bk.rep_kv_reserved[0] == 600.0
    bk.generated[:] = 1                              # token 33 opens a third block for each: 9 > 7
    blk, bt, st, cap = np.array([100.0]), np.array([16]), np.array([0.0]), np.array([700.0])
    pre = bk.grow_kv(bk.inflight.copy(), blk, bt, st, cap, now=2.0)
    # the oldest takes the free block; the newest is preempted, which frees 2 for the middle one
    assert pre.tolist() == [2]
    assert bk.status.tolist() == [INFLIGHT, INFLIGHT, QUEUED] and bk.preemptions.tolist() == [0, 0, 1]
    assert bk.rep_kv_reserved[0] == 600.0 and bk.held.tolist() == [300.0, 300.0, 0.0]
    assert list(bk.retry_queues[0]) == [2] and bk.enqueued_s[2] == 2.0
    # re-admitted, it recomputes its prompt and the token it had, keeps its first token and output count
    bk.first_token_s[2] = 0.5
    bk.finish(np.array([0]), np.array([3.0]))
    bk.admit(np.array([bk.retry_queues[0].popleft()]), np.array([0]), 3.0)
    assert bk.prefill_left[2] == 33 and bk.decode_left[2] == 49 and bk.first_token_s[2] == 0.5
    assert bk.rep_kv_reserved[0] == 300.0 + 200.0


def test_a_request_that_could_never_fit_with_its_output_is_dropped_on_arrival():
    n = 1
    req = Requests(arrival_s=np.zeros(n), prompt_tokens=np.array([32]), output_tokens=np.array([1000]),
                   pool=np.zeros(n, np.int64))
    bk = RequestBook(req, np.array([200.0]), np.full(n, 10_000), np.array([1000.0]), 1, 100.0, np.array([0]),
                     EventLog(np.array([0]), lambda: 0.0), full_b=np.array([6600.0]))
    bk.arrive(0.0, 1.0)
    assert bk.drop_reason[0] == 2   # context_too_long: 66 blocks > a 10-block pool, even alone


LONE = """
name: lone
simulation: {duration_s: 40, dt_s: 1, sample_s: 5, seed: 1}
topology: {rows: 1, racks_per_row: 1, nodes_per_rack: 4}
pools:
  - {name: big, model: nemotron-4-340b, quantisation: int8, kv_bytes: 1, tp: 1, pp: 12, nodes: 4,
     memory_utilisation: 0.95, max_batch: 64}
workload:
  base_rate_per_s: 0.1
  arrival: {process: poisson}
  prompt_tokens: {median: 1036, sigma: 0, min: 1036, max: 1036}
  output_tokens: {median: 4, sigma: 0, min: 4, max: 4}
  surge: {start_s: 1000, ramp_s: 1, peak_multiplier: 1, plateau_s: 1, decay_s: 1}
scheduler: {policy: cascade, warm_pool_nodes: 0, initial_on_nodes: 4, interval_s: 5}
"""


def test_a_lone_prompt_on_a_pp12_replica_waits_for_the_sum_of_its_stage_times():
    sc = scenario_from_text(LONE)
    res = simulate(sc)
    req = res.columns["requests"]
    ttft_all = np.array(req["ttft_s"])
    assert np.isfinite(ttft_all[0])
    ttft = ttft_all[0]                      # the first request finds the replica idle
    cat = sc.catalogue
    from twin.model.kernels import select_kernel
    gpu = cat.gpu("rtx-pro-4500-blackwell")
    plan = rp.serving_plan(cat.model("nemotron-4-340b"), cat.quant("int8"), gpu, cat.engine("vllm"),
                           select_kernel(cat, "vllm", "int8", gpu), 1, 12, 0.95, 1)
    # the pure prompt latency (sum of 12 stage times, ~4.1 s) plus its hops over PCIe and the NIC
    assert ttft == pytest.approx(rp.prompt_latency_s(plan, 1036), rel=0.02)
    assert ttft > 3.5      # the old engine charged the whole prompt over 12 GPUs: ~0.2 s


def test_a_units_first_start_compiles_and_a_later_one_loads_the_cache():
    sc = scenario_from_text((ROOT / "scenarios" / "tiny.yaml").read_text())
    from twin.sim.layout import build_layout
    from twin.spec.topology import build_topology
    lay = build_layout(sc, build_topology(sc), sc.catalogue.node(sc.spec.topology.node_type))
    # vLLM: init 24 + compile 45 + KV profiling 8 + CUDA graphs 0.8 s x 27 layers per stage (80 / 3)
    assert lay.pool_warmup_first_s[0] == pytest.approx(24 + 45 + 8 + 0.8 * 27)
    assert lay.pool_warmup_cached_s[0] == pytest.approx(24 + 7.5 + 8 + 0.8 * 27)
    # weights after power-on: 3 workers x 1.5 GB/s (safetensors), below the 6 GB/s NVMe
    assert set(lay.node_load_rate_b_s.tolist()) == {4.5e9}
