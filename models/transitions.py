"""The only way an order changes state: checked against the table, recorded as an event."""

from __future__ import annotations

from sqlalchemy.orm import Session

from models.states import IllegalTransition, OrderState, can_move
from models.tables import Order, OrderEvent, utcnow


def move(
    session: Session, order: Order, target: OrderState, reason: str | None = None
) -> OrderEvent | None:
    """Move ``order`` to ``target`` and return the event written; a repeat of the current state
    is a no-op (deliveries and tasks run twice) and returns None; anything off the table raises."""
    current = OrderState(order.state)
    if current == target:
        return None
    if not can_move(current, target):
        raise IllegalTransition(current, target)
    order.state = target.value
    order.updated_at = utcnow()
    event = OrderEvent(
        order_id=order.id, from_state=current.value, to_state=target.value, reason=reason
    )
    session.add(event)
    return event


def created_event(order: Order) -> OrderEvent:
    """The first event of every order: it exists, queued. Written with the order itself."""
    return OrderEvent(
        order_id=order.id,
        at=order.created_at,
        from_state=None,
        to_state=order.state,
        reason="created",
    )
