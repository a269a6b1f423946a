"""`twin calibrate`: fit a GPU's thermal and power constants to a telemetry log.

No engine: the fit runs the twin's own model functions over the logged inputs.

- Thermal: the two-stage die/heatsink model (twin.model.thermal: rc2_step_c with the spreader and
  heatsink stages of gpu_thermal_step) driven by the logged board power and fan speed at the
  logged timestamps (gaps simply become longer exact steps). Unknowns: R at full fan, the
  spreader's share of it, the spreader time constant, the heatsink's effective capacity, the
  intake temperature, and how far from equilibrium the log starts. Least squares
  (scipy.optimize.least_squares) on the die temperature; 1-sigma uncertainties from the
  Jacobian, cov = s^2 (J^T J)^-1 with s^2 = SSR / (n - p).
- Power: idle (utilisation <= 5 %) and loaded (>= 90 %) board power, mean +- standard error.

The result is a catalogue overlay (an entry with ``base: NAME``, twin.spec.catalogue) that
``--catalogue overlay.yaml`` applies to ``twin predict`` and ``twin run``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from scipy.optimize import least_squares

from twin.errors import ToolError
from twin.model import thermal as th
from twin.spec.catalogue import GpuSpec
from twin.telemetry.atomic import atomic_write
from twin.tools.gpu_log import GpuTrace

OVERLAY_MARKER = "# twin calibrate overlay"
MIN_STEP_W = 30.0       # a thermal fit needs a load step of at least this much board power...
MIN_RISE_K = 5.0        # ...and a temperature swing of at least this much
IDLE_UTIL_PCT = 5.0
LOADED_UTIL_PCT = 90.0
# parameter vector: R_full K/W, spreader share of R, spreader capacity / heatsink capacity, heatsink
# C_eff J/K, T_intake C, start offset K. The capacity ratio (not the spreader tau) is bounded so the
# two stages cannot swap roles: a die + spreader (~0.1-0.3 kg Cu) holds far less heat than the cooler.
NAMES = ("thermal_resistance_k_per_w", "spreader_resistance_frac", "spreader_capacity_ratio",
         "heatsink_effective_j_per_k", "intake_c", "start_offset_k")
LOWER = np.array([0.005, 0.1, 0.01, 10.0, -20.0, -80.0])
UPPER = np.array([3.0, 0.7, 0.5, 50000.0, 70.0, 80.0])


@dataclass(frozen=True)
class Estimate:
    value: float
    sigma: float

    def as_dict(self) -> dict:
        return {"value": self.value, "sigma": self.sigma}


@dataclass(frozen=True)
class GpuFit:
    """What one GPU's log gives: every estimate (absent when the log cannot support it) and why not."""
    key: str
    name: str
    samples: int
    estimates: dict[str, Estimate] = field(default_factory=dict)
    rms_k: float = math.nan
    notes: tuple[str, ...] = ()


def _fan_frac(trace: GpuTrace, gpu: GpuSpec) -> np.ndarray:
    f = trace.fan_pct / 100.0
    f = np.where(np.isfinite(f), f, 1.0)  # no fan column (passive boards in server air): a fixed stream
    return np.maximum(f, gpu.min_fan_frac * 0.2)


def _fill(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN gaps (and hold at the ends)."""
    ok = np.isfinite(x)
    idx = np.arange(len(x))
    return np.interp(idx, idx[ok], x[ok]) if ok.any() else x


def simulate_die_c(theta: np.ndarray, t_s: np.ndarray, power_w: np.ndarray, fan_frac: np.ndarray) -> np.ndarray:
    """Die temperature at each sample for parameters `theta` (NAMES order; a (k, 6) array gives k
    curves at once), the logged power read at the end of each interval (nvidia-smi's power.draw is a
    trailing average) held over it, stepped with the twin's exact two-node ladder."""
    th_ = np.atleast_2d(np.asarray(theta, dtype=float))
    r_full, share, ratio, c_eff, t_in, offset = th_.T
    r_spr = share * r_full
    r_sink = th.gpu_thermal_resistance_k_per_w((r_full - r_spr)[:, None], fan_frac[None, :])
    c_spr = ratio * c_eff
    sink = t_in + power_w[0] * r_sink[:, 0] + offset
    die = sink + power_w[0] * r_spr
    out = np.empty((len(th_), len(t_s)))
    out[:, 0] = die
    for i in range(1, len(t_s)):
        die, sink = th.rc2_step_c(die, sink, t_in, power_w[i], r_spr, r_sink[:, i], c_spr, c_eff, t_s[i] - t_s[i - 1])
        out[:, i] = die
    return out if np.ndim(theta) == 2 else out[0]


def _mean_se(x: np.ndarray) -> Estimate:
    return Estimate(float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan)


def fit_trace(trace: GpuTrace, gpu: GpuSpec) -> GpuFit:
    """Fit one GPU's log (see the module docstring)."""
    est: dict[str, Estimate] = {}
    notes: list[str] = []
    util = trace.util_pct
    pw = trace.power_w
    idle = np.isfinite(pw) & (util <= IDLE_UTIL_PCT)
    busy = np.isfinite(pw) & (util >= LOADED_UTIL_PCT)
    if idle.sum() >= 3:
        est["idle_power_w"] = _mean_se(pw[idle])
    else:
        notes.append("fewer than 3 idle samples (utilization.gpu <= 5 %): idle power not fitted")
    if busy.sum() >= 3:
        est["loaded_power_w"] = _mean_se(pw[busy])
    else:
        notes.append("fewer than 3 loaded samples (utilization.gpu >= 90 %): loaded power not fitted")
    ok_t = np.isfinite(trace.temp_c)
    rms = math.nan
    if not np.isfinite(pw).any() or ok_t.sum() < 10:
        notes.append("no power.draw or fewer than 10 temperature samples: thermal constants not fitted")
    elif np.ptp(trace.temp_c[ok_t]) < MIN_RISE_K:
        notes.append(f"temperature varies < {MIN_RISE_K:.0f} K (no load step or transient): thermal constants "
                     "not fitted")
    else:
        p = _fill(pw)
        f = _fan_frac(trace, gpu)
        temp = trace.temp_c
        r0 = (np.nanmax(temp) - np.nanmin(temp)) / max(np.nanmax(p) - np.nanmin(p), 1.0)
        c0 = th.gpu_heatsink_capacity_j_per_k(gpu)
        ratio0 = gpu.spreader_time_constant_s / (gpu.spreader_resistance_frac * gpu.thermal_resistance_k_per_w) / c0
        x0 = np.clip([r0, gpu.spreader_resistance_frac, ratio0, c0, np.nanmin(temp) - np.nanmin(p) * r0, 0.0],
                     LOWER + 1e-9, UPPER - 1e-9)

        def resid(theta: np.ndarray) -> np.ndarray:
            return (simulate_die_c(theta, trace.t_s, p, f) - temp)[ok_t]

        def jac(theta: np.ndarray) -> np.ndarray:
            # forward differences, every perturbed parameter set stepped together (one pass over the log)
            h = 1e-6 * np.maximum(np.abs(theta), 1e-3)
            curves = simulate_die_c(np.vstack([theta, theta + np.diag(h)]), trace.t_s, p, f)[:, ok_t]
            return ((curves[1:] - curves[0]) / h[:, None]).T

        sol = least_squares(resid, x0, jac=jac, bounds=(LOWER, UPPER), x_scale="jac")
        n, k = int(ok_t.sum()), len(x0)
        s2 = float(sol.fun @ sol.fun) / max(n - k, 1)
        cov = np.linalg.pinv(sol.jac.T @ sol.jac) * s2
        sig = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        for name, v, s in zip(NAMES, sol.x, sig):
            est[name] = Estimate(float(v), float(s))
        mode = th.DISTRIBUTED_RC_FIRST_MODE
        est["heatsink_heat_capacity_j_per_k"] = Estimate(float(sol.x[3] / mode), float(sig[3] / mode))
        # heatsink stage at full fan, tau = (1 - share) R C_eff: identifiable from the curve's bend even
        # when a log without a power step leaves R and the intake individually uncertain
        r_full, share, ratio, c_eff = sol.x[:4]

        def derived(value: float, grad: list[float]) -> Estimate:
            g = np.array(grad + [0.0, 0.0])
            return Estimate(float(value), float(math.sqrt(max(g @ cov @ g, 0.0))))

        est["heatsink_time_constant_s"] = derived((1 - share) * r_full * c_eff, [
            (1 - share) * c_eff, -r_full * c_eff, 0.0, (1 - share) * r_full])
        est["spreader_time_constant_s"] = derived(share * r_full * ratio * c_eff, [
            share * ratio * c_eff, r_full * ratio * c_eff, share * r_full * c_eff, share * r_full * ratio])
        if np.nanmax(pw) - np.nanmin(pw) < MIN_STEP_W:
            notes.append(f"power varies < {MIN_STEP_W:.0f} W: resistance and intake are only known together "
                         "(see their uncertainties); the time constants come from the transient")
        rms = float(math.sqrt(float(sol.fun @ sol.fun) / n))
    return GpuFit(key=trace.key, name=trace.name, samples=len(trace), estimates=est, rms_k=rms, notes=tuple(notes))


def combine(fits: list[GpuFit], name: str) -> dict[str, Estimate]:
    """Pool the GPUs' estimates of each quantity: mean, and the larger of the propagated
    uncertainty and the spread between GPUs (standard error of the mean)."""
    out = {}
    for q in {q for f in fits for q in f.estimates}:
        vals = [f.estimates[q] for f in fits if q in f.estimates]
        v = np.array([e.value for e in vals])
        prop = math.sqrt(sum(e.sigma ** 2 for e in vals if math.isfinite(e.sigma))) / len(vals)
        spread = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
        out[q] = Estimate(float(v.mean()), max(prop, spread))
    return out


# catalogue fields the overlay sets, from the pooled estimates
OVERLAY_FIELDS = ("thermal_resistance_k_per_w", "spreader_resistance_frac", "spreader_time_constant_s",
                  "heatsink_heat_capacity_j_per_k", "idle_power_w")


def overlay_yaml(gpu: GpuSpec, pooled: dict[str, Estimate], log: str, fits: list[GpuFit]) -> str:
    """The catalogue overlay text: `base: NAME` plus the fitted fields, each with its uncertainty."""
    entry: dict = {"base": gpu.name}
    lines = [f"{OVERLAY_MARKER} for {gpu.name}: fitted to {log} ({len(fits)} GPU(s)); use with --catalogue",
             "# value  # 1-sigma uncertainty"]
    for q in OVERLAY_FIELDS:
        if q in pooled:
            entry[q] = round(pooled[q].value, 6)
            lines.append(f"#   {q}: {pooled[q].value:.6g} +- {pooled[q].sigma:.2g}")
    if gpu.idle_p0_w is not None and "idle_power_w" in entry and entry["idle_power_w"] > gpu.idle_p0_w:
        entry.pop("idle_power_w")  # the log idled in P0: keep the P8 figure, say so
        lines.append("#   idle samples sit above the catalogue's P0 idle: idle_power_w left unchanged")
    entry["source"] = f"twin calibrate {Path(log).name}: {gpu.source}"
    return "\n".join(lines) + "\n" + yaml.safe_dump({"gpus": [entry]}, sort_keys=False)


def write_overlay(path: Path, text: str, force: bool) -> None:
    """Write atomically; replace an existing file only with `force` and only if calibrate wrote it."""
    if path.exists():
        head = path.read_text(errors="replace")[:len(OVERLAY_MARKER)] if path.is_file() else ""
        if head != OVERLAY_MARKER:
            raise ToolError(f"{path}: exists and was not written by twin calibrate; choose another -o")
        if not force:
            raise ToolError(f"{path}: exists; pass --force to replace it")
    if not path.parent.is_dir():
        raise ToolError(f"{path.parent}: output directory does not exist")
    atomic_write(path, lambda fh: fh.write(text.encode()), force=force, fmt="yaml")  # the shared guard, under a lock


def calibrate(traces: list[GpuTrace], gpu: GpuSpec, origin: str) -> tuple[list[GpuFit], dict[str, Estimate]]:
    """Fit every GPU in the log; ToolError (one line) when none gives a single estimate."""
    fits = [fit_trace(t, gpu) for t in traces]
    usable = [f for f in fits if f.estimates]
    if not usable:
        why = fits[0].notes[0] if fits and fits[0].notes else "no usable samples"
        raise ToolError(f"{origin}: nothing to fit ({why})")
    return fits, combine(usable, gpu.name)
