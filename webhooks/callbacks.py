"""``POST /webhooks/<provider>/<token>``: provider callbacks (DESIGN.md section 4).

Store the raw delivery first (malformed ones too), answer fast, and let a task fetch the
provider's current view and apply it. The token is per order, looked up by its hash and then
compared in constant time; it is never stored with the delivery nor logged.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from models.ids import token_hash
from models.tables import Order, WebhookDelivery
from webhooks.db import db
from worker import metrics
from worker.outbox import enqueue
from worker.providers.registry import PROVIDERS

bp = Blueprint("callbacks", __name__)

PROCESS_TASK = "worker.tasks.process_callback"
# Header names whose values are secrets (or may be): stored as "[redacted]".
SECRET_HEADERS = (
    "authorization",
    "cookie",
    "x-cm-producttoken",
    "x-api-key",
    "proxy-authorization",
)
MAX_TOKEN = 128


@bp.post("/webhooks/<provider>/<token>")
def receive(provider: str, token: str) -> tuple[Response, int]:
    session = db()
    order = _order_for(provider, token)
    delivery = WebhookDelivery(
        provider=provider[:32],
        order_id=order.id if order else None,
        headers=redacted_headers(),
        body=request.get_data(cache=False),
        status="received" if order else "unknown_token",
    )
    session.add(delivery)
    session.flush()
    if order is not None:
        enqueue(session, PROCESS_TASK, delivery.id)
    session.commit()
    metrics.count_webhook_delivery(delivery.provider, delivery.status)
    if order is None:
        return jsonify({"error": "not_found", "message": "no order for this callback URL"}), 404
    return jsonify({"status": "received", "delivery": delivery.id}), 202


def _order_for(provider: str, token: str) -> Order | None:
    if provider not in PROVIDERS or not token or len(token) > MAX_TOKEN:
        return None
    order = db().scalar(select(Order).where(Order.callback_token_hash == token_hash(token)))
    if order is None or order.provider != provider:
        return None
    return order if hmac.compare_digest(order.callback_token.encode(), token.encode()) else None


def redacted_headers() -> dict[str, str]:
    return {
        name: "[redacted]" if name.lower() in SECRET_HEADERS else value[:1024]
        for name, value in request.headers.items()
    }
