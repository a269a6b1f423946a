"""The base of every catalogue spec: frozen, unknown keys rejected, no infinities, booleans that
are not numbers, and the shared numeric types."""
from __future__ import annotations

from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Pos = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]
Frac = Annotated[float, Field(ge=0, le=1)]
Arch = Literal["ampere", "ada", "hopper", "blackwell"]  # GPU architecture: keys the kernel table


def _admits(annotation: Any, kind: type) -> bool:
    """Whether `annotation` (Annotated, Optional, unions, Literal, list items, dict values) admits `kind`."""
    if annotation is kind:
        return True
    if get_origin(annotation) is Literal:
        return any(type(a) is kind for a in get_args(annotation))
    if get_origin(annotation) is dict:  # the values: booleans only ever sit there (YAML keys are names)
        return _admits(get_args(annotation)[1], kind)
    return any(_admits(a, kind) for a in get_args(annotation) if isinstance(a, type) or get_origin(a) is not None)


def _holds_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_bool(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_bool(v) for v in value.values())
    return False


class NumbersAreNumbers(BaseModel):
    """`nodes: true` is not one node: pydantic's lax mode reads YAML booleans as 1 and 0 (and
    numeric strings such as "1e3", which PyYAML leaves unparsed, as numbers: those stay)."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        f = cls.model_fields.get(info.field_name or "")
        # fields that also take text (a fault target: node id or 'spine:0') keep pydantic's message
        if f is not None and _holds_bool(value) and not _admits(f.annotation, bool) and not _admits(f.annotation, str) \
                and (_admits(f.annotation, int) or _admits(f.annotation, float)):
            raise ValueError(f"expected a number, not the boolean {str(value).lower()!s}"
                             if isinstance(value, bool) else "expected numbers, not booleans (true/false)")
        return value


class Spec(NumbersAreNumbers):
    # allow_inf_nan=False: `.inf`/`.nan` are valid YAML floats but no catalogue figure is infinite,
    # and a NaN would flow through the physics into manifest.json as an invalid JSON token
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


Section = Spec  # a scenario section follows the same rules as a catalogue spec
