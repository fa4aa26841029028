"""Age bands, the same in a record's view and in a camp's statistics.

Bands follow common humanitarian disaggregation (0-4, 5-11, 12-17, 18-59, 60+). A date of birth
gives an exact band; a birth year alone gives the band of the age reached this calendar year.
Statistics compute the band in SQL from the same cut-off dates, so both always agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from sqlalchemy import ColumnElement, case, literal

BANDS: Final = ("0-4", "5-11", "12-17", "18-59", "60+")
UNKNOWN: Final = "unknown"
_LOWER_BOUNDS: Final = (5, 12, 18, 60)


def _years_before(today: dt.date, years: int) -> dt.date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February: the birthday falls on 28 February that year
        return today.replace(year=today.year - years, day=28)


def cutoffs(today: dt.date) -> list[dt.date]:
    """Born after ``cutoffs[i]`` means younger than ``_LOWER_BOUNDS[i]``."""
    return [_years_before(today, years) for years in _LOWER_BOUNDS]


def age_band(date_of_birth: dt.date | None, birth_year: int | None, today: dt.date) -> str:
    if date_of_birth is not None:
        for band, cutoff in zip(BANDS, cutoffs(today), strict=False):
            if date_of_birth > cutoff:
                return band
        return BANDS[-1]
    if birth_year is not None:
        for band, years in zip(BANDS, _LOWER_BOUNDS, strict=False):
            if birth_year > today.year - years:
                return band
        return BANDS[-1]
    return UNKNOWN


def age_band_sql(date_of_birth: Any, birth_year: Any, today: dt.date) -> ColumnElement[str]:
    """:func:`age_band` as a SQL expression over the two columns."""
    by_date = case(
        *[
            (date_of_birth > cutoff, literal(band))
            for band, cutoff in zip(BANDS, cutoffs(today), strict=False)
        ],
        else_=literal(BANDS[-1]),
    )
    by_year = case(
        *[
            (birth_year > today.year - years, literal(band))
            for band, years in zip(BANDS, _LOWER_BOUNDS, strict=False)
        ],
        else_=literal(BANDS[-1]),
    )
    return case(
        (date_of_birth.is_not(None), by_date),
        (birth_year.is_not(None), by_year),
        else_=literal(UNKNOWN),
    )
