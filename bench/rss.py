"""Part 5: worker RSS over many orders (100k by default). One ``numbers worker`` process places
orders against the sandbox at 0 ms (the fastest way through many orders); its resident set
(the process and any pool children, from the OS) is sampled every second.

Orders are written straight into the database (as intake writes them) and their place_order
tasks published straight to the broker, ahead of the worker, so that the worker is the only
thing measured and the run is as short as the worker allows. Growth is the RSS at the end
against the RSS after the first 10% of orders (imports, pools and caches warm by then).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from bench import common
from bench.common import Stack, log

DB = "numbers_bench_rss"
BATCH = 2000
AHEAD = 3000  # published but not yet placed: enough to keep the worker busy


def seed(engine: Any, start: int, count: int) -> list[str]:
    from sqlalchemy import insert

    from models.ids import new_id, new_token, token_hash
    from models.tables import Order, utcnow

    now = utcnow()
    rows = []
    for i in range(start, start + count):
        token = new_token()
        rows.append(
            {
                "id": new_id("ord"),
                "idempotency_key": f"rss-{i}-{uuid.uuid4().hex[:8]}",
                "request_hash": "0" * 64,
                "provider": "close",
                "state": "queued",
                "quantity": 1,
                "country": "US",
                "area_code": str(201 + i % 89),
                "callback_token": token,
                "callback_token_hash": token_hash(token),
                "attempt_count": 0,
                "retry_count": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(Order), rows)
    return [r["id"] for r in rows]


def main(args: Any) -> dict[str, Any]:
    from celery import Celery
    from sqlalchemy import text

    total = 2000 if args.quick else args.orders
    pool, concurrency = args.pool, args.concurrency
    samples: list[dict[str, float]] = []
    with Stack() as stack:
        log(f"rss: {total} orders, {pool} -c {concurrency}; logs in {stack.logdir}")
        sandbox = common.start_sandbox(stack)
        sandbox.configure(latency_ms=0)
        # A full run has its own database and broker database: the other parts (or a quick
        # run) may run meanwhile, at the cost of its orders/s.
        db = f"{DB}_quick" if args.quick else DB
        redis_db = common.REDIS_SERVICE_DB if args.quick else common.REDIS_MISC_DB
        database_url = common.fresh_pg_database(db)
        stack.cleanups.append(lambda: common.drop_pg_database(db))
        broker_url = common.redis_url(redis_db)
        common.flush_redis(redis_db)
        stack.cleanups.append(lambda: common.flush_redis(redis_db))
        env = common.service_env(database_url, broker_url, sandbox.url)
        engine = common.engine_for(database_url)
        stack.cleanups.append(engine.dispose)
        (worker,) = common.start_workers(stack, env, pool, concurrency, name="rss-worker")
        producer = Celery("bench-rss", broker=broker_url)
        published = [0]
        done = [0]
        failure: list[BaseException] = []

        def publish() -> None:
            try:
                with producer.producer_or_acquire() as prod:
                    while published[0] < total:
                        if published[0] - done[0] > AHEAD:
                            time.sleep(0.05)
                            continue
                        n = min(BATCH, total - published[0])
                        for order_id in seed(engine, published[0], n):
                            producer.send_task(
                                "worker.tasks.place_order",
                                args=[order_id],
                                queue="orders",
                                producer=prod,
                            )
                        published[0] += n
            except BaseException as exc:  # surfaced by the main loop
                failure.append(exc)

        feeder = threading.Thread(target=publish, daemon=True)
        start = time.perf_counter()
        feeder.start()
        next_print = 0.0
        deadline = start + args.timeout
        while time.perf_counter() < deadline and not failure:
            with engine.connect() as conn:
                done[0] = int(
                    conn.scalar(
                        text(
                            "SELECT count(*) FROM orders WHERE state NOT IN ('queued', 'in_progress')"
                        )
                    )
                    or 0
                )
            rss = sum(worker.rss_bytes().values())
            elapsed = time.perf_counter() - start
            samples.append({"t": elapsed, "orders": done[0], "rss_mib": rss / 2**20})
            if elapsed >= next_print:
                log(f"  {done[0]:>7}/{total} orders, worker RSS {rss / 2**20:6.1f} MiB")
                next_print = elapsed + 30
            if done[0] >= total:
                break
            time.sleep(1.0)
        if failure:
            raise failure[0]
        seconds = time.perf_counter() - start
        with engine.connect() as conn:
            fulfilled = conn.scalar(text("SELECT count(*) FROM orders WHERE state = 'fulfilled'"))
        producer.close()
    warm = next((s for s in samples if s["orders"] >= total * 0.1), samples[0])
    end = samples[-1]
    growth = 100 * (end["rss_mib"] - warm["rss_mib"]) / warm["rss_mib"]
    data = {
        "orders": total,
        "settled": end["orders"],
        "fulfilled": fulfilled,
        "pool": pool,
        "concurrency": concurrency,
        "seconds": seconds,
        "rate": end["orders"] / seconds,
        "rss_start_mib": samples[0]["rss_mib"],
        "rss_warm_mib": warm["rss_mib"],
        "rss_end_mib": end["rss_mib"],
        "rss_peak_mib": max(s["rss_mib"] for s in samples),
        "growth_pct": growth,
        "samples": samples,
    }
    common.record("rss", data)
    print(f"\n== worker RSS over {end['orders']:,} orders ({pool} -c {concurrency}, 0 ms) ==")
    print(
        f"RSS at start {data['rss_start_mib']:.1f} MiB, after 10% {warm['rss_mib']:.1f} MiB, "
        f"at the end {end['rss_mib']:.1f} MiB (peak {data['rss_peak_mib']:.1f}): growth "
        f"{growth:+.1f}% (target < 10%: {'MET' if growth < 10 else 'MISSED'}); "
        f"{data['rate']:.1f} orders/s, {fulfilled} fulfilled"
    )
    return data
