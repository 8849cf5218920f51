"""IdentityCall: list available virtual numbers, purchase one by name (seed 003).

``POST /virtual_numbers/purchase`` buys the E.164 number in the body, so the service searches
candidates first (``GET /virtual_numbers/available``). IdentityCall takes no idempotency key:
an unknown outcome is settled by listing owned numbers (``GET /virtual_numbers``, no filters)
and matching the number we asked for client-side.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, ClassVar

import httpx
import phonenumbers
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.config import Settings
from worker.providers.base import (
    Acquired,
    ErrorKind,
    FieldIssue,
    HttpAdapter,
    OrderSpec,
    PermanentProviderError,
    ProviderError,
    Purchase,
    TransientProviderError,
    is_transient,
    issues_from_pydantic,
    json_or_none,
    parse_retry_after,
)

log = structlog.get_logger(__name__)

NAME = "identitycall"
PURCHASE_PATH = "/virtual_numbers/purchase"
LIST_PATH = "/virtual_numbers"
AVAILABLE_PATH = "/virtual_numbers/available"
CODE_MAX = 128  # attempts.provider_code is a String(128)
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
# Seed 003 says the costs are strings; a plain decimal amount is what its example inventory
# shows. ``[0-9]``, not ``\d``: Python's ``\d`` also matches other scripts' digits.
DECIMAL = r"^[0-9]{1,7}(\.[0-9]{1,4})?$"
MAX_NAME = 255

# Our number_type -> IdentityCall's (seed 003: mobile | local | toll-free | national).
NUMBER_TYPES = {
    "local": "local",
    "mobile": "mobile",
    "national": "national",
    "tollfree": "toll-free",
}

# Seed 003's 422 messages, matched exactly. Any other 422 is its "Provider error" row: the
# upstream carrier refused this number (no longer available, regulatory block, ...).
GROUP_NOT_APPROVED = "Requirement group must be approved before purchasing"
PHONE_REQUIRED = "phone_number is required"
MESSAGE_KINDS: dict[str, ErrorKind] = {
    GROUP_NOT_APPROVED: "needs_action",
    PHONE_REQUIRED: "invalid",
}


class IdentityCallOptions(BaseModel):
    """Seed 003's body fields with no common name; JSON types strict (``"7"`` is no id)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    requirement_group_id: int | None = Field(default=None, ge=1)
    upfront_cost: str | None = Field(default=None, pattern=DECIMAL)
    monthly_cost: str | None = Field(default=None, pattern=DECIMAL)


class VirtualNumber(BaseModel):
    """The fields of seed 003's 201 ``data`` the service keeps."""

    model_config = ConfigDict(extra="allow", strict=True)

    id: int | str
    phone_number: str = Field(pattern=E164.pattern)
    name: str | None = None
    country_code: str | None = None
    active: bool | None = None


class IdentityCallClient(HttpAdapter):
    name: ClassVar[str] = NAME
    rents_one_per_call: ClassVar[bool] = True
    needs_candidates: ClassVar[bool] = True
    delayed: ClassVar[bool] = False

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            settings,
            settings.identitycall_base_url,
            {"Authorization": f"Bearer {settings.identitycall_api_key}"},
        )

    @classmethod
    def configured(cls, settings: Settings) -> bool:
        return bool(settings.identitycall_base_url and settings.identitycall_api_key)

    # -- the order -------------------------------------------------------------------------

    @classmethod
    def check(cls, spec: OrderSpec) -> list[FieldIssue]:
        issues: list[FieldIssue] = []
        if spec.country is not None and spec.country not in phonenumbers.SUPPORTED_REGIONS:
            issues.append(FieldIssue("country", "identitycall needs a two-letter ISO country code"))
        if spec.country is None and spec.phone_number is None:
            issues.append(
                FieldIssue(
                    "country", "identitycall searches by country: give country or phone_number"
                )
            )
        if spec.phone_number is not None:
            issues.extend(_number_issues(spec.phone_number, spec.country))
        if spec.number_type is not None and spec.number_type not in NUMBER_TYPES:
            issues.append(
                FieldIssue("number_type", f"identitycall offers {', '.join(NUMBER_TYPES)}")
            )
        if spec.area_code is not None:
            # Its search filters by country and type only (seed README); never ignore a wish.
            issues.append(FieldIssue("area_code", "identitycall cannot search by area code"))
        if spec.sms or spec.mms:
            # Seed 003 sells numbers for recorded inbound calls and documents no messaging.
            issues.append(
                FieldIssue("capabilities", "identitycall documents voice numbers only (no SMS/MMS)")
            )
        try:
            IdentityCallOptions.model_validate(spec.options)
        except ValidationError as exc:
            issues.extend(issues_from_pydantic(exc, "options"))
        return issues

    def search(self, spec: OrderSpec, limit: int) -> list[str]:
        params: dict[str, Any] = {"country": spec.country}
        if spec.number_type:
            params["number_type"] = NUMBER_TYPES[spec.number_type]
        response = self._send("GET", AVAILABLE_PATH, params=params)
        if response.status_code != 200:
            raise _error(response)
        rows = _data_list(json_or_none(response))
        if rows is None:
            raise PermanentProviderError(
                NAME, "identitycall search answered without a data list", status_code=200
            )
        found = [row.get("phone_number") for row in rows]
        return [n for n in found if isinstance(n, str) and E164.match(n)][:limit]

    def build_request(
        self, spec: OrderSpec, candidate: str | None, *, voice_only: bool = False
    ) -> dict[str, Any]:
        number = candidate or spec.phone_number
        if not number:
            # Seed 003: phone_number is required. Never send without it: a bug of ours.
            raise PermanentProviderError(
                NAME, "no phone_number to purchase: search first", kind="invalid"
            )
        options = IdentityCallOptions.model_validate(spec.options)
        body: dict[str, Any] = {"phone_number": number}
        country = spec.country or _region_of(number)
        if country:
            body["country_code"] = country
        if spec.number_type:
            body["number_type"] = NUMBER_TYPES[spec.number_type]
        body.update(options.model_dump(exclude_none=True))
        return body

    # -- calls -----------------------------------------------------------------------------

    def purchase(self, body: dict[str, Any]) -> Purchase:
        response = self._send("POST", PURCHASE_PATH, json=body)
        if response.is_success:  # seed 003 documents 201
            return _purchased(json_or_none(response), _costs(body))
        raise _error(response)

    def reconcile(
        self, spec: OrderSpec, body: dict[str, Any], since: dt.datetime
    ) -> Purchase | None:
        number = body.get("phone_number")
        if not isinstance(number, str):
            return None
        response = self._send("GET", LIST_PATH)
        if response.status_code != 200:
            raise _error(response)
        for item in _data_list(json_or_none(response)) or []:
            if item.get("phone_number") == number and _created_since(item, since):
                return Purchase(numbers=[_acquired(item)], costs=_costs(body))
        return None

    def fetch_request(self, request_id: str, spec: OrderSpec) -> Purchase:
        raise NotImplementedError("identitycall answers at once; there is no request to fetch")

    def cancel_request(self, request_id: str, spec: OrderSpec) -> Purchase:
        raise NotImplementedError("identitycall answers at once; there is no request to cancel")


def _number_issues(number: str, country: str | None) -> list[FieldIssue]:
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        parsed = None
    if not E164.match(number) or parsed is None or not phonenumbers.is_possible_number(parsed):
        return [FieldIssue("phone_number", "must be an E.164 number such as +14155550123")]
    if country and phonenumbers.country_code_for_region(country) != parsed.country_code:
        return [FieldIssue("phone_number", f"is not a number of country {country}")]
    return []


def _region_of(number: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number)) or None
    except phonenumbers.NumberParseException:
        return None


def _purchased(payload: Any, costs: dict[str, Any] | None) -> Purchase:
    """A 2xx means IdentityCall sold us the number. When ``data`` is not what seed 003 shows we
    still rented: the caller finds the number by reconciliation."""
    data = payload.get("data") if isinstance(payload, dict) else None
    try:
        VirtualNumber.model_validate(data)
    except ValidationError as exc:
        log.warning("identitycall.malformed_purchase_answer", errors=exc.error_count())
        return Purchase(numbers=[], rented=True, reason="malformed purchase answer", costs=costs)
    assert isinstance(data, dict)
    return Purchase(numbers=[_acquired(data)], costs=costs)


def _acquired(item: dict[str, Any]) -> Acquired:
    keep = ("id", "phone_number", "name", "country_code", "active")
    identifier = item.get("id")
    return Acquired(
        number=item["phone_number"],
        provider_number_id=None if identifier is None else str(identifier),
        details={k: item[k] for k in keep if k in item},
    )


def _costs(body: dict[str, Any]) -> dict[str, Any] | None:
    """Seed 003's costs are informational and ours: what we recorded is what it cost."""
    costs = {k: body[k] for k in ("upfront_cost", "monthly_cost") if body.get(k) is not None}
    return costs or None


def _data_list(payload: Any) -> list[dict[str, Any]] | None:
    data = payload.get("data") if isinstance(payload, dict) else None
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else None


def _error(response: httpx.Response) -> ProviderError:
    payload = json_or_none(response)
    status = response.status_code
    text = _message(payload)
    message = text or f"identitycall answered {status}"
    code = text[:CODE_MAX] if text else None
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
            NAME,
            f"identitycall refused our credentials ({status})",
            status_code=status,
            provider_code=code,
            kind="auth",
        )
    if status == 422:
        kind = MESSAGE_KINDS.get(text or "", "unavailable")
        return PermanentProviderError(
            NAME,
            message,
            status_code=status,
            provider_code=code,
            kind=kind,
        )
    return PermanentProviderError(NAME, message, status_code=status, provider_code=code)


def _message(payload: Any) -> str | None:
    """Seed 003 gives the messages, not the envelope: ``{"error": "…"}`` (what IdentityCall
    answers), ``{"error": {"message": …}}``, ``{"message": …}`` or ``{"errors": […]}``."""
    if isinstance(payload, str):
        return payload.strip() or None
    if not isinstance(payload, dict):
        return None
    for key in ("error", "message", "errors"):
        value = payload.get(key)
        if isinstance(value, dict):
            value = value.get("message")
        if isinstance(value, list) and value:
            value = value[0].get("message") if isinstance(value[0], dict) else value[0]
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _created_since(item: dict[str, Any], since: dt.datetime) -> bool:
    """A number owned before the attempt started was not bought by it (a minute of skew)."""
    raw = item.get("created_at")
    if not isinstance(raw, str):
        return True  # seed 003 shows no created_at: the number match alone decides
    try:
        created = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return True
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return created >= since - dt.timedelta(seconds=60)
