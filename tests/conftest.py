"""Test setup: the backend under test is chosen by environment variables (``.ci/run`` sets them).

- ``NUMBERS_TEST_DATABASE_URL``: unset = the embedded default (a SQLite file per run);
  a ``postgresql://`` URL = a fresh database created on that server for this run.
- ``NUMBERS_TEST_BROKER_URL``: unset = the SQLite-backed Celery transport; ``redis://…``.

Settings reach the code under test the way they reach production: ``NUMBERS_*`` variables, set
here before any project module reads them, and passed on to the worker processes we start.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


RUN_DIR = Path(tempfile.mkdtemp(prefix="numbers-tests-"))
SANDBOX_PORT = _free_port()
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"
API_TOKEN = "test-token-" + uuid.uuid4().hex
DB_NAME = f"numbers_test_{uuid.uuid4().hex[:10]}"


def _database_url() -> str:
    base = os.environ.get("NUMBERS_TEST_DATABASE_URL")
    if not base:
        return f"sqlite:///{RUN_DIR / 'numbers.db'}"
    return base.rsplit("/", 1)[0] + f"/{DB_NAME}"


def _broker_url() -> str:
    return os.environ.get("NUMBERS_TEST_BROKER_URL") or f"sqla+sqlite:///{RUN_DIR / 'broker.db'}"


TEST_ENV = {
    "NUMBERS_DATABASE_URL": _database_url(),
    "NUMBERS_BROKER_URL": _broker_url(),
    "NUMBERS_PUBLIC_URL": "http://127.0.0.1:8000",
    "NUMBERS_API_TOKENS": f"{API_TOKEN},second-token",
    "NUMBERS_CLOSE_BASE_URL": f"{SANDBOX_URL}/close/api/v1",
    "NUMBERS_CLOSE_API_KEY": "sandbox-close-key",
    "NUMBERS_SIGNALWIRE_BASE_URL": f"{SANDBOX_URL}/signalwire",
    "NUMBERS_SIGNALWIRE_PROJECT_ID": "sandbox-project",
    "NUMBERS_SIGNALWIRE_API_TOKEN": "sandbox-signalwire-token",
    "NUMBERS_IDENTITYCALL_BASE_URL": f"{SANDBOX_URL}/identitycall/api/v1/public",
    "NUMBERS_IDENTITYCALL_API_KEY": "sandbox-identitycall-key",
    "NUMBERS_CM_BASE_URL": f"{SANDBOX_URL}/cm/voice-phonenumberrequestapi/v1",
    "NUMBERS_CM_PRODUCT_TOKEN": "sandbox-cm-token",
    "NUMBERS_CM_ACCOUNT_ID": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "NUMBERS_NOTIFY_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "NUMBERS_CALLBACK_GRACE_S": "3",
    "NUMBERS_NOTIFY_SCHEDULE_S": "0,0.3,0.5,0.5,1",
    "NUMBERS_NOTIFY_TIMEOUT_S": "3",
    "NUMBERS_RETRY_BASE_S": "0.2",
    "NUMBERS_RETRY_CAP_S": "1.5",
    "NUMBERS_RETRY_MAX_ATTEMPTS": "6",
    "NUMBERS_RETRY_DEADLINE_S": "60",
    "NUMBERS_SWEEP_INTERVAL_S": "1",
    "NUMBERS_REDRIVE_QUEUED_AFTER_S": "3",
    "NUMBERS_RELAY_INTERVAL_S": "0.3",
    "NUMBERS_CLAIM_TTL_S": "8",
    "NUMBERS_PROVIDER_TIMEOUT_S": "2",
    "NUMBERS_PROVIDER_CONNECT_TIMEOUT_S": "1",
}
os.environ.update(TEST_ENV)

pytest_plugins = ["tests.fixtures"]
