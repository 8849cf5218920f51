"""The sweep re-drives what waits in the database, and never takes an order from a live worker."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import update

from models.db import session_factory
from models.tables import Order, utcnow
from tests.integration.helpers import create_order, load
from worker.placement import claim
from worker.tasks import poll_overdue_orders, redrive_due_orders


def set_order(order_id: str, **values: Any) -> None:
    with session_factory()() as session:
        session.execute(update(Order).where(Order.id == order_id).values(**values))
        session.commit()


def test_an_overdue_order_is_redriven_once_then_left_alone() -> None:
    order_id = create_order(area_code="415")
    set_order(order_id, next_attempt_at=utcnow() - dt.timedelta(minutes=5))
    assert redrive_due_orders() == 1
    assert redrive_due_orders() == 0  # pushed out: no flood of duplicates
    assert load(order_id).next_attempt_at > utcnow()


def test_a_live_claim_is_never_taken_or_cleared() -> None:
    order_id = create_order(area_code="415")
    set_order(order_id, next_attempt_at=utcnow() - dt.timedelta(minutes=5))
    assert claim(order_id, "live-worker", 60)
    assert redrive_due_orders() == 0
    assert load(order_id).claimed_by == "live-worker"


def test_a_dead_workers_claim_is_released_and_the_order_redriven() -> None:
    order_id = create_order(area_code="415")
    set_order(
        order_id,
        state="in_progress",
        next_attempt_at=None,
        claimed_by="dead",
        claim_expires_at=utcnow() - dt.timedelta(seconds=1),
    )
    assert redrive_due_orders() == 1
    order = load(order_id)
    assert order.claimed_by is None and order.claim_expires_at is None


def test_waiting_orders_are_polled_when_their_callback_is_overdue() -> None:
    waiting = create_order(area_code="415")
    later = create_order(area_code="212")
    set_order(waiting, state="waiting_provider", next_attempt_at=utcnow() - dt.timedelta(seconds=1))
    set_order(later, state="waiting_provider", next_attempt_at=utcnow() + dt.timedelta(minutes=5))
    assert poll_overdue_orders() == 1
    assert poll_overdue_orders() == 0


def test_a_young_queued_backlog_is_not_republished() -> None:
    """Orders the workers have not reached yet are a queue, not lost messages."""
    order_id = create_order(area_code="415")
    set_order(order_id, next_attempt_at=utcnow() - dt.timedelta(seconds=1))
    assert redrive_due_orders() == 0
    set_order(order_id, next_attempt_at=utcnow() - dt.timedelta(seconds=10))
    assert redrive_due_orders() == 1
