"""Fake SignalWire: search available numbers, purchase one, list owned ones (seed 002).

Magic inputs: search ``areacode=999`` finds nothing; ``areacode=200`` puts a stale candidate
(ending 0000) first; purchasing any number ending 0000, or one some account already owns,
answers 422 ``phone_number_not_available``.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, request

from sandbox.faults import (
    BodyError,
    ProviderSpec,
    basic_credentials,
    guarded,
    json_response,
    read_json_object,
    seconds_text,
    secret_matches,
)
from sandbox.state import UNAVAILABLE_SUFFIX, current_state, iso, utc_now

NAME = "signalwire"
URL_PREFIX = "/signalwire"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
AREA_CODE = re.compile(r"^\d{3}$")
NUMBER_TYPES = ("longcode", "toll-free")
TOLL_FREE_NPAS = ("800", "833", "844", "855", "866", "877", "888")
DEFAULT_TOLL_FREE_NPA = "833"
EMPTY_AREA_CODE = "999"
STALE_FIRST_AREA_CODE = "200"
# The seed documents no defaults for search or paging; these are the sandbox's own.
DEFAULT_MAX_RESULTS = 10
MAX_RESULTS = 100
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
BILLING_PERIOD = timedelta(days=30)
RATE_CENTERS: dict[str, tuple[str, str]] = {
    "415": ("SNFC CA SF", "CA"),
    "212": ("NWYRCYZN01", "NY"),
    "312": ("CHICAGO", "IL"),
    "206": ("SEATTLE", "WA"),
}

bp = Blueprint(NAME, __name__)

# Null-valued handler settings of a freshly bought number: every one is a required property.
_UNSET_FIELDS = (
    "e911_address_id",
    "call_handler",
    "calling_handler_resource_id",
    "call_request_url",
    "call_request_method",
    "call_fallback_url",
    "call_fallback_method",
    "call_status_callback_url",
    "call_status_callback_method",
    "call_laml_application_id",
    "call_dialogflow_agent_id",
    "call_relay_topic",
    "call_relay_topic_status_callback_url",
    "call_relay_script_url",
    "call_relay_context",
    "call_relay_context_status_callback_url",
    "call_relay_application",
    "call_relay_connector_id",
    "call_sip_endpoint_id",
    "call_verto_resource",
    "call_video_room_id",
    "message_handler",
    "messaging_handler_resource_id",
    "message_request_url",
    "message_request_method",
    "message_fallback_url",
    "message_fallback_method",
    "message_laml_application_id",
    "message_relay_topic",
    "message_relay_context",
)


def _error(status: int, message: str) -> Response:
    # The schema fixes the words for 400/401/500; other statuses carry their reason phrase.
    fixed = {400: "Bad Request", 401: "Unauthorized", 500: "Internal Server Error"}
    return json_response({"error": fixed.get(status, message)}, status)


def _invalid(code: str, detail: str, title: str = "Invalid Parameter") -> Response:
    item = {"detail": detail, "status": "422", "title": title, "code": code}
    return json_response({"errors": [item]}, 422)


def _rate_limited(retry_after: float | None) -> Response:
    headers = {} if retry_after is None else {"Retry-After": seconds_text(retry_after)}
    return json_response({"error": "Too Many Requests"}, 429, headers)


def _unauthorized() -> Response | None:
    creds = current_state().credentials
    basic = basic_credentials()
    if (
        basic is not None
        and secret_matches(basic[0], creds.signalwire_project_id)
        and secret_matches(basic[1], creds.signalwire_api_token)
    ):
        return None
    return _error(401, "Unauthorized")


@bp.post("/api/relay/rest/phone_numbers")
def purchase() -> Response:
    return _unauthorized() or guarded(PROVIDER, "purchase", _purchase)


def _purchase() -> Response:
    try:
        payload = read_json_object()
    except BodyError:
        return _error(400, "Bad Request")
    number = payload.get("number")
    if number is None:
        return _invalid("missing_required_parameter", "number is required", "Missing Parameter")
    if not isinstance(number, str) or not E164.match(number):
        return _invalid("invalid_parameter", "number must be a phone number in E.164 format")
    return _buy(number)


def _buy(number: str) -> Response:
    unavailable = _invalid(
        "phone_number_not_available",
        f"The phone number {number} is no longer available.",
        "Phone Number Not Available",
    )
    if number.endswith(UNAVAILABLE_SUFFIX):
        return unavailable
    record = _phone_number(number)
    if not current_state().take(NAME, number, record):
        return unavailable
    return json_response(record, 200)


def _phone_number(number: str) -> dict[str, Any]:
    now = utc_now()
    number_type = _number_type(number)
    record: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "number": number,
        "name": number,
        "capabilities": _capabilities(number_type),
        "number_type": number_type,
        "created_at": iso(now),
        "updated_at": iso(now),
        "next_billed_at": iso(now + BILLING_PERIOD),
        "call_receive_mode": "voice",
        "country_code": "US" if number.startswith("+1") else None,
    }
    record.update(dict.fromkeys(_UNSET_FIELDS))
    return record


def _number_type(number: str) -> str:
    return "toll-free" if number[2:5] in TOLL_FREE_NPAS and number.startswith("+1") else "longcode"


def _capabilities(number_type: str) -> list[str]:
    return ["voice", "sms", "fax"] if number_type == "toll-free" else ["voice", "sms", "mms", "fax"]


@bp.get("/api/relay/rest/phone_numbers")
def list_numbers() -> Response:
    return _unauthorized() or guarded(PROVIDER, "list", _list_numbers)


def _list_numbers() -> Response:
    page_number = _query_int("page_number", 0, 0, 1_000_000)
    page_size = _query_int("page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    if page_number is None or page_size is None:
        return _invalid("invalid_parameter", "page_number and page_size must be integers in range")
    records = current_state().owned_records(NAME)
    # SignalWire's filter_number matches part of the number; callers match exactly themselves.
    wanted = re.sub(r"\D", "", request.args.get("filter_number", ""))
    if wanted:
        records = [record for record in records if wanted in record["number"]]
    start = page_number * page_size
    has_next = start + page_size < len(records)
    links = _links(page_number, page_size, has_next)
    return json_response({"links": links, "data": records[start : start + page_size]}, 200)


def _links(page_number: int, page_size: int, has_next: bool) -> dict[str, str | None]:
    def page(number: int) -> str:
        query = {**request.args.to_dict(), "page_number": number, "page_size": page_size}
        return f"{request.base_url}?{urlencode(query)}"

    return {
        "self": page(page_number),
        "first": page(0),
        "next": page(page_number + 1) if has_next else None,
        "prev": page(page_number - 1) if page_number > 0 else None,
    }


def _query_int(name: str, default: int, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        return None
    return int(raw)


@bp.get("/api/relay/rest/phone_numbers/search")
def search() -> Response:
    return _unauthorized() or guarded(PROVIDER, "list", _search)


def _search() -> Response:
    area_code = request.args.get("areacode", "")
    number_type = request.args.get("number_type", "longcode")
    max_results = _query_int("max_results", DEFAULT_MAX_RESULTS, 1, MAX_RESULTS)
    if area_code and not AREA_CODE.match(area_code):
        return _invalid("invalid_parameter", "areacode must be three digits")
    if number_type not in NUMBER_TYPES:
        return _invalid("invalid_parameter", f"number_type must be one of {NUMBER_TYPES}")
    if max_results is None:
        return _invalid("invalid_parameter", f"max_results must be 1..{MAX_RESULTS}")
    if area_code == EMPTY_AREA_CODE:
        return json_response({"data": []}, 200)
    numbers = _candidates(area_code or _default_area_code(number_type), max_results)
    return json_response({"data": [_available(number) for number in numbers]}, 200)


def _default_area_code(number_type: str) -> str:
    return DEFAULT_TOLL_FREE_NPA if number_type == "toll-free" else ""


def _candidates(area_code: str, count: int) -> list[str]:
    numbers: list[str] = []
    if area_code == STALE_FIRST_AREA_CODE:
        # A number that was listed but sold before the purchase call: buying it answers 422.
        numbers.append(f"+1{area_code}555{UNAVAILABLE_SUFFIX}")
    state = current_state()
    while len(numbers) < count:
        block = state.allocate(area_code)
        if block is None:
            break
        numbers.extend(block)
    return numbers


def _available(number: str) -> dict[str, Any]:
    number_type = _number_type(number)
    rate_center, region = RATE_CENTERS.get(number[2:5], ("SANDBOX", "NY"))
    return {
        "e164": number,
        "number_type": number_type,
        "capabilities": _capabilities(number_type),
        "rate_center": rate_center,
        "region": region,
        "country_code": "US",
    }


PROVIDER = ProviderSpec(
    name=NAME, url_prefix=URL_PREFIX, blueprint=bp, error=_error, rate_limited=_rate_limited
)
