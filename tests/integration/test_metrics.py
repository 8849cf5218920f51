"""``GET /metrics``: gauges that match the database and the broker, the counters the code
updates, and prometheus_client's multiprocess mode across processes, forks and threads."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from models.db import session_factory
from models.tables import Order, OutboxMessage, utcnow
from tests.integration.helpers import create_order, run_placement
from worker.outbox import flush_marks

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: Any) -> Samples:
    response = client.get("/metrics", environ_base={"HTTP_AUTHORIZATION": ""})
    assert response.status_code == 200  # no auth, as Prometheus expects
    assert response.content_type.startswith("text/plain")
    return parse(response.get_data(as_text=True))


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def backdate(order_id: str, seconds: float, **values: Any) -> None:
    then = utcnow() - dt.timedelta(seconds=seconds)
    with session_factory()() as session:
        session.execute(update(Order).where(Order.id == order_id).values(created_at=then, **values))
        session.commit()


def test_gauges_match_the_database_and_the_broker(api: Any, sandbox: Any) -> None:
    queued = [create_order(area_code="415") for _ in range(3)]
    for prefix in ("666", "999", "402"):  # needs_action; failed; failed + close paused
        run_placement(create_order(area_code=prefix))
    waiting = create_order(provider="signalwire", area_code="415")
    backdate(queued[0], 120, next_attempt_at=utcnow() - dt.timedelta(seconds=60))
    backdate(waiting, 300, state="waiting_provider")
    with session_factory()() as session:
        session.add(OutboxMessage(task="worker.tasks.notify", args={"args": []}))  # never sent
        session.commit()
        by_db = {
            (state, provider): count
            for state, provider, count in session.execute(
                select(Order.state, Order.provider, func.count()).group_by(
                    Order.state, Order.provider
                )
            )
        }

    flush_marks()  # published rows are marked sent by a batching thread: settle that first
    samples = scrape(api)

    assert by_db[("queued", "close")] == 3 and by_db[("failed", "close")] == 2
    for state in ("queued", "in_progress", "waiting_provider", "needs_action", "failed"):
        for provider in ("close", "signalwire", "identitycall", "cm"):
            expected = by_db.get((state, provider), 0)
            assert value(samples, "numbers_orders", state=state, provider=provider) == expected
    assert value(samples, "numbers_provider_paused", provider="close") == 1
    assert value(samples, "numbers_provider_paused", provider="cm") == 0
    assert ("numbers_provider_paused", frozenset({("provider", "signalwire")})) in samples
    assert value(samples, "numbers_outbox_backlog") == 1
    # Every order created published one place_order message; nothing consumed them.
    assert value(samples, "numbers_queue_length", queue="orders") == 7
    assert value(samples, "numbers_queue_length", queue="callbacks") == 0
    assert 119 <= value(samples, "numbers_oldest_order_age_seconds", state="queued") < 200
    assert 299 <= value(samples, "numbers_oldest_order_age_seconds", state="waiting_provider") < 400
    assert 59 <= value(samples, "numbers_queue_oldest_message_age_seconds", queue="orders") < 120
    assert value(samples, "numbers_database_up") == 1
    assert value(samples, "numbers_broker_up") == 1


def test_gauges_follow_the_orders_as_they_change(api: Any, sandbox: Any) -> None:
    order_id = create_order(area_code="999")
    before = scrape(api)
    assert value(before, "numbers_orders", state="queued", provider="close") == 1
    assert value(before, "numbers_oldest_order_age_seconds", state="queued") >= 0
    run_placement(order_id)
    after = scrape(api)
    assert value(after, "numbers_orders", state="queued", provider="close") == 0
    assert value(after, "numbers_orders", state="failed", provider="close") == 1
    assert value(after, "numbers_oldest_order_age_seconds", state="queued") == 0
    assert value(after, "numbers_provider_paused", provider="close") == 0


def test_the_counters_appear_after_the_code_counts(api: Any) -> None:
    from worker import metrics

    before = scrape(api)
    for seconds in (0.3, 0.7):
        metrics.observe_provider_call("close", "purchase", "permanent", "needs-more-info", seconds)
    metrics.observe_provider_call("cm", "fetch", "success", None, 0.02)
    metrics.count_transition("close", "queued", "in_progress")
    metrics.count_transition("close", None, "queued")
    metrics.count_retry("close", "rate_limited")
    metrics.count_webhook_delivery("cm", "processed")
    metrics.count_webhook_delivery("no-such-provider-" + "x" * 200, "unknown_token")
    metrics.count_notification("delivered")
    after = scrape(api)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    call = {"provider": "close", "operation": "purchase"}
    assert (
        delta(
            "numbers_provider_calls_total",
            **call,
            outcome="permanent",
            error_code="needs-more-info",
        )
        == 2
    )
    assert (
        delta(
            "numbers_provider_calls_total",
            provider="cm",
            operation="fetch",
            outcome="success",
            error_code="",
        )
        == 1
    )
    assert delta("numbers_provider_call_seconds_count", **call) == 2
    assert abs(delta("numbers_provider_call_seconds_sum", **call) - 1.0) < 1e-9
    assert delta("numbers_provider_call_seconds_bucket", **call, le="0.5") == 1
    assert delta("numbers_provider_call_seconds_bucket", **call, le="1.0") == 2
    assert (
        delta(
            "numbers_order_transitions_total",
            provider="close",
            from_state="queued",
            to_state="in_progress",
        )
        == 1
    )
    assert (
        delta("numbers_order_transitions_total", provider="close", from_state="", to_state="queued")
        == 1
    )
    assert delta("numbers_order_retries_total", provider="close", reason="rate_limited") == 1
    assert delta("numbers_webhook_deliveries_total", provider="cm", result="processed") == 1
    # A made-up provider in a callback URL cannot create a series of its own.
    assert (
        delta("numbers_webhook_deliveries_total", provider="unknown", result="unknown_token") == 1
    )
    assert delta("numbers_notifications_total", result="delivered") == 1


def test_nothing_secret_is_exported(api: Any, sandbox: Any) -> None:
    order_id = create_order(area_code="415", notify_url="https://upstream.example/h?sig=s3cret")
    with session_factory()() as session:
        token = session.get(Order, order_id).callback_token  # type: ignore[union-attr]
    body = api.get("/metrics").get_data(as_text=True)
    for secret in (token, "s3cret", os.environ["NUMBERS_CLOSE_API_KEY"], order_id):
        assert secret not in body


COUNT_IN_PROCESSES = """
import os, threading
from worker import metrics

metrics.count_notification("delivered")
metrics.observe_provider_call("close", "purchase", "success", None, 0.25)
pid = os.fork()  # a Celery prefork child
if pid == 0:
    metrics.count_notification("delivered")
    os._exit(0)
os.waitpid(pid, 0)
threads = [
    threading.Thread(target=lambda: [metrics.count_notification("delivered") for _ in range(5)])
    for _ in range(4)
]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""

SCRAPE = """
from webhooks import create_app
print(create_app().test_client().get("/metrics").get_data(as_text=True))
"""


def run_python(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_multiprocess_mode_sums_every_process(tmp_path: Path, sandbox: Any) -> None:
    create_order(area_code="415")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    for _ in range(2):  # two worker processes, each with a forked child and threads
        run_python(COUNT_IN_PROCESSES, env)
    assert list((tmp_path / "prom").glob("*.db"))  # the folder was created and written

    samples = parse(run_python(SCRAPE, env))

    assert value(samples, "numbers_notifications_total", result="delivered") == 2 * (1 + 1 + 20)
    call = {"provider": "close", "operation": "purchase"}
    assert value(samples, "numbers_provider_call_seconds_count", **call) == 2
    assert value(samples, "numbers_provider_call_seconds_sum", **call) == 0.5
    assert value(samples, "numbers_orders", state="queued", provider="close") == 1
    # The per-process collectors are not in the multiprocess registry: proof of which path ran.
    assert not any(name.startswith("python_gc") for name, _ in samples)
