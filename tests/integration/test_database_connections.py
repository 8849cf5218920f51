"""Pooled database connections: one that died while it sat idle in the pool (a database
restart, a dropped idle connection) is found out and replaced before a transaction uses it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from models import db
from tests.fixtures import is_postgres


def _drop(dbapi_connection: Any) -> None:
    """Kill the connection the way the world does: PostgreSQL ends the backend (as a restart
    does); a SQLite file handle is simply closed."""
    if not is_postgres():
        dbapi_connection.close()
        return
    pid = dbapi_connection.info.backend_pid
    admin = create_engine(db.get_engine().url)
    with admin.connect() as conn:
        assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


def test_a_connection_that_died_idle_in_the_pool_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(db, "PING_IF_IDLE_S", 0.05)
    engine = db.get_engine()
    engine.dispose()  # the pool will hold exactly the connection this test kills
    pooled = engine.raw_connection()
    victim = pooled.dbapi_connection
    pooled.close()  # back into the pool, idle
    _drop(victim)
    time.sleep(0.1)
    with db.session_scope() as session:
        assert session.scalar(text("SELECT 1")) == 1
    engine.dispose()
