"""What operators and upstream apps do to an existing order or a provider: retry, cancel,
pause, resume. Shared by the API, the CLI and the operator page."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.states import CANCELLABLE, RETRYABLE, OrderState
from models.tables import Order, utcnow
from worker.orders import change_state, set_paused
from worker.outbox import enqueue
from worker.placement import PLACE_TASK

S = OrderState
CANCEL_TASK = "worker.tasks.cancel_request"


class NotAllowed(Exception):
    """The order's state does not allow this action; the message says why."""


def _lock(session: Session, order: Order) -> None:
    """Re-read the row under a lock (PostgreSQL): a worker's claim cannot slip in between our
    check and our write."""
    session.refresh(order, with_for_update=True)


def retry(session: Session, order: Order, actor: str = "operator") -> None:
    _lock(session, order)
    if OrderState(order.state) not in RETRYABLE:
        raise NotAllowed(
            f"only failed or needs_action orders can be retried; this one is {order.state}"
        )
    change_state(session, order, S.QUEUED, f"retried by {actor}")
    order.retry_count = 0
    order.deadline_at = None
    order.next_attempt_at = utcnow()
    order.flagged = None
    enqueue(session, PLACE_TASK, order.id)
    session.commit()


def cancel(session: Session, order: Order, actor: str = "operator") -> None:
    """Cancel now when nothing is in flight; a pending provider request is cancelled at the
    provider first (the order is cancelled when the provider confirms)."""
    _lock(session, order)
    state = OrderState(order.state)
    if state not in CANCELLABLE:
        raise NotAllowed(f"a {order.state} order cannot be cancelled")
    if state == S.WAITING_PROVIDER:
        enqueue(session, CANCEL_TASK, order.id)
        session.commit()
        return
    if order.claim_expires_at is not None and order.claim_expires_at > utcnow():
        raise NotAllowed("a worker is placing this order right now; try again in a moment")
    change_state(session, order, S.CANCELLED, f"cancelled by {actor}")
    order.next_attempt_at = None
    session.commit()


def pause_provider(session: Session, provider: str, reason: str) -> None:
    set_paused(session, provider, True, reason)
    session.commit()


def resume_provider(session: Session, provider: str) -> int:
    """Un-pause and wake every order that waited for it. Returns how many were woken."""
    set_paused(session, provider, False, None)
    now = utcnow()
    waiting = list(
        session.scalars(
            select(Order.id).where(
                Order.provider == provider,
                Order.state.in_([S.QUEUED.value, S.IN_PROGRESS.value]),
            )
        )
    )
    if waiting:
        session.execute(
            update(Order)
            .where(Order.id.in_(waiting))
            .values(next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
    for order_id in waiting:
        enqueue(session, PLACE_TASK, order_id)
    session.commit()
    return len(waiting)
