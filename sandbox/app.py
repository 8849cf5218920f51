"""The sandbox Flask app: the four fake providers plus the ``/_sandbox`` control API.

Adding a provider is one new module exposing ``PROVIDER`` and one line in ``PROVIDERS``.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from sandbox import close, cm, identitycall, signalwire
from sandbox.faults import (
    BodyError,
    ProviderSpec,
    is_int,
    is_number,
    json_response,
    parse_faults,
    read_json_object,
    reason_phrase,
)
from sandbox.state import SandboxCredentials, SandboxState, current_state

PROVIDERS: tuple[ProviderSpec, ...] = (
    close.PROVIDER,
    signalwire.PROVIDER,
    identitycall.PROVIDER,
    cm.PROVIDER,
)
MAX_BODY_BYTES = 1024 * 1024

control = Blueprint("sandbox_control", __name__)


def create_sandbox_app(credentials: SandboxCredentials | None = None) -> Flask:
    app = Flask("sandbox")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["sandbox"] = SandboxState(credentials or SandboxCredentials())
    app.extensions["sandbox_providers"] = {spec.name: spec for spec in PROVIDERS}
    for spec in PROVIDERS:
        app.register_blueprint(spec.blueprint, url_prefix=spec.url_prefix)
        if spec.control is not None:
            app.register_blueprint(spec.control, url_prefix=f"/_sandbox/{spec.name}")
    app.register_blueprint(control, url_prefix="/_sandbox")
    app.before_request(_provider_latency)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _providers() -> dict[str, ProviderSpec]:
    providers: dict[str, ProviderSpec] = current_app.extensions["sandbox_providers"]
    return providers


def _provider_latency() -> None:
    if request.blueprint in _providers():
        latency_ms = current_state().config_snapshot()["latency_ms"]
        if latency_ms > 0:
            time.sleep(latency_ms / 1000)


def _provider_for_path() -> ProviderSpec | None:
    # Routing errors carry no blueprint, so tell the provider by its URL prefix.
    for spec in _providers().values():
        if request.path.startswith(spec.url_prefix + "/"):
            return spec
    return None


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    spec = _provider_for_path()
    if spec is not None:
        return spec.error(status, reason_phrase(status))
    return json_response({"error": reason_phrase(status)}, status)


def _unexpected_error(exc: Exception) -> Response:
    # A sandbox bug must still answer in the provider's format, never an HTML stack trace.
    current_app.logger.exception("sandbox error on %s %s", request.method, request.path)
    spec = _provider_for_path()
    if spec is not None:
        return spec.error(500, reason_phrase(500))
    return json_response({"error": reason_phrase(500)}, 500)


# -- control API ---------------------------------------------------------------------------------


def _bad_request(message: str) -> Response:
    return json_response({"error": message}, 400)


@control.post("/faults")
def queue_faults() -> Response:
    try:
        payload = read_json_object()
        faults = parse_faults(payload.get("faults"))
    except (BodyError, ValueError) as exc:
        return _bad_request(str(exc))
    provider = payload.get("provider")
    if provider not in _providers():
        return _bad_request(f"provider must be one of: {', '.join(_providers())}")
    pending = current_state().queue_faults(provider, faults)
    return json_response({"provider": provider, "queued": len(faults), "pending": pending}, 200)


@control.get("/config")
def show_config() -> Response:
    return json_response(current_state().config_snapshot(), 200)


@control.post("/config")
def change_config() -> Response:
    try:
        changes = _validated_config(read_json_object())
    except (BodyError, ValueError) as exc:
        return _bad_request(str(exc))
    return json_response(current_state().configure(changes), 200)


def _validated_config(payload: dict[str, Any]) -> dict[str, Any]:
    checks = {
        "latency_ms": lambda v: is_number(v) and 0 <= v <= 60_000,
        "transient_rate": lambda v: is_number(v) and 0 <= v <= 1,
        "seed": lambda v: v is None or is_int(v),
        "cm_delay_s": lambda v: is_number(v) and 0 <= v <= 3600,
        "close_empty_201": lambda v: isinstance(v, bool),
        "cm_sparse_201": lambda v: isinstance(v, bool),
    }
    for key, value in payload.items():
        if key not in checks:
            raise ValueError(f"unknown setting {key!r}; known: {', '.join(checks)}")
        if not checks[key](value):
            raise ValueError(f"invalid value for {key!r}")
    return payload


@control.get("/stats")
def stats() -> Response:
    state = current_state()
    body: dict[str, Any] = {}
    for spec in _providers().values():
        body[spec.name] = state.book_stats(spec.name)
        if spec.extra_stats is not None:
            body[spec.name].update(spec.extra_stats(state))
    return json_response(body, 200)


@control.post("/reset")
def reset() -> Response:
    current_state().reset()
    return json_response({"reset": True}, 200)
