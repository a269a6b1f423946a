"""Router, prefill scan and request book alone, with hand-built state and hand-computed values."""
from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from twin.model.workload import Requests
from twin.sim.batching import prefill_scan
from twin.sim.events import EventLog
from twin.sim.requests import DONE, DROPPED, INFLIGHT, QUEUED, RequestBook
from twin.sim.router import ReplicaLoad, least_work_admit


# ---------------------------------------------------------------------------- prefill scan
def test_prefill_scan_runs_prompts_back_to_back_in_queue_order():
    start, end = prefill_scan(np.array([0.2, 0.3]), np.array([0.0, 0.0]), np.array([0, 0]))
    assert start == pytest.approx([0.0, 0.2]) and end == pytest.approx([0.2, 0.5])


def test_prefill_scan_waits_for_a_late_arrival_and_keeps_groups_apart():
    # replica 0: the second prompt arrives at 0.4 s, after the first is done (0.2 s): it runs 0.4-0.7;
    # replica 1's prompt arrives at 0.5 and owes nothing to replica 0's queue
    start, end = prefill_scan(np.array([0.2, 0.3, 0.1]), np.array([0.0, 0.4, 0.5]), np.array([0, 0, 1]))
    assert start == pytest.approx([0.0, 0.4, 0.5]) and end == pytest.approx([0.2, 0.7, 0.6])


def test_prefill_scan_an_early_prompt_queues_behind_a_long_one():
    # 0.5 s of work arriving at 0; the next (0.1 s) arrives at 0.1 and waits until 0.5
    start, end = prefill_scan(np.array([0.5, 0.1]), np.array([0.0, 0.1]), np.array([3, 3]))
    assert start == pytest.approx([0.0, 0.5]) and end == pytest.approx([0.5, 0.6])


# ---------------------------------------------------------------------------- router
def load(n: int = 2, **kw) -> ReplicaLoad:
    base = dict(work_s=np.zeros(n), inflight=np.zeros(n, np.int64), kv_reserved_b=np.zeros(n),
                max_batch=np.full(n, 8), kv_cap_b=np.full(n, 1e9), prefill_s_per_tok=np.full(n, 1e-3),
                interval_s=np.full(n, 0.1))
    base.update(kw)
    return ReplicaLoad(**base)


PROMPT, OUT, RES = np.full(8, 100), np.full(8, 10), np.full(8, 1e6)


def test_router_sends_each_request_to_the_replica_with_least_work():
    # each admission adds 100 x 1 ms + 10 x 0.1 s / batch: 1.1 s for the first on a replica,
    # 0.6 s for the second. Ties go to the lower replica id.
    line = deque([0, 1, 2, 3, 4])
    ids, reps = least_work_admit(deque(), line, np.array([0, 1]), load(), RES, PROMPT, OUT)
    assert ids == [0, 1, 2, 3, 4] and reps == [0, 1, 0, 1, 0] and not line


def test_router_prefers_the_idle_replica_over_a_busy_one():
    ids, reps = least_work_admit(deque(), deque([0, 1]), np.array([0, 1]),
                                 load(work_s=np.array([2.0, 0.0])), RES, PROMPT, OUT)
    # replica 1 starts at 0 s of work, after one request at 1.1 s, after two at 1.7 s < 2.0
    assert reps == [1, 1]


def test_router_skips_full_replicas_and_the_head_of_line_waits():
    # replica 0 holds its max batch already, replica 1 has KV room for one request only
    ld = load(inflight=np.array([8, 0]), kv_cap_b=np.array([1e9, 1.5e6]))
    line = deque([0, 1, 2])
    ids, reps = least_work_admit(deque(), line, np.array([0, 1]), ld, RES, PROMPT, OUT)
    assert ids == [0] and reps == [1] and list(line) == [1, 2]
    # the inputs are not modified: the request book applies the admissions
    assert ld.inflight.tolist() == [8, 0] and ld.kv_reserved_b.tolist() == [0.0, 0.0]


def test_router_serves_the_retry_line_before_new_arrivals():
    retry, main = deque([5]), deque([0, 1])
    ids, _ = least_work_admit(retry, main, np.array([0]), load(n=1), RES, PROMPT, OUT)
    assert ids == [5, 0, 1]


def test_router_admits_nothing_without_a_ready_replica():
    line = deque([0])
    assert least_work_admit(deque(), line, np.array([], np.int64), load(), RES, PROMPT, OUT) == ([], [])
    assert list(line) == [0]


# ---------------------------------------------------------------------------- request book
def book(arrivals, prompt=100, out=10, timeout_s=5.0, kv_cap=1e9, max_ctx=10_000) -> RequestBook:
    n = len(arrivals)
    req = Requests(arrival_s=np.array(arrivals, float), prompt_tokens=np.full(n, prompt),
                   output_tokens=np.full(n, out), pool=np.zeros(n, np.int64))
    log = EventLog(np.array([0, 0]), lambda: 0.0)
    return RequestBook(req, np.full(n, 1e6), np.full(n, max_ctx), np.array([kv_cap]), n_replicas=2,
                       timeout_s=timeout_s, rep_first_node=np.array([0, 1]), log=log)


def test_arrivals_enter_the_queue_in_their_tick_and_time_out_after_timeout_s():
    bk = book([0.2, 0.9, 1.5])
    bk.arrive(0.0, 1.0)
    assert list(bk.queues[0]) == [0, 1] and bk.status[2] == 0
    bk.expire(5.0)   # request 0 has waited 4.8 s < 5 s
    assert bk.status[0] == QUEUED
    bk.expire(6.0)   # 5.8 s and 5.1 s: both gone, dropped at enqueued + 5 s
    assert bk.status[:2].tolist() == [DROPPED, DROPPED] and bk.done_s[:2] == pytest.approx([5.2, 5.9])


def test_a_request_longer_than_the_context_is_dropped_on_arrival():
    bk = book([0.1], prompt=9_000, out=2_000)
    bk.arrive(0.0, 1.0)
    assert bk.status[0] == DROPPED and bk.done_s[0] == 0.1 and not bk.queues[0]


def test_admit_finish_and_requeue_keep_occupancy_and_conservation():
    bk = book([0.0, 0.1, 0.2])
    bk.arrive(0.0, 1.0)
    bk.admit(np.array([bk.queues[0].popleft() for _ in range(3)]), np.array([0, 1, 0]), 0.0)
    assert bk.rep_inflight.tolist() == [2, 1] and bk.rep_kv_reserved.tolist() == [2e6, 1e6]
    assert bk.admitted_s.tolist() == [0.0, 0.1, 0.2] and bk.decode_left.tolist() == [9, 9, 9]
    bk.finish(np.array([1]), np.array([0.8]))
    assert bk.status[1] == DONE and bk.rep_inflight.tolist() == [2, 0] and bk.inflight.tolist() == [0, 2]
    bk.requeue(np.array([0]), "test", now=1.0)
    assert bk.status.tolist() == [QUEUED, DONE, QUEUED] and list(bk.retry_queues[0]) == [0, 2]
    assert bk.rep_inflight.tolist() == [0, 0] and bk.rep_kv_reserved.tolist() == [0.0, 0.0]
    assert bk.retries.tolist() == [1, 0, 1] and bk.enqueued_s[[0, 2]].tolist() == [1.0, 1.0]
    assert [e[1] for e in bk.log.rows] == ["request_retry"] * 2
    assert not (bk.status == INFLIGHT).any()
