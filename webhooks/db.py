"""One database session per request, closed when the request ends."""

from __future__ import annotations

from flask import g
from sqlalchemy.orm import Session

from models.db import session_factory


def db() -> Session:
    if "db" not in g:
        g.db = session_factory()()
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()
