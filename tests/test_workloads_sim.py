"""The training-jobs part (twin.sim.training) and the GPU arbiter (twin.sim.tenancy) with hand-built
state: inference first, preemption, equal time slices, progress by the step time, energy, totals."""
from __future__ import annotations

import numpy as np
import pytest

from twin.model import training as tr
from twin.sim.tenancy import GpuArbiter
from twin.sim.training import TrainingJobs
from twin.spec.catalogue import load_catalogue
from twin.spec.scenario import TrainingJobSpec

CAT = load_catalogue()
UP = np.array([True, True])


def part(policy="inference_first", preemptible=True, start_s=0.0):
    job = TrainingJobSpec(name="lora", model="llama-2-7b", steps=3, batch=4, micro_batch=4, node=0, gpus=[0],
                          preemptible=preemptible, start_s=start_s)
    s = tr.setup_for_job(job, CAT, CAT.node("dual-3090-desktop"))
    jobs = TrainingJobs([job], [s], [(0,)], [3], policy)
    # one inference replica on GPU 0 beside the job
    arb = GpuArbiter(np.array([0]), np.array([0]), 1, 2, [(0,)], jobs.priority())
    return jobs, arb, s


def tick(jobs, arb, t, busy, dt=1.0):
    want = jobs.active(t, UP)
    ten = arb.split(np.array([busy]), want)
    jobs.take(t, want, ten.job_share)
    jobs.advance(t, dt, np.ones(2))
    return ten


def test_inference_first_preempts_training_while_inference_is_busy():
    jobs, arb, s = part()
    ten = tick(jobs, arb, 0.0, busy=False)
    assert ten.job_share.tolist() == [1.0] and ten.gpu_train.tolist() == [1.0, 0.0]
    ten = tick(jobs, arb, 1.0, busy=True)
    assert ten.job_share.tolist() == [0.0] and ten.rep_speed.tolist() == [1.0]   # inference at full speed
    assert jobs.record(2.0)["state"] == ["preempted"]
    assert jobs.steps_done[0] == pytest.approx(1.0 / tr.step_time(s).step_s)
    assert jobs.preempted_s[0] == 1.0


def test_time_slice_halves_both_the_engine_and_the_job():
    jobs, arb, s = part(policy="time_slice")
    ten = tick(jobs, arb, 0.0, busy=True, dt=10.0)
    assert ten.job_share.tolist() == [0.5] and ten.rep_speed.tolist() == [0.5]
    assert jobs.steps_done[0] == pytest.approx(0.5 * 10.0 / tr.step_time(s).step_s)


def test_a_non_preemptible_job_takes_equal_slices_even_under_inference_first():
    jobs, arb, _ = part(preemptible=False)
    assert tick(jobs, arb, 0.0, busy=True).job_share.tolist() == [0.5]


def test_a_job_finishes_at_its_last_step_and_reports_totals():
    jobs, arb, s = part()
    step_s = tr.step_time(s).step_s                          # ~16 s for LoRA 7B micro 4 on a 3090
    t = 0.0
    while jobs.state[0] != 3:
        tick(jobs, arb, t, busy=False)
        jobs.account_energy(np.array([350.0, 30.0]), 1.0)
        t += 1.0
    assert jobs.done_s[0] == pytest.approx(3 * step_s)
    tot = jobs.totals()
    assert tot["training_jobs_done"] == 1 and tot["training_tokens"] == 3 * 4 * 2048
    # GPU 0 at 350 W while the job holds it: 3 x step_s x 350 J (the last tick only partly)
    assert tot["training_energy_kwh"] == pytest.approx(350 * 3 * step_s / 3.6e6, rel=0.02)


def test_a_job_waits_for_its_start_time_and_for_its_gpus():
    jobs, arb, _ = part(start_s=100.0)
    assert not jobs.active(0.0, UP).any()
    assert jobs.record(0.0)["state"] == ["pending"]
    assert not jobs.active(100.0, np.array([False, True])).any()     # GPU 0 down
    assert jobs.active(100.0, UP).all()
