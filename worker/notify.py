"""Upstream notifications: when an order reaches a new state and has a ``notify_url``, POST
the order there, signed as Standard Webhooks v1, until a 2xx or the schedule ends.

A notification never blocks or fails an order: it is its own row, its own task and queue.
Every try is recorded. A 410 stops notifications to that URL.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.config import Settings, get_settings
from models.db import session_scope
from models.serialize import iso, order_json
from models.tables import Notification, NotificationAttempt, Order, OrderEvent, utcnow
from worker import metrics
from worker.outbox import enqueue
from worker.providers.base import parse_retry_after
from worker.signing import sign

log = structlog.get_logger(__name__)
NOTIFY_TASK = "worker.tasks.notify"
_client: httpx.Client | None = None


def notify(order_id: str, event_id: int | None) -> str:
    settings = get_settings()
    with session_scope() as session:
        note = _notification(session, order_id, event_id)
        if note is None:
            return "nothing"
        if note.status != "pending":
            return note.status
        if _url_gone(session, note):
            note.status = "gone"
            return "gone"
        if not settings.notify_secret:
            _schedule(session, note, None, settings, "NUMBERS_NOTIFY_SECRET is not set")
            return "no_secret"
        note_id, url, msg_id, payload = note.id, note.url, note.webhook_id, note.payload
    status, error, retry_after, duration = _post(url, msg_id, payload, settings)
    with session_scope() as session:
        note = session.get(Notification, note_id)
        assert note is not None
        session.add(
            NotificationAttempt(
                notification_id=note.id, status_code=status, duration_ms=duration, error=error
            )
        )
        note.attempts += 1
        note.last_status_code, note.last_error = status, error
        if status is not None and 200 <= status < 300:
            note.status, note.delivered_at, note.next_attempt_at = "delivered", utcnow(), None
        elif status == 410:
            note.status, note.next_attempt_at = "gone", None  # the receiver asked us to stop
        else:
            _schedule(session, note, retry_after, settings, error)
        log.info("notify.attempt", order_id=order_id, status=status, result=note.status)
        metrics.count_notification(note.status)
        return note.status


def _notification(session: Session, order_id: str, event_id: int | None) -> Notification | None:
    if event_id is None:
        return None
    existing = session.scalar(select(Notification).where(Notification.event_id == event_id))
    if existing is not None:
        return existing
    order = session.get(Order, order_id)
    event = session.get(OrderEvent, event_id)
    if order is None or event is None or not order.notify_url:
        return None
    note = Notification(
        order_id=order.id, event_id=event.id, url=order.notify_url, payload=_payload(order, event)
    )
    try:
        with session.begin_nested():
            session.add(note)
    except IntegrityError:  # the task ran twice at once: the other made it
        return session.scalar(select(Notification).where(Notification.event_id == event_id))
    return note


def _payload(order: Order, event: OrderEvent) -> dict[str, Any]:
    return {
        "type": f"order.{event.to_state}",
        "timestamp": iso(event.at),
        "data": {
            "event": {
                "at": iso(event.at),
                "from": event.from_state,
                "to": event.to_state,
                "reason": event.reason,
            },
            "order": order_json(order, events=False),
        },
    }


def _url_gone(session: Session, note: Notification) -> bool:
    return (
        session.scalar(
            select(Notification.id)
            .where(Notification.url == note.url, Notification.status == "gone")
            .limit(1)
        )
        is not None
    )


def _schedule(
    session: Session,
    note: Notification,
    retry_after: float | None,
    settings: Settings,
    error: str | None,
) -> None:
    schedule = settings.notify_schedule()
    if note.attempts >= len(schedule):
        note.status, note.next_attempt_at = "failed", None
        return
    delay = max(schedule[note.attempts], retry_after or 0.0)
    note.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)
    if delay <= settings.countdown_limit_s:
        enqueue(session, NOTIFY_TASK, note.order_id, note.event_id, countdown=delay)


def _post(
    url: str, msg_id: str, payload: Any, settings: Settings
) -> tuple[int | None, str | None, float | None, float]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(settings.notify_secret, msg_id, timestamp, body),
    }
    started = time.monotonic()
    try:
        response = _http(settings).post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500], None, _ms(started)
    error = None if response.is_success else f"HTTP {response.status_code}"
    return (
        response.status_code,
        error,
        parse_retry_after(response.headers.get("Retry-After")),
        _ms(started),
    )


def _http(settings: Settings) -> httpx.Client:
    global _client
    if _client is None:
        _client = httpx.Client(timeout=settings.notify_timeout_s, follow_redirects=False)
    return _client


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 2)
