"""Delayed orders (cm): a provider request that is answered now or later.

The create call, a callback and a poll all end here with the provider's current view of the
request. A state never moves backwards, a repeat changes nothing, and a status the documents
do not list is kept verbatim and flagged for operators, never guessed into success.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from models.config import Settings
from models.states import RANK, TERMINAL, OrderState
from models.tables import Attempt, Order, utcnow
from worker.orders import change_state, credit_numbers, expected_numbers, settle
from worker.providers.base import Purchase

S = OrderState


def apply_request_status(
    session: Session, order: Order, attempt: Attempt | None, result: Purchase, settings: Settings
) -> None:
    if result.request_id:
        order.provider_request_id = result.request_id
    if result.costs:
        order.costs = result.costs
    if OrderState(order.state) in TERMINAL:
        return  # settled already: a late or repeated answer changes nothing
    order.provider_status = result.status
    if attempt is not None:
        attempt.provider_code = result.status
    if result.outcome == "fulfilled":
        _fulfil(session, order, attempt, result)
    elif result.outcome == "failed":
        settle(session, order, S.FAILED, _error("provider_rejected", result))
    elif result.outcome == "cancelled":
        _move_forward(
            session, order, S.CANCELLED, f"the provider cancelled the request ({result.status})"
        )
    else:
        _wait(session, order, result, settings)


def _fulfil(session: Session, order: Order, attempt: Attempt | None, result: Purchase) -> None:
    wanted = expected_numbers(order)
    credit_numbers(session, order, attempt, result.numbers, limit=wanted)
    got = len(order.numbers)
    order.flagged = None
    order.next_attempt_at = None
    if got >= wanted:
        order.last_error = None
        _move_forward(session, order, S.FULFILLED, f"{got} number(s) assigned ({result.status})")
    else:
        message = f"{got} of {wanted} numbers assigned"
        order.last_error = _error("partial_delivery", result, message)
        _move_forward(session, order, S.PARTIALLY_FULFILLED, message)


def _wait(session: Session, order: Order, result: Purchase, settings: Settings) -> None:
    """Pending, or a status we do not know: wait for a callback, poll when it is overdue."""
    order.flagged = (
        None if result.outcome == "waiting" else f"unknown provider status {result.status!r}"
    )
    if OrderState(order.state) != S.WAITING_PROVIDER:
        _move_forward(
            session, order, S.WAITING_PROVIDER, f"the provider answers later ({result.status})"
        )
    order.next_attempt_at = utcnow() + dt.timedelta(seconds=settings.callback_grace_s)


def _move_forward(session: Session, order: Order, target: OrderState, reason: str) -> None:
    current = OrderState(order.state)
    if RANK[target] < RANK[current]:
        return
    if current in (S.FAILED, S.NEEDS_ACTION) and target == S.WAITING_PROVIDER:
        return
    change_state(session, order, target, reason)


def _error(code: str, result: Purchase, message: str | None = None) -> dict[str, object]:
    return {
        "code": code,
        "message": message or result.reason or f"the provider answered {result.status}",
        "provider_status": result.status,
    }
