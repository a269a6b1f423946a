"""Read GPU telemetry logs into per-GPU time series for `twin calibrate`.

Three formats, detected from the text:

- ``nvidia-smi --query-gpu=timestamp,name,pci.bus_id,power.draw,temperature.gpu,utilization.gpu,
  clocks.sm,fan.speed --format=csv -l 1`` (with or without header/units; fields separated by
  ", "; `[N/A]`, `[Not Supported]` and locale decimal commas such as ``123,45 W`` are accepted);
- ``nvidia-smi dmon`` (``# gpu pwr gtemp ...`` headers; one row per GPU per interval);
- OpenMetrics / Prometheus text from dcgm-exporter or ``twin export`` (``DCGM_FI_DEV_POWER_USAGE``,
  ``DCGM_FI_DEV_GPU_TEMP``, ``DCGM_FI_DEV_GPU_UTIL``, ``DCGM_FI_DEV_SM_CLOCK``,
  ``DCGM_FI_DEV_FAN_SPEED``; timestamps in s or ms).

Problems raise ToolError with one line naming the log and what is missing.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from twin.errors import ToolError

# nvidia-smi query names (and their long aliases) -> our fields
CSV_FIELDS = {"timestamp": "time", "name": "name", "pci.bus_id": "bus", "gpu_bus_id": "bus", "index": "index",
              "power.draw": "power_w", "power.draw.average": "power_w", "power.draw.instant": "power_w",
              "temperature.gpu": "temp_c", "temperature.memory": "mem_c", "utilization.gpu": "util_pct",
              "clocks.sm": "sm_mhz", "clocks.current.sm": "sm_mhz", "fan.speed": "fan_pct"}
# the documented query order, for logs written with --format=csv,noheader
DEFAULT_QUERY = ("timestamp", "name", "pci.bus_id", "power.draw", "temperature.gpu", "utilization.gpu",
                 "clocks.sm", "fan.speed")
DMON_FIELDS = {"pwr": "power_w", "gtemp": "temp_c", "mtemp": "mem_c", "sm": "util_pct", "pclk": "sm_mhz"}
METRIC_FIELDS = {"DCGM_FI_DEV_POWER_USAGE": "power_w", "DCGM_FI_DEV_GPU_TEMP": "temp_c",
                 "DCGM_FI_DEV_MEMORY_TEMP": "mem_c", "DCGM_FI_DEV_GPU_UTIL": "util_pct",
                 "DCGM_FI_DEV_SM_CLOCK": "sm_mhz", "DCGM_FI_DEV_FAN_SPEED": "fan_pct"}
NUMERIC = ("power_w", "temp_c", "mem_c", "util_pct", "sm_mhz", "fan_pct")
TIME_FORMATS = ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%a %b %d %H:%M:%S %Y")
DMON_INTERVAL_S = 1.0   # nvidia-smi dmon default sampling interval (-d 1)
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class GpuTrace:
    """One GPU's samples, time-sorted: seconds from the first sample and NaN where a field is absent."""
    key: str            # bus id, index or label set: what distinguishes it in the log
    name: str
    t_s: np.ndarray
    power_w: np.ndarray
    temp_c: np.ndarray
    util_pct: np.ndarray
    sm_mhz: np.ndarray
    fan_pct: np.ndarray
    mem_c: np.ndarray

    def __len__(self) -> int:
        return len(self.t_s)


def parse_number(text: str) -> float:
    """'123.45 W', '123,45 W' (decimal comma), '87 %', '1995 MHz', '[N/A]' -> float or NaN."""
    m = _NUMBER.search(text.strip())
    if not m or "N/A" in text or "Not Supported" in text or "Unknown" in text:
        return math.nan
    return float(m.group(0).replace(",", "."))


def parse_time(text: str) -> float:
    """nvidia-smi timestamp ('2024/06/01 11:27:05.177') -> POSIX seconds (naive, i.e. local)."""
    t = text.strip()
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(t, fmt).timestamp()
        except ValueError:
            continue
    raise ValueError(t)


def _split_csv(line: str) -> list[str]:
    # nvidia-smi separates fields with ", "; a decimal comma ("123,45 W") has no space after it
    return [f.strip() for f in (line.split(", ") if ", " in line else line.split(","))]


def _traces(rows: dict[str, dict[str, list]], origin: str) -> list[GpuTrace]:
    out = []
    for key, cols in rows.items():
        t = np.asarray(cols["time"], dtype=float)
        order = np.argsort(t, kind="stable")
        arr = {f: np.asarray(cols.get(f, [math.nan] * len(t)), dtype=float)[order] for f in NUMERIC}
        names = [n for n in cols.get("name", []) if n]
        out.append(GpuTrace(key=key, name=names[0] if names else key, t_s=t[order] - t[order][0], **arr))
    if not out:
        raise ToolError(f"{origin}: no GPU samples found (expected an nvidia-smi --query-gpu CSV, nvidia-smi dmon "
                        "or OpenMetrics log)")
    return out


def parse_csv(text: str, origin: str) -> list[GpuTrace]:
    """nvidia-smi --query-gpu CSV, with or without a header line."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    first = _split_csv(lines[0])
    has_header = any(re.sub(r"\s*\[.*\]$", "", f).strip() in CSV_FIELDS for f in first)
    names = [re.sub(r"\s*\[.*\]$", "", f).strip() for f in first] if has_header else list(DEFAULT_QUERY)
    fields = [CSV_FIELDS.get(n) for n in names]
    if "time" not in fields or "power_w" not in fields and "temp_c" not in fields:
        raise ToolError(f"{origin}: the CSV header needs timestamp and power.draw / temperature.gpu columns "
                        f"(found: {', '.join(names)})")
    rows: dict[str, dict[str, list]] = {}
    for i, line in enumerate(lines[1:] if has_header else lines, start=2 if has_header else 1):
        vals = _split_csv(line)
        if has_header and vals == first:
            continue  # nvidia-smi -l repeats no header, but concatenated logs may
        if len(vals) != len(fields):
            continue  # a truncated line (log cut mid-write): skip it, as nvidia-smi readers do
        rec = dict(zip(fields, vals))
        try:
            t = parse_time(rec["time"])
        except ValueError:
            raise ToolError(f"{origin}: line {i}: unreadable timestamp {rec['time']!r}") from None
        key = rec.get("bus") or rec.get("index") or rec.get("name") or "gpu"
        cols = rows.setdefault(key, {"time": [], "name": []})
        cols["time"].append(t)
        cols["name"].append(rec.get("name", ""))
        for f in NUMERIC:
            if f in rec:
                cols.setdefault(f, []).append(parse_number(rec[f]))
    return _traces(rows, origin)


def parse_dmon(text: str, origin: str, interval_s: float = DMON_INTERVAL_S) -> list[GpuTrace]:
    """nvidia-smi dmon: '# gpu pwr gtemp ...' header, then one row per GPU per interval."""
    header: list[str] = []
    rows: dict[str, dict[str, list]] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "#":
            if len(parts) > 1 and parts[1] in ("gpu", "Date", "Time"):
                header = [p.lower() for p in parts[1:]]
            continue
        if not header or len(parts) != len(header):
            continue
        rec = dict(zip(header, parts))
        cols = rows.setdefault(rec.get("gpu", "0"), {"time": [], "name": []})
        cols["time"].append(len(cols["time"]) * interval_s)
        for k, f in DMON_FIELDS.items():
            if k in rec:
                cols.setdefault(f, []).append(parse_number(rec[k]) if rec[k] != "-" else math.nan)
    return _traces(rows, origin)


def parse_openmetrics(text: str, origin: str) -> list[GpuTrace]:
    """OpenMetrics/Prometheus samples of the DCGM GPU families, grouped by their label sets."""
    pat = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)(?:\s+(\S+))?\s*$")
    samples: dict[str, dict[float, dict[str, float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = pat.match(line)
        if not m or m.group(1) not in METRIC_FIELDS or m.group(4) is None:
            continue
        ts = float(m.group(4))
        ts = ts / 1e3 if ts > 1e11 else ts  # Prometheus text uses ms, OpenMetrics s
        labels = m.group(2) or "{}"
        samples.setdefault(labels, {}).setdefault(ts, {})[METRIC_FIELDS[m.group(1)]] = parse_number(m.group(3))
    rows = {}
    for labels, by_t in samples.items():
        ts = sorted(by_t)
        cols = {"time": ts, "name": [re.search(r'modelName="([^"]*)"', labels).group(1)
                                     if 'modelName="' in labels else ""]}
        for f in NUMERIC:
            cols[f] = [by_t[t].get(f, math.nan) for t in ts]
        rows[labels] = cols
    return _traces(rows, origin)


def read_gpu_log(text: str, origin: str) -> list[GpuTrace]:
    """Detect the format and parse. Raises ToolError (one line) for an empty or unknown log."""
    body = text.lstrip("\ufeff")
    if not body.strip():
        raise ToolError(f"{origin}: empty log")
    if re.search(r"^DCGM_FI_DEV_\w+(\{|\s)", body, re.M):
        return parse_openmetrics(body, origin)
    if re.search(r"^#\s+gpu\s+", body, re.M):
        return parse_dmon(body, origin)
    return parse_csv(body, origin)
