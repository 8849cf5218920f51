"""Fake IdentityCall: list available numbers, purchase one, list owned ones (seed 003).

Magic inputs: ``requirement_group_id`` 13 is an unapproved group; a phone number ending 0000 (or
one some account already owns) is "no longer available".
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, request

from sandbox.faults import (
    BodyError,
    ProviderSpec,
    bearer_token,
    guarded,
    is_int,
    json_response,
    read_json_object,
    seconds_text,
    secret_matches,
)
from sandbox.state import UNAVAILABLE_SUFFIX, current_state, iso, utc_now

NAME = "identitycall"
URL_PREFIX = "/identitycall/api/v1/public"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
DECIMAL = re.compile(r"^\d{1,7}(\.\d{1,4})?$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
NUMBER_TYPES = ("mobile", "local", "toll-free", "national")
UNAPPROVED_GROUP = 13
# The document lists no inventory rules; the sandbox stocks NANP numbers only.
COUNTRIES_WITH_STOCK = ("US", "CA")
AVAILABLE_COUNT = 5
PREFIX_BY_TYPE = {"local": "646", "national": "646", "mobile": "917", "toll-free": "833"}
COSTS_BY_TYPE = {"toll-free": ("2.00", "2.15")}
DEFAULT_COSTS = ("1.00", "1.15")
MAX_NAME = 255

# The seed's exact messages, which clients match on.
PHONE_REQUIRED = "phone_number is required"
GROUP_NOT_APPROVED = "Requirement group must be approved before purchasing"
NO_LONGER_AVAILABLE = "Number is no longer available"

bp = Blueprint(NAME, __name__)


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def _rate_limited(retry_after: float | None) -> Response:
    headers = {} if retry_after is None else {"Retry-After": seconds_text(retry_after)}
    return json_response({"error": "Rate limit exceeded"}, 429, headers)


def _unauthorized() -> Response | None:
    if secret_matches(bearer_token(), current_state().credentials.identitycall_api_key):
        return None
    return _error(401, "Invalid or missing API key")


@bp.post("/virtual_numbers/purchase")
def purchase() -> Response:
    return _unauthorized() or guarded(PROVIDER, "purchase", _purchase)


def _purchase() -> Response:
    try:
        payload = read_json_object()
    except BodyError as exc:
        return _error(422, str(exc))
    problem = _validate(payload)
    if problem is not None:
        return _error(422, problem)
    return _buy(payload)


def _validate(payload: dict[str, Any]) -> str | None:
    phone = payload.get("phone_number")
    if phone is None or (isinstance(phone, str) and not phone.strip()):
        return PHONE_REQUIRED
    if not isinstance(phone, str) or not E164.match(phone):
        return "phone_number must be an E.164 number"
    return _validate_optional(payload) or _validate_group(payload.get("requirement_group_id"))


def _validate_optional(payload: dict[str, Any]) -> str | None:
    country = payload.get("country_code")
    if country is not None and not (isinstance(country, str) and COUNTRY.match(country)):
        return "country_code must be an ISO 3166-1 alpha-2 code"
    if payload.get("number_type") is not None and payload["number_type"] not in NUMBER_TYPES:
        return f"number_type must be one of: {' | '.join(NUMBER_TYPES)}"
    name = payload.get("name")
    if name is not None and not (isinstance(name, str) and len(name) <= MAX_NAME):
        return f"name must be a string of at most {MAX_NAME} characters"
    for cost in ("upfront_cost", "monthly_cost"):
        value = payload.get(cost)
        if value is not None and not (isinstance(value, str) and DECIMAL.match(value)):
            return f"{cost} must be a decimal amount as a string"
    return None


def _validate_group(group: Any) -> str | None:
    if group is None:
        return None
    if not is_int(group):
        return "requirement_group_id must be an integer"
    return GROUP_NOT_APPROVED if group == UNAPPROVED_GROUP else None


def _buy(payload: dict[str, Any]) -> Response:
    number: str = payload["phone_number"]
    if number.endswith(UNAVAILABLE_SUFFIX):
        return _error(422, NO_LONGER_AVAILABLE)
    state = current_state()
    record = _virtual_number(state.next_id(NAME), payload)
    if not state.take(NAME, number, record):
        return _error(422, NO_LONGER_AVAILABLE)
    return json_response({"data": record}, 201)


def _virtual_number(number_id: int, payload: dict[str, Any]) -> dict[str, Any]:
    number: str = payload["phone_number"]
    return {
        "id": number_id,
        "phone_number": number,
        "name": payload.get("name"),
        "country_code": payload.get("country_code") or ("US" if number.startswith("+1") else None),
        "number_type": payload.get("number_type"),
        "active": True,
        "recording": True,
        "ai_receptionist_enabled": False,
        "operators": [],
        "operators_count": 0,
        "upfront_cost": payload.get("upfront_cost"),
        "monthly_cost": payload.get("monthly_cost"),
        "created_at": iso(utc_now()),
    }


@bp.get("/virtual_numbers")
def list_numbers() -> Response:
    return _unauthorized() or guarded(PROVIDER, "list", _list_numbers)


def _list_numbers() -> Response:
    return json_response({"data": current_state().owned_records(NAME)}, 200)


@bp.get("/virtual_numbers/available")
def available() -> Response:
    return _unauthorized() or guarded(PROVIDER, "list", _available)


def _available() -> Response:
    country = request.args.get("country", "US")
    number_type = request.args.get("number_type", "local")
    if not COUNTRY.match(country):
        return _error(422, "country must be an ISO 3166-1 alpha-2 code")
    if number_type not in NUMBER_TYPES:
        return _error(422, f"number_type must be one of: {' | '.join(NUMBER_TYPES)}")
    if country not in COUNTRIES_WITH_STOCK:
        return json_response({"data": []}, 200)
    upfront, monthly = COSTS_BY_TYPE.get(number_type, DEFAULT_COSTS)
    rows = [
        {
            "phone_number": number,
            "country_code": country,
            "number_type": number_type,
            "upfront_cost": upfront,
            "monthly_cost": monthly,
        }
        for number in _fresh_numbers(PREFIX_BY_TYPE[number_type])
    ]
    return json_response({"data": rows}, 200)


def _fresh_numbers(prefix: str) -> list[str]:
    numbers: list[str] = []
    state = current_state()
    for _ in range(AVAILABLE_COUNT):
        block = state.allocate(prefix)
        if block is None:
            break
        numbers.extend(block)
    return numbers


PROVIDER = ProviderSpec(
    name=NAME, url_prefix=URL_PREFIX, blueprint=bp, error=_error, rate_limited=_rate_limited
)
