"""Order-level helpers shared by the tasks, the API and the CLI: the adapter's view of an order,
state changes that also notify, provider pause state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from models.config import get_settings
from models.states import OrderState
from models.tables import Attempt, Number, Order, ProviderState, table_of, utcnow
from models.transitions import move
from worker.providers.base import Acquired, OrderSpec


def spec_of(order: Order) -> OrderSpec:
    capabilities = order.capabilities or {}
    settings = get_settings()
    return OrderSpec(
        order_id=order.id,
        provider=order.provider,
        quantity=order.quantity,
        country=order.country,
        number_type=order.number_type,
        area_code=order.area_code,
        phone_number=order.phone_number,
        sms=capabilities.get("sms"),
        mms=capabilities.get("mms"),
        options=dict(order.options or {}),
        reference=order.id,
        callback_url=f"{settings.public_url.rstrip('/')}/webhooks/{order.provider}/{order.callback_token}",
    )


def change_state(session: Session, order: Order, target: OrderState, reason: str | None) -> bool:
    """Move the order and, when it moved and has a ``notify_url``, queue the notification in the
    same transaction."""
    event = move(session, order, target, reason)
    if event is not None:
        from worker import metrics

        metrics.count_transition(order.provider, event.from_state, event.to_state)
    if event is not None and order.notify_url:
        from worker.outbox import enqueue

        session.flush()
        enqueue(session, "worker.tasks.notify", order.id, event.id)
    return event is not None


def paused(session: Session, provider: str) -> ProviderState | None:
    state = session.get(ProviderState, provider)
    return state if state is not None and state.paused else None


def set_paused(session: Session, provider: str, paused_now: bool, reason: str | None) -> None:
    state = session.get(ProviderState, provider)
    if state is None:
        state = ProviderState(provider=provider)
        session.add(state)
    state.paused = paused_now
    state.reason = reason
    state.changed_at = utcnow()


def paused_providers(session: Session) -> list[ProviderState]:
    return list(session.scalars(select(ProviderState).where(ProviderState.paused.is_(True))))


def expected_numbers(order: Order) -> int:
    """How many numbers fulfil the order: a range order (cm ``range_size``) gets that many
    consecutive numbers per unit of quantity."""
    range_size = (order.options or {}).get("range_size")
    return order.quantity * (range_size if isinstance(range_size, int) and range_size > 0 else 1)


def settle(
    session: Session, order: Order, target: OrderState, error: dict[str, Any] | None
) -> None:
    """A permanent end: keep what was acquired (partially_fulfilled) or end as ``target``."""
    order.last_error = error
    order.next_attempt_at = None
    numbers = len(order.numbers)
    if target in (OrderState.FAILED, OrderState.NEEDS_ACTION) and 0 < numbers < expected_numbers(
        order
    ):
        target = OrderState.PARTIALLY_FULFILLED
    change_state(session, order, target, (error or {}).get("message"))


def credit_numbers(
    session: Session, order: Order, attempt: Attempt | None, numbers: list[Acquired], *, limit: int
) -> int:
    """Credit up to ``limit`` numbers that no other order holds. UNIQUE(provider, number) is
    the guard: two orders reconciling at once can never both take the same number."""
    credited = 0
    for acquired in numbers:
        if credited >= limit:
            break
        row = {
            "order_id": order.id,
            "attempt_id": attempt.id if attempt else None,
            "provider": order.provider,
            "number": acquired.number,
            "provider_number_id": acquired.provider_number_id,
            "details": acquired.details or None,
        }
        # The rows it refers to are committed already: pending changes (the attempt's outcome)
        # can wait for the commit and go out as one UPDATE.
        with session.no_autoflush:
            number_id = session.scalar(_insert_unless_held(session), row)
        if number_id is None:
            continue  # another order (or this one, on a repeated delivery) holds it
        if attempt is not None:
            attempt.number = acquired.number
        credited += 1
    session.expire(order, ["numbers"])
    return credited


_CREDIT: dict[str, Any] = {}  # dialect name -> the statement


def _insert_unless_held(session: Session) -> Any:
    """``INSERT … ON CONFLICT (provider, number) DO NOTHING RETURNING id``: one statement where
    a savepoint around a plain INSERT would cost three (both backends speak it). Built once
    per dialect; only its parameters change."""
    dialect = session.get_bind().dialect.name
    statement = _CREDIT.get(dialect)
    if statement is None:
        insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
        statement = _CREDIT[dialect] = (
            insert(table_of(Number))
            .on_conflict_do_nothing(index_elements=["provider", "number"])
            .returning(Number.id)
        )
    return statement
