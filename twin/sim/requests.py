"""Request state: every request's progress, the per-pool queues and each replica's occupancy.

A request is FUTURE until its arrival tick, then QUEUED (or DROPPED: context_too_long),
IN_FLIGHT once a replica admits it, and DONE or DROPPED (queue_timeout). A request in flight on a
replica that is lost goes back to QUEUED in its pool's retry line (served before new arrivals:
it was admitted once already). Conservation: every request is completed, dropped with a reason,
queued or in flight (or not yet arrived) at every instant.

Occupancy (`rep_inflight`, `rep_kv_reserved`) changes when a request changes replica and, for
paged KV (vLLM), when a decoded token opens a new block; a replica whose pool runs dry preempts
its newest sequences (recompute: back to the front of the retry line, their tokens kept), so
it lives here beside the request arrays.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from twin.model.kvcache import blocks_for, preempt_for_growth
from twin.model.replica import ServingPlan
from twin.model.workload import Requests
from twin.sim import serving_kernel as sk
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


def kv_reservation_b(req: Requests, plans: tuple[ServingPlan, ...], *, worst_case: bool = False) -> np.ndarray:
    """KV bytes each request takes at admission, + per-sequence recurrent state.

    Paged pools (vLLM): the blocks of its prompt; pools that reserve up front (llama.cpp slots) or
    `worst_case`: prompt + output tokens (in whole blocks when paged).
    """
    out = np.zeros(req.n)
    for k, pl in enumerate(plans):
        m = req.pool == k
        tokens = req.prompt_tokens[m] + (req.output_tokens[m] if worst_case or pl.engine.preemption == "none" else 0)
        kv = (blocks_for(tokens, pl.kv_block_tokens) * pl.kv_block_bytes if pl.engine.preemption != "none"
              else tokens * pl.kv_bytes_per_token)
        out[m] = kv + pl.state_bytes_per_seq
    return out


class RequestBook:
    """(n,) request arrays indexed by request id, per-pool FIFO lines, (R,) replica occupancy."""

    def __init__(self, req: Requests, reservation_b: np.ndarray, max_context: np.ndarray,
                 pool_kv_cap_b: np.ndarray, n_replicas: int, timeout_s: float, rep_first_node: np.ndarray,
                 log: EventLog, full_b: np.ndarray | None = None, compiled: bool = False) -> None:
        """`compiled`: arrivals and admissions through twin.sim.serving_kernel (the same bits as the
        numpy code). `inflight` stays in admission order (appended on admission, only ever filtered):
        the compiled serving step's FIFO prefill order relies on it and checks it."""
        self.req = req
        self.compiled = compiled and sk.HAVE_NUMBA
        self._arrive_ids: np.ndarray | None = None
        n, n_pools = req.n, len(pool_kv_cap_b)
        self.reservation = reservation_b.copy()    # KV bytes a request takes at admission (paged: its prompt)
        self._reservation0 = reservation_b         # ... when fresh (a preempted one takes its context so far)
        self.full_b = reservation_b if full_b is None else full_b  # ... with its whole output: must fit alone
        self.held = np.zeros(n)                    # KV bytes it holds now (grows with paged decoding)
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
        self.preemptions = np.zeros(n, dtype=np.int32)
        self.decode_from_s = np.full(n, np.nan)    # when its next decode may start (first token / resumed)
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
        if self.compiled:
            self._arrive_compiled(t1)
            return
        arr = self.req.arrival_s
        j = self.next_arrival
        end = int(np.searchsorted(arr, t1, side="left"))
        if end <= j:
            return
        ids = np.arange(j, end)
        self.next_arrival = end
        too_long = ((self.req.prompt_tokens[ids] + self.req.output_tokens[ids] > self.max_ctx[ids])
                    | (self.full_b[ids] > self.pool_kv_cap[self.req.pool[ids]]))
        bad = ids[too_long]
        self.status[bad] = DROPPED
        self.drop_reason[bad] = DROP_REASONS.index("context_too_long")
        self.done_s[bad] = arr[bad]
        good = ids[~too_long]
        self.status[good] = QUEUED
        pools = self.req.pool[good]
        for k in range(len(self.queues)):
            self.queues[k].extend(good[pools == k].tolist())

    def _arrive_compiled(self, t1: float) -> None:
        """arrive() through twin.sim.serving_kernel.arrive: the same states, the same queue order."""
        req, j = self.req, self.next_arrival
        if self._arrive_ids is None:   # scratch the kernel reuses: queued ids by pool, pool ends
            self._arrive_ids = np.empty(req.n, dtype=np.int64)
            self._arrive_end = np.zeros(len(self.queues), dtype=np.int64)
        ids, ends = self._arrive_ids, self._arrive_end
        end = sk.arrive(j, t1, req.arrival_s, req.prompt_tokens, req.output_tokens, self.max_ctx, self.full_b,
                        req.pool, self.pool_kv_cap, self.status, self.drop_reason, self.done_s,
                        DROP_REASONS.index("context_too_long"), QUEUED, DROPPED, ids, ends)
        if end <= j:
            return
        self.next_arrival = end
        start = 0
        for k, q in enumerate(self.queues):
            stop = int(ends[k])
            if stop > start:
                q.extend(ids[start:stop].tolist())
            start = stop

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
        return sum(map(len, self.queues)) + sum(map(len, self.retry_queues))   # (no generator: once a tick)

    # ---------------------------------------------------------------- replica side
    def admit(self, ids: np.ndarray, reps: np.ndarray, t0: float) -> None:
        """QUEUED -> IN_FLIGHT on `reps` (the router's decisions, in admission order); KV taken."""
        if not len(ids):
            return
        if self.compiled:
            sk.admit(ids, reps, t0, self._admit_counter, self.replica, self.rep_inflight, self.reservation,
                     self.rep_kv_reserved, self.held, self.status, self.generated, self.admitted_s, self.enqueued_s,
                     self.prefill_left, self.decode_left, self.req.prompt_tokens, self.req.output_tokens,
                     self.admit_seq)
            self._admit_counter += len(ids)
            self.inflight = np.concatenate([self.inflight, ids])
            return
        self.replica[ids] = reps
        self.rep_inflight += np.bincount(reps, minlength=len(self.rep_inflight))
        res = self.reservation[ids]
        np.add.at(self.rep_kv_reserved, reps, res)  # in order: the same sums as one by one
        self.held[ids] = res
        self.status[ids] = INFLIGHT
        gen = self.generated[ids]
        resumed = gen > 0                          # preempted earlier: recompute prompt + tokens so far
        self.admitted_s[ids] = np.where(resumed, self.admitted_s[ids], np.maximum(self.enqueued_s[ids], t0))
        self.prefill_left[ids] = self.req.prompt_tokens[ids] + gen
        self.decode_left[ids] = np.where(resumed, self.decode_left[ids], self.req.output_tokens[ids] - 1)
        self.admit_seq[ids] = np.arange(self._admit_counter, self._admit_counter + len(ids))
        self._admit_counter += len(ids)
        self.inflight = np.concatenate([self.inflight, ids])

    def finish(self, ids: np.ndarray, done_s: np.ndarray) -> None:
        """IN_FLIGHT -> DONE at `done_s`; the replica's slot and KV blocks are freed."""
        self.done_s[ids] = done_s
        self.status[ids] = DONE
        if len(ids):
            rf = self.replica[ids]
            self.rep_inflight -= np.bincount(rf, minlength=len(self.rep_inflight))
            np.subtract.at(self.rep_kv_reserved, rf, self.held[ids])
            self.held[ids] = 0.0
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
            self.rep_kv_reserved[r] -= self.held[i]
            self.log.emit(Kind.REQUEST_RETRY, int(self.rep_first_node[r]), int(r), f"request {int(i)}; reason {why}")
        self.status[ids] = QUEUED
        self.replica[ids] = -1
        self.retries[ids] += 1
        self.enqueued_s[ids] = now
        self.first_token_s[ids] = np.nan
        self.admitted_s[ids] = np.nan
        self.decode_from_s[ids] = np.nan
        self.generated[ids] = 0
        self.held[ids] = 0.0
        self.reservation[ids] = self._reservation0[ids]
        for i in ids:
            self.retry_queues[self.req.pool[i]].append(int(i))
        self.inflight = self.inflight[~lost]

    def grow_kv(self, ids: np.ndarray, block_b: np.ndarray, block_tokens: np.ndarray, state_b: np.ndarray,
                cap_b: np.ndarray, now: float) -> np.ndarray:
        """Paged KV after this tick's tokens: each of `ids` (in flight on paged replicas) holds the
        blocks of prompt + generated tokens (+ state). Where a replica's pool runs dry, its newest
        sequences are preempted (twin.model.kvcache.preempt_for_growth) and recomputed later.
        `block_b`, `block_tokens`, `state_b`, `cap_b` are (R,). Returns the preempted request ids."""
        if not len(ids):
            return ids
        r = self.replica[ids]
        ctx = self.req.prompt_tokens[ids] + np.ceil(self.generated[ids]).astype(np.int64)
        new = blocks_for(ctx, block_tokens[r]) * block_b[r] + state_b[r]
        held = self.held[ids]
        new = np.maximum(new, held)
        delta = new - held
        nr = len(cap_b)
        total = self.rep_kv_reserved + np.bincount(r, weights=delta, minlength=nr)
        out: list[int] = []
        for rep in np.flatnonzero(total > cap_b + 1e-6):
            sel = ids[r == rep]
            sel = sel[np.argsort(self.admit_seq[sel], kind="stable")]    # oldest first
            blk = block_b[rep]
            held_blk = np.rint((self.held[sel] - state_b[rep]) / blk).astype(np.int64)
            need_blk = np.rint((new[_positions(ids, sel)] - self.held[sel]) / blk).astype(np.int64)
            free_blk = int((cap_b[rep] - self.rep_kv_reserved[rep]) // blk)
            out.extend(sel[preempt_for_growth(free_blk, need_blk, held_blk)].tolist())
        if out:   # (most ticks preempt nothing: no set membership then)
            grow = ~np.isin(ids, out)
            r, new, delta, ids = r[grow], new[grow], delta[grow], ids[grow]
        np.add.at(self.rep_kv_reserved, r, delta)
        self.held[ids] = new
        pre = np.array(out, dtype=np.int64)
        self.preempt(pre, now)
        return pre

    def preempt(self, ids: np.ndarray, now: float) -> None:
        """IN_FLIGHT -> QUEUED in the retry line, served before new arrivals (vLLM V1 recompute
        preemption): blocks freed, first token and generated tokens kept; on re-admission it prefills
        prompt + generated tokens again. Re-enqueued at `now` (the line stays in enqueued order)."""
        if not len(ids):
            return
        rf = self.replica[ids]
        np.subtract.at(self.rep_inflight, rf, 1)
        np.subtract.at(self.rep_kv_reserved, rf, self.held[ids])
        self.reservation[ids] = self.held[ids]     # what it takes again on re-admission: its context so far
        self.held[ids] = 0.0
        self.status[ids] = QUEUED
        self.replica[ids] = -1
        self.preemptions[ids] += 1
        self.decode_from_s[ids] = np.nan
        self.enqueued_s[ids] = now
        for i in sorted(ids.tolist(), key=lambda j: self.admit_seq[j]):  # oldest first
            self.retry_queues[self.req.pool[i]].append(int(i))
        self.inflight = self.inflight[self.status[self.inflight] == INFLIGHT]


def _positions(ids: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """Index of each of `sel` in `ids` (both unique request ids)."""
    order = np.argsort(ids, kind="stable")
    return order[np.searchsorted(ids[order], sel)]
