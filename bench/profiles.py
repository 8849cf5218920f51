"""Reading py-spy's raw (collapsed) profiles: where the CPU goes, by function.

``python -m bench.profiles FILE [--top N] [--match TEXT]`` prints the functions with the most
samples, inclusive (the function and what it calls) and self (the function's own frames), as a
share of all samples. py-spy samples running threads only (no ``--idle``), so the shares are
shares of CPU time, not of wall time.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path


def _read(path: str | Path) -> str:
    """A profile as text; ``.gz`` files (how bench/results keeps them) are decompressed."""
    if str(path).endswith(".gz"):
        import gzip

        return gzip.decompress(Path(path).read_bytes()).decode(errors="replace")
    return Path(path).read_text(errors="replace")


_FRAME = re.compile(r"^(?P<fn>.+?) \((?P<file>[^:()]+):\d+\)$")


def _frames(stack: str) -> list[str]:
    out = []
    for raw in stack.split(";"):
        if raw.startswith("process ") or raw.startswith("thread "):
            continue
        m = _FRAME.match(raw.strip())
        if m is None:
            out.append(raw.strip())
            continue
        path = m.group("file")
        # Keep the last two path parts: enough to tell worker/placement.py from sqlalchemy/...
        short = "/".join(path.split("/")[-2:])
        out.append(f"{short}:{m.group('fn')}")
    return out


def load(path: str | Path) -> tuple[Counter[str], Counter[str], int]:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for row in _read(path).splitlines():
        stack, _, count = row.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = _frames(stack)
        if not frames:
            continue
        total += n
        for fn in set(frames):
            inclusive[fn] += n
        own[frames[-1]] += n
    return inclusive, own, total


def top(path: str | Path, n: int = 25, match: str | None = None) -> str:
    inclusive, own, total = load(path)
    lines = [f"{total} samples (CPU, running threads only) in {Path(path).name}"]
    lines.append(f"{'inclusive':>9}  function")
    for fn, count in inclusive.most_common():
        if match and match not in fn:
            continue
        lines.append(f"{100 * count / total:8.1f}%  {fn}")
        if len(lines) >= n + 2:
            break
    lines.append(f"{'self':>9}  function")
    for fn, count in own.most_common(n):
        lines.append(f"{100 * count / total:8.1f}%  {fn}")
    return "\n".join(lines)


def share(path: str | Path, needles: dict[str, str]) -> dict[str, float]:
    """Inclusive share of samples whose stack contains each needle (a function name part)."""
    counts: Counter[str] = Counter()
    total = 0
    for row in _read(path).splitlines():
        stack, _, count = row.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for label, needle in needles.items():
            if needle in stack:
                counts[label] += int(count)
    return {label: 100 * counts[label] / max(total, 1) for label in needles}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--match", default=None, help="only inclusive rows containing this")
    args = parser.parse_args()
    print(top(args.file, args.top, args.match))


if __name__ == "__main__":
    main()


# Where the CPU goes, by component (inclusive: a sample counts in every component on its stack).
COMPONENTS = {
    "task body (worker.placement.place)": "place (worker/placement.py",
    "  claim + start + first attempt (one transaction)": "Placement.start (",
    "    claim: UPDATE … RETURNING the order": "claim_in (worker/placement.py",
    "  outcome + release (one transaction)": "Placement._on_purchase (",
    "    claim check (SELECT claimed_by … FOR UPDATE)": "_claimed_by (",
    "  ORM flush (INSERT/UPDATE of changed objects)": "Session._flush",
    "  ORM session.get (load by primary key)": "Session.get (",
    "  ORM lazy loads (order.numbers ...)": "_emit_lazyload",
    "  commit (incl. after-commit hooks)": "SessionTransaction.commit",
    "  new sessionmaker + Session subclass per session": "update_subclass",
    "  pool checkout pre-ping (SELECT 1)": "_do_ping_w_event",
    "  idle-connection ping (models.db)": "_checked_out (",
    "  provider call (httpx)": "httpx/",
    "  prometheus metrics": "prometheus_client",
    "Celery consumer loop (main thread)": "asynloop",
    "Celery task events (-E, task-sent)": "EventDispatcher",
    "logging (structlog + stdlib)": "logging/__init__.py",
    "request (flask full_dispatch_request)": "full_dispatch_request",
    "  intake.submit (order + event + outbox, commit)": "submit (worker/intake.py",
    "  after-commit publish (send_task + mark sent)": "_publish_after_commit",
    "    outbox mark-sent transaction": "_mark_sent",
    "  answer: order_json (lazy loads numbers, events)": "order_json",
    "  callbacks.receive": "receive (webhooks/callbacks.py",
}


def breakdown(path: str | Path) -> list[tuple[str, float]]:
    shares = share(path, COMPONENTS)
    return [(label, pct) for label, pct in shares.items() if pct >= 0.5]
