"""Request bodies for the write endpoints (FastAPI turns violations into 422s)."""

from __future__ import annotations

import datetime as dt

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

MAX_BOOKING_HORIZON = dt.timedelta(days=365)


class BookingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tutor_id: int = Field(gt=0, lt=2**63)
    student_id: int = Field(gt=0, lt=2**63)
    subject: str = Field(min_length=1, max_length=64)
    # Aware only: a naive timestamp's meaning depends on the client's clock zone.
    scheduled_at: AwareDatetime
    duration_minutes: int = Field(ge=15, le=240)

    @field_validator("scheduled_at")
    @classmethod
    def _in_bookable_future(cls, value: dt.datetime) -> dt.datetime:
        now = dt.datetime.now(dt.UTC)
        if not now < value <= now + MAX_BOOKING_HORIZON:
            raise ValueError("scheduled_at must be in the future and within 365 days")
        return value


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)
