"""Order states and the one table of allowed transitions."""

from __future__ import annotations

import enum


class OrderState(enum.StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    WAITING_PROVIDER = "waiting_provider"
    FULFILLED = "fulfilled"
    PARTIALLY_FULFILLED = "partially_fulfilled"
    NEEDS_ACTION = "needs_action"
    FAILED = "failed"
    CANCELLED = "cancelled"


S = OrderState

TERMINAL = frozenset({S.FULFILLED, S.PARTIALLY_FULFILLED, S.NEEDS_ACTION, S.FAILED, S.CANCELLED})
RETRYABLE = frozenset({S.FAILED, S.NEEDS_ACTION})
CANCELLABLE = frozenset({S.QUEUED, S.IN_PROGRESS, S.WAITING_PROVIDER, S.NEEDS_ACTION, S.FAILED})

# Every allowed move. Self-loops are written out where a repeat is normal (a paused provider
# sends an in-progress order back to queued more than once; a delayed order gets status updates).
TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    S.QUEUED: frozenset({S.IN_PROGRESS, S.FAILED, S.CANCELLED}),
    S.IN_PROGRESS: frozenset(
        {
            S.QUEUED,
            S.WAITING_PROVIDER,
            S.FULFILLED,
            S.PARTIALLY_FULFILLED,
            S.NEEDS_ACTION,
            S.FAILED,
            S.CANCELLED,
        }
    ),
    S.WAITING_PROVIDER: frozenset(
        {S.FULFILLED, S.PARTIALLY_FULFILLED, S.NEEDS_ACTION, S.FAILED, S.CANCELLED}
    ),
    S.FULFILLED: frozenset(),
    S.PARTIALLY_FULFILLED: frozenset(),
    S.NEEDS_ACTION: frozenset({S.QUEUED, S.CANCELLED}),
    S.FAILED: frozenset({S.QUEUED, S.CANCELLED}),
    S.CANCELLED: frozenset(),
}

# How far along an order is: a callback or a poll never moves an order to a lower rank.
RANK: dict[OrderState, int] = {
    S.QUEUED: 0,
    S.IN_PROGRESS: 1,
    S.WAITING_PROVIDER: 2,
    S.NEEDS_ACTION: 3,
    S.FAILED: 3,
    S.PARTIALLY_FULFILLED: 4,
    S.FULFILLED: 4,
    S.CANCELLED: 4,
}


class IllegalTransition(Exception):
    def __init__(self, current: OrderState, target: OrderState) -> None:
        super().__init__(f"an order cannot move from {current} to {target}")
        self.current = current
        self.target = target


def can_move(current: OrderState, target: OrderState) -> bool:
    return target in TRANSITIONS[current]
