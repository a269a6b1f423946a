"""The `simulation:` section: run length, physics tick, and the telemetry interval of each table
(twin.sim.sampler writes means over it)."""
from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from twin.spec.base import Pos, Section


class TableSamplingSpec(Section):
    """One table's row interval (twin.sim.sampler: means over it, values at its end)."""
    sample_s: Pos | None = None  # None: simulation.sample_s


class TelemetrySpec(Section):
    """Own intervals of the tables that grow with the hall (a row per GPU, node or cable); racks,
    facility, jobs and the summary stay at simulation.sample_s."""
    gpus: TableSamplingSpec = TableSamplingSpec()
    nodes: TableSamplingSpec = TableSamplingSpec()
    links: TableSamplingSpec = TableSamplingSpec()


SAMPLED_TABLES = ("gpus", "nodes", "links")  # the tables TelemetrySpec samples on their own interval


class SimulationSpec(Section):
    duration_s: Pos = 3600.0
    dt_s: Pos = 1.0
    sample_s: Pos = 1.0  # telemetry interval of racks, facility, jobs, and of every table telemetry leaves unset
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 42  # numpy SeedSequence rejects negatives
    telemetry: TelemetrySpec = TelemetrySpec()

    def table_sample_s(self, table: str) -> float:
        """The sampling interval of telemetry table `table` (s)."""
        own = getattr(self.telemetry, table).sample_s if table in SAMPLED_TABLES else None
        return self.sample_s if own is None else own

    def table_ticks(self, table: str) -> int:
        """Ticks per row of `table` (validated to be a whole number)."""
        return int(round(self.table_sample_s(table) / self.dt_s))

    @model_validator(mode="after")
    def _steps(self) -> "SimulationSpec":
        if self.dt_s > self.duration_s:
            raise ValueError(f"dt_s ({self.dt_s}) must not exceed duration_s ({self.duration_s})")
        # the tick count first: a denormal dt_s would make sample_s / dt_s infinite below
        if self.duration_s / self.dt_s > 2_000_000:
            raise ValueError("duration_s / dt_s exceeds 2,000,000 ticks; raise dt_s")
        per_sample = _whole_ticks(self.sample_s, self.dt_s)
        if per_sample is None:
            raise ValueError(f"sample_s ({self.sample_s}) must be a whole multiple of dt_s ({self.dt_s})")
        ticks = int(self.duration_s / self.dt_s + 1e-9)
        if ticks < per_sample:  # the engine writes one row per sample_s: none would fit
            raise ValueError(f"sample_s ({self.sample_s:g}) exceeds the run's {ticks * self.dt_s:g} s of whole "
                             f"ticks: not one telemetry sample would be written; lower sample_s")
        _check_table_sampling(self.telemetry, self.dt_s, ticks - ticks % per_sample)
        return self


def _whole_ticks(interval_s: float, dt_s: float) -> int | None:
    """Ticks in `interval_s` when it is a whole, positive number of them (within 1e-9), else None."""
    ratio = interval_s / dt_s
    if not math.isfinite(ratio) or abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
        return None
    return round(ratio)


def _check_table_sampling(tel: TelemetrySpec, dt_s: float, ticks: int) -> None:
    """Each table's interval is whole ticks and fits the run at least once; the error names the
    field (simulation.telemetry.<table>.sample_s: pydantic prefixes the raised error's loc)."""
    errors = []
    for table in SAMPLED_TABLES:
        if (value := getattr(tel, table).sample_s) is None:
            continue
        per_row = _whole_ticks(value, dt_s)
        if per_row is None:
            msg = f"{value:g} s must be a whole multiple of dt_s ({dt_s:g} s)"
        elif per_row > ticks:
            msg = f"{value:g} s exceeds the run's {ticks * dt_s:g} s of whole samples: the {table} table would have no row"
        else:
            continue
        errors.append(InitErrorDetails(type=PydanticCustomError("value_error", "{msg}", {"msg": msg}),
                                       loc=("telemetry", table, "sample_s"), input=value))
    if errors:
        raise ValidationError.from_exception_data("SimulationSpec", errors)
