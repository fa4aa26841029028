"""Types shared by the API's request and response models.

Choice types carry their options as a JSON-schema ``enum`` (so clients and the fuzzer see them)
and are checked against the protocol's catalogue. Dates and times in filters are accepted over
any range and clamped to the years data can hold, so no filter value can overflow a database
type.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final

from campsync_sync.fields import (
    NEEDS,
    PERSON_STATUSES,
    RECORD_STATUSES,
    REFERRAL_CATEGORIES,
    REFERRAL_STATUSES,
    REFERRAL_URGENCIES,
    SERVICES,
    SEXES,
    VULNERABILITIES,
)
from pydantic import AfterValidator, StringConstraints, WithJsonSchema

from api.pagination import CURSOR_PATTERN

_EARLIEST: Final = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
_LATEST: Final = dt.datetime(2100, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


def one_of(options: tuple[str, ...]) -> Any:
    def check(value: str) -> str:
        if value not in options:
            raise ValueError("not one of the allowed values")
        return value

    return AfterValidator(check)


def enum_schema(options: tuple[str, ...]) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": list(options)})


Need = Annotated[str, one_of(NEEDS), enum_schema(NEEDS)]
Vulnerability = Annotated[str, one_of(VULNERABILITIES), enum_schema(VULNERABILITIES)]
HOUSEHOLD_STATUSES: Final = (*RECORD_STATUSES, "deleted")
HouseholdStatus = Annotated[str, one_of(HOUSEHOLD_STATUSES), enum_schema(HOUSEHOLD_STATUSES)]
PERSON_LIST_STATUSES: Final = (*PERSON_STATUSES, "deleted")
PersonStatus = Annotated[str, one_of(PERSON_LIST_STATUSES), enum_schema(PERSON_LIST_STATUSES)]
Sex = Annotated[str, one_of(SEXES), enum_schema(SEXES)]
ServiceName = Annotated[str, one_of(SERVICES), enum_schema(SERVICES)]
ReferralCategory = Annotated[str, one_of(REFERRAL_CATEGORIES), enum_schema(REFERRAL_CATEGORIES)]
ReferralUrgency = Annotated[str, one_of(REFERRAL_URGENCIES), enum_schema(REFERRAL_URGENCIES)]
ReferralStatus = Annotated[str, one_of(REFERRAL_STATUSES), enum_schema(REFERRAL_STATUSES)]
Cursor = Annotated[str, StringConstraints(pattern=CURSOR_PATTERN)]
CampFilter = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")]
SearchText = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def clamp_datetime(value: dt.datetime | None) -> dt.datetime | None:
    """A filter bound in UTC, within the years any stored timestamp can have."""
    if value is None:
        return None
    if value.year < _EARLIEST.year + 1:
        return _EARLIEST
    if value.year > _LATEST.year - 1:
        return _LATEST
    return value.astimezone(dt.UTC)


def clamp_date(value: dt.date | None) -> dt.date | None:
    if value is None:
        return None
    return min(max(value, _EARLIEST.date()), _LATEST.date())
