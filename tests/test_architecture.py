"""The package layout is the architecture (docs/architecture.md); this test keeps it so.

It walks the AST of every module under twin/ and scenes/, function-level imports included, and
fails on an import cycle, on an arrow against the layer order, on a heavy library imported
outside its one home, and on a module over 450 lines.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 450
# Modules allowed over MAX_LINES while being split: empty since twin/sim was split (issue 13); keep it so.
NOT_YET_SPLIT: set[str] = set()

# Layer of each package: a module may import only from its own layer or below.
LAYER = {"twin.errors": 0, "twin.spec": 1, "twin.model": 2, "twin.sim": 3, "twin.telemetry": 4,
         "twin.tools": 5, "scenes": 5, "twin.cli": 6, "twin": 7, "twin.__main__": 7}
# The part of telemetry that readers use must not depend on the engine: only telemetry.write
# (the one module that turns a SimResult into a run directory) may import twin.sim.
READ_SIDE = {"twin.telemetry.schema", "twin.telemetry.read", "twin.telemetry.sql", "twin.telemetry.atomic",
             "twin.telemetry.outputs"}
# scenes/ builds the stage from a finished run: it reads runs, never the engine or the physics.
SCENES_MAY_IMPORT = READ_SIDE | {"twin.errors"}
# One home per heavy library (docs/architecture.md: "one library per module").
HOMES = {
    "simpy": ("twin.sim.",), "networkx": ("twin.model.fabric",), "pxr": ("scenes.",),
    "duckdb": ("twin.telemetry.sql",), "matplotlib": ("twin.tools.plots",),
    "dask": ("twin.tools.sweep",), "distributed": ("twin.tools.sweep",),
    # compiled kernels with a numpy fallback (tests/test_kernels.py, tests/test_plant_kernel.py,
    # tests/test_plant_step.py, tests/test_serving_kernel.py, tests/test_sampler_kernel.py,
    # tests/test_fabric_kernel.py, tests/test_lifecycle_kernel.py), and the one place that sets
    # numba up before the first kernel call (twin.sim.compiled.prepare_numba)
    "numba": ("twin.sim.compiled", "twin.sim.router", "twin.sim.plant_kernel", "twin.sim.plant_step_kernel", "twin.sim.serving_kernel",
              "twin.sim.sampler_kernel", "twin.model.fabric_kernel", "twin.sim.lifecycle_kernel"),
}


def _modules() -> dict[str, Path]:
    mods = {}
    for base in ("twin", "scenes"):
        for path in sorted((ROOT / base).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:  # `from twin.model import power` imports the module twin.model.power
                sub = f"{node.module}.{a.name}"
                found.append((sub if sub in MODULES else node.module, node.lineno))
    return found


def _layer(mod: str) -> int:
    best = max((k for k in LAYER if mod == k or mod.startswith(k + ".")), key=len)
    return LAYER[best]


def _internal(name: str) -> str | None:
    """The project module `name` refers to (itself or its nearest package), else None."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


GRAPH = {m: sorted({t for n, _ in _imports(p) if (t := _internal(n)) and t != m}) for m, p in MODULES.items()}


def test_the_layers_exist():
    for pkg in ("twin.spec", "twin.model", "twin.sim", "twin.telemetry", "twin.tools", "twin.cli"):
        assert pkg in MODULES, f"{pkg} package is missing"


def test_no_import_cycles():
    """Depth-first search over the module graph; a back edge is a cycle (named in the failure)."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in GRAPH[m]:
            if t == "twin" or (m.startswith(t + ".")):  # a module and its own parent package
                continue
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_imports_follow_the_layer_order():
    wrong = []
    for m, path in MODULES.items():
        for name, line in _imports(path):
            t = _internal(name)
            if t is None or t == "twin" or m.startswith(t + "."):
                continue
            rel = f"{path.relative_to(ROOT)}:{line}"
            if m.startswith("scenes") and t.startswith("twin") and t not in SCENES_MAY_IMPORT:
                wrong.append(f"{rel}: scenes/ may read runs only, not {t}")
            elif m in READ_SIDE and t.startswith("twin.sim"):
                wrong.append(f"{rel}: {m} is on the read side of the telemetry seam, not the engine's")
            elif _layer(t) > _layer(m):
                wrong.append(f"{rel}: {m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})")
    assert not wrong, "\n".join(wrong)


def test_predict_never_imports_the_engine():
    assert not [t for t in GRAPH["twin.tools.predict"] if t.startswith("twin.sim")]


@pytest.mark.parametrize("lib", sorted(HOMES))
def test_heavy_library_lives_in_its_one_home(lib):
    outside = [f"{MODULES[m].relative_to(ROOT)}:{line}" for m, p in MODULES.items()
               for name, line in _imports(p)
               if name.split(".")[0] == lib and not m.startswith(HOMES[lib])]
    assert not outside, f"{lib} imported outside {HOMES[lib]}: {outside}"


def test_modules_are_small():
    long = {str(p.relative_to(ROOT)): n for p in MODULES.values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES
            and str(p.relative_to(ROOT)) not in NOT_YET_SPLIT}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
