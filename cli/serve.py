"""Starting the long-running parts: gunicorn for the web app, Celery worker and beat."""

from __future__ import annotations

import gc
import os
from typing import Any

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from webhooks import create_app

        app = create_app()
        # Everything imported so far lives as long as the process: keep it out of the cyclic
        # collector's scans, whose full passes over it showed as p99 stalls of requests.
        gc.freeze()
        return app


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


# The only schedule is the sweep, every few seconds: nothing worth persisting, and a schedule
# file left by a killed process can stall the next beat.
SCHEDULER = "celery.beat:Scheduler"


def run_worker(
    *, pool: str, concurrency: int, beat: bool, queues: str, loglevel: str, events: bool = False
) -> None:
    from worker import app

    argv = [
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        f"--queues={queues}",
        f"--loglevel={loglevel}",
        # A node name per process, so that several workers on one host stay distinguishable
        # to inspect, ping and Flower.
        f"--hostname=numbers-{os.getpid()}@%h",
    ]
    if events:
        # Off by default: three event messages per task, for nobody when no monitor listens.
        # Flower broadcasts enable_events every few seconds, so it sees workers started either way.
        argv.append("--task-events")
    service = None
    if beat:
        # Beat as a thread of this process, not Celery's forked -B process: a fork taken while
        # the relay thread holds a lock can leave the child deadlocked.
        from celery.beat import EmbeddedService

        service = EmbeddedService(app, thread=True, scheduler_cls=SCHEDULER)
        service.start()
    try:
        app.worker_main(argv)
    finally:
        if service is not None:
            service.stop()


def run_beat(loglevel: str) -> None:
    from worker import app

    app.start(["beat", f"--loglevel={loglevel}", f"--scheduler={SCHEDULER}"])
