"""Starting the long-running parts: gunicorn for the web app, Celery worker and beat."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from models.config import get_settings


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from webhooks import create_app

        return create_app()


def run_gunicorn(host: str, port: int, workers: int) -> None:
    _Gunicorn(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": 4,
            "graceful_timeout": 20,
            "accesslog": None,
        }
    ).run()


def _beat_schedule_file() -> str:
    return str(
        Path(tempfile.gettempdir()) / f"numbers-beat-{abs(hash(get_settings().database_url))}"
    )


def run_worker(*, pool: str, concurrency: int, beat: bool, queues: str, loglevel: str) -> None:
    from worker import app

    argv = [
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        f"--queues={queues}",
        f"--loglevel={loglevel}",
        "-E",
    ]
    if beat:
        argv += ["--beat", f"--schedule={_beat_schedule_file()}"]
    app.worker_main(argv)


def run_beat(loglevel: str) -> None:
    from worker import app

    app.start(["beat", f"--loglevel={loglevel}", f"--schedule={_beat_schedule_file()}"])
