"""Training jobs as a simulation part: progress, GPU time shares, energy, the `jobs` table.

The part owns its arrays (one entry per job) and gets what it needs each tick from the engine:
which GPUs are up, the share of GPU time each job gets (twin.sim.tenancy, which also slows the
inference engines sharing those GPUs) and the GPU clocks. Physics is twin.model.training (step
time) and twin.model.sharing (time slices); this file only integrates.

Scheduling (scenario ``training.policy``):
- ``inference_first``: a preemptible job gets only the GPU time the inference engines on its GPUs
  leave idle (priority class 1); a non-preemptible job competes as an equal (class 0).
- ``time_slice``: every engine and job on a GPU gets an equal slice (CUDA without MPS).
A job on several GPUs advances at its slowest GPU's share (DDP/FSDP steps are synchronous).
"""
from __future__ import annotations

import numpy as np

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
        self.memory_gb = np.array([tr.training_memory(s).total_gb for s in setups], dtype=float)
        self.nominal_clock = np.array([tr.nominal_training_clock(s.gpu) for s in setups], dtype=float)
        self.state = np.zeros(n, dtype=np.int8)            # index into STATES
        self.share = np.zeros(n)                           # GPU time share in the last tick
        self.energy_j = np.zeros(n)                        # GPU energy attributed to the job
        self.run_s = np.zeros(n)                           # GPU-time-weighted seconds of running
        self.preempted_s = np.zeros(n)                     # seconds a started job waited for inference
        self.done_s = np.full(n, np.nan)
        self._tokens_interval = np.zeros(n)                # tokens since the last sample
        self._energy_interval = np.zeros(n)
        self._interval_s = 0.0
        self._used = np.zeros(n)

    @property
    def n_jobs(self) -> int:
        return len(self.names)

    def active(self, t0_s: float, gpu_up: np.ndarray) -> np.ndarray:
        """(J,) jobs that want GPU time this tick: started, not done, every GPU of theirs up and loaded."""
        want = (self.state != STATES.index("done")) & (self.start_s <= t0_s)
        return want & np.array([all(gpu_up[g] for g in gs) for gs in self.gpu_ids], dtype=bool)

    def take(self, t0_s: float, want: np.ndarray, share: np.ndarray) -> None:
        """Record this tick's GPU time shares (twin.sim.tenancy) and the jobs' states."""
        self.share = np.where(want, share, 0.0)
        started = want & (self.state != STATES.index("pending"))
        self.state[want & (self.share > 0)] = STATES.index("running")
        self.state[started & (self.share <= 0)] = STATES.index("preempted")

    def priority(self) -> np.ndarray:
        """(J,) 1 for preemptible jobs under inference_first (after inference), else 0 (equal slices)."""
        return np.where(self.preemptible & (self.policy == "inference_first"), 1, 0)

    def advance(self, t0_s: float, dt_s: float, clock: np.ndarray) -> None:
        """Progress every running job by its share of the tick at its GPUs' slowest clock."""
        self._used = np.zeros(self.n_jobs)  # share of the tick each job actually used (it may finish early)
        for j in np.flatnonzero(self.share > 0):
            # the efficiencies were fitted at the board's training clock: only clocks below it slow a step
            c = min(1.0, float(min(clock[g] for g in self.gpu_ids[j])) / self.nominal_clock[j])
            step_s = tr.step_time(self.setups[j], clock_frac=c).step_s
            left = self.steps_total[j] - self.steps_done[j]
            steps = min(left, self.share[j] * dt_s / step_s)
            self.steps_done[j] += steps
            self._used[j] = steps * step_s / dt_s
            self.run_s[j] += self._used[j] * dt_s
            self._tokens_interval[j] += steps * self.tokens_per_step[j]
            if self.steps_done[j] >= self.steps_total[j] - 1e-9:
                self.state[j] = STATES.index("done")
                self.done_s[j] = t0_s + steps * step_s / self.share[j]  # within this tick
        waiting = self.state == STATES.index("preempted")
        self.preempted_s[waiting] += dt_s
        self._interval_s += dt_s

    def gpu_memory_b(self, n_gpus: int) -> np.ndarray:
        """(G,) bytes each started, unfinished job holds on each of its GPUs."""
        out = np.zeros(n_gpus)
        holding = (self.state == STATES.index("running")) | (self.state == STATES.index("preempted"))
        for j in np.flatnonzero(holding):
            out[list(self.gpu_ids[j])] += self.memory_gb[j] * 1e9
        return out

    def gpu_activity(self, n_gpus: int) -> np.ndarray:
        """(G,) share of each GPU's time spent training this tick (the plant runs it at TRAINING_ACTIVITY)."""
        out = np.zeros(n_gpus)
        for j in np.flatnonzero(self.share > 0):
            out[list(self.gpu_ids[j])] += self.share[j]
        return np.minimum(out, 1.0)

    def account_energy(self, gpu_power_w: np.ndarray, dt_s: float) -> None:
        """Attribute each GPU's power x the share of the tick a job used it to that job."""
        for j in np.flatnonzero(self._used > 0):
            e = sum(float(gpu_power_w[g]) * self._used[j] for g in self.gpu_ids[j]) * dt_s
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


def build_training(spec, cat, node, gpus_per_node: int) -> TrainingJobs:
    """The scenario's training jobs resolved on its node type (validated names and placements)."""
    jobs = spec.training.jobs
    setups = [tr.setup_for_job(j, cat, node) for j in jobs]
    gpu_ids = [tuple(j.node * gpus_per_node + i for i in (j.gpus if j.gpus is not None else range(node.gpu_count)))
               for j in jobs]
    steps = [tr.job_steps(j, s) for j, s in zip(jobs, setups)]
    return TrainingJobs(jobs, setups, gpu_ids, steps, spec.training.policy)
