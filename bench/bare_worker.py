"""The bare Celery baseline: the service's Celery settings (Redis, late acks, prefetch 1, no
results) and nothing else: a no-op task, and a task that makes one httpx POST to the same
sandbox endpoint the service rents from, through one pooled keep-alive client per process.

Run by the benchmark as ``python -m celery -A bench.bare_worker worker -Q bare ...`` with
``BENCH_BARE_BROKER`` and ``BENCH_BARE_TARGET`` in the environment.
"""

from __future__ import annotations

import base64
import os
import threading
from typing import Any

import httpx
from celery import Celery

QUEUE = "bare"

app = Celery("bare", broker=os.environ.get("BENCH_BARE_BROKER", "redis://127.0.0.1:6379/11"))
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_clients: dict[int, httpx.Client] = {}
_lock = threading.Lock()
_AUTH = "Basic " + base64.b64encode(b"sandbox-close-key:").decode()


def client() -> httpx.Client:
    """One pooled client per process (a prefork child builds its own)."""
    pid = os.getpid()
    found = _clients.get(pid)
    if found is None:
        with _lock:
            found = _clients.get(pid)
            if found is None:
                found = httpx.Client(
                    timeout=httpx.Timeout(30, connect=5),
                    headers={"Authorization": _AUTH, "Accept": "application/json"},
                    limits=httpx.Limits(max_connections=1000, max_keepalive_connections=1000),
                )
                _clients[pid] = found
    return found


@app.task(name="bare.noop", ignore_result=True)
def noop() -> None:
    return None


@app.task(name="bare.post", ignore_result=True)
def post(prefix: str) -> int:
    body: dict[str, Any] = {"country": "US", "sharing": "personal", "prefix": prefix}
    response = client().post(os.environ["BENCH_BARE_TARGET"], json=body)
    return response.status_code
