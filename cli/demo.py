"""``numbers demo``: the whole service on the embedded default, against the sandbox.

Starts the sandbox, the web app and a worker (with the sweep) as real processes on a SQLite
database and the SQLite-backed Celery transport, places a batch of orders over HTTP with some
transient faults, shows progress, prints a summary, and stops everything it started.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sandbox.app import SandboxCredentials

console = Console(width=max(Console().width, 120))
SETTLED = {"fulfilled", "partially_fulfilled", "needs_action", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_environment(workdir: Path, sandbox_url: str, web_url: str, token: str) -> dict[str, str]:
    creds = SandboxCredentials()
    return {
        "NUMBERS_DATABASE_URL": f"sqlite:///{workdir / 'numbers.db'}",
        "NUMBERS_BROKER_URL": f"sqla+sqlite:///{workdir / 'broker.db'}",
        "NUMBERS_PUBLIC_URL": web_url,
        "NUMBERS_API_TOKENS": token,
        "NUMBERS_CLOSE_BASE_URL": f"{sandbox_url}/close/api/v1",
        "NUMBERS_CLOSE_API_KEY": creds.close_api_key,
        "NUMBERS_SIGNALWIRE_BASE_URL": f"{sandbox_url}/signalwire",
        "NUMBERS_SIGNALWIRE_PROJECT_ID": creds.signalwire_project_id,
        "NUMBERS_SIGNALWIRE_API_TOKEN": creds.signalwire_api_token,
        "NUMBERS_IDENTITYCALL_BASE_URL": f"{sandbox_url}/identitycall/api/v1/public",
        "NUMBERS_IDENTITYCALL_API_KEY": creds.identitycall_api_key,
        "NUMBERS_CM_BASE_URL": f"{sandbox_url}/cm/voice-phonenumberrequestapi/v1",
        "NUMBERS_CM_PRODUCT_TOKEN": creds.cm_product_token,
        "NUMBERS_CM_ACCOUNT_ID": creds.cm_account_id,
        "NUMBERS_NOTIFY_SECRET": "whsec_" + "ZGVtby1ub3RpZnktc2VjcmV0LWtleS0xMjM0NTY3OA==",
        "NUMBERS_CALLBACK_GRACE_S": "20",
        "NUMBERS_RETRY_BASE_S": "0.3",
        "NUMBERS_RETRY_CAP_S": "3",
        "NUMBERS_SWEEP_INTERVAL_S": "2",
        "NUMBERS_PROVIDER_TIMEOUT_S": "5",
        "NUMBERS_CLAIM_TTL_S": "20",
    }


def demo_orders(count: int) -> list[dict[str, Any]]:
    """A mix that reaches every kind of outcome, cycled to ``count`` orders."""
    mix: list[dict[str, Any]] = [
        {"provider": "close", "country": "US", "area_code": "415", "number_type": "local"},
        {"provider": "close", "country": "US", "area_code": "212", "capabilities": {"sms": True}},
        {"provider": "close", "country": "US", "area_code": "555"},  # voice-only fallback
        {"provider": "close", "country": "US", "area_code": "312", "quantity": 2},
        {"provider": "close", "country": "GB", "area_code": "666"},  # needs-more-info
        {"provider": "close", "country": "US", "area_code": "999"},  # error
    ]
    profile = {"company_profile_id": "6f1c2b1e-6d1a-4f47-9a43-3f1f0e0c7b11"}
    mix += [
        {"provider": "signalwire", "country": "US", "area_code": "646", "number_type": "local"},
        {"provider": "signalwire", "country": "US", "area_code": "200"},  # stale candidate first
        {"provider": "signalwire", "country": "US", "phone_number": "+14155550000"},  # gone
        {"provider": "identitycall", "country": "US", "number_type": "local"},
        {"provider": "identitycall", "country": "US", "options": {"requirement_group_id": 13}},
        {
            "provider": "cm",
            "country": "NL",
            "number_type": "local",
            "area_code": "20",
            "options": profile,
        },
        {
            "provider": "cm",
            "country": "NL",
            "number_type": "local",
            "area_code": "201",
            "options": profile,
        },
        {
            "provider": "cm",
            "country": "NL",
            "number_type": "local",
            "area_code": "666",
            "options": profile,
        },
        {
            "provider": "cm",
            "country": "NL",
            "number_type": "local",
            "area_code": "777",
            "quantity": 4,
            "options": profile,
        },
    ]
    return [dict(mix[i % len(mix)], reference=f"demo-{i}") for i in range(count)]


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args], env=env, stdout=handle, stderr=subprocess.STDOUT
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up within {timeout:.0f}s")


def run_demo(*, count: int, fault_rate: float, workdir: str | None, timeout: float) -> int:
    with ExitStack() as stack:
        folder = (
            Path(workdir)
            if workdir
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="numbers-demo-")))
        )
        folder.mkdir(parents=True, exist_ok=True)
        sandbox_url, web_url = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
        token = secrets.token_urlsafe(24)
        env = {**os.environ, **demo_environment(folder, sandbox_url, web_url, token)}
        console.print(f"[bold]numbers demo[/bold]: embedded default in {folder}")

        from models.migrate import upgrade

        upgrade(env["NUMBERS_DATABASE_URL"])
        procs = {
            "sandbox": _spawn(
                ["sandbox", "--port", sandbox_url.rsplit(":", 1)[1]], env, folder / "sandbox.log"
            ),
            "web": _spawn(
                ["web", "--port", web_url.rsplit(":", 1)[1], "--workers", "2"],
                env,
                folder / "web.log",
            ),
            "worker": _spawn(
                ["worker", "--beat", "--concurrency", "8"], env, folder / "worker.log"
            ),
        }
        for proc in procs.values():
            stack.callback(_stop, proc)
        _wait_http(f"{sandbox_url}/_sandbox/stats")
        _wait_http(f"{web_url}/healthz")
        httpx.post(
            f"{sandbox_url}/_sandbox/config",
            json={"transient_rate": fault_rate, "seed": 7, "cm_delay_s": 3.0},
        ).raise_for_status()
        console.print(
            f"started sandbox {sandbox_url}, web {web_url}, worker; transient fault rate {fault_rate:.0%}"
        )
        ids = _place(web_url, token, demo_orders(count))
        orders = _follow(web_url, token, ids, timeout)
        sandbox_stats = httpx.get(f"{sandbox_url}/_sandbox/stats").json()
        ok = _summary(orders, sandbox_stats, web_url, token)
        console.print(f"logs: {folder}" if workdir else "stopping everything the demo started")
        return 0 if ok else 1
    return 1


def _place(web_url: str, token: str, bodies: list[dict[str, Any]]) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    ids = []
    with httpx.Client(base_url=web_url, headers=headers, timeout=10) as client:
        for body in bodies:
            response = client.post(
                "/v1/orders", json=body, headers={"Idempotency-Key": body["reference"]}
            )
            if response.status_code != 202:
                raise RuntimeError(
                    f"order {body['reference']} refused: {response.status_code} {response.text}"
                )
            ids.append(response.json()["id"])
    return ids


def _follow(web_url: str, token: str, ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    orders: dict[str, dict[str, Any]] = {}
    columns = (
        TextColumn("[bold]orders"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[states]}"),
        TimeElapsedColumn(),
    )
    with (
        httpx.Client(base_url=web_url, headers=headers, timeout=10) as client,
        Progress(*columns, console=console) as progress,
    ):
        task = progress.add_task("orders", total=len(ids), states="")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for order_id in ids:
                if orders.get(order_id, {}).get("state") not in SETTLED:
                    orders[order_id] = client.get(f"/v1/orders/{order_id}").json()
            states = Counter(o["state"] for o in orders.values())
            done = sum(n for s, n in states.items() if s in SETTLED)
            progress.update(
                task, completed=done, states=" ".join(f"{s}={n}" for s, n in sorted(states.items()))
            )
            if done == len(ids):
                break
            time.sleep(0.5)
    return orders


def _summary(
    orders: dict[str, dict[str, Any]], sandbox_stats: dict[str, Any], web_url: str, token: str
) -> bool:
    by_provider: dict[str, Counter[str]] = {}
    for order in orders.values():
        by_provider.setdefault(order["provider"], Counter())[order["state"]] += 1
    states = sorted({s for c in by_provider.values() for s in c})
    table = Table(
        "provider",
        *states,
        "retried",
        "delayed",
        "attempts",
        "numbers",
        "rented",
        title="demo summary",
    )
    ok = True
    for provider, counts in sorted(by_provider.items()):
        mine = [o for o in orders.values() if o["provider"] == provider]
        credited = sum(len(o["numbers"]) for o in mine)
        rented = sandbox_stats.get(provider, {}).get("rented", 0)
        ok &= credited == rented
        retried = sum(1 for o in mine if o["attempts"] > max(1, len(o["numbers"])))
        delayed = sum(
            1 for o in mine if any(e["to"] == "waiting_provider" for e in o.get("events", []))
        )
        cells = [str(counts.get(s, 0)) for s in states]
        table.add_row(
            provider,
            *cells,
            str(retried),
            str(delayed),
            str(sum(o["attempts"] for o in mine)),
            str(credited),
            str(rented),
        )
    console.print(table)
    reasons = Counter(
        f"{o['provider']} {o['state']}: {(o.get('last_error') or {}).get('message', '')[:70]}"
        for o in orders.values()
        if o["state"] in ("failed", "needs_action", "partially_fulfilled")
    )
    for line, n in sorted(reasons.items()):
        console.print(f"  {n} x {line}")
    unsettled = [o for o in orders.values() if o["state"] not in SETTLED]
    console.print(
        f"settled {len(orders) - len(unsettled)}/{len(orders)}; numbers credited == numbers rented at the providers: {ok}"
    )
    return ok and not unsettled
