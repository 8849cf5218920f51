"""The SQL budget of the hot paths: statements and transactions per order.

Counts what one Close order costs the database, placed end to end in this process against the
sandbox, and what ``POST /v1/orders`` costs. The bounds are today's counts plus a small margin:
a change that adds a query or a transaction to the hot path fails here, on purpose. When a
change removes some, lower the bound with it (bench/RESULTS.md explains the figures).
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event

from tests.integration.helpers import create_order, load, run_placement
from worker.outbox import flush_marks

# Today's figures (PostgreSQL and SQLite alike, BEGIN statements not counted): see RESULTS.md.
PLACEMENT_MAX_STATEMENTS = 11  # measured 10
# Each commit is a WAL flush on PostgreSQL, the bound of orders/s (RESULTS.md): no margin.
# Rent exactly once needs two: the attempt before the call, its outcome after it.
PLACEMENT_MAX_TRANSACTIONS = 2  # measured 2: claim + start + attempt, outcome + release
CREATE_MAX_STATEMENTS = 7  # measured 6 (the answer's lazy loads of numbers and events incl.)
CREATE_MAX_TRANSACTIONS = 3  # measured 3 begun: order, outbox mark, the answer's read


@dataclass
class SqlCount:
    statements: list[str] = field(default_factory=list)
    begins: int = 0
    commits: int = 0
    rollbacks: int = 0
    # Pool checkouts: a connection idle past models.db.PING_IF_IDLE_S is pinged first.
    checkouts: int = 0

    @property
    def kinds(self) -> Counter[str]:
        return Counter(_kind(s) for s in self.statements)

    def report(self, what: str) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items()))
        return (
            f"{what}: {len(self.statements)} statements ({kinds}); "
            f"{self.begins} transactions begun, {self.commits} committed, "
            f"{self.rollbacks} rolled back; {self.checkouts} pool checkouts"
        )


def _kind(statement: str) -> str:
    words = statement.split()
    head = words[0].upper() if words else "?"
    if head in ("SELECT", "UPDATE", "DELETE") or head.startswith("INSERT"):
        table = re.search(r"\b(?:FROM|UPDATE|INTO)\s+(\w+)", statement, re.IGNORECASE)
        return f"{head} {table.group(1) if table else '?'}"
    return head


@contextmanager
def counting() -> Iterator[SqlCount]:
    """Every statement sent and every transaction begun/committed on the service's engine."""
    from models.db import get_engine

    engine = get_engine()
    count = SqlCount()

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # SQLite's BEGIN IMMEDIATE (models.db) is how a transaction starts there: counted as
        # a transaction, not as a statement, so the figures agree across backends.
        if not statement.lstrip().upper().startswith("BEGIN"):
            count.statements.append(statement)

    def on_begin(conn: Any) -> None:
        count.begins += 1

    def on_commit(conn: Any) -> None:
        count.commits += 1

    def on_rollback(conn: Any) -> None:
        count.rollbacks += 1

    def on_checkout(*args: Any) -> None:
        count.checkouts += 1

    listeners = [
        ("before_cursor_execute", on_execute),
        ("begin", on_begin),
        ("commit", on_commit),
        ("rollback", on_rollback),
    ]
    for name, fn in listeners:
        event.listen(engine, name, fn)
    event.listen(engine.pool, "checkout", on_checkout)
    try:
        yield count
    finally:
        for name, fn in listeners:
            event.remove(engine, name, fn)
        event.remove(engine.pool, "checkout", on_checkout)


def test_one_close_order_placed_end_to_end_stays_within_budget(sandbox: Any) -> None:
    order_id = create_order(area_code="415")
    run_placement(order_id)  # warm up: pooled client, connection pool, compiled statements
    order_id = create_order(area_code="415")
    flush_marks()  # the create's mark-sent belongs to the create, not to the placement
    with counting() as count:
        run_placement(order_id)
    order = load(order_id)
    assert order.state == "fulfilled" and len(order.numbers) == 1
    print("\n" + count.report("placement of one close order"))
    for statement in count.statements:
        print("   ", " ".join(statement.split())[:110])
    assert len(count.statements) <= PLACEMENT_MAX_STATEMENTS, count.report("placement")
    assert count.commits <= PLACEMENT_MAX_TRANSACTIONS, count.report("placement")
    assert count.begins <= PLACEMENT_MAX_TRANSACTIONS, count.report("placement")


def test_api_create_stays_within_budget(sandbox: Any, api: Any) -> None:
    body = {"provider": "close", "country": "US", "area_code": "415"}
    warm = api.post("/v1/orders", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert warm.status_code == 202
    flush_marks()
    with counting() as count:
        response = api.post("/v1/orders", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        flush_marks()  # the mark-sent runs off the request path; count it here, every time
    assert response.status_code == 202
    print("\n" + count.report("POST /v1/orders"))
    for statement in count.statements:
        print("   ", " ".join(statement.split())[:110])
    assert len(count.statements) <= CREATE_MAX_STATEMENTS, count.report("create")
    assert count.begins <= CREATE_MAX_TRANSACTIONS, count.report("create")
    assert count.commits <= 2, count.report("create")  # the order + outbox, then the mark
