"""Run the sandbox over real HTTP: in a background thread for tests, or in the foreground."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sandbox.app import create_sandbox_app
from sandbox.state import SandboxCredentials, SandboxState

# serve_forever checks for shutdown this often; short so stop() returns quickly in tests.
POLL_INTERVAL_S = 0.05
JOIN_TIMEOUT_S = 5.0


class _QuietHandler(WSGIRequestHandler):
    """No access log: tests start servers by the dozen and the lines are noise."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class SandboxServer:
    """The sandbox app on a werkzeug threaded server in a daemon thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: SandboxCredentials | None = None,
        log_requests: bool = False,
    ) -> None:
        self.host = host
        self.app = create_sandbox_app(credentials)
        self._requested_port = port
        self._handler = WSGIRequestHandler if log_requests else _QuietHandler
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = make_server(
            self.host,
            self._requested_port,
            self.app,
            threaded=True,
            request_handler=self._handler,
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL_S},
            name=f"sandbox-{server.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        self.state.close()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(JOIN_TIMEOUT_S)

    @property
    def state(self) -> SandboxState:
        state: SandboxState = self.app.extensions["sandbox"]
        return state

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("sandbox server is not running")
        return int(self._server.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(host: str = "127.0.0.1", port: int = 8099) -> None:
    """Serve in the foreground until SIGTERM or SIGINT, then shut down cleanly."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    server = SandboxServer(host, port, log_requests=True).start()
    print(f"sandbox listening on {server.url}", flush=True)
    try:
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stopping.wait(0.2):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("sandbox stopped", flush=True)
