"""Placing an order with its provider: claim it, settle unknown outcomes, rent exactly once.

Every purchase is recorded (committed) before it is sent and its outcome after; an attempt
whose outcome is unknown is reconciled against what the account owns before anything is sent
again (DESIGN.md section 1). The adapter talks HTTP; this module owns the database.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from models.config import Settings, get_settings
from models.db import session_scope
from models.states import OrderState
from models.tables import Attempt, Order, utcnow
from worker import metrics
from worker.delayed import apply_request_status
from worker.orders import (
    change_state,
    credit_numbers,
    expected_numbers,
    paused,
    set_paused,
    settle,
    spec_of,
)
from worker.outbox import enqueue
from worker.providers.base import (
    OrderSpec,
    Provider,
    ProviderError,
    Purchase,
)
from worker.providers.registry import UnconfiguredProvider, get_client
from worker.retry import RetryPolicy

log = structlog.get_logger(__name__)
T = TypeVar("T")

S = OrderState
WORKABLE = (S.QUEUED.value, S.IN_PROGRESS.value)
# Purchase outcomes that leave the provider's side unknown: reconcile before sending again.
UNSETTLED = (None, "ambiguous", "unattributed")
MAX_SEARCHES = 3
PLACE_TASK = "worker.tasks.place_order"


class ClaimLost(Exception):
    """Another task holds the order now (ours expired): stop before sending anything."""


# -- claiming -------------------------------------------------------------------------------


def claim(order_id: str, task_id: str, ttl_s: float, states: tuple[str, ...] = WORKABLE) -> bool:
    """Take the order for this task, atomically. Only one task at a time works an order; a
    claim left by a killed worker expires and the sweep re-drives the order."""
    with session_scope() as session:
        return claim_in(session, order_id, task_id, ttl_s, states) is not None


def claim_in(
    session: Session, order_id: str, task_id: str, ttl_s: float, states: tuple[str, ...] = WORKABLE
) -> Order | None:
    """Claim and load the order in one statement (UPDATE … RETURNING); None: not ours."""
    now = utcnow()
    claimed = session.scalars(
        update(Order)
        .where(
            Order.id == order_id,
            Order.state.in_(states),
            or_(Order.claim_expires_at.is_(None), Order.claim_expires_at < now),
        )
        .values(claimed_by=task_id, claim_expires_at=now + dt.timedelta(seconds=ttl_s))
        .returning(Order)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return claimed.one_or_none()


def release(order_id: str, task_id: str) -> None:
    with session_scope() as session:
        session.execute(
            update(Order)
            .where(Order.id == order_id, Order.claimed_by == task_id)
            .values(claimed_by=None, claim_expires_at=None)
            .execution_options(synchronize_session=False)
        )


def _wake_later(order_id: str, seconds: float) -> None:
    with session_scope() as session:
        session.execute(
            update(Order)
            .where(Order.id == order_id, Order.state.in_(WORKABLE))
            .values(next_attempt_at=utcnow() + dt.timedelta(seconds=seconds))
            .execution_options(synchronize_session=False)
        )


def place(order_id: str, task_id: str) -> None:
    """The body of the ``place_order`` task."""
    settings = get_settings()
    placement = Placement(order_id, task_id, settings)
    try:
        if placement.start():
            placement.run()
    except ClaimLost:
        log.warning("order.claim_lost", order_id=order_id)
    except Exception:
        # A bug or a database blip: make sure the sweep looks at the order again.
        _wake_later(order_id, settings.claim_ttl_s)
        raise
    finally:
        if placement.claimed and not placement.released:
            release(order_id, task_id)


def close_attempt(
    attempt: Attempt,
    started: float,
    outcome: str,
    *,
    error: ProviderError | None = None,
) -> None:
    attempt.outcome = outcome
    attempt.finished_at = utcnow()
    seconds = time.monotonic() - started
    attempt.duration_ms = round(seconds * 1000, 2)
    if error is not None:
        attempt.status_code = error.status_code
        attempt.provider_code = error.provider_code
        attempt.error = f"{error.kind}: {error.message}"
    metrics.observe_provider_call(
        attempt.provider,
        attempt.operation,
        outcome,
        error.provider_code or error.kind if error else None,
        seconds,
    )


def record_call(
    order_id: str, provider: str, operation: str, request: Any, fn: Callable[[], T]
) -> T:
    """A read call (search, list, fetch): timed and recorded as an attempt after it returns."""
    started_at, started = utcnow(), time.monotonic()
    error: ProviderError | None = None
    try:
        return fn()
    except ProviderError as exc:
        error = exc
        raise
    finally:
        outcome = (
            "success"
            if error is None
            else "transient"
            if error.kind == "transient"
            else "permanent"
        )
        with session_scope() as session:
            attempt = Attempt(
                order_id=order_id,
                provider=provider,
                operation=operation,
                request=request,
                started_at=started_at,
            )
            close_attempt(attempt, started, outcome, error=error)
            session.add(attempt)


# -- one run over an order ------------------------------------------------------------------


@dataclass
class Prepared:
    """A purchase whose attempt is committed and whose call is not sent yet."""

    attempt: Attempt
    body: dict[str, Any]
    candidate: str | None


@dataclass
class Placement:
    order_id: str
    task_id: str
    settings: Settings
    policy: RetryPolicy = field(init=False)
    client: Provider = field(init=False)
    spec: OrderSpec = field(init=False)
    voice_only: bool = False
    tried: set[str] = field(default_factory=set)
    candidates: list[str] = field(default_factory=list)
    searches: int = 0
    # Numbers still to acquire; kept up to date by every transaction that credits one.
    needed: int = 0
    unknown: list[Attempt] = field(default_factory=list)
    # The first purchase, committed with the claim when nothing has to be asked first.
    prepared: Prepared | None = None
    # The order as this run last wrote it (see ``_order``).
    order: Order | None = None
    claimed: bool = False
    released: bool = False
    last_unavailable: ProviderError | None = None

    def __post_init__(self) -> None:
        self.policy = RetryPolicy.from_settings(self.settings)

    def run(self) -> None:
        """After ``start``: settle unknown outcomes, then rent what is still needed."""
        if not self._settle_unknown_outcomes():
            return
        if not self.client.rents_one_per_call:
            self._rent_all()
            return
        while self.needed > 0:
            if not self._rent_one():
                return
        if not self.released:
            self._finish()  # reconciliation credited the last number

    # -- steps ------------------------------------------------------------------------------

    def start(self) -> bool:
        """Claim the order and mark it in progress, in one transaction; when the first
        purchase needs nothing asked first, its attempt commits in it too. False: nothing to
        do (claimed elsewhere, settled, provider paused or unusable)."""
        with session_scope() as session:
            order = claim_in(session, self.order_id, self.task_id, self.settings.claim_ttl_s)
            self.claimed = order is not None
            if order is None:
                log.info("order.not_claimed", order_id=self.order_id)
                return False
            self.order = order
            if not self._usable(session, order):
                self._release_in(order)
                return False
            if order.state == S.QUEUED:
                change_state(session, order, S.IN_PROGRESS, "picked up by a worker")
            if order.deadline_at is None:
                order.deadline_at = utcnow() + dt.timedelta(seconds=self.policy.deadline_s)
            order.next_attempt_at = None
            self.spec = spec_of(order)
            structlog.contextvars.bind_contextvars(provider=order.provider)
            self._read_history(session, order)
            self._prepare_first_purchase(session, order)
        return True

    def _read_history(self, session: Session, order: Order) -> None:
        """What earlier runs left: numbers credited, unknown outcomes, numbers refused. An
        order never sent to its provider has none (each purchase counts in attempt_count)."""
        self.needed = expected_numbers(order)
        if order.attempt_count == 0:
            return
        self.needed -= len(order.numbers)
        attempts = list(session.scalars(select(Attempt).where(Attempt.order_id == self.order_id)))
        self.unknown = [a for a in attempts if a.operation == "purchase" and a.outcome in UNSETTLED]
        self.voice_only = self.spec.sms is not True and any(
            a.provider_code == "has-voice-only" for a in attempts
        )
        self.tried = {
            a.number
            for a in attempts
            if a.operation == "purchase" and a.outcome == "permanent" and a.number
        }

    def _prepare_first_purchase(self, session: Session, order: Order) -> None:
        """Record the first purchase in the claim's transaction (one commit less per order)
        unless something must be asked first: unknown outcomes, or candidates to search."""
        if self.unknown or self.needed <= 0:
            return
        candidate = None
        if self.client.needs_candidates:
            if not self.spec.phone_number or self.spec.phone_number in self.tried:
                return
            candidate = self.spec.phone_number
        body = self.client.build_request(self.spec, candidate, voice_only=self.voice_only)
        attempt = self._add_attempt(session, order, body, candidate)
        self.prepared = Prepared(attempt, body, candidate)

    def _usable(self, session: Session, order: Order) -> bool:
        if order.state not in WORKABLE:
            return False
        pause = paused(session, order.provider)
        if pause is not None:
            self._wait_for_resume(session, order, pause.reason)
            return False
        try:
            self.client = get_client(order.provider, self.settings)
        except UnconfiguredProvider:
            error = {
                "code": "provider_unconfigured",
                "message": f"{order.provider} has no credentials configured",
            }
            settle(session, order, S.FAILED, error)
            return False
        return True

    def _release_in(self, order: Order) -> None:
        """Give the claim back inside the transaction that ends this run (one commit less)."""
        if order.claimed_by == self.task_id:
            order.claimed_by = None
            order.claim_expires_at = None
        self.released = True

    def _settle_unknown_outcomes(self) -> bool:
        """Reconcile every purchase whose outcome is unknown. False: stop this run."""
        unknown = self.unknown
        for attempt in unknown:
            try:
                found = self._reconcile(attempt.request or {}, attempt.started_at)
            except ProviderError as error:
                return self._on_error(None, error)
            if not self._apply_reconciliation(attempt, found):
                return False
        return True

    def _apply_reconciliation(self, attempt: Attempt, found: Purchase | None) -> bool:
        with session_scope() as session:
            row = session.get(Attempt, attempt.id)
            assert row is not None
            order = self._order(session)
            if found is not None and found.request_id:
                # A delayed request was created after all: follow it, never create another.
                row.outcome = "success"
                apply_request_status(session, order, row, found, self.settings)
                return False
            credited = credit_numbers(session, order, row, found.numbers if found else [], limit=1)
            if credited:
                row.outcome = "success"
                row.error = (row.error or "") + " [reconciled: the provider had rented it]"
                self.needed -= credited
                return True
            if row.outcome == "unattributed":
                # The provider said it rented; the number is not listed yet. Never re-send.
                error = {
                    "code": "unattributed",
                    "message": "rented, but the number is not listed yet",
                }
                return self._schedule_retry(session, order, error, None)
            row.outcome = "not_rented"
            row.finished_at = row.finished_at or utcnow()
            return True

    def _rent_one(self) -> bool:
        """One purchase for one number. True: go on with the next number."""
        purchase = self.prepared
        self.prepared = None
        if purchase is None:
            candidate = None
            if self.client.needs_candidates:
                try:
                    candidate = self._next_candidate()
                except ProviderError as error:
                    return self._on_error(None, error)
                if candidate is None:
                    return self._give_up_on_candidates()
            body = self.client.build_request(self.spec, candidate, voice_only=self.voice_only)
            purchase = Prepared(self._begin_attempt(body, candidate), body, candidate)
        started = time.monotonic()
        try:
            result = self.client.purchase(purchase.body)
        except ProviderError as error:
            self._end_attempt(purchase.attempt, started, error)
            return self._on_error(purchase.attempt.id, error, purchase.candidate)
        return self._on_purchase(purchase.attempt, started, result, purchase.body)

    def _rent_all(self) -> None:
        """Providers that deliver the whole quantity from one request (cm)."""
        purchase = self.prepared
        self.prepared = None
        if purchase is None:
            body = self.client.build_request(self.spec, None)
            purchase = Prepared(self._begin_attempt(body, None), body, None)
        attempt = purchase.attempt
        started = time.monotonic()
        try:
            result = self.client.purchase(purchase.body)
        except ProviderError as error:
            self._end_attempt(attempt, started, error)
            self._on_error(attempt.id, error)
            return
        with session_scope() as session:
            order = self._order(session)
            session.add(attempt)
            close_attempt(attempt, started, "success")
            apply_request_status(session, order, attempt, result, self.settings)

    # -- purchase outcomes ------------------------------------------------------------------

    def _on_purchase(
        self, attempt: Attempt, started: float, result: Purchase, body: dict[str, Any]
    ) -> bool:
        with session_scope() as session:
            order = self._order(session)
            # Ours since it was committed: only the task holding the claim writes it.
            session.add(attempt)
            if result.costs:
                order.costs = result.costs
            if result.numbers:
                close_attempt(attempt, started, "success")
                credited = credit_numbers(
                    session, order, attempt, result.numbers, limit=self.needed
                )
                self.needed -= credited
                order.retry_count = 0
                if self.needed <= 0:
                    self._fulfil(session, order)  # the last number: finish in this commit
                return True
            # Rented, number not in the answer (close's empty 201): find it by listing.
            close_attempt(attempt, started, "unattributed")
        try:
            found = self._reconcile(body, attempt.started_at)
        except ProviderError as error:
            return self._on_error(None, error)
        return self._apply_reconciliation(attempt, found)

    def _on_error(
        self, attempt_id: int | None, error: ProviderError, candidate: str | None = None
    ) -> bool:
        """Map the error to what happens next. True: go on renting in this run."""
        log.info(
            "provider.error",
            order_id=self.order_id,
            provider=error.provider,
            kind=error.kind,
            status=error.status_code,
            code=error.provider_code,
        )
        kind = error.kind
        if kind == "voice_only" and not self.voice_only and self.spec.sms is not True:
            self.voice_only = True  # seed 000: try again with with_sms=false
            return True
        if kind == "unavailable" and candidate is not None:
            self.tried.add(candidate)
            self.last_unavailable = error
            return True
        with session_scope() as session:
            order = self._order(session)
            if kind == "transient":
                return self._schedule_retry(session, order, error.as_dict(), error.retry_after)
            if kind == "auth":
                reason = f"credentials refused ({error.status_code})"
                set_paused(session, order.provider, True, reason)
                self._wait_for_resume(session, order, reason, error.status_code)
                return False
            if kind == "billing":
                set_paused(session, order.provider, True, f"billing error: {error.message}")
            target = S.NEEDS_ACTION if kind == "needs_action" else S.FAILED
            settle(session, order, target, error.as_dict())
            return False

    # -- state ------------------------------------------------------------------------------

    def _finish(self) -> None:
        with session_scope() as session:
            self._fulfil(session, self._order(session))

    def _fulfil(self, session: Session, order: Order) -> None:
        # The count is known; reading order.numbers back would cost a query per order.
        change_state(session, order, S.FULFILLED, f"{expected_numbers(order)} number(s) acquired")
        order.last_error = None
        self._release_in(order)

    def _schedule_retry(
        self, session: Session, order: Order, error: dict[str, Any], retry_after: float | None
    ) -> bool:
        now = utcnow()
        when = self.policy.next_attempt(
            retry_after, order.retry_count, now, order.deadline_at or now
        )
        order.last_error = error
        if when is None:
            tries = order.retry_count + 1
            settle(
                session,
                order,
                S.FAILED,
                {**error, "message": f"gave up after {tries} tries: {error['message']}"},
            )
            return False
        order.retry_count += 1
        order.next_attempt_at = when
        metrics.count_retry(order.provider, str(error.get("code")))
        delay = (when - now).total_seconds()
        if delay <= self.settings.countdown_limit_s:
            enqueue(session, PLACE_TASK, order.id, countdown=delay)
        return False

    def _give_up_on_candidates(self) -> bool:
        """No number left to try: say which, and keep the provider's own last word."""
        gone = self.last_unavailable
        if self.spec.phone_number:
            message = f"{self.spec.phone_number} is not available"
        else:
            message = "no available number matches the order"
        error: dict[str, Any] = {"code": "no_candidates", "message": message}
        if gone is not None:
            error.update(
                message=f"{message}: {gone.message}",
                provider_status=gone.provider_code,
                http_status=gone.status_code,
            )
        with session_scope() as session:
            settle(session, self._order(session), S.FAILED, error)
        return False

    def _wait_for_resume(
        self, session: Session, order: Order, reason: str | None, http_status: int | None = None
    ) -> None:
        """A paused provider: the order waits, queued and visible, until an operator resumes."""
        order.next_attempt_at = None
        order.last_error = {
            "code": "provider_paused",
            "message": f"{order.provider} is paused: {reason or 'by an operator'}",
            "http_status": http_status,
        }
        if order.state == S.IN_PROGRESS:
            change_state(session, order, S.QUEUED, f"{order.provider} paused: {reason}")

    # -- records ----------------------------------------------------------------------------

    def _begin_attempt(self, body: dict[str, Any], candidate: str | None) -> Attempt:
        """Commit the attempt before the call: if we die mid-call, it is found unsettled."""
        with session_scope() as session:
            order = self._order(session)
            # Lost the claim, or an operator cancelled meanwhile: send nothing.
            if order.claimed_by != self.task_id or order.state != S.IN_PROGRESS:
                raise ClaimLost(self.order_id)
            return self._add_attempt(session, order, body, candidate)

    def _add_attempt(
        self, session: Session, order: Order, body: dict[str, Any], candidate: str | None
    ) -> Attempt:
        order.claim_expires_at = utcnow() + dt.timedelta(seconds=self.settings.claim_ttl_s)
        order.attempt_count += 1
        attempt = Attempt(
            order_id=order.id,
            provider=order.provider,
            operation="purchase",
            request=body,
            number=candidate,
        )
        session.add(attempt)
        session.flush()  # its id, for the log and the numbers it will credit
        return attempt

    def _end_attempt(self, attempt: Attempt, started: float, error: ProviderError) -> None:
        outcome = (
            "ambiguous"
            if type(error).__name__ == "AmbiguousOutcome"
            else ("transient" if error.kind == "transient" else "permanent")
        )
        with session_scope() as session:
            session.add(attempt)
            close_attempt(attempt, started, outcome, error=error)

    def _call(self, operation: str, request: Any, fn: Callable[[], T]) -> T:
        return record_call(self.order_id, self.spec.provider, operation, request, fn)

    def _next_candidate(self) -> str | None:
        if self.spec.phone_number:
            return None if self.spec.phone_number in self.tried else self.spec.phone_number
        while not self.candidates:
            if self.searches >= MAX_SEARCHES:
                return None
            self.searches += 1
            limit = self.needed + 5
            found = self._search(limit)
            self.candidates = [c for c in found if c not in self.tried]
            if not found:
                return None
        return self.candidates.pop(0)

    def _reconcile(self, body: dict[str, Any], since: dt.datetime) -> Purchase | None:
        return self._call("reconcile", body, lambda: self.client.reconcile(self.spec, body, since))

    def _search(self, limit: int) -> list[str]:
        return self._call("search", {"limit": limit}, lambda: self.client.search(self.spec, limit))

    def _order(self, session: Session) -> Order:
        """The order, for one more transaction of this run. While the claim is ours (checked
        under a row lock) nobody else writes the order, so the object this run last wrote is
        taken back instead of read again: the widest row of the hot path, JSON columns and
        all. A claim lost meanwhile means a fresh read."""
        held = self.order
        if held is not None and _claimed_by(session, self.order_id) == self.task_id:
            session.add(held)
            return held
        order = session.get(Order, self.order_id)
        if order is None:
            raise LookupError(self.order_id)
        self.order = order
        return order


def _claimed_by(session: Session, order_id: str) -> str | None:
    return session.scalar(select(Order.claimed_by).where(Order.id == order_id).with_for_update())
