"""How the CLI prints: rich tables for people, ``--json`` for programs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

console = Console()


def fail(message: str) -> NoReturn:
    """A clear message and exit 2; never a traceback."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def emit(data: Any, as_json: bool, render: Callable[[Any], Any]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        console.print(render(data))


def order_table(order: dict[str, Any]) -> Table:
    table = Table(title=f"order {order['id']}", show_header=False)
    for key in (
        "state",
        "provider",
        "quantity",
        "reference",
        "attempts",
        "provider_status",
        "flagged",
        "created_at",
        "updated_at",
    ):
        table.add_row(key, str(order.get(key)))
    table.add_row("numbers", ", ".join(n["number"] for n in order["numbers"]) or "-")
    if order.get("last_error"):
        table.add_row("last_error", json.dumps(order["last_error"]))
    for event in order.get("events", []):
        table.add_row(
            "event", f"{event['at']}  {event['from']} -> {event['to']}  {event['reason'] or ''}"
        )
    for attempt in order.get("attempt_log", []):
        table.add_row(
            "attempt",
            f"{attempt['at']}  {attempt['operation']} {attempt['outcome']} {attempt['status'] or ''} {attempt['provider_code'] or ''} {attempt['ms']}ms {attempt['number'] or ''}",
        )
    return table


def orders_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("id", "state", "provider", "qty", "numbers", "attempts", "last error", "created")
    for o in rows:
        error = (o.get("last_error") or {}).get("message", "")
        table.add_row(
            o["id"],
            o["state"],
            o["provider"],
            str(o["quantity"]),
            ", ".join(n["number"] for n in o["numbers"]),
            str(o["attempts"]),
            error[:60],
            o["created_at"],
        )
    return table


def providers_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("provider", "configured", "paused", "reason")
    for row in rows:
        table.add_row(
            row["provider"], str(row["configured"]), str(row["paused"]), row["reason"] or ""
        )
    return table


def stats_view(stats: dict[str, Any]) -> Table:
    table = Table("what", "value", title="numbers stats")
    for state, by_provider in stats["orders"].items():
        table.add_row(f"orders {state}", ", ".join(f"{p}={n}" for p, n in by_provider.items()))
    for queue, depth in stats["queues"].items():
        table.add_row(f"queue {queue}", str(depth))
    table.add_row("oldest queued (s)", str(stats["oldest_queued_s"]))
    table.add_row("oldest waiting_provider (s)", str(stats["oldest_waiting_provider_s"]))
    for name, p in stats["providers"].items():
        table.add_row(
            f"{name} last hour",
            f"calls={p['calls']} errors={p['errors']} error_rate={p['error_rate']}",
        )
    table.add_row("paused providers", ", ".join(stats["paused"]) or "-")
    table.add_row("outbox backlog", str(stats["outbox_backlog"]))
    return table


def deliveries_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("id", "provider", "order", "status", "received", "size", "error")
    for d in rows:
        table.add_row(
            str(d["id"]),
            d["provider"],
            d["order_id"] or "-",
            d["status"],
            d["received_at"],
            str(d["size"]),
            d["error"] or "",
        )
    return table
