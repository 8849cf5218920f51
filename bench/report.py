"""Markdown tables from the recorded figures (bench/results/*.json), for RESULTS.md:
``python -m bench.report``."""

from __future__ import annotations

import json
from typing import Any

from bench import common


def _load(part: str) -> dict[str, Any] | None:
    path = common.RESULTS_JSON / f"{part}.json"
    return json.loads(path.read_text()) if path.exists() else None


def e2e_table(data: dict[str, Any]) -> str:
    rows = [
        "| run | latency | layout | backend | settled | orders/s | limit/s | CPU ms/order worker | web | worker+web | PG backends | sandbox | POST p50/p99 ms | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["runs"]:
        done = max(r["done"], 1)
        cpu = {k: 1000 * v / done for k, v in r["cpu"].items()}
        layout = f"{r['pool']} -c {r['concurrency']}"
        if r["processes"] > 1:
            layout = f"{r['processes']} x {layout}"
        limit = r["processes"] * r["concurrency"] / 0.2 if r["latency_ms"] == 200 else None
        post = f"{r['post_ms_p50']:.0f}/{r['post_ms_p99']:.0f}" if r.get("post_ms_p50") else ""
        note = r.get("note", "")
        if r.get("busy_before", 0) >= 15:
            note += f" machine {r['busy_before']:.0f}% busy before"
        rows.append(
            f"| {r['kind']} | {r['latency_ms']:.0f} ms | {layout} | {r['backend']} | "
            f"{r['done']}/{r['orders']} | **{r['rate']:.1f}** | "
            f"{'' if limit is None else f'{limit:.0f}'} | {cpu.get('worker', 0):.1f} | "
            f"{cpu.get('web', 0):.1f} | {cpu.get('worker', 0) + cpu.get('web', 0):.1f} | "
            f"{cpu.get('postgres', 0):.1f} | {cpu.get('sandbox', 0):.1f} | {post} | {note} |"
        )
    return "\n".join(rows)


def main() -> None:
    data = _load("e2e")
    if data:
        print(e2e_table(data))
    ingest = _load("ingest")
    if ingest:
        print(
            "\n| backend | tool | service req/s | bare req/s | ratio | service p50/p99 ms | bare p50/p99 ms | CPU ms/req service / bare |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in ingest["results"]:
            s, b = r["service"], r["bare"]
            print(
                f"| {r['backend']} | {r['tool']} -c {r['connections']} | {s['rate']:.0f} | "
                f"{b['rate']:.0f} | {s['rate'] / b['rate']:.2f}x | {s['p50_ms']:.1f}/{s['p99_ms']:.1f} | "
                f"{b['p50_ms']:.1f}/{b['p99_ms']:.1f} | {s['cpu_ms_per_req']:.2f} / {b['cpu_ms_per_req']:.2f} |"
            )
    queries = _load("queries")
    if queries:
        print(f"\n| read ({queries['orders']:,} orders) | median ms | p95 ms |")
        print("|---|---|---|")
        for name, f in queries["figures"].items():
            print(f"| {name} | {f['median_ms']:.1f} | {f['p95_ms']:.1f} |")
        print("\n| query | EXPLAIN ANALYZE ms | index |")
        print("|---|---|---|")
        for name, p in queries["plans"].items():
            print(
                f"| {name} | {p['execution_ms']:.1f} | {', '.join(p['indexes']) or 'none: seq scan'} |"
            )
    for part in ("rss", "rss-quick"):
        rss = _load(part)
        if rss:
            print(
                f"\nRSS ({part}): {rss['settled']} orders in {rss['seconds']:.0f}s "
                f"({rss['rate']:.1f}/s), start {rss['rss_start_mib']:.1f} MiB, after 10% "
                f"{rss['rss_warm_mib']:.1f}, end {rss['rss_end_mib']:.1f}, peak "
                f"{rss['rss_peak_mib']:.1f}: growth {rss['growth_pct']:+.1f}%"
            )


if __name__ == "__main__":
    main()
