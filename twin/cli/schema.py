"""`twin schema`: the scenario JSON Schema, generated from the pydantic specs (twin.spec.scenario).

Editors that speak JSON Schema (VS Code with the YAML extension, JetBrains IDEs, Neovim with
yaml-language-server) then complete and check scenario YAML as it is typed; docs/tools.md says
how to point them at it. The repository ships the output as scenarios/scenario.schema.json
(a test keeps it in step with the specs).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

SCHEMA_ID = "https://twin.invalid/scenario.schema.json"  # an identifier, never fetched


def scenario_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a scenario file, with each field's default."""
    from twin.spec.scenario import ScenarioSpec

    schema = ScenarioSpec.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "twin scenario", **{k: v for k, v in schema.items() if k != "title"},
            "description": "A twin scenario (scenarios/surge.yaml is commented line by line). "
                           "Catalogue names and physics are checked by `twin validate`, not here."}


def schema_text() -> str:
    return json.dumps(scenario_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema(out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Write the schema here (.json) "
                                                                           "instead of stdout")] = None,
           force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing -o schema that twin wrote")] = False,
           ) -> None:
    """Write the scenario JSON Schema, so editors autocomplete and check scenario YAML."""
    from twin.cli.common import fail
    from twin.errors import ToolError

    text = schema_text()
    if out is None:
        typer.echo(text, nl=False)
        return
    if out.suffix.lower() != ".json":
        fail(f"-o {out}: the schema is JSON; name it .json")
    from twin.telemetry.atomic import atomic_write

    try:  # an existing file only with --force, and only one starting as twin's schema does
        atomic_write(out, lambda fh: fh.write(text.encode()), force=force, fmt="json")
    except ToolError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("schema")(schema)
