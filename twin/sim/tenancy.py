"""GPU time among the tenants of shared GPUs: inference replicas of several pools and training jobs.

Each tick the arbiter takes every tenant's demand on every GPU it uses (an inference replica with
requests in flight keeps its GPUs busy: demand 1; idle: 0; a running training job: 1), splits each
GPU's time by twin.model.sharing (max-min fair slices; with ``training.policy: inference_first``
preemptible jobs come after inference), and reports each replica's speed (its worst GPU share over
its demand) and each job's share (its worst GPU: data-parallel steps are synchronous).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.model import sharing


@dataclass(frozen=True)
class Tenancy:
    """One tick's split of GPU time."""
    rep_speed: np.ndarray   # (R,) speed factor of each replica's work, 1 when nothing contends
    job_share: np.ndarray   # (J,) share of its GPUs' time each training job gets
    gpu_train: np.ndarray   # (G,) share of each GPU's time spent training


class GpuArbiter:
    """Static incidence of tenants on GPUs; `split` per tick."""

    def __init__(self, pair_rep: np.ndarray, pair_gpu: np.ndarray, n_rep: int, n_gpus: int,
                 job_gpus: list[tuple[int, ...]], job_priority: np.ndarray) -> None:
        self.pair_rep, self.pair_gpu, self.n_rep, self.n_gpus = pair_rep, pair_gpu, n_rep, n_gpus
        self.job_pair_job = np.array([j for j, gs in enumerate(job_gpus) for _ in gs], dtype=np.int64)
        self.job_pair_gpu = np.array([g for gs in job_gpus for g in gs], dtype=np.int64)
        self.job_priority = np.asarray(job_priority, dtype=np.int64)  # 0: with inference, 1: after it
        self.n_jobs = len(job_gpus)

    def split(self, rep_busy: np.ndarray, job_active: np.ndarray) -> Tenancy:
        """`rep_busy` (R,) bool: replica has work this tick; `job_active` (J,) bool."""
        d_rep = rep_busy.astype(float)[self.pair_rep]
        d_job = job_active.astype(float)[self.job_pair_job]
        gpu = np.concatenate([self.pair_gpu, self.job_pair_gpu])
        demand = np.concatenate([d_rep, d_job])
        prio = np.concatenate([np.zeros(len(d_rep), dtype=np.int64), self.job_priority[self.job_pair_job]])
        share = sharing.gpu_time_shares(demand, gpu, prio)
        speed_p = sharing.slowdown(demand, share)
        n = len(d_rep)
        rep_speed = np.ones(self.n_rep)
        np.minimum.at(rep_speed, self.pair_rep, speed_p[:n])
        job_share = np.ones(self.n_jobs)
        np.minimum.at(job_share, self.job_pair_job, share[n:])
        job_share = np.where(job_active, job_share, 0.0)
        gpu_train = np.bincount(self.job_pair_gpu, weights=job_share[self.job_pair_job], minlength=self.n_gpus)
        return Tenancy(rep_speed=rep_speed, job_share=job_share, gpu_train=np.minimum(gpu_train, 1.0))
