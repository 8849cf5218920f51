"""The bare Flask baseline for webhook ingest: one JSON POST endpoint doing one committed UPDATE
through SQLAlchemy (psycopg, a pooled engine), served by gunicorn with the service's settings.

``gunicorn bench.bare_web:app`` with ``BENCH_BARE_DATABASE_URL`` in the environment.
"""

from __future__ import annotations

import os
import random

from flask import Flask, jsonify, request
from sqlalchemy import create_engine, text

ROWS = 1000

app = Flask(__name__)
_url = os.environ.get("BENCH_BARE_DATABASE_URL", "sqlite:///bare.db")
if _url.startswith("postgresql://"):
    _url = _url.replace("postgresql://", "postgresql+psycopg://")
if _url.startswith("sqlite"):
    engine = create_engine(_url, connect_args={"check_same_thread": False, "timeout": 30})

    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _wal(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA busy_timeout=30000")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")
else:
    engine = create_engine(_url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def setup() -> None:
    with engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE IF NOT EXISTS bare_counter (id INTEGER PRIMARY KEY, n INTEGER)")
        )
        conn.execute(text("DELETE FROM bare_counter"))
        conn.execute(
            text("INSERT INTO bare_counter (id, n) VALUES (:id, 0)"),
            [{"id": i} for i in range(ROWS)],
        )


@app.post("/hook/<token>")
def hook(token: str):  # type: ignore[no-untyped-def]
    body = request.get_json(silent=True) or {}
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE bare_counter SET n = n + 1 WHERE id = :id"),
            {"id": random.randrange(ROWS)},
        )
    return jsonify({"status": "received", "keys": len(body)}), 202


if __name__ == "__main__":
    setup()
