"""The migrations build exactly the models' schema on the backend under test, and the CLI
answers bad input with a clear message, never a traceback, creating nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from models.db import get_engine, session_factory
from models.tables import Base, Order


def test_migrations_match_the_models() -> None:
    with get_engine().connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def numbers(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


def order_count() -> int:
    with session_factory()() as session:
        return session.scalar(select(func.count()).select_from(Order)) or 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["order", "create", "--provider", "close", "--country", "US", "--quantity", "0"],
            "quantity",
        ),
        (
            ["order", "create", "--provider", "close", "--country", "US", "--quantity", "five"],
            "quantity",
        ),
        (["order", "create", "--provider", "acme"], "provider"),
        (
            ["order", "create", "--provider", "close", "--country", "US", "--area-code", "1234567"],
            "area_code",
        ),
        (
            [
                "order",
                "create",
                "--provider",
                "close",
                "--country",
                "US",
                "--option",
                "sharing=team",
            ],
            "options.sharing",
        ),
        (["order", "create", "--provider", "close", "--option", "novalue"], "KEY=VALUE"),
        (["order", "show", "ord_missing"], "no order"),
        (["order", "retry", "ord_missing"], "no order"),
        (["order", "list", "--state", "done"], "--state"),
        (["provider", "pause", "acme"], "unknown provider"),
        (["webhooks", "replay", "999999"], "no delivery"),
        (["web", "--port", "99999"], "port"),
    ],
)
def test_bad_cli_input_gets_a_clear_message(args: list[str], expected: str) -> None:
    result = numbers(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert order_count() == 0


def test_cli_creates_shows_lists_and_steers_orders(sandbox: Any) -> None:
    created = numbers(
        "order",
        "create",
        "--provider",
        "close",
        "--country",
        "US",
        "--area-code",
        "999",
        "--reference",
        "cli-1",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    order_id = json.loads(created.stdout)["id"]
    from tests.integration.helpers import run_placement

    run_placement(order_id)
    shown = json.loads(numbers("order", "show", order_id, "--json").stdout)
    assert shown["state"] == "failed"
    assert [a["provider_code"] for a in shown["attempt_log"]] == ["error"]
    listed = json.loads(numbers("order", "list", "--state", "failed", "--json").stdout)
    assert [o["id"] for o in listed] == [order_id]
    retried = numbers("order", "retry", order_id)
    assert retried.returncode == 0 and "queued" in retried.stdout
    assert numbers("order", "cancel", order_id).returncode == 0
    refused = numbers("order", "retry", order_id)
    assert refused.returncode == 2 and "cancelled" in refused.stderr


def test_provider_pause_status_resume(sandbox: Any) -> None:
    assert numbers("provider", "pause", "close", "--reason", "maintenance").returncode == 0
    status = json.loads(numbers("provider", "status", "--json").stdout)
    close = next(p for p in status if p["provider"] == "close")
    assert close == {
        "provider": "close",
        "configured": True,
        "paused": True,
        "reason": "maintenance",
    }
    resumed = numbers("provider", "resume", "close")
    assert resumed.returncode == 0 and "resumed" in resumed.stdout
    assert not next(
        p
        for p in json.loads(numbers("provider", "status", "--json").stdout)
        if p["provider"] == "close"
    )["paused"]


def test_stats_json_counts_orders_by_state_and_provider(sandbox: Any) -> None:
    from tests.integration.helpers import create_order

    for code in ("415", "999", "666"):
        run = create_order(area_code=code)
        from tests.integration.helpers import run_placement

        run_placement(run)
    create_order(area_code="212")  # stays queued
    stats = json.loads(numbers("stats", "--json").stdout)
    assert stats["orders"] == {
        "fulfilled": {"close": 1},
        "failed": {"close": 1},
        "needs_action": {"close": 1},
        "queued": {"close": 1},
    }
    assert stats["oldest_queued_s"] is not None and stats["oldest_queued_s"] >= 0
    assert stats["providers"]["close"]["calls"] == 3 and stats["providers"]["close"]["errors"] == 2
    assert set(stats["queues"]) == {"orders", "callbacks", "notifications"}
