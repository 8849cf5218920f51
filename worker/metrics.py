"""Prometheus counters and histograms that the worker and the web app update as things happen.

``/metrics`` (``webhooks.metrics``) serves them with gauges read from the database at scrape time.
With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn workers, Celery prefork children), prometheus_client
writes every process's values to files in that folder and the scrape sums them; without it the
values live in this process. prometheus_client picks the mode when it is first imported, so the
variable must be in the environment before the process starts.
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Histogram

# A missing folder would make every metric update raise; create it rather than lose the process.
if _dir := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(_dir, exist_ok=True)

# Labels are bounded: provider keys, operations and outcomes are fixed words; a provider's own
# error code is cut short so that a chatty provider cannot create unbounded series.
MAX_LABEL = 64

PROVIDER_CALL_SECONDS = Histogram(
    "numbers_provider_call_seconds",
    "Duration of calls to a provider's API.",
    ["provider", "operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PROVIDER_CALLS = Counter(
    "numbers_provider_calls",
    "Calls to a provider's API by outcome and the provider's own error code.",
    ["provider", "operation", "outcome", "error_code"],
)
ORDER_TRANSITIONS = Counter(
    "numbers_order_transitions",
    "Order state changes.",
    ["provider", "from_state", "to_state"],
)
ORDER_RETRIES = Counter(
    "numbers_order_retries",
    "Retries scheduled for orders, by reason.",
    ["provider", "reason"],
)
WEBHOOK_DELIVERIES = Counter(
    "numbers_webhook_deliveries",
    "Provider callbacks received, by result.",
    ["provider", "result"],
)
NOTIFICATIONS = Counter(
    "numbers_notifications",
    "Notifications sent to upstream apps, by result.",
    ["result"],
)


def _label(value: str | None) -> str:
    return (value or "")[:MAX_LABEL]


def observe_provider_call(
    provider: str, operation: str, outcome: str, error_code: str | None, seconds: float
) -> None:
    PROVIDER_CALL_SECONDS.labels(provider, operation).observe(max(seconds, 0.0))
    PROVIDER_CALLS.labels(provider, operation, _label(outcome), _label(error_code)).inc()


def count_transition(provider: str, from_state: str | None, to_state: str) -> None:
    ORDER_TRANSITIONS.labels(provider, _label(from_state), to_state).inc()


def count_retry(provider: str, reason: str) -> None:
    ORDER_RETRIES.labels(provider, _label(reason)).inc()


def count_webhook_delivery(provider: str, result: str) -> None:
    # The provider comes from the callback's URL: anything unknown shares one series.
    from worker.providers.registry import PROVIDERS

    known = provider if provider in PROVIDERS else "unknown"
    WEBHOOK_DELIVERIES.labels(known, _label(result)).inc()


def count_notification(result: str) -> None:
    NOTIFICATIONS.labels(_label(result)).inc()
