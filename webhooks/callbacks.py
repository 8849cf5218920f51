"""``POST /webhooks/<provider>/<token>``: provider callbacks (DESIGN.md section 4).

Store the raw delivery first (malformed ones too), answer fast, and let a task fetch the
provider's current view and apply it. The token is per order, looked up by its hash and then
compared in constant time; it is never stored with the delivery nor logged.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import bindparam, insert, select

from models.ids import token_hash
from models.tables import Order, WebhookDelivery, table_of, utcnow
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
# Built once (only their parameters change); plain Core, no ORM entity to load.
DELIVERY_INSERT = insert(table_of(WebhookDelivery)).returning(WebhookDelivery.id)
_orders = table_of(Order)
ORDER_BY_TOKEN = select(_orders.c.id, _orders.c.provider, _orders.c.callback_token).where(
    _orders.c.callback_token_hash == bindparam("token_hash")
)


@bp.post("/webhooks/<provider>/<token>")
def receive(provider: str, token: str) -> tuple[Response, int]:
    session = db()
    order_id = _order_for(provider, token)
    status = "received" if order_id else "unknown_token"
    # Kept for operators as it came, but a NUL cannot be stored: shown escaped.
    provider = provider.replace("\x00", "\\x00")[:32]
    delivery_id = session.scalar(
        DELIVERY_INSERT,
        {
            "provider": provider,
            "order_id": order_id,
            "received_at": utcnow(),
            "headers": redacted_headers(),
            "body": request.get_data(cache=False),
            "status": status,
        },
    )
    if order_id is not None:
        # A callback is a hint processed within seconds; publishing it here would cost the
        # request a quarter of its CPU. The relay sends it.
        enqueue(session, PROCESS_TASK, delivery_id, by_relay=True)
    session.commit()
    metrics.count_webhook_delivery(provider, status)
    if order_id is None:
        return jsonify({"error": "not_found", "message": "no order for this callback URL"}), 404
    return jsonify({"status": "received", "delivery": delivery_id}), 202


def _order_for(provider: str, token: str) -> str | None:
    """The id of the order this callback URL belongs to, or None."""
    if provider not in PROVIDERS or not token or len(token) > MAX_TOKEN:
        return None
    found = db().execute(ORDER_BY_TOKEN, {"token_hash": token_hash(token)}).first()
    if found is None or found.provider != provider:
        return None
    return found.id if hmac.compare_digest(found.callback_token.encode(), token.encode()) else None


def redacted_headers() -> dict[str, str]:
    return {
        name: "[redacted]" if name.lower() in SECRET_HEADERS else value[:1024]
        for name, value in request.headers.items()
    }
