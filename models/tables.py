"""The ORM models: orders, their events, provider attempts, numbers, the outbox."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from models.ids import new_id, new_token, token_hash


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware on every backend (SQLite drops the zone; put UTC back on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


Timestamp = Annotated[dt.datetime, mapped_column(UTCDateTime(), default=utcnow)]
OptTimestamp = Annotated[dt.datetime | None, mapped_column(UTCDateTime(), nullable=True)]
IdKey = Annotated[str, mapped_column(String(40), primary_key=True)]
OrderRef = Annotated[str, mapped_column(String(40), ForeignKey("orders.id"), index=True)]
Json = Annotated[Any, mapped_column(JSON, nullable=True)]
BigIntId = Annotated[
    int,
    mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
]


def _hash_of_token(context: Any) -> str:
    return token_hash(context.get_current_parameters()["callback_token"])


class Base(DeclarativeBase):
    pass


def table_of(model: type[Base]) -> Table:
    """The model's Table, for Core statements built once on a hot path (to the type checker
    ``__table__`` is any FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[IdKey] = mapped_column(default=lambda: new_id("ord"))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32), default="queued")
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    country: Mapped[str | None] = mapped_column(String(2))
    number_type: Mapped[str | None] = mapped_column(String(16))
    area_code: Mapped[str | None] = mapped_column(String(16))
    phone_number: Mapped[str | None] = mapped_column(String(20))
    capabilities: Mapped[Json]
    options: Mapped[Json]
    reference: Mapped[str | None] = mapped_column(String(255), index=True)
    notify_url: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[Json] = mapped_column("metadata", JSON, nullable=True)
    # The per-order callback token goes into the URL given to the provider; it is looked up
    # by its hash (so lookups leak nothing about it) and then compared in constant time.
    callback_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_token)
    callback_token_hash: Mapped[str] = mapped_column(String(64), default=_hash_of_token)

    last_error: Mapped[Json]
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    # Transient failures in a row since the last success or operator retry: drives backoff.
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    # The order may be worked on again from this time (backoff, paused provider, polling).
    next_attempt_at: Mapped[OptTimestamp]
    # Retries stop after this; set when work starts, renewed by an operator retry.
    deadline_at: Mapped[OptTimestamp]
    # Which task holds the order, and until when (see worker.placement.claim).
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_expires_at: Mapped[OptTimestamp]

    # Delayed providers (cm): the provider's request id and its latest status, verbatim.
    provider_request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    provider_status: Mapped[str | None] = mapped_column(String(64))
    # Set when the provider said something the service does not understand; operators look.
    flagged: Mapped[str | None] = mapped_column(Text)
    costs: Mapped[Json]

    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    events: Mapped[list[OrderEvent]] = relationship(
        back_populates="order", order_by="OrderEvent.id", cascade="all, delete-orphan"
    )
    numbers: Mapped[list[Number]] = relationship(
        back_populates="order", order_by="Number.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_orders_state_provider", "state", "provider"),
        Index("ix_orders_state_next_attempt", "state", "next_attempt_at"),
        Index("ix_orders_state_created", "state", "created_at"),
        # List by state, newest first (ids are time-ordered): the first page of a state whose
        # orders are all old must not walk the whole primary key.
        Index("ix_orders_state_id", "state", "id"),
        Index("ix_orders_callback_token_hash", "callback_token_hash", unique=True),
    )


class OrderEvent(Base):
    """One row per state change, written by ``models.transitions.move`` and nothing else."""

    __tablename__ = "order_events"

    id: Mapped[BigIntId]
    order_id: Mapped[OrderRef]
    at: Mapped[Timestamp]
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)

    order: Mapped[Order] = relationship(back_populates="events")


class Attempt(Base):
    """One call to a provider. Committed before the call; an attempt with no outcome is
    ambiguous and must be reconciled before anything is sent again."""

    __tablename__ = "attempts"

    id: Mapped[BigIntId]
    order_id: Mapped[OrderRef]
    provider: Mapped[str] = mapped_column(String(32))
    operation: Mapped[str] = mapped_column(String(32))
    request: Mapped[Json]
    started_at: Mapped[Timestamp]
    finished_at: Mapped[OptTimestamp]
    # success | transient | permanent | ambiguous | not_rented; NULL while the call is out.
    outcome: Mapped[str | None] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer)
    provider_code: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None]
    number: Mapped[str | None] = mapped_column(String(20))

    __table_args__ = (
        Index("ix_attempts_provider_started", "provider", "started_at"),
        # "Calls and errors per provider in the last hour" reads a time range across providers.
        Index("ix_attempts_started", "started_at"),
    )


class Number(Base):
    """A number the service acquired for an order. Unique per provider: two orders can never
    be credited with the same rented number, even when both reconcile at once."""

    __tablename__ = "numbers"

    id: Mapped[BigIntId]
    order_id: Mapped[OrderRef]
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id"))
    provider: Mapped[str] = mapped_column(String(32))
    number: Mapped[str] = mapped_column(String(20))
    provider_number_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[Json]
    acquired_at: Mapped[Timestamp]

    order: Mapped[Order] = relationship(back_populates="numbers")

    __table_args__ = (UniqueConstraint("provider", "number", name="uq_numbers_provider_number"),)


class WebhookDelivery(Base):
    """Every POST a provider made to a callback URL, stored raw before anything else, so that
    nothing is lost, malformed deliveries included. Secrets in headers are redacted."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[BigIntId]
    provider: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("orders.id"), index=True)
    received_at: Mapped[Timestamp]
    headers: Mapped[Json]
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # received | processed | ignored | unknown_token | failed
    status: Mapped[str] = mapped_column(String(16), default="received")
    processed_at: Mapped[OptTimestamp]
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_webhook_deliveries_status_received", "status", "received_at"),)


class Notification(Base):
    """One upstream notification per order event, delivered (Standard Webhooks) with retries.
    ``webhook_id`` is the stable ``webhook-id`` header across every retry."""

    __tablename__ = "notifications"

    id: Mapped[BigIntId]
    order_id: Mapped[OrderRef]
    event_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    webhook_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: new_id("msg"))
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[Json]
    # pending | delivered | failed | gone
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[OptTimestamp]
    created_at: Mapped[Timestamp]
    delivered_at: Mapped[OptTimestamp]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_notifications_status_next", "status", "next_attempt_at"),)


class NotificationAttempt(Base):
    __tablename__ = "notification_attempts"

    id: Mapped[BigIntId]
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    at: Mapped[Timestamp]
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(Text)


class OutboxMessage(Base):
    """A task to send, committed with the change that wants it; the relay publishes it."""

    __tablename__ = "outbox"

    id: Mapped[BigIntId]
    task: Mapped[str] = mapped_column(String(128))
    args: Mapped[Json]
    created_at: Mapped[Timestamp]
    sent_at: Mapped[OptTimestamp]

    __table_args__ = (Index("ix_outbox_unsent", "sent_at", "id"),)


class ProviderState(Base):
    """Operator-visible switch per provider: paused providers get no calls."""

    __tablename__ = "provider_states"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[Timestamp]
