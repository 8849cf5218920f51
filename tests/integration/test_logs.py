"""The logs of a whole run (web under gunicorn, a worker, callbacks, notifications) are JSON
lines bound to order, task and provider, and never contain a secret or a callback token."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

import httpx
from sqlalchemy import select

from models.db import session_factory
from models.tables import Order
from tests.conftest import API_TOKEN, RUN_DIR, TEST_ENV
from tests.fixtures import wait_for, wait_settled

SECRET_VARS = (
    "NUMBERS_CLOSE_API_KEY",
    "NUMBERS_SIGNALWIRE_API_TOKEN",
    "NUMBERS_IDENTITYCALL_API_KEY",
    "NUMBERS_CM_PRODUCT_TOKEN",
    "NUMBERS_NOTIFY_SECRET",
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_whole_run_logs_json_and_no_secret(
    sandbox: Any, receiver: Any, start_worker: Any
) -> None:
    sandbox.configure(cm_delay_s=0.5)
    port = _port()
    web_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "NUMBERS_PUBLIC_URL": web_url}
    web_log = RUN_DIR / "logs-web.log"
    with web_log.open("wb") as out:
        web = subprocess.Popen(
            [sys.executable, "-m", "cli", "web", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: _up(web_url), 30, what="the web app")
        worker = start_worker(env={"NUMBERS_PUBLIC_URL": web_url})
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        bodies = [
            {
                "provider": "cm",
                "country": "NL",
                "number_type": "local",
                "area_code": "20",
                "options": {"company_profile_id": "6f1c2b1e-6d1a-4f47-9a43-3f1f0e0c7b11"},
            },
            {
                "provider": "close",
                "country": "US",
                "area_code": "415",
                "notify_url": f"{receiver.url}/hook",
            },
            {"provider": "close", "country": "US", "area_code": "666"},
        ]
        ids = []
        for i, body in enumerate(bodies):
            response = httpx.post(
                f"{web_url}/v1/orders",
                json=body,
                headers={**headers, "Idempotency-Key": f"logs-{i}"},
                timeout=30,
            )
            assert response.status_code == 202
            ids.append(response.json()["id"])
        httpx.post(
            f"{web_url}/v1/orders",
            json=bodies[0],
            headers={"Authorization": "Bearer wrong-token", "Idempotency-Key": "x"},
            timeout=30,
        )
        for order_id in ids:
            wait_settled(order_id, timeout=60)
        wait_for(lambda: receiver.requests, 30, what="a notification")
    finally:
        web.terminate()
        web.wait(20)
    worker.stop()
    logs = web_log.read_text(errors="replace") + worker.output()

    with session_factory()() as session:
        tokens = list(session.scalars(select(Order.callback_token)))
    secrets = [TEST_ENV[name] for name in SECRET_VARS] + [API_TOKEN, "wrong-token", *tokens]
    for secret in secrets:
        assert secret not in logs, "a secret reached the logs"

    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert len(lines) > 10
    bound = [line for line in lines if line.get("order_id") in ids]
    assert bound, "no log line is bound to an order"
    assert any("provider" in line and "task_id" in line for line in bound)


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
