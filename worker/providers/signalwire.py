"""SignalWire: search available numbers, purchase one by name (seed 002).

``POST /api/relay/rest/phone_numbers`` buys the exact E.164 number in the body, so the service
searches candidates first (``GET …/phone_numbers/search``) and tries them in turn. SignalWire
takes no idempotency key: an unknown outcome is settled by listing owned numbers with
``filter_number`` and matching the number we asked for.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, ClassVar

import httpx
import phonenumbers
import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from models.config import Settings
from worker.providers.base import (
    Acquired,
    FieldIssue,
    HttpAdapter,
    OrderSpec,
    PermanentProviderError,
    ProviderError,
    Purchase,
    TransientProviderError,
    is_transient,
    json_or_none,
    parse_retry_after,
)

log = structlog.get_logger(__name__)

NAME = "signalwire"
PURCHASE_PATH = "/api/relay/rest/phone_numbers"
LIST_PATH = "/api/relay/rest/phone_numbers"
SEARCH_PATH = "/api/relay/rest/phone_numbers/search"
MAX_SEARCH_RESULTS = 100  # SignalWire caps ``max_results``; asking for more is refused
MAX_LIST_PAGES = 20  # filter_number narrows the list to a few rows; this only stops a loop
CODE_MAX = 128  # attempts.provider_code is a String(128)
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
AREA_CODE = re.compile(r"^[0-9]{3}$")

# SignalWire sells NANPA numbers only (its search takes an area code, no country), so an order
# must be for a +1 country SignalWire serves.
COUNTRIES = ("US", "CA")

# Our number_type -> SignalWire's PhoneNumberType (seed 002: ``longcode`` | ``toll-free``).
# NANPA numbers carry no mobile/national distinction and SignalWire offers neither, so
# ``mobile`` and ``national`` are refused at intake rather than silently bought as longcodes.
NUMBER_TYPES = {"local": "longcode", "tollfree": "toll-free"}

# Seed 002 documents the 422 ``errors[]`` shape but no codes. A number sold between our search
# and our purchase answers ``phone_number_not_available`` ("… is no longer available"): the
# placement then tries the next candidate. Any other 422 fails the order with its code.
NOT_AVAILABLE_CODES = frozenset({"phone_number_not_available", "number_not_available"})
NOT_AVAILABLE_DETAIL = re.compile(r"\b(?:not|no longer) available\b", re.IGNORECASE)

# Seed 002 PhoneNumberResponse: every property is required (most may be null).
REQUIRED_FIELDS = (
    "id",
    "number",
    "name",
    "capabilities",
    "number_type",
    "e911_address_id",
    "created_at",
    "updated_at",
    "next_billed_at",
    "call_handler",
    "calling_handler_resource_id",
    "call_receive_mode",
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
    "country_code",
)
KEPT_FIELDS = ("id", "number", "capabilities", "number_type", "created_at", "next_billed_at")


class PhoneNumberResponse(BaseModel):
    """The fields of seed 002's PhoneNumberResponse the service keeps, typed as the seed says."""

    model_config = ConfigDict(extra="allow", strict=True)

    id: str
    number: str
    capabilities: list[str]
    number_type: str
    created_at: str
    next_billed_at: str | None


class SignalWireClient(HttpAdapter):
    name: ClassVar[str] = NAME
    rents_one_per_call: ClassVar[bool] = True
    needs_candidates: ClassVar[bool] = True
    delayed: ClassVar[bool] = False

    def __init__(self, settings: Settings) -> None:
        # Seed 002: Basic base64(project_id:token); httpx builds the header from the pair.
        super().__init__(settings, settings.signalwire_base_url)
        self._http.auth = httpx.BasicAuth(
            settings.signalwire_project_id, settings.signalwire_api_token
        )

    @classmethod
    def configured(cls, settings: Settings) -> bool:
        return bool(
            settings.signalwire_base_url
            and settings.signalwire_project_id
            and settings.signalwire_api_token
        )

    # -- the order -------------------------------------------------------------------------

    @classmethod
    def check(cls, spec: OrderSpec) -> list[FieldIssue]:
        issues: list[FieldIssue] = []
        if spec.country is not None and spec.country not in COUNTRIES:
            issues.append(FieldIssue("country", "signalwire sells NANPA numbers: US, CA or none"))
        if spec.phone_number is not None and not _is_nanpa_e164(spec.phone_number):
            issues.append(
                FieldIssue("phone_number", "signalwire needs a +1 E.164 number like +14155550123")
            )
        if spec.number_type is not None and spec.number_type not in NUMBER_TYPES:
            issues.append(
                FieldIssue("number_type", f"signalwire offers {', '.join(NUMBER_TYPES)} numbers")
            )
        if spec.area_code is not None and not AREA_CODE.match(spec.area_code):
            issues.append(FieldIssue("area_code", "signalwire area codes are three digits"))
        issues.extend(
            FieldIssue(f"options.{key}", "unknown option: signalwire takes no options")
            for key in spec.options
        )
        return issues

    def search(self, spec: OrderSpec, limit: int) -> list[str]:
        params: dict[str, Any] = {"max_results": max(1, min(limit, MAX_SEARCH_RESULTS))}
        if spec.area_code:
            params["areacode"] = spec.area_code
        if spec.number_type:
            params["number_type"] = NUMBER_TYPES[spec.number_type]
        response = self._send("GET", SEARCH_PATH, params=params)
        if response.status_code != 200:
            raise _error(response)
        payload = json_or_none(response)
        rows = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(rows, list):
            raise PermanentProviderError(
                NAME, "signalwire search answered without a data list", status_code=200
            )
        return [
            row["e164"]
            for row in rows
            if isinstance(row, dict)
            and isinstance(row.get("e164"), str)
            and E164.match(row["e164"])
            and _has_capabilities(row, spec)
        ][:limit]

    def build_request(
        self, spec: OrderSpec, candidate: str | None, *, voice_only: bool = False
    ) -> dict[str, Any]:
        number = candidate or spec.phone_number
        if not number:
            # The placement always passes a searched or named number: a bug of ours.
            raise PermanentProviderError(
                NAME, "no number to purchase: search first", kind="invalid"
            )
        return {"number": number}

    # -- calls -----------------------------------------------------------------------------

    def purchase(self, body: dict[str, Any]) -> Purchase:
        response = self._send("POST", PURCHASE_PATH, json=body)
        if response.status_code == 200:
            return _purchased(json_or_none(response))
        raise _error(response)

    def reconcile(
        self, spec: OrderSpec, body: dict[str, Any], since: dt.datetime
    ) -> Purchase | None:
        """Owned and created after the attempt started: the number was rented by it."""
        number = body.get("number")
        if not isinstance(number, str):
            return None
        for item in self._owned(number):
            if item.get("number") == number and _created_since(item, since):
                return Purchase(numbers=[_acquired(item)])
        return None

    def fetch_request(self, request_id: str, spec: OrderSpec) -> Purchase:
        raise NotImplementedError("signalwire answers at once; there is no request to fetch")

    def cancel_request(self, request_id: str, spec: OrderSpec) -> Purchase:
        raise NotImplementedError("signalwire answers at once; there is no request to cancel")

    def _owned(self, number: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = LIST_PATH
        params: dict[str, Any] | None = {"filter_number": number}
        for _ in range(MAX_LIST_PAGES):
            if url is None:
                break
            response = self._send("GET", url, params=params)
            if response.status_code != 200:
                raise _error(response)
            page = json_or_none(response)
            page = page if isinstance(page, dict) else {}
            data = page.get("data")
            items.extend(d for d in data or [] if isinstance(d, dict))
            links = page.get("links")
            following = links.get("next") if isinstance(links, dict) else None
            # ``links.next`` is an absolute URL carrying the query already.
            url, params = (following, None) if isinstance(following, str) and data else (None, None)
        return items


def _purchased(payload: Any) -> Purchase:
    """A 200 means SignalWire sold us the number. When the answer is not the documented
    PhoneNumberResponse we still rented: the caller finds the number by reconciliation."""
    missing = (
        [f for f in REQUIRED_FIELDS if f not in payload]
        if isinstance(payload, dict)
        else list(REQUIRED_FIELDS)
    )
    try:
        PhoneNumberResponse.model_validate(payload)
    except ValidationError as exc:
        log.warning("signalwire.malformed_purchase_answer", errors=exc.error_count())
        return Purchase(numbers=[], rented=True, reason="malformed purchase answer")
    if missing or not E164.match(payload["number"]):
        log.warning("signalwire.malformed_purchase_answer", missing=missing)
        return Purchase(numbers=[], rented=True, reason=f"purchase answer lacks {missing}")
    return Purchase(numbers=[_acquired(payload)])


def _acquired(item: dict[str, Any]) -> Acquired:
    identifier = item.get("id")
    return Acquired(
        number=item["number"],
        provider_number_id=identifier if isinstance(identifier, str) else None,
        details={k: item[k] for k in KEPT_FIELDS if k in item},
    )


def _error(response: httpx.Response) -> ProviderError:
    payload = json_or_none(response)
    body = payload if isinstance(payload, dict) else {}
    status = response.status_code
    items = _error_items(body)
    code = _code(items[0].get("code") if items else body.get("error"))
    message = _message(items, body) or f"signalwire answered {status}"
    if is_transient(status):
        return TransientProviderError(
            NAME,
            message,
            status_code=status,
            provider_code=code,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status in (401, 403):
        return PermanentProviderError(
            NAME, f"signalwire refused our credentials ({status})", status_code=status, kind="auth"
        )
    gone = next((item for item in items if _not_available(item)), None)
    if status == 422 and gone is not None:
        return PermanentProviderError(
            NAME,
            message,
            status_code=status,
            provider_code=_code(gone.get("code")) or code,
            kind="unavailable",
        )
    # 400, other 422s and anything undocumented: permanent, the provider's code kept verbatim.
    return PermanentProviderError(NAME, message, status_code=status, provider_code=code)


def _error_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    errors = body.get("errors")
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _not_available(item: dict[str, Any]) -> bool:
    detail = item.get("detail")
    return item.get("code") in NOT_AVAILABLE_CODES or (
        isinstance(detail, str) and NOT_AVAILABLE_DETAIL.search(detail) is not None
    )


def _message(items: list[dict[str, Any]], body: dict[str, Any]) -> str | None:
    details = [str(i.get("detail") or i.get("title") or i.get("code")) for i in items]
    if details:
        return "; ".join(details)
    error = body.get("error")
    return error if isinstance(error, str) else None


def _code(value: Any) -> str | None:
    return value[:CODE_MAX] if isinstance(value, str) and value else None


def _is_nanpa_e164(number: str) -> bool:
    if not E164.match(number):
        return False
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return False
    return parsed.country_code == 1 and phonenumbers.is_possible_number(parsed)


def _has_capabilities(row: dict[str, Any], spec: OrderSpec) -> bool:
    """Skip candidates that cannot do what the order asks (when the search says)."""
    capabilities = row.get("capabilities")
    if not isinstance(capabilities, list):
        return True
    return not (spec.sms and "sms" not in capabilities) and not (
        spec.mms and "mms" not in capabilities
    )


def _created_since(item: dict[str, Any], since: dt.datetime) -> bool:
    """A number owned before the attempt started was not bought by it. Allow a minute of clock
    skew between us and the provider."""
    raw = item.get("created_at")
    if not isinstance(raw, str):
        return True
    try:
        created = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return True
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    return created >= since - dt.timedelta(seconds=60)
