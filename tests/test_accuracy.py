"""The twin against published measurements (benchmarks/accuracy.py, docs/validation.md).

Every row must sit inside its own tolerance; the out-of-sample headline numbers are pinned so
that a physics change that moves them has to update docs/validation.md too.
"""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("accuracy", ROOT / "benchmarks" / "accuracy.py")
accuracy = importlib.util.module_from_spec(spec)
sys.modules["accuracy"] = accuracy  # dataclasses look their module up
spec.loader.exec_module(accuracy)

RESULTS = accuracy.evaluate()


@pytest.mark.parametrize("result", RESULTS, ids=[r.row["id"] for r in RESULTS])
def test_each_row_is_inside_its_tolerance(result):
    r = result.row
    assert result.ok, (f"{r['id']}: twin {result.twin:.4g} vs measured {r['measured']:.4g} "
                       f"(x{result.ratio:.2f}, tolerance {r.get('tolerance', accuracy.DEFAULT_TOLERANCE)})")


def test_the_sets_are_kept_apart_and_large_enough():
    ids = [r.row["id"] for r in RESULTS]
    assert len(ids) == len(set(ids))
    oos = [r for r in RESULTS if r.row["set"] == "oos"]
    assert len(oos) >= 25
    assert all(r.row["set"] in ("fit", "oos") for r in RESULTS)
    assert all(r.row["id"].startswith("O" if r.row["set"] == "oos" else "F") for r in RESULTS)


def test_out_of_sample_headline_matches_docs_validation():
    med, worst, n = accuracy.summary(RESULTS, "oos")
    text = (ROOT / "docs" / "validation.md").read_text()
    assert f"median error {med:.1%}, worst {worst:.2f}x" in text
