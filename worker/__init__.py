"""The Celery side: the app, its tasks, the placement of orders with providers.

``celery -A worker`` finds ``app`` here (Flower, inspect, beat).
"""

from worker import tasks as _tasks  # noqa: F401  (registers the tasks on the app)
from worker.app import app

__all__ = ["app"]
