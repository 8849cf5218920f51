"""What every benchmark part shares: the machine's services, processes started and stopped,
the OS's CPU and memory accounting, and the printed/recorded figures."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from sandbox.state import SandboxCredentials

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
RESULTS_JSON = BENCH_DIR / "results"

PG_BASE = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
PG_ADMIN_DB = os.environ.get("BENCH_PG_ADMIN_DB", "test")
REDIS_BASE = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
# Redis database numbers this benchmark may use (the test suite uses 14 and 15).
REDIS_SERVICE_DB = 10
REDIS_BARE_DB = 11
REDIS_MISC_DB = 12
BENCH_DB = "numbers_bench"
API_TOKEN = "bench-token-4c1d2e"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_url(database: str, driver: bool = False) -> str:
    url = f"{PG_BASE}/{database}"
    return url.replace("postgresql://", "postgresql+psycopg://") if driver else url


def redis_url(db: int) -> str:
    return f"{REDIS_BASE}/{db}"


# -- databases and broker ---------------------------------------------------------------------


def fresh_pg_database(name: str, migrate: bool = True) -> str:
    """Drop and create ``name`` (only databases this benchmark owns), then migrate it."""
    assert name.startswith("numbers_bench"), "the benchmark only touches its own databases"
    from sqlalchemy import create_engine, text

    admin = create_engine(pg_url(PG_ADMIN_DB, driver=True), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = pg_url(name)
    if migrate:
        migrate_schema(url)
    return url


def pg_database_exists(name: str) -> bool:
    from sqlalchemy import create_engine, text

    admin = create_engine(pg_url(PG_ADMIN_DB, driver=True), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        found = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
    admin.dispose()
    return bool(found)


def drop_pg_database(name: str) -> None:
    assert name.startswith("numbers_bench")
    from sqlalchemy import create_engine, text

    admin = create_engine(pg_url(PG_ADMIN_DB, driver=True), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def migrate_schema(url: str) -> None:
    """``numbers db upgrade`` in a child process (alembic configures logging its own way)."""
    env = {**os.environ, "NUMBERS_DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "cli", "db", "upgrade"],
        env=env,
        cwd=PROJECT_DIR,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def flush_redis(db: int) -> None:
    assert db in (REDIS_SERVICE_DB, REDIS_BARE_DB, REDIS_MISC_DB)
    import redis

    client = redis.Redis.from_url(redis_url(db))
    client.flushdb()
    client.close()


def engine_for(url: str) -> Any:
    from sqlalchemy import create_engine

    if url.startswith("postgresql://"):
        url = url.replace("postgresql://", "postgresql+psycopg://")
    return create_engine(url, pool_size=2)


# -- processes --------------------------------------------------------------------------------


class Proc:
    """A child process in its own session: stopped with its whole group, never left behind."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = logdir / f"{name}.log"
        handle = self.log.open("ab")
        self.popen = subprocess.Popen(
            argv,
            env=env,
            cwd=PROJECT_DIR,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        self.ps = psutil.Process(self.popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[psutil.Process]:
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and every live descendant (OS accounting)."""
        total = 0.0
        for proc in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def rss_bytes(self) -> dict[int, int]:
        out = {}
        for proc in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                out[proc.pid] = proc.memory_info().rss
        return out

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        # Children that outlived their parent (a prefork pool) go with the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def numbers_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def wait_http(url: str, timeout: float = 30.0, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout:.0f}s")


def wait_log(proc: Proc, needle: str, timeout: float = 40.0) -> None:
    """Wait until the process's log shows ``needle`` (Celery prints 'ready.' when consuming)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        if needle in proc.log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready after {timeout:.0f}s:\n{proc.tail()}")


@dataclass
class Stack:
    """Everything a part started; ``close`` stops it in reverse order."""

    logdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="numbers-bench-")))
    procs: list[Proc] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        proc = Proc(name, argv, env, self.logdir)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
        for fn in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                fn()
        self.cleanups.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# -- the sandbox and the service ----------------------------------------------------------------


@dataclass
class Sandbox:
    proc: Proc
    url: str

    def configure(self, **settings: Any) -> None:
        httpx.post(f"{self.url}/_sandbox/config", json=settings, timeout=10).raise_for_status()

    def reset(self) -> None:
        httpx.post(f"{self.url}/_sandbox/reset", timeout=30).raise_for_status()

    def close_rent_url(self) -> str:
        return f"{self.url}/close/api/v1/phone_number/request/internal/"


def start_sandbox(stack: Stack) -> Sandbox:
    port = free_port()
    proc = stack.spawn("sandbox", numbers_cmd("sandbox", "--port", str(port)), dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/_sandbox/config", proc=proc)
    return Sandbox(proc, url)


def service_env(
    database_url: str, broker_url: str, sandbox_url: str, **extra: str
) -> dict[str, str]:
    creds = SandboxCredentials()
    env = {
        **os.environ,
        "NUMBERS_DATABASE_URL": database_url,
        "NUMBERS_BROKER_URL": broker_url,
        "NUMBERS_PUBLIC_URL": "http://127.0.0.1:8000",
        "NUMBERS_API_TOKENS": API_TOKEN,
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
        "NUMBERS_NOTIFY_SECRET": "whsec_" + "YmVuY2gtbm90aWZ5LXNlY3JldC1rZXktMTIzNDU2Nzg=",
        "NUMBERS_PROVIDER_TIMEOUT_S": "30",
        # The benchmark measures placement, not re-drives: a backlog older than the sweep's
        # slack would otherwise be re-published by the sweep (see RESULTS.md).
        "NUMBERS_SWEEP_INTERVAL_S": "60",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def start_web(stack: Stack, env: dict[str, str], workers: int = 2, name: str = "web") -> str:
    port = free_port()
    proc = stack.spawn(
        name, numbers_cmd("web", "--port", str(port), "--workers", str(workers)), env
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc=proc)
    return url


def start_workers(
    stack: Stack,
    env: dict[str, str],
    pool: str,
    concurrency: int,
    processes: int = 1,
    name: str = "worker",
    queues: str = "orders,callbacks,notifications",
    beat: bool = False,
    loglevel: str = "INFO",
) -> list[Proc]:
    """``numbers worker`` processes on this host (the first one with ``--beat`` if asked)."""
    args = ["worker", "--pool", pool, "--concurrency", str(concurrency), "-Q", queues]
    args += ["--loglevel", loglevel]
    # Task events off, as `numbers worker` runs by default (and as the bare baseline runs).
    procs = [
        stack.spawn(
            f"{name}-{i}", numbers_cmd(*args, *(["--beat"] if beat and i == 0 else [])), env
        )
        for i in range(processes)
    ]
    wait_consuming(procs, env["NUMBERS_BROKER_URL"])
    return procs


def wait_consuming(procs: list[Proc], broker_url: str, timeout: float = 40.0) -> None:
    """Wait until every worker answers a broker ping: its consumer is up and taking messages.
    The SQLite-backed transport has no broadcast: there, wait for Celery's "ready." line."""
    from celery import Celery

    if broker_url.startswith("sqla+"):
        for proc in procs:
            wait_log(proc, " ready.", timeout)
        return

    probe = Celery("bench-probe", broker=broker_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for proc in procs:
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            with contextlib.suppress(Exception):
                if len(probe.control.ping(timeout=0.5)) >= len(procs):
                    return
            time.sleep(0.2)
    finally:
        probe.close()
    raise RuntimeError(f"workers not consuming within {timeout:.0f}s:\n{procs[0].tail()}")


# -- figures ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(service: float, bare: float) -> float:
    return service / bare if bare else float("nan")


def line(label: str, service: float, bare: float, unit: str, target: float | None = None) -> str:
    r = ratio(service, bare)
    verdict = ""
    if target is not None:
        verdict = f"  target >= {target:.1f}x: {'MET' if r >= target else 'MISSED'}"
    return f"{label:<48} service {service:9.1f} {unit:<9} bare {bare:9.1f} {unit:<9} ratio {r:5.2f}x{verdict}"


# Set by ``--quick``: figures go to <part>-quick.json and never overwrite a full run's.
QUICK = False


def record(part: str, data: dict[str, Any]) -> Path:
    """Keep the raw figures of a run (bench/results/<part>.json) for RESULTS.md and graphs."""
    RESULTS_JSON.mkdir(exist_ok=True)
    if QUICK and not part.endswith("-quick"):
        part += "-quick"
    path = RESULTS_JSON / f"{part}.json"
    data = {"part": part, "machine": machine(), **data}
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def machine() -> dict[str, str]:
    import celery
    import flask
    import gunicorn
    import kombu
    import redis
    import sqlalchemy

    cpu = "?"
    with contextlib.suppress(OSError):
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                cpu = row.split(":", 1)[1].strip()
                break
    pg = "?"
    with contextlib.suppress(Exception):
        from sqlalchemy import text

        engine = engine_for(pg_url(PG_ADMIN_DB))
        with engine.connect() as conn:
            pg = str(conn.scalar(text("SHOW server_version")))
        engine.dispose()
    redis_server = "?"
    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(redis_url(REDIS_MISC_DB))
        redis_server = str(client.info("server")["redis_version"])
        client.close()
    commit = "?"
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "log", "-1", "--format=%h %s"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()[:80]
    return {
        "commit": commit,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "uname": " ".join(platform.uname()),
        "cpu": f"{cpu} x {os.cpu_count()}",
        "memory_gib": f"{psutil.virtual_memory().total / 2**30:.1f}",
        "python": platform.python_version(),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "flask": flask.__version__ if hasattr(flask, "__version__") else _dist("flask"),
        "gunicorn": gunicorn.__version__,
        "redis_py": redis.__version__,
        "redis_server": redis_server,
        "postgresql": pg,
        "httpx": httpx.__version__,
        "psycopg": _dist("psycopg"),
    }


def _dist(name: str) -> str:
    from importlib.metadata import version

    try:
        return version(name)
    except Exception:
        return "?"


@contextlib.contextmanager
def timer() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start
