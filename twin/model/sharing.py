"""Several engines on one GPU or one node: memory split, CPU split, time-sliced contention.

Pure functions of numbers and arrays; no SimPy, no I/O.

- **GPU memory.** Every engine process reserves its memory up front: vLLM takes
  ``gpu_memory_utilization`` x total memory for its own instance (weights, activations, KV
  pool), so two instances on one GPU must have utilisations summing to <= 1 (vLLM docs,
  "gpu_memory_utilization": "the fraction of GPU memory to be used for the model executor...
  per-instance limit"). llama.cpp allocates weights + KV cache + compute buffers; the twin gives
  it a share the same way. A training job needs what twin.model.training computes.
- **CPU and RAM.** Pools pinned to cores (``taskset``, llama.cpp ``--threads``) split the
  package; their RAM reservations must fit the node's memory. What the pinned cores achieve
  (their share of memory bandwidth and FLOPs) is the serving model's (twin/model/offload.py).
- **Time slicing.** Without MPS, kernels of different processes do not run concurrently: the GPU
  time-slices between CUDA contexts (NVIDIA MPS overview, "without MPS ... scheduled in a
  time-sliced manner"). An engine that alone would keep the GPU busy a fraction d of the time
  gets a share from max-min fair water-filling over the demands (equal slices, an engine that
  needs less than its slice returns the rest). Its work then runs at share / d of its alone
  speed: two engines that both always have work each run at half speed. With priorities
  (inference first, training preemptible) higher classes are served first and lower classes
  share what is left.
"""
from __future__ import annotations

import numpy as np


def fair_shares(demand: np.ndarray, capacity: float = 1.0) -> np.ndarray:
    """Max-min fair (water-filling) split of `capacity` among demands in [0, 1].

    Engines that need less than an equal slice get their demand; the rest is split equally among
    the others. Source: processor sharing / max-min fairness (Bertsekas & Gallager, Data
    Networks, 6.5.2). demand (E,) -> share (E,), sum(share) = min(capacity, sum(demand)).
    """
    d = np.clip(np.asarray(demand, dtype=float), 0.0, None)
    share = np.zeros_like(d)
    left = float(capacity)
    todo = list(np.argsort(d, kind="stable"))
    while todo and left > 1e-15:
        slice_ = left / len(todo)
        i = todo[0]
        if d[i] <= slice_:
            share[i] = d[i]
            left -= d[i]
            todo.pop(0)
        else:
            for j in todo:
                share[j] = slice_
            left = 0.0
            todo = []
    return share


def priority_shares(demand: np.ndarray, priority: np.ndarray, capacity: float = 1.0) -> np.ndarray:
    """Serve priority classes in order (0 first); within a class, max-min fair shares of what is left.

    Inference-first scheduling: inference pools are class 0, preemptible training class 1, so a
    training job gets only the GPU time inference leaves idle.
    """
    d = np.asarray(demand, dtype=float)
    pr = np.asarray(priority)
    share = np.zeros_like(d)
    left = float(capacity)
    for level in np.unique(pr):
        idx = np.flatnonzero(pr == level)
        share[idx] = fair_shares(d[idx], left)
        left = max(0.0, left - float(share[idx].sum()))
    return share


def gpu_time_shares(demand: np.ndarray, gpu_of: np.ndarray, priority: np.ndarray | None = None) -> np.ndarray:
    """Per-engine GPU time share when engines (E,) sit on GPUs `gpu_of` (E,), one capacity per GPU."""
    d = np.asarray(demand, dtype=float)
    g = np.asarray(gpu_of)
    pr = np.zeros(d.shape, dtype=int) if priority is None else np.asarray(priority)
    share = np.zeros_like(d)
    for gpu in np.unique(g):
        idx = np.flatnonzero(g == gpu)
        share[idx] = priority_shares(d[idx], pr[idx])
    return share


def slowdown(demand: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Speed factor of each engine's work: share / demand (1 where it gets all it needs or is idle)."""
    d = np.asarray(demand, dtype=float)
    s = np.asarray(share, dtype=float)
    return np.where(d > 1e-12, np.minimum(1.0, s / np.maximum(d, 1e-12)), 1.0)


def oversubscription(shares: dict[str, float], capacity_gb: float, label: str) -> str | None:
    """One line with the arithmetic when the tenants' shares of one memory exceed it, else None.

    `shares` maps a tenant label ("vllm (gpu_memory_share)") to its fraction of `capacity_gb`.
    """
    total = sum(shares.values())
    if total <= 1.0 + 1e-9:
        return None
    terms = " + ".join(f"{k} {v:.2f}" for k, v in shares.items())
    return (f"{label} is oversubscribed: {terms} = {total:.2f} of {capacity_gb:g} GB "
            f"({total * capacity_gb:.1f} GB > {capacity_gb:g} GB)")

