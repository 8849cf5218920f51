"""CM.com Voice: create a phone-number request, answered now or later (seed 004).

``POST {base}/{accountGuid}/numberrequests`` asks for ``quantity`` numbers at once; CM assigns
them immediately or leaves the request pending and POSTs the request object to ``callbackUrl``
on every status change. CM takes no idempotency key: our order reference rides in ``comment``,
so an unknown outcome is settled by listing the account's requests and finding ours.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from typing import Any, ClassVar, Literal

import httpx
import phonenumbers
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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

log = structlog.get_logger(__name__)

NAME = "cm"

# == What CM's documents leave out, and what we assume ======================================
# Seed 004 gives the create fields' meaning and types but not their JSON names, not the number
# request object and not its status words (seeds README, "CM.com: what the documents leave
# out"). Every such assumption is in this block, so a correction from a real account is one
# edit here and nowhere else.

TOKEN_HEADER = "X-CM-PRODUCTTOKEN"
REQUESTS_PATH = "/{account}/numberrequests"  # POST creates, GET lists
REQUEST_PATH = "/{account}/numberrequests/{request_id}"  # GET reads, DELETE cancels

# Our field -> CM's create-body name (camelCase like CM's published objects; CM matches names
# case-insensitively). ``accountId`` is a path parameter: build_request records it in the body
# because purchase() receives only the body, and purchase() takes it out before sending.
ACCOUNT_FIELD = "accountId"
CREATE_FIELDS = {
    "company_profile_id": "companyProfileId",
    "quantity": "quantity",
    "range_size": "rangeSize",
    "number_type": "numberType",
    "area_code": "areaCode",
    "city": "city",
    "region": "region",
    "comment": "comment",
    "callback_url": "callbackUrl",
}
# Our number_type -> CM's enum.
NUMBER_TYPES = {
    "local": "LOCAL",
    "national": "NATIONAL",
    "tollfree": "TOLLFREE",
    "mobile": "MOBILE",
}
MAX_QUANTITY = 1000  # 1..1000, and quantity x rangeSize <= 1000
MAX_TEXT = 1000  # city and region: CM publishes no limit
MAX_COMMENT = 200  # the customer's part: CM publishes no limit; ours leaves room for the tag

# The number request object (201 answer, GET by id, list items, callback bodies). Read with
# case-insensitive names, like CM reads ours.
OBJECT_ID = "id"
OBJECT_STATUS = "status"
OBJECT_REASON = "reason"
OBJECT_NUMBERS = "phoneNumbers"  # every assigned number, E.164; empty while none
OBJECT_COMMENT = "comment"
OBJECT_CREATED = "created"
# Seed 004: in the create answer "id, start, validFrom and validTo fields will be null"; the
# request is then found by listing and matching our reference.

# Status words -> outcome, matched case-insensitively. Any other word is kept verbatim as
# "unknown": the order waits and is flagged, never guessed into success or failure.
Outcome = Literal["fulfilled", "failed", "cancelled", "waiting", "unknown"]
STATUS_OUTCOMES: dict[str, Outcome] = {
    "pending": "waiting",
    "accepted": "fulfilled",  # numbers assigned (possibly fewer than asked)
    "rejected": "failed",  # ``reason`` says why
    "cancelled": "cancelled",  # DELETE while not finalized
}
SETTLED_OUTCOMES = ("fulfilled", "failed", "cancelled")

# The list answer: CM does not publish it. A plain array, or an object wrapping one.
LIST_KEYS = ("data", "items", "numberRequests", "results")

# Errors: 400 {"message", "errors": {"field": ["reason"]}}, 401, 404 for an unknown id.
ERROR_MESSAGE = "message"
ERROR_FIELDS = "errors"

# How ``comment`` carries our order reference: "<their comment> [order:ord_...]". The last tag
# wins, so a customer comment cannot pose as another order.
REFERENCE_TAG = "[order:{reference}]"
REFERENCE_PATTERN = re.compile(r"\[order:([^\[\]\s]+)\]")
# =============================================================================================

CODE_MAX = 128  # attempts.provider_code is a String(128)
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class CMOptions(BaseModel):
    """Seed 004's body fields with no common name; JSON types strict (``"5"`` is no size)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    company_profile_id: str
    account_id: str | None = None
    range_size: int | None = Field(default=None, ge=1, le=MAX_QUANTITY)
    city: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    region: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)

    @field_validator("company_profile_id", "account_id")
    @classmethod
    def _uuid(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("must be a uuid") from None


class CMClient(HttpAdapter):
    name: ClassVar[str] = NAME
    rents_one_per_call: ClassVar[bool] = False
    needs_candidates: ClassVar[bool] = False
    delayed: ClassVar[bool] = True

    def __init__(self, settings: Settings) -> None:
        self._account_id = settings.cm_account_id
        super().__init__(settings, settings.cm_base_url, {TOKEN_HEADER: settings.cm_product_token})

    @classmethod
    def configured(cls, settings: Settings) -> bool:
        return bool(settings.cm_base_url and settings.cm_product_token and settings.cm_account_id)

    # -- the order -------------------------------------------------------------------------

    @classmethod
    def check(cls, spec: OrderSpec) -> list[FieldIssue]:
        issues: list[FieldIssue] = []
        options: CMOptions | None = None
        try:
            options = CMOptions.model_validate(spec.options)
        except ValidationError as exc:
            issues.extend(issues_from_pydantic(exc, "options"))
        if not 1 <= spec.quantity <= MAX_QUANTITY:
            issues.append(FieldIssue("quantity", f"cm takes 1 to {MAX_QUANTITY} numbers"))
        elif options and options.range_size and spec.quantity * options.range_size > MAX_QUANTITY:
            issues.append(
                FieldIssue("options.range_size", f"quantity x range_size must be <= {MAX_QUANTITY}")
            )
        if spec.number_type not in NUMBER_TYPES:
            issues.append(FieldIssue("number_type", f"cm needs one of {', '.join(NUMBER_TYPES)}"))
        if not spec.area_code and not _text(spec.options.get("city")):
            issues.append(FieldIssue("area_code", "cm needs area_code or options.city"))
        issues.extend(_country_issues(spec))
        if spec.phone_number is not None:
            issues.append(FieldIssue("phone_number", "cm requests numbers by area, not by name"))
        if spec.sms or spec.mms:
            issues.append(
                FieldIssue("capabilities", "cm's voice number requests promise no SMS/MMS")
            )
        return issues

    def search(self, spec: OrderSpec, limit: int) -> list[str]:
        return []  # cm picks the numbers itself

    def build_request(
        self, spec: OrderSpec, candidate: str | None, *, voice_only: bool = False
    ) -> dict[str, Any]:
        options = CMOptions.model_validate(spec.options)
        reference = spec.reference or spec.order_id
        number_type = NUMBER_TYPES.get(spec.number_type or "")
        if not reference or number_type is None:
            # Without our reference in ``comment`` an unknown outcome could not be reconciled.
            raise PermanentProviderError(
                NAME, "cm request without an order reference or number type", kind="invalid"
            )
        values: dict[str, Any] = {
            "company_profile_id": options.company_profile_id,
            "quantity": spec.quantity,
            "range_size": options.range_size,
            "number_type": number_type,
            "area_code": spec.area_code or None,
            "city": options.city,
            "region": options.region,
            "comment": tagged_comment(options.comment, reference),
            "callback_url": spec.callback_url,
        }
        body = {CREATE_FIELDS[k]: v for k, v in values.items() if v is not None}
        return {ACCOUNT_FIELD: options.account_id or self._account_id, **body}

    # -- calls -----------------------------------------------------------------------------

    def purchase(self, body: dict[str, Any]) -> Purchase:
        account = body.get(ACCOUNT_FIELD)
        if not isinstance(account, str) or not account:
            raise PermanentProviderError(NAME, "cm request without an account", kind="invalid")
        sent = {k: v for k, v in body.items() if k != ACCOUNT_FIELD}
        started = dt.datetime.now(dt.UTC)
        response = self._send("POST", REQUESTS_PATH.format(account=account), json=sent)
        if response.status_code not in (200, 201):
            raise _error(response)
        reference = reference_in(_field(body, CREATE_FIELDS["comment"]))
        return self._created(account, json_or_none(response), reference, started)

    def reconcile(
        self, spec: OrderSpec, body: dict[str, Any], since: dt.datetime
    ) -> Purchase | None:
        """The newest request created since the attempt started whose comment carries this
        order's reference."""
        reference = (
            reference_in(_field(body, CREATE_FIELDS["comment"])) or spec.reference or spec.order_id
        )
        account = body.get(ACCOUNT_FIELD) or self._account_for(spec)
        found = self._find(account, reference, since)
        return parse_request_object(found) if found is not None else None

    def fetch_request(self, request_id: str, spec: OrderSpec) -> Purchase:
        return self._read(self._account_for(spec), request_id)

    def cancel_request(self, request_id: str, spec: OrderSpec) -> Purchase:
        """DELETE the pending request. When CM refuses because the request is final already,
        its final state is the answer (the order follows it instead of cancelling)."""
        account = self._account_for(spec)
        path = REQUEST_PATH.format(account=account, request_id=request_id)
        response = self._send("DELETE", path)
        if response.status_code == 400:
            current = self._read(account, request_id)
            if current.settled:
                return current
            raise _error(response)
        if not response.is_success:
            raise _error(response)
        payload = json_or_none(response)
        if payload is None:  # 204: read the result back
            return self._read(account, request_id)
        return _with_id(parse_request_object(payload), request_id)

    # -- helpers ---------------------------------------------------------------------------

    def _created(
        self, account: str, payload: Any, reference: str | None, started: dt.datetime
    ) -> Purchase:
        """The create answer. CM created the request: whatever the body, never send again."""
        try:
            created = parse_request_object(payload)
        except PermanentProviderError:
            log.warning("cm.malformed_create_answer")
            created = Purchase(
                rented=False,
                settled=False,
                outcome="unknown",
                reason="cm created the request but its answer was malformed",
            )
        if created.request_id is not None or reference is None:
            return created
        # Seed 004: the create answer's id is null. Find the request by our reference.
        found = self._find(account, reference, started)
        return parse_request_object(found) if found is not None else created

    def _read(self, account: str, request_id: str) -> Purchase:
        response = self._send("GET", REQUEST_PATH.format(account=account, request_id=request_id))
        if response.status_code != 200:
            raise _error(response)
        return _with_id(parse_request_object(json_or_none(response)), request_id)

    def _find(
        self, account: str, reference: str | None, since: dt.datetime
    ) -> dict[str, Any] | None:
        if not reference:
            return None
        response = self._send("GET", REQUESTS_PATH.format(account=account))
        if response.status_code != 200:
            raise _error(response)
        ours = [
            item
            for item in _list_items(json_or_none(response))
            if reference_in(_field(item, OBJECT_COMMENT)) == reference
            and _field(item, OBJECT_ID)
            and _created_since(_field(item, OBJECT_CREATED), since)
        ]
        # Newest first (the list's own order breaks ties): an operator retry after a Rejected
        # request creates a second request with the same reference.
        newest = sorted(
            reversed(ours), key=lambda item: str(_field(item, OBJECT_CREATED) or ""), reverse=True
        )
        return newest[0] if newest else None

    def _account_for(self, spec: OrderSpec) -> str:
        account = spec.options.get("account_id")
        return account if isinstance(account, str) and account else self._account_id


# -- the number request object (shared with the callback handler) ----------------------------


def parse_request_object(payload: Any) -> Purchase:
    """CM's number request object as a ``Purchase``. Raises ``PermanentProviderError`` (kind
    ``invalid``) when it is not one; an unknown status word is kept verbatim, unsettled."""
    if not isinstance(payload, dict):
        raise _malformed("is not an object")
    status = _field(payload, OBJECT_STATUS)
    if not isinstance(status, str) or not status.strip():
        raise _malformed(f"has no {OBJECT_STATUS}")
    request_id = _field(payload, OBJECT_ID)
    if request_id is not None and not (isinstance(request_id, str) and request_id):
        raise _malformed(f"has an invalid {OBJECT_ID}")
    raw_numbers = _field(payload, OBJECT_NUMBERS)
    numbers = [] if raw_numbers is None else raw_numbers
    if not isinstance(numbers, list) or not all(
        isinstance(n, str) and E164.match(n) for n in numbers
    ):
        raise _malformed(f"{OBJECT_NUMBERS} is not a list of E.164 numbers")
    reason = _field(payload, OBJECT_REASON)
    outcome = STATUS_OUTCOMES.get(status.strip().lower(), "unknown")
    details = {"request_id": request_id} if request_id else {}
    return Purchase(
        numbers=[Acquired(number=n, details=details) for n in dict.fromkeys(numbers)],
        rented=bool(numbers),
        request_id=request_id,
        status=status,
        settled=outcome in SETTLED_OUTCOMES,
        outcome=outcome,
        reason=reason if isinstance(reason, str) else None,
    )


def tagged_comment(comment: str | None, reference: str) -> str:
    tag = REFERENCE_TAG.format(reference=reference)
    return f"{comment} {tag}" if comment else tag


def reference_in(comment: Any) -> str | None:
    """The order reference our comment tag carries (the last tag), or None."""
    if not isinstance(comment, str):
        return None
    found = REFERENCE_PATTERN.findall(comment)
    return found[-1] if found else None


def _field(obj: dict[str, Any], name: str) -> Any:
    """CM matches JSON names case-insensitively; read its objects the same way."""
    if name in obj:
        return obj[name]
    lowered = name.lower()
    return next((v for k, v in obj.items() if isinstance(k, str) and k.lower() == lowered), None)


def _with_id(result: Purchase, request_id: str) -> Purchase:
    return result if result.request_id else dataclasses.replace(result, request_id=request_id)


def _list_items(payload: Any) -> list[dict[str, Any]]:
    if isinstance(payload, dict):
        payload = next((payload[k] for k in LIST_KEYS if isinstance(payload.get(k), list)), [])
    return [item for item in payload if isinstance(item, dict)] if isinstance(payload, list) else []


def _malformed(what: str) -> PermanentProviderError:
    return PermanentProviderError(NAME, f"cm number request object {what}", kind="invalid")


def _error(response: httpx.Response) -> ProviderError:
    payload = json_or_none(response)
    body = payload if isinstance(payload, dict) else {}
    status = response.status_code
    text = _field(body, ERROR_MESSAGE)
    message = text if isinstance(text, str) and text else f"cm answered {status}"
    fields = _field(body, ERROR_FIELDS)
    fields = fields if isinstance(fields, dict) and fields else None
    if is_transient(status):
        return TransientProviderError(
            NAME,
            message,
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status in (401, 403):
        return PermanentProviderError(
            NAME, f"cm refused our product token ({status})", status_code=status, kind="auth"
        )
    if status == 400 and fields is not None:
        reasons = "; ".join(f"{name}: {_reasons(why)}" for name, why in fields.items())
        return PermanentProviderError(
            NAME,
            f"{message} ({reasons})",
            status_code=status,
            provider_code=",".join(str(name) for name in fields)[:CODE_MAX],
            kind="invalid",
        )
    # 404 (unknown account or request), a 400 naming no field, anything undocumented.
    return PermanentProviderError(NAME, message, status_code=status)


def _reasons(why: Any) -> str:
    return ", ".join(str(w) for w in why) if isinstance(why, list) else str(why)


def _country_issues(spec: OrderSpec) -> list[FieldIssue]:
    if spec.country is None:
        return []
    if spec.country not in phonenumbers.SUPPORTED_REGIONS:
        return [FieldIssue("country", "cm needs a two-letter ISO country code")]
    # Seed 004: region is "only required for NANPA", i.e. every +1 country.
    if phonenumbers.country_code_for_region(spec.country) == 1 and not _text(
        spec.options.get("region")
    ):
        return [FieldIssue("options.region", "cm needs a region for NANPA (+1) countries")]
    return []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _created_since(raw: Any, since: dt.datetime) -> bool:
    """A request created before the attempt started is not its answer (a minute of skew)."""
    if not isinstance(raw, str):
        return True
    try:
        created = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return True
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return created >= since - dt.timedelta(seconds=60)
