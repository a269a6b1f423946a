"""Request state: every request's progress, the per-pool queues and each replica's occupancy.

A request is FUTURE until its arrival tick, then QUEUED (or DROPPED: context_too_long),
IN_FLIGHT once a replica admits it, and DONE or DROPPED (queue_timeout). A request in flight on a
replica that is lost goes back to QUEUED in its pool's retry line (served before new arrivals:
it was admitted once already). Conservation: every request is completed, dropped with a reason,
queued or in flight (or not yet arrived) at every instant.

Occupancy (`rep_inflight`, `rep_kv_reserved`) changes exactly when a request changes replica,
so it lives here beside the request arrays.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from twin.model.serving import ReplicaPerf
from twin.model.workload import Requests
from twin.sim.events import EventLog, Kind

# request status codes (requests.status strings in telemetry)
FUTURE, QUEUED, INFLIGHT, DONE, DROPPED = range(5)
STATUS_NAMES = ("queued", "queued", "in_flight", "completed", "dropped")
DROP_REASONS = ("", "queue_timeout", "context_too_long", "no_capacity", "replica_lost")


def arrivals_before(req: Requests, horizon_s: float) -> Requests:
    """The requests that arrive inside the run, [0, horizon_s) (arrivals are sorted)."""
    m = int(np.searchsorted(req.arrival_s, horizon_s, side="left"))
    if m == req.n:
        return req
    return Requests(arrival_s=req.arrival_s[:m], prompt_tokens=req.prompt_tokens[:m],
                    output_tokens=req.output_tokens[:m], pool=req.pool[:m])


def kv_reservation_b(req: Requests, perf: tuple[ReplicaPerf, ...]) -> np.ndarray:
    """KV bytes each request holds once admitted: (prompt + output) tokens x bytes/token + per-sequence state."""
    kvpt = np.array([pf.kv_bytes_per_token for pf in perf])
    stpt = np.array([pf.state_bytes_per_seq for pf in perf])
    return (req.prompt_tokens + req.output_tokens) * kvpt[req.pool] + stpt[req.pool]


class RequestBook:
    """(n,) request arrays indexed by request id, per-pool FIFO lines, (R,) replica occupancy."""

    def __init__(self, req: Requests, reservation_b: np.ndarray, max_context: np.ndarray,
                 pool_kv_cap_b: np.ndarray, n_replicas: int, timeout_s: float, rep_first_node: np.ndarray,
                 log: EventLog) -> None:
        self.req = req
        n, n_pools = req.n, len(pool_kv_cap_b)
        self.reservation = reservation_b           # KV bytes a request holds: prompt + output tokens
        self.max_ctx = max_context                 # its model's context window
        self.pool_kv_cap = pool_kv_cap_b
        self.timeout_s = timeout_s
        self.rep_first_node = rep_first_node
        self.log = log
        self.status = np.zeros(n, dtype=np.int8)
        self.replica = np.full(n, -1, dtype=np.int64)
        self.admitted_s = np.full(n, np.nan)
        self.first_token_s = np.full(n, np.nan)
        self.done_s = np.full(n, np.nan)
        self.enqueued_s = req.arrival_s.copy()
        self.prefill_left = np.zeros(n)
        self.decode_left = np.zeros(n)
        self.generated = np.zeros(n)
        self.network_s = np.zeros(n)
        self.retries = np.zeros(n, dtype=np.int32)
        self.drop_reason = np.zeros(n, dtype=np.int8)
        self.admit_seq = np.zeros(n, dtype=np.int64)
        self._admit_counter = 0
        self.queues: list[deque] = [deque() for _ in range(n_pools)]
        # retried requests wait in their own line, each line ordered by enqueued_s for expire()
        self.retry_queues: list[deque] = [deque() for _ in range(n_pools)]
        self.next_arrival = 0
        self.inflight = np.zeros(0, dtype=np.int64)
        self.rep_inflight = np.zeros(n_replicas, dtype=np.int64)
        self.rep_kv_reserved = np.zeros(n_replicas)

    # ---------------------------------------------------------------- queue side
    def arrive(self, t0: float, t1: float) -> None:
        """FUTURE -> QUEUED for arrivals in [t0, t1); too long for the model -> DROPPED(context_too_long)."""
        arr = self.req.arrival_s
        j = self.next_arrival
        end = int(np.searchsorted(arr, t1, side="left"))
        if end <= j:
            return
        ids = np.arange(j, end)
        self.next_arrival = end
        too_long = ((self.req.prompt_tokens[ids] + self.req.output_tokens[ids] > self.max_ctx[ids])
                    | (self.reservation[ids] > self.pool_kv_cap[self.req.pool[ids]]))
        bad = ids[too_long]
        self.status[bad] = DROPPED
        self.drop_reason[bad] = DROP_REASONS.index("context_too_long")
        self.done_s[bad] = arr[bad]
        good = ids[~too_long]
        self.status[good] = QUEUED
        pools = self.req.pool[good]
        for k in range(len(self.queues)):
            self.queues[k].extend(good[pools == k].tolist())

    def expire(self, t0: float) -> None:
        """QUEUED -> DROPPED(queue_timeout) once a request has waited timeout_s since it was enqueued."""
        limit = self.timeout_s
        reason = DROP_REASONS.index("queue_timeout")
        for q in (*self.retry_queues, *self.queues):
            while q and self.enqueued_s[q[0]] + limit <= t0:
                i = q.popleft()
                self.status[i] = DROPPED
                self.drop_reason[i] = reason
                self.done_s[i] = self.enqueued_s[i] + limit

    def waiting(self, pool: int) -> int:
        return len(self.queues[pool]) + len(self.retry_queues[pool])

    def queued(self) -> int:
        return sum(len(q) for q in (*self.queues, *self.retry_queues))

    # ---------------------------------------------------------------- replica side
    def admit(self, ids: np.ndarray, reps: np.ndarray, t0: float) -> None:
        """QUEUED -> IN_FLIGHT on `reps` (the router's decisions, in admission order); KV taken."""
        if not len(ids):
            return
        self.replica[ids] = reps
        np.add.at(self.rep_inflight, reps, 1)
        np.add.at(self.rep_kv_reserved, reps, self.reservation[ids])  # in order: the same sums as one by one
        self.status[ids] = INFLIGHT
        self.admitted_s[ids] = np.maximum(self.enqueued_s[ids], t0)
        self.prefill_left[ids] = self.req.prompt_tokens[ids]
        self.decode_left[ids] = self.req.output_tokens[ids] - 1
        self.admit_seq[ids] = np.arange(self._admit_counter, self._admit_counter + len(ids))
        self._admit_counter += len(ids)
        self.inflight = np.concatenate([self.inflight, ids])

    def finish(self, ids: np.ndarray, done_s: np.ndarray) -> None:
        """IN_FLIGHT -> DONE at `done_s`; the replica's slot and KV blocks are freed."""
        self.done_s[ids] = done_s
        self.status[ids] = DONE
        if len(ids):
            rf = self.replica[ids]
            np.subtract.at(self.rep_inflight, rf, 1)
            np.subtract.at(self.rep_kv_reserved, rf, self.reservation[ids])
            self.inflight = self.inflight[self.status[self.inflight] == INFLIGHT]

    def requeue(self, reps: np.ndarray, why: str, now: float) -> None:
        """Requests in flight on `reps` go back to their pool's retry line, each with a request_retry event."""
        if not len(self.inflight):
            return
        lost = np.isin(self.replica[self.inflight], reps)
        ids = self.inflight[lost]
        for i in ids:
            r = self.replica[i]
            self.rep_inflight[r] -= 1
            self.rep_kv_reserved[r] -= self.reservation[i]
            self.log.emit(Kind.REQUEST_RETRY, int(self.rep_first_node[r]), int(r), f"request {int(i)}; reason {why}")
        self.status[ids] = QUEUED
        self.replica[ids] = -1
        self.retries[ids] += 1
        self.enqueued_s[ids] = now
        self.first_token_s[ids] = np.nan
        self.admitted_s[ids] = np.nan
        self.generated[ids] = 0
        for i in ids:
            self.retry_queues[self.req.pool[i]].append(int(i))
        self.inflight = self.inflight[~lost]
