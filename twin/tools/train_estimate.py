"""`twin train-estimate`: one training job on one box, without the discrete-event engine.

Composes twin.model.training (memory, step time) with the `twin predict` burn test: a training
job keeps every GPU it uses at board power (training.TRAINING_ACTIVITY = 1), which is exactly the
burn test's load, so the node's sustained power and plateau temperatures are the burn figures.
Energy = wall power at the plateau x run time (GPUs the job does not use are counted at board
power too when the job takes every GPU; otherwise the estimate is an upper bound).
"""
from __future__ import annotations

from dataclasses import dataclass

from twin.model import training as tr
from twin.spec.catalogue import Catalogue
from twin.tools.predict import BurnTest, burn_test, resolve_box


@dataclass(frozen=True)
class TrainEstimate:
    setup: tr.TrainingSetup
    memory: tr.TrainingMemory
    step: tr.StepTime
    steps: int
    mfu: float
    burn: BurnTest

    @property
    def run_s(self) -> float:
        return self.steps * self.step.step_s

    @property
    def energy_kwh(self) -> float:
        """Wall energy of the run at the burn plateau's wall power."""
        return float(self.burn.node_wall_w[-1]) * self.run_s / 3.6e6


def estimate(cat: Catalogue, node_name: str, job, ambient_c: float = 25.0, burn_s: float = 900.0) -> TrainEstimate:
    """Resolve `job` (a TrainingJobSpec) on `node_name` and compose the figures."""
    node = cat.node(node_name)
    s = tr.setup_for_job(job, cat, node)
    st = tr.step_time(s)
    box = resolve_box(cat, node_name, job.model, "bf16", "vllm")  # the burn test reads only the node's parts
    return TrainEstimate(setup=s, memory=tr.training_memory(s), step=st, steps=tr.job_steps(job, s),
                         mfu=tr.mfu(s, st), burn=burn_test(box, ambient_c, burn_s))
