"""Routing: which ready replica takes each queued request (FCFS, least outstanding work).

Per pool, requests leave their line in order (the retry line first: those requests were admitted
once already) and go to the ready replica with the least estimated outstanding work. A replica
that is full (max_batch sequences, or no KV room for this request's prompt + output tokens) is
skipped for the rest of the tick; when none is left the head of the line waits (head-of-line:
a later, smaller request does not overtake it). Each admission adds its estimated service time
to the replica's work: prompt x prefill s/token + output x decode interval / batch.
"""
from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReplicaLoad:
    """What the router may look at per replica, (R,) arrays (read-only here)."""
    work_s: np.ndarray           # outstanding work estimate (batching.rep_busy)
    inflight: np.ndarray         # sequences held
    kv_reserved_b: np.ndarray    # KV bytes held
    max_batch: np.ndarray
    kv_cap_b: np.ndarray
    prefill_s_per_tok: np.ndarray
    interval_s: np.ndarray       # last decode token interval


def least_work_admit(retry_line: deque, main_line: deque, candidates: np.ndarray, load: ReplicaLoad,
                     reservation_b: np.ndarray, prompt_tokens: np.ndarray,
                     output_tokens: np.ndarray) -> tuple[list[int], list[int]]:
    """Pop admitted requests off the two lines; return (request ids, replica ids) in admission order.

    The lines are consumed in place; `load` is not modified (occupancy is tracked locally and
    applied by RequestBook.admit).
    """
    ids: list[int] = []
    reps: list[int] = []
    if not len(candidates) or not (retry_line or main_line):
        return ids, reps
    work = load.work_s[candidates] + load.inflight[candidates] * 1e-3
    heap = [(float(w), int(r)) for w, r in zip(work, candidates)]
    heapq.heapify(heap)
    inflight = {int(r): int(load.inflight[r]) for r in candidates}
    kv = {int(r): float(load.kv_reserved_b[r]) for r in candidates}
    q = retry_line if retry_line else main_line
    while heap and (q or (q is not main_line and main_line)):
        if not q:
            q = main_line
        i = q[0]
        w, r = heap[0]
        if inflight[r] >= load.max_batch[r] or kv[r] + reservation_b[i] > load.kv_cap_b[r]:
            heapq.heappop(heap)
            continue
        q.popleft()
        ids.append(i)
        reps.append(r)
        inflight[r] += 1
        kv[r] += reservation_b[i]
        est = (prompt_tokens[i] * load.prefill_s_per_tok[r]
               + output_tokens[i] * load.interval_s[r] / max(inflight[r], 1))
        heapq.heapreplace(heap, (w + est, r))
    return ids, reps
