"""``create_app``: the Flask application factory (gunicorn: ``webhooks:create_app()``)."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from models.config import Settings, get_settings
from webhooks import api, callbacks, metrics, operator, ops
from webhooks.db import close_db
from webhooks.errors import ApiError


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    settings: Settings = (test_config or {}).get("SETTINGS") or get_settings()
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=settings.max_body_bytes)
    app.config.update(test_config or {})
    app.json.sort_keys = False  # type: ignore[attr-defined]

    app.register_blueprint(api.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(callbacks.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(operator.bp)
    app.teardown_appcontext(close_db)
    _error_handlers(app)
    return app


def _error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        return exc.response()

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        code = exc.code or 500
        name = (exc.name or "error").lower().replace(" ", "_")
        return jsonify({"error": name, "message": exc.description}), code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        # Never a traceback to the caller; the log has it.
        app.logger.exception("unhandled error")
        return jsonify({"error": "internal_error", "message": "an internal error occurred"}), 500
