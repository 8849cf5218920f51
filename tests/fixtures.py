"""Fixtures: a fresh database per run, the sandbox over real HTTP, real worker processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import API_TOKEN, DB_NAME, RUN_DIR, SANDBOX_PORT, SANDBOX_URL, TEST_ENV

TERMINAL = {"fulfilled", "partially_fulfilled", "needs_action", "failed", "cancelled"}
TABLES = (
    "notification_attempts",
    "notifications",
    "webhook_deliveries",
    "numbers",
    "attempts",
    "order_events",
    "outbox",
    "orders",
    "provider_states",
)


def is_postgres() -> bool:
    return TEST_ENV["NUMBERS_DATABASE_URL"].startswith("postgresql")


def _create_postgres_database() -> None:
    admin = create_engine(
        os.environ["NUMBERS_TEST_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()


def _drop_postgres_database() -> None:
    from models.db import dispose_engines

    dispose_engines()
    admin = create_engine(
        os.environ["NUMBERS_TEST_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[str]:
    if is_postgres():
        _create_postgres_database()
    from models.migrate import upgrade

    upgrade()
    yield TEST_ENV["NUMBERS_DATABASE_URL"]
    if is_postgres():
        _drop_postgres_database()


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Any]:
    from sandbox.server import SandboxServer

    server = SandboxServer(port=SANDBOX_PORT).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: Any) -> Iterator[Sandbox]:
    client = Sandbox(SANDBOX_URL)
    client.reset()
    yield client
    client.reset()


class Sandbox:
    """The sandbox's control API, as the tests use it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def reset(self) -> None:
        self.http.post("/_sandbox/reset").raise_for_status()

    def faults(self, provider: str, *faults: dict[str, Any]) -> None:
        self.http.post(
            "/_sandbox/faults", json={"provider": provider, "faults": list(faults)}
        ).raise_for_status()

    def configure(self, **settings: Any) -> None:
        self.http.post("/_sandbox/config", json=settings).raise_for_status()

    def stats(self, provider: str | None = None) -> Any:
        stats = self.http.get("/_sandbox/stats").json()
        return stats[provider] if provider else stats


@pytest.fixture(autouse=True)
def clean_database(database: str) -> Iterator[None]:
    _truncate()
    yield


def _truncate() -> None:
    from models.db import get_engine

    engine = get_engine()
    with engine.begin() as conn:
        if is_postgres():
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        else:
            for table in TABLES:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(autouse=True)
def purge_broker() -> Iterator[None]:
    from worker.app import QUEUES, app

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in QUEUES:
            with contextlib.suppress(Exception):  # a queue never declared has nothing to purge
                channel.queue_purge(queue)
    yield


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    from models.config import reset_settings
    from worker.providers.registry import reset_clients

    reset_settings()
    reset_clients()
    yield
    reset_settings()
    reset_clients()


class WorkerProcess:
    """A real ``numbers worker`` process (Celery, with the sweep), started and stopped by tests."""

    def __init__(self, env: dict[str, str], log: Path, args: list[str]) -> None:
        self.env = env
        self.log = log
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", *self.args],
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group: no chance to finish or acknowledge anything."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_worker(request: pytest.FixtureRequest) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, beat: bool = True) -> WorkerProcess:
        argv = list(args) or ["--pool", "threads", "--concurrency", "4"]
        if beat:
            argv.append("--beat")
        log = RUN_DIR / f"worker-{request.node.name[:60]}-{len(started)}.log"
        worker = WorkerProcess({**os.environ, **(env or {})}, log, argv).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def api() -> Iterator[Any]:
    """The real Flask app through its test client, with a valid bearer token."""
    from webhooks import create_app

    app = create_app()
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_TOKEN}"
    yield client


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.2,
    what: str = "condition",
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def order_state(order_id: str) -> str:
    from models.db import session_scope
    from models.tables import Order

    with session_scope() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order.state


def wait_settled(order_id: str, timeout: float = 45.0) -> str:
    return wait_for(
        lambda: (s := order_state(order_id)) in TERMINAL and s,
        timeout,
        what=f"order {order_id} to settle",
    )


class Receiver:
    """A real HTTP server that records what is POSTed to it and answers scripted statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        from werkzeug.serving import make_server
        from werkzeug.wrappers import Request, Response

        self.requests: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])

        @Request.application  # type: ignore[misc]
        def app(request: Request) -> Response:
            self.requests.append(
                {"path": request.path, "headers": dict(request.headers), "body": request.get_data()}
            )
            status = self.statuses.pop(0) if self.statuses else 200
            return Response("ok", status=status)

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def web_server() -> Iterator[str]:
    """The real Flask app on a real threaded HTTP server (providers' callbacks reach it)."""
    import threading

    from werkzeug.serving import make_server

    from webhooks import create_app

    server = make_server("127.0.0.1", 0, create_app(), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A Redis server of the test's own, on a spare port, that the test stops and starts."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port = port
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._up, 10, 0.05, "redis to start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        wait_for(lambda: not self._up(), 10, 0.05, "redis to stop")

    def _up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is required for the broker outage test")
    folder = RUN_DIR / f"redis-{spare_port()}"
    folder.mkdir()
    server = RedisServer(spare_port(), folder)
    server.start()
    yield server
    server.stop()
