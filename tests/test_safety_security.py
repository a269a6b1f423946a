"""Security (issue 15): readers never follow links out of a run, `twin query` is read-only over the
run's tables, `twin sweep --scheduler` checks its address and speaks TLS, YAML and input files are
bounded before they are read.

A canary file outside the run stands for /etc/shadow: its text must never appear in any output.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli.main import app
from twin.errors import SpecError
from twin.model.validate import scenario_from_text
from twin.telemetry.read import NotARunError, load_run
from twin.telemetry.sql import QueryError
from twin.telemetry.write import write_run

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "scenarios" / "tiny.yaml"
SECRET = "root:$6$canary-d41d8cd98f00b204e9800998ecf8427e:19000:0:99999:7:::"
runner = CliRunner()


@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("etc") / "shadow"
    path.write_text(SECRET + "\n")
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_result) -> Path:
    d = tmp_path_factory.mktemp("sec") / "tiny"
    write_run(tiny_result, d)
    return d


@pytest.fixture
def own_run(tmp_path, run_dir) -> Path:
    d = tmp_path / "run"
    shutil.copytree(run_dir, d)
    return d


def refused(result, *needles: str) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and "Traceback" not in result.output and len(lines) == 1, result.output
    assert all(n in lines[0] for n in needles), lines[0]
    assert "canary" not in result.output
    return lines[0]


# ------------------------------------------------------------------ no links out of the run

def test_report_does_not_embed_a_scenario_yaml_linked_from_outside(tmp_path, own_run, secret):
    (own_run / "scenario.yaml").unlink()
    (own_run / "scenario.yaml").symlink_to(secret)
    out = tmp_path / "share.html"
    refused(runner.invoke(app, ["report", str(own_run), "-o", str(out)]), "scenario.yaml", "links outside the run")
    assert not out.exists()


@pytest.mark.parametrize("rel", ["manifest.json", "telemetry/facility.parquet", "telemetry"])
def test_no_reader_follows_a_link_out_of_the_run(tmp_path, own_run, secret, rel):
    target = own_run / rel
    elsewhere = tmp_path / "elsewhere"
    shutil.move(target, elsewhere)  # the real file lives outside now, reached through a link
    target.symlink_to(elsewhere)
    for args in (["query", str(own_run), "SELECT * FROM facility LIMIT 1"], ["report", str(own_run), "-o", str(tmp_path / "r.html")],
                 ["plot", str(own_run), "power", "-o", str(tmp_path / "p.png")], ["compare", str(own_run), str(own_run)]):
        refused(runner.invoke(app, args), "links outside the run")


def test_a_link_inside_the_run_is_fine_and_the_run_itself_may_be_a_link(tmp_path, own_run):
    link = tmp_path / "latest"
    link.symlink_to(own_run)
    assert load_run(link).sql("SELECT count(*) AS n FROM facility").column("n")[0].as_py() == 120


def test_a_huge_or_special_manifest_is_refused_without_reading_it(own_run):
    (own_run / "manifest.json").unlink()
    os.mkfifo(own_run / "manifest.json")  # reading it would block forever
    with pytest.raises(NotARunError, match="not a regular file"):
        load_run(own_run)


# ------------------------------------------------------------------ twin query is confined

@pytest.mark.parametrize("sql, needle", [
    ("SELECT * FROM read_text('{secret}')", "Permission Error"),
    ("SELECT * FROM read_csv('{secret}', sep=':')", "Permission Error"),
    ("SELECT * FROM glob('{dir}/*')", "Permission Error"),
    ("SELECT * FROM read_parquet('{dir}/*.parquet')", "Permission Error"),
    ("COPY (SELECT 1) TO '{dir}/out.csv'", "COPY statements are not allowed"),
    ("EXPORT DATABASE '{dir}/db'", "EXPORT statements are not allowed"),
    ("ATTACH '{dir}/x.duckdb' AS x", "ATTACH statements are not allowed"),
    ("INSTALL httpfs", "not allowed"),
    ("LOAD httpfs", "not allowed"),
    ("SET enable_external_access = true", "SET statements are not allowed"),
    ("SELECT 1; SELECT * FROM read_text('{secret}')", "one SQL statement, not 2"),
    ("CREATE TABLE t AS SELECT 1", "CREATE statements are not allowed"),
    ("PRAGMA enable_profiling", "not allowed"),
    ("SELECT * FROM query('SELECT * FROM read_text(''{secret}'')')", "Permission Error"),
    ("SELECT * FROM 'https://example.com/x.parquet'", "Permission Error"),
])
def test_query_is_read_only_over_the_runs_tables(tmp_path, run_dir, secret, sql, needle):
    text = sql.format(secret=secret, dir=secret.parent)
    refused(runner.invoke(app, ["query", str(run_dir), text]), needle)
    assert sorted(p.name for p in secret.parent.iterdir()) == ["shadow"], "nothing written next to the secret"


def test_query_still_answers_ordinary_questions(run_dir):
    for sql in ("SELECT max(facility_power_w) FROM facility", "WITH a AS (SELECT 1 AS x) SELECT * FROM a",
                "DESCRIBE gpus", "SUMMARIZE facility", "EXPLAIN SELECT * FROM nodes",
                f"SELECT count(*) FROM read_parquet('{run_dir}/telemetry/gpus.parquet')"):
        result = runner.invoke(app, ["query", str(run_dir), sql, "--format", "csv"])
        assert result.exit_code == 0, (sql, result.output)


def test_unsafe_sql_is_plain_duckdb_for_who_asks(tmp_path, run_dir, secret):
    result = runner.invoke(app, ["query", str(run_dir), f"SELECT content FROM read_text('{secret}')", "--format", "csv",
                                 "--unsafe-sql"])
    assert result.exit_code == 0 and "canary" in result.output
    run = load_run(run_dir)
    with pytest.raises(QueryError, match="Permission Error"):
        run.sql(f"SELECT * FROM read_text('{secret}')")
    assert run.sql("SELECT 1 AS a; SELECT 2 AS a", unrestricted=True).column("a")[0].as_py() == 2


# ------------------------------------------------------------------ twin sweep --scheduler

@pytest.mark.parametrize("address", ["garbage", "inproc://x", "tcp://", "tcp://host", "tcp://host:0", "tcp://host:99999",
                                     "ucx://host:8786", "tcp://[::1", "tcp://host:8786/path", "tls://host:8786"])
def test_a_malformed_scheduler_address_is_one_line(address):
    result = runner.invoke(app, ["sweep", str(ROOT / "scenarios/sweeps/tiny-policies.yaml"), "--scheduler", address, "-q"])
    refused(result, "--scheduler")


def test_tls_options_need_a_tls_scheduler(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    result = runner.invoke(app, ["sweep", str(ROOT / "scenarios/sweeps/tiny-policies.yaml"), "--scheduler",
                                 "tcp://127.0.0.1:8786", "--tls-ca-file", str(tmp_path / "ca.pem"), "-q"])
    refused(result, "need a tls:// address")


def test_an_unreachable_scheduler_is_one_line():
    result = runner.invoke(app, ["sweep", str(ROOT / "scenarios/sweeps/tiny-policies.yaml"), "--scheduler",
                                 "tcp://127.0.0.1:9", "-q", "-o", "/tmp/never-written-sweep"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines()[-1].startswith("error: --scheduler tcp://127.0.0.1:9: cannot connect")
    assert not Path("/tmp/never-written-sweep").exists()


def test_sweep_runs_over_mutual_tls(tmp_path):
    """A real TLS scheduler + worker (dask-scheduler/dask-worker processes, Dask's own test certificates
    made with `cryptography`): the sweep connects with the client certificate; without it, it cannot."""
    pytest.importorskip("cryptography")
    from distributed.security import Security

    sec = Security.temporary()
    pem = {k: tmp_path / f"{k}.pem" for k in ("ca", "cert", "key")}
    pem["ca"].write_text(sec.tls_ca_file)
    pem["cert"].write_text(sec.tls_client_cert)
    pem["key"].write_text(sec.tls_client_key)
    tls = ["--tls-ca-file", pem["ca"], "--tls-cert", pem["cert"], "--tls-key", pem["key"]]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                              "0", "--protocol", "tls", "--no-dashboard", "--scheduler-file", tmp_path / "s.json",
                              "--tls-ca-file", pem["ca"], "--tls-cert", pem["cert"], "--tls-key", pem["key"]],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        for _ in range(300):
            if (tmp_path / "s.json").exists() and (tmp_path / "s.json").read_text().strip():
                break
            time.sleep(0.1)
        import json
        address = json.loads((tmp_path / "s.json").read_text())["address"]
        assert address.startswith("tls://")
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                   "--no-dashboard", *tls], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spec = tmp_path / "one.yaml"
        spec.write_text(f"name: one\nbase: {TINY}\naxes:\n  simulation.seed: [3]\n")
        out = tmp_path / "sweep"
        result = runner.invoke(app, ["sweep", str(spec), "--scheduler", address, *map(str, tls), "-o", str(out), "-q"])
        assert result.exit_code == 0, result.output
        assert (out / "sweep.parquet").is_file()
        without = runner.invoke(app, ["sweep", str(spec), "--scheduler", address, "-o", str(tmp_path / "x"), "-q"])
        refused(without, "--scheduler")
    finally:
        for p in (worker, sched):
            if p is not None:
                p.terminate()
                p.wait(timeout=30)


# ------------------------------------------------------------------ bounded input

def test_an_alias_bomb_of_few_values_and_many_bytes_is_refused_quickly():
    """~400 kB of text, 1,000 aliases of it: few values (the count guard passes), 400 MB expanded."""
    fault = "{at_s: 10, kind: node_crash, target: 0, note: " + "x" * 400_000 + "}"
    text = TINY.read_text() + f"x-fault: &f {fault}\nfaults: [" + ", ".join(["*f"] * 1000) + "]\n"
    assert 400_000 < len(text) < 500_000
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=r"expand to 40\d\.\d MB, more than 4x the file"):
        scenario_from_text(text)
    assert time.perf_counter() - t0 < 10, "refused from the node graph, before anything is built"


@pytest.mark.parametrize("make, message", [
    ("zero", "not a regular file"), ("fifo", "not a regular file"), ("dir", "is a directory"),
    ("sparse", "larger than 1,000 kB"), ("binary", "not UTF-8"),
])
def test_input_files_are_checked_before_they_are_read(tmp_path, make, message):
    path = tmp_path / "scenario.yaml"
    if make == "zero":
        path = Path("/dev/zero")
    elif make == "fifo":
        os.mkfifo(path)
    elif make == "dir":
        path.mkdir()
    elif make == "sparse":
        with open(path, "wb") as fh:
            fh.truncate(10 << 30)  # 10 GB that would take minutes (and all memory) to read
    else:
        path.write_bytes(b"name: \xff\xfe\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "twin", "validate", str(path)], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert time.perf_counter() - t0 < 30


def test_a_catalogue_file_that_is_a_device_is_refused(tmp_path):
    text = TINY.read_text() + "catalogue: [/dev/zero]\n"
    with pytest.raises(SpecError, match="/dev/zero: not a regular file"):
        scenario_from_text(text, base_dir=tmp_path)
