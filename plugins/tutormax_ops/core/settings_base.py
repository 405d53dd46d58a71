"""What every settings section shares: the frozen, extra-forbidding base model, the field types
used across sections, and the targets (global, and per load profile)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Percent = Annotated[float, Field(ge=0, le=100)]
PositiveMs = Annotated[float, Field(gt=0)]
Cron = Annotated[str, Field(min_length=9, pattern=r"^(@\w+|(\S+\s+){4}\S+)$")]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Targets(Section):
    cache_hit_rate_percent: Percent = 80
    p95_api_ms: PositiveMs = 200
    p95_query_ms: PositiveMs = 100
    throughput_rps: Annotated[float, Field(ge=0)] = 200
    error_rate_percent: Percent = 1
