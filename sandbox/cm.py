"""Fake CM.com voice number requests: create, read, list, cancel; callbacks (seed 004).

Field names, the request object, status words and error shapes follow the seeds README section
"CM.com: what the documents leave out". Magic area codes: 201 assigns at once (201 Accepted);
otherwise the request stays Pending for ``cm_delay_s`` and then becomes, by area code: 666
Rejected, 777 (quantity > 1) Accepted with half the ranges, 333 "OnHold" (a status word the
documents never list), anything else Accepted. Every status change is POSTed to ``callbackUrl``.
"""

from __future__ import annotations

import copy
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from flask import Blueprint, Response, request

from sandbox.faults import (
    BodyError,
    ProviderSpec,
    guarded,
    is_int,
    json_response,
    read_json_object,
    seconds_text,
    secret_matches,
)
from sandbox.state import SandboxState, current_state, iso, utc_now

NAME = "cm"
URL_PREFIX = "/cm/voice-phonenumberrequestapi/v1"
TOKEN_HEADER = "X-CM-PRODUCTTOKEN"
NUMBER_TYPES = ("LOCAL", "NATIONAL", "TOLLFREE", "MOBILE")
FINAL_STATUSES = ("Accepted", "Rejected", "Cancelled")
MAX_QUANTITY = 1000
MAX_TEXT = 1000
AREA_CODE = re.compile(r"^\d{1,6}$")
TOLL_FREE_PREFIX = "833"
CALLBACK_TIMEOUT_S = 5.0

IMMEDIATE_AREA_CODE = "201"
REJECTED_AREA_CODE = "666"
PARTIAL_AREA_CODE = "777"
ON_HOLD_AREA_CODE = "333"

bp = Blueprint(NAME, __name__)
control_bp = Blueprint("cm_control", __name__)


@dataclass
class CmBook:
    """Number requests, callback delivery attempts and the timers that settle requests."""

    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    timers: dict[str, threading.Timer] = field(default_factory=dict)

    def close(self) -> None:
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()


def _book(state: SandboxState) -> CmBook:
    return state.extension(NAME, CmBook)


def _error(status: int, message: str) -> Response:
    return json_response({"message": message}, status)


def _field_errors(errors: dict[str, list[str]], message: str | None = None) -> Response:
    body = {"message": message or "One or more validation errors occurred.", "errors": errors}
    return json_response(body, 400)


def _rate_limited(retry_after: float | None) -> Response:
    headers = {} if retry_after is None else {"Retry-After": seconds_text(retry_after)}
    return json_response({"message": "Too Many Requests"}, 429, headers)


def _refused(account: str) -> Response | None:
    creds = current_state().credentials
    if not secret_matches(request.headers.get(TOKEN_HEADER), creds.cm_product_token):
        return _error(401, "Unauthorized")
    if account.lower() != creds.cm_account_id.lower():
        return _error(404, "Account not found")
    return None


# -- create --------------------------------------------------------------------------------------


@bp.post("/<account>/numberrequests")
def create(account: str) -> Response:
    return _refused(account) or guarded(PROVIDER, "purchase", _create)


def _create() -> Response:
    try:
        # CM matches JSON names case-insensitively, so read them that way.
        payload = {key.lower(): value for key, value in read_json_object().items()}
    except BodyError as exc:
        return _field_errors({"body": [str(exc)]})
    errors = _validate(payload)
    if errors:
        return _field_errors(errors)
    state = current_state()
    created = _new_request(payload, state.credentials.cm_account_id)
    with state.lock:
        _book(state).requests[created["id"]] = created
        if created["areaCode"] == IMMEDIATE_AREA_CODE:
            _accept(state, created, created["quantity"])
        snapshot = copy.deepcopy(created)
    if snapshot["status"] == "Pending":
        _schedule(state, snapshot["id"])
    return json_response(_as_created(snapshot, state), 201)


def _as_created(request_object: dict[str, Any], state: SandboxState) -> dict[str, Any]:
    if not state.config_snapshot()["cm_sparse_201"]:
        return request_object
    # CM's page: "id, start, validFrom and validTo fields will be null" in the create answer.
    return {**request_object, "id": None, "start": None, "validFrom": None, "validTo": None}


def _new_request(payload: dict[str, Any], account_id: str) -> dict[str, Any]:
    now = iso(utc_now())
    return {
        "id": str(uuid.uuid4()),
        "accountId": account_id,
        "status": "Pending",
        "reason": None,
        "companyProfileId": payload["companyprofileid"],
        "quantity": payload["quantity"],
        "rangeSize": payload.get("rangesize"),
        "numberType": payload["numbertype"],
        "areaCode": payload.get("areacode") or None,
        "city": payload.get("city"),
        "region": payload.get("region"),
        "comment": payload.get("comment"),
        "callbackUrl": payload.get("callbackurl"),
        "start": None,
        "phoneNumbers": [],
        "validFrom": None,
        "validTo": None,
        "created": now,
        "updated": now,
    }


# -- validation ----------------------------------------------------------------------------------


def _validate(payload: dict[str, Any]) -> dict[str, list[str]]:
    checks = {
        "companyProfileId": _check_profile(payload.get("companyprofileid")),
        "quantity": _check_quantity(payload.get("quantity")),
        "rangeSize": _check_range(payload.get("quantity"), payload.get("rangesize")),
        "numberType": _check_number_type(payload.get("numbertype")),
        "areaCode": _check_area_code(payload.get("areacode"), payload.get("city")),
        "city": _check_text("city", payload.get("city")),
        "region": _check_text("region", payload.get("region")),
        "comment": _check_text("comment", payload.get("comment")),
        "callbackUrl": _check_url(payload.get("callbackurl")),
    }
    return {name: [reason] for name, reason in checks.items() if reason is not None}


def _check_profile(value: Any) -> str | None:
    if value is None:
        return "The companyProfileId field is required."
    if not isinstance(value, str) or not _is_uuid(value):
        return "The companyProfileId field must be a uuid."
    return None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _check_quantity(value: Any) -> str | None:
    if value is None:
        return "The quantity field is required."
    if not is_int(value) or not 1 <= value <= MAX_QUANTITY:
        return f"The quantity field must be an integer from 1 to {MAX_QUANTITY}."
    return None


def _check_range(quantity: Any, size: Any) -> str | None:
    if size is None:
        return None
    if not is_int(size) or size < 1:
        return "The rangeSize field must be a positive integer or null."
    if is_int(quantity) and quantity * size > MAX_QUANTITY:
        return f"quantity x rangeSize must not exceed {MAX_QUANTITY}."
    return None


def _check_number_type(value: Any) -> str | None:
    if value is None:
        return "The numberType field is required."
    if value not in NUMBER_TYPES:
        return f"The numberType field must be one of {', '.join(NUMBER_TYPES)}."
    return None


def _check_area_code(value: Any, city: Any) -> str | None:
    if value is None or value == "":
        return "The areaCode field is required when city is empty." if not city else None
    if not isinstance(value, str) or not AREA_CODE.match(value):
        return "The areaCode field must be a string of 1 to 6 digits."
    return None


def _check_text(name: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and len(value) <= MAX_TEXT):
        return None
    return f"The {name} field must be a string of at most {MAX_TEXT} characters or null."


def _check_url(value: Any) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        return "The callbackUrl field must be an absolute http(s) URL."
    return None


# -- settling a request --------------------------------------------------------------------------


def _schedule(state: SandboxState, request_id: str) -> None:
    delay = float(state.config_snapshot()["cm_delay_s"])
    timer = threading.Timer(delay, _complete, args=(state, request_id))
    timer.daemon = True
    with state.lock:
        _book(state).timers[request_id] = timer
    timer.start()


def _complete(state: SandboxState, request_id: str) -> None:
    """Timer body: settle a still-Pending request by its area code, then call back."""
    with state.lock:
        book = _book(state)
        book.timers.pop(request_id, None)
        pending = book.requests.get(request_id)
        if pending is None or pending["status"] != "Pending":
            return
        _settle(state, pending)
        snapshot = copy.deepcopy(pending)
    _deliver(state, snapshot)


def _settle(state: SandboxState, pending: dict[str, Any]) -> None:
    area_code, quantity = pending["areaCode"], pending["quantity"]
    if area_code == REJECTED_AREA_CODE:
        _set_status(pending, "Rejected", f"No numbers available in area code {area_code}")
    elif area_code == ON_HOLD_AREA_CODE:
        _set_status(pending, "OnHold", "Awaiting regulatory review")
    elif area_code == PARTIAL_AREA_CODE and quantity > 1:
        _accept(state, pending, quantity // 2)
        pending["reason"] = f"Partially delivered: {quantity // 2} of {quantity} requested"
    else:
        _accept(state, pending, quantity)


def _accept(state: SandboxState, pending: dict[str, Any], ranges: int) -> None:
    numbers = _assign(state, pending, ranges)
    if numbers:
        _set_status(pending, "Accepted", None)
    else:
        _set_status(pending, "Rejected", "No numbers available for this request")


def _assign(state: SandboxState, pending: dict[str, Any], ranges: int) -> list[str]:
    """Give the request ``ranges`` blocks of ``rangeSize`` consecutive numbers (fewer if out)."""
    size = pending["rangeSize"] or 1
    prefix = pending["areaCode"] or (
        TOLL_FREE_PREFIX if pending["numberType"] == "TOLLFREE" else ""
    )
    numbers: list[str] = []
    for _ in range(ranges):
        block = state.allocate(prefix, size)
        if block is None:
            break
        numbers.extend(block)
    for number in numbers:
        state.take(NAME, number, {"number": number, "requestId": pending["id"]})
    pending["phoneNumbers"] = numbers
    pending["start"] = numbers[0] if numbers else None
    pending["validFrom"] = iso(utc_now()) if numbers else None
    return numbers


def _set_status(pending: dict[str, Any], status: str, reason: str | None) -> None:
    pending["status"] = status
    pending["reason"] = reason
    pending["updated"] = iso(utc_now())


def _stop_timer(state: SandboxState, request_id: str) -> None:
    timer = _book(state).timers.pop(request_id, None)
    if timer is not None:
        timer.cancel()


def _deliver(state: SandboxState, request_object: dict[str, Any]) -> dict[str, Any] | None:
    """POST the whole request object to its callbackUrl once; record the attempt, never raise.

    CM documents no retry schedule; the service polls when a callback does not come.
    """
    url = request_object.get("callbackUrl")
    if not url:
        return None
    attempt: dict[str, Any] = {
        "request_id": request_object["id"],
        "url": url,
        "status": request_object["status"],
        "status_code": None,
        "error": None,
        "at": iso(utc_now()),
    }
    try:
        attempt["status_code"] = httpx.post(
            url, json=request_object, timeout=CALLBACK_TIMEOUT_S
        ).status_code
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        attempt["error"] = f"{type(exc).__name__}: {exc}"
    with state.lock:
        _book(state).callbacks.append(attempt)
    return attempt


def _deliver_later(state: SandboxState, request_object: dict[str, Any]) -> None:
    # Off the request thread: a receiver that calls us back must not wait on this very answer.
    threading.Thread(target=_deliver, args=(state, request_object), daemon=True).start()


# -- read, list, cancel --------------------------------------------------------------------------


@bp.get("/<account>/numberrequests")
def list_requests(account: str) -> Response:
    return _refused(account) or guarded(PROVIDER, "list", _list_requests)


def _list_requests() -> Response:
    # CM does not publish the list shape; the sandbox answers a plain array, oldest first.
    state = current_state()
    with state.lock:
        return json_response(copy.deepcopy(list(_book(state).requests.values())), 200)


@bp.get("/<account>/numberrequests/<request_id>")
def get_request(account: str, request_id: str) -> Response:
    return _refused(account) or guarded(PROVIDER, "list", lambda: _get_request(request_id))


def _get_request(request_id: str) -> Response:
    state = current_state()
    with state.lock:
        found = _book(state).requests.get(request_id.lower())
        if found is None:
            return _error(404, "Number request not found")
        return json_response(copy.deepcopy(found), 200)


@bp.delete("/<account>/numberrequests/<request_id>")
def cancel_request(account: str, request_id: str) -> Response:
    return _refused(account) or _cancel(request_id.lower())


def _cancel(request_id: str) -> Response:
    state = current_state()
    with state.lock:
        found = _book(state).requests.get(request_id)
        if found is None:
            return _error(404, "Number request not found")
        if found["status"] in FINAL_STATUSES:
            reason = f"The number request is {found['status']} and can no longer be cancelled."
            return _field_errors({"status": [reason]}, "The number request cannot be cancelled.")
        _stop_timer(state, request_id)
        _set_status(found, "Cancelled", "Cancelled by customer")
        snapshot = copy.deepcopy(found)
    _deliver_later(state, snapshot)
    return json_response(snapshot, 200)


# -- control: /_sandbox/cm/<id>/status -----------------------------------------------------------


@control_bp.post("/<request_id>/status")
def force_status(request_id: str) -> Response:
    """Set a request's status now (any word) and deliver its callback before answering."""
    try:
        payload = read_json_object()
    except BodyError as exc:
        return json_response({"error": str(exc)}, 400)
    status, reason = payload.get("status"), payload.get("reason")
    if not isinstance(status, str) or not status.strip() or len(status) > 64:
        return json_response({"error": "status must be a non-empty string"}, 400)
    if reason is not None and not isinstance(reason, str):
        return json_response({"error": "reason must be a string or null"}, 400)
    state = current_state()
    with state.lock:
        found = _book(state).requests.get(request_id.lower())
        if found is None:
            return json_response({"error": "unknown number request"}, 404)
        _stop_timer(state, request_id.lower())
        if status == "Accepted" and not found["phoneNumbers"]:
            _assign(state, found, found["quantity"])
        _set_status(found, status, reason)
        snapshot = copy.deepcopy(found)
    return json_response({"request": snapshot, "callback": _deliver(state, snapshot)}, 200)


def _extra_stats(state: SandboxState) -> dict[str, Any]:
    with state.lock:
        book = _book(state)
        return {
            "requests": copy.deepcopy(list(book.requests.values())),
            "callbacks": copy.deepcopy(book.callbacks),
        }


PROVIDER = ProviderSpec(
    name=NAME,
    url_prefix=URL_PREFIX,
    blueprint=bp,
    error=_error,
    rate_limited=_rate_limited,
    extra_stats=_extra_stats,
    control=control_bp,
)
