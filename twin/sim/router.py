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
from itertools import islice
from typing import NamedTuple

import numpy as np


class ReplicaLoad(NamedTuple):   # a NamedTuple, as plant.PlantOutputs (why: there)
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


def _sift_down(heap: np.ndarray, size: int, pos: int, work: np.ndarray, cand: np.ndarray) -> None:
    """Restore the min-heap order of candidate indices keyed by (work, replica id) below `pos`."""
    item = heap[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        right = child + 1
        if right < size and (work[heap[right]] < work[heap[child]]
                             or (work[heap[right]] == work[heap[child]] and cand[heap[right]] < cand[heap[child]])):
            child = right
        c = heap[child]
        if work[c] < work[item] or (work[c] == work[item] and cand[c] < cand[item]):
            heap[pos] = c
            pos = child
        else:
            break
    heap[pos] = item


def _least_work_heap(line0: np.ndarray, line1: np.ndarray, cand: np.ndarray, work: np.ndarray,
                     inflight: np.ndarray, kv: np.ndarray, max_batch: np.ndarray, kv_cap_b: np.ndarray,
                     prefill_s_per_tok: np.ndarray, interval_s: np.ndarray, reservation_b: np.ndarray,
                     prompt_tokens: np.ndarray, output_tokens: np.ndarray, out_ids: np.ndarray,
                     out_reps: np.ndarray) -> tuple[int, int, int]:
    """least_work_admit over plain arrays (for numba). Its heap of (work, replica) tuples is
    totally ordered (replica ids are unique), so any min-heap on the same key pops the same
    replica each time; this one holds candidate indices. `work`, `inflight`, `kv` (per
    candidate) are updated in place. Returns (admitted, taken from line0, taken from line1)."""
    n_c = len(cand)
    heap = np.arange(n_c)
    size = n_c
    for pos in range(n_c // 2 - 1, -1, -1):
        _sift_down(heap, size, pos, work, cand)
    n_out, t0, t1 = 0, 0, 0
    while size > 0:
        if t0 < len(line0):
            i, first = line0[t0], True
        elif t1 < len(line1):
            i, first = line1[t1], False
        else:
            break
        best = heap[0]
        r = cand[best]
        if inflight[best] >= max_batch[r] or kv[best] + reservation_b[i] > kv_cap_b[r]:
            size -= 1  # full for the rest of the tick: pop it
            heap[0] = heap[size]
            _sift_down(heap, size, 0, work, cand)
            continue
        if first:
            t0 += 1
        else:
            t1 += 1
        out_ids[n_out] = i
        out_reps[n_out] = r
        n_out += 1
        inflight[best] += 1
        kv[best] += reservation_b[i]
        est = prompt_tokens[i] * prefill_s_per_tok[r] + output_tokens[i] * interval_s[r] / max(inflight[best], 1)
        work[best] = work[best] + est   # only grows: sifting down restores the order
        _sift_down(heap, size, 0, work, cand)
    return n_out, t0, t1


def _room(cand: np.ndarray, max_batch: np.ndarray, inflight: np.ndarray) -> int:
    """Free batch slots over the candidates: no more requests than this can be admitted."""
    room = 0
    for r in cand:
        room += max(max_batch[r] - inflight[r], 0)
    return room


def _gather_scan(line0: np.ndarray, line1: np.ndarray, cand: np.ndarray, work_s: np.ndarray, inflight: np.ndarray,
                 kv_reserved_b: np.ndarray, max_batch: np.ndarray, kv_cap_b: np.ndarray,
                 prefill_s_per_tok: np.ndarray, interval_s: np.ndarray, reservation_b: np.ndarray,
                 prompt_tokens: np.ndarray, output_tokens: np.ndarray) -> tuple[int, int, np.ndarray, np.ndarray]:
    """_least_work_heap on the candidates' own copies of the (R,) load: (taken from line0, from
    line1, request ids, replica ids). The work key is work + inflight x 1e-3 s, as least_work_admit."""
    n_c = len(cand)
    work = np.empty(n_c)
    infl = np.empty(n_c, dtype=np.int64)
    kv = np.empty(n_c)
    for j in range(n_c):
        r = cand[j]
        work[j] = work_s[r] + inflight[r] * 1e-3
        infl[j] = inflight[r]
        kv[j] = kv_reserved_b[r]
    n = len(line0) + len(line1)
    out_ids, out_reps = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    n_out, t0, t1 = _least_work_heap(line0, line1, cand, work, infl, kv, max_batch, kv_cap_b, prefill_s_per_tok,
                                     interval_s, reservation_b, prompt_tokens, output_tokens, out_ids, out_reps)
    return t0, t1, out_ids[:n_out], out_reps[:n_out]


try:  # numba compiles the loop; without it the heapq version above is the (identical) fallback
    from numba import njit
    _sift_down = njit(cache=True, nogil=True)(_sift_down)
    _least_work_heap = njit(cache=True, nogil=True)(_least_work_heap)
    _room = njit(cache=True, nogil=True)(_room)
    _scan = njit(cache=True, nogil=True)(_gather_scan)
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a platform without it working
    _scan = None

HAVE_NUMBA = _scan is not None
_NO_IDS = np.zeros(0, dtype=np.int64)


def least_work_admit_fast(retry_line: deque, main_line: deque, candidates: np.ndarray, load: ReplicaLoad,
                          reservation_b: np.ndarray, prompt_tokens: np.ndarray,
                          output_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """least_work_admit through the compiled scan: the same admissions, the same order."""
    if _scan is None:
        return least_work_admit(retry_line, main_line, candidates, load, reservation_b, prompt_tokens, output_tokens)
    if not len(candidates) or not (retry_line or main_line):
        return [], []
    cand = np.asarray(candidates, dtype=np.int64)
    # no more can be admitted than the free batch slots: convert only that much of the lines
    room = _room(cand, load.max_batch, load.inflight)
    line0 = np.fromiter(islice(retry_line, room), dtype=np.int64) if retry_line else _NO_IDS
    line1 = np.fromiter(islice(main_line, max(room - len(line0), 0)), dtype=np.int64)
    t0, t1, ids, reps = _scan(line0, line1, cand, load.work_s, load.inflight, load.kv_reserved_b, load.max_batch,
                              load.kv_cap_b, load.prefill_s_per_tok, load.interval_s, reservation_b, prompt_tokens,
                              output_tokens)
    _drop_head(retry_line, t0)
    _drop_head(main_line, t1)
    return ids, reps


def _drop_head(line: deque, n: int) -> None:
    """Remove the first n items of a line (all of it at once when it is used up)."""
    if n >= len(line):
        line.clear()
        return
    for _ in range(n):
        line.popleft()


# serving kernels by name: the engine takes "numba" when it is installed
ROUTERS = {"numpy": least_work_admit, "numba": least_work_admit_fast}
