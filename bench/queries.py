"""Part 4: reads on 1M orders in PostgreSQL. `numbers stats` (cli/stats.py collect()), list by
state (GET /v1/orders?state=..., first page of 50) and get by id (GET /v1/orders/<id>), through
the real code (collect() itself, the Flask app's test client), median and p95 over repeated runs;
then EXPLAIN (ANALYZE, BUFFERS) of the queries behind them, with the index each one uses.

The data is generated inside PostgreSQL (INSERT ... SELECT over generate_series: faster than
COPY from Python, same result) into its own database, ``numbers_bench_1m``, kept between runs
(``--reload`` rebuilds it): orders spread over 90 days and four providers, settled but for the
most recent ones, one purchase attempt each, one number per fulfilled order, three events each.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from bench import common
from bench.common import log

DB = "numbers_bench_1m"

# A deterministic spread: r in [0, 1000) per order.
STATE_SQL = """
CASE
  WHEN g.i > :n - 500 THEN 'queued'
  WHEN g.i > :n - 800 THEN 'in_progress'
  WHEN g.i > :n - 2000 THEN 'waiting_provider'
  WHEN (g.i * 7919) % 1000 < 870 THEN 'fulfilled'
  WHEN (g.i * 7919) % 1000 < 930 THEN 'failed'
  WHEN (g.i * 7919) % 1000 < 955 THEN 'needs_action'
  WHEN (g.i * 7919) % 1000 < 965 THEN 'partially_fulfilled'
  ELSE 'cancelled'
END"""
PROVIDER_SQL = """
CASE (g.i * 31) % 10
  WHEN 0 THEN 'close' WHEN 1 THEN 'close' WHEN 2 THEN 'close' WHEN 3 THEN 'close'
  WHEN 4 THEN 'signalwire' WHEN 5 THEN 'signalwire'
  WHEN 6 THEN 'identitycall' WHEN 7 THEN 'identitycall'
  ELSE 'cm'
END"""

LOAD_SQL = [
    f"""
INSERT INTO orders (id, idempotency_key, request_hash, provider, state, quantity, country,
  number_type, area_code, capabilities, options, reference, callback_token, callback_token_hash,
  attempt_count, retry_count, next_attempt_at, deadline_at, created_at, updated_at, last_error)
SELECT
  'ord_' || lpad(g.i::text, 26, '0'),
  'key-' || g.i,
  md5(g.i::text) || md5('h' || g.i::text),
  {PROVIDER_SQL},
  {STATE_SQL},
  1, 'US', 'local', (200 + g.i % 700)::text, NULL, NULL,
  'ref-' || g.i,
  md5('t' || g.i::text) || md5('u' || g.i::text),
  encode(sha256(convert_to(md5('t' || g.i::text) || md5('u' || g.i::text), 'UTF8')), 'hex'),
  1, 0,
  CASE WHEN g.i > :n - 2000 THEN now() + interval '10 minutes' ELSE NULL END,
  now() - (:n - g.i) * (interval '90 days' / :n) + interval '1 hour',
  now() - (:n - g.i) * (interval '90 days' / :n),
  now() - (:n - g.i) * (interval '90 days' / :n) + interval '2 seconds',
  CASE WHEN (g.i * 7919) % 1000 BETWEEN 870 AND 964 AND g.i <= :n - 2000
       THEN '{{"code": "failed", "message": "bench"}}'::json ELSE NULL END
FROM generate_series(1::bigint, :n) AS g(i)
""",
    """
INSERT INTO attempts (order_id, provider, operation, request, started_at, finished_at, outcome,
  status_code, duration_ms)
SELECT o.id, o.provider, 'purchase', '{"country": "US"}'::json, o.created_at,
  o.created_at + interval '200 milliseconds',
  CASE WHEN o.state IN ('fulfilled', 'partially_fulfilled') THEN 'success'
       WHEN o.state IN ('queued', 'in_progress') THEN NULL
       WHEN o.state = 'waiting_provider' THEN 'success'
       ELSE 'permanent' END,
  CASE WHEN o.state IN ('failed', 'needs_action', 'cancelled') THEN 400 ELSE 201 END,
  200.0
FROM orders o WHERE o.state <> 'queued'
""",
    """
INSERT INTO numbers (order_id, attempt_id, provider, number, provider_number_id, acquired_at)
SELECT a.order_id, a.id, a.provider, '+1' || lpad(a.id::text, 10, '0'), 'pn_' || a.id,
  a.finished_at
FROM attempts a JOIN orders o ON o.id = a.order_id
WHERE o.state IN ('fulfilled', 'partially_fulfilled')
""",
    """
INSERT INTO order_events (order_id, at, from_state, to_state, reason)
SELECT o.id, o.created_at + e.k * interval '100 milliseconds',
  CASE e.k WHEN 0 THEN NULL WHEN 1 THEN 'queued' ELSE 'in_progress' END,
  CASE e.k WHEN 0 THEN 'queued' WHEN 1 THEN 'in_progress' ELSE o.state END,
  'bench'
FROM orders o CROSS JOIN generate_series(0, 2) AS e(k)
WHERE e.k = 0 OR (e.k = 1 AND o.state <> 'queued')
   OR (e.k = 2 AND o.state NOT IN ('queued', 'in_progress'))
""",
]

LIST_STATES = ("fulfilled", "failed", "needs_action", "queued", "waiting_provider", "cancelled")


def ensure_data(n: int, reload: bool) -> str:
    """The database of ``n`` orders: ``numbers_bench_1m`` for 1M, else its own per size."""
    from sqlalchemy import text

    db = DB if n == 1_000_000 else f"numbers_bench_{n}"
    url = common.pg_url(db)
    if not reload and common.pg_database_exists(db):
        engine = common.engine_for(url)
        with engine.connect() as conn:
            try:
                have = conn.scalar(text("SELECT n FROM bench_meta"))
            except Exception:
                have = None
        engine.dispose()
        if have == n:
            log(f"queries: reusing {db} ({n} orders); --reload rebuilds it")
            return url
    log(f"queries: loading {n} orders into {db} ...")
    common.fresh_pg_database(db)
    engine = common.engine_for(url)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        for sql in LOAD_SQL:
            t = time.perf_counter()
            result = conn.execute(text(sql), {"n": n})
            log(
                f"  {sql.split()[2]:<14} {result.rowcount:>9} rows in {time.perf_counter() - t:5.1f}s"
            )
        conn.execute(text("CREATE TABLE bench_meta (n integer)"))
        conn.execute(text("INSERT INTO bench_meta VALUES (:n)"), {"n": n})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        t = time.perf_counter()
        conn.execute(text("VACUUM ANALYZE"))
        log(f"  VACUUM ANALYZE in {time.perf_counter() - t:.1f}s")
    engine.dispose()
    log(f"  loaded in {time.perf_counter() - t0:.0f}s")
    return url


def timed(fn: Any, repeat: int) -> dict[str, float]:
    fn()  # warm: connections, compiled statements, the buffer cache
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(1000 * (time.perf_counter() - t))
    return {
        "median_ms": common.median(samples),
        "p95_ms": common.percentile(samples, 95),
        "max_ms": max(samples),
        "runs": float(repeat),
    }


def explain(conn: Any, sql: str) -> dict[str, Any]:
    from sqlalchemy import text

    plan = conn.execute(text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)).scalar()
    root = plan[0]
    nodes: list[str] = []
    indexes: list[str] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        label = node["Node Type"]
        if "Index Name" in node:
            indexes.append(node["Index Name"])
            label += f" using {node['Index Name']}"
        elif "Relation Name" in node:
            label += f" on {node['Relation Name']}"
        if "Rows Removed by Filter" in node:
            label += f" (removed by filter {node['Rows Removed by Filter']})"
        label += f" rows={node.get('Actual Rows')} time={node.get('Actual Total Time')}ms"
        nodes.append("  " * depth + label)
        for child in node.get("Plans", []):
            walk(child, depth + 1)

    walk(root["Plan"], 0)
    return {
        "execution_ms": root["Execution Time"],
        "indexes": sorted(set(indexes)),
        "plan": nodes,
    }


def compiled(statement: Any) -> str:
    from sqlalchemy.dialects import postgresql

    return str(
        statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )


def main(args: Any) -> dict[str, Any]:
    n = 100_000 if args.quick else args.orders
    repeat = 10 if args.quick else 30
    url = ensure_data(n, args.reload)
    os.environ.update(
        {
            "NUMBERS_DATABASE_URL": url,
            "NUMBERS_BROKER_URL": common.redis_url(common.REDIS_SERVICE_DB),
            "NUMBERS_API_TOKENS": common.API_TOKEN,
            "NUMBERS_CLOSE_API_KEY": "x",
            "NUMBERS_SIGNALWIRE_BASE_URL": "http://127.0.0.1:9",
            "NUMBERS_SIGNALWIRE_PROJECT_ID": "x",
            "NUMBERS_SIGNALWIRE_API_TOKEN": "x",
            "NUMBERS_IDENTITYCALL_API_KEY": "x",
            "NUMBERS_CM_PRODUCT_TOKEN": "x",
            "NUMBERS_CM_ACCOUNT_ID": "x",
        }
    )
    from models.config import reset_settings
    from models.db import dispose_engines, get_engine

    reset_settings()
    dispose_engines()
    from cli.stats import collect
    from webhooks import create_app

    app = create_app()
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {common.API_TOKEN}"
    figures: dict[str, dict[str, float]] = {}

    figures["stats collect()"] = timed(collect, repeat)
    for state in LIST_STATES:

        def list_state(state: str = state) -> None:
            response = client.get(f"/v1/orders?state={state}&limit=50")
            assert response.status_code == 200, response.data
            assert response.json is not None

        figures[f"list state={state}"] = timed(list_state, repeat)

    def list_all() -> None:
        assert client.get("/v1/orders?limit=50").status_code == 200

    figures["list (no filter)"] = timed(list_all, repeat)

    def list_provider_state() -> None:
        assert client.get("/v1/orders?state=failed&provider=cm&limit=50").status_code == 200

    figures["list state=failed&provider=cm"] = timed(list_provider_state, repeat)
    rng = random.Random(7)

    def get_one() -> None:
        order_id = f"ord_{rng.randrange(1, n + 1):026d}"
        response = client.get(f"/v1/orders/{order_id}")
        assert response.status_code == 200, response.data

    figures["get by id"] = timed(get_one, repeat)

    plans = explain_all(get_engine(), n)
    data = {"orders": n, "figures": figures, "plans": plans}
    common.record("queries", data)
    print_summary(data)
    dispose_engines()
    if args.drop or args.quick:
        common.drop_pg_database(url.rsplit("/", 1)[1])
    return data


def explain_all(engine: Any, n: int) -> dict[str, Any]:
    import datetime as dt

    from sqlalchemy import func, select
    from werkzeug.datastructures import MultiDict

    from models.tables import Attempt, Order
    from webhooks.api import _list_query

    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    queries: dict[str, str] = {
        "stats: count by state, provider": compiled(
            select(Order.state, Order.provider, func.count()).group_by(Order.state, Order.provider)
        ),
        "stats: oldest queued": compiled(
            select(func.min(Order.created_at)).where(Order.state == "queued")
        ),
        "stats: provider health (attempts, last hour)": compiled(
            select(Attempt.provider, func.count())
            .where(Attempt.started_at >= since)
            .group_by(Attempt.provider)
        ),
    }
    for state in ("fulfilled", "needs_action", "queued"):
        query, limit = _list_query(MultiDict({"state": state}))
        queries[f"list state={state}"] = compiled(query.limit(limit + 1))
    query, limit = _list_query(MultiDict({"state": "failed", "provider": "cm"}))
    queries["list state=failed&provider=cm"] = compiled(query.limit(limit + 1))
    order_id = f"ord_{n // 2:026d}"
    queries["get by id: numbers"] = (
        f"SELECT * FROM numbers WHERE order_id IN ('{order_id}') ORDER BY numbers.id"
    )
    queries["get by id: events"] = (
        f"SELECT * FROM order_events WHERE order_id IN ('{order_id}') ORDER BY order_events.id"
    )
    out = {}
    with engine.connect() as conn:
        for name, sql in queries.items():
            out[name] = {"sql": " ".join(sql.split()), **explain(conn, sql)}
    return out


def print_summary(data: dict[str, Any]) -> None:
    print(f"\n== reads on {data['orders']:,} orders (PostgreSQL), through the service's code ==")
    for name, f in data["figures"].items():
        target = ""
        if name.startswith(("stats", "list")):
            target = f"  target < 100 ms: {'MET' if f['p95_ms'] < 100 else 'MISSED'} (p95)"
        print(f"{name:<34} median {f['median_ms']:8.1f} ms  p95 {f['p95_ms']:8.1f} ms{target}")
    print("\nEXPLAIN ANALYZE (execution time, indexes used, plan):")
    for name, p in data["plans"].items():
        used = ", ".join(p["indexes"]) or "none (sequential scan)"
        print(f"- {name}: {p['execution_ms']:.1f} ms; index: {used}")
        for row in p["plan"][:6]:
            print(f"    {row}")
