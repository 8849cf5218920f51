"""Every provider through the same order API: orders placed against the sandbox over real
HTTP, a lost answer that never leads to a second rent, and one real worker serving all four."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures import wait_settled
from tests.integration.helpers import attempts, create_order, load, make_due, run_placement

PROFILE = {"company_profile_id": "6f1c2b1e-6d1a-4f47-9a43-3f1f0e0c7b11"}
ORDERS: dict[str, dict[str, Any]] = {
    "close": {"provider": "close", "country": "US", "area_code": "415"},
    "signalwire": {
        "provider": "signalwire",
        "country": "US",
        "area_code": "646",
        "number_type": "local",
    },
    "identitycall": {"provider": "identitycall", "country": "US", "number_type": "local"},
    "cm": {
        "provider": "cm",
        "country": "NL",
        "number_type": "local",
        "area_code": "201",
        "options": PROFILE,
    },
}


@pytest.mark.parametrize("provider", list(ORDERS))
def test_one_order_per_provider_is_fulfilled(sandbox: Any, provider: str) -> None:
    order_id = create_order(**ORDERS[provider])
    run_placement(order_id)
    order = load(order_id)
    assert order.state == "fulfilled", order.last_error
    assert len(order.numbers) == 1
    assert sandbox.stats(provider)["rented"] == 1


@pytest.mark.parametrize("provider", list(ORDERS))
def test_lost_answer_never_rents_twice(sandbox: Any, provider: str) -> None:
    """The provider rents, the answer is lost: reconciliation finds it, nothing is re-sent."""
    sandbox.faults(provider, {"kind": "drop_after_rent"})
    order_id = create_order(**ORDERS[provider])
    run_placement(order_id)
    assert [a.outcome for a in attempts(order_id)] == ["ambiguous"]
    make_due(order_id)
    run_placement(order_id)
    order = load(order_id)
    assert order.state == "fulfilled", order.last_error
    stats = sandbox.stats(provider)
    assert stats["rented"] == 1 and stats["rent_calls"] == 1
    assert [n.number for n in order.numbers] == stats["numbers"]


@pytest.mark.parametrize("provider", ["signalwire", "identitycall"])
def test_quantity_buys_one_candidate_per_call(sandbox: Any, provider: str) -> None:
    order_id = create_order(**ORDERS[provider], quantity=3)
    run_placement(order_id)
    order = load(order_id)
    assert order.state == "fulfilled"
    assert len({n.number for n in order.numbers}) == 3
    assert len(attempts(order_id)) == 3
    assert [a.operation for a in attempts(order_id, None)].count("search") >= 1


def test_signalwire_moves_to_the_next_candidate_when_one_is_gone(sandbox: Any) -> None:
    order_id = create_order(provider="signalwire", country="US", area_code="200")
    run_placement(order_id)
    tries = attempts(order_id)
    assert load(order_id).state == "fulfilled"
    assert [a.outcome for a in tries] == ["permanent", "success"]
    assert tries[0].number != tries[1].number and tries[0].number.endswith("0000")


def test_a_named_number_that_is_gone_fails_with_the_providers_reason(sandbox: Any) -> None:
    order_id = create_order(provider="signalwire", country="US", phone_number="+14155550000")
    run_placement(order_id)
    order = load(order_id)
    assert order.state == "failed"
    assert order.last_error["code"] == "no_candidates"
    assert order.last_error["message"].startswith("+14155550000 is not available: ")
    assert order.last_error["provider_status"] == "phone_number_not_available"
    assert sandbox.stats("signalwire")["rented"] == 0


def test_identitycall_unapproved_requirement_group_needs_action(sandbox: Any) -> None:
    order_id = create_order(
        provider="identitycall", country="US", options={"requirement_group_id": 13}
    )
    run_placement(order_id)
    order = load(order_id)
    assert order.state == "needs_action"
    assert "Requirement group" in order.last_error["message"]


def test_identitycall_costs_are_kept_on_the_order(sandbox: Any) -> None:
    order_id = create_order(
        provider="identitycall",
        country="US",
        number_type="local",
        options={"upfront_cost": "1.00", "monthly_cost": "1.15"},
    )
    run_placement(order_id)
    order = load(order_id)
    assert order.state == "fulfilled"
    assert order.costs == {"upfront_cost": "1.00", "monthly_cost": "1.15"}


def test_partial_quantity_when_the_rest_fail_for_good(sandbox: Any) -> None:
    # The first rent goes through (a zero delay is a no-op fault), the second meets a 404.
    sandbox.faults("close", {"kind": "delay", "seconds": 0}, {"kind": "status", "status": 404})
    order_id = create_order(provider="close", country="US", area_code="415", quantity=2)
    run_placement(order_id)
    order = load(order_id)
    assert order.state == "partially_fulfilled"
    assert len(order.numbers) == 1 and order.last_error["http_status"] == 404
    assert sandbox.stats("close")["rented"] == 1


def test_one_real_worker_serves_all_four_providers(sandbox: Any, start_worker: Any) -> None:
    start_worker()
    ids = {p: create_order(**body) for p, body in ORDERS.items()}
    for provider, order_id in ids.items():
        assert wait_settled(order_id) == "fulfilled", provider
        assert sandbox.stats(provider)["rented"] == 1
