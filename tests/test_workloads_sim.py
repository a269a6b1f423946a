"""The training-jobs part (twin.sim.training) with hand-built state: inference first, preemption,
progress by the step time, energy attribution and the jobs table."""
from __future__ import annotations

import numpy as np
import pytest

from twin.model import training as tr
from twin.sim.training import TrainingJobs
from twin.spec.catalogue import load_catalogue
from twin.spec.scenario import TrainingJobSpec

CAT = load_catalogue()


def part(policy="inference_first", preemptible=True, start_s=0.0):
    job = TrainingJobSpec(name="lora", model="llama-2-7b", steps=3, batch=4, micro_batch=4, node=0, gpus=[0],
                          preemptible=preemptible, start_s=start_s)
    s = tr.setup_for_job(job, CAT, CAT.node("dual-3090-desktop"))
    return TrainingJobs([job], [s], [(0,)], [3], policy), s


def test_inference_first_preempts_training_while_inference_is_busy():
    jobs, s = part()
    ok = np.array([True, True])
    # tick 1: job alone -> whole GPU; tick 2: the chat engine on GPU 0 is busy -> job gets nothing
    share, speed = jobs.claims(0.0, ok, np.array([], dtype=int), np.array([]))
    assert share.tolist() == [1.0]
    jobs.advance(0.0, 1.0, np.ones(2))
    share, speed = jobs.claims(1.0, ok, np.array([0]), np.array([1.0]))
    assert share.tolist() == [0.0] and speed.tolist() == [1.0]      # inference runs at full speed
    jobs.advance(1.0, 1.0, np.ones(2))
    assert jobs.record(2.0)["state"] == ["preempted"]
    assert jobs.steps_done[0] == pytest.approx(1.0 / tr.step_time(s).step_s)
    assert jobs.preempted_s[0] == 1.0


def test_time_slice_halves_both_the_engine_and_the_job():
    jobs, s = part(policy="time_slice")
    share, speed = jobs.claims(0.0, np.array([True, True]), np.array([0]), np.array([1.0]))
    assert share.tolist() == [0.5] and speed.tolist() == [0.5]
    jobs.advance(0.0, 10.0, np.ones(2))
    assert jobs.steps_done[0] == pytest.approx(0.5 * 10.0 / tr.step_time(s).step_s)


def test_a_job_finishes_at_its_last_step_and_reports_totals():
    jobs, s = part()
    step_s = tr.step_time(s).step_s                          # ~16 s for LoRA 7B micro 4 on a 3090
    t = 0.0
    while jobs.state[0] != 3:
        jobs.claims(t, np.array([True, True]), np.array([], dtype=int), np.array([]))
        jobs.advance(t, 1.0, np.ones(2))
        jobs.account_energy(np.array([350.0, 30.0]), jobs.gpu_activity(2), 1.0)
        t += 1.0
    assert jobs.done_s[0] == pytest.approx(3 * step_s)
    tot = jobs.totals()
    assert tot["training_jobs_done"] == 1 and tot["training_tokens"] == 3 * 4 * 2048
    # GPU 0 at 350 W for 3 steps: 3 x step_s x 350 J
    assert tot["training_energy_kwh"] == pytest.approx(350 * np.ceil(3 * step_s) / 3.6e6, rel=0.05)


def test_a_job_waits_for_its_start_time_and_for_its_gpus():
    jobs, _ = part(start_s=100.0)
    share, _ = jobs.claims(0.0, np.array([True, True]), np.array([], dtype=int), np.array([]))
    assert share.tolist() == [0.0] and jobs.record(0.0)["state"] == ["pending"]
    share, _ = jobs.claims(100.0, np.array([False, True]), np.array([], dtype=int), np.array([]))
    assert share.tolist() == [0.0]                           # GPU 0 down
