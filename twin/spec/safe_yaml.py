"""Loading user YAML (scenarios, catalogue files) without surprises.

``yaml.safe_load`` already refuses to build arbitrary objects; this adds what it lets through:
a size limit, alias bombs (a 1 MB file whose anchors expand to 10^9 values), duplicate keys
(where the last silently wins), nesting deep enough to overflow the parser's recursion, and
one-line error messages with the line and column. Every problem is raised as a SpecError.
"""
from __future__ import annotations

from typing import Any

import yaml

from twin.errors import SpecError

MAX_YAML_VALUES = 200_000  # values after alias expansion; the shipped scenarios have a few hundred


def load_yaml(text: str, origin: str, max_bytes: int) -> Any:
    """Parse `text` (from `origin`, for messages) with safe_load after the checks above."""
    if len(text.encode()) > max_bytes:
        raise SpecError([f"{origin}: larger than {max_bytes // 1000} kB; refusing to parse"])
    try:
        problems = _shape_problems(yaml.compose(text, Loader=yaml.SafeLoader), origin)
        if problems:
            raise SpecError(problems)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError([f"{origin}: malformed YAML{where}: {problem}"]) from None
    except RecursionError:
        raise SpecError([f"{origin}: YAML nested too deeply"]) from None


def _shape_problems(root: yaml.Node | None, origin: str) -> list[str]:
    """Problems safe_load would hide: duplicate keys (the last silently wins) and alias bombs.

    Walks the composed node graph once per distinct node (aliases share nodes), counting the
    values the document expands to.
    """
    problems: list[str] = []
    size: dict[int, int] = {}

    def walk(node: yaml.Node) -> int:
        if id(node) in size:
            return size[id(node)]
        size[id(node)] = 1  # a self-referencing alias counts once (pydantic rejects the cycle later)
        n = 1
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value in seen:
                    problems.append(f"{origin}: duplicate key {k.value!r} at line {k.start_mark.line + 1}")
                seen.add(k.value if isinstance(k, yaml.ScalarNode) else "")
                n += walk(k) + walk(v)
        elif isinstance(node, yaml.SequenceNode):
            n += sum(walk(v) for v in node.value)
        size[id(node)] = n
        return n

    if root is not None and walk(root) > MAX_YAML_VALUES:
        problems.append(f"{origin}: anchors and aliases expand to more than {MAX_YAML_VALUES:,} values; refusing to load")
    return problems
