"""Training jobs as a simulation part: progress, GPU time shares, energy, the `jobs` table.

The part owns its arrays (one entry per job) and gets what it needs each tick from the engine:
which GPUs are powered and serving, how much GPU time inference engines claim on each GPU
(their demand), and the GPU clocks. It returns the GPU time each job takes, so the engine can
slow the engines that share a GPU and give the plant each GPU's training activity. Physics is
twin.model.training (step time) and twin.model.sharing (time slices); this file only integrates.

Scheduling (scenario ``training.policy``):
- ``inference_first``: a preemptible job gets only the GPU time the inference engines on its GPUs
  leave idle (priority class 1); a non-preemptible job competes as an equal (class 0).
- ``time_slice``: every engine and job on a GPU gets an equal slice (CUDA without MPS).
A job on several GPUs advances at its slowest GPU's share (DDP/FSDP steps are synchronous).
"""
from __future__ import annotations

import numpy as np

from twin.model import sharing
from twin.model import training as tr

STATES = ("pending", "running", "preempted", "done")


class TrainingJobs:
    """Every training job of a scenario; arrays indexed by job id (scenario order)."""

    def __init__(self, jobs, setups: list[tr.TrainingSetup], gpu_ids: list[tuple[int, ...]], steps: list[int],
                 policy: str):
        self.names = tuple(j.name for j in jobs)
        self.setups = setups
        self.gpu_ids = gpu_ids
        self.policy = policy
        n = len(jobs)
        self.start_s = np.array([j.start_s for j in jobs], dtype=float)
        self.preemptible = np.array([j.preemptible for j in jobs], dtype=bool)
        self.steps_total = np.array(steps, dtype=float)
        self.steps_done = np.zeros(n)
        self.tokens_per_step = np.array([tr.step_time(s).tokens_per_step for s in setups], dtype=float)
        self.seq_len = np.array([s.seq_len for s in setups], dtype=float)
        self.state = np.zeros(n, dtype=np.int8)            # index into STATES
        self.share = np.zeros(n)                           # GPU time share in the last tick
        self.energy_j = np.zeros(n)                        # GPU energy attributed to the job
        self.run_s = np.zeros(n)                           # GPU-time-weighted seconds of running
        self.preempted_s = np.zeros(n)                     # seconds a started job waited for inference
        self.done_s = np.full(n, np.nan)
        self._tokens_interval = np.zeros(n)                # tokens since the last sample
        self._energy_interval = np.zeros(n)
        self._interval_s = 0.0

    @property
    def n_jobs(self) -> int:
        return len(self.names)

    def claims(self, t0_s: float, gpu_ok: np.ndarray, engine_gpu: np.ndarray, engine_demand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """GPU time shares this tick: (share per job (J,), speed factor per inference engine (E,)).

        `engine_gpu` (E,) and `engine_demand` (E,) describe the inference engines' GPU claims (one
        entry per engine and GPU it runs on); `gpu_ok` (G,) says which GPUs are powered and up.
        Jobs whose GPUs are not all up, or whose start time has not come, wait.
        """
        n = self.n_jobs
        active = (self.state != STATES.index("done")) & (self.start_s <= t0_s)
        for j in range(n):
            if active[j] and not all(gpu_ok[g] for g in self.gpu_ids[j]):
                active[j] = False
        gpus = [g for j in range(n) if active[j] for g in self.gpu_ids[j]]
        owners = [j for j in range(n) if active[j] for _ in self.gpu_ids[j]]
        e_gpu = np.concatenate([np.asarray(engine_gpu, dtype=int), np.asarray(gpus, dtype=int)])
        demand = np.concatenate([np.asarray(engine_demand, dtype=float), np.ones(len(gpus))])
        if self.policy == "inference_first":
            prio = np.concatenate([np.zeros(len(engine_gpu), dtype=int),
                                   np.array([1 if self.preemptible[j] else 0 for j in owners], dtype=int)])
        else:
            prio = np.zeros(len(e_gpu), dtype=int)
        shares = sharing.gpu_time_shares(demand, e_gpu, prio)
        speed = sharing.slowdown(demand[:len(engine_gpu)], shares[:len(engine_gpu)])
        job_share = np.zeros(n)
        k = len(engine_gpu)
        for j in range(n):
            if active[j]:
                mine = [shares[k + i] for i, o in enumerate(owners) if o == j]
                job_share[j] = min(mine) if mine else 0.0
        self.share = job_share
        started = active & (self.state != STATES.index("pending"))
        self.state[active & (job_share > 0)] = STATES.index("running")
        self.state[started & (job_share <= 0)] = STATES.index("preempted")
        return job_share, speed

    def advance(self, t0_s: float, dt_s: float, clock: np.ndarray) -> None:
        """Progress every running job by its share of the tick at its GPUs' slowest clock."""
        for j in np.flatnonzero(self.share > 0):
            c = float(min(clock[g] for g in self.gpu_ids[j]))
            step_s = tr.step_time(self.setups[j], clock_frac=c).step_s
            left = self.steps_total[j] - self.steps_done[j]
            steps = min(left, self.share[j] * dt_s / step_s)
            self.steps_done[j] += steps
            self.run_s[j] += self.share[j] * dt_s
            self._tokens_interval[j] += steps * self.tokens_per_step[j]
            if self.steps_done[j] >= self.steps_total[j] - 1e-9:
                self.state[j] = STATES.index("done")
                self.done_s[j] = t0_s + steps * step_s / self.share[j]  # within this tick
        waiting = self.state == STATES.index("preempted")
        self.preempted_s[waiting] += dt_s
        self._interval_s += dt_s

    def gpu_activity(self, n_gpus: int) -> np.ndarray:
        """(G,) share of each GPU's time spent training this tick (the plant runs it at TRAINING_ACTIVITY)."""
        out = np.zeros(n_gpus)
        for j in np.flatnonzero(self.share > 0):
            out[list(self.gpu_ids[j])] += self.share[j]
        return np.minimum(out, 1.0)

    def account_energy(self, gpu_power_w: np.ndarray, gpu_train_frac: np.ndarray, dt_s: float) -> None:
        """Attribute each GPU's power x its training share of the tick to the jobs on it."""
        for j in np.flatnonzero(self.share > 0):
            e = sum(float(gpu_power_w[g]) * self.share[j] for g in self.gpu_ids[j]) * dt_s
            self.energy_j[j] += e
            self._energy_interval[j] += e

    def record(self, t_s: float) -> dict[str, list]:
        """One row per job for the `jobs` table (interval means since the last record)."""
        span = max(self._interval_s, 1e-12)
        rows = {"time_s": [t_s] * self.n_jobs, "job_id": list(range(self.n_jobs)), "job": list(self.names),
                "state": [STATES[s] for s in self.state],
                "steps_done": self.steps_done.tolist(),
                "progress": (self.steps_done / np.maximum(self.steps_total, 1)).tolist(),
                "tokens_per_s": (self._tokens_interval / span).tolist(),
                "samples_per_s": (self._tokens_interval / span / self.seq_len).tolist(),
                "gpu_share": self.share.tolist(),
                "power_w": (self._energy_interval / span).tolist(),
                "energy_j": self.energy_j.tolist()}
        self._tokens_interval[:] = 0.0
        self._energy_interval[:] = 0.0
        self._interval_s = 0.0
        return rows

    def totals(self) -> dict[str, float]:
        """Summary keys: jobs, finished, tokens trained, GPU-hours, energy, preempted time."""
        tokens = float((self.steps_done * self.tokens_per_step).sum())
        return {"training_jobs": self.n_jobs, "training_jobs_done": int((self.state == STATES.index("done")).sum()),
                "training_tokens": tokens, "training_steps": float(self.steps_done.sum()),
                "training_gpu_hours": float(sum(self.run_s[j] * len(self.gpu_ids[j]) for j in range(self.n_jobs)) / 3600),
                "training_energy_kwh": float(self.energy_j.sum() / 3.6e6),
                "training_preempted_s": float(self.preempted_s.sum())}
