"""Part 3: webhook ingest. POST /webhooks/cm/<order's callback_token> under wrk (or the Python
load generator when wrk is missing), against a bare Flask endpoint doing one committed UPDATE,
both under gunicorn with the service's settings (gthread, 2 workers x 4 threads), same
database, same client settings. The service stores the raw delivery and its outbox row in one
transaction, publishes the process_callback task after commit and marks it sent.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.common import Stack, log

ORDERS = 1000
CM_BODY = {
    "id": "4f2d8c52-3a0e-4b7e-9d55-0d7a3f6c1a21",
    "status": "Completed",
    "customerReference": "bench",
    "numbers": [{"number": "+31201234567", "status": "Active"}],
    "updatedAt": "2026-11-23T10:00:00Z",
}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%(body)s]]
local paths = {%(paths)s}
math.randomseed(%(seed)d)
request = function()
  return wrk.format(nil, paths[math.random(#paths)])
end
"""


def seed_cm_orders(database_url: str, count: int) -> list[str]:
    """``count`` cm orders waiting for their provider; returns their callback tokens."""
    from sqlalchemy import insert

    from models.ids import new_id, new_token, token_hash
    from models.tables import Order, utcnow

    engine = common.engine_for(database_url)
    tokens = [new_token() for _ in range(count)]
    now = utcnow()
    rows = [
        {
            "id": new_id("ord"),
            "idempotency_key": f"ingest-{i}",
            "request_hash": "0" * 64,
            "provider": "cm",
            "state": "waiting_provider",
            "quantity": 1,
            "country": "NL",
            "number_type": "local",
            "area_code": "20",
            "callback_token": token,
            "callback_token_hash": token_hash(token),
            "attempt_count": 1,
            "retry_count": 0,
            "provider_request_id": f"req-{i}",
            "created_at": now,
            "updated_at": now,
        }
        for i, token in enumerate(tokens)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Order), rows)
    engine.dispose()
    return tokens


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str, paths: list[str], seconds: int, connections: int, logdir: Path
) -> dict[str, float]:
    script = logdir / f"ingest-{random.randrange(10**6)}.lua"
    body = json.dumps(CM_BODY)
    script.write_text(
        WRK_SCRIPT
        % {
            "body": body,
            "paths": ", ".join(f'"{p}"' for p in paths),
            "seed": random.randrange(10**6),
        }
    )
    threads = min(2, connections)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    argv += ["-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(out: str) -> dict[str, float]:
    def ms(value: str) -> float:
        m = re.fullmatch(r"([0-9.]+)(us|ms|s)", value)
        return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")

    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    found = {q: re.search(rf"\s{q}%\s+(\S+)", out) for q in ("50", "90", "99")}
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rate": rate,
        "p50_ms": ms(found["50"].group(1)) if found["50"] else float("nan"),
        "p90_ms": ms(found["90"].group(1)) if found["90"] else float("nan"),
        "p99_ms": ms(found["99"].group(1)) if found["99"] else float("nan"),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
        "requests": float(total.group(1)) if total else 0.0,
    }


def run_python_load(url: str, paths: list[str], seconds: int, connections: int) -> dict[str, float]:
    """A closed-loop load generator: ``connections`` keep-alive connections, each one POST at
    a time, for ``seconds``. Weaker than wrk (the GIL caps it near 1-2k req/s)."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(CM_BODY)
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    bad = [0]
    lock = threading.Lock()

    def loop() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        mine = []
        while time.monotonic() < stop:
            t = time.perf_counter()
            conn.request("POST", random.choice(paths), body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            mine.append(1000 * (time.perf_counter() - t))
            if response.status >= 300:
                bad[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=loop) for _ in range(connections)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {
        "rate": len(latencies) / elapsed,
        "p50_ms": common.percentile(latencies, 50),
        "p90_ms": common.percentile(latencies, 90),
        "p99_ms": common.percentile(latencies, 99),
        "non_2xx": float(bad[0]),
        "requests": float(len(latencies)),
    }


def load(
    url: str, paths: list[str], seconds: int, connections: int, logdir: Path, tool: str
) -> dict[str, float]:
    if tool == "wrk":
        return run_wrk(url, paths, seconds, connections, logdir)
    return run_python_load(url, paths, seconds, connections)


def start_bare_web(stack: Stack, database_url: str) -> str:
    env = {**os.environ, "BENCH_BARE_DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "-m", "bench.bare_web"], env=env, cwd=common.PROJECT_DIR, check=True
    )
    port = common.free_port()
    argv = [sys.executable, "-m", "gunicorn", "bench.bare_web:app", "-b", f"127.0.0.1:{port}"]
    # The settings of cli/serve.py:run_gunicorn.
    argv += ["-w", "2", "-k", "gthread", "--threads", "4", "--graceful-timeout", "20"]
    proc = stack.spawn("bare-web", argv, env)
    url = f"http://127.0.0.1:{port}"
    common.wait_http(f"{url}/", proc=proc)
    return url


def measure(backend: str, args: Any, stack: Stack, tool: str) -> dict[str, Any]:
    seconds = 5 if args.quick else 10
    connections = args.connections
    if backend == "postgres":
        database_url = common.fresh_pg_database(common.BENCH_DB)
        broker_url = common.redis_url(common.REDIS_SERVICE_DB)
        common.flush_redis(common.REDIS_SERVICE_DB)
        stack.cleanups.append(lambda: common.drop_pg_database(common.BENCH_DB))
        stack.cleanups.append(lambda: common.flush_redis(common.REDIS_SERVICE_DB))
    else:
        database_url = f"sqlite:///{stack.logdir / 'ingest.db'}"
        broker_url = f"sqla+sqlite:///{stack.logdir / 'ingest-broker.db'}"
        common.migrate_schema(database_url)
    tokens = seed_cm_orders(database_url, ORDERS)
    env = common.service_env(database_url, broker_url, "http://127.0.0.1:9")
    web_url = common.start_web(stack, env, name=f"web-{backend}")
    web = stack.procs[-1]
    service_paths = [f"/webhooks/cm/{t}" for t in tokens]
    load(web_url, service_paths[:50], 2, connections, stack.logdir, tool)  # warm up
    spy = None
    if getattr(args, "profile", False):
        from bench.e2e import start_profile

        spy = start_profile(stack, web, str(common.RESULTS_JSON / f"profile-ingest-{backend}.txt"))
    cpu0 = web.cpu_seconds()
    service = load(web_url, service_paths, seconds, connections, stack.logdir, tool)
    if spy is not None:
        from bench.e2e import stop_profile

        stop_profile(spy)
    service["cpu_ms_per_req"] = 1000 * (web.cpu_seconds() - cpu0) / max(service["requests"], 1)
    stack.stop(web)

    bare_db = database_url
    if backend != "postgres":
        bare_db = f"sqlite:///{stack.logdir / 'bare.db'}"
    bare_url = start_bare_web(stack, bare_db)
    bare_proc = stack.procs[-1]
    bare_paths = [f"/hook/{t}" for t in tokens]
    load(bare_url, bare_paths[:50], 2, connections, stack.logdir, tool)
    cpu0 = bare_proc.cpu_seconds()
    bare = load(bare_url, bare_paths, seconds, connections, stack.logdir, tool)
    bare["cpu_ms_per_req"] = 1000 * (bare_proc.cpu_seconds() - cpu0) / max(bare["requests"], 1)
    stack.stop(bare_proc)
    return {
        "backend": backend,
        "tool": tool,
        "connections": connections,
        "seconds": seconds,
        "service": service,
        "bare": bare,
    }


def main(args: Any) -> dict[str, Any]:
    tool = "wrk" if have_wrk() and not args.python_load else "python"
    results = []
    backends = ["postgres"] if args.quick else ["postgres", "sqlite"]
    for backend in backends:
        with Stack() as stack:
            log(
                f"ingest ({backend}, {tool}, {args.connections} connections): logs in {stack.logdir}"
            )
            results.append(measure(backend, args, stack, tool))
    data = {"results": results}
    common.record("ingest", data)
    print("\n== webhook ingest: POST /webhooks/cm/<token> vs bare Flask + one committed UPDATE ==")
    for r in results:
        s, b = r["service"], r["bare"]
        print(
            common.line(
                f"{r['backend']} req/s ({r['tool']} -c {r['connections']})",
                s["rate"],
                b["rate"],
                "req/s",
                0.5,
            )
        )
        print(
            f"{'':<48} p50/p99 service {s['p50_ms']:.1f}/{s['p99_ms']:.1f} ms, bare "
            f"{b['p50_ms']:.1f}/{b['p99_ms']:.1f} ms (target p99 < 50 ms: "
            f"{'MET' if s['p99_ms'] < 50 else 'MISSED'}); CPU/req service "
            f"{s['cpu_ms_per_req']:.2f} ms, bare {b['cpu_ms_per_req']:.2f} ms; non-2xx "
            f"{s['non_2xx']:.0f}/{b['non_2xx']:.0f}"
        )
    return data
