"""The GPU table's spool and streamed Parquet: bounded memory, the same bytes as writing it whole."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

import twin.sim.spool as spool
import twin.telemetry.write as write
from twin.model.validate import load_scenario
from twin.sim.engine import simulate
from twin.sim.spool import SampleSpool
from twin.telemetry.schema import to_table

TINY = Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml"


def test_a_spool_spills_full_blocks_and_reads_back_every_sample_in_order():
    sp = SampleSpool({"x": np.dtype(np.float32)}, width=3, n_samples=10, track_max=("x",), block_samples=4,
                     spill_rows=0)
    for s in range(10):
        sp.append(x=np.array([s, s + 0.5, -s]))
    assert [first for first, _ in sp.blocks()] == [0, 4, 8]
    assert len(list(sp._dir.iterdir())) == 2, "two full blocks on disk, the last in memory"
    assert sp.column("x")[:, 1].tolist() == [s + 0.5 for s in range(10)] and sp.max["x"] == 9.5


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name, width", [("gpus", 12), ("nodes", 4)])
def test_streamed_spilled_tables_are_byte_identical_to_the_whole_table(tmp_path, monkeypatch, name, width):
    # tiny row groups and blocks so that row groups straddle spilled blocks (and the nodes'
    # energy is carried across blocks)
    monkeypatch.setattr(write, "ROW_GROUP_ROWS", 50)
    monkeypatch.setattr(spool, "SPILL_ROWS", 0)
    monkeypatch.setattr(spool, "BLOCK_SAMPLES", 7)
    res = simulate(load_scenario(TINY))
    table = res.columns[name]
    assert table.spool._spilled, "the table was spilled"
    rows = write.write_streamed(name, table.blocks(), tmp_path / "streamed.parquet")
    whole = to_table(name, {k: table[k] for k in table})
    write.write_table(whole, tmp_path / "whole.parquet")
    assert rows == whole.num_rows == 120 * width
    assert sha(tmp_path / "streamed.parquet") == sha(tmp_path / "whole.parquet")


def test_spilled_energy_is_the_same_running_sum(monkeypatch):
    whole = simulate(load_scenario(TINY)).columns["nodes"]["energy_j"]
    monkeypatch.setattr(spool, "SPILL_ROWS", 0)
    monkeypatch.setattr(spool, "BLOCK_SAMPLES", 7)
    assert simulate(load_scenario(TINY)).columns["nodes"]["energy_j"].tobytes() == whole.tobytes()


def test_spilled_blocks_are_written_behind_the_simulation_with_bounded_memory(monkeypatch):
    real, written = spool._save_block, []

    def slow_disk(directory, b, block):
        time.sleep(0.005)  # a disk slower than the appends: the backlog must stay bounded
        written.append(b)
        real(directory, b, block)

    monkeypatch.setattr(spool, "_save_block", slow_disk)
    sp = SampleSpool({"x": np.dtype(np.float32), "n": np.dtype(np.int32)}, width=3, n_samples=40, block_samples=4,
                     spill_rows=0)
    for s in range(40):
        sp.append(x=np.array([s, s + 0.25, -s]), n=np.full(3, s))
        assert sp._behind is None or len(sp._behind.pending) <= spool.MAX_PENDING
    # the reader waits for the writer: every block, in order, each a copy of what was appended
    assert sp.column("x")[:, 1].tolist() == [s + 0.25 for s in range(40)]
    assert sp.column("n")[:, 0].tolist() == list(range(40)) and written == list(range(10))


def test_a_failed_spill_write_is_raised_to_the_reader(monkeypatch):
    def full_disk(directory, b, block):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool, "_save_block", full_disk)
    sp = SampleSpool({"x": np.dtype(np.float32)}, width=2, n_samples=8, block_samples=2, spill_rows=0)
    with pytest.raises(OSError, match="No space"):
        for s in range(8):
            sp.append(x=np.zeros(2))
        list(sp.blocks())


@pytest.mark.parametrize("spill", [False, True], ids=["in-memory", "spilled"])
def test_tables_streamed_while_simulating_are_byte_identical_to_writing_them_after(tmp_path, monkeypatch, spill):
    """`twin run` taps the gpus and nodes spools and the links samples into their Parquet files
    during the simulation (RunWriter); with row groups straddling the pieces, the same bytes."""
    from twin.telemetry.write import RunWriter, write_run

    monkeypatch.setattr(write, "ROW_GROUP_ROWS", 50)
    monkeypatch.setattr(spool, "TAP_ROWS", 30)  # in-memory pieces of 30 // width samples
    if spill:
        monkeypatch.setattr(spool, "SPILL_ROWS", 0)
        monkeypatch.setattr(spool, "BLOCK_SAMPLES", 7)
    # tiny has no cross-node traffic (an empty links table); this hall does
    sc = load_scenario(TINY.parent / "fabric-congestion.yaml", overrides={"simulation.duration_s": 600})
    with RunWriter(tmp_path / "streamed") as run:
        res = simulate(sc, sinks=run.sinks())
        assert res.columns["gpus"].spool.spills is spill
        man = run.finish(res)
    assert man["tables"]["links"] > 50 and man["tables"]["gpus"] > 50, "row groups of 50 straddle the pieces"
    assert res.columns["gpus"].spool._dir is None, "a tapped spool saves nothing to disk"
    write_run(simulate(sc), tmp_path / "after")
    for name in ("gpus", "nodes", "links", "racks", "requests"):
        assert sha(tmp_path / "streamed" / "telemetry" / f"{name}.parquet") == \
               sha(tmp_path / "after" / "telemetry" / f"{name}.parquet"), name
    if spill:
        with pytest.raises(RuntimeError, match="tap"):
            list(res.columns["gpus"].blocks())


def test_a_tap_gets_every_row_once_in_order_in_pieces():
    sp = SampleSpool({"x": np.dtype(np.float32)}, width=2, n_samples=10, block_samples=None, spill_rows=10**9)
    got = []
    sp.tap(lambda first, blk: got.append((first, blk["x"].copy())))
    assert sp._tap_samples == spool.TAP_ROWS // 2, "pieces of about TAP_ROWS rows"
    sp._tap_samples = 3  # pieces of 3 samples here
    for s in range(10):
        sp.append(x=np.array([s, -s]))
    sp.drain()
    assert [f for f, _ in got] == [0, 3, 6, 9]
    assert np.concatenate([b for _, b in got])[:, 0].tolist() == list(range(10))
    with pytest.raises(RuntimeError, match="once"):
        sp.tap(lambda first, blk: None)


def test_a_run_writer_that_fails_or_is_never_finished_leaves_nothing(tmp_path):
    from twin.telemetry.write import RunWriter

    sc = load_scenario(TINY)
    with pytest.raises(ZeroDivisionError):
        with RunWriter(tmp_path / "failed") as run:
            simulate(sc, sinks=run.sinks())
            1 / 0
    with pytest.raises(RuntimeError, match="without finish"):
        with RunWriter(tmp_path / "unfinished") as run:
            simulate(sc, sinks=run.sinks())
    assert list(tmp_path.iterdir()) == []


def test_zeroed_buffers_are_zero_writable_and_released_with_their_views():
    import gc
    import mmap
    import weakref

    from twin.sim.spool import zeroed
    a = zeroed((3, 1000, 17), np.float32)
    assert a.shape == (3, 1000, 17) and a.dtype == np.float32 and a.flags.writeable
    assert not a.any()                              # the kernel's zero pages
    a[1, 5, 3] = 2.5
    view = a[1]
    assert view[5, 3] == 2.5
    owner = a.base
    while getattr(owner, "base", None) is not None:  # numpy's chain down to the buffer
        owner = owner.base
    owner = owner.obj if isinstance(owner, memoryview) else owner
    if not isinstance(owner, mmap.mmap):
        pytest.skip("no MAP_POPULATE here: zeroed is np.full")
    gone = weakref.ref(owner)
    del a, owner
    gc.collect()
    assert gone() is not None and view[5, 3] == 2.5   # the map lives while a view of it does
    del view
    gc.collect()
    assert gone() is None                           # and goes with the last one
