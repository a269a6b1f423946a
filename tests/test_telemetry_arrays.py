"""The writer's own Arrow builders against pa.array, which they replace (same arrays, so the same
Parquet bytes; tests/conftest digests cover whole runs)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from twin.model.columns import Coded
from twin.sim.spool import BlockTable
from twin.telemetry.schema import _from_numpy, _strings, empty_table, to_table


def same(a: pa.Array, b: pa.Array) -> bool:
    """Same type, nulls and value bits (Array.equals says NaN != NaN)."""
    return (a.type == b.type and a.null_count == b.null_count
            and a.to_numpy(zero_copy_only=False).tobytes() == b.to_numpy(zero_copy_only=False).tobytes())


def test_numbers_from_numpy_equal_pa_array():
    rng = np.random.default_rng(3)
    x = rng.normal(size=1001)
    x[[3, 500]] = np.nan, -0.0
    for values, typ in ((x, pa.float64()), (x, pa.float32()), (x[::3], pa.float32()),   # strided: a copy
                        (rng.integers(-5, 9, 77), pa.int32()), (rng.integers(0, 2**40, 5), pa.int64()),
                        (np.arange(9, dtype=np.int8), pa.int64())):
        want = pa.array(values.astype(typ.to_pandas_dtype()), type=typ)
        assert same(_from_numpy(values, typ), want), typ
    flags = rng.random(1003) > 0.5   # not a multiple of 8: the bitmap's last byte is partial
    assert _from_numpy(flags, pa.bool_()).equals(pa.array(flags, type=pa.bool_()))
    assert _from_numpy(flags[1::2], pa.bool_()).equals(pa.array(flags[1::2], type=pa.bool_()))


def test_strings_equal_pa_array_with_nulls_and_unicode():
    for values in (["WARM", "SERVING", "", "node:12"], ["°C", None, "ü", None, "x" * 300], [], [None]):
        assert _strings(values).equals(pa.array(values, type=pa.string())), values


def test_coded_column_is_its_strings_in_the_table_and_in_block_tables():
    names = ("OFF", "WARM", "SERVING")
    codes = np.array([2, 0, 1, 1, 2], dtype=np.int8)
    col = Coded(codes, names)
    assert col.tolist() == ["SERVING", "OFF", "WARM", "WARM", "SERVING"] and len(col) == 5
    table = BlockTable(("state",), lambda: iter([{"state": Coded(codes[:2], names)}, {"state": Coded(codes[2:], names)}]))
    assert table["state"] == col.tolist()


def test_empty_table_has_the_schema_and_no_rows():
    t = empty_table("jobs")
    assert t.num_rows == 0 and t.schema == to_table("jobs", {f.name: [] for f in t.schema}).schema


def test_repeat_each_is_np_repeat_for_a_scalar_count():
    from twin.model.columns import repeat_each

    t = (np.arange(5, 12) + 1) * 0.1
    for values, k in ((t, 480), (t, 1), ([2.5, -0.0, np.nan], 3), ([], 7), (np.arange(4, dtype=np.int32), 2)):
        got, want = repeat_each(values, k), np.repeat(values, k)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
