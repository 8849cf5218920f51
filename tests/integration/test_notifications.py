"""Upstream notifications received by a real HTTP receiver: signed with the secret, retried
after 500s with a stable webhook-id, every try recorded, 410 stops for that URL, and an
unreachable receiver never holds up the order."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import select

from models.db import session_factory
from models.tables import Notification, NotificationAttempt
from tests.conftest import TEST_ENV
from tests.fixtures import wait_for, wait_settled
from tests.integration.helpers import create_order
from worker.signing import verify

SECRET = TEST_ENV["NUMBERS_NOTIFY_SECRET"]


def notifications(order_id: str) -> list[Notification]:
    with session_factory()() as session:
        return list(
            session.scalars(
                select(Notification)
                .where(Notification.order_id == order_id)
                .order_by(Notification.id)
            )
        )


def tries(note_id: int) -> list[NotificationAttempt]:
    with session_factory()() as session:
        return list(
            session.scalars(
                select(NotificationAttempt)
                .where(NotificationAttempt.notification_id == note_id)
                .order_by(NotificationAttempt.id)
            )
        )


def test_each_new_state_is_posted_signed(sandbox: Any, receiver: Any, start_worker: Any) -> None:
    start_worker()
    order_id = create_order(area_code="415", notify_url=f"{receiver.url}/hooks")
    assert wait_settled(order_id) == "fulfilled"
    wait_for(lambda: len(receiver.requests) >= 2, 30, what="two notifications")
    bodies = []
    for request in receiver.requests:
        h = request["headers"]
        assert verify(
            SECRET,
            h["Webhook-Id"],
            int(h["Webhook-Timestamp"]),
            request["body"],
            h["Webhook-Signature"],
        )
        assert abs(int(h["Webhook-Timestamp"]) - time.time()) < 120
        bodies.append(json.loads(request["body"]))
    assert sorted(b["type"] for b in bodies) == ["order.fulfilled", "order.in_progress"]
    fulfilled = next(b for b in bodies if b["type"] == "order.fulfilled")
    assert fulfilled["data"]["order"]["id"] == order_id
    assert fulfilled["data"]["event"] == {
        **fulfilled["data"]["event"],
        "from": "in_progress",
        "to": "fulfilled",
    }
    # Each is marked delivered in the commit after the receiver answered.
    wait_for(
        lambda: {n.status for n in notifications(order_id)} == {"delivered"}, 30, what="deliveries"
    )


def test_500s_are_retried_with_a_stable_id_and_every_try_recorded(
    sandbox: Any, receiver: Any, start_worker: Any
) -> None:
    receiver.statuses = [500, 503, 200, 200]
    start_worker()
    order_id = create_order(
        area_code="999", notify_url=f"{receiver.url}/hooks"
    )  # one transition pair
    assert wait_settled(order_id) == "failed"
    wait_for(
        lambda: {n.status for n in notifications(order_id)} == {"delivered"}, 30, what="deliveries"
    )
    ids = [r["headers"]["Webhook-Id"] for r in receiver.requests]
    first = notifications(order_id)[0]
    assert ids.count(first.webhook_id) >= 2  # the same id on each retry of one event
    statuses = [t.status_code for n in notifications(order_id) for t in tries(n.id)]
    assert sorted(statuses) == [200, 200, 500, 503]
    assert all(t.duration_ms is not None for n in notifications(order_id) for t in tries(n.id))


def test_410_stops_notifications_to_that_url(sandbox: Any, receiver: Any) -> None:
    from worker.notify import notify

    receiver.statuses = [410]
    order_id = create_order(area_code="415", notify_url=f"{receiver.url}/gone")
    from tests.integration.helpers import run_placement

    run_placement(order_id)
    notes = notifications(order_id)
    assert len(notes) == 0  # not yet made: the tasks were only queued
    from models.tables import OrderEvent

    with session_factory()() as session:
        event_ids = list(
            session.scalars(
                select(OrderEvent.id)
                .where(OrderEvent.order_id == order_id, OrderEvent.from_state.is_not(None))
                .order_by(OrderEvent.id)
            )
        )
    assert notify(order_id, event_ids[0]) == "gone"
    assert notify(order_id, event_ids[1]) == "gone"  # not even tried
    assert len(receiver.requests) == 1


def test_an_unreachable_receiver_never_holds_up_the_order(sandbox: Any, start_worker: Any) -> None:
    start_worker()
    order_id = create_order(area_code="415", notify_url="http://127.0.0.1:9/hooks")
    assert wait_settled(order_id) == "fulfilled"
    wait_for(lambda: any(n.attempts >= 2 for n in notifications(order_id)), 30, what="retries")
    note = notifications(order_id)[0]
    assert note.status in ("pending", "failed") and note.last_error
