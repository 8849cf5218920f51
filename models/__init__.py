"""Persistence: configuration, the ORM models, the order state machine and migrations.

Knows nothing of Celery or Flask; the worker and the web app build on it.
"""
