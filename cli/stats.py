"""What ``numbers stats`` reports, as plain data (the CLI prints it, ``--json`` dumps it)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import case, func, select

from models.config import get_settings
from models.db import session_factory
from models.tables import Attempt, Order, ProviderState, utcnow
from worker.outbox import backlog
from worker.providers.registry import PROVIDERS, is_configured


def collect() -> dict[str, Any]:
    now = utcnow()
    with session_factory()() as session:
        orders: dict[str, dict[str, int]] = {}
        rows = session.execute(
            select(Order.state, Order.provider, func.count()).group_by(Order.state, Order.provider)
        )
        for state, provider, count in rows:
            orders.setdefault(state, {})[provider] = count
        return {
            "orders": orders,
            "queues": queue_depths(),
            "oldest_queued_s": _age(session, "queued", now),
            "oldest_waiting_provider_s": _age(session, "waiting_provider", now),
            "providers": _provider_health(session, now),
            "paused": [
                p.provider
                for p in session.scalars(
                    select(ProviderState).where(ProviderState.paused.is_(True))
                )
            ],
            "outbox_backlog": backlog(session),
        }


def _age(session: Any, state: str, now: dt.datetime) -> float | None:
    oldest = session.scalar(select(func.min(Order.created_at)).where(Order.state == state))
    if oldest is None:
        return None
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    return round((now - oldest).total_seconds(), 1)


def _provider_health(session: Any, now: dt.datetime) -> dict[str, dict[str, Any]]:
    since = now - dt.timedelta(hours=1)
    failed = case((Attempt.outcome.in_(["transient", "permanent", "ambiguous"]), 1), else_=0)
    rows = session.execute(
        select(Attempt.provider, func.count(), func.sum(failed))
        .where(Attempt.started_at >= since)
        .group_by(Attempt.provider)
    )
    health = {name: {"calls": 0, "errors": 0, "error_rate": 0.0} for name in PROVIDERS}
    for provider, calls, errors in rows:
        errors = int(errors or 0)
        health[provider] = {
            "calls": calls,
            "errors": errors,
            "error_rate": round(errors / calls, 3) if calls else 0.0,
        }
    return health


def queue_depths() -> dict[str, int | None]:
    from worker.app import QUEUES, app

    depths: dict[str, int | None] = {}
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            channel = conn.default_channel
            for queue in QUEUES:
                try:
                    depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except Exception:
                    depths[queue] = 0  # never declared: nothing was ever sent there
    except Exception:
        return dict.fromkeys(QUEUES)
    return depths


def provider_rows() -> list[dict[str, Any]]:
    settings = get_settings()
    with session_factory()() as session:
        states = {p.provider: p for p in session.scalars(select(ProviderState))}
    return [
        {
            "provider": name,
            "configured": is_configured(name, settings),
            "paused": bool(states.get(name) and states[name].paused),
            "reason": states[name].reason if name in states else None,
        }
        for name in PROVIDERS
    ]
