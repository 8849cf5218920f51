"""How every provider call is run: counted, then maybe broken by a queued fault.

Also the small request helpers the provider modules share (JSON bodies, auth headers), so each
provider module holds only its own API's shapes and rules.
"""

from __future__ import annotations

import hmac
import json
import math
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, get_args

from flask import Blueprint, Response, request

from sandbox.state import CallKind, Fault, FaultKind, SandboxState, current_state

ErrorResponder = Callable[[int, str], Response]
RateLimitResponder = Callable[[float | None], Response]
Work = Callable[[], Response]

FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
CALL_KINDS: tuple[str, ...] = get_args(CallKind)


@dataclass(frozen=True)
class ProviderSpec:
    """What the app needs to mount one fake provider and answer in its error format."""

    name: str
    url_prefix: str
    blueprint: Blueprint
    error: ErrorResponder
    rate_limited: RateLimitResponder
    extra_stats: Callable[[SandboxState], dict[str, Any]] | None = None
    # Mounted under /_sandbox/<name>, for controls only this provider has.
    control: Blueprint | None = None


class BodyError(ValueError):
    """The request body is not the JSON the endpoint needs."""


def guarded(spec: ProviderSpec, kind: CallKind, work: Work) -> Response:
    """Run one provider call, applying the next fault queued for this kind of call."""
    fault = current_state().begin_call(spec.name, kind)
    if fault is None:
        return work()
    return _suffer(spec, fault, work)


def _suffer(spec: ProviderSpec, fault: Fault, work: Work) -> Response:
    if fault.kind == "status":
        if fault.status == 429:
            return spec.rate_limited(fault.retry_after)
        return spec.error(fault.status, reason_phrase(fault.status))
    if fault.kind == "delay":
        time.sleep(fault.seconds)
        return work()
    if fault.kind == "reset_before":
        return _severed(None)
    done = work()
    if fault.kind == "drop_after_rent":
        return _severed(done)
    time.sleep(fault.seconds)  # delay_after_rent: the client gives up while we still "work"
    return done


def _severed(response: Response | None) -> Response:
    """A response that cuts the TCP connection: after half its body, or before any byte."""
    sock = request.environ.get("werkzeug.socket")
    body = response.get_data() if response is not None else b""

    def stream() -> Iterator[bytes]:
        if body:
            yield body[: max(1, len(body) // 2)]
        _shutdown(sock)
        # werkzeug treats ConnectionError as "client went away" and closes quietly.
        raise ConnectionResetError("sandbox fault: connection severed")

    if response is None:
        return Response(stream(), status=200)
    # Keep the full Content-Length: the client then knows the body it got is cut short.
    return Response(stream(), status=response.status_code, headers=response.headers)


def _shutdown(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        # The peer is already gone: the connection is broken, which is all we wanted.
        return


def parse_faults(raw: Any) -> list[Fault]:
    """Validate the control API's fault list; ValueError names the first bad entry."""
    if not isinstance(raw, list) or not raw:
        raise ValueError("faults must be a non-empty list")
    return [_parse_fault(index, item) for index, item in enumerate(raw)]


def _parse_fault(index: int, item: Any) -> Fault:
    where = f"faults[{index}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be an object")
    kind = item.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"{where}.kind must be one of {', '.join(FAULT_KINDS)}")
    on = item.get("on", "purchase")
    if on not in CALL_KINDS:
        raise ValueError(f"{where}.on must be one of {', '.join(CALL_KINDS)}")
    return Fault(
        kind=kind,
        on=on,
        status=_fault_status(where, kind, item),
        seconds=_fault_seconds(where, kind, item),
        retry_after=_fault_retry_after(where, item),
    )


def _fault_status(where: str, kind: str, item: dict[str, Any]) -> int:
    status = item.get("status", 500)
    if kind == "status" and not (is_int(status) and 400 <= status <= 599):
        raise ValueError(f"{where}.status must be an integer from 400 to 599")
    return int(status) if is_int(status) else 500


def _fault_seconds(where: str, kind: str, item: dict[str, Any]) -> float:
    seconds = item.get("seconds", 0.0)
    if kind in ("delay", "delay_after_rent") and not (is_number(seconds) and 0 <= seconds <= 600):
        raise ValueError(f"{where}.seconds must be a number from 0 to 600")
    return float(seconds) if is_number(seconds) else 0.0


def _fault_retry_after(where: str, item: dict[str, Any]) -> float | None:
    value = item.get("retry_after", 1.0)
    if value is None:
        return None
    if not (is_number(value) and 0 <= value <= 3600):
        raise ValueError(f"{where}.retry_after must be a number from 0 to 3600 or null")
    return float(value)


# -- shared request helpers --------------------------------------------------------------------


def is_int(value: Any) -> bool:
    # JSON types are strict: true is not a number.
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def seconds_text(value: float) -> str:
    # Real servers send whole seconds; fractions pass through so tests can wait 0.2 s.
    return f"{value:g}"


def read_json() -> Any:
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise BodyError("request body is empty")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyError("request body is not valid JSON") from exc


def read_json_object() -> dict[str, Any]:
    payload = read_json()
    if not isinstance(payload, dict):
        raise BodyError("request body must be a JSON object")
    return payload


def secret_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def basic_credentials() -> tuple[str, str] | None:
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return None
    return auth.username or "", auth.password or ""


def bearer_token() -> str | None:
    auth = request.authorization
    if auth is None or auth.type != "bearer":
        return None
    return auth.token


def json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, mimetype="application/json")
