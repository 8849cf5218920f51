"""The Celery tasks. Each takes ids, opens its own sessions, may run twice, and checks the
order's state before acting."""

from __future__ import annotations

import datetime as dt
from typing import Any

import structlog
from sqlalchemy import and_, or_, select, update

from models.config import get_settings
from models.db import session_scope
from models.states import OrderState
from models.tables import Notification, Order, utcnow
from worker import followup
from worker import notify as notifications
from worker.app import app
from worker.outbox import purge_sent
from worker.placement import place

log = structlog.get_logger(__name__)
S = OrderState

RETURNED: dict[Any, tuple[Any, ...]] = {
    Order: (Order.id,),
    Notification: (Notification.id, Notification.order_id, Notification.event_id),
}
TASK_OPTIONS: dict[str, Any] = {"bind": True, "ignore_result": True, "acks_late": True}


@app.task(name="worker.tasks.place_order", **TASK_OPTIONS)
def place_order(self: Any, order_id: str) -> None:
    structlog.contextvars.bind_contextvars(order_id=order_id, task_id=self.request.id)
    try:
        place(order_id, self.request.id or f"local-{order_id}")
    finally:
        structlog.contextvars.clear_contextvars()


@app.task(name="worker.tasks.process_callback", max_retries=10, **TASK_OPTIONS)
def process_callback(self: Any, delivery_id: int) -> str:
    try:
        return followup.process_callback(delivery_id, self.request.id or f"local-{delivery_id}")
    except followup.Busy as busy:
        raise self.retry(countdown=2) from busy


@app.task(name="worker.tasks.poll_order", **TASK_OPTIONS)
def poll_order(self: Any, order_id: str) -> str:
    try:
        return followup.poll(order_id, self.request.id or f"local-{order_id}")
    except followup.Busy:
        return "busy"  # whoever holds it reads the provider; the sweep comes back if needed


@app.task(name="worker.tasks.cancel_request", max_retries=20, **TASK_OPTIONS)
def cancel_request(self: Any, order_id: str) -> str:
    try:
        return followup.cancel(order_id, self.request.id or f"local-{order_id}")
    except followup.Busy as busy:
        raise self.retry(countdown=2) from busy


@app.task(name="worker.tasks.notify", **TASK_OPTIONS)
def notify(self: Any, order_id: str, event_id: int | None) -> str:
    return notifications.notify(order_id, event_id)


@app.task(name="worker.tasks.sweep", **TASK_OPTIONS)
def sweep(self: Any) -> int:
    """Re-drive what waits in the database (beat runs this): orders whose wait is over or whose
    worker died, delayed orders whose callback is overdue, notifications due again."""
    purge_sent()
    return redrive_due_orders() + poll_overdue_orders() + redrive_notifications()


def _slack() -> dt.timedelta:
    # Due for longer than this and not picked up: the message was lost (or the broker restarted).
    return dt.timedelta(seconds=max(2.0, 2 * get_settings().sweep_interval_s))


def _take_due(model: Any, due: Any, order_by: Any, values: dict[str, Any], limit: int) -> list[Any]:
    """Mark up to ``limit`` due rows and return them, in one statement. The condition is
    checked again by the UPDATE itself, so a row a worker claimed meanwhile is left alone
    (PostgreSQL re-evaluates it on the latest row version)."""
    chosen = select(model.id).where(due).order_by(order_by).limit(limit)
    with session_scope() as session:
        rows = session.execute(
            update(model)
            .where(model.id.in_(chosen), due)
            .values(**values)
            .returning(*RETURNED[model])
            .execution_options(synchronize_session=False)
        )
        return list(rows)


def poll_overdue_orders(limit: int = 500) -> int:
    now = utcnow()
    due = and_(Order.state == S.WAITING_PROVIDER.value, Order.next_attempt_at <= now)
    rows = _take_due(
        Order, due, Order.next_attempt_at, {"next_attempt_at": now + _slack() * 3}, limit
    )
    for row in rows:
        poll_order.apply_async((row.id,), retry=False)
    return len(rows)


def redrive_notifications(limit: int = 500) -> int:
    now = utcnow()
    due = and_(Notification.status == "pending", Notification.next_attempt_at <= now - _slack())
    rows = _take_due(
        Notification, due, Notification.id, {"next_attempt_at": now + _slack() * 3}, limit
    )
    for row in rows:
        notify.apply_async((row.order_id, row.event_id), retry=False)
    return len(rows)


def redrive_due_orders(limit: int = 500) -> int:
    now = utcnow()
    slack = _slack()
    queued_after = dt.timedelta(seconds=get_settings().redrive_queued_after_s)
    due = and_(
        Order.state.in_([S.QUEUED.value, S.IN_PROGRESS.value]),
        or_(Order.claim_expires_at.is_(None), Order.claim_expires_at < now),
        or_(
            Order.claim_expires_at < now,  # its worker died mid-run
            # A retry's wake-up that was never delivered.
            and_(Order.state == S.IN_PROGRESS.value, Order.next_attempt_at <= now - slack),
            # A queued order whose message was lost; a backlog younger than this is just a
            # queue the workers have not reached yet, and re-sending it would only flood it.
            and_(Order.state == S.QUEUED.value, Order.next_attempt_at <= now - queued_after),
        ),
    )
    # Push the next look well out so a long queue is not flooded with duplicates; forget a
    # dead worker's claim (only while it is still expired: the UPDATE checks again).
    values = {"claim_expires_at": None, "claimed_by": None, "next_attempt_at": now + slack * 3}
    rows = _take_due(Order, due, Order.next_attempt_at, values, limit)
    for row in rows:
        place_order.apply_async((row.id,), retry=False)
    if rows:
        log.info("sweep.redriven", orders=len(rows))
    return len(rows)
