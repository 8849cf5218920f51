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
from models.tables import Order, utcnow
from worker.app import app
from worker.placement import place

log = structlog.get_logger(__name__)
S = OrderState

TASK_OPTIONS: dict[str, Any] = {"bind": True, "ignore_result": True, "acks_late": True}


@app.task(name="worker.tasks.place_order", **TASK_OPTIONS)
def place_order(self: Any, order_id: str) -> None:
    structlog.contextvars.bind_contextvars(order_id=order_id, task_id=self.request.id)
    try:
        place(order_id, self.request.id or f"local-{order_id}")
    finally:
        structlog.contextvars.clear_contextvars()


@app.task(name="worker.tasks.sweep", **TASK_OPTIONS)
def sweep(self: Any) -> int:
    """Re-drive orders whose wait is over or whose worker died (beat runs this)."""
    return redrive_due_orders()


def redrive_due_orders(limit: int = 500) -> int:
    settings = get_settings()
    now = utcnow()
    # An order due for longer than this was not picked up (lost message, broker restart).
    slack = dt.timedelta(seconds=max(2.0, 2 * settings.sweep_interval_s))
    due = and_(
        Order.state.in_([S.QUEUED.value, S.IN_PROGRESS.value]),
        or_(Order.claim_expires_at.is_(None), Order.claim_expires_at < now),
        or_(
            Order.claim_expires_at < now,  # its worker died mid-run
            Order.next_attempt_at <= now - slack,  # its wake-up was never delivered
        ),
    )
    with session_scope() as session:
        ids = list(
            session.scalars(
                select(Order.id).where(due).order_by(Order.next_attempt_at).limit(limit)
            )
        )
        if ids:
            # Push the next look well out so a long queue is not flooded with duplicates.
            session.execute(
                update(Order)
                .where(Order.id.in_(ids))
                .values(claim_expires_at=None, claimed_by=None, next_attempt_at=now + slack * 3)
                .execution_options(synchronize_session=False)
            )
    for order_id in ids:
        place_order.apply_async((order_id,), retry=False)
    if ids:
        log.info("sweep.redriven", orders=len(ids))
    return len(ids)
