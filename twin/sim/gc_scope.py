"""Keep Python's cyclic garbage collector off the objects that existed before a long computation.

Why: CPython's oldest-generation collection traverses every object the collector tracks. Once
numpy, numba, pyarrow, pydantic, the catalogue (and, for a stage, pxr) are imported, that is
~130,000-150,000 objects, and one such collection takes 55-115 ms on this machine. The engine
allocates steadily (small arrays and tuples every tick), so one comes about every simulation,
1-4 in a `twin run`, each re-walking objects that cannot be garbage: 0.23-0.34 s of a 3-5 s command
(measured with gc.callbacks).

`gc.freeze()` (CPython >= 3.7) moves every object tracked now into a permanent generation that
collections skip; whatever the computation creates is collected as before. `gc.unfreeze()` at
the end hands them back, so nothing stays alive that would otherwise be freed: a frozen object
that became garbage meanwhile goes at the first collection after. It changes no result, only
when the collector runs. A caller that has frozen objects itself keeps its arrangement: then
nothing is done.
"""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def older_objects_frozen() -> Iterator[None]:
    """Within the block, cyclic collections skip every object that existed when it began."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def freeze_what_is_new() -> None:
    """Inside older_objects_frozen: the objects made since it began (a late import's, say) are
    skipped from now on too, and handed back with the others when the block ends. Outside one,
    nothing is done (nobody would hand them back)."""
    if gc.get_freeze_count():
        gc.freeze()
