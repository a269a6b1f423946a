"""SQL over a finished run: DuckDB views on the run's Parquet tables.

This is the only module that imports duckdb (docs/architecture.md: one library per module);
query recipes, plots, compare and export reach DuckDB through :func:`sql` and :func:`batches`.

Every connection exposes each telemetry table present in the run as a view of the same name
(``gpus``, ``nodes``, ``racks``, ``facility``, ``requests``, ``events``, ``links``,
``topology``) and two variables, read with ``getvariable('name')``:

* ``sample_s``       telemetry sample interval in seconds (energy J = sum(power_w * sample_s))
* ``gpu_slowdown_c`` GPU slowdown threshold in °C (manifest ``thresholds.gpu_slowdown_c``, else 90)
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import duckdb
import pyarrow as pa

from twin.errors import ToolError


class Run(Protocol):
    """What SQL needs of a run (twin.telemetry.read.Run has it): its folder, tables and two variables."""
    path: Path
    sample_s: float
    gpu_slowdown_c: float

    @property
    def tables(self) -> Iterable[str]: ...


class QueryError(ToolError):
    """DuckDB rejected the SQL (syntax, unknown column/table, type error...)."""


def _sql_string(text: str) -> str:
    """Quote `text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def connect(run: Run) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection with the run's tables as views (closed on exit)."""
    con = duckdb.connect(":memory:")
    try:
        for name in run.tables:
            path = run.path / "telemetry" / f"{name}.parquet"
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({_sql_string(str(path))})")
        # repr() of a Python float is exact and valid SQL; the cast avoids DECIMAL typing.
        con.execute(f"SET VARIABLE sample_s = CAST({float(run.sample_s)!r} AS DOUBLE)")
        con.execute(f"SET VARIABLE gpu_slowdown_c = CAST({float(run.gpu_slowdown_c)!r} AS DOUBLE)")
        yield con
    finally:
        con.close()


def _one_line(exc: duckdb.Error) -> str:
    """DuckDB messages span several lines (caret diagrams); keep the first."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def sql(run: Run, query: str) -> pa.Table:
    """Run `query` over `run` and return the whole result as a pyarrow Table.

    Raises QueryError (one line) when DuckDB rejects the query.
    """
    with connect(run) as con:
        try:
            rel = con.sql(query)
            if rel is None:  # a statement with no result (SET, CREATE ...)
                return pa.table({})
            return rel.to_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(f"SQL error: {_one_line(exc)}") from None


def batches(run: Run, query: str, batch_rows: int = 1 << 20) -> Iterator[pa.RecordBatch]:
    """Stream the result of `query` as record batches of at most `batch_rows` rows.

    Lets exporters write results far larger than memory would comfortably hold as Python objects.
    """
    with connect(run) as con:
        try:
            reader = con.sql(query).to_arrow_reader(batch_rows)
        except duckdb.Error as exc:
            raise QueryError(f"SQL error: {_one_line(exc)}") from None
        yield from reader
