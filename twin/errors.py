"""User-facing errors: every problem with its field path, all at once."""
from __future__ import annotations

import difflib
import re
from typing import Iterable

from pydantic import ValidationError


class SpecError(ValueError):
    """Invalid scenario or catalogue input. `problems` holds one line per problem."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def loc_to_path(loc: tuple) -> str:
    """('racks', 3, 'nodes') -> 'racks[3].nodes'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).isidentifier():  # a user's odd key ('a b', '-', '') stays readable
            out += f"[{str(part)!r}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' when a close match exists, else ''."""
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def format_validation_error(exc: ValidationError, fields_at: dict[str, list[str]] | None = None) -> list[str]:
    """Turn pydantic's errors into 'path: message' lines, with did-you-mean for unknown keys.

    `fields_at` maps a dotted parent path (no indices) to its allowed keys, for suggestions.
    """
    lines: list[str] = []
    merged: dict[str, int] = {}  # path -> index in lines, for union members of one field
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        union = bool(loc) and err["type"] != "extra_forbidden" and _is_union_tag(loc[-1])
        if union:  # 'target.int' / 'target.str': one field that accepts several types
            loc = loc[:-1]
        path = loc_to_path(loc)
        msg = err["msg"]
        if err["type"] == "literal_error":
            choices = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
            msg = f"{msg}{suggest(str(err.get('input')), choices)}"
        if union and path in merged:
            i = merged[path]
            lines[i] += f"; or {msg[0].lower()}{msg[1:]}"
            continue
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            parent = ".".join(str(p) for p in err["loc"][:-1] if not isinstance(p, int))
            hint = suggest(key, (fields_at or {}).get(parent, []))
            msg = f"unknown field{hint}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if union:
            merged[path] = len(lines)
        lines.append(f"{path}: {msg}" if path else msg)
    return lines


def _is_union_tag(part: object) -> bool:
    """pydantic names union members in `loc` ('int', 'str', 'list[int]', 'function-after[...]').

    Field names here are snake_case identifiers, so a tag is one of the scalar type names or
    a schema name with brackets.
    """
    return isinstance(part, str) and (part in {"int", "str", "float", "bool", "none"}
                                      or re.fullmatch(r"[a-z-]+\[.*\]", part) is not None)


class ToolError(ValueError):
    """A problem with the user's input to a run tool (bad path, SQL, name...).

    The message is one line and names the problem; the CLI prints it without a traceback.
    """


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> ToolError:
    """A ToolError for an unknown recipe/plot/table name, with a did-you-mean hint."""
    choices = sorted(choices)
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    hint = f" (did you mean {match[0]!r}?)" if match else ""
    return ToolError(f"unknown {kind} {name!r}{hint}; choose from: {', '.join(choices)}")
