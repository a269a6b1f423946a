"""SQL over a finished run: DuckDB views on the run's Parquet tables.

This is the only module that imports duckdb (docs/architecture.md: one library per module);
query recipes, plots, compare and export reach DuckDB through :func:`sql` and :func:`batches`.

Every connection exposes each telemetry table present in the run as a view of the same name
(``gpus``, ``nodes``, ``racks``, ``facility``, ``requests``, ``events``, ``links``,
``topology``) and two variables, read with ``getvariable('name')``:

* ``sample_s``       telemetry sample interval in seconds (energy J = sum(power_w * sample_s)) of
                     racks and facility
* ``gpus_sample_s``, ``nodes_sample_s``, ``links_sample_s``  those tables' own intervals
                     (simulation.telemetry; equal to ``sample_s`` unless the scenario set them)
* ``gpu_slowdown_c`` GPU slowdown threshold in °C (manifest ``thresholds.gpu_slowdown_c``, else 90)

Confinement (docs/safety.md): by default a connection can read the run's Parquet tables and
nothing else. DuckDB's ``enable_external_access = false`` with ``allowed_paths`` set to exactly
those files turns off every other file and network access (``read_text('/etc/shadow')``,
``glob``, ``COPY ... TO``, ``EXPORT DATABASE``, ``ATTACH`` of a file, extension install/load),
and ``lock_configuration = true`` stops a query from switching it back. A query is one SELECT
statement (or EXPLAIN of one). ``unrestricted=True`` (``twin query --unsafe-sql``) gives plain
DuckDB with the user's full file access, for people who want to join the run with other data.
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

    def table_path(self, name: str) -> Path: ...


# statements a confined query may be: reading only (SELECT covers WITH, VALUES, FROM-first,
# DESCRIBE, SUMMARIZE, SHOW); everything else (COPY, ATTACH, SET, INSTALL, CREATE, PRAGMA...) is refused
_READ_ONLY = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
_CONFINE = ("SET enable_external_access = false", "SET autoinstall_known_extensions = false",
            "SET autoload_known_extensions = false", "SET allow_community_extensions = false")


class QueryError(ToolError):
    """DuckDB rejected the SQL (syntax, unknown column/table, type error...)."""


def _sql_string(text: str) -> str:
    """Quote `text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def connect(run: Run, *, unrestricted: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection with the run's tables as views (closed on exit).

    Confined to the run's Parquet files (see the module docstring) unless `unrestricted`.
    """
    paths = {name: run.table_path(name) for name in run.tables}  # checked: inside the run, right types
    con = duckdb.connect(":memory:")
    try:
        if not unrestricted:
            files = ", ".join(_sql_string(str(p)) for p in paths.values())
            con.execute(f"SET allowed_paths = [{files}]")  # must precede enable_external_access = false
            for setting in _CONFINE:
                con.execute(setting)
        for name, path in paths.items():
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({_sql_string(str(path))})")
        # repr() of a Python float is exact and valid SQL; the cast avoids DECIMAL typing.
        con.execute(f"SET VARIABLE sample_s = CAST({float(run.sample_s)!r} AS DOUBLE)")
        for table in ("gpus", "nodes", "links"):  # tables that may sample on their own interval
            own = getattr(run, "table_sample_s", None)
            value = float(own(table)) if own is not None else float(run.sample_s)
            con.execute(f"SET VARIABLE {table}_sample_s = CAST({value!r} AS DOUBLE)")
        con.execute(f"SET VARIABLE gpu_slowdown_c = CAST({float(run.gpu_slowdown_c)!r} AS DOUBLE)")
        if not unrestricted:
            con.execute("SET lock_configuration = true")
        yield con
    finally:
        con.close()


def _check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """QueryError unless `query` is exactly one SELECT (or EXPLAIN) statement."""
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryError(f"SQL error: {_one_line(exc)}") from None
    if len(statements) != 1:
        raise QueryError(f"give one SQL statement, not {len(statements)} (twin query runs a single SELECT; "
                         f"--unsafe-sql lifts this, see docs/safety.md)")
    kind = statements[0].type
    if kind not in _READ_ONLY:
        raise QueryError(f"{kind.name} statements are not allowed: twin query runs one read-only SELECT over "
                         f"the run's tables (--unsafe-sql lifts this, see docs/safety.md)")


def _one_line(exc: duckdb.Error) -> str:
    """DuckDB messages span several lines (caret diagrams); keep the first."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def sql(run: Run, query: str, *, unrestricted: bool = False) -> pa.Table:
    """Run `query` over `run` and return the whole result as a pyarrow Table.

    Raises QueryError (one line) when the query is not one SELECT (unless `unrestricted`), or
    when DuckDB rejects it (syntax, unknown column, file access outside the run...).
    """
    with connect(run, unrestricted=unrestricted) as con:
        if not unrestricted:
            _check_read_only(con, query)
        try:
            rel = con.sql(query)
            if rel is None:  # a statement with no result (SET, CREATE ...)
                return pa.table({})
            return rel.to_arrow_table()
        except duckdb.PermissionException as exc:
            raise QueryError(f"SQL error: {_one_line(exc)} (twin query reads only this run's tables; "
                             f"--unsafe-sql lifts this, see docs/safety.md)") from None
        except duckdb.Error as exc:
            raise QueryError(f"SQL error: {_one_line(exc)}") from None


def batches(run: Run, query: str, batch_rows: int = 1 << 20) -> Iterator[pa.RecordBatch]:
    """Stream the result of `query` as record batches of at most `batch_rows` rows.

    Lets exporters write results far larger than memory would comfortably hold as Python objects.
    """
    with connect(run) as con:
        _check_read_only(con, query)
        try:
            reader = con.sql(query).to_arrow_reader(batch_rows)
        except duckdb.Error as exc:
            raise QueryError(f"SQL error: {_one_line(exc)}") from None
        yield from reader
