"""Close: rent an internal number (seeds 000 and 001).

``POST /phone_number/request/internal/`` rents "a number with this prefix"; Close takes no
idempotency key, so an unknown outcome is settled by listing owned numbers
(``GET /phone_number/``) and crediting one that no order has yet.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from typing import Any, ClassVar, Literal

import httpx
import phonenumbers
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
    issues_from_pydantic,
    json_or_none,
    parse_retry_after,
)

NAME = "close"
RENT_PATH = "/phone_number/request/internal/"
LIST_PATH = "/phone_number/"
PAGE_SIZE = 100
MAX_PREFIX = 5  # seed 001: prefix <= 5 characters
CARRIER_TYPES = ("local", "national", "mobile", "tollfree")

# Seed 000: the documented 4xx ``status`` values and what each means for the order.
STATUS_KINDS: dict[str, str] = {
    "has-voice-only": "voice_only",
    "needs-more-info": "needs_action",
    "billing-error": "billing",
    "error": "failed",
}


class CloseOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    sharing: Literal["personal", "group"] = "personal"
    bundle_id: str | None = None


class CloseClient(HttpAdapter):
    name: ClassVar[str] = NAME
    rents_one_per_call: ClassVar[bool] = True
    needs_candidates: ClassVar[bool] = False
    delayed: ClassVar[bool] = False

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            settings, settings.close_base_url, {"Authorization": _authorization(settings)}
        )

    @classmethod
    def configured(cls, settings: Settings) -> bool:
        return bool(settings.close_api_key or settings.close_access_token)

    # -- the order -------------------------------------------------------------------------

    @classmethod
    def check(cls, spec: OrderSpec) -> list[FieldIssue]:
        issues: list[FieldIssue] = []
        if not spec.country or spec.country not in phonenumbers.SUPPORTED_REGIONS:
            issues.append(FieldIssue("country", "close needs a two-letter ISO country code"))
        if spec.area_code is not None and len(spec.area_code) > MAX_PREFIX:
            issues.append(
                FieldIssue("area_code", f"close prefixes are at most {MAX_PREFIX} characters")
            )
        if spec.phone_number:
            issues.append(FieldIssue("phone_number", "close rents by prefix, not a named number"))
        if spec.number_type is not None and spec.number_type not in CARRIER_TYPES:
            issues.append(FieldIssue("number_type", f"close accepts {', '.join(CARRIER_TYPES)}"))
        if spec.mms and spec.sms is not True:
            issues.append(FieldIssue("capabilities.sms", "close needs sms true when mms is true"))
        try:
            CloseOptions.model_validate(spec.options)
        except ValidationError as exc:
            issues.extend(issues_from_pydantic(exc, "options"))
        return issues

    def search(self, spec: OrderSpec, limit: int) -> list[str]:
        return []  # close picks the number itself

    def build_request(
        self, spec: OrderSpec, candidate: str | None, *, voice_only: bool = False
    ) -> dict[str, Any]:
        options = CloseOptions.model_validate(spec.options)
        body: dict[str, Any] = {"country": spec.country, "sharing": options.sharing}
        if spec.area_code:
            body["prefix"] = spec.area_code
        if spec.number_type:
            body["carrier_type"] = spec.number_type
        if options.bundle_id is not None:
            body["bundle_id"] = options.bundle_id
        if voice_only:
            body["with_sms"] = False
        elif spec.sms is not None:
            body["with_sms"] = spec.sms
        if spec.mms is not None and not voice_only:
            body["with_mms"] = spec.mms
        return body

    # -- calls -----------------------------------------------------------------------------

    def purchase(self, body: dict[str, Any]) -> Purchase:
        response = self._send("POST", RENT_PATH, json=body)
        if response.status_code == 201:
            return _rented(json_or_none(response))
        raise _error(response)

    def reconcile(
        self, spec: OrderSpec, body: dict[str, Any], since: dt.datetime
    ) -> Purchase | None:
        """Close rents "a number with this prefix": every owned number with the prefix that was
        created after the attempt started is a candidate, oldest first."""
        prefix = body.get("prefix") or ""
        found = [
            item
            for item in self._owned()
            if isinstance(item.get("number"), str)
            and _matches_prefix(item["number"], prefix)
            and _created_since(item, since)
        ]
        found.sort(key=lambda item: str(item.get("date_created") or ""))
        return Purchase(numbers=[_acquired(item) for item in found]) if found else None

    def fetch_request(self, request_id: str, spec: OrderSpec) -> Purchase:
        raise NotImplementedError("close answers at once; there is no request to fetch")

    def cancel_request(self, request_id: str, spec: OrderSpec) -> Purchase:
        raise NotImplementedError("close answers at once; there is no request to cancel")

    def _owned(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        skip = 0
        while True:
            response = self._send("GET", LIST_PATH, params={"_skip": skip, "_limit": PAGE_SIZE})
            if response.status_code != 200:
                raise _error(response)
            page = json_or_none(response) or {}
            data = page.get("data") or []
            items.extend(d for d in data if isinstance(d, dict))
            if not page.get("has_more") or not data:
                return items
            skip += len(data)


def _authorization(settings: Settings) -> str:
    """Seed 001: ``Bearer <token>`` (OAuth) or ``Basic base64(api_key:)``."""
    if settings.close_access_token:
        return f"Bearer {settings.close_access_token}"
    raw = f"{settings.close_api_key}:".encode()
    return f"Basic {base64.b64encode(raw).decode()}"


def _rented(payload: Any) -> Purchase:
    """Seed 000 says a 201 carries the new number; its schema says the body is empty.
    With a number, credit it; without, the caller finds it by reconciliation."""
    if isinstance(payload, dict) and isinstance(payload.get("number"), str):
        return Purchase(numbers=[_acquired(payload)])
    return Purchase(numbers=[], rented=True)


def _acquired(item: dict[str, Any]) -> Acquired:
    keep = ("is_group_number", "date_created", "country", "number_formatted", "is_verified")
    return Acquired(
        number=item["number"],
        provider_number_id=item.get("id"),
        details={k: item[k] for k in keep if k in item},
    )


def _error(response: httpx.Response) -> ProviderError:
    payload = json_or_none(response)
    body = payload if isinstance(payload, dict) else {}
    status = response.status_code
    if is_transient(status):
        return TransientProviderError(
            NAME,
            f"close answered {status}",
            status_code=status,
            provider_code=_text(body.get("status")),
            retry_after=_retry_hint(response, body),
        )
    if status in (401, 403):
        return PermanentProviderError(
            NAME, f"close refused our credentials ({status})", status_code=status, kind="auth"
        )
    code = _text(body.get("status"))
    message = _message(body) or f"close answered {status}"
    if code in STATUS_KINDS:
        return PermanentProviderError(
            NAME,
            message,
            status_code=status,
            provider_code=code,
            kind=STATUS_KINDS[code],  # type: ignore[arg-type]
        )
    if "field-errors" in body or ("errors" in body and code is None):
        return PermanentProviderError(
            NAME, message, status_code=status, provider_code=code, kind="invalid"
        )
    # A status Close adds later, or none at all: kept verbatim, treated as permanent.
    return PermanentProviderError(NAME, message, status_code=status, provider_code=code)


def _retry_hint(response: httpx.Response, body: dict[str, Any]) -> float | None:
    """Close's ``RateLimit: limit=N, remaining=N, reset=N``, then ``Retry-After``, then the
    body's ``error.rate_reset``."""
    match = re.search(r"reset=([0-9.]+)", response.headers.get("RateLimit", ""))
    if match:
        return float(match.group(1))
    hint = parse_retry_after(response.headers.get("Retry-After"))
    if hint is not None:
        return hint
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("rate_reset"), int | float):
        return float(error["rate_reset"])
    return None


def _message(body: dict[str, Any]) -> str | None:
    error = body.get("error")
    if isinstance(error, str):
        return error
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if "field-errors" in body:
        return f"close rejected fields: {body['field-errors']}"
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _matches_prefix(number: str, prefix: str) -> bool:
    if not prefix:
        return True
    try:
        national = str(phonenumbers.parse(number).national_number)
    except phonenumbers.NumberParseException:
        return False
    return national.startswith(prefix)


def _created_since(item: dict[str, Any], since: dt.datetime) -> bool:
    """A number owned before the attempt started was not rented by it. Allow a minute of clock
    skew between us and the provider."""
    raw = item.get("date_created")
    if not isinstance(raw, str):
        return True
    try:
        created = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return True
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return created >= since - dt.timedelta(seconds=60)
