"""The Celery application: settings that make delivery at-least-once and safe to repeat."""

from __future__ import annotations

import gc
from typing import Any

from celery import Celery, bootsteps

from models.config import Settings, get_settings

QUEUES = ("orders", "callbacks", "notifications")


def celery_config(settings: Settings) -> dict[str, Any]:
    # A broker countdown never exceeds countdown_limit_s (longer waits live in the database),
    # so a visibility timeout well above it never redelivers a task that is merely waiting.
    visibility = max(3600.0, settings.countdown_limit_s * 4)
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 4,
        "broker_transport_options": transport_options(settings.broker_url, visibility),
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": "orders",
        "task_routes": {
            "worker.tasks.process_callback": {"queue": "callbacks"},
            "worker.tasks.notify": {"queue": "notifications"},
        },
        "task_publish_retry": False,
        # Task events cost three messages per task: off until a monitor asks (Flower broadcasts
        # enable_events every few seconds; `numbers worker --events` starts with them on).
        # "task-sent" events would cost a second message per publish.
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "sweep": {"task": "worker.tasks.sweep", "schedule": settings.sweep_interval_s},
        },
        "timezone": "UTC",
    }


def transport_options(broker_url: str, visibility: float) -> dict[str, Any]:
    if broker_url.startswith("sqla+"):
        # kombu hands these to SQLAlchemy's create_engine: only engine arguments belong here.
        # A generous SQLite lock timeout lets web, worker and beat share the broker file.
        return {"connect_args": {"timeout": 30}}
    return {
        "visibility_timeout": visibility,
        "socket_connect_timeout": 3,
        "socket_timeout": 10,
    }


app = Celery("numbers")
app.conf.update(celery_config(get_settings()))


class OutboxRelayStep(bootsteps.StartStopStep):
    """Runs the outbox relay beside the consumer, in the worker's main process, so that orders
    committed while the broker was down are published once it is back; and builds the
    provider clients before the first task."""

    requires = frozenset({"celery.worker.components:Timer"})

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        self.relay: Any = None

    def start(self, worker: Any) -> None:
        from worker.outbox import RelayThread
        from worker.providers.registry import warm_up

        warm_up()
        # What startup loaded lives as long as the process: keep it out of the cyclic
        # collector's full passes.
        gc.freeze()
        self.relay = RelayThread(get_settings().relay_interval_s)
        self.relay.start()

    def stop(self, worker: Any) -> None:
        if self.relay is not None:
            self.relay.stop()


app.steps["worker"].add(OutboxRelayStep)
