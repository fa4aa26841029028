"""Helpers for asserting on the whole database: row counts of every table."""

from __future__ import annotations

from sqlalchemy import Engine, func, select
from sqlmodel import SQLModel


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in SQLModel.metadata.sorted_tables
        }
