"""Compiled serving step (numba): the loops behind twin.sim.batching.ServingStep.step and RequestBook.admit.

The numpy code in batching.py / requests.py is the reference and the fallback (`kernels="numpy"`);
these loops perform the same float operations in the same order, so the results are bit-identical:
- a numpy group-wise sum (bincount with weights, add.at, cumsum) adds its terms one after another
  in array order from 0.0; the loops below add the same terms in the same order;
- the FIFO prefill order lexsort((admit_seq, replica)) is a stable counting sort by replica of the
  in-flight list, which is kept in admission order (RequestBook appends on admission and only
  ever removes); `prefill_phase` checks that invariant and refuses to run without it;
- only +, -, *, /, min, max and ceil are used here; the powers of the roofline and of the MoE
  weight share stay numpy ufuncs between the two phases (numpy's pow is not libm's bit for bit).
Per-replica constants and work values travel as rows of two (k, R) float arrays (row names
below) to keep the calls short. Units: s, bytes, tokens, as in batching.py.
"""
from __future__ import annotations

import numpy as np

# rows of the per-replica constant matrix (ServingStep builds it once)
C_HOP_CROSS_B, C_HOP_INTRA_S_PER_TOK, C_HOP_INTRA_LAT_S, C_PREFILL_S_PER_TOK, C_PREFILL_ATTN_S, C_CONT, C_FILL, \
    C_PP, C_CHUNK, C_PAGED, C_BLOCK_B, C_STATE_B, C_KV_CAP, C_BLOCK_TOK = range(14)
N_CONST = 14
# rows of the decode-step constants (twin.model.replica.DecodeConstants, per replica; C_GPU: 1 where they apply)
(D_GPU, D_PP, D_TP, D_KV_B_PER_TOK, D_STATE_B, D_TP_BW_B_S, D_GEMM_FLOP, D_SMALL_MAX, D_SMALL_RATE, D_RATE,
 D_ATTN_FLOP, D_ATTN_RATE, D_OVERHEAD_S, D_TP_2LAYERS, D_HIDDEN, D_P2P_GB_S, D_TP_LAT_S, D_WEIGHTS_READ_B,
 D_MOE) = range(19)
N_DECODE = 19
# rows of the per-replica work matrix (rewritten every tick)
(W_REP_CLOCK, W_REP_MEM, W_CROSS_S_PER_TOK, W_HOP_S_PER_TOK, W_HOP_LAT_S, W_CLOCK, W_PCOMP, W_SLOW, W_PCOST,
 W_PREFILL_USED_S, W_PREFILL_TOK, W_BATCH, W_KV_TOK, W_MOE_SHARE, W_HI_S, W_RATIO, W_HOP_S, W_TP_S,
 W_INTERVAL_S, W_PER_MICRO) = range(20)
N_WORK = 20
# rows of the output matrix: the ServingOutputs fields
(O_PREFILL_FRAC, O_DECODE_FRAC, O_BATCH, O_TOKENS_S, O_PREFILL_TOK_S, O_DECODE_BATCH, O_KV_TOKENS, O_INTERVAL_S,
 O_DECODE_TIME_FRAC) = range(9)
N_OUT = 9

INFLIGHT, DONE = 2, 3   # twin.sim.requests status codes (kept equal by tests/test_serving_kernel.py)


def _nanmax(a: float, b: float) -> float:
    """np.maximum of two floats: NaN if either is NaN."""
    if a != a or b != b:
        return np.nan
    return a if a >= b else b


def prefill_phase(t0: float, dt: float, gb: float, ids: np.ndarray, replica: np.ndarray, admit_seq: np.ndarray,
                  prefill_left: np.ndarray, enqueued_s: np.ndarray, prompt_tokens: np.ndarray,
                  generated: np.ndarray, first_token_s: np.ndarray, decode_from_s: np.ndarray,
                  network_s: np.ndarray, clock_ext: np.ndarray, mem_ext: np.ndarray, has_mem: bool,
                  rep_gpus: np.ndarray, speed: np.ndarray, has_speed: bool, rep_nic_gb_s: np.ndarray,
                  rep_cross_lat_s: np.ndarray, const: np.ndarray, dconst: np.ndarray, work: np.ndarray,
                  pf_flag: np.ndarray, dec_pos: np.ndarray, dec_start: np.ndarray, order: np.ndarray) -> int:
    """Per-replica hop/clock terms, the FIFO chunked prefill of every waiting prompt and the choice
    of decoding sequences (the first half of ServingStep.step). Updates the book's prefill_left,
    first_token_s, decode_from_s, generated, network_s in place; fills work rows W_REP_CLOCK ..
    W_KV_TOK and W_PER_MICRO (sequences per micro-batch of GPU replicas, the MoE share's exponent), dec_pos[:n]
    (positions in `ids` of the sequences that decode) and dec_start (s into the tick, by position).
    Returns n, the number of decoding sequences."""
    nr = work.shape[1]
    n = len(ids)
    for r in range(nr):
        m = clock_ext[rep_gpus[r, 0]]
        for j in range(1, rep_gpus.shape[1]):
            m = min(m, clock_ext[rep_gpus[r, j]])
        work[W_REP_CLOCK, r] = m
        if has_mem:
            m = mem_ext[rep_gpus[r, 0]]
            for j in range(1, rep_gpus.shape[1]):
                m = min(m, mem_ext[rep_gpus[r, j]])
            work[W_REP_MEM, r] = m
        else:
            work[W_REP_MEM, r] = 1.0
        cross = const[C_HOP_CROSS_B, r] / (rep_nic_gb_s[r] * gb)
        work[W_CROSS_S_PER_TOK, r] = cross
        hop = const[C_HOP_INTRA_S_PER_TOK, r] + cross
        work[W_HOP_S_PER_TOK, r] = hop
        work[W_HOP_LAT_S, r] = const[C_HOP_INTRA_LAT_S, r] + rep_cross_lat_s[r]
        clock = max(work[W_REP_CLOCK, r], 1e-3)
        work[W_CLOCK, r] = clock
        p_comp = const[C_PREFILL_S_PER_TOK, r] / clock
        work[W_PCOMP, r] = p_comp
        slow = 1.0 / max(speed[r], 1e-6) if has_speed else 1.0
        work[W_SLOW, r] = slow
        work[W_PCOST, r] = p_comp * slow + hop
        work[W_PREFILL_USED_S, r] = 0.0
        work[W_PREFILL_TOK, r] = 0.0
        work[W_BATCH, r] = 0.0
        work[W_KV_TOK, r] = 0.0
    # ---- prefill: FIFO per replica (stable counting sort by replica of the admission-ordered list)
    n_dec0 = np.zeros(nr, dtype=np.int64)
    start_of = np.zeros(nr + 1, dtype=np.int64)
    n_pf = 0
    seq = -1
    for k in range(n):
        i = ids[k]
        if admit_seq[i] <= seq:
            raise ValueError("in-flight requests are not in admission order")
        seq = admit_seq[i]
        dec_start[k] = 0.0
        if prefill_left[i] > 0:
            pf_flag[k] = 1
            start_of[replica[i] + 1] += 1
            n_pf += 1
        else:
            pf_flag[k] = 0
            n_dec0[replica[i]] += 1
    for r in range(nr):
        start_of[r + 1] += start_of[r]
    for k in range(n):
        if pf_flag[k]:
            r = replica[ids[k]]
            order[start_of[r]] = k
            start_of[r] += 1
    csum = 0.0
    run_max = -np.inf
    base = 0.0
    g = -1
    prev_r = -1
    for q in range(n_pf):
        k = order[q]
        i = ids[k]
        r = replica[i]
        if n_dec0[r] > 0:
            budget = (0.6 if const[C_CONT, r] > 0.5 else 0.0) * dt   # batching.PREFILL_SHARE_MAX
        else:
            budget = 1.0 * dt
        clock = work[W_CLOCK, r]
        total = prompt_tokens[i] + generated[i]
        comp = (work[W_PCOMP, r] + const[C_PREFILL_ATTN_S, r] * total / clock) * work[W_SLOW, r]
        cost = comp + work[W_HOP_S_PER_TOK, r]
        left0 = prefill_left[i]
        w = left0 * cost
        a = min(max(enqueued_s[i] - t0, 0.0), dt)
        # prefill_scan: one running sum over all jobs, re-based at each group's first job
        csum = csum + w
        if r != prev_r:
            g += 1
            prev_r = r
            base = csum - w
        c = csum - base
        c_prev = c - w
        key = a - c_prev + g * 1e6
        if key > run_max or q == 0:
            run_max = key
        end = c + run_max - g * 1e6
        start = end - w
        done = end <= budget + 1e-12
        used = min(max(budget - start, 0.0), w)
        used_tok = used / cost
        left = 0.0 if done else left0 - used_tok
        prefill_left[i] = max(left, 0.0)
        work[W_PREFILL_USED_S, r] += used
        work[W_PREFILL_TOK, r] += used_tok
        network_s[i] += used_tok * work[W_CROSS_S_PER_TOK, r]
        if done:
            fill = 0.0
            if const[C_FILL, r] > 0.5:   # twin.model.replica.pipeline_fill_s
                fill = (const[C_PP, r] - 1.0) * (total * comp) / max(np.ceil(total / const[C_CHUNK, r]), 1.0)
            ready = t0 + end + fill
            if first_token_s[i] != first_token_s[i]:
                first_token_s[i] = ready
            decode_from_s[i] = ready
            generated[i] = max(generated[i], 1.0)
            network_s[i] += rep_cross_lat_s[r]
            pf_flag[k] = 2   # its first token is out in this tick
            dec_start[k] = min(end + fill, dt)
    # ---- decode: sequences whose first token (or recomputed context) is out before the tick ends
    n_dec = 0
    for k in range(n):
        i = ids[k]
        from_s = decode_from_s[i] - t0
        if from_s != from_s:
            from_s = 0.0
        if pf_flag[k] == 1 or from_s >= dt:
            continue
        if pf_flag[k] == 0:
            dec_start[k] = min(max(from_s, 0.0), dt)
        r = replica[i]
        dec_pos[n_dec] = k
        n_dec += 1
        work[W_BATCH, r] += 1.0
        work[W_KV_TOK, r] += prompt_tokens[i] + generated[i]
    for r in range(nr):
        if dconst[D_GPU, r] > 0.5:
            b1 = max(work[W_BATCH, r], 1.0)
            work[W_PER_MICRO, r] = b1 / min(dconst[D_PP, r], b1)
    return n_dec


def decode_terms(work: np.ndarray, dconst: np.ndarray) -> None:
    """The terms of twin.model.replica.decode_step_from around its roofline, for every GPU-resident
    replica (D_GPU): of the roofline (twin.model.kernels.roofline_s) max(t_mem, t_comp) in W_HI_S and
    min / max in W_RATIO (numpy raises it to its powers), W_HOP_S (pipeline hops of a micro-batch)
    and W_TP_S (twin.model.serving.tp_allreduce_s), s. An MoE replica (D_MOE) reads W_MOE_SHARE of
    its weights per step (twin.model.serving.weight_bytes_read of 1 byte: a power, numpy's)."""
    for r in range(work.shape[1]):
        if dconst[D_GPU, r] < 0.5:
            continue
        b1 = max(work[W_BATCH, r], 1.0)
        pp = dconst[D_PP, r]
        micro = min(pp, b1)
        b = b1 / micro
        tp = dconst[D_TP, r]
        if tp <= 1.0:
            work[W_TP_S, r] = 0.0
        else:
            bytes_ = b * dconst[D_HIDDEN, r] * 2.0 * 2.0 * (tp - 1.0) / tp   # serving.ACTIVATION_BYTES = 2
            work[W_TP_S, r] = dconst[D_TP_2LAYERS, r] * (dconst[D_TP_LAT_S, r] + bytes_ / (dconst[D_P2P_GB_S, r] * 1e9))
        work[W_HOP_S, r] = work[W_HOP_S_PER_TOK, r] * b1 / micro + work[W_HOP_LAT_S, r]
        kv = work[W_KV_TOK, r]
        w_b = dconst[D_WEIGHTS_READ_B, r]
        if dconst[D_MOE, r] > 0.5:
            w_b = w_b * work[W_MOE_SHARE, r]
        mem_bytes = w_b + (kv * dconst[D_KV_B_PER_TOK, r] + dconst[D_STATE_B, r] * b1) / micro
        mem_s = mem_bytes / (dconst[D_TP_BW_B_S, r] * max(work[W_REP_MEM, r], 1e-3))
        rate = dconst[D_RATE, r]
        if dconst[D_SMALL_MAX, r] != np.inf and b <= dconst[D_SMALL_MAX, r]:
            rate = dconst[D_SMALL_RATE, r]
        comp_s = (dconst[D_GEMM_FLOP, r] * b / rate + dconst[D_ATTN_FLOP, r] * (kv / micro)
                  / dconst[D_ATTN_RATE, r]) / (tp * max(work[W_REP_CLOCK, r], 1e-3))
        hi, lo = max(mem_s, comp_s), min(mem_s, comp_s)
        work[W_HI_S, r] = hi
        work[W_RATIO, r] = lo / hi if hi > 0 else 0.0


def decode_phase(t0: float, dt: float, n_dec: int, ids: np.ndarray, replica: np.ndarray, status: np.ndarray,
                 prompt_tokens: np.ndarray, generated: np.ndarray, decode_left: np.ndarray,
                 first_token_s: np.ndarray, done_s: np.ndarray, network_s: np.ndarray, held: np.ndarray,
                 rep_inflight: np.ndarray, rep_kv_reserved: np.ndarray, rep_cross_lat_s: np.ndarray,
                 has_speed: bool, const: np.ndarray, dconst: np.ndarray, work: np.ndarray, rep_interval_s: np.ndarray,
                 dec_pos: np.ndarray, dec_start: np.ndarray, new_b: np.ndarray,
                 out: np.ndarray) -> tuple[np.ndarray, bool]:
    """Decode every chosen sequence through the time prefill left, finish those that are done
    (RequestBook.finish), grow paged KV (RequestBook.grow_kv) when no pool runs dry, and fill the
    output rows (the second half of ServingStep.step). W_INTERVAL_S holds (1 + ratio^n)^(1/n) of the
    roofline of GPU replicas (its max and the rest of the step are applied here) or the whole step
    of offloaded ones, s.
    Returns (the in-flight ids left, True if some paged pool runs dry: then nothing has grown and
    the caller runs RequestBook.grow_kv, whose preemption is the rare path)."""
    nr = work.shape[1]
    for r in range(nr):
        iv = work[W_INTERVAL_S, r]
        if dconst[D_GPU, r] > 0.5:
            iv = work[W_HI_S, r] * iv + dconst[D_OVERHEAD_S, r] + work[W_HOP_S, r] + work[W_TP_S, r]
        if has_speed:
            iv = iv * work[W_SLOW, r]
        work[W_INTERVAL_S, r] = iv
        batch = work[W_BATCH, r]
        busy = batch > 0
        if busy:
            rep_interval_s[r] = iv
        df = 1.0 - work[W_PREFILL_USED_S, r] / dt
        out[O_PREFILL_FRAC, r] = work[W_PREFILL_USED_S, r] / dt
        out[O_PREFILL_TOK_S, r] = work[W_PREFILL_TOK, r] / dt
        out[O_DECODE_BATCH, r] = batch
        out[O_KV_TOKENS, r] = work[W_KV_TOK, r]
        out[O_INTERVAL_S, r] = iv if busy else 0.0
        out[O_DECODE_TIME_FRAC, r] = df if busy else 0.0
        out[O_TOKENS_S, r] = 0.0
        out[O_DECODE_FRAC, r] = 0.0
        out[O_BATCH, r] = 0.0
        if n_dec > 0:
            pp = const[C_PP, r]
            out[O_DECODE_FRAC, r] = df * min(pp, batch) / pp if busy else 0.0
            out[O_BATCH, r] = batch / min(pp, max(batch, 1.0))
    if n_dec == 0:
        return ids, False
    n_fin = 0
    for q in range(n_dec):
        k = dec_pos[q]
        i = ids[k]
        r = replica[i]
        ds = dec_start[k]
        df = 1.0 - work[W_PREFILL_USED_S, r] / dt
        avail = (dt - ds) * df
        rate = 1.0 / work[W_INTERVAL_S, r]
        tokens = avail * rate
        left = decode_left[i]
        fin = tokens >= left - 1e-9
        t_fin = t0 + ds + (left / (rate * df) if df > 0 else 0.0)
        step = min(tokens, left)
        decode_left[i] = 0.0 if fin else left - tokens
        generated[i] += step
        network_s[i] += step * (work[W_CROSS_S_PER_TOK, r] + rep_cross_lat_s[r])
        out[O_TOKENS_S, r] += step
        if fin:   # RequestBook.finish, in the order the sequences finish: slot and blocks freed
            done_s[i] = _nanmax(t_fin, first_token_s[i])
            status[i] = DONE
            n_fin += 1
            rep_inflight[r] -= 1
            rep_kv_reserved[r] -= held[i]
            held[i] = 0.0
    for r in range(nr):
        out[O_TOKENS_S, r] = out[O_TOKENS_S, r] / dt
    left_ids = ids if n_fin == 0 else np.empty(len(ids) - n_fin, dtype=np.int64)
    # paged KV: blocks for the new tokens (RequestBook.grow_kv without preemption); new_b[k] is the
    # size left_ids[k] grows to
    grow_sum = np.zeros(nr)
    any_paged = False
    m = 0
    for k in range(len(ids)):
        i = ids[k]
        if n_fin > 0:
            if status[i] != INFLIGHT:
                continue
            left_ids[m] = i
        m += 1
        r = replica[i]
        if const[C_PAGED, r] < 0.5:
            continue
        any_paged = True
        bt = np.int64(const[C_BLOCK_TOK, r])
        ctx = prompt_tokens[i] + np.int64(np.ceil(generated[i]))
        new = max((-((-ctx) // bt)) * const[C_BLOCK_B, r] + const[C_STATE_B, r], held[i])
        new_b[m - 1] = new
        grow_sum[r] += new - held[i]
    if not any_paged:
        return left_ids, False
    for r in range(nr):
        if rep_kv_reserved[r] + grow_sum[r] > const[C_KV_CAP, r] + 1e-6:
            return left_ids, True
    for k in range(len(left_ids)):
        i = left_ids[k]
        r = replica[i]
        if const[C_PAGED, r] > 0.5:
            rep_kv_reserved[r] += new_b[k] - held[i]
            held[i] = new_b[k]
    return left_ids, False


def busy_work_s(ids: np.ndarray, replica: np.ndarray, prefill_left: np.ndarray, prompt_tokens: np.ndarray,
                const: np.ndarray, work: np.ndarray, out: np.ndarray) -> None:
    """The router's outstanding-work estimate per replica: seconds of prefill left (ServingStep.rep_busy)."""
    out[:] = 0.0
    for k in range(len(ids)):
        i = ids[k]
        r = replica[i]
        out[r] += prefill_left[i] * (work[W_PCOST, r] + const[C_PREFILL_ATTN_S, r] * prompt_tokens[i])


def admit(ids: np.ndarray, reps: np.ndarray, t0: float, counter: int, replica: np.ndarray, rep_inflight: np.ndarray,
          reservation: np.ndarray, rep_kv_reserved: np.ndarray, held: np.ndarray, status: np.ndarray,
          generated: np.ndarray, admitted_s: np.ndarray, enqueued_s: np.ndarray, prefill_left: np.ndarray,
          decode_left: np.ndarray, prompt_tokens: np.ndarray, output_tokens: np.ndarray,
          admit_seq: np.ndarray) -> None:
    """RequestBook.admit's array updates, request by request in admission order (ids are unique)."""
    for k in range(len(ids)):
        i = ids[k]
        r = reps[k]
        replica[i] = r
        rep_inflight[r] += 1
        res = reservation[i]
        rep_kv_reserved[r] += res
        held[i] = res
        status[i] = INFLIGHT
        gen = generated[i]
        if not gen > 0:   # fresh (a resumed one keeps its admission time and tokens left)
            admitted_s[i] = _nanmax(enqueued_s[i], t0)
            decode_left[i] = output_tokens[i] - 1
        prefill_left[i] = prompt_tokens[i] + gen
        admit_seq[i] = counter + k


def arrive(j: int, t1: float, arrival_s: np.ndarray, prompt_tokens: np.ndarray, output_tokens: np.ndarray,
           max_ctx: np.ndarray, full_b: np.ndarray, pool: np.ndarray, pool_kv_cap_b: np.ndarray, status: np.ndarray,
           drop_reason: np.ndarray, done_s: np.ndarray, reason: int, queued: int, dropped: int,
           out_ids: np.ndarray, pool_end: np.ndarray) -> int:
    """RequestBook.arrive's array updates for the requests from `j` that arrive before `t1` (s):
    too long for the model or its pool -> dropped at arrival, the rest queued. Writes the queued
    ids grouped by pool, each in arrival order, to out_ids (pool k's end in pool_end[k]) and
    returns the index of the first request not yet arrived."""
    end = j
    n = len(arrival_s)
    while end < n and arrival_s[end] < t1:   # searchsorted(arrival_s, t1, "left") from j: arrivals are sorted
        end += 1
    pool_end[:] = 0
    for i in range(j, end):
        p = pool[i]
        if prompt_tokens[i] + output_tokens[i] > max_ctx[i] or full_b[i] > pool_kv_cap_b[p]:
            status[i] = dropped
            drop_reason[i] = reason
            done_s[i] = arrival_s[i]
        else:
            status[i] = queued
            pool_end[p] += 1
    for k in range(1, len(pool_end)):
        pool_end[k] += pool_end[k - 1]
    fill = np.empty(len(pool_end), dtype=np.int64)
    fill[0] = 0
    fill[1:] = pool_end[:-1]
    for i in range(j, end):
        if status[i] == queued:
            p = pool[i]
            out_ids[fill[p]] = i
            fill[p] += 1
    return end


try:  # numba compiles the loops; without it the engine runs the numpy code (kernels="numpy")
    from numba import njit
    # error_model="numpy": a division by zero gives inf / nan as the numpy path does, not an exception
    _jit = njit(cache=True, nogil=True, error_model="numpy")
    _nanmax = _jit(_nanmax)
    prefill_phase = _jit(prefill_phase)
    decode_terms = _jit(decode_terms)
    decode_phase = _jit(decode_phase)
    busy_work_s = _jit(busy_work_s)
    admit = _jit(admit)
    arrive = _jit(arrive)
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency
    HAVE_NUMBA = False
