"""Small helpers for tests that run orders: create one, run the placement, read it back."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from models.db import session_factory
from models.tables import Attempt, Order


def create_order(**body: Any) -> str:
    from worker import intake

    request = intake.parse_request({"provider": "close", "country": "US", **body})
    with session_factory()() as session:
        return intake.submit(session, request, str(uuid.uuid4())).order.id


def run_placement(order_id: str) -> None:
    """What the ``place_order`` task does, in this process."""
    from worker.placement import place

    place(order_id, f"test-{uuid.uuid4().hex[:8]}")


def load(order_id: str) -> Order:
    with session_factory()() as session:
        order = session.get(Order, order_id)
        assert order is not None
        _ = (order.numbers, order.events)
        return order


def attempts(order_id: str, operation: str | None = "purchase") -> list[Attempt]:
    with session_factory()() as session:
        query = select(Attempt).where(Attempt.order_id == order_id).order_by(Attempt.id)
        if operation:
            query = query.where(Attempt.operation == operation)
        return list(session.scalars(query))


def make_due(order_id: str) -> None:
    """Skip the backoff wait: the tests check the wait was set, then move on."""
    from sqlalchemy import update

    from models.tables import utcnow

    with session_factory()() as session:
        session.execute(update(Order).where(Order.id == order_id).values(next_attempt_at=utcnow()))
        session.commit()
