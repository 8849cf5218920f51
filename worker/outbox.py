"""The transactional outbox: a task is written with the change that wants it, published only
after that change commits, and re-published by a relay until the broker has taken it.

A broker outage delays orders; it never drops them (DESIGN.md section 3).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from typing import Any

import structlog
from sqlalchemy import delete, event, insert, select, update
from sqlalchemy.orm import Session

from models.db import session_scope
from models.tables import OutboxMessage, table_of, utcnow

log = structlog.get_logger(__name__)

# The relay leaves rows this young to the after-commit publisher, so a task is rarely sent twice.
RELAY_MIN_AGE = dt.timedelta(seconds=2)
RELAY_BATCH = 200
OUTBOX_INSERT = insert(table_of(OutboxMessage)).returning(OutboxMessage.id)
# What a session keeps to publish after it commits: (outbox row id, task name, payload).
Message = tuple[int, str, dict[str, Any]]


def enqueue(
    session: Session,
    task: str,
    *args: Any,
    countdown: float | None = None,
    by_relay: bool = False,
) -> None:
    """Write the wish to run ``task(*args)``; it is published after ``session`` commits, or
    with ``by_relay`` left to the relay (within seconds, in batches, off the request path).

    One INSERT … RETURNING id, not an ORM object: the row is never read back or changed in
    this transaction, and the unit of work around it cost more than the statement."""
    payload = {"args": list(args), "countdown": countdown}
    message_id = session.scalar(
        OUTBOX_INSERT, {"task": task, "args": payload, "created_at": utcnow()}
    )
    if not by_relay:
        session.info.setdefault("outbox", []).append((message_id, task, payload))


@event.listens_for(Session, "after_commit")
def _publish_after_commit(session: Session) -> None:
    """Enqueue only after commit: a task never sees an order its transaction did not keep."""
    messages: list[Message] = session.info.pop("outbox", [])
    if messages:
        _publish_and_mark(messages)


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous_transaction: Any) -> None:
    session.info.pop("outbox", None)


def _publish_and_mark(messages: list[Message]) -> None:
    sent: list[int] = []
    try:
        for message_id, task, payload in messages:
            _publish(task, payload)
            sent.append(message_id)
    except Exception as exc:  # the broker is down: the relay retries what is left
        log.warning(
            "outbox.publish_failed", error=type(exc).__name__, unsent=len(messages) - len(sent)
        )
    if sent:
        _marker().add(sent)


class SentMarker(threading.Thread):
    """Marks published rows sent in batches, off the request's path: a request or task pays
    for one transaction, not two. A mark lost with the process only means the relay publishes
    that task again, which every task tolerates."""

    def __init__(self, interval: float = 0.1) -> None:
        super().__init__(name="outbox-marker", daemon=True)
        self.interval = interval
        self._pending: list[int] = []
        self._lock = threading.Lock()  # guards _pending; add() never waits for the database
        # Held from taking a batch until its UPDATE commits, so a flush that returns has seen
        # every id added before it began marked, whichever thread's UPDATE did it.
        self._flushing = threading.Lock()
        self._wake = threading.Event()

    def add(self, ids: list[int]) -> None:
        with self._lock:
            self._pending.extend(ids)
        self._wake.set()

    def flush(self) -> None:
        with self._flushing:
            with self._lock:
                ids, self._pending = self._pending, []
            if ids:
                with session_scope() as session:
                    _mark_sent(session, ids)

    def run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            time.sleep(self.interval)  # let a burst gather into one UPDATE
            try:
                self.flush()
            except Exception as exc:  # the relay covers what stays unmarked
                log.warning("outbox.mark_failed", error=repr(exc))


_markers: dict[int, SentMarker] = {}
_markers_lock = threading.Lock()


def _marker() -> SentMarker:
    """The process's marker thread (a forked child starts its own)."""
    pid = os.getpid()
    marker = _markers.get(pid)
    if marker is None:
        with _markers_lock:
            marker = _markers.get(pid)
            if marker is None:
                marker = _markers[pid] = SentMarker()
                marker.start()
    return marker


def flush_marks() -> None:
    """Mark now what was published (tests, and before the relay looks)."""
    marker = _markers.get(os.getpid())
    if marker is not None:
        marker.flush()


def _mark_sent(session: Session, ids: list[int]) -> None:
    session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(sent_at=utcnow()))


def _publish(task: str, payload: dict[str, Any]) -> None:
    from worker.app import app

    app.send_task(
        task,
        args=payload.get("args", []),
        countdown=payload.get("countdown"),
        retry=False,
    )


def relay_once(limit: int = RELAY_BATCH) -> int:
    """Publish committed, unsent messages older than ``RELAY_MIN_AGE``. Returns how many.

    Rows stay locked (PostgreSQL: SKIP LOCKED, so relays on several hosts share the work) until
    they are marked sent in the same transaction.
    """
    flush_marks()
    cutoff = utcnow() - RELAY_MIN_AGE
    with session_scope() as session:
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.sent_at.is_(None), OutboxMessage.created_at <= cutoff)
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        sent: list[int] = []
        for message in session.scalars(query):
            try:
                _publish(message.task, message.args or {})
            except Exception as exc:
                log.warning("outbox.relay_publish_failed", error=type(exc).__name__)
                break
            sent.append(message.id)
        if sent:
            _mark_sent(session, sent)
    return len(sent)


def purge_sent(older_than: dt.timedelta = dt.timedelta(hours=1)) -> int:
    """Published rows are history: drop them so the outbox stays small."""
    with session_scope() as session:
        result = session.execute(
            delete(OutboxMessage).where(OutboxMessage.sent_at < utcnow() - older_than)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def backlog(session: Session) -> int:
    from sqlalchemy import func

    return (
        session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
        )
        or 0
    )


class RelayThread(threading.Thread):
    def __init__(self, interval: float) -> None:
        super().__init__(name="outbox-relay", daemon=True)
        self.interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                while relay_once() == RELAY_BATCH:
                    pass
            except Exception as exc:  # keep relaying: a database blip must not end the thread
                log.warning("outbox.relay_failed", error=repr(exc))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
