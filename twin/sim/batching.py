"""The serving step: one tick of chunked prefill and decode for every request in flight.

Per replica, prompts are prefilled FIFO (admission order) within a token budget: the whole tick
when nothing decodes, PREFILL_SHARE_MAX of it when sequences are decoding and the engine batches
continuously, none when it does not (llama.cpp --no-cont-batching). Each prompt costs its GEMMs
plus causal attention at the replica's throughput (twin.model.replica.prefill_s_per_token); on a
pipeline-parallel replica whose stages overlap, its first token also waits for the pipeline fill
(the sum of the stage times, twin.model.replica.pipeline_fill_s). Decode then runs at the
kernel-table roofline step (twin.model.replica.decode_step_s: the SM clock scales only the compute
term) for the replica's batch, TP all-reduces and pipeline hops included, in the time prefill left.
Paged pools (vLLM) then grow each sequence's KV blocks and preempt the newest sequences of a replica
whose pool runs dry (RequestBook.grow_kv). First-token and completion times are sub-tick. All
requests are handled at once with group-wise scans; no Python loop over requests. With
kernels="numba" the same step runs as compiled loops (twin.sim.serving_kernel), bit for bit.
A replica that shares its GPUs (several pools on one GPU, or a training job) runs at its time
share's speed (twin.model.sharing, twin.sim.tenancy): prefill and decode take 1 / speed as long.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from twin.model import offload as ol
from twin.model import replica as rp
from twin.model import serving as sv
from twin.model.kernels import roofline_factor
from twin.sim import serving_kernel as sk
from twin.sim.layout import Layout
from twin.sim.requests import RequestBook
from twin.spec.catalogue import CpuSpec, NodeSpec

PREFILL_SHARE_MAX = 0.6   # estimate: chunked-prefill token budget keeps >= 40 % of a step for decode
P2P_HOP_LATENCY_S = 5e-6  # estimate: PCIe P2P copy launch + sync per intra-node pipeline hop


def prefill_scan(work_s: np.ndarray, arrive_s: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FIFO single-server schedule of jobs in groups: (start_s, end_s) of each job.

    Jobs are sorted by group, then by queue order; job i needs `work_s[i]` of its group's server
    and cannot start before `arrive_s[i]`. end_i = C_i + max_{j<=i in group}(a_j - C_{j-1}) with C
    the running work within the group (the max-plus form of Lindley's recursion).
    """
    csum = np.cumsum(work_s)
    starts = np.empty(len(group), dtype=bool)   # (np.r_ costs more than the scan on small arrays)
    starts[:1] = True
    np.not_equal(group[1:], group[:-1], out=starts[1:])
    grp = np.cumsum(starts) - 1
    base = (csum - work_s)[starts][grp]
    c = csum - base
    c_prev = c - work_s
    key = arrive_s - c_prev + grp * 1e6  # offset keeps the running max inside each group
    end = c + np.maximum.accumulate(key) - grp * 1e6
    return end - work_s, end


class ServingOutputs(NamedTuple):   # a NamedTuple, as plant.PlantOutputs (why: there)
    """Per replica, this tick: shares of the tick spent prefilling / decoding, batch, token rates."""
    prefill_frac: np.ndarray
    decode_frac: np.ndarray    # busy share of decoding (pipeline bubbles removed)
    batch: np.ndarray          # sequences per micro-batch
    tokens_s: np.ndarray       # decode tokens/s
    prefill_tok_s: np.ndarray  # prompt tokens/s
    # the work behind it, for the power model (power.replica_gpu_work)
    decode_batch: np.ndarray   # sequences decoding
    kv_tokens: np.ndarray      # KV-cache tokens they read per step
    interval_s: np.ndarray     # decode token interval
    decode_time_frac: np.ndarray  # share of the tick left to decode (after prefill)


class ServingStep:
    """Advances the RequestBook's in-flight requests; owns the decode interval and work estimate."""

    def __init__(self, layout: Layout, book: RequestBook, node: NodeSpec, dt_s: float,
                 cpu: CpuSpec | None = None, kernels: str = "numpy") -> None:
        """`kernels`: "numba" runs the compiled loops of twin.sim.serving_kernel, "numpy" the
        vectorised code below; both give the same bits (tests/test_serving_kernel.py)."""
        self.lay, self.book, self.node, self.dt, self.cpu = layout, book, node, dt_s, cpu
        nr = layout.n_rep
        self.rep_interval_s = np.array([self._single_interval(p) for p in layout.rep_pool])
        self.rep_busy = np.zeros(nr)  # outstanding work estimate for the router, s
        self.rep_state_b = np.array([layout.plans[p].state_bytes_per_seq for p in layout.rep_pool])
        z = np.zeros(nr)
        self.idle = ServingOutputs(z, z, z, z, z, z, z, z, z)
        # per-replica constants of the hop costs (the same expressions the tick would evaluate)
        self._ones = np.ones(nr)
        self._hop_intra_per_tok_s = layout.rep_hops_intra * layout.rep_hidden_bytes / (node.pcie_p2p_gb_s * sv.GB)
        self._hop_cross_b = layout.rep_hops_cross * layout.rep_hidden_bytes
        self._hop_intra_lat_s = layout.rep_hops_intra * P2P_HOP_LATENCY_S
        self._clock_ext = np.ones(layout.n_gpus + 1)   # GPU clocks + 1.0 for the padding slot of rep_gpus
        self._mem_ext = np.ones(layout.n_gpus + 1)
        # tick-independent terms of each GPU-resident pool's decode step (twin.model.replica.decode_constants)
        self._decode = [rp.decode_constants(pl) for pl in layout.plans]
        # each pool's replicas as a slice where they are contiguous (basic indexing: views, no gathers)
        self._pool_sel = [slice(int(r[0]), int(r[-1]) + 1) if len(r) and np.all(np.diff(r) == 1) else r
                          for r in layout.pool_reps]
        # pools whose prompts pay a pipeline fill (overlapping stages, pp > 1); the others' is zero
        self._fill_pools = [p for p, reps in enumerate(layout.pool_reps) if len(reps)
                            and layout.rep_pp_overlap[reps[0]] and layout.rep_pp[reps[0]] > 1]
        self.compiled = kernels == "numba" and sk.HAVE_NUMBA
        if self.compiled:
            self._setup_compiled()

    def _single_interval(self, pool: int) -> float:
        pl, split = self.lay.plans[pool], self.lay.splits[pool]
        if split is not None and self.cpu is not None:
            return ol.offload_decode_token_s(pl, split, self.cpu, self.node, context_tokens=1000.0,
                                             cores=self.lay.pool_cores[pool])
        return float(rp.decode_step_s(pl, 1.0, 1000.0))

    def step(self, t0: float, gpu_clock: np.ndarray, rep_nic_gb_s: np.ndarray,
             rep_cross_lat_s: np.ndarray, gpu_mem_clock: np.ndarray | None = None,
             speed: np.ndarray | None = None) -> ServingOutputs:
        """Advance every in-flight request by one tick (vectorised over requests, grouped by replica).
        `gpu_mem_clock`: memory-clock share per GPU (memory-junction throttle); the slowest GPU's sets
        its replica's bandwidth. `speed` (R,) in (0, 1]: each replica's share of its GPUs' time
        (None: every GPU to itself)."""
        if self.compiled:
            return self._step_compiled(t0, gpu_clock, rep_nic_gb_s, rep_cross_lat_s, gpu_mem_clock, speed)
        lay, bk, dt = self.lay, self.book, self.dt
        nr = lay.n_rep
        ids = bk.inflight
        self._clock_ext[:-1] = gpu_clock
        rep_clock = self._clock_ext[lay.rep_gpus].min(axis=1)
        if gpu_mem_clock is None:
            rep_mem = self._ones
        else:
            self._mem_ext[:-1] = gpu_mem_clock
            rep_mem = self._mem_ext[lay.rep_gpus].min(axis=1)
        if not len(ids):
            self.rep_busy[:] = 0
            return self.idle
        rep_prefill_tok_s = np.zeros(nr)
        rep_tokens_s = np.zeros(nr)
        rep_decode_frac = np.zeros(nr)
        rep_batch = np.zeros(nr)
        r = bk.replica[ids]
        # hop cost of one token's activations across the pipeline
        cross_per_tok_s = self._hop_cross_b / (rep_nic_gb_s * sv.GB)
        hop_per_tok_s = self._hop_intra_per_tok_s + cross_per_tok_s
        hop_lat_s = self._hop_intra_lat_s + rep_cross_lat_s
        clock = np.maximum(rep_clock, 1e-3)
        p_comp = lay.rep_prefill_s_per_tok / clock   # GEMMs + TP, per replica
        slow = self._ones if speed is None else 1.0 / np.maximum(speed, 1e-6)  # time-sliced GPUs
        p_cost = p_comp * slow + hop_per_tok_s
        # ---- prefill: FIFO per replica, starting no earlier than the request's arrival in this tick
        pf_mask = bk.prefill_left[ids] > 0
        decoding0 = ~pf_mask
        n_dec0 = np.bincount(r[decoding0], minlength=nr)
        # Without continuous batching (llama.cpp --no-cont-batching: prompts are batched only
        # `if (cont_batching || batch.n_tokens == 0)`), a new prompt waits until no slot decodes.
        budget = np.where(n_dec0 > 0, np.where(lay.rep_cont_batching, PREFILL_SHARE_MAX, 0.0), 1.0) * dt
        first_done = np.zeros(len(ids), dtype=bool)
        dec_start = np.zeros(len(ids))
        prefill_used = np.zeros(nr)
        if pf_mask.any():
            pidx = np.nonzero(pf_mask)[0]   # (1-d: flatnonzero without its ravel wrapper)
            order = np.lexsort((bk.admit_seq[ids[pidx]], r[pidx]))
            pidx = pidx[order]
            rr = r[pidx]
            rid = ids[pidx]
            total = bk.req.prompt_tokens[rid] + bk.generated[rid]     # tokens this prefill computes in all
            comp = (p_comp[rr] + lay.rep_prefill_attn_s[rr] * total / clock[rr]) * slow[rr]
            cost = comp + hop_per_tok_s[rr]
            left0 = bk.prefill_left[rid]
            w = left0 * cost
            a = np.clip(bk.enqueued_s[rid] - t0, 0.0, dt)
            start, end = prefill_scan(w, a, rr)
            b_rr = budget[rr]
            done = end <= b_rr + 1e-12
            used = np.clip(b_rr - start, 0.0, w)
            used_tok = used / cost
            left = np.where(done, 0.0, left0 - used_tok)
            bk.prefill_left[rid] = np.maximum(left, 0.0, out=left)
            prefill_used = np.bincount(rr, weights=used, minlength=nr)
            done_ids = rid[done]
            # the prompt's own traversal of the stages beyond its throughput share (sum of stage times)
            fill = np.zeros(len(done_ids))
            rr_done = rr[done]
            if self._fill_pools:
                pool_done, total_done, comp_done = lay.rep_pool[rr_done], total[done], comp[done]
            for p in self._fill_pools:
                m = pool_done == p
                if not m.any():
                    continue
                rd0 = rr_done[m]
                fill[m] = rp.pipeline_fill_s(total_done[m] * comp_done[m], int(lay.rep_pp[rd0[0]]),
                                             np.ceil(total_done[m] / lay.rep_chunk_tokens[rd0]),
                                             bool(lay.rep_pp_overlap[rd0[0]]))
            ready = t0 + end[done] + fill
            fresh = np.isnan(bk.first_token_s[done_ids])
            bk.first_token_s[done_ids] = np.where(fresh, ready, bk.first_token_s[done_ids])
            bk.decode_from_s[done_ids] = ready
            bk.generated[done_ids] = np.maximum(bk.generated[done_ids], 1)
            bk.network_s[rid] += used_tok * cross_per_tok_s[rr]
            bk.network_s[done_ids] += rep_cross_lat_s[rr_done]
            first_done[pidx[done]] = True
            dec_start[pidx[done]] = np.minimum(end[done] + fill, dt)
            rep_prefill_tok_s = np.bincount(rr, weights=used_tok, minlength=nr) / dt
        # ---- decode: sequences whose first token (or recomputed context) is out before the tick ends
        from_s = bk.decode_from_s[ids] - t0
        from_s[np.isnan(from_s)] = 0.0   # (finite otherwise: np.nan_to_num's inf handling is not needed)
        dec = (decoding0 | first_done) & ~(from_s >= dt)
        dec_start = np.where(decoding0 & dec, np.clip(from_s, 0.0, dt), dec_start)
        didx = np.nonzero(dec)[0]
        rd = r[didx]
        batch = np.bincount(rd, minlength=nr).astype(float)
        ctx_tok = (bk.req.prompt_tokens[ids] + bk.generated[ids])
        kv_tok = np.bincount(r, weights=ctx_tok * dec, minlength=nr)
        interval = self._intervals(batch, kv_tok, rep_clock, hop_per_tok_s, hop_lat_s, rep_mem)
        if speed is not None:
            interval = interval * slow
        busy = batch > 0
        self.rep_interval_s = np.where(busy, interval, self.rep_interval_s)
        decode_frac = 1.0 - prefill_used / dt
        if len(didx):
            did = ids[didx]
            ds, df = dec_start[didx], decode_frac[rd]
            avail = (dt - ds) * df
            rate = 1.0 / interval[rd]
            tokens = avail * rate
            left = bk.decode_left[did]
            fin = tokens >= left - 1e-9
            t_fin = t0 + ds + np.divide(left, rate * df, out=np.zeros_like(left), where=df > 0)
            step = np.minimum(tokens, left)
            bk.decode_left[did] = np.where(fin, 0.0, left - tokens)
            bk.generated[did] += step
            bk.network_s[did] += step * (cross_per_tok_s + rep_cross_lat_s)[rd]
            fin_ids = did[fin]
            done_s = np.maximum(t_fin[fin], bk.first_token_s[fin_ids])
            rep_tokens_s = np.bincount(rd, weights=step, minlength=nr) / dt
            # busy share of decoding: every stage works on min(pp, batch) micro-batches of pp
            pp = lay.rep_pp
            rep_decode_frac = np.where(busy, decode_frac * np.minimum(pp, batch) / pp, 0.0)
            rep_batch = batch / np.minimum(pp, np.maximum(batch, 1.0))
            bk.finish(fin_ids, done_s)
            # paged KV: blocks for the new tokens; a pool that runs dry preempts its newest sequences
            grow = bk.inflight[lay.rep_paged[bk.replica[bk.inflight]]]
            if len(grow):
                bk.grow_kv(grow, lay.rep_block_bytes, lay.rep_block_tokens, self.rep_state_b, lay.rep_kv_cap, t0 + dt)
        # outstanding work estimate for the router: seconds of prefill + decode left
        inf = bk.inflight
        rin = bk.replica[inf]
        remaining = bk.prefill_left[inf] * (p_cost[rin] + lay.rep_prefill_attn_s[rin] * bk.req.prompt_tokens[inf])
        self.rep_busy = np.bincount(rin, weights=remaining, minlength=nr)
        return ServingOutputs(prefill_frac=prefill_used / dt, decode_frac=rep_decode_frac, batch=rep_batch,
                              tokens_s=rep_tokens_s, prefill_tok_s=rep_prefill_tok_s, decode_batch=batch,
                              kv_tokens=kv_tok, interval_s=np.where(busy, interval, 0.0),
                              decode_time_frac=np.where(busy, decode_frac, 0.0))

    def _offload_intervals(self, pool: int, batch: np.ndarray, kv_tok: np.ndarray, clock: np.ndarray) -> list[float]:
        """Decode token interval (s) of each replica of offloaded `pool` (llama.cpp -ngl: GPU layers,
        then system memory; twin.model.offload), at its batch, KV tokens and SM clock."""
        lay = self.lay
        return [ol.offload_decode_token_s(lay.plans[pool], lay.splits[pool], self.cpu, self.node,
                                          context_tokens=float(kv), batch=max(float(n), 1.0), clock=float(c),
                                          cores=lay.pool_cores[pool])
                for n, kv, c in zip(batch, kv_tok, clock)]

    def _intervals(self, batch: np.ndarray, kv_tok: np.ndarray, rep_clock: np.ndarray, hop_per_tok_s: np.ndarray,
                   hop_lat_s: np.ndarray, rep_mem: np.ndarray | None = None) -> np.ndarray:
        """Decode step of every replica at its batch and context (twin.model.replica.decode_step_s);
        `rep_mem`: the replica's memory-clock share (memory-junction throttle) scales its bandwidth."""
        lay, node = self.lay, self.node
        interval = np.zeros(lay.n_rep)
        for p, pl in enumerate(lay.plans):
            if not len(lay.pool_reps[p]):
                continue
            reps = self._pool_sel[p]
            b = batch[reps]
            split = lay.splits[p]
            if split is not None and self.cpu is not None:   # llama.cpp -ngl: GPU layers, then system memory
                interval[reps] = self._offload_intervals(p, b, kv_tok[reps], rep_clock[reps])
                continue
            c = self._decode[p]
            b1 = np.maximum(b, 1.0)
            micro = np.minimum(c.pp, b1)
            per_micro = b1 / micro
            # (at tp 1 tp_allreduce_s is an array of zeros: adding the scalar 0.0 gives the same bits)
            tp_s = 0.0 if c.tp <= 1 else sv.tp_allreduce_s(per_micro, pl.layers, pl.hidden_size, c.tp,
                                                           node.pcie_p2p_gb_s, node.tp_allreduce_latency_s)
            hop_s = hop_per_tok_s[reps] * b1 / micro + hop_lat_s[reps]
            interval[reps] = rp.decode_step_from(c, b1, micro, per_micro, kv_tok[reps], clock=rep_clock[reps],
                                                 mem_clock=1.0 if rep_mem is None else rep_mem[reps],
                                                 hop_s=hop_s, tp_comm_s=tp_s)
        return interval

    # ------------------------------------------------------------------ compiled path (serving_kernel)
    def _offload_pool(self, p: int) -> bool:
        return self.lay.splits[p] is not None and self.cpu is not None

    def _setup_compiled(self) -> None:
        """Per-replica constant rows for the kernels and the scratch they reuse every tick."""
        lay, nr, n = self.lay, self.lay.n_rep, self.book.req.n
        c = self._const = np.zeros((sk.N_CONST, nr))
        c[sk.C_HOP_CROSS_B], c[sk.C_HOP_INTRA_S_PER_TOK] = self._hop_cross_b, self._hop_intra_per_tok_s
        c[sk.C_HOP_INTRA_LAT_S], c[sk.C_PREFILL_S_PER_TOK] = self._hop_intra_lat_s, lay.rep_prefill_s_per_tok
        c[sk.C_PREFILL_ATTN_S], c[sk.C_CONT] = lay.rep_prefill_attn_s, lay.rep_cont_batching
        c[sk.C_FILL] = np.isin(lay.rep_pool, self._fill_pools)
        c[sk.C_PP], c[sk.C_CHUNK], c[sk.C_PAGED] = lay.rep_pp, lay.rep_chunk_tokens, lay.rep_paged
        c[sk.C_BLOCK_B], c[sk.C_STATE_B], c[sk.C_KV_CAP] = lay.rep_block_bytes, self.rep_state_b, lay.rep_kv_cap
        c[sk.C_BLOCK_TOK] = lay.rep_block_tokens
        self._work = np.zeros((sk.N_WORK, nr))
        d = self._dconst = np.zeros((sk.N_DECODE, nr))
        roof: dict[float, list[np.ndarray]] = {}   # GPU replicas by roofline sharpness / MoE active fraction
        moe: dict[float, list[np.ndarray]] = {}
        self._offload_pools = []
        for p, pl in enumerate(lay.plans):
            reps = lay.pool_reps[p]
            if not len(reps):
                continue
            sel = self._pool_sel[p]
            if self._offload_pool(p):
                self._offload_pools.append(p)
                continue
            k = self._decode[p]
            roof.setdefault(k.ridge_sharpness, []).append(reps)
            if k.active_fraction != 1.0:
                moe.setdefault(k.active_fraction, []).append(reps)
            for row, v in ((sk.D_GPU, 1.0), (sk.D_PP, k.pp), (sk.D_TP, k.tp), (sk.D_KV_B_PER_TOK, k.kv_bytes_per_token),
                           (sk.D_STATE_B, k.state_bytes_per_seq), (sk.D_TP_BW_B_S, k.tp_bandwidth_b_s),
                           (sk.D_GEMM_FLOP, k.gemm_flop_per_token), (sk.D_SMALL_MAX, k.small_max_tokens),
                           (sk.D_SMALL_RATE, k.small_gemm_rate_flop_s), (sk.D_RATE, k.gemm_rate_flop_s),
                           (sk.D_ATTN_FLOP, k.attn_flop_per_ctx), (sk.D_ATTN_RATE, k.attn_rate_flop_s),
                           (sk.D_OVERHEAD_S, k.step_overhead_s), (sk.D_TP_2LAYERS, 2 * pl.layers),
                           (sk.D_HIDDEN, pl.hidden_size), (sk.D_P2P_GB_S, self.node.pcie_p2p_gb_s),
                           (sk.D_TP_LAT_S, self.node.tp_allreduce_latency_s),
                           (sk.D_WEIGHTS_READ_B, k.weights_read_bytes), (sk.D_MOE, k.active_fraction != 1.0)):
                d[row, sel] = v
        # the powers run elementwise over whole rows when one value serves every replica (no gathers):
        # an elementwise ufunc gives each element the same bits whatever its neighbours
        self._roof_groups = _groups(roof, nr)
        self._moe_groups = _groups(moe, nr)
        self._pf_flag = np.zeros(n, dtype=np.int8)
        self._dec_pos = np.zeros(n, dtype=np.int64)
        self._dec_start = np.zeros(n)
        self._new_b = np.zeros(n)   # KV bytes each in-flight sequence grows to (decode_phase)
        self._order = np.zeros(n, dtype=np.int64)

    def _step_compiled(self, t0: float, gpu_clock: np.ndarray, rep_nic_gb_s: np.ndarray,
                       rep_cross_lat_s: np.ndarray, gpu_mem_clock: np.ndarray | None,
                       speed: np.ndarray | None) -> ServingOutputs:
        """step() through the compiled loops; the roofline's powers stay numpy (per pool, as _intervals)."""
        lay, bk, w = self.lay, self.book, self._work
        ids = bk.inflight
        if not len(ids):
            self.rep_busy[:] = 0
            return self.idle
        self._clock_ext[:-1] = gpu_clock
        if gpu_mem_clock is not None:
            self._mem_ext[:-1] = gpu_mem_clock
        n_dec = sk.prefill_phase(t0, self.dt, sv.GB, ids, bk.replica, bk.admit_seq, bk.prefill_left, bk.enqueued_s,
                                 bk.req.prompt_tokens, bk.generated, bk.first_token_s, bk.decode_from_s, bk.network_s,
                                 self._clock_ext, self._mem_ext, gpu_mem_clock is not None, lay.rep_gpus,
                                 self._ones if speed is None else speed, speed is not None, rep_nic_gb_s,
                                 rep_cross_lat_s, self._const, self._dconst, w, self._pf_flag, self._dec_pos,
                                 self._dec_start, self._order)
        for sel, fraction in self._moe_groups:   # MoE weight share 1 - (1 - f)^b (of one byte: a power, numpy's)
            w[sk.W_MOE_SHARE, sel] = sv.weight_bytes_read(1.0, fraction, w[sk.W_PER_MICRO, sel])
        sk.decode_terms(w, self._dconst)
        for sel, sharpness in self._roof_groups:   # the powers of the roofline (numpy's, as in roofline_s)
            w[sk.W_INTERVAL_S, sel] = roofline_factor(w[sk.W_RATIO, sel], sharpness)
        for p in self._offload_pools:
            reps = self._pool_sel[p]
            w[sk.W_INTERVAL_S, reps] = self._offload_intervals(p, w[sk.W_BATCH, reps], w[sk.W_KV_TOK, reps],
                                                               w[sk.W_REP_CLOCK, reps])
        out = np.empty((sk.N_OUT, lay.n_rep))
        left, dry = sk.decode_phase(t0, self.dt, n_dec, ids, bk.replica, bk.status, bk.req.prompt_tokens, bk.generated,
                                    bk.decode_left, bk.first_token_s, bk.done_s, bk.network_s, bk.held,
                                    bk.rep_inflight, bk.rep_kv_reserved, rep_cross_lat_s, speed is not None,
                                    self._const, self._dconst, w, self.rep_interval_s, self._dec_pos,
                                    self._dec_start, self._new_b, out)
        bk.inflight = left
        if dry:   # a paged pool ran dry: RequestBook.grow_kv preempts its newest sequences
            grow = left[lay.rep_paged[bk.replica[left]]]
            bk.grow_kv(grow, lay.rep_block_bytes, lay.rep_block_tokens, self.rep_state_b, lay.rep_kv_cap, t0 + self.dt)
        # into the same array every tick (the kernel zeroes it first): no allocation per tick
        sk.busy_work_s(bk.inflight, bk.replica, bk.prefill_left, bk.req.prompt_tokens, self._const, w, self.rep_busy)
        return ServingOutputs(*out)


def _groups(by_value: dict[float, list[np.ndarray]], n_rep: int) -> list[tuple[slice | np.ndarray, float]]:
    """(replicas, value) per distinct value; one value for all: the whole row (slice(None)), no gather.
    Replicas outside every group get the row's power too, of a value nothing reads."""
    if len(by_value) == 1:
        return [(slice(None), next(iter(by_value)))]
    return [(np.sort(np.concatenate(reps)), v) for v, reps in by_value.items()]
