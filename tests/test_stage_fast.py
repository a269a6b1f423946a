"""The stage's fast paths give what the plain library calls give (issue 19): frame indexing,
Arrow-buffer columns, state codes, distinct code rows, and the map-driven sample writer."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pxr import Sdf

from scenes.animate import _unique_rows, keep_mask, write_kept, write_palette_series
from scenes.frames import _np, _state_index, unique_times
from twin.telemetry.schema import NODE_STATES


@pytest.mark.parametrize("times", [
    np.repeat([1.0, 2.0, 5.0], 4),                 # time-ordered rows, as twin writes them
    np.array([3.0, 1.0, 2.0, 1.0, 3.0]),            # unordered: the sort path
    np.array([1.0, np.nan, 2.0]),                   # NaN: the sort path
    np.zeros(0),
])
def test_unique_times_is_np_unique(times):
    uniq, inverse = unique_times(times)
    ref, ref_inv = np.unique(times, return_inverse=True)
    assert np.array_equal(uniq, ref, equal_nan=True)
    assert np.array_equal(inverse, ref_inv.ravel())


def test_columns_from_buffers_match_to_numpy():
    chunks = [pa.array([1.5, None, 3.0], pa.float32()), pa.array([4.0, 5.0], pa.float32())]
    table = pa.table({"f": pa.chunked_array(chunks),
                      "i": pa.chunked_array([pa.array([1, None, 3], pa.int32()), pa.array([7, 8], pa.int32())]),
                      "d": pa.chunked_array([pa.array([0.25, 0.5, 1.0, 2.0, 4.0, 8.0]).slice(1)])})  # offset 1
    for col in ("f", "i", "d"):
        got, ref = _np(table, col), table.column(col).to_numpy()
        assert got.dtype == ref.dtype and np.array_equal(got, ref, equal_nan=True), col


def test_state_index_matches_index_in():
    states = pa.chunked_array([pa.array(["IDLE", None, "BUSY"]), pa.array(["nonsense", "OFF", "IDLE"])])
    ref = pc.index_in(states, value_set=pa.array(NODE_STATES)).fill_null(0).to_numpy()
    assert np.array_equal(_state_index(states), ref)


def test_unique_rows_is_np_unique_axis0():
    rng = np.random.default_rng(7)
    for rows in (rng.integers(-3, 9, (400, 2)), rng.integers(0, 2, (50, 3)), rng.integers(-2**40, 2**40, (30, 2))):
        got, inv = _unique_rows(rows)
        ref, ref_inv = np.unique(rows, axis=0, return_inverse=True)
        assert np.array_equal(got, ref) and np.array_equal(inv, ref_inv.ravel())


def test_write_kept_puts_each_value_at_its_frame():
    layer = Sdf.Layer.CreateAnonymous()
    paths = [Sdf.AttributeSpec(Sdf.CreatePrimInLayer(layer, f"/P{k}"), "v", Sdf.ValueTypeNames.Float).path
             for k in range(2)]
    codes = np.array([[0, 5], [0, 5], [1, 5], [1, 6]])       # frames x attributes
    n = write_palette_series(layer, paths, np.array([10.0, 20.0, 30.0, 40.0]), codes, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    # holds keep the ends of each run: attribute 0 -> 10, 20, 30, 40; attribute 1 -> 10, 30, 40
    assert keep_mask(codes).sum() == n == 7
    assert {t: layer.QueryTimeSample(paths[0], t) for t in layer.ListTimeSamplesForPath(paths[0])} == \
        {10.0: 0.0, 20.0: 0.0, 30.0: 1.0, 40.0: 1.0}
    assert {t: layer.QueryTimeSample(paths[1], t) for t in layer.ListTimeSamplesForPath(paths[1])} == \
        {10.0: 5.0, 30.0: 5.0, 40.0: 6.0}
    with pytest.raises(ValueError, match="2 values for 7 kept samples"):
        write_kept(layer, paths, np.arange(4.0), keep_mask(codes), [1.0, 2.0])
