"""Close orders placed against the sandbox over real HTTP: each documented outcome, the retry
hints, the deadline, and exactly-once renting when the answer is lost."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from models.tables import utcnow
from tests.integration.helpers import attempts, create_order, load, make_due, run_placement


def test_plain_order_is_fulfilled_with_one_rent(sandbox: Any) -> None:
    order_id = create_order(area_code="415")
    run_placement(order_id)
    order = load(order_id)
    assert order.state == "fulfilled"
    assert [n.number[:5] for n in order.numbers] == ["+1415"]
    assert [(e.from_state, e.to_state) for e in order.events] == [
        (None, "queued"),
        ("queued", "in_progress"),
        ("in_progress", "fulfilled"),
    ]
    assert sandbox.stats("close")["rented"] == 1


def test_quantity_rents_one_number_per_call(sandbox: Any) -> None:
    order_id = create_order(area_code="312", quantity=3)
    run_placement(order_id)
    order = load(order_id)
    assert order.state == "fulfilled"
    assert len({n.number for n in order.numbers}) == 3
    assert len(attempts(order_id)) == 3
    assert sandbox.stats("close")["rented"] == 3


def test_has_voice_only_retries_once_without_sms_when_allowed(sandbox: Any) -> None:
    order_id = create_order(area_code="555")
    run_placement(order_id)
    tries = attempts(order_id)
    assert load(order_id).state == "fulfilled"
    assert [a.provider_code for a in tries] == ["has-voice-only", None]
    assert tries[1].request["with_sms"] is False


def test_has_voice_only_fails_when_the_order_needs_sms(sandbox: Any) -> None:
    order_id = create_order(area_code="555", capabilities={"sms": True})
    run_placement(order_id)
    order = load(order_id)
    assert order.state == "failed"
    assert order.last_error["provider_status"] == "has-voice-only"
    assert len(attempts(order_id)) == 1
    assert sandbox.stats("close")["rented"] == 0


@pytest.mark.parametrize(
    ("prefix", "state", "status"),
    [
        ("666", "needs_action", "needs-more-info"),
        ("999", "failed", "error"),
        ("402", "failed", "billing-error"),
    ],
)
def test_documented_statuses_end_the_order(
    sandbox: Any, prefix: str, state: str, status: str
) -> None:
    order_id = create_order(area_code=prefix)
    run_placement(order_id)
    order = load(order_id)
    assert order.state == state
    assert order.last_error["provider_status"] == status
    assert order.last_error["message"]


def test_billing_error_pauses_the_provider_and_later_orders_wait(sandbox: Any) -> None:
    run_placement(create_order(area_code="402"))
    waiting = create_order(area_code="415")
    run_placement(waiting)
    order = load(waiting)
    assert order.state == "queued"
    assert order.last_error["code"] == "provider_paused"
    assert sandbox.stats("close")["rent_calls"] == 1  # the second order never called

    from models.db import session_factory
    from worker import steering

    with session_factory()() as session:
        assert steering.resume_provider(session, "close") == 1
    run_placement(waiting)
    assert load(waiting).state == "fulfilled"


def test_wrong_credentials_pause_the_provider_instead_of_failing_orders(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.config import reset_settings
    from worker.providers.registry import reset_clients

    monkeypatch.setenv("NUMBERS_CLOSE_API_KEY", "wrong-key")
    reset_settings()
    reset_clients()
    order_id = create_order(area_code="415")
    run_placement(order_id)
    order = load(order_id)
    assert order.state == "queued"
    assert order.last_error["code"] == "provider_paused"
    from cli.stats import provider_rows

    close = next(r for r in provider_rows() if r["provider"] == "close")
    assert close["paused"] and "401" in close["reason"]


def test_server_error_is_retried_with_backoff_then_succeeds(sandbox: Any) -> None:
    sandbox.faults("close", {"kind": "status", "status": 503}, {"kind": "status", "status": 500})
    order_id = create_order(area_code="415")
    for _ in range(2):
        run_placement(order_id)
        order = load(order_id)
        assert order.state == "in_progress"
        assert (
            order.next_attempt_at is not None
            and order.next_attempt_at > utcnow() - dt.timedelta(seconds=1)
        )
        make_due(order_id)
    run_placement(order_id)
    assert load(order_id).state == "fulfilled"
    assert [a.outcome for a in attempts(order_id)] == ["transient", "transient", "success"]


@pytest.mark.parametrize("hint", [1.5, 4.0])
def test_rate_limit_reset_header_sets_the_next_try(sandbox: Any, hint: float) -> None:
    sandbox.faults("close", {"kind": "status", "status": 429, "retry_after": hint})
    order_id = create_order(area_code="415")
    before = utcnow()
    run_placement(order_id)
    order = load(order_id)
    assert order.next_attempt_at is not None
    wait = (order.next_attempt_at - before).total_seconds()
    assert hint - 0.1 <= wait <= hint + 1.0
    assert order.last_error["http_status"] == 429


def test_retries_stop_at_max_attempts_and_keep_the_last_error(sandbox: Any) -> None:
    sandbox.faults("close", *[{"kind": "status", "status": 502}] * 10)
    order_id = create_order(area_code="415")
    for _ in range(10):
        run_placement(order_id)
        if load(order_id).state == "failed":
            break
        make_due(order_id)
    order = load(order_id)
    assert order.state == "failed"
    assert "gave up after 6 tries" in order.last_error["message"]
    assert order.last_error["http_status"] == 502
    assert len(attempts(order_id)) == 6


def test_retries_stop_at_the_deadline(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from models.config import reset_settings

    monkeypatch.setenv("NUMBERS_RETRY_DEADLINE_S", "2")
    monkeypatch.setenv("NUMBERS_RETRY_MAX_ATTEMPTS", "100")
    reset_settings()
    sandbox.faults("close", {"kind": "status", "status": 429, "retry_after": 5})
    order_id = create_order(area_code="415")
    run_placement(order_id)
    order = load(order_id)
    assert order.state == "failed"  # waiting 5 s would pass the 2 s deadline
    assert order.last_error["http_status"] == 429


@pytest.mark.parametrize(
    "fault", [{"kind": "drop_after_rent"}, {"kind": "delay_after_rent", "seconds": 3}]
)
def test_lost_answer_is_reconciled_never_rented_twice(sandbox: Any, fault: dict[str, Any]) -> None:
    sandbox.faults("close", fault)
    order_id = create_order(area_code="415")
    run_placement(order_id)
    first = attempts(order_id)
    assert [a.outcome for a in first] == ["ambiguous"]
    make_due(order_id)
    run_placement(order_id)
    order = load(order_id)
    assert order.state == "fulfilled"
    assert sandbox.stats("close")["rented"] == 1
    assert sandbox.stats("close")["rent_calls"] == 1
    assert order.numbers[0].number == sandbox.stats("close")["numbers"][0]
    assert [a.operation for a in attempts(order_id, None)].count("reconcile") == 1


def test_reset_before_rent_is_reconciled_then_rented_once(sandbox: Any) -> None:
    sandbox.faults("close", {"kind": "reset_before"})
    order_id = create_order(area_code="415")
    run_placement(order_id)
    make_due(order_id)
    run_placement(order_id)
    assert load(order_id).state == "fulfilled"
    assert sandbox.stats("close")["rented"] == 1
    outcomes = [a.outcome for a in attempts(order_id)]
    assert outcomes[-1] == "success" and outcomes[0] in ("ambiguous", "not_rented", "transient")


def test_empty_201_is_resolved_by_listing_owned_numbers(sandbox: Any) -> None:
    sandbox.configure(close_empty_201=True)
    order_id = create_order(area_code="646", quantity=2)
    run_placement(order_id)
    order = load(order_id)
    assert order.state == "fulfilled"
    assert sorted(n.number for n in order.numbers) == sorted(sandbox.stats("close")["numbers"])
    assert sandbox.stats("close")["rented"] == 2


def test_numbers_owned_before_the_attempt_are_never_credited(sandbox: Any) -> None:
    """Two orders for one prefix, both ambiguous: each is credited a different number."""
    sandbox.faults("close", {"kind": "drop_after_rent"}, {"kind": "drop_after_rent"})
    first, second = create_order(area_code="415"), create_order(area_code="415")
    run_placement(first)
    run_placement(second)
    make_due(first)
    make_due(second)
    run_placement(first)
    run_placement(second)
    a, b = load(first), load(second)
    assert a.state == b.state == "fulfilled"
    assert a.numbers[0].number != b.numbers[0].number
    assert sandbox.stats("close")["rented"] == 2


def test_a_claim_lost_during_the_call_stops_the_run_after_recording_the_answer(
    sandbox: Any,
) -> None:
    """A worker stalled past its claim: the sweep lets another task take the order. The stalled
    run still records what its call rented, and sends nothing more."""
    import threading

    from sqlalchemy import update

    from models.db import session_scope
    from models.tables import Order
    from tests.fixtures import wait_for

    sandbox.faults("close", {"kind": "delay", "seconds": 1.0})
    order_id = create_order(area_code="415", quantity=2)
    run = threading.Thread(target=run_placement, args=(order_id,))
    run.start()
    wait_for(lambda: attempts(order_id), 10, 0.02, what="the first purchase to be sent")
    with session_scope() as session:
        session.execute(
            update(Order)
            .where(Order.id == order_id)
            .values(claimed_by="another-task", claim_expires_at=utcnow() + dt.timedelta(minutes=1))
        )
    run.join(20)
    order = load(order_id)
    assert [a.outcome for a in attempts(order_id)] == ["success"]  # the answer is kept
    assert len(order.numbers) == 1 and order.state == "in_progress"
    assert order.claimed_by == "another-task"  # the new holder's claim is left alone
    assert sandbox.stats("close")["rent_calls"] == 1  # and nothing more was sent
