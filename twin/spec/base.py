"""The base of every catalogue spec: frozen, unknown keys rejected, and the shared numeric types."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Pos = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]
Frac = Annotated[float, Field(ge=0, le=1)]
Arch = Literal["ampere", "ada", "hopper", "blackwell"]  # GPU architecture: keys the kernel table


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
