"""FastAPI dependencies shared by the routes: settings, engine, sessions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session

from api.config import Settings
from api.db import IMMEDIATE
from api.sync.keys import Keyring


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_keyring(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    """A session for the request; services commit what they write."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


def get_write_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    """A session whose transactions take SQLite's write lock first (BEGIN IMMEDIATE)."""
    with Session(engine.execution_options(**IMMEDIATE), expire_on_commit=False) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionDep = Annotated[Session, Depends(get_session)]
KeyringDep = Annotated[Keyring, Depends(get_keyring)]
WriteSessionDep = Annotated[Session, Depends(get_write_session)]
