"""Robustness: mutated scenarios never crash the loader or the CLI; Ctrl-C never leaves a partial run.

The property tests (hypothesis) mutate scenarios/tiny.yaml — values swapped for wrong types and
out-of-range numbers, keys deleted, misspelt or invented, fault entries made up, raw text
damaged — and assert the loader answers with a valid spec or a SpecError whose every line
names a field path or the file, and the CLI exits 0 or 2 without a traceback.
The interrupt tests send SIGINT/SIGTERM to a real `twin run` subprocess.
"""
from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from doc_paths import paths

from twin.cli.main import app
from twin.errors import SpecError
from twin.spec.scenario import FAULT_KINDS, Scenario
from twin.model.validate import scenario_from_text

ROOT = Path(__file__).resolve().parent.parent
TINY_TEXT = (ROOT / "scenarios" / "tiny.yaml").read_text()
TINY = yaml.safe_load(TINY_TEXT)
runner = CliRunner()


def parent_of(doc: Any, path: tuple) -> Any:
    for p in path[:-1]:
        doc = doc[p]
    return doc


junk = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**12, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["", "-1", "1e309", "nan", "llama-3.3-70B", "spine:0", "cascade", "bf16"]),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
fault = st.fixed_dictionaries({"at_s": junk | st.floats(0, 700), "kind": st.sampled_from(FAULT_KINDS) | junk},
                              optional={"target": junk | st.integers(-2, 20), "value": junk | st.floats(-1, 500),
                                        "duration_s": junk | st.floats(0, 500)})


@st.composite
def mutated(draw) -> dict:
    doc = copy.deepcopy(TINY)
    for _ in range(draw(st.integers(1, 4))):
        where = paths(doc)
        op = draw(st.sampled_from(["replace", "delete", "typo", "invent", "fault"]))
        if op == "fault":
            doc.setdefault("faults", [])
            if isinstance(doc["faults"], list):
                doc["faults"].append(draw(fault))
            continue
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent, key = parent_of(doc, path), path[-1]
        if op == "replace":
            parent[key] = draw(junk)
        elif op == "delete":
            del parent[key]
        elif op == "typo" and isinstance(key, str) and len(key) > 1:
            i = draw(st.integers(0, len(key) - 1))
            parent[key[:i] + key[i + 1:]] = parent.pop(key)
        elif op == "invent" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(junk)
    return doc


def load(text: str) -> Scenario | list[str]:
    """The loader's only two outcomes: a Scenario, or SpecError problems (anything else propagates)."""
    try:
        return scenario_from_text(text)
    except SpecError as exc:
        return exc.problems


def assert_clean(outcome: Scenario | list[str]) -> None:
    if isinstance(outcome, Scenario):
        return
    assert outcome, "a SpecError names at least one problem"
    for line in outcome:
        assert line and "\n" not in line and "Traceback" not in line
        # every line starts with a field path ('pools[0].model: ...', "['a b']: ...") or the origin
        assert ": " in line and not line.startswith((":", " ")), line


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_scenarios_give_a_valid_spec_or_a_clean_error(doc):
    assert_clean(load(yaml.safe_dump(doc, sort_keys=False)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pos=st.integers(0, len(TINY_TEXT)), cut=st.integers(0, 20),
       insert=st.text(alphabet=st.sampled_from(list(":-[]{}&*!|>#'\"%@`,? \n\t0x.e~")) | st.characters(), max_size=8))
def test_damaged_yaml_text_gives_a_valid_spec_or_a_clean_error(pos, cut, insert):
    assert_clean(load(TINY_TEXT[:pos] + insert + TINY_TEXT[pos + cut:]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutated())
def test_the_cli_answers_mutated_scenarios_with_exit_0_or_2(tmp_path, doc):
    path = tmp_path / "mutated.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("text, message", [
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi")), "anchors and aliases expand to more than"),
    ("[" * 3000 + "]" * 3000, "nested too deeply"),
    (TINY_TEXT + "name: again\n", "duplicate key 'name' at line"),
    ("x" * 1_000_001, "larger than 1000 kB"),
    (TINY_TEXT.replace("seed: 7", "seed: -1"), "simulation.seed: Input should be greater than or equal to 0"),
    (TINY_TEXT.replace("duration_s: 600", "duration_s: .inf"), "simulation.duration_s: Input should be a finite number"),
])
def test_hostile_yaml_is_refused_with_a_reason(text, message):
    problems = load(text)
    assert isinstance(problems, list) and any(message in p for p in problems), problems


# ---------------------------------------------------------------- interrupting a real `twin run`

def start_run(scenario: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "twin", "run", str(scenario), "-o", str(out), "--no-stage", "-q"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used (Linux /proc): a load-independent clock for 'is it simulating yet'."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def assert_nothing_written(out: Path) -> None:
    assert not out.exists(), "no run directory"
    if out.parent.exists():
        assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")] == [], "no temporaries"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc for CPU time")
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupting_the_simulation_leaves_no_run_directory(tmp_path, sig, code):
    long = tmp_path / "long.yaml"  # ~5 CPU s of simulation (8 h of tiny): the signal lands well inside it
    long.write_text(TINY_TEXT.replace("duration_s: 600", "duration_s: 28800"))
    out = tmp_path / "runs" / "long"
    proc = start_run(long, out)
    # start-up and imports take < 1 CPU s; wait on CPU time, not wall time, so a busy machine cannot
    # make the signal land during the imports
    while proc.poll() is None and cpu_seconds(proc.pid) < 2.0:
        time.sleep(0.05)
    assert proc.poll() is None, "still simulating"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "interrupted; no partial run written" in err and "Traceback" not in err
    assert_nothing_written(out)


def test_interrupting_the_writing_leaves_no_run_directory(tmp_path):
    """SIGINT the moment the temporary run directory appears (writing takes ~50 ms for tiny)."""
    interrupted = 0
    for attempt in range(5):
        out = tmp_path / f"runs{attempt}" / "tiny"
        out.parent.mkdir()
        proc = start_run(ROOT / "scenarios" / "tiny.yaml", out)
        while proc.poll() is None:
            if any(p.name.startswith(".tiny.") for p in out.parent.iterdir()):
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.0005)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == 0:  # lost the race: the run finished first, and must then be whole
            assert (out / "manifest.json").is_file() and (out / "telemetry" / "events.parquet").is_file()
            continue
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        if out.exists():  # the signal landed after the final rename: a complete run is fine
            assert (out / "manifest.json").is_file()
        assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []
        interrupted += not out.exists()
        if interrupted:
            break
    assert interrupted, "no attempt caught the writer in the act"


class SlowBlocks:
    """A streamed table (it has `blocks()`) that yields `n` copies of a real block, `pause_s` apart."""

    def __init__(self, table, n: int, pause_s: float):
        self.table, self.n, self.pause_s, self.yielded = table, n, pause_s, 0

    def blocks(self):
        block = next(iter(self.table.blocks()))
        for _ in range(self.n):
            time.sleep(self.pause_s)
            self.yielded += 1
            yield block


def new_threads(before: set) -> list[str]:
    """Threads still alive that were not there `before`: a writer that outlived write_tables."""
    import threading

    return [t.name for t in threading.enumerate() if t not in before and t.is_alive()]


@pytest.fixture
def sigint_raises():
    """SIGINT -> KeyboardInterrupt in this process, whatever handler the test runner installed."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGINT, handler)
    yield
    signal.signal(signal.SIGINT, previous)


def tiny_tables() -> dict:
    from twin.sim.engine import simulate
    from twin.model.validate import load_scenario
    from twin.telemetry.schema import to_table

    res = simulate(load_scenario(ROOT / "scenarios" / "tiny.yaml"))
    return {name: cols if hasattr(cols, "blocks") else to_table(name, cols) for name, cols in res.columns.items()}


def test_ctrl_c_while_the_writer_threads_start_leaves_no_thread_writing(tmp_path, monkeypatch, sigint_raises):
    """A Ctrl-C inside Thread.start() once left a running writer its pool had not recorded, so the
    pool's shutdown could not wait for it and it wrote into the directory being removed (the CI
    failure of test_interrupting_the_writing_leaves_no_run_directory). The signal now waits until
    every thread is recorded, and then the pool is joined before the exception leaves."""
    import threading

    import twin.telemetry.write as write

    tables = tiny_tables()
    tables["gpus"] = SlowBlocks(tables["gpus"], n=20, pause_s=0.02)
    real_start, fired = threading.Thread.start, []

    def start(self):
        real_start(self)
        if not fired:  # the Ctrl-C lands while the first writer is starting
            fired.append(self.name)
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(threading.Thread, "start", start)
    before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        write.write_tables(tmp_path / "run", tables)
    assert fired, "a writer thread was started"
    assert new_threads(before) == [], "every writer thread has ended when the interrupt leaves write_tables"
    assert tables["gpus"].yielded < 20, "the streamed table stopped at its next block"


def test_ctrl_c_during_the_writing_stops_the_streamed_table_at_its_next_block(tmp_path, sigint_raises):
    import threading

    import twin.telemetry.write as write

    tables = tiny_tables()
    tables["gpus"] = SlowBlocks(tables["gpus"], n=200, pause_s=0.01)  # ~2 s of writing
    before = set(threading.enumerate())
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    previous = signal.signal(signal.SIGALRM, lambda s, f: signal.raise_signal(signal.SIGINT))
    try:
        with pytest.raises(KeyboardInterrupt):
            write.write_tables(tmp_path / "run", tables)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert new_threads(before) == []
    assert 0 < tables["gpus"].yielded < 200, "interrupted in the middle, and it did not write on to the end"


def test_an_interrupt_inside_a_compiled_kernel_is_still_an_interrupt(tmp_path):
    """A signal landing while a numba kernel returns surfaces as SystemError("... returned a result
    with an exception set") caused by the KeyboardInterrupt (seen in CI on SIGTERM): still exit 130,
    one line; any other SystemError is not swallowed."""
    import typer

    from twin.cli.main import _interruptible

    def kernel_returning_with_interrupt():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise SystemError("CPUDispatcher(<function k>) returned a result with an exception set") from exc

    with pytest.raises(typer.Exit) as done:
        with _interruptible(tmp_path / "run"):
            kernel_returning_with_interrupt()
    assert done.value.exit_code == 130
    with pytest.raises(SystemError):
        with _interruptible(tmp_path / "run"):
            raise SystemError("a real bug")


def test_the_fast_exit_delivers_all_output_and_the_exit_code(tmp_path):
    """`twin` ends with os._exit after the atexit handlers (twin.cli.main._exit_now): the same
    stdout, byte for byte, and the same exit codes as the interpreter's own exit (TWIN_FULL_EXIT=1)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    tiny = ROOT / "scenarios" / "tiny.yaml"
    outs = {}
    for full in ("", "1"):
        run = subprocess.run([sys.executable, "-m", "twin", "run", str(tiny), "-o", str(tmp_path / f"r{full}"),
                              "--no-stage", "-q"], env=dict(env, TWIN_FULL_EXIT=full), capture_output=True)
        assert run.returncode == 0, run.stderr
        # the summary table, down to its last border, and the run it describes
        outs[full] = run.stdout
        assert run.stdout.rstrip().endswith("┘".encode()) and (tmp_path / f"r{full}" / "manifest.json").is_file()
        bad = subprocess.run([sys.executable, "-m", "twin", "run", str(tmp_path / "missing.yaml")],
                             env=dict(env, TWIN_FULL_EXIT=full), capture_output=True, text=True)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "missing.yaml" in bad.stderr
    assert len(outs[""].splitlines()) == len(outs["1"].splitlines())   # (the paths and wall times differ)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc for CPU time and children")
def test_interrupting_a_run_with_a_stage_helper_stops_the_helper_too(tmp_path):
    """A run large enough for the stage's helper process (scenes/data_job.py: started before the
    simulation): SIGTERM while simulating ends both, and nothing is left behind."""
    long = tmp_path / "long.yaml"  # 4 nodes x 28,800 one-second samples = 115,200 node rows: a helper;
    long.write_text(TINY_TEXT.replace("duration_s: 600", "duration_s: 28800"))   # ~5 CPU s simulating
    out = tmp_path / "runs" / "long"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "twin", "run", str(long), "-o", str(out), "-q",
                             "--set", "simulation.sample_s=1"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    helper = None
    while proc.poll() is None and (helper is None or cpu_seconds(proc.pid) < 2.0):
        kids = children.read_text().split() if children.exists() else []
        helper = int(kids[0]) if kids else helper
        time.sleep(0.05)
    assert proc.poll() is None and helper is not None, "simulating, with its helper started"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted; no partial run written" in err and "Traceback" not in err
    assert not Path(f"/proc/{helper}").exists() or "Z" in Path(f"/proc/{helper}/stat").read_text().split()[2]
    assert_nothing_written(out)
