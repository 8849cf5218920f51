"""Part 1 (and 2): end-to-end orders/s, POST /v1/orders -> fulfilled, against the sandbox at a
given provider latency, next to a bare Celery task making one httpx POST to the same sandbox
endpoint with the same pool and concurrency (and bare no-op tasks for the 0 ms case); the CPU
seconds each side spent per order, read from the OS's accounting (psutil: user + system of every
process of the tree).

Every run: fresh tables, an empty broker database, a reset sandbox; the web app stays up for
the part; worker processes are started for the run and stopped after it.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from bench import common
from bench.common import Proc, Sandbox, Stack, log

TERMINAL = ("fulfilled", "partially_fulfilled", "needs_action", "failed", "cancelled")
TABLES = (
    "notification_attempts",
    "notifications",
    "webhook_deliveries",
    "numbers",
    "attempts",
    "order_events",
    "outbox",
    "orders",
    "provider_states",
)
# Close area codes the sandbox rents from (about 9,900 numbers each): none of its magic ones.
PREFIXES = [str(p) for p in range(201, 290)]
PRODUCER_THREADS = 8
# No progress for this long with at least 98% done: the rest is stuck, stop the clock at the
# last completion and report how many.
STALL_S = 5.0


@dataclass
class Run:
    kind: str  # service | bare-post | bare-noop
    pool: str
    concurrency: int
    processes: int
    latency_ms: float
    backend: str
    orders: int
    done: int = 0
    failed: int = 0
    seconds: float = 0.0
    rate: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    post_ms_p50: float | None = None
    post_ms_p99: float | None = None
    note: str = ""
    # Machine CPU busy (%) just before the run, everything of ours idle: other tenants' load.
    busy_before: float = 0.0

    @property
    def layout(self) -> str:
        per = f"{self.pool} -c {self.concurrency}"
        return per if self.processes == 1 else f"{self.processes} x {per}"

    def cpu_ms_per_order(self, *names: str) -> float:
        return 1000 * sum(self.cpu.get(n, 0.0) for n in names) / max(self.done, 1)


def quiet_machine(max_wait: float = 10.0) -> float:
    """Wait (a little) for the machine to be quiet; return how busy it was (%, 1 s sample)."""
    deadline = time.monotonic() + max_wait
    while True:
        busy = psutil.cpu_percent(interval=1.0)
        if busy < 15 or time.monotonic() > deadline:
            return busy


def _self_cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


class Context:
    """The services a part keeps up across its runs: sandbox, database, web app."""

    def __init__(self, stack: Stack, backend: str = "postgres") -> None:
        self.stack = stack
        self.backend = backend
        self.sandbox: Sandbox = common.start_sandbox(stack)
        if backend == "postgres":
            self.database_url = common.fresh_pg_database(common.BENCH_DB)
            self.broker_url = common.redis_url(common.REDIS_SERVICE_DB)
            stack.cleanups.append(lambda: common.drop_pg_database(common.BENCH_DB))
        else:
            self.database_url = f"sqlite:///{stack.logdir / 'numbers.db'}"
            self.broker_url = f"sqla+sqlite:///{stack.logdir / 'broker.db'}"
            common.migrate_schema(self.database_url)
        self.bare_broker = common.redis_url(common.REDIS_BARE_DB)
        self.env = common.service_env(self.database_url, self.broker_url, self.sandbox.url)
        self.engine = common.engine_for(self.database_url)
        stack.cleanups.append(self.engine.dispose)
        self._pg_seen: dict[int, float] = {}
        self.web_url = common.start_web(stack, self.env)
        self.web: Proc = stack.procs[-1]

    # -- service ----------------------------------------------------------------------------

    def reset(self, latency_ms: float) -> None:
        from sqlalchemy import text

        with self.engine.begin() as conn:
            if self.backend == "postgres":
                conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
            else:
                for table in TABLES:
                    conn.execute(text(f"DELETE FROM {table}"))
        if self.backend == "postgres":
            common.flush_redis(common.REDIS_SERVICE_DB)
        self.sandbox.reset()
        self.sandbox.configure(latency_ms=latency_ms)

    def counts(self) -> tuple[int, int]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT state, count(*) FROM orders GROUP BY state")).all()
        states = {s: n for s, n in rows if s in TERMINAL}
        done = sum(states.values())
        return done, done - states.get("fulfilled", 0)

    def service_run(
        self,
        *,
        pool: str,
        concurrency: int,
        processes: int = 1,
        latency_ms: float,
        orders: int,
        timeout: float = 120.0,
        loglevel: str = "INFO",
        profile: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> Run:
        run = Run("service", pool, concurrency, processes, latency_ms, self.backend, orders)
        self.reset(latency_ms)
        env = {**self.env, **(extra_env or {})}
        workers = common.start_workers(
            self.stack,
            env,
            pool,
            concurrency,
            processes,
            name=f"worker-{pool}-{concurrency}",
            loglevel=loglevel,
        )
        spies = []
        if profile:
            spies.append(start_profile(self.stack, workers[0], profile))
            spies.append(start_profile(self.stack, self.web, profile.replace("worker", "web")))
        run.busy_before = quiet_machine()
        try:
            before = self._cpu(workers)
            start = time.perf_counter()
            latencies = _post_orders(self.web_url, orders)
            last, last_at = -1, time.perf_counter()
            while True:
                done, failed = self.counts()
                now = time.perf_counter()
                if done != last:
                    last, last_at = done, now
                if done >= orders or now - start > timeout:
                    break
                if done >= orders * 0.98 and now - last_at > STALL_S:
                    break  # a few messages stuck in the broker (RESULTS.md): stop the clock
                time.sleep(0.1)
            run.seconds = last_at - start
            after = self._cpu(workers)
        finally:
            for spy in spies:
                stop_profile(spy)
            for proc in workers:
                self.stack.stop(proc)
        run.done, run.failed = done, failed
        run.rate = done / run.seconds
        run.cpu = {k: after[k] - before[k] for k in before}
        run.post_ms_p50 = common.percentile(latencies, 50)
        run.post_ms_p99 = common.percentile(latencies, 99)
        if done < orders:
            run.note = f"{orders - done} never settled (stuck: {self.stuck()})"
        return run

    def stuck(self) -> str:
        """Where the orders that did not settle are: the broker's queue or its unacked set."""
        if self.backend != "postgres":
            return "?"
        import redis

        client = redis.Redis.from_url(self.broker_url)
        try:
            return f"queue {client.llen('orders')}, unacked {client.hlen('unacked')}"
        finally:
            client.close()

    def _cpu(self, workers: list[Proc]) -> dict[str, float]:
        return {
            "worker": sum(w.cpu_seconds() for w in workers),
            "web": self.web.cpu_seconds(),
            "sandbox": self.sandbox.proc.cpu_seconds(),
            "producer": _self_cpu(),
            "postgres": self._pg_backends_cpu(),
        }

    def _pg_backends_cpu(self) -> float:
        """CPU of the PostgreSQL backends serving this database (pool connections live across
        the run; a backend started mid-run counts whole). The WAL writer is not in it."""
        if self.backend != "postgres":
            return 0.0
        from sqlalchemy import text

        with self.engine.connect() as conn:
            pids = conn.scalars(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
            ).all()
        total = 0.0
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
                self._pg_seen[pid] = t.user + t.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        for cpu in self._pg_seen.values():
            total += cpu
        return total

    # -- bare Celery ----------------------------------------------------------------------------

    def bare_run(
        self,
        *,
        task: str,
        pool: str,
        concurrency: int,
        processes: int = 1,
        latency_ms: float,
        orders: int,
        timeout: float = 60.0,
    ) -> Run:
        import redis

        run = Run(f"bare-{task}", pool, concurrency, processes, latency_ms, "redis", orders)
        common.flush_redis(common.REDIS_BARE_DB)
        self.sandbox.reset()
        self.sandbox.configure(latency_ms=latency_ms)
        env = {
            **os.environ,
            "BENCH_BARE_BROKER": self.bare_broker,
            "BENCH_BARE_TARGET": self.sandbox.close_rent_url(),
        }
        argv = [sys.executable, "-m", "celery", "-A", "bench.bare_worker", "worker"]
        argv += [f"--pool={pool}", f"--concurrency={concurrency}", "-Q", "bare"]
        argv += ["--loglevel=WARNING", "--without-gossip", "--without-mingle"]
        workers = []
        for i in range(processes):
            proc = self.stack.spawn(
                f"bare-{task}-{pool}-{concurrency}-{i}", [*argv, "-n", f"bare{i}@%h"], env
            )
            workers.append(proc)
        common.wait_consuming(workers, self.bare_broker)
        from bench.bare_worker import QUEUE, app

        app.conf.broker_url = self.bare_broker
        client = redis.Redis.from_url(self.bare_broker)
        run.busy_before = quiet_machine()
        try:
            before = self._cpu(workers)
            start = time.perf_counter()
            with app.producer_or_acquire() as producer:
                for i in range(orders):
                    args = [] if task == "noop" else [PREFIXES[i % len(PREFIXES)]]
                    app.send_task(f"bare.{task}", args=args, producer=producer)
            last, last_at = -1, time.perf_counter()
            while time.perf_counter() - start < timeout:
                left = client.llen(QUEUE) + client.hlen("unacked")
                now = time.perf_counter()
                if left != last:
                    last, last_at = left, now
                if left == 0:
                    break
                if left <= orders * 0.02 and now - last_at > STALL_S:
                    break
                time.sleep(0.02)
            run.seconds = last_at - start
            after = self._cpu(workers)
            left = client.llen(QUEUE) + client.hlen("unacked")
        finally:
            client.close()
            for proc in workers:
                self.stack.stop(proc)
        run.done = orders - left
        run.rate = run.done / run.seconds
        run.cpu = {k: after[k] - before[k] for k in before}
        if left:
            run.note = f"{left} never done (stuck in the broker: queue or unacked)"
        return run


def _post_orders(web_url: str, orders: int) -> list[float]:
    """POST ``orders`` orders from a few keep-alive connections; returns each POST's ms."""
    host, port = web_url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(orders))
    lock = threading.Lock()

    def producer() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        mine: list[float] = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body = json.dumps(
                {
                    "provider": "close",
                    "country": "US",
                    "area_code": PREFIXES[i % len(PREFIXES)],
                    "reference": f"bench-{i}",
                }
            )
            headers = {
                "Authorization": f"Bearer {common.API_TOKEN}",
                "Idempotency-Key": uuid.uuid4().hex,
                "Content-Type": "application/json",
            }
            t = time.perf_counter()
            conn.request("POST", "/v1/orders", body, headers)
            response = conn.getresponse()
            response.read()
            mine.append(1000 * (time.perf_counter() - t))
            if response.status != 202:
                errors.append(f"{response.status}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=producer) for _ in range(PRODUCER_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} orders refused, e.g. {errors[:3]}")
    return latencies


# -- profiles -----------------------------------------------------------------------------------


def start_profile(stack: Stack, worker: Proc, output: str) -> Proc:
    argv = [_py_spy(), "record", "-p", str(worker.pid), "--subprocesses", "-r", "200"]
    argv += ["--nonblocking", "--gil", "-f", "raw", "-o", output]
    spy = stack.spawn(f"py-spy-{os.path.basename(output)}", argv, dict(os.environ))
    spy.output = output  # type: ignore[attr-defined]
    time.sleep(1.0)
    return spy


def stop_profile(spy: Proc) -> None:
    import signal

    if spy.alive():
        spy.popen.send_signal(signal.SIGINT)
        try:
            spy.popen.wait(timeout=30)
        except Exception:
            spy.stop()
    output = getattr(spy, "output", None)
    if output and os.path.exists(output):
        import gzip

        # Kept compressed (a tenth of the size); bench.profiles reads .gz as is.
        with open(output, "rb") as raw, gzip.open(output + ".gz", "wb") as packed:
            packed.write(raw.read())
        os.remove(output)


# -- the part -----------------------------------------------------------------------------------


def _size(rate_guess: float, seconds: float, lo: int, hi: int) -> int:
    return int(max(lo, min(hi, rate_guess * seconds)))


def print_run(run: Run) -> None:
    cpu = " ".join(f"{k} {v:5.1f}s" for k, v in run.cpu.items())
    post = (
        f" POST p50 {run.post_ms_p50:.0f} ms p99 {run.post_ms_p99:.0f} ms"
        if run.post_ms_p50
        else ""
    )
    log(
        f"  {run.kind:<9} {run.layout:<22} {run.latency_ms:>4.0f} ms: {run.done}/{run.orders} in "
        f"{run.seconds:5.1f}s = {run.rate:6.1f}/s  cpu {cpu}{post}"
        + (f"  failed {run.failed}" if run.failed else "")
        + (f"  NOTE {run.note}" if run.note else "")
        + (f"  (machine {run.busy_before:.0f}% busy before)" if run.busy_before >= 15 else "")
    )


def _keeper(runs: list[Run]) -> Any:
    def keep(fn: Any, **kw: Any) -> None:
        try:
            run = fn(**kw)
        except Exception as exc:  # one layout failing must not lose the others
            log(f"  FAILED {kw}: {type(exc).__name__}: {str(exc)[:300]}")
            return
        print_run(run)
        runs.append(run)

    return keep


def sqlite_runs(runs: list[Run]) -> None:
    """The embedded default (SQLite file + SQLite-backed Celery transport), service only."""
    keep = _keeper(runs)
    with Stack() as stack:
        log(f"e2e: embedded default (SQLite); logs in {stack.logdir}")
        lite = Context(stack, "sqlite")
        keep(lite.service_run, pool="threads", concurrency=8, latency_ms=0, orders=400)
        keep(lite.service_run, pool="threads", concurrency=100, latency_ms=200, orders=800)


def main(args: Any) -> dict[str, Any]:
    quick = args.quick
    profile = getattr(args, "profile", False)
    runs: list[Run] = []
    if getattr(args, "sqlite", False):
        sqlite_runs(runs)
        data = {"runs": [asdict(r) for r in runs], "quick": quick}
        common.record("e2e-sqlite", data)
        return data
    with Stack() as stack:
        log(f"e2e: logs in {stack.logdir}")
        ctx = Context(stack, "postgres")

        keep = _keeper(runs)
        # 200 ms: throughput against concurrency, service and bare, one process each.
        levels = [100] if quick else [10, 25, 50, 100, 200]
        for c in levels:
            # About 12 s each at the rates seen (RESULTS.md): long enough that start-up and
            # the last stragglers do not set the figure.
            n = _size(min(c / 0.2, 150), 5 if quick else 12, 100, 2000)
            nb = _size(min(c / 0.2, 450), 5 if quick else 12, 100, 6000)
            keep(
                ctx.bare_run, task="post", pool="threads", concurrency=c, latency_ms=200, orders=nb
            )
            spy = (
                str(common.RESULTS_JSON / "profile-worker-200ms.txt")
                if profile and c == 100
                else None
            )
            keep(
                ctx.service_run,
                pool="threads",
                concurrency=c,
                latency_ms=200,
                orders=n,
                profile=spy,
            )
        # Several worker processes on the host: the layouts that could reach 2x.
        layouts = (
            [(2, "threads", 50)]
            if quick
            else [(2, "threads", 25), (2, "threads", 50), (3, "threads", 25)]
        )
        for processes, pool, c in layouts:
            keep(
                ctx.service_run,
                pool=pool,
                concurrency=c,
                processes=processes,
                latency_ms=200,
                orders=200 if quick else 1800,
            )
            keep(
                ctx.bare_run,
                task="post",
                pool=pool,
                concurrency=c,
                processes=processes,
                latency_ms=200,
                orders=600 if quick else 5000,
            )
        if getattr(args, "other_pools", False):
            # Both stall with today's worker (RESULTS.md): short timeouts, kept for the record.
            for pool, c, n in (("gevent", 100, 300), ("prefork", 2, 50)):
                keep(
                    ctx.service_run, pool=pool, concurrency=c, latency_ms=200, orders=n, timeout=45
                )
            keep(
                ctx.bare_run,
                task="post",
                pool="gevent",
                concurrency=100,
                latency_ms=200,
                orders=1500,
                timeout=45,
            )
            keep(
                ctx.service_run, pool="prefork", concurrency=2, latency_ms=0, orders=300, timeout=45
            )
        # 0 ms: the service against bare no-op tasks on the same broker.
        n0 = 200 if quick else 1800
        keep(ctx.bare_run, task="noop", pool="prefork", concurrency=2, latency_ms=0, orders=n0 * 8)
        zero = [(1, "threads", 8)] if quick else [(1, "threads", 8), (2, "threads", 8)]
        for processes, pool, c in zero:
            spy = None
            if profile and (processes, pool, c) == (1, "threads", 8):
                spy = str(common.RESULTS_JSON / "profile-worker-0ms.txt")
            keep(
                ctx.service_run,
                pool=pool,
                concurrency=c,
                processes=processes,
                latency_ms=0,
                orders=n0,
                profile=spy,
            )
        keep(ctx.bare_run, task="post", pool="threads", concurrency=8, latency_ms=0, orders=n0 * 3)
        if not quick:
            # The service with its default log level off: what per-task logging costs.
            keep(
                ctx.service_run,
                pool="threads",
                concurrency=8,
                latency_ms=0,
                orders=n0,
                loglevel="WARNING",
            )
    if not quick:
        sqlite_runs(runs)
    data = {"runs": [asdict(r) for r in runs], "quick": quick}
    common.record("e2e", data)
    summarize(runs)
    return data


def summarize(runs: list[Run]) -> None:
    def best(kind: str, latency: float, **match: Any) -> Run | None:
        found = [
            r
            for r in runs
            if r.kind == kind
            and r.backend in ("postgres", "redis")
            and r.latency_ms == latency
            and all(getattr(r, k) == v for k, v in match.items())
        ]
        return max(found, key=lambda r: r.rate) if found else None

    print("\n== e2e: orders/s, POST /v1/orders -> fulfilled (PostgreSQL + Redis) ==")
    svc = best("service", 200, pool="threads", concurrency=100, processes=1)
    bare = best("bare-post", 200, pool="threads", concurrency=100, processes=1)
    if svc and bare:
        print(
            common.line("200 ms, threads -c 100 (1 process)", svc.rate, bare.rate, "orders/s", 1.0)
        )
    top = best("service", 200)
    if top and bare:
        limit = top.processes * top.concurrency / 0.2
        print(
            common.line(f"200 ms, best layout {top.layout}", top.rate, bare.rate, "orders/s", 2.0)
            + f"  (limit {limit:.0f}/s)"
        )
    svc0 = best("service", 0)
    noop = best("bare-noop", 0)
    if svc0 and noop:
        print(
            common.line(
                f"0 ms, {svc0.layout} vs no-op prefork -c 2", svc0.rate, noop.rate, "orders/s", 0.5
            )
        )
    post0 = best("bare-post", 0)
    if svc0 and post0:
        print(
            common.line(
                f"0 ms, {svc0.layout} vs bare one-POST threads -c 8",
                svc0.rate,
                post0.rate,
                "orders/s",
            )
        )


def _py_spy() -> str:
    """py-spy from this interpreter's environment (the venv's bin), else from PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return here if os.path.exists(here) else "py-spy"
