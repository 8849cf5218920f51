"""``numbers``: run the parts of the service, and steer orders and providers."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import click

from cli.output import emit, fail, order_table


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Phone-number order fulfilment: orders in, numbers out, exactly once."""
    from cli.logs import configure_logging

    configure_logging()


# -- running the service ----------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
def web(host: str, port: int, workers: int) -> None:
    """Serve the API and webhooks with gunicorn (stops cleanly on SIGTERM)."""
    from cli.serve import run_gunicorn

    run_gunicorn(host, port, workers)


@cli.command()
# threads: provider calls are I/O; one process shares its pooled HTTP and database
# connections across its threads. prefork and gevent are left out on purpose: prefork forks
# after the outbox relay thread has started (its children were seen to stall), and gevent
# needs monkey-patching before anything imports psycopg, redis or httpx. Scale with several
# `numbers worker` processes instead (see the README).
@click.option(
    "--pool", default="threads", show_default=True, type=click.Choice(["threads", "solo"])
)
@click.option("--concurrency", "-c", default=8, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--beat/--no-beat", default=False, help="Also run the periodic sweep (one per deployment)."
)
@click.option("--queues", "-Q", default="orders,callbacks,notifications", show_default=True)
@click.option("--loglevel", default="INFO", show_default=True)
@click.option(
    "--events/--no-events",
    default=False,
    help="Send task events from the start (Flower turns them on by itself within seconds).",
)
def worker(
    pool: str, concurrency: int, beat: bool, queues: str, loglevel: str, events: bool
) -> None:
    """Run a Celery worker (stops cleanly on SIGTERM: finishes running tasks)."""
    from cli.serve import run_worker

    run_worker(
        pool=pool,
        concurrency=concurrency,
        beat=beat,
        queues=queues,
        loglevel=loglevel,
        events=events,
    )


@cli.command()
@click.option("--loglevel", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run Celery beat alone: the periodic sweep that re-drives waiting orders."""
    from cli.serve import run_beat

    run_beat(loglevel)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=click.IntRange(0, 65535))
def sandbox(host: str, port: int) -> None:
    """Serve the provider sandbox (all four provider APIs, fault injection)."""
    from sandbox.server import serve

    serve(host, port)


@cli.command()
@click.option("--orders", "count", default=24, show_default=True, type=click.IntRange(1, 500))
@click.option("--fault-rate", default=0.2, show_default=True, type=click.FloatRange(0, 0.9))
@click.option(
    "--workdir",
    default=None,
    type=click.Path(file_okay=False),
    help="Where the demo keeps its SQLite files (default: a temporary folder).",
)
@click.option("--timeout", default=120.0, show_default=True, type=click.FloatRange(5, 3600))
def demo(count: int, fault_rate: float, workdir: str | None, timeout: float) -> None:
    """Run the whole service on the embedded default against the sandbox, place orders, show
    progress and a summary, then stop everything it started."""
    from cli.demo import run_demo

    sys.exit(run_demo(count=count, fault_rate=fault_rate, workdir=workdir, timeout=timeout))


# -- database ----------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    from models.migrate import upgrade

    upgrade(revision=revision)
    click.echo(f"database at {revision}")


# -- orders ------------------------------------------------------------------------------------


@cli.group()
def order() -> None:
    """Create, inspect and steer orders."""


@order.command("create")
@click.option("--provider", required=True)
@click.option("--quantity", default=1, show_default=True, type=int)
@click.option("--country", default=None)
@click.option("--number-type", default=None)
@click.option("--area-code", default=None)
@click.option("--phone-number", default=None)
@click.option("--sms/--no-sms", default=None)
@click.option("--mms/--no-mms", default=None)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=JSON",
    help="A provider option; the value is JSON, or a plain string.",
)
@click.option("--reference", default=None)
@click.option("--notify-url", default=None)
@click.option("--idempotency-key", default=None, help="Default: a new random key.")
@click.option("--json", "as_json", is_flag=True)
def order_create(
    as_json: bool, idempotency_key: str | None, options: tuple[str, ...], **fields: Any
) -> None:
    """Create an order, exactly as POST /v1/orders would."""
    from models.db import session_factory
    from worker import intake

    body: dict[str, Any] = {
        k: v for k, v in fields.items() if v is not None and k not in ("sms", "mms")
    }
    caps = {k: fields[k] for k in ("sms", "mms") if fields[k] is not None}
    if caps:
        body["capabilities"] = caps
    if options:
        body["options"] = _parse_options(options)
    try:
        key = intake.validate_key(idempotency_key or str(uuid.uuid4()))
        request = intake.parse_request(body)
    except intake.RequestInvalid as exc:
        fail("invalid order:\n" + "\n".join(f"  {i.field}: {i.message}" for i in exc.issues))
    with session_factory()() as session:
        try:
            submitted = intake.submit(session, request, key)
        except intake.IdempotencyConflict:
            fail("this idempotency key was used with a different order")
        emit(_order(session, submitted.order.id), as_json, order_table)


@order.command("show")
@click.argument("order_id")
@click.option("--json", "as_json", is_flag=True)
def order_show(order_id: str, as_json: bool) -> None:
    """Show one order with its events and attempts."""
    from models.db import session_factory

    with session_factory()() as session:
        emit(_order(session, order_id, attempts=True), as_json, order_table)


@order.command("list")
@click.option("--state", default=None)
@click.option("--provider", default=None)
@click.option("--reference", default=None)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True)
def order_list(
    state: str | None, provider: str | None, reference: str | None, limit: int, as_json: bool
) -> None:
    """List orders, newest first."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from models.db import session_factory
    from models.serialize import order_json
    from models.states import OrderState
    from models.tables import Order

    if state is not None and state not in {s.value for s in OrderState}:
        fail(f"--state must be one of {', '.join(s.value for s in OrderState)}")
    query = (
        select(Order).options(selectinload(Order.numbers)).order_by(Order.id.desc()).limit(limit)
    )
    for column, value in (
        (Order.state, state),
        (Order.provider, provider),
        (Order.reference, reference),
    ):
        if value is not None:
            query = query.where(column == value)
    with session_factory()() as session:
        rows = [order_json(o, events=False) for o in session.scalars(query)]
    from cli.output import orders_table

    emit(rows, as_json, orders_table)


@order.command("retry")
@click.argument("order_id")
def order_retry(order_id: str) -> None:
    """Queue a failed or needs_action order again."""
    _steer(order_id, "retry")


@order.command("cancel")
@click.argument("order_id")
def order_cancel(order_id: str) -> None:
    """Cancel an order (a pending provider request is cancelled at the provider)."""
    _steer(order_id, "cancel")


def _steer(order_id: str, action: str) -> None:
    from models.db import session_factory
    from models.tables import Order
    from worker import steering

    with session_factory()() as session:
        found = session.get(Order, order_id)
        if found is None:
            fail(f"no order with id {order_id!r}")
        try:
            getattr(steering, action)(session, found, actor="cli")
        except steering.NotAllowed as exc:
            fail(str(exc))
        click.echo(f"{order_id}: {action} accepted; state now {found.state}")


def _order(session: Any, order_id: str, attempts: bool = False) -> dict[str, Any]:
    from sqlalchemy import select

    from models.serialize import iso, order_json
    from models.tables import Attempt, Order

    found = session.get(Order, order_id)
    if found is None:
        fail(f"no order with id {order_id!r}")
    body = order_json(found)
    if attempts:
        rows = session.scalars(
            select(Attempt).where(Attempt.order_id == order_id).order_by(Attempt.id)
        )
        body["attempt_log"] = [
            {
                "at": iso(a.started_at),
                "operation": a.operation,
                "outcome": a.outcome,
                "status": a.status_code,
                "provider_code": a.provider_code,
                "error": a.error,
                "ms": a.duration_ms,
                "number": a.number,
            }
            for a in rows
        ]
    return body


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            fail(f"--option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw
    return options


# -- providers and stats ---------------------------------------------------------------------------


@cli.group()
def provider() -> None:
    """Pause, resume and inspect providers."""


@provider.command("pause")
@click.argument("name")
@click.option("--reason", default="paused by an operator", show_default=True)
def provider_pause(name: str, reason: str) -> None:
    """Stop calling NAME; its orders wait, queued and visible."""
    from models.db import session_factory
    from worker import steering

    _known_provider(name)
    with session_factory()() as session:
        steering.pause_provider(session, name, reason)
    click.echo(f"{name} paused")


@provider.command("resume")
@click.argument("name")
def provider_resume(name: str) -> None:
    """Call NAME again and wake the orders that waited for it."""
    from models.db import session_factory
    from worker import steering

    _known_provider(name)
    with session_factory()() as session:
        woken = steering.resume_provider(session, name)
    click.echo(f"{name} resumed; {woken} waiting order(s) queued again")


@provider.command("status")
@click.option("--json", "as_json", is_flag=True)
def provider_status(as_json: bool) -> None:
    """Each provider: configured, paused and why."""
    from cli.output import providers_table
    from cli.stats import provider_rows

    emit(provider_rows(), as_json, providers_table)


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def stats(as_json: bool) -> None:
    """Orders by state and provider, queue depth, oldest waiting orders, provider errors."""
    from cli.output import stats_view
    from cli.stats import collect

    emit(collect(), as_json, stats_view)


@cli.group()
def webhooks() -> None:
    """Stored provider callback deliveries."""


@webhooks.command("list")
@click.option("--status", default=None, help="received, processed, ignored, unknown_token, failed")
@click.option("--order", "order_id", default=None)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True)
def webhooks_list(status: str | None, order_id: str | None, limit: int, as_json: bool) -> None:
    """List stored deliveries, newest first (bodies are shown by --json)."""
    from sqlalchemy import select

    from cli.output import deliveries_table
    from models.db import session_factory
    from models.serialize import iso
    from models.tables import WebhookDelivery

    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if status:
        query = query.where(WebhookDelivery.status == status)
    if order_id:
        query = query.where(WebhookDelivery.order_id == order_id)
    with session_factory()() as session:
        rows = [
            {
                "id": d.id,
                "provider": d.provider,
                "order_id": d.order_id,
                "status": d.status,
                "received_at": iso(d.received_at),
                "processed_at": iso(d.processed_at),
                "size": len(d.body),
                "error": d.error,
                "headers": d.headers,
                "body": d.body.decode("utf-8", "replace"),
            }
            for d in session.scalars(query)
        ]
    emit(rows, as_json, deliveries_table)


@webhooks.command("replay")
@click.argument("delivery_id", type=int)
def webhooks_replay(delivery_id: int) -> None:
    """Process a stored delivery again (its order is re-read from the provider)."""
    from models.db import session_factory
    from models.tables import WebhookDelivery
    from worker.outbox import enqueue

    with session_factory()() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None:
            fail(f"no delivery with id {delivery_id}")
        if delivery.order_id is None:
            fail(f"delivery {delivery_id} matched no order ({delivery.status}); nothing to replay")
        delivery.status = "received"
        enqueue(session, "worker.tasks.process_callback", delivery.id)
        session.commit()
    click.echo(f"delivery {delivery_id} queued for processing")


def _known_provider(name: str) -> None:
    from worker.providers.registry import PROVIDERS

    if name not in PROVIDERS:
        fail(f"unknown provider {name!r}; one of {', '.join(PROVIDERS)}")
