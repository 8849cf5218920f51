"""``GET /metrics``: Prometheus text. No auth, as is usual for a scrape endpoint; nothing secret
is in it (names of states, providers and queues, counts and ages).

Two sources: the counters and histograms of ``worker.metrics`` (summed over every process's
files when ``PROMETHEUS_MULTIPROC_DIR`` is set), and gauges read at scrape time from the
database and the broker. Flower exports neither queue lengths nor message ages, so they are here.
Every query is a GROUP BY, a COUNT or a MIN that an existing index serves.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Iterator
from typing import Any

import structlog
from flask import Blueprint, Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import worker.metrics  # noqa: F401  (defines the counters, so a fresh process shows them at 0)
from models.db import session_factory
from models.states import OrderState
from models.tables import Order, ProviderState, utcnow
from worker.outbox import backlog

log = structlog.get_logger(__name__)
bp = Blueprint("metrics", __name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
AGED_STATES = (OrderState.QUEUED.value, OrderState.WAITING_PROVIDER.value)


@bp.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(scrape_registry()), mimetype=None, content_type=CONTENT_TYPE)


def scrape_registry() -> CollectorRegistry:
    """A registry for one scrape: this service's gauges plus the counters of every process."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_ProcessMetrics())
    registry.register(StateCollector())
    return registry


class _ProcessMetrics(Collector):
    """This process's own metrics (plain mode: one process holds them all)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class StateCollector(Collector):
    """Gauges computed from the database and the broker when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        yield from self._database()
        yield from self._broker()

    def _database(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "numbers_database_up", "1 when the scrape could read the database, else 0."
        )
        try:
            with session_factory()() as session:
                families = list(database_gauges(session, utcnow()))
        except Exception as exc:  # the scrape still serves the counters and says the DB is down
            log.warning("metrics.database_failed", error=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _broker(self) -> Iterator[Metric]:
        from cli.stats import queue_depths

        depths = queue_depths()
        up = GaugeMetricFamily("numbers_broker_up", "1 when the scrape could read the broker.")
        up.add_metric([], 0 if any(v is None for v in depths.values()) else 1)
        yield up
        length = GaugeMetricFamily(
            "numbers_queue_length", "Messages waiting in each Celery queue.", labels=["queue"]
        )
        for queue, depth in depths.items():
            if depth is not None:
                length.add_metric([queue], depth)
        yield length


def database_gauges(session: Session, now: dt.datetime) -> Iterator[Metric]:
    yield _orders(session)
    yield _single("numbers_outbox_backlog", "Outbox rows not yet published.", backlog(session))
    yield _oldest_orders(session, now)
    yield _oldest_message(session, now)
    yield _paused(session)


def _orders(session: Session) -> Metric:
    from worker.providers.registry import PROVIDERS

    # Every state x provider, zeros included: an alert on a series that appears later misfires.
    counts = {(s.value, p): 0 for s in OrderState for p in PROVIDERS}
    rows = session.execute(
        select(Order.state, Order.provider, func.count()).group_by(Order.state, Order.provider)
    )
    for state, provider, count in rows:
        counts[(state, provider)] = count
    family = GaugeMetricFamily(
        "numbers_orders", "Orders by state and provider.", labels=["state", "provider"]
    )
    for (state, provider), count in sorted(counts.items()):
        family.add_metric([state, provider], count)
    return family


def _oldest_orders(session: Session, now: dt.datetime) -> Metric:
    family = GaugeMetricFamily(
        "numbers_oldest_order_age_seconds",
        "Age of the oldest order in the state (0 when there is none).",
        labels=["state"],
    )
    for state in AGED_STATES:
        oldest = session.scalar(select(func.min(Order.created_at)).where(Order.state == state))
        family.add_metric([state], _age(now, oldest))
    return family


def _oldest_message(session: Session, now: dt.datetime) -> Metric:
    """The broker keeps no enqueue time we can read cheaply on both transports; the oldest due
    queued order (due since ``next_attempt_at``) stands for the oldest message on "orders"."""
    family = GaugeMetricFamily(
        "numbers_queue_oldest_message_age_seconds",
        "Approximate age of the oldest message waiting in the queue (0 when none).",
        labels=["queue"],
    )
    due = session.scalar(
        select(func.min(Order.next_attempt_at)).where(
            Order.state == OrderState.QUEUED.value, Order.next_attempt_at <= now
        )
    )
    family.add_metric(["orders"], _age(now, due))
    return family


def _paused(session: Session) -> Metric:
    from worker.providers.registry import PROVIDERS

    paused = {p: 0 for p in PROVIDERS}
    for state in session.scalars(select(ProviderState)):
        paused[state.provider] = int(bool(state.paused))
    family = GaugeMetricFamily(
        "numbers_provider_paused", "1 while the provider is paused, else 0.", labels=["provider"]
    )
    for provider, value in sorted(paused.items()):
        family.add_metric([provider], value)
    return family


def _single(name: str, documentation: str, value: float) -> Metric:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


def _age(now: dt.datetime, since: Any) -> float:
    if since is None:
        return 0.0
    if since.tzinfo is None:  # SQLite hands back a naive value for an aggregate
        since = since.replace(tzinfo=dt.UTC)
    return max(0.0, round((now - since).total_seconds(), 3))
