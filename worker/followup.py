"""After a delayed order was accepted (cm): callbacks, polls and cancels.

Each fetches the provider's current view of the request and applies it through
``delayed.apply_request_status``; a callback body is only a hint. The order is claimed while
this happens, so a callback, a poll and a cancel never work it at once.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from sqlalchemy import update

from models.config import get_settings
from models.db import session_scope
from models.states import OrderState
from models.tables import Order, WebhookDelivery, utcnow
from worker import metrics
from worker.delayed import apply_request_status
from worker.orders import spec_of
from worker.placement import claim, record_call, release
from worker.providers.base import OrderSpec, ProviderError, Purchase
from worker.providers.registry import get_client

log = structlog.get_logger(__name__)
WAITING = (OrderState.WAITING_PROVIDER.value,)
MAX_POLL_INTERVAL_S = 3600.0


class Busy(Exception):
    """Another task holds the order: try again shortly."""


def process_callback(delivery_id: int, task_id: str) -> str:
    """Apply one stored callback delivery. Returns what became of it."""
    with session_scope() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if (
            delivery is None
            or delivery.status not in ("received", "failed")
            or delivery.order_id is None
        ):
            return "skipped"
        order_id, provider = delivery.order_id, delivery.provider
        malformed = _malformed(delivery.body)
    result = _refresh(order_id, task_id, "callback")
    status = "ignored" if result in ("not_waiting", "no_request") else "processed"
    if _mark(delivery_id, status, malformed):
        metrics.count_webhook_delivery(provider, status)
    return result


# Two runs of one delivery (a replay, a task delivered twice) can overlap and finish in either
# order; the one that applied it settles what the delivery says: "processed" outranks
# "ignored", and nothing overwrites "processed".
_MARKABLE = {
    "processed": ("received", "failed", "ignored"),
    "ignored": ("received", "failed"),
}


def _mark(delivery_id: int, status: str, error: str | None) -> bool:
    with session_scope() as session:
        marked = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status.in_(_MARKABLE[status]),
            )
            .values(status=status, processed_at=utcnow(), error=error)
            .execution_options(synchronize_session=False)
        )
        return bool(marked.rowcount)  # type: ignore[attr-defined]


def poll(order_id: str, task_id: str) -> str:
    """No callback in time: read the request, and poll again later (backing off) if pending."""
    return _refresh(order_id, task_id, "poll")


def cancel(order_id: str, task_id: str) -> str:
    with _claimed(order_id, task_id) as (spec, request_id):
        if request_id is None:
            return "no_request"
        client = get_client(spec.provider)
        result = record_call(
            order_id,
            spec.provider,
            "cancel",
            {"request_id": request_id},
            lambda: client.cancel_request(request_id, spec),
        )
        return _apply(order_id, result)


@contextmanager
def _claimed(order_id: str, task_id: str) -> Iterator[tuple[OrderSpec, str | None]]:
    """Hold the waiting order for this task (or raise Busy) and give its spec and request id."""
    if not claim(order_id, task_id, get_settings().claim_ttl_s, WAITING):
        raise Busy(order_id)
    try:
        with session_scope() as session:
            order = session.get(Order, order_id)
            assert order is not None
            spec, request_id = spec_of(order), order.provider_request_id
        yield spec, request_id
    finally:
        release(order_id, task_id)


def _refresh(order_id: str, task_id: str, why: str) -> str:
    with session_scope() as session:
        order = session.get(Order, order_id)
        if order is None or order.state != OrderState.WAITING_PROVIDER:
            return "not_waiting"  # settled already: a late or repeated delivery changes nothing
    with _claimed(order_id, task_id) as (spec, request_id):
        if request_id is None:
            return "no_request"
        client = get_client(spec.provider)
        try:
            result = record_call(
                order_id,
                spec.provider,
                "fetch",
                {"request_id": request_id, "why": why},
                lambda: client.fetch_request(request_id, spec),
            )
        except ProviderError as error:
            _poll_later(order_id, error.retry_after)
            log.info(
                "followup.fetch_failed",
                order_id=order_id,
                kind=error.kind,
                status=error.status_code,
            )
            return "fetch_failed"
        return _apply(order_id, result)


def _apply(order_id: str, result: Purchase) -> str:
    settings = get_settings()
    with session_scope() as session:
        order = session.get(Order, order_id)
        assert order is not None
        before = order.state
        apply_request_status(session, order, None, result, settings)
        if order.state == OrderState.WAITING_PROVIDER:
            # Still pending: each poll waits longer (grace, 2x grace, ... capped at an hour).
            wait = min(settings.callback_grace_s * 2**order.retry_count, MAX_POLL_INTERVAL_S)
            order.retry_count += 1
            order.next_attempt_at = utcnow() + dt.timedelta(seconds=wait)
        return "applied" if order.state != before else "unchanged"


def _poll_later(order_id: str, hint: float | None) -> None:
    settings = get_settings()
    with session_scope() as session:
        order = session.get(Order, order_id)
        if order is not None and order.state == OrderState.WAITING_PROVIDER:
            wait = hint if hint is not None else settings.callback_grace_s
            order.next_attempt_at = utcnow() + dt.timedelta(seconds=min(wait, MAX_POLL_INTERVAL_S))


def _malformed(body: bytes) -> str | None:
    """A note for operators when the body was not JSON; it is only a hint either way."""
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "malformed body: not JSON"
    return None
