"""The compiled serving step (twin.sim.serving_kernel) against the numpy serving step it replaces:
the same request state, the same outputs, bit for bit, from the same start (including the rare
paths: throttled clocks, time-shared GPUs, a paged pool that runs dry and preempts)."""
from __future__ import annotations

import copy
import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from twin.model.validate import load_scenario
from twin.sim import requests as rq
from twin.sim import serving_kernel as sk
from twin.sim.batching import ServingOutputs, ServingStep
from twin.sim.engine import Engine, simulate
from twin.telemetry.write import write_run

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not sk.HAVE_NUMBA, reason="numba not installed: only the numpy path exists")
BOOK_ARRAYS = ("status", "replica", "admitted_s", "first_token_s", "done_s", "enqueued_s", "prefill_left",
               "decode_left", "generated", "network_s", "held", "reservation", "preemptions", "decode_from_s",
               "admit_seq", "inflight", "rep_inflight", "rep_kv_reserved")


def _engine_mid_run(name: str, until_s: float) -> Engine:
    """A numpy-path engine advanced to `until_s` (requests in flight, some prefilling, some decoding)."""
    eng = Engine(load_scenario(ROOT / "scenarios" / f"{name}.yaml"), kernels="numpy")
    eng.life.initial_units()
    eng.env.process(eng._ticker())
    eng.env.process(eng.autoscaler.process())
    eng.env.run(until=until_s)
    assert len(eng.book.inflight) > 0
    return eng


def _twins(eng: Engine, layout=None) -> tuple[ServingStep, ServingStep]:
    """Two serving steps on independent copies of the engine's request book: numpy and compiled."""
    out = []
    for kernels in ("numpy", "numba"):
        book = copy.deepcopy(eng.book)
        s = ServingStep(layout or eng.lay, book, eng.serving.node, eng.dt, eng.serving.cpu, kernels=kernels)
        s.rep_interval_s, s.rep_busy = eng.serving.rep_interval_s.copy(), eng.serving.rep_busy.copy()
        out.append(s)
    assert not out[0].compiled and out[1].compiled
    return out[0], out[1]


def _same(a: ServingStep, b: ServingStep, oa: ServingOutputs, ob: ServingOutputs) -> None:
    for name in ServingOutputs._fields:
        x, y = getattr(oa, name), getattr(ob, name)
        assert x.tobytes() == y.tobytes(), name
    for name in BOOK_ARRAYS:
        x, y = getattr(a.book, name), getattr(b.book, name)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
    assert a.rep_busy.tobytes() == b.rep_busy.tobytes() and a.rep_interval_s.tobytes() == b.rep_interval_s.tobytes()
    assert [list(q) for q in a.book.retry_queues] == [list(q) for q in b.book.retry_queues]


@pytest.mark.parametrize("name, until_s, seed", [("tiny", 400.0, 0), ("tiny", 400.0, 1), ("surge", 800.0, 2)])
def test_compiled_and_numpy_steps_agree_bit_for_bit_under_throttle_and_time_sharing(name, until_s, seed):
    # the surge at 800 s: 128 replicas of a 12-stage pipeline (prompt fill) and an MoE pool, ramping up
    eng = _engine_mid_run(name, until_s)
    a, b = _twins(eng)
    rng = np.random.default_rng(seed)
    nr, ng = eng.lay.n_rep, eng.lay.n_gpus
    t0 = eng.env.now
    for k in range(12):
        clock = rng.uniform(0.3, 1.0, ng)
        mem = None if k % 3 == 0 else rng.uniform(0.5, 1.0, ng)
        speed = None if k % 2 == 0 else rng.uniform(0.2, 1.0, nr)
        nic, lat = rng.uniform(5.0, 50.0, nr), rng.uniform(0.0, 1e-4, nr)
        oa = a.step(t0 + k * eng.dt, clock, nic, lat, mem, speed=speed)
        ob = b.step(t0 + k * eng.dt, clock, nic, lat, mem, speed=speed)
        _same(a, b, oa, ob)


def test_a_paged_pool_that_runs_dry_preempts_the_same_sequences_on_both_paths():
    eng = _engine_mid_run("tiny", 240.0)
    # a KV pool just big enough for what is held now: the next tick's growth must preempt
    lay = dataclasses.replace(eng.lay, rep_kv_cap=eng.book.rep_kv_reserved + 1.0)
    assert lay.rep_paged.any()
    a, b = _twins(eng, lay)
    before = int(a.book.preemptions.sum())
    ones = np.ones(lay.n_gpus)
    for k in range(3):
        t = eng.env.now + k * eng.dt
        oa = a.step(t, ones, eng.network.rep_nic_gb_s, eng.network.rep_cross_lat_s)
        ob = b.step(t, ones, eng.network.rep_nic_gb_s, eng.network.rep_cross_lat_s)
        _same(a, b, oa, ob)
    assert a.book.preemptions.sum() > before


def test_admission_through_the_kernel_is_the_numpy_admission():
    eng = _engine_mid_run("tiny", 240.0)
    books = [copy.deepcopy(eng.book) for _ in range(2)]
    books[1].compiled = True
    queued = np.flatnonzero(books[0].status == rq.QUEUED)[:5]
    assert len(queued)
    books[0].preemptions[queued[:2]] += 1    # resumed ones keep their admission time and tokens left
    books[1].preemptions[queued[:2]] += 1
    for bk in books:
        bk.generated[queued[:2]] = 7.0
        bk.admit(queued, np.arange(len(queued)) % eng.lay.n_rep, eng.env.now)
    for name in BOOK_ARRAYS:
        assert getattr(books[0], name).tobytes() == getattr(books[1], name).tobytes(), name


def test_the_kernel_refuses_an_in_flight_list_out_of_admission_order():
    eng = _engine_mid_run("tiny", 240.0)
    a, b = _twins(eng)
    assert len(b.book.inflight) > 1
    b.book.inflight = b.book.inflight[::-1].copy()
    with pytest.raises(ValueError, match="admission order"):
        b.step(eng.env.now, np.ones(eng.lay.n_gpus), eng.network.rep_nic_gb_s, eng.network.rep_cross_lat_s)


def test_the_kernel_status_codes_are_the_request_books():
    assert (sk.INFLIGHT, sk.DONE) == (rq.INFLIGHT, rq.DONE)


def _digests(name: str, kernels: str, tmp: Path, duration_s: float) -> dict[str, str]:
    sc = load_scenario(ROOT / "scenarios" / f"{name}.yaml", overrides={"simulation.duration_s": duration_s})
    write_run(simulate(sc, kernels=kernels), tmp / kernels)
    return {p.stem: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((tmp / kernels / "telemetry").glob("*"))}


@pytest.mark.parametrize("name", ["dual-3090-train", "ws-4x4090-405b"])  # time-shared GPUs; CPU offload
def test_both_paths_write_byte_identical_telemetry(name, tmp_path):
    assert _digests(name, "numba", tmp_path, 300.0) == _digests(name, "numpy", tmp_path, 300.0)


def test_arrivals_through_the_kernel_queue_and_drop_the_same_requests_in_the_same_order():
    eng = Engine(load_scenario(ROOT / "scenarios" / "surge.yaml"), kernels="numpy")
    books = [copy.deepcopy(eng.book) for _ in range(2)]
    books[1].compiled = True
    for bk in books:   # a context window some prompts overflow: those are dropped at arrival
        bk.max_ctx = np.where(np.arange(bk.req.n) % 3 == 0, 1500, bk.max_ctx)
        for k in range(120):
            bk.arrive(k * 10.0, (k + 1) * 10.0)
    assert (books[0].drop_reason == rq.DROP_REASONS.index("context_too_long")).sum() > 100
    assert books[0].next_arrival == books[1].next_arrival > 1000
    for name in ("status", "drop_reason", "done_s"):
        assert getattr(books[0], name).tobytes() == getattr(books[1], name).tobytes(), name
    assert [list(q) for q in books[0].queues] == [list(q) for q in books[1].queues]
    assert all(len(q) for q in books[0].queues)   # both pools of the surge take arrivals
