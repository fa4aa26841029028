"""Types shared by the API's request and response models.

Choice types carry their options as a JSON-schema ``enum`` (so clients and the fuzzer see them)
and are checked against the protocol's catalogue. Dates and times in filters are accepted over
any range and clamped to the years data can hold, so no filter value can overflow a database
type. Free text refuses control characters by a ``pattern``, so the OpenAPI description states
the rule the server enforces.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
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
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    StringConstraints,
    WithJsonSchema,
)

from api.pagination import CURSOR_PATTERN

_EARLIEST: Final = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
_LATEST: Final = dt.datetime(2100, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


_ISO_TIMESTAMP: Final = re.compile(r"\A\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_only(value: Any) -> Any:
    # pydantic would also take a number of seconds ("0.5"): only RFC 3339 text is a timestamp.
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or _ISO_TIMESTAMP.match(value) is None:
        raise ValueError("expected an RFC 3339 timestamp with a UTC offset")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_only)]
"""A point in time, written as RFC 3339 text with an offset (``2026-11-20T08:00:00Z``)."""
_ISO_DATE: Final = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z")


def _date_only(value: Any) -> Any:
    # pydantic would also take "0" (a Unix time): only YYYY-MM-DD is a day.
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or _ISO_DATE.match(value) is None:
        raise ValueError("expected a date as YYYY-MM-DD")
    return value


Day = Annotated[dt.date, BeforeValidator(_date_only)]
"""A calendar day, ``YYYY-MM-DD``."""


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

# The tablet's text rule (campsync_sync.fields, api.edge.has_controls) as a character class: C0
# and C1 controls, and the bidi embeddings, overrides and isolates. Explicit ranges, so that the
# Rust (pydantic-core), Python and ECMA regex dialects read it alike. Surrogates need no place in
# it (Rust's classes cannot name them): pydantic refuses a ``str`` holding one before any pattern.
_CONTROLS: Final = r"\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
# White space at either end of a line, spelled out for the same reason (Unicode White_Space).
_SPACES: Final = r"\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_CONTROLS: Final = rf"^[^{_CONTROLS}]*$"
"""Any text without control characters (a search, a username)."""
LINE: Final = rf"^[^{_SPACES}{_CONTROLS}](?:[^{_CONTROLS}]*[^{_SPACES}{_CONTROLS}])?$"
"""One line of text: no control characters, no white space at either end."""


def normal_text(value: str) -> str:
    """Text as the tablet stores it: runs of white space made one space, then NFC.

    NFC lengthens a few characters; text whose normal form would be longer than it was sent is
    kept as sent, so that the length limits checked on the input still hold for what is stored.
    """
    cleaned = unicodedata.normalize("NFC", " ".join(value.split()))
    return cleaned if len(cleaned) <= len(value) else value


NormalText: Final = AfterValidator(normal_text)
"""Put after the ``StringConstraints`` of a ``LINE`` field, so that limits apply as sent."""


SearchText = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_CONTROLS)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_CONTROLS)]
"""A login name as typed (compared exactly, so not normalised)."""


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
