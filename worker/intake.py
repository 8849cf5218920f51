"""Taking an order: validate, store it with its enqueue in one transaction, answer.

Used by the HTTP API and the CLI alike. Nothing here calls a provider.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import insert, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.attributes import set_committed_value

from models.ids import new_id, new_token, storable, token_hash
from models.states import OrderState
from models.tables import Order, OrderEvent, table_of, utcnow
from models.transitions import created_event
from worker.outbox import enqueue
from worker.placement import PLACE_TASK
from worker.providers.base import FieldIssue, OrderSpec
from worker.providers.registry import PROVIDERS, adapter_class, is_configured

MAX_KEY = 255
# Built once: the statements are the same for every order, only their parameters change.
ORDER_INSERT = insert(table_of(Order))
EVENT_INSERT = insert(table_of(OrderEvent))


class Capabilities(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    sms: bool | None = None
    mms: bool | None = None
    voice: bool | None = None


class OrderRequest(BaseModel):
    """The body of ``POST /v1/orders`` (CONTRACT.md). JSON types are strict: ``"5"`` is not a
    quantity and ``true`` is not a number."""

    model_config = ConfigDict(extra="forbid", strict=True)

    provider: str
    quantity: int = Field(default=1, ge=1, le=1000)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    number_type: Literal["local", "mobile", "national", "tollfree"] | None = None
    area_code: str | None = Field(default=None, pattern=r"^[0-9]{1,10}$")
    phone_number: str | None = None
    capabilities: Capabilities = Field(default_factory=Capabilities)
    options: dict[str, Any] = Field(default_factory=dict)
    reference: str | None = Field(default=None, min_length=1, max_length=255)
    notify_url: str | None = Field(default=None, max_length=2048)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(f"unknown provider; one of {', '.join(PROVIDERS)}")
        return value

    @field_validator("phone_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"\+[1-9][0-9]{6,14}", value):
            raise ValueError("must be an E.164 number such as +14155550123")
        try:
            parsed = phonenumbers.parse(value)
        except phonenumbers.NumberParseException as exc:
            raise ValueError(f"not a phone number: {exc}") from None
        if not phonenumbers.is_possible_number(parsed):
            raise ValueError("not a possible phone number for its country")
        return value

    @field_validator("reference", "notify_url")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        if value is not None and not storable(value):
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("notify_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
            raise ValueError("must be an http(s) URL")
        return value

    def fingerprint(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class RequestInvalid(Exception):
    def __init__(self, issues: list[FieldIssue]) -> None:
        super().__init__("; ".join(f"{i.field}: {i.message}" for i in issues))
        self.issues = issues


class IdempotencyConflict(Exception):
    """The key was used before with another body."""


@dataclass(frozen=True)
class Submitted:
    order: Order
    created: bool


def parse_request(data: Any) -> OrderRequest:
    """Validate a decoded JSON body: every field problem at once, provider rules included."""
    if not isinstance(data, dict):
        raise RequestInvalid([FieldIssue("body", "must be a JSON object")])
    try:
        request = OrderRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestInvalid([_issue(e) for e in exc.errors()]) from None
    issues = provider_issues(request)
    if issues:
        raise RequestInvalid(issues)
    return request


def provider_issues(request: OrderRequest) -> list[FieldIssue]:
    if not is_configured(request.provider):
        return [
            FieldIssue(
                "provider", f"{request.provider} is not configured on this service (no credentials)"
            )
        ]
    spec = OrderSpec(
        order_id="",
        provider=request.provider,
        quantity=request.quantity,
        country=request.country,
        number_type=request.number_type,
        area_code=request.area_code,
        phone_number=request.phone_number,
        sms=request.capabilities.sms,
        mms=request.capabilities.mms,
        options=request.options,
    )
    return list(adapter_class(request.provider).check(spec))


def validate_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise RequestInvalid([FieldIssue("Idempotency-Key", "header is required")])
    if len(key) > MAX_KEY or not key.isprintable():
        raise RequestInvalid(
            [FieldIssue("Idempotency-Key", f"must be 1..{MAX_KEY} printable characters")]
        )
    return key


def submit(session: Session, request: OrderRequest, key: str) -> Submitted:
    """Store the order and its enqueue together. The UNIQUE key, not a lookup, decides who
    wins a race of identical POSTs; the losers get the winner's order."""
    fingerprint = request.fingerprint()
    order = _new_order(request, key, fingerprint)
    created = created_event(order)
    try:
        # Plain INSERTs, not the unit of work: nothing is read back or changed before the
        # commit, and the flush machinery cost more than the three statements together.
        session.execute(ORDER_INSERT, _columns(order))
        session.execute(EVENT_INSERT, _columns(created))
        enqueue(session, PLACE_TASK, order.id)
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = session.scalar(select(Order).where(Order.idempotency_key == key))
        if existing is None:
            raise
        if existing.request_hash != fingerprint:
            raise IdempotencyConflict(key) from None
        return Submitted(existing, created=False)
    # The answer is built from what was written: no numbers yet, one event.
    set_committed_value(order, "numbers", [])
    set_committed_value(order, "events", [created])
    return Submitted(order, created=True)


def _new_order(request: OrderRequest, key: str, fingerprint: str) -> Order:
    """The order as a plain object, every column set (the INSERT sends these values)."""
    now = utcnow()
    token = new_token()
    return Order(
        id=new_id("ord"),
        idempotency_key=key,
        request_hash=fingerprint,
        provider=request.provider,
        state=OrderState.QUEUED.value,
        quantity=request.quantity,
        country=request.country,
        number_type=request.number_type,
        area_code=request.area_code,
        phone_number=request.phone_number,
        capabilities=request.capabilities.model_dump(exclude_none=True) or None,
        options=request.options or None,
        reference=request.reference,
        notify_url=request.notify_url,
        metadata_=request.metadata or None,
        callback_token=token,
        callback_token_hash=token_hash(token),
        attempt_count=0,
        retry_count=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )


def _columns(row: Order | OrderEvent) -> dict[str, Any]:
    """The column values set on an unsaved mapped object, by column name."""
    return {
        column: getattr(row, attribute)
        for attribute, column in _COLUMN_NAMES[type(row)]
        if attribute in row.__dict__
    }


def _column_names(model: type[Order] | type[OrderEvent]) -> tuple[tuple[str, str], ...]:
    """(attribute, column) of every mapped column: ``metadata_`` is stored as ``metadata``."""
    mapper: Mapper[Any] = inspect(model)
    return tuple((attr.key, column.key) for attr in mapper.column_attrs for column in attr.columns)


_COLUMN_NAMES = {model: _column_names(model) for model in (Order, OrderEvent)}


def _issue(error: Any) -> FieldIssue:
    loc = ".".join(str(p) for p in error["loc"]) or "body"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "value_error":
        message = str(error["ctx"]["error"])  # our validator's own words, without "Value error, "
    return FieldIssue(loc, message)
