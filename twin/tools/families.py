"""The metric families a run is exported (and replayed) as: dcgm-exporter's names and labels for
GPUs, ``twin_*`` names for nodes, racks and the facility; each family's SQL over the run.

GPU families follow NVIDIA dcgm-exporter (etc/default-counters.csv) exactly: the field names
(``DCGM_FI_DEV_GPU_TEMP``, ``DCGM_FI_DEV_FB_USED``, ``DCGM_FI_DEV_SM_CLOCK``,
``DCGM_FI_DEV_CLOCKS_EVENT_REASONS`` (the current name of ``..._CLOCK_THROTTLE_REASONS``),
``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``...), their units (MHz, MiB, mJ, W, °C, %) and the labels
``gpu``, ``UUID``, ``device``, ``modelName``, ``Hostname``, ``pci_bus_id``, so NVIDIA's public
Grafana dashboard (12239) fills its Hostname/gpu pickers. ``node`` and ``rack`` are added.

Where the twin knows less than a real GPU, the value is derived and the docs say how
(docs/tools.md): SM clock = clock factor x the catalogue's boost clock; framebuffer = the
GPU's memory (its datasheet GB taken as GiB, 32 GB = 32,768 MiB) minus the engine's used GB;
clock-event reasons = 0x20 (SW thermal slowdown) while throttled, 0x4 (SW power cap) while
clocked down otherwise, 0x1 (idle) at zero utilisation; energy = running sum of power x sample_s.
UUID and PCI bus id are made up but stable (an md5 of scenario, host and GPU index).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twin.telemetry.read import Run

# OpenMetrics escaping of label values (backslash, quote, newline), once per GPU/node/rack.
_ESC = "replace(replace(replace({x}, '\\', '\\\\'), '\"', '\\\"'), chr(10), '\\n')"
_HOST = ("coalesce(lower(t.rack_name) || '-n' || lpad(CAST(t.slot AS VARCHAR), 2, '0'), "
         "'node' || lpad(CAST({node} AS VARCHAR), 4, '0'))")
_RACK = "coalesce(t.rack_name, CAST({rack} AS VARCHAR))"


@dataclass(frozen=True)
class Hardware:
    """GPU facts the labels and derived values need (manifest ``hardware``, else the catalogue)."""

    model_name: str = "NVIDIA GPU"
    memory_mib: float | None = None
    boost_clock_mhz: float | None = None
    scenario: str = "twin"


def model_name(catalogue_name: str) -> str:
    """'rtx-pro-4500-blackwell' -> 'NVIDIA RTX PRO 4500 Blackwell' (nvidia-smi's spelling style)."""
    words = []
    for w in catalogue_name.split("-"):
        words.append(w.upper() if any(c.isdigit() for c in w) or w in ("rtx", "pro", "pcie") else w.capitalize())
    return "NVIDIA " + " ".join(words)


def hardware(run: Run) -> Hardware:
    """The run's GPU facts: manifest ``hardware`` (written since the resolved-scenario change),
    else the built-in catalogue entry of the topology's node type, else anonymous."""
    hw = dict(run.manifest.get("hardware") or {})
    if "gpu" not in hw:
        try:
            from twin.spec.catalogue import load_catalogue

            node_type = run.table("topology", columns=["node_type"]).column(0)[0].as_py()
            cat = load_catalogue()
            gpu = cat.gpu(cat.node(node_type).gpu)
            hw.update(gpu=gpu.name, gpu_memory_gb=gpu.memory_gb, gpu_boost_clock_mhz=gpu.boost_clock_mhz)
        except Exception:  # a custom node type or an empty topology: labels only
            return Hardware(scenario=run.name)
    mem = hw.get("gpu_memory_gb")
    return Hardware(model_name=model_name(hw["gpu"]), memory_mib=None if mem is None else float(mem) * 1024,
                    boost_clock_mhz=hw.get("gpu_boost_clock_mhz"), scenario=run.name)


@dataclass(frozen=True)
class Family:
    """One metric family: metadata and where its values come from.

    `value` is SQL over `table` (alias ``x``; a function of `Hardware` for derived GPU values);
    `entity` selects the label set (gpu, node, rack, facility, state).
    """

    name: str
    type: str  # "gauge" or "counter"
    help: str
    unit: str  # OpenMetrics UNIT; "" for DCGM names, which carry no unit suffix
    table: str
    entity: str
    value: str
    needs: str = ""  # a Hardware field the value needs ("memory_mib", "boost_clock_mhz"), else ""

    @property
    def dcgm(self) -> bool:
        return self.name.startswith("DCGM_")

    @property
    def sample_name(self) -> str:
        """The stored metric name: counters get _total, except DCGM's, which dcgm-exporter
        exposes without it (DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION)."""
        return self.name + "_total" if self.type == "counter" and not self.dcgm else self.name

    def om_type(self) -> str:
        """OpenMetrics TYPE: a counter sample must end in _total there, so a DCGM counter is
        'unknown' (its stored name stays dcgm-exporter's)."""
        return "unknown" if self.type == "counter" and self.dcgm else self.type

    def value_sql(self, hw: Hardware) -> str:
        return self.value.format(mem_mib=hw.memory_mib, boost_mhz=hw.boost_clock_mhz)


def _g(name: str, help: str, value: str, needs: str = "", type: str = "gauge") -> Family:
    return Family(name, type, help, "", "gpus", "gpu", value, needs)


def _f(name: str, type: str, help: str, unit: str, value: str) -> Family:
    return Family(name, type, help, unit, "facility", "facility", value)


FAMILIES: tuple[Family, ...] = (
    _g("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", "round(x.clock_factor * {boost_mhz})",
       "boost_clock_mhz"),
    _g("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", "x.temp_c"),
    _g("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", "x.power_w"),
    _g("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since boot (in mJ).",
       "round(sum(CAST(x.power_w AS DOUBLE)) OVER (PARTITION BY x.gpu_id ORDER BY x.time_s) "
       "* getvariable('gpus_sample_s') * 1000)", type="counter"),
    _g("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", "round(CAST(x.util AS DOUBLE) * 100, 1)"),
    _g("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).",
       "round({mem_mib} - CAST(x.memory_used_gb AS DOUBLE) * 1024)", "memory_mib"),
    _g("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", "round(CAST(x.memory_used_gb AS DOUBLE) * 1024)"),
    _g("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "Current clock event reasons (bitmask of DCGM_CLOCKS_EVENT_REASON_*).",
       "CASE WHEN x.throttled THEN 32 WHEN x.clock_factor < 0.9999 THEN 4 WHEN x.util <= 0 THEN 1 ELSE 0 END"),
    # DCGM has no clock ratio; kept because it is the engine's own quantity.
    _g("twin_gpu_clock_ratio", "SM clock as a fraction of full clocks (1 = not throttled).", "x.clock_factor"),
    Family("twin_node_power_watts", "gauge", "Node wall power (W), interval mean.", "watts",
           "nodes", "node", "x.power_w"),
    Family("twin_node_inlet_celsius", "gauge", "Node inlet air temperature (C).", "celsius",
           "nodes", "node", "x.inlet_c"),
    Family("twin_rack_power_watts", "gauge", "Rack wall power (W), interval mean.", "watts",
           "racks", "rack", "x.power_w"),
    Family("twin_rack_inlet_celsius", "gauge", "Rack mean inlet air temperature (C).", "celsius",
           "racks", "rack", "x.inlet_c"),
    _f("twin_facility_power_watts", "gauge", "Facility power incl. cooling (W), interval mean.", "watts",
       "x.facility_power_w"),
    _f("twin_it_power_watts", "gauge", "IT power (W), interval mean.", "watts", "x.it_power_w"),
    _f("twin_cooling_power_watts", "gauge", "Cooling power (W), interval mean.", "watts", "x.cooling_power_w"),
    _f("twin_pue", "gauge", "Power usage effectiveness over the interval.", "", "x.pue"),
    _f("twin_facility_energy_joules", "counter", "Cumulative facility energy (J).", "joules", "x.facility_energy_j"),
    _f("twin_requests_queued", "gauge", "Requests waiting in queues.", "", "x.queued"),
    _f("twin_requests_in_flight", "gauge", "Requests being served.", "", "x.in_flight"),
    _f("twin_requests_completed", "counter", "Requests completed since the start.", "",
       "sum(x.completed) OVER (ORDER BY x.time_s)"),
    _f("twin_requests_dropped", "counter", "Requests dropped since the start.", "",
       "sum(x.dropped) OVER (ORDER BY x.time_s)"),
    _f("twin_ttft_p50_seconds", "gauge",
       "p50 time to first token of requests completed in the interval (s); NaN if none.", "seconds", "x.ttft_p50_s"),
    _f("twin_ttft_p99_seconds", "gauge",
       "p99 time to first token of requests completed in the interval (s); NaN if none.", "seconds", "x.ttft_p99_s"),
    _f("twin_latency_p50_seconds", "gauge",
       "p50 end-to-end latency of requests completed in the interval (s); NaN if none.", "seconds",
       "x.latency_p50_s"),
    _f("twin_latency_p99_seconds", "gauge",
       "p99 end-to-end latency of requests completed in the interval (s); NaN if none.", "seconds",
       "x.latency_p99_s"),
)

# Node-state counts become one family with a `state` label (unpivoted facility columns).
STATE_COLUMNS = ("off", "booting", "loading", "warm", "serving", "draining", "failed")
NODES_BY_STATE = Family("twin_nodes", "gauge", "Nodes in each state (POWERING_ON counts as booting).",
                        "", "facility", "state", "x.n")


def families_for(run: Run, hw: Hardware) -> list[Family]:
    """The families `run` can fill: its source table exists and the hardware facts are known."""
    present = set(run.tables)
    return [f for f in (*FAMILIES, NODES_BY_STATE)
            if f.table in present and (not f.needs or getattr(hw, f.needs) is not None)]


# ------------------------------------------------------------------ labels

def _gpu_labels(hw: Hardware) -> str:
    host = _HOST.format(node="s.node_id")
    scen = hw.scenario.replace("'", "''")
    digest = f"md5('{scen}/' || {host} || '/' || s.gpu_index)"
    uuid = (f"'GPU-' || substr({digest}, 1, 8) || '-' || substr({digest}, 9, 4) || '-' || "
            f"substr({digest}, 13, 4) || '-' || substr({digest}, 17, 4) || '-' || substr({digest}, 21, 12)")
    model = hw.model_name.replace("'", "''").replace("\\", "\\\\").replace('"', '\\"')
    return (
        "SELECT s.gpu_id AS series, 'gpu=\"' || s.gpu_index || '\",UUID=\"' || " + uuid
        + " || '\",device=\"nvidia' || s.gpu_index || '\",modelName=\"" + model + "\",Hostname=\"' || "
        + _ESC.format(x=host) + " || '\",pci_bus_id=\"' || printf('%08X:%02X:00.0', 0, 1 + s.gpu_index)"
        " || '\",node=\"' || s.node_id || '\",rack=\"' || " + _ESC.format(x=_RACK.format(rack="s.rack_id"))
        + " || '\"' AS labels "
        "FROM (SELECT gpu_id, any_value(gpu_index) AS gpu_index, any_value(node_id) AS node_id, "
        "any_value(rack_id) AS rack_id FROM gpus GROUP BY gpu_id) s LEFT JOIN topology t USING (node_id)")


def _node_labels() -> str:
    return (
        "SELECT s.node_id AS series, 'node=\"' || s.node_id || '\",rack=\"' || "
        + _ESC.format(x=_RACK.format(rack="s.rack_id")) + " || '\",Hostname=\"' || "
        + _ESC.format(x=_HOST.format(node="s.node_id")) + " || '\"' AS labels "
        "FROM (SELECT node_id, any_value(rack_id) AS rack_id FROM nodes GROUP BY node_id) s "
        "LEFT JOIN topology t USING (node_id)")


def _rack_labels() -> str:
    return (
        "SELECT s.rack_id AS series, 'rack=\"' || " + _ESC.format(x=_RACK.format(rack="s.rack_id"))
        + " || '\"' AS labels FROM (SELECT DISTINCT rack_id FROM racks) s "
        "LEFT JOIN (SELECT DISTINCT rack_id, rack_name FROM topology) t USING (rack_id)")


def _state_source() -> str:
    return "(" + " UNION ALL ".join(
        f"SELECT time_s, {i} AS k, '{s}' AS state, nodes_{s} AS n FROM facility"
        for i, s in enumerate(STATE_COLUMNS)) + ") x"


def sources(entity: str, hw: Hardware) -> tuple[str, str, str | None]:
    """(FROM clause with alias x, series key over x, series-label SQL or None if unlabelled)."""
    if entity == "gpu":
        return "gpus x", "x.gpu_id", _gpu_labels(hw)
    if entity == "node":
        return "nodes x", "x.node_id", _node_labels()
    if entity == "rack":
        return "racks x", "x.rack_id", _rack_labels()
    if entity == "state":
        values = ", ".join(f"({i}, 'state=\"{s}\"')" for i, s in enumerate(STATE_COLUMNS))
        return _state_source(), "x.k", f"SELECT * FROM (VALUES {values}) v(series, labels)"
    return "facility x", "0", None


def _num(expr: str) -> str:
    """SQL turning a number into exposition text (NaN, +Inf, -Inf spelled as the formats want)."""
    return (f"CASE WHEN isnan(CAST({expr} AS DOUBLE)) THEN 'NaN' "
            f"WHEN isinf(CAST({expr} AS DOUBLE)) THEN (CASE WHEN {expr} > 0 THEN '+Inf' ELSE '-Inf' END) "
            f"ELSE CAST({expr} AS VARCHAR) END")


def _timestamp(epoch_ms: int, style: str) -> str:
    """SQL for the sample timestamp: integer milliseconds ('ms', Prometheus text format, which
    `promtool check metrics` reads) or the same instant in seconds with 3 decimals ('s', OpenMetrics)."""
    ms = f"(CAST({int(epoch_ms)} AS BIGINT) + CAST(round(v.time_s * 1000) AS BIGINT))"
    if style == "ms":
        return f"CAST({ms} AS VARCHAR)"
    return f"CAST({ms} // 1000 AS VARCHAR) || '.' || lpad(CAST({ms} % 1000 AS VARCHAR), 3, '0')"


def every_sql(column: str, scrape_s: float | None) -> str:
    """SQL condition keeping the samples at whole multiples of `scrape_s` (TRUE when None)."""
    if not scrape_s:
        return "TRUE"
    return f"abs({column} / {float(scrape_s)!r} - round({column} / {float(scrape_s)!r})) < 1e-9"


def family_sql(fam: Family, hw: Hardware, epoch_ms: int | None, style: str = "s",
               at_time_s: float | None = None, scrape_s: float | None = None) -> str:
    """SQL yielding one column `line`: the family's sample lines, newline-terminated.

    Order is series then time (each series contiguous, time ascending), as both formats require.
    `epoch_ms` None writes no timestamps (a live scrape); `at_time_s` keeps only that sample;
    `scrape_s` keeps one sample per scrape interval (counters still count every sample).
    """
    source, key, labels_sql = sources(fam.entity, hw)
    if labels_sql is None:  # unlabelled series are written `name value ts`, without `{}`
        labels_sql = f"SELECT 0 AS series, '{fam.sample_name} ' AS prefix"
    else:
        labels_sql = f"SELECT series, '{fam.sample_name}{{' || labels || '}} ' AS prefix FROM ({labels_sql})"
    stamp = "" if epoch_ms is None else f" || ' ' || {_timestamp(epoch_ms, style)}"
    where = "v.value IS NOT NULL" + ("" if at_time_s is None else f" AND v.time_s = {float(at_time_s)!r}")
    where += f" AND {every_sql('v.time_s', scrape_s)}"
    return f"""
        WITH lbl AS ({labels_sql}),
        v AS (SELECT {key} AS series, x.time_s, {fam.value_sql(hw)} AS value FROM {source})
        SELECT lbl.prefix || {_num('v.value')}{stamp} || chr(10) AS line
        FROM v JOIN lbl USING (series)
        WHERE {where}
        ORDER BY v.series, v.time_s
    """


def header(fam: Family, style: str) -> str:
    """The family's metadata lines: OpenMetrics (TYPE, HELP, UNIT) or Prometheus text (HELP, TYPE)."""
    if style == "ms":
        return f"# HELP {fam.sample_name} {fam.help}\n# TYPE {fam.sample_name} {fam.type}\n"
    lines = [f"# TYPE {fam.name} {fam.om_type()}", f"# HELP {fam.name} {fam.help}"]
    if fam.unit:
        lines.append(f"# UNIT {fam.name} {fam.unit}")
    return "\n".join(lines) + "\n"


def label_columns(fam: Family, hw: Hardware) -> dict[str, Any]:
    """Long-format label columns (CSV/Parquet) as SQL over x and topology t (NULL where n/a)."""
    rack, host = _RACK.format(rack="x.rack_id"), _HOST.format(node="x.node_id")
    cols: dict[str, Any] = {"gpu": "NULL", "node": "NULL", "rack": "NULL", "hostname": "NULL", "state": "NULL"}
    join = ""
    if fam.entity == "gpu":
        cols.update(gpu="x.gpu_index", node="x.node_id", rack=rack, hostname=host)
        join = "LEFT JOIN topology t USING (node_id)"
    elif fam.entity == "node":
        cols.update(node="x.node_id", rack=rack, hostname=host)
        join = "LEFT JOIN topology t USING (node_id)"
    elif fam.entity == "rack":
        cols.update(rack=rack)
        join = "LEFT JOIN (SELECT DISTINCT rack_id, rack_name FROM topology) t USING (rack_id)"
    elif fam.entity == "state":
        cols.update(state="x.state")
    return {"cols": cols, "join": join}
