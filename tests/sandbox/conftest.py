"""Fixtures for the sandbox tests: one real server per session, reset before every test."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from sandbox import SandboxCredentials, SandboxServer

CREDS = SandboxCredentials()
CLOSE_PREFIX = "/close/api/v1"
SIGNALWIRE_PREFIX = "/signalwire/api/relay/rest"
IDENTITYCALL_PREFIX = "/identitycall/api/v1/public"
CM_PREFIX = f"/cm/voice-phonenumberrequestapi/v1/{CREDS.cm_account_id}"
PROFILE_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"

_serial = itertools.count(2000)


def fresh_number(area_code: str = "646") -> str:
    """A number no other test call in this session has asked for."""
    return f"+1{area_code}77{next(_serial):05d}"


class CallbackReceiver:
    """A tiny HTTP server that records every JSON body POSTed to it."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.deliveries: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver._record({"path": self.path, "body": json.loads(raw)})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    def _record(self, delivery: dict[str, Any]) -> None:
        with self._cond:
            self.deliveries.append(delivery)
            self._cond.notify_all()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.deliveries) >= count, timeout)
            return list(self.deliveries)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# The sandbox needs no database or broker: these no-ops shadow the service-wide autouse fixtures
# of tests/fixtures.py for this folder only, keeping the run fast and independent of the service.
@pytest.fixture(scope="session", autouse=True)
def database() -> None:
    return None


@pytest.fixture(autouse=True)
def clean_database() -> None:
    return None


@pytest.fixture(autouse=True)
def purge_broker() -> None:
    return None


@pytest.fixture(autouse=True)
def fresh_settings() -> None:
    return None


# Named apart from the service-wide sandbox_server and sandbox fixtures (tests/fixtures.py).
@pytest.fixture(scope="session")
def live_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture(scope="session")
def session_clients(live_sandbox: SandboxServer) -> Iterator[dict[str, httpx.Client]]:
    """One client per API for the whole run: building an httpx client costs an SSL context."""
    url = live_sandbox.url
    clients = {
        "control": httpx.Client(base_url=f"{url}/_sandbox"),
        "close": httpx.Client(base_url=url + CLOSE_PREFIX, auth=(CREDS.close_api_key, "")),
        "signalwire": httpx.Client(
            base_url=url + SIGNALWIRE_PREFIX,
            auth=(CREDS.signalwire_project_id, CREDS.signalwire_api_token),
        ),
        "identitycall": httpx.Client(
            base_url=url + IDENTITYCALL_PREFIX,
            headers={"Authorization": f"Bearer {CREDS.identitycall_api_key}"},
        ),
        "cm": httpx.Client(
            base_url=url + CM_PREFIX, headers={"X-CM-PRODUCTTOKEN": CREDS.cm_product_token}
        ),
    }
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture
def fresh_sandbox(
    live_sandbox: SandboxServer, session_clients: dict[str, httpx.Client]
) -> SandboxServer:
    """The session's sandbox server, emptied: no numbers, no faults, default settings."""
    session_clients["control"].post("/reset").raise_for_status()
    return live_sandbox


@pytest.fixture
def control(fresh_sandbox: SandboxServer, session_clients: dict[str, httpx.Client]) -> httpx.Client:
    return session_clients["control"]


@pytest.fixture
def close_client(
    fresh_sandbox: SandboxServer, session_clients: dict[str, httpx.Client]
) -> httpx.Client:
    return session_clients["close"]


@pytest.fixture
def signalwire_client(
    fresh_sandbox: SandboxServer, session_clients: dict[str, httpx.Client]
) -> httpx.Client:
    return session_clients["signalwire"]


@pytest.fixture
def identitycall_client(
    fresh_sandbox: SandboxServer, session_clients: dict[str, httpx.Client]
) -> httpx.Client:
    return session_clients["identitycall"]


@pytest.fixture
def cm_client(
    fresh_sandbox: SandboxServer, session_clients: dict[str, httpx.Client]
) -> httpx.Client:
    return session_clients["cm"]


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver()
    yield server
    server.close()


def stats(control: httpx.Client, provider: str) -> dict[str, Any]:
    response = control.get("/stats")
    response.raise_for_status()
    body: dict[str, Any] = response.json()[provider]
    return body
