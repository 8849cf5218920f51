"""Health, readiness and the machine-readable API description."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from webhooks.db import db
from webhooks.openapi import spec

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    ready = all(c == "ok" for c in checks.values())
    return jsonify(
        {"status": "ready" if ready else "not_ready", "checks": checks}
    ), 200 if ready else 503


@bp.get("/v1/openapi.json")
def openapi() -> Response:
    return jsonify(spec())


def _database_ok() -> str:
    try:
        db().execute(text("SELECT 1"))
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def _broker_ok() -> str:
    from worker.app import app as celery_app

    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"
