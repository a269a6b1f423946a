"""CPU package load and temperature when engines run on the CPU (CPU-only pools, offloaded layers).

Pure numpy functions; vectorised over nodes. Power itself is twin.model.power.cpu_power_w
(linear from idle to TDP in utilisation); this module says what the utilisation is and how warm
the package gets.

- Utilisation: the node's baseline for its state (GPU engines' host threads, OS) plus, for every
  CPU-resident engine that is working, the share of the package its threads are pinned to
  (llama.cpp ``--threads N`` keeps N cores at 100 % while it decodes or prefills: its threads
  spin on the memory stream rather than sleep).
- Temperature: one thermal node, die + heatsink, T -> T_inlet + P x R with time constant
  tau = R x C. Estimates: R = 0.17 K/W (a tower cooler rated for a 350 W TR PRO holds ~90 C die
  with ~30 C case air at 350 W: (90 - 30) / 350); C = 720 J/K (1.2 kg Cu/Al tower x ~0.6 kJ/(kg K)),
  so tau ~ 2 minutes.
"""
from __future__ import annotations

import numpy as np

CPU_COOLER_R_K_PER_W = 0.17
CPU_HEAT_CAPACITY_J_PER_K = 720.0


def cpu_util(base_util: np.ndarray, pinned_cores: np.ndarray, busy_frac: np.ndarray, total_cores: int) -> np.ndarray:
    """Package utilisation 0..1: baseline + sum over CPU engines of busy x cores / total cores.

    `pinned_cores` and `busy_frac` are (N, K): K CPU-resident engines per node (0 where none).
    """
    extra = (np.asarray(pinned_cores, dtype=float) * np.clip(np.asarray(busy_frac, dtype=float), 0, 1)).sum(axis=-1)
    return np.clip(np.asarray(base_util, dtype=float) + extra / max(1, total_cores), 0.0, 1.0)


def cpu_temp_step_c(temp_c: np.ndarray, inlet_c: np.ndarray, power_w: np.ndarray, dt_s: float,
                    r_k_per_w: float = CPU_COOLER_R_K_PER_W,
                    c_j_per_k: float = CPU_HEAT_CAPACITY_J_PER_K) -> np.ndarray:
    """One exact first-order step towards T_inlet + P x R (exponential, stable for any dt_s)."""
    target = np.asarray(inlet_c, dtype=float) + np.asarray(power_w, dtype=float) * r_k_per_w
    k = np.exp(-dt_s / (r_k_per_w * c_j_per_k))
    return target + (np.asarray(temp_c, dtype=float) - target) * k
