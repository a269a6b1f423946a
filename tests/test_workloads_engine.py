"""The engine with several pools on one GPU and with training jobs (issue 20), end to end."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.model import training as tr
from twin.model.validate import load_scenario, scenario_from_text
from twin.sim.engine import simulate

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
TWO = """
name: two-on-one
simulation: {{duration_s: 600, dt_s: 1, sample_s: 5, seed: 3}}
topology: {{rows: 1, racks_per_row: 1, nodes_per_rack: {nodes}, node_type: rtx5090-server}}
pools:
  - {{name: a, model: llama-3.1-8b, quantisation: gguf-q4_k_m, engine: llama.cpp-cb, nodes: 1, max_batch: 4,
     gpu_memory_share: 0.3, mix: 0.5}}
  - {{name: b, model: llama-3.1-8b, quantisation: gguf-q4_k_m, engine: llama.cpp-cb, nodes: 1, max_batch: 4,
     gpu_memory_share: 0.3, mix: 0.5{guest}}}
workload:
  base_rate_per_s: 8.0
  arrival: {{process: poisson}}
  prompt_tokens: {{median: 64, sigma: 0.1, min: 16, max: 128}}
  output_tokens: {{median: 256, sigma: 0.1, min: 128, max: 512}}
  surge: {{start_s: 10000, peak_multiplier: 1}}
  timeout_s: 600
scheduler: {{policy: cascade, warm_pool_nodes: 0, initial_on_nodes: {nodes}, power_off_idle: false}}
fabric: {{enabled: false}}
"""


def decode_tok_s(res) -> np.ndarray:
    rq = res.columns["requests"]
    ft, done = np.asarray(rq["first_token_s"], float), np.asarray(rq["done_s"], float)
    out = np.asarray(rq["output_tokens"], float)
    ok = np.isfinite(ft) & np.isfinite(done) & (done > ft) & (ft > 60)   # after the first minute
    return (out[ok] - 1) / (done[ok] - ft[ok])


def test_two_engines_on_one_gpu_each_decode_at_half_speed_under_equal_load():
    shared = simulate(scenario_from_text(TWO.format(nodes=1, guest=", colocate: a")))
    apart = simulate(scenario_from_text(TWO.format(nodes=2, guest="")))
    # both pools always have 4 sequences decoding (4 req/s x 255 tokens each > what 4 slots drain): every
    # tick both engines want the GPU, so each gets half its time (twin.model.sharing)
    ratio = np.median(decode_tok_s(shared)) / np.median(decode_tok_s(apart))
    assert ratio == pytest.approx(0.5, abs=0.03)
    # time slices, not both at once: the shared GPU draws what one saturated engine draws alone
    g_shared = np.asarray(shared.columns["gpus"]["power_w"], float)
    g_apart = np.asarray(apart.columns["gpus"]["power_w"], float).reshape(-1, 2)
    assert g_shared[12:].mean() == pytest.approx(g_apart[12:].mean(), rel=0.05)


@pytest.fixture(scope="module")
def train_run():
    return simulate(load_scenario(SCENARIOS / "dual-3090-train.yaml"))


def test_training_scenario_conserves_requests_and_job_energy(train_run):
    s = train_run.summary
    assert s["requests_completed"] + s["requests_dropped"] + s["requests_queued"] + s["requests_in_flight"] \
        == s["requests_arrived"]
    jobs = train_run.columns["jobs"]
    n = len(train_run.scenario.spec.training.jobs)
    assert len(jobs["time_s"]) == n * 720                      # 3,600 s / 5 s samples
    power = np.asarray(jobs["power_w"], float).reshape(-1, n)
    energy = np.asarray(jobs["energy_j"], float).reshape(-1, n)
    assert energy[-1] == pytest.approx(power.sum(axis=0) * 5.0, rel=1e-5)   # energy = integral of power
    assert s["training_energy_kwh"] == pytest.approx(energy[-1].sum() / 3.6e6)


def test_the_qlora_13b_job_finishes_at_its_roofline_step_time(train_run):
    sc = train_run.scenario
    job = sc.spec.training.jobs[1]
    st = tr.step_time(tr.setup_for_job(job, sc.catalogue, sc.catalogue.node("dual-3090-desktop")))
    jobs = train_run.columns["jobs"]
    t = np.asarray(jobs["time_s"], float)[1::3]
    state = np.asarray(jobs["state"], dtype=object)[1::3]
    first_done = t[np.argmax(state == "done")]
    # alone on GPU 1 from t = 0: 30 steps x 56.9 s = 1,707 s; the row at the end of that interval says done
    assert first_done == pytest.approx(30 * st.step_s, abs=5.0)


def test_lora_job_is_preempted_only_while_chat_has_requests(train_run):
    jobs, nodes = train_run.columns["jobs"], train_run.columns["nodes"]
    state = np.asarray(jobs["state"], dtype=object)[0::3]
    t = np.asarray(jobs["time_s"], float)[0::3]
    active = np.asarray(nodes["active_requests"])
    assert (state == "preempted").any() and (state == "running").any()
    # the state is the interval's last tick [t - 1, t): a chat request was in flight during it
    rq = train_run.columns["requests"]
    adm, done = np.asarray(rq["admitted_s"], float), np.asarray(rq["done_s"], float)
    assert all(((adm < x) & (done > x - 1.0)).any() for x in t[state == "preempted"])
    # while running beside an idle chat service the LoRA job has the whole GPU
    share = np.asarray(jobs["gpu_share"], float)[0::3]
    assert share[(state == "running") & (active == 0)].min() == 1.0
