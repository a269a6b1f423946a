"""twin.sim.gc_scope: collections skip the older objects inside the block, and nothing leaks after;
and `twin`'s exit, without a full collection, still removes what weakref finalizers own."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from twin.sim.gc_scope import freeze_what_is_new, older_objects_frozen

ROOT = Path(__file__).resolve().parent.parent


class _Node:
    """A garbage-collectable object that can sit in a reference cycle."""


def _cycle() -> weakref.ref:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_inside_the_block_older_objects_are_frozen_and_handed_back_after():
    assert gc.get_freeze_count() == 0
    with older_objects_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_an_older_cycle_dropped_inside_is_collected_after_the_block():
    gc.collect()
    holder = [_cycle()]           # the cycle exists before the block: it is frozen with the rest
    ref = holder[0]
    a = ref()
    with older_objects_frozen():
        del a
        gc.collect()
        assert ref() is not None  # frozen: the collector does not look at it
    gc.collect()
    assert ref() is None          # handed back, and collected


def test_a_cycle_made_inside_the_block_is_collected_inside_it():
    with older_objects_frozen():
        ref = _cycle()
        gc.collect()
        assert ref() is None


def test_a_callers_own_freeze_is_left_alone():
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with older_objects_frozen():
            _keep = [_Node() for _ in range(10)]
            freeze_what_is_new()      # the caller froze first: this block does not unfreeze, so neither may this
            assert gc.get_freeze_count() > before
        assert gc.get_freeze_count() > before   # still the caller's (and the late freeze's) until it unfreezes
    finally:
        gc.unfreeze()


def test_freeze_what_is_new_outside_a_block_does_nothing():
    assert gc.get_freeze_count() == 0
    freeze_what_is_new()
    assert gc.get_freeze_count() == 0


def test_the_exit_removes_a_spilled_spools_directory_held_in_a_cycle():
    # twin.cli.main._exit_now skips the full collection: a spool that spilled to disk and sits in an
    # uncollected cycle must still lose its temporary directory (weakref.finalize at exit)
    code = (
        "import numpy as np\n"
        "from twin.sim.spool import SampleSpool\n"
        "from twin.cli.main import _exit_now\n"
        "s = SampleSpool({'x': np.float64}, 4, 10, block_samples=2, spill_rows=1)\n"
        "for i in range(5):\n"
        "    s.append(x=np.full(4, float(i)))\n"
        "s._flush()\n"
        "print(s._dir, flush=True)\n"
        "s.me = s\n"                       # a cycle: only a collection or the exit's finalizers free it
        "del s\n"
        "_exit_now(0)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    spilled = Path(done.stdout.strip())
    assert spilled.name.startswith("twin-spool-")
    assert not spilled.exists()


def test_simulate_hands_the_frozen_objects_back_on_return_and_on_error(monkeypatch):
    from twin.model.validate import load_scenario
    from twin.sim import engine

    sc = load_scenario(ROOT / "scenarios" / "tiny.yaml", overrides={"simulation.duration_s": 60})
    engine.simulate(sc)
    assert gc.get_freeze_count() == 0

    class Boom(RuntimeError):
        pass

    def explode(self, k):
        assert gc.get_freeze_count() > 0     # frozen while it simulates
        raise Boom

    monkeypatch.setattr(engine.Engine, "_tick", explode)
    with pytest.raises(Boom):
        engine.simulate(sc)
    assert gc.get_freeze_count() == 0
