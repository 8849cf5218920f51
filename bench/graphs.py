"""PNG graphs from the recorded figures (bench/results/*.json): throughput against concurrency
at 200 ms provider latency, service against bare Celery; worker RSS over orders."""

from __future__ import annotations

import json
from typing import Any

from bench import common


def _load(part: str) -> dict[str, Any] | None:
    path = common.RESULTS_JSON / f"{part}.json"
    return json.loads(path.read_text()) if path.exists() else None


def throughput() -> str | None:
    data = _load("e2e")
    if data is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in data["runs"] if r["latency_ms"] == 200 and r["pool"] == "threads"]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    styles = {"service": ("tab:blue", "o"), "bare-post": ("tab:orange", "s")}
    for kind, (color, marker) in styles.items():
        for processes, dash in ((1, "-"), (2, "--"), (3, ":")):
            pts = sorted(
                (r["concurrency"] * processes, r["rate"])
                for r in runs
                if r["kind"] == kind and r["processes"] == processes
            )
            if not pts:
                continue
            label = ("service" if kind == "service" else "bare Celery + 1 httpx POST") + (
                f", {processes} processes" if processes > 1 else ", 1 process"
            )
            ax.plot(*zip(*pts, strict=True), dash, color=color, marker=marker, label=label)
    xs = sorted({r["concurrency"] * r["processes"] for r in runs})
    if xs:
        lim = [x / 0.2 for x in xs]
        ax.plot(xs, lim, color="grey", lw=0.8, label="limit: processes x concurrency / 0.2 s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tasks in flight (processes x threads)")
    ax.set_ylabel("orders (tasks) per second")
    ax.set_title("200 ms provider latency, threads pool, PostgreSQL + Redis, 2 cores")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    out = common.BENCH_DIR / "throughput_200ms.png"
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return str(out)


def rss() -> str | None:
    data = _load("rss")
    if data is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    pts = [(s["orders"], s["rss_mib"]) for s in data["samples"]]
    ax.plot(*zip(*pts, strict=True), color="tab:blue")
    ax.set_xlabel("orders settled")
    ax.set_ylabel("worker RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"worker RSS, {data['pool']} -c {data['concurrency']}, 0 ms provider")
    ax.grid(True, alpha=0.3)
    out = common.BENCH_DIR / "worker_rss.png"
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return str(out)


def main() -> None:
    for made in (throughput(), rss()):
        if made:
            common.log(f"graph: {made}")


if __name__ == "__main__":
    main()
