"""Fake Close: rent an internal number, list owned numbers (seeds 000, 001).

Magic prefixes (first three digits) reach every documented 4xx status without the control API:
555 has-voice-only (unless ``with_sms`` is false), 666 needs-more-info, 402 billing-error,
999 error "No numbers available for this prefix".
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from flask import Blueprint, Response, request

from sandbox.faults import (
    BodyError,
    ProviderSpec,
    basic_credentials,
    bearer_token,
    guarded,
    json_response,
    read_json_object,
    seconds_text,
    secret_matches,
)
from sandbox.state import current_state, iso, utc_now

NAME = "close"
URL_PREFIX = "/close/api/v1"
CARRIER_TYPES = ("local", "national", "mobile", "tollfree")
SHARING = ("personal", "group")
# The seeds only cover NANP numbers; other countries answer Close's generic "error" status.
COUNTRIES_WITH_STOCK = ("US", "CA")
MAX_PREFIX = 5
DEFAULT_LIMIT = 100
RATE_LIMIT = 40

MAGIC_STATUSES: dict[str, tuple[str, str]] = {
    "555": ("has-voice-only", "This country/prefix combination only has non-SMS-capable numbers."),
    "666": ("needs-more-info", "More information is needed to rent this number."),
    "402": ("billing-error", "Your telephony budget has been reached."),
    "999": ("error", "No numbers available for this prefix"),
}

bp = Blueprint(NAME, __name__)


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def _rate_limited(retry_after: float | None) -> Response:
    # Close's current header is RateLimit; older clients read error.rate_reset in the body.
    error: dict[str, Any] = {
        "message": "API call count exceeded for this period",
        "rate_limit": RATE_LIMIT,
        "rate_limit_type": "request rate",
    }
    headers: dict[str, str] = {}
    if retry_after is not None:
        error["rate_reset"] = retry_after
        reset = seconds_text(retry_after)
        headers["RateLimit"] = f"limit={RATE_LIMIT}, remaining=0, reset={reset}"
    return json_response({"error": error}, 429, headers)


def _unauthorized() -> Response | None:
    creds = current_state().credentials
    basic = basic_credentials()
    # Close's API key goes as the Basic username with an empty password.
    if basic is not None and secret_matches(basic[0], creds.close_api_key):
        return None
    if secret_matches(bearer_token(), creds.close_access_token):
        return None
    response = _error(401, "Authentication failed: invalid API key or access token")
    response.headers["WWW-Authenticate"] = 'Basic realm="Close API"'
    return response


@bp.post("/phone_number/request/internal/")
def rent() -> Response:
    return _unauthorized() or guarded(PROVIDER, "purchase", _rent)


def _rent() -> Response:
    try:
        payload = read_json_object()
    except BodyError as exc:
        return _error(400, str(exc))
    field_errors = _validate(payload)
    if field_errors:
        return json_response({"error": "Invalid input", "field-errors": field_errors}, 400)
    refusal = _refusal(payload)
    if refusal is not None:
        return refusal
    return _rent_number(payload)


def _validate(payload: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    country = payload.get("country")
    if country is None:
        errors["country"] = "This field is required."
    elif not (isinstance(country, str) and len(country) == 2 and country.isalpha()):
        errors["country"] = "Must be a two letter ISO country code."
    sharing = payload.get("sharing")
    if sharing is None:
        errors["sharing"] = "This field is required."
    elif sharing not in SHARING:
        errors["sharing"] = f"Must be one of: {', '.join(SHARING)}."
    errors.update(_validate_optional(payload))
    return errors


def _validate_optional(payload: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    prefix = payload.get("prefix", "")
    if not isinstance(prefix, str) or (prefix and not prefix.isdigit()):
        errors["prefix"] = "Must be a string of digits."
    elif len(prefix) > MAX_PREFIX:
        errors["prefix"] = f"Ensure this field has no more than {MAX_PREFIX} characters."
    carrier_type = payload.get("carrier_type")
    if carrier_type is not None and carrier_type not in CARRIER_TYPES:
        errors["carrier_type"] = f"Must be one of: {', '.join(CARRIER_TYPES)} or null."
    for flag in ("with_sms", "with_mms"):
        if payload.get(flag) is not None and not isinstance(payload[flag], bool):
            errors[flag] = "Must be a boolean or null."
    if payload.get("with_mms") is True and payload.get("with_sms") is not True:
        errors["with_mms"] = "When you request an MMS number, with_sms must be true as well."
    bundle_id = payload.get("bundle_id")
    if bundle_id is not None and not isinstance(bundle_id, str):
        errors["bundle_id"] = "Must be a string or null."
    return errors


def _refusal(payload: dict[str, Any]) -> Response | None:
    prefix = payload.get("prefix") or ""
    magic = MAGIC_STATUSES.get(prefix[:3])
    if magic is not None and not (
        magic[0] == "has-voice-only" and payload.get("with_sms") is False
    ):
        return _status_error(*magic)
    if payload["country"].upper() not in COUNTRIES_WITH_STOCK:
        return _status_error("error", "No numbers available for this country")
    return None


def _status_error(status: str, message: str) -> Response:
    return json_response({"status": status, "error": message}, 400)


def _rent_number(payload: dict[str, Any]) -> Response:
    state = current_state()
    block = state.allocate(payload.get("prefix") or "")
    if block is None:
        return _status_error("error", "No numbers available for this prefix")
    record = _phone_number(block[0], payload)
    if not state.take(NAME, block[0], record):
        return _status_error("error", "No numbers available for this prefix")
    if state.config_snapshot()["close_empty_201"]:
        return json_response({}, 201)
    return json_response(record, 201)


def _phone_number(number: str, payload: dict[str, Any]) -> dict[str, Any]:
    now = iso(utc_now())
    voice_only = payload.get("with_sms") is False
    is_group = payload["sharing"] == "group"
    return {
        "id": "phon_" + _token(22),
        "number": number,
        "label": None,
        "country": payload["country"].upper(),
        "carrier_type": payload.get("carrier_type") or "local",
        "is_group_number": is_group,
        "is_verified": False,
        "supports_sms": not voice_only,
        "supports_mms": not voice_only and payload.get("with_mms") is not False,
        "sms_enabled": not voice_only,
        "mms_enabled": not voice_only and payload.get("with_mms") is not False,
        "bundle_id": payload.get("bundle_id"),
        "organization_id": "orga_sandbox",
        "user_id": None if is_group else "user_sandbox",
        "forward_to": None,
        "forward_to_enabled": False,
        "date_created": now,
        "date_updated": now,
        "created_by": "user_sandbox",
        "updated_by": "user_sandbox",
    }


def _token(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


@bp.get("/phone_number/")
def list_numbers() -> Response:
    return _unauthorized() or guarded(PROVIDER, "list", _list_numbers)


def _list_numbers() -> Response:
    errors: dict[str, str] = {}
    skip = _query_int("_skip", 0, errors)
    limit = _query_int("_limit", DEFAULT_LIMIT, errors)
    if errors:
        return json_response({"error": "Invalid input", "field-errors": errors}, 400)
    records = current_state().owned_records(NAME)
    wanted = _normalise_number(request.args.get("number"))
    if wanted:
        records = [record for record in records if record["number"] == wanted]
    page = records[skip : skip + limit]
    return json_response({"has_more": skip + limit < len(records), "data": page}, 200)


def _query_int(name: str, default: int, errors: dict[str, str]) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or (name == "_limit" and not 1 <= int(raw) <= DEFAULT_LIMIT):
        errors[name] = f"Must be a non-negative integer (_limit 1..{DEFAULT_LIMIT})."
        return default
    return int(raw)


def _normalise_number(raw: str | None) -> str:
    # An unencoded "+" in a query string arrives as a space; treat both forms alike.
    if raw is None:
        return ""
    stripped = raw.strip()
    return "+" + stripped.lstrip("+") if stripped else ""


PROVIDER = ProviderSpec(
    name=NAME, url_prefix=URL_PREFIX, blueprint=bp, error=_error, rate_limited=_rate_limited
)
