"""Part 2: CPU seconds per fulfilled order, worker + web, from the OS's accounting (user + system
time of every process of each tree, psutil), next to the bare Celery task's CPU per task.

``python -m bench cpu`` runs one service run and one bare run at 0 ms and at 200 ms
(threads -c 100 and -c 8); after ``e2e`` (or ``all``) the same figures are printed from the
e2e runs without running anything again.
"""

from __future__ import annotations

import json
from typing import Any

from bench import common
from bench.common import Stack, log
from bench.e2e import Context, Run, print_run


def table(runs: list[Run]) -> None:
    print("\n== CPU per order (ms), OS accounting: user + system ==")
    print(
        f"{'run':<42} {'worker':>7} {'web':>6} {'w+web':>6} {'pg':>6} {'sandbox':>7} "
        f"{'loadgen':>7} {'orders/s':>8}"
    )
    for r in runs:
        print(
            f"{r.kind + ' ' + r.layout + f' {r.latency_ms:.0f} ms':<42} "
            f"{r.cpu_ms_per_order('worker'):7.2f} {r.cpu_ms_per_order('web'):6.2f} "
            f"{r.cpu_ms_per_order('worker', 'web'):6.2f} {r.cpu_ms_per_order('postgres'):6.2f} "
            f"{r.cpu_ms_per_order('sandbox'):7.2f} {r.cpu_ms_per_order('producer'):7.2f} "
            f"{r.rate:8.1f}"
        )


def report_from_e2e() -> None:
    path = common.RESULTS_JSON / "e2e.json"
    if not path.exists():
        return
    runs = [Run(**r) for r in json.loads(path.read_text())["runs"]]
    table(runs)


def main(args: Any) -> dict[str, Any]:
    runs: list[Run] = []
    n200 = 400 if args.quick else 1200
    n0 = 300 if args.quick else 1200
    with Stack() as stack:
        log(f"cpu: logs in {stack.logdir}")
        ctx = Context(stack, "postgres")
        plan: list[tuple[Any, dict[str, Any]]] = [
            (
                ctx.service_run,
                {"pool": "threads", "concurrency": 100, "latency_ms": 200, "orders": n200},
            ),
            (
                ctx.bare_run,
                {
                    "task": "post",
                    "pool": "threads",
                    "concurrency": 100,
                    "latency_ms": 200,
                    "orders": n200,
                },
            ),
            (ctx.service_run, {"pool": "threads", "concurrency": 8, "latency_ms": 0, "orders": n0}),
            (
                ctx.bare_run,
                {
                    "task": "post",
                    "pool": "threads",
                    "concurrency": 8,
                    "latency_ms": 0,
                    "orders": n0,
                },
            ),
            (
                ctx.bare_run,
                {
                    "task": "noop",
                    "pool": "prefork",
                    "concurrency": 2,
                    "latency_ms": 0,
                    "orders": n0 * 4,
                },
            ),
        ]
        for fn, kw in plan:
            run = fn(**kw)
            print_run(run)
            runs.append(run)
    table(runs)
    from dataclasses import asdict

    data = {"runs": [asdict(r) for r in runs]}
    common.record("cpu", data)
    return data
