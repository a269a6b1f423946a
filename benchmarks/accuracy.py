"""The twin against published serving measurements: `python benchmarks/accuracy.py [--markdown]`.

Every row of benchmarks/measurements.yaml (setup, measured value, source) is recomputed with the
same functions `twin predict` uses (twin.tools.predict, twin.model.*). The fitting set (rows that
set an efficiency factor in the catalogue) and the out-of-sample set are reported apart, each
with its median absolute error and its worst ratio (max(twin/measured, measured/twin)).
tests/test_accuracy.py asserts each row's tolerance and the headline numbers.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twin.model.coldstart import start_phases  # noqa: E402
from twin.model.kernels import select_kernel  # noqa: E402
from twin.model.offload import cpu_decode_token_s  # noqa: E402
from twin.model.replica import embedding_bytes  # noqa: E402
from twin.spec.catalogue import Catalogue, load_catalogue  # noqa: E402
from twin.tools.predict import (  # noqa: E402
    concurrency_table,
    decode_interval_s,
    prefill_tokens_per_s,
    resolve_box,
)

ROWS_FILE = Path(__file__).with_name("measurements.yaml")
DEFAULT_TOLERANCE = 0.5      # within 1.5x either way unless the row says otherwise
BOOT_NODE = "rtx5090-server"  # host for the start-time rows (NVMe 6 GB/s, PCIe H2D 25 GB/s)


@dataclass(frozen=True)
class Result:
    row: dict
    twin: float

    @property
    def ratio(self) -> float:
        return self.twin / self.row["measured"]

    @property
    def worst(self) -> float:
        return max(self.ratio, 1.0 / self.ratio)

    @property
    def ok(self) -> bool:
        return self.worst <= 1.0 + self.row.get("tolerance", DEFAULT_TOLERANCE) + 1e-12


def load_rows(path: Path = ROWS_FILE) -> list[dict]:
    return yaml.safe_load(path.read_text())["rows"]


def _box(cat: Catalogue, r: dict, kernel: str | None = None):
    """The row's box; a `build` (engine build era of the measurement) swaps in that era's kernel row."""
    node = r.get("node", "ws-4x4090-tr" if r.get("gpus", 1) > 1 else "rtx5090-server")
    box = resolve_box(cat, node, r["model"], r["quant"], r["engine"], gpu=r.get("gpu"), gpu_count=r.get("gpus"),
                      tp=r.get("tp", 1), pp=r.get("pp", 1), kernel=kernel or r.get("kernel"),
                      max_batch=r.get("max_batch"))
    if r.get("build") is None:
        return box
    return replace(box, kernel=select_kernel(cat, r["engine"], r["quant"], box.gpu, kernel or r.get("kernel"),
                                             build=r["build"]))


def twin_value(cat: Catalogue, r: dict) -> float:
    """What the twin predicts for row `r` (see the metric list in measurements.yaml)."""
    m = r["metric"]
    if m in ("first_boot", "warm_restart"):
        # a row that names its GPU and quantisation pays that kernel's first-use JIT on a first boot
        jit = (select_kernel(cat, r["engine"], r["quant"], cat.gpu(r["gpu"])).first_use_jit_s
               if "quant" in r else 0.0)
        return start_phases(cat.engine(r["engine"]), cat.node(BOOT_NODE), r["weights_gb"], r["workers"],
                            r["layers"], warm=m == "warm_restart", first_use_jit_s=jit).total_s
    if m == "cpu_decode":
        node = cat.node(BOOT_NODE).model_copy(update={"cpu": r["cpu"], "dimms": r["dimms"],
                                                      "dimm_mt_s": r["dimm_mt_s"]})
        model, quant = cat.model(r["model"]), cat.quant(r["quant"])
        weights = model.total_params_b * 1e9 * quant.bytes_per_param - embedding_bytes(model, quant)
        return 1.0 / cpu_decode_token_s(weights, cat.cpu(r["cpu"]), node)
    if m == "kernel_ratio":
        a, b = (concurrency_table(_box(cat, r, k), [r["clients"]], r["prompt"], r["output"])[0].aggregate_tok_s
                for k in r["kernels"])
        return a / b
    box = _box(cat, r)
    if m == "decode":
        batch = r.get("batch", 1)
        return batch / decode_interval_s(box, batch, r.get("context", 256))
    if m == "cap_ratio":
        ctx = r.get("context", 256)
        return decode_interval_s(box, 1, ctx) / decode_interval_s(box, 1, ctx, clock=r["clock"])
    if m == "prefill":
        return prefill_tokens_per_s(box, r["prompt"], r.get("cached", 0))
    if m in ("wave_ttft", "wave_aggregate"):
        # all `clients` requests arrive together: their prompts are prefilled first (chunked, in
        # arrival order), then they decode together for up to `output` steps
        n, p, o = r["clients"], r["prompt"], r["output"]
        prefill_s = n * p / prefill_tokens_per_s(box, n * p)
        if m == "wave_ttft":
            return prefill_s
        return r["generated"] / (prefill_s + o * decode_interval_s(box, n, p + o / 2))
    row = concurrency_table(box, [r["clients"]], r["prompt"], r["output"])[0]
    return {"aggregate": row.aggregate_tok_s, "stream": row.stream_tok_s, "ttft": row.ttft_s}[m]


def evaluate(cat: Catalogue | None = None, rows: list[dict] | None = None) -> list[Result]:
    cat = cat or load_catalogue()
    return [Result(r, twin_value(cat, r)) for r in (rows or load_rows())]


def summary(results: list[Result], which: str) -> tuple[float, float, int]:
    """(median |twin/measured - 1|, worst max(ratio, 1/ratio), rows) of one set."""
    sel = [x for x in results if x.row["set"] == which]
    return statistics.median(abs(x.ratio - 1) for x in sel), max(x.worst for x in sel), len(sel)


def _setup(r: dict) -> str:
    if r["metric"] in ("first_boot", "warm_restart"):
        on = f" {r['gpu']} {r['quant']}" if "quant" in r else ""
        return f"{r['engine']} {r['metric'].replace('_', ' ')}{on}, {r['weights_gb']:g} GB, {r['layers']} layers"
    if r["metric"] == "cpu_decode":
        return f"CPU only {r['cpu']}, {r['model']} {r['quant']}"
    gpus = r.get("gpus", 1)
    gpu = r.get("gpu") or {"ws-4x4090-tr": "rtx-4090", "dual-3090-desktop": "rtx-3090"}.get(r.get("node", ""), "?")
    par = "".join(f" {k}{r[k]}" for k in ("tp", "pp") if r.get(k, 1) > 1)
    load = {"decode": f"ctx {r.get('context', 256)}" + (f" x{r['batch']}" if r.get("batch") else ""),
            "prefill": f"pp{r.get('prompt')}" + (f"@{r['cached']}" if r.get("cached") else ""),
            "cap_ratio": f"SM clock {r.get('clock')}"}.get(r["metric"], f"C={r.get('clients')} {r.get('prompt')}/{r.get('output')}")
    engine = f"{r['engine']}@{r['build']}" if r.get("build") else r["engine"]
    return f"{gpus}x{gpu}{par} {r['model']} {r['quant']} {engine}, {r['metric']} {load}"


def table(results: list[Result], markdown: bool) -> str:
    lines = []
    if markdown:
        lines += ["| id | setup | measured | twin | ratio | tol | source |", "|---|---|---|---|---|---|---|"]
    for x in results:
        r = x.row
        flag = "" if x.ok else " FAIL"
        if markdown:
            why = f" **Why off:** {r['why']}" if "why" in r else ""
            lines.append(f"| {r['id']} | {_setup(r)} | {r['measured']:,.4g} | {x.twin:,.4g} | {x.ratio:.2f}{flag} "
                         f"| {r.get('tolerance', DEFAULT_TOLERANCE):g} | {r['source']}{why} |")
        else:
            lines.append(f"{r['id']:>4} {_setup(r)[:78]:<78} {r['measured']:>10,.4g} {x.twin:>10,.4g} "
                         f"{x.ratio:>6.2f}{flag}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true", help="print the docs/validation.md tables")
    args = ap.parse_args(argv)
    results = evaluate()
    for which, title in (("oos", "out of sample (never used to fit)"), ("fit", "fitting set (sets catalogue factors)")):
        sel = [x for x in results if x.row["set"] == which]
        med, worst, n = summary(results, which)
        print(f"\n## {title}: {n} rows, median error {med:.1%}, worst {worst:.2f}x\n")
        print(table(sel, args.markdown))
    failed = [x.row["id"] for x in results if not x.ok]
    print(f"\nrows outside their tolerance: {', '.join(failed) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
