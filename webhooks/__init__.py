"""The Flask app: the orders API, provider callbacks, health, metrics and the operator page.

It stores and enqueues; it never calls a provider.
"""

from webhooks.app import create_app

__all__ = ["create_app"]
