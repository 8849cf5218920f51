"""CM's delayed orders through the real Flask app and a real worker: callbacks that lose
nothing and let no one in, duplicates and stale deliveries that change nothing, polling when a
callback never comes."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import select

from models.db import session_factory
from models.tables import Order, OrderEvent, WebhookDelivery
from tests.fixtures import order_state, wait_for, wait_settled
from tests.integration.helpers import attempts, create_order, load

CM = {
    "provider": "cm",
    "country": "NL",
    "number_type": "local",
    "options": {"company_profile_id": "6f1c2b1e-6d1a-4f47-9a43-3f1f0e0c7b11"},
}


def deliveries(order_id: str | None = None) -> list[WebhookDelivery]:
    with session_factory()() as session:
        query = select(WebhookDelivery).order_by(WebhookDelivery.id)
        if order_id:
            query = query.where(WebhookDelivery.order_id == order_id)
        return list(session.scalars(query))


def events(order_id: str) -> list[tuple[str | None, str]]:
    with session_factory()() as session:
        rows = session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
        )
        return [(e.from_state, e.to_state) for e in rows]


def token_of(order_id: str) -> str:
    with session_factory()() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order.callback_token


def test_delayed_order_is_completed_by_its_callback(
    sandbox: Any, web_server: str, start_worker: Any
) -> None:
    sandbox.configure(cm_delay_s=1.0)
    start_worker(env={"NUMBERS_PUBLIC_URL": web_server, "NUMBERS_CALLBACK_GRACE_S": "600"})
    order_id = create_order(**CM, area_code="20")
    wait_for(
        lambda: order_state(order_id) == "waiting_provider", 30, what="the order to wait for cm"
    )
    assert wait_settled(order_id) == "fulfilled"
    order = load(order_id)
    assert len(order.numbers) == 1 and order.provider_status == "Accepted"
    assert events(order_id)[-2:] == [
        ("in_progress", "waiting_provider"),
        ("waiting_provider", "fulfilled"),
    ]
    assert len(sandbox.stats("cm")["requests"]) == 1  # one request at the provider, ever
    stored = wait_for(
        lambda: (d := deliveries(order_id)) and all(x.status != "received" for x in d) and d,
        30,
        what="deliveries processed",
    )
    assert [d.status for d in stored] == ["processed"], [(d.status, d.body[:80]) for d in stored]
    assert json.loads(stored[0].body)["status"] == "Accepted"  # the raw body, as sent
    assert "fetch" in [
        a.operation for a in attempts(order_id, None)
    ]  # the provider's view was read
    assert sandbox.stats("cm")["callbacks"][0]["status_code"] == 202


def test_repeated_and_stale_callbacks_change_nothing(
    sandbox: Any, web_server: str, start_worker: Any
) -> None:
    sandbox.configure(cm_delay_s=0.5)
    start_worker(env={"NUMBERS_PUBLIC_URL": web_server, "NUMBERS_CALLBACK_GRACE_S": "600"})
    order_id = create_order(**CM, area_code="20")
    assert wait_settled(order_id) == "fulfilled"
    before = events(order_id)
    numbers = [n.number for n in load(order_id).numbers]
    accepted = deliveries(order_id)[0].body
    stale = json.dumps({**json.loads(accepted), "status": "Pending", "phoneNumbers": []}).encode()
    url = f"{web_server}/webhooks/cm/{token_of(order_id)}"
    for body in (accepted, accepted, stale):
        assert (
            httpx.post(url, content=body, headers={"Content-Type": "application/json"}).status_code
            == 202
        )
    wait_for(
        lambda: all(d.status != "received" for d in deliveries(order_id)),
        30,
        what="the deliveries to be processed",
    )
    assert events(order_id) == before  # one fulfilled event, nothing moved back
    assert [n.number for n in load(order_id).numbers] == numbers
    assert [d.status for d in deliveries(order_id)] == [
        "processed",
        "ignored",
        "ignored",
        "ignored",
    ]


def test_wrong_token_is_404_and_changes_no_order(api: Any, sandbox: Any) -> None:
    order_id = create_order(**CM, area_code="20")
    before = (order_state(order_id), events(order_id))
    for path in (
        "/webhooks/cm/not-a-token",
        f"/webhooks/close/{token_of(order_id)}",
        f"/webhooks/cm/{token_of(order_id)[:-1]}x",
        "/webhooks/acme/x",
    ):
        response = api.post(path, data=b'{"status": "Accepted"}', content_type="application/json")
        assert response.status_code == 404, path
    assert (order_state(order_id), events(order_id)) == before
    stored = deliveries()
    assert [d.status for d in stored] == ["unknown_token"] * 4  # kept, for operators
    assert all(d.order_id is None for d in stored)


def test_a_nul_in_the_callback_url_is_stored_escaped_and_answered_404(api: Any) -> None:
    response = api.post("/webhooks/c%00m/token", data=b"{}")
    assert response.status_code == 404
    (stored,) = deliveries()
    assert (stored.provider, stored.status) == ("c\\x00m", "unknown_token")


def test_deliveries_are_stored_raw_with_secrets_redacted(api: Any) -> None:
    order_id = create_order(**CM, area_code="20")
    body = b"\x00not json at all\xff"
    response = api.post(
        f"/webhooks/cm/{token_of(order_id)}",
        data=body,
        headers={
            "X-CM-PRODUCTTOKEN": "secret-product-token",
            "Authorization": "Bearer abc",
            "X-Trace": "t1",
        },
    )
    assert response.status_code == 202
    (stored,) = deliveries(order_id)
    assert stored.body == body
    assert (
        stored.headers["X-Cm-Producttoken"] == "[redacted]"
        and stored.headers["Authorization"] == "[redacted]"
    )
    assert stored.headers["X-Trace"] == "t1"
    assert token_of(order_id) not in json.dumps(stored.headers)


def test_oversized_callback_is_refused(api: Any) -> None:
    order_id = create_order(**CM, area_code="20")
    response = api.post(f"/webhooks/cm/{token_of(order_id)}", data=b"x" * 70_000)
    assert response.status_code == 413
    assert deliveries() == []


def test_lost_callback_is_finished_by_polling(sandbox: Any, start_worker: Any) -> None:
    sandbox.configure(cm_delay_s=0.5)
    # Callbacks go to a port where nothing listens: they are lost; the poll after the grace finds the answer.
    start_worker(env={"NUMBERS_PUBLIC_URL": "http://127.0.0.1:9", "NUMBERS_CALLBACK_GRACE_S": "2"})
    order_id = create_order(**CM, area_code="20")
    assert wait_settled(order_id, timeout=60) == "fulfilled"
    assert deliveries(order_id) == []
    fetches = [a for a in attempts(order_id, "fetch")]
    assert fetches and fetches[-1].request["why"] == "poll"


def test_cancel_of_a_pending_request_cancels_it_at_the_provider(
    api: Any, sandbox: Any, start_worker: Any
) -> None:
    sandbox.configure(cm_delay_s=60)
    start_worker(env={"NUMBERS_CALLBACK_GRACE_S": "600"})
    order_id = create_order(**CM, area_code="20")
    wait_for(
        lambda: order_state(order_id) == "waiting_provider", 30, what="the order to wait for cm"
    )
    assert api.post(f"/v1/orders/{order_id}/cancel").status_code == 202
    assert wait_settled(order_id) == "cancelled"
    assert load(order_id).provider_status == "Cancelled"
    assert [r["status"] for r in sandbox.stats("cm")["requests"]] == ["Cancelled"]


def test_unknown_status_is_kept_verbatim_and_flagged(sandbox: Any, start_worker: Any) -> None:
    sandbox.configure(cm_delay_s=0.3)
    start_worker(env={"NUMBERS_PUBLIC_URL": "http://127.0.0.1:9", "NUMBERS_CALLBACK_GRACE_S": "1"})
    order_id = create_order(**CM, area_code="333")
    wait_for(
        lambda: load(order_id).provider_status == "OnHold", 40, what="the unknown status to arrive"
    )
    order = load(order_id)
    assert order.state == "waiting_provider"  # never guessed into success or failure
    assert "OnHold" in (order.flagged or "")


def test_partial_delivery_is_partially_fulfilled(sandbox: Any, start_worker: Any) -> None:
    sandbox.configure(cm_delay_s=0.3)
    start_worker(env={"NUMBERS_PUBLIC_URL": "http://127.0.0.1:9", "NUMBERS_CALLBACK_GRACE_S": "1"})
    order_id = create_order(**CM, area_code="777", quantity=4)
    assert wait_settled(order_id, timeout=60) == "partially_fulfilled"
    order = load(order_id)
    assert len(order.numbers) == 2
    assert order.last_error["code"] == "partial_delivery"


def _lose_callback_tasks() -> None:
    """The processing tasks were published and lost: their outbox rows are sent, the queue
    is empty (the relay publishes callback tasks, so a purge alone would lose nothing)."""
    from sqlalchemy import update

    from models.tables import OutboxMessage, utcnow
    from worker.app import app

    with session_factory()() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.task == "worker.tasks.process_callback")
            .values(sent_at=utcnow())
        )
        session.commit()
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("callbacks")


def test_two_overlapping_runs_of_one_delivery_leave_it_processed(
    api: Any, sandbox: Any, monkeypatch: Any
) -> None:
    """A replay, or a task delivered twice, runs while the first run is still at work: the run
    that applied the callback has the last word, whichever finishes last."""
    from models.config import reset_settings
    from tests.integration.helpers import run_placement
    from worker import followup

    monkeypatch.setenv("NUMBERS_CALLBACK_GRACE_S", "600")
    reset_settings()
    sandbox.configure(cm_delay_s=60)
    order_id = create_order(**CM, area_code="20")
    run_placement(order_id)
    assert api.post(f"/webhooks/cm/{token_of(order_id)}", data=b"{}").status_code == 202
    _lose_callback_tasks()
    (delivery,) = deliveries(order_id)
    request_id = load(order_id).provider_request_id
    sandbox.http.post(
        f"/_sandbox/cm/{request_id}/status", json={"status": "Accepted"}
    ).raise_for_status()

    refresh = followup._refresh

    def the_other_run_finishes_first(order_id: str, task_id: str, why: str) -> str:
        monkeypatch.setattr(followup, "_refresh", refresh)
        assert followup.process_callback(delivery.id, "second-run") == "applied"
        return refresh(order_id, task_id, why)  # the order is settled now: "not_waiting"

    monkeypatch.setattr(followup, "_refresh", the_other_run_finishes_first)
    assert followup.process_callback(delivery.id, "first-run") == "not_waiting"
    assert order_state(order_id) == "fulfilled"
    assert [d.status for d in deliveries(order_id)] == ["processed"]


def test_operators_list_and_replay_deliveries(
    api: Any, sandbox: Any, start_worker: Any, monkeypatch: Any
) -> None:
    import subprocess
    import sys

    from models.config import reset_settings

    # No poll may finish the order before the replayed delivery does: the test is about the
    # delivery, and a poll would leave it "ignored" (the order already settled).
    monkeypatch.setenv("NUMBERS_CALLBACK_GRACE_S", "600")
    reset_settings()
    sandbox.configure(cm_delay_s=60)
    order_id = create_order(**CM, area_code="20")
    from tests.integration.helpers import run_placement

    run_placement(order_id)
    assert order_state(order_id) == "waiting_provider"
    api.post(f"/webhooks/cm/{token_of(order_id)}", data=b"{}")
    api.post("/webhooks/cm/bogus", data=b"{}")
    _lose_callback_tasks()
    listed = subprocess.run(
        [sys.executable, "-m", "cli", "webhooks", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    rows = json.loads(listed.stdout)
    assert [(r["status"], r["order_id"]) for r in rows] == [
        ("unknown_token", None),
        ("received", order_id),
    ]
    request_id = load(order_id).provider_request_id
    sandbox.http.post(
        f"/_sandbox/cm/{request_id}/status", json={"status": "Accepted"}
    ).raise_for_status()
    replay = subprocess.run(
        [sys.executable, "-m", "cli", "webhooks", "replay", str(rows[1]["id"])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replay.returncode == 0, replay.stderr
    refused = subprocess.run(
        [sys.executable, "-m", "cli", "webhooks", "replay", str(rows[0]["id"])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "matched no order" in refused.stderr
    start_worker()
    assert wait_settled(order_id) == "fulfilled"
    # The delivery is marked in the commit after the order's.
    wait_for(
        lambda: [d.status for d in deliveries(order_id)] == ["processed"],
        30,
        what="the replayed delivery to be processed",
    )
