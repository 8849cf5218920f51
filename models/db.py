"""Engines and sessions, one engine per process and database URL."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from models.config import get_settings

_engines: dict[tuple[int, str], Engine] = {}
_factories: dict[tuple[int, str], sessionmaker[Session]] = {}


def _sqlite_setup(engine: Engine) -> None:
    """WAL, a busy timeout, and BEGIN IMMEDIATE so that several processes share the file.

    pysqlite's deferred transactions fail at once with "database is locked" when a reader
    upgrades to a writer under contention; taking the write lock at BEGIN makes SQLite wait
    (busy_timeout) instead.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


# A connection used this recently is trusted as it is; one idle for longer is pinged before
# use and replaced if dead (a database restart, a dropped idle connection). SQLAlchemy's
# pool_pre_ping pings on every checkout: under load that was a round trip per transaction
# (6 % of the worker's CPU) to guard connections that were in use a few milliseconds ago.
PING_IF_IDLE_S = 1.0


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_IF_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            # The pool drops this connection and checks out a new one (SQLAlchemy's
            # documented pessimistic recipe).
            raise DisconnectionError("an idle connection failed its ping") from exc


def get_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: settings), created once per process.

    Keyed by pid too: a forked worker child must not reuse its parent's connections.
    """
    url = url or get_settings().database_url
    key = (os.getpid(), url)
    engine = _engines.get(key)
    if engine is None:
        engine = _create(url)
        _engines[key] = engine
    return engine


def _create(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _sqlite_setup(engine)
    else:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        # A pool as large as a worker's concurrency keeps its connections instead of opening
        # and closing overflow ones (a backend fork each on PostgreSQL). LIFO keeps reusing
        # the connections in use, so they stay fresh and the others idle out.
        size = get_settings().db_pool_size
        engine = create_engine(url, pool_size=size, max_overflow=size, pool_use_lifo=True)
    _ping_when_idle(engine)
    return engine


def dispose_engines() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _factories.clear()


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    """One sessionmaker per process and URL: each new one is a new Session subclass, and
    SQLAlchemy builds event dispatch for every class it sees (measurable per order)."""
    url = url or get_settings().database_url
    key = (os.getpid(), url)
    factory = _factories.get(key)
    if factory is None:
        factory = _factories[key] = sessionmaker(bind=get_engine(url), expire_on_commit=False)
    return factory


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
