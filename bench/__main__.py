"""``python -m bench <part> [options]``: run one part of the benchmarks, or all of them.

Parts: e2e (orders/s end to end, with CPU per order), cpu (CPU seconds per order only),
ingest (webhook req/s and p99), queries (1M orders), rss (worker memory), all.
``--quick`` makes every part small (the whole ``all`` in about 3 minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench import common


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("part", choices=["e2e", "cpu", "ingest", "queries", "rss", "all", "machine"])
    p.add_argument("--quick", action="store_true", help="small runs (smoke test, ~3 min for all)")
    p.add_argument("--profile", action="store_true", help="py-spy the worker / web (e2e, ingest)")
    p.add_argument(
        "--other-pools", action="store_true", help="e2e: also gevent and prefork service runs"
    )
    p.add_argument("--sqlite", action="store_true", help="e2e: only the embedded-default runs")
    p.add_argument("--connections", type=int, default=16, help="ingest: wrk connections")
    p.add_argument("--python-load", action="store_true", help="ingest: Python load, not wrk")
    p.add_argument("--orders", type=int, default=None, help="queries: 1000000; rss: 100000")
    p.add_argument("--reload", action="store_true", help="queries: rebuild the 1M database")
    p.add_argument("--drop", action="store_true", help="queries: drop the 1M database after")
    p.add_argument("--pool", default="threads", help="rss: worker pool")
    p.add_argument("--concurrency", type=int, default=16, help="rss: worker concurrency")
    p.add_argument("--timeout", type=float, default=3600, help="rss: stop after this many s")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    common.QUICK = args.quick
    started = time.perf_counter()
    print(json.dumps(common.machine(), indent=1))
    if args.part == "machine":
        return 0
    parts = ["e2e", "ingest", "queries", "rss"] if args.part == "all" else [args.part]
    for part in parts:
        t = time.perf_counter()
        if part == "e2e":
            from bench import e2e, graphs

            e2e.main(args)
            if not args.sqlite and not args.quick:
                graphs.main()
        elif part == "cpu":
            from bench import cpu

            cpu.main(args)
        elif part == "ingest":
            from bench import ingest

            ingest.main(args)
        elif part == "queries":
            from bench import queries

            if args.orders is None or args.part == "all":
                args.orders = 1_000_000
            queries.main(args)
        elif part == "rss":
            from bench import rss

            if args.orders is None or args.part == "all":
                args.orders = 10_000 if args.part == "all" else 100_000
            rss.main(args)
        common.log(f"{part} took {time.perf_counter() - t:.0f}s")
    if args.part in ("all", "e2e") and not args.sqlite and not args.quick:
        from bench import cpu

        cpu.report_from_e2e()
    common.log(f"done in {time.perf_counter() - started:.0f}s; raw figures in bench/results/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
