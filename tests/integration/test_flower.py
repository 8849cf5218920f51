"""Flower, started for real with the project's Celery app unchanged (``celery -A worker flower``),
beside a real worker.

What Flower can see depends on the transport. Flower's worker list and task list come from two
cross-process channels: task events (the worker publishes to the ``celeryev`` topic exchange,
Flower consumes them) and broadcast commands (``inspect``, a fanout exchange). Redis keeps
exchange bindings in Redis and does fanout with PUBLISH/SUBSCRIBE, so both work there. kombu's
SQLAlchemy transport (our embedded default) keeps exchange bindings in each process's memory and
has no fanout (``supports_fanout = False``): the worker's events reach no queue of Flower's and
Flower's ``inspect`` reaches no worker, so Flower shows no workers and no tasks there, and its
queue-length API supports only AMQP and Redis. What works on both transports, and is tested on
both: Flower starts, loads our app and its task names, serves its API behind basic auth, and
sends our tasks by name through the project's broker and routing to a real worker. The events
and inspect test brings a Redis of its own, so it runs on both backends too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import RUN_DIR
from tests.fixtures import RedisServer, order_state, wait_for, wait_settled
from tests.integration.helpers import create_order

PLACE = "worker.tasks.place_order"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Flower:
    url: str
    http: httpx.Client
    proc: subprocess.Popen[bytes]
    log: Any

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    def output(self) -> str:
        return str(self.log.read_text(errors="replace"))


def start_flower(env: dict[str, str]) -> Iterator[Flower]:
    port = _free_port()
    password = uuid.uuid4().hex
    log = RUN_DIR / f"flower-{port}.log"
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "worker",
                "flower",
                f"--port={port}",
                "--address=127.0.0.1",
                # Flower 2 refuses its API without auth (or FLOWER_UNAUTHENTICATED_API).
                f"--basic-auth=ops:{password}",
            ],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, auth=("ops", password), timeout=20)
    flower = Flower(url, http, proc, log)
    try:
        wait_for(lambda: _healthy(flower), 40, 0.2, f"Flower on {url} ({log})")
        yield flower
    finally:
        http.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def flower() -> Iterator[Flower]:
    """Flower on the suite's own broker (SQLite transport or Redis)."""
    yield from start_flower(dict(os.environ))


@pytest.fixture
def redis_flower(own_redis: RedisServer) -> Iterator[tuple[Flower, dict[str, str]]]:
    """Flower on a Redis of the test's own: worker events need a broker with fanout, which the
    SQLite-backed transport lacks, so this test brings Redis on both backends."""
    env = {**os.environ, "NUMBERS_BROKER_URL": f"redis://127.0.0.1:{own_redis.port}/0"}
    for flower in start_flower(env):
        yield flower, env


def _healthy(flower: Flower) -> bool:
    assert flower.proc.poll() is None, f"Flower exited:\n{flower.output()[-3000:]}"
    try:
        return flower.http.get("/healthcheck").text == "OK"
    except httpx.HTTPError:
        return False


def _purge_orders_queue() -> None:
    from worker.app import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("orders")


def test_flower_loads_our_app_and_sends_our_tasks_to_a_real_worker(
    sandbox: Any, start_worker: Any, flower: Flower
) -> None:
    """Both transports: Flower knows our task names and its task API reaches our worker."""
    assert "worker.tasks.place_order" in flower.output()  # its startup list of our app's tasks
    assert httpx.get(f"{flower.url}/api/workers", timeout=10).status_code == 401
    assert flower.http.post("/api/task/async-apply/worker.tasks.nope", json={}).status_code == 404

    # An order whose place_order message is gone from the queue, and no beat: nothing but the
    # task Flower sends can place it.
    order_id = create_order(area_code="415")
    _purge_orders_queue()
    worker = start_worker(beat=False)
    wait_for(lambda: " ready." in worker.output(), 40, 0.2, "the worker to be ready")
    assert order_state(order_id) == "queued"

    sent = flower.http.post(f"/api/task/async-apply/{PLACE}", json={"args": [order_id]})
    assert sent.status_code == 200, sent.text
    assert sent.json()["task-id"]
    assert wait_settled(order_id) == "fulfilled"
    assert sandbox.stats("close")["rented"] == 1


def test_flower_sees_our_worker_and_task_through_events_and_inspect(
    sandbox: Any, start_worker: Any, redis_flower: tuple[Flower, dict[str, str]]
) -> None:
    """The worker starts without task events (they cost messages nobody reads); Flower turns
    them on by itself (its enable_events broadcast, every few seconds) and then sees our tasks."""
    flower, env = redis_flower
    worker = start_worker(env=env)
    assert worker.proc is not None

    def ours() -> dict[str, Any] | None:
        workers = flower.get("/api/workers?refresh=1")
        return next(
            (w for w in workers.values() if w.get("stats", {}).get("pid") == worker.proc.pid),
            None,
        )

    seen = wait_for(ours, 30, 0.5, "Flower to inspect our worker")
    assert PLACE in seen["registered"]
    assert {q["name"] for q in seen["active_queues"]} == {"orders", "callbacks", "notifications"}

    placed: list[str] = []

    def task_seen_by_flower() -> dict[str, Any] | None:
        # Orders are created here (their first message goes to the suite's broker); the
        # worker's sweep finds each due and sends it through Flower's Redis. One placed
        # before Flower switched the worker's events on leaves no trace: place another.
        placed.append(create_order(area_code="415"))
        assert wait_settled(placed[-1]) == "fulfilled"
        tasks = flower.get(f"/api/tasks?taskname={PLACE}")
        return next(
            (t for t in tasks.values() if any(o in (t.get("args") or "") for o in placed)), None
        )

    task = wait_for(task_seen_by_flower, 60, 0.5, "Flower to see a place_order task")
    assert task["state"] == "SUCCESS" and task["name"] == PLACE
    assert PLACE in flower.get("/api/task/types")["task-types"]

    lengths = flower.get("/api/queues/length")["active_queues"]
    assert {q["name"] for q in lengths} >= {"orders", "callbacks", "notifications"}
    metrics = flower.http.get("/metrics").text
    assert f'flower_events_total{{task="{PLACE}",type="task-succeeded"' in metrics
