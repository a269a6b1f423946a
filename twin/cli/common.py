"""What every `twin` command shares: the consoles, the one fail-and-exit helper, --set parsing,
loading a scenario or exiting, and the progress bar.

User mistakes print one line per problem on stderr and exit 2 (never a traceback); exit 1 is
reserved for bugs.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from twin.errors import SpecError

# markup=False: user strings (model names, paths, SQL, run names) may hold "[/bold]" or
# "[link=...]"; rich must print them, not parse them. Styles are applied with Text, never markup.
err = Console(stderr=True, highlight=False, markup=False)
out = Console(highlight=False, markup=False)


def console(stderr: bool = False) -> Console:
    """A console that prints user data literally (no rich markup, no highlighting)."""
    return Console(stderr=stderr, highlight=False, markup=False, emoji=False)


def styled(prefix: str, style: str, rest: str) -> Text:
    """`prefix` in `style`, then `rest` printed literally."""
    return Text.assemble((prefix, style), " ", rest)


def fail(lines: list[str] | str, code: int = 2) -> None:
    """Print user-facing problems and exit non-zero."""
    for line in [lines] if isinstance(lines, str) else lines:
        err.print(styled("error:", "bold red", str(line)), soft_wrap=True)
    raise typer.Exit(code)


def warn(line: str) -> None:
    err.print(styled("warning:", "bold yellow", line), soft_wrap=True)


SetOption = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Override a scenario field, e.g. --set fabric.oversubscription=8 (repeatable)")]


def parse_sets(sets: list[str] | None) -> dict:
    """['a.b=1', 'c=x'] -> {'a.b': 1, 'c': 'x'}; values are YAML scalars (yaml.safe_load)."""
    import yaml
    out = {}
    for item in sets or []:
        key, eq, value = item.partition("=")
        key = re.sub(r"\[(\d+)\]", r".\1", key)  # the error messages' pools[0].model spelling works too
        if not eq or not key.strip():
            fail(f"--set {item!r}: expected FIELD=VALUE, e.g. --set workload.surge.peak_multiplier=20")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            fail(f"--set {item!r}: value is not a YAML scalar")
    return out


CatalogueOption = Annotated[Optional[list[Path]], typer.Option(
    "--catalogue", help="Extra catalogue YAML applied after the scenario's own, e.g. a `twin calibrate` "
                        "overlay (repeatable)")]


def _with_catalogues(path: Path, overrides: dict, catalogues: list[Path] | None) -> dict:
    """Append --catalogue files (absolute) to the scenario's `catalogue:` list (after its own files,
    so an overlay wins); the resolved spec, and so the manifest's scenario hash, includes them."""
    if not catalogues:
        return overrides
    from twin.spec.scenario import parse_yaml
    missing = [p for p in catalogues if not p.is_file()]
    if missing:
        fail([f"--catalogue: no such file {str(p)!r}" for p in missing])
    try:
        doc = parse_yaml(path.read_text(), str(path))
    except (OSError, UnicodeDecodeError):
        return overrides  # load_scenario reports the unreadable file itself
    except SpecError as exc:
        fail(exc.problems)
    listed = doc.get("catalogue", []) if isinstance(doc.get("catalogue", []), list) else []
    own = [str((path.parent / p).resolve()) if not Path(str(p)).is_absolute() else str(p) for p in listed]
    return {**overrides, "catalogue": own + [str(p.resolve()) for p in catalogues]}


def load_scenario_or_exit(path: Path, seed: int | None = None, sets: list[str] | None = None,
                          catalogues: list[Path] | None = None):
    from twin.model.validate import load_scenario
    overrides = _with_catalogues(path, parse_sets(sets), catalogues)
    try:
        sc = load_scenario(path, seed=seed, overrides=overrides)
    except SpecError as exc:
        fail([f"{path}: {p}" if not p.startswith(str(path)) else p for p in exc.problems])
    for line in sc.warnings:  # design checks that do not stop the run (twin.checks)
        warn(f"{path}: {line}")
    return sc


def _with_progress(label: str, fn, quiet: bool):
    if quiet:
        return fn(None)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task(label, total=1.0, info="")

        def cb(frac: float, info: dict) -> None:
            text = f"t={info['t_s']:.0f} s" if "t_s" in info else str(info.get("msg", ""))
            bar.update(task, completed=frac, info=text)
        return fn(cb)


QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")]
ForceOption = Annotated[bool, typer.Option("--force", "-f", help="Replace what an earlier run of this command wrote")]


def format_help(choices: tuple[str, ...], what: str = "") -> str:
    """'--format' help listing its fixed choices (no short flag: -f is --force everywhere)."""
    return f"{what + ': ' if what else ''}one of {' | '.join(choices)}"


def check_choice(value: str | None, choices: tuple[str, ...], option: str = "--format") -> None:
    """One-line error (exit 2) unless `value` is one of `choices` (None passes: not given)."""
    if value is not None and value not in choices:
        from twin.errors import suggest
        fail(f"unknown {option} {value!r}{suggest(value, choices)}; choose from: {', '.join(choices)}")


def progress_fraction(cb):
    """Adapt a (fraction, label) progress callback to _with_progress's (fraction, info) one."""
    if cb is None:
        return None
    return lambda frac, label: cb(frac, {"msg": label})
