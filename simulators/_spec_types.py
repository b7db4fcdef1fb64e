"""Field types shared by every part of the scenario file (park, devices, dispatch windows)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.topics import ID_PATTERN

Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Hour = Annotated[float, Field(ge=0, le=24)]
Celsius = Annotated[float, Field(ge=-50, le=80, allow_inf_nan=False)]
ProfileShape = Literal["office", "workshop", "data_centre_it", "flat", "constant", "canteen"]
CarrierName = Literal["electricity", "gas", "heat", "cooling", "water", "steam", "none"]


class SpecModel(BaseModel):
    """Base of every scenario section: unknown keys are errors (typos surface), values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
