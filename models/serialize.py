"""Orders as the API shows them (CONTRACT.md). The callback token never leaves the service."""

from __future__ import annotations

import datetime as dt
from typing import Any

from models.tables import Order


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def order_json(order: Order, *, events: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": order.id,
        "state": order.state,
        "provider": order.provider,
        "quantity": order.quantity,
        "reference": order.reference,
        "country": order.country,
        "number_type": order.number_type,
        "area_code": order.area_code,
        "phone_number": order.phone_number,
        "capabilities": order.capabilities or {},
        "options": order.options or {},
        "metadata": order.metadata_ or {},
        "notify_url": order.notify_url,
        "numbers": [
            {
                "number": n.number,
                "provider_number_id": n.provider_number_id,
                "acquired_at": iso(n.acquired_at),
            }
            for n in order.numbers
        ],
        "attempts": order.attempt_count,
        "last_error": order.last_error,
        "provider_request_id": order.provider_request_id,
        "provider_status": order.provider_status,
        "flagged": order.flagged,
        "costs": order.costs,
        "next_attempt_at": iso(order.next_attempt_at),
        "created_at": iso(order.created_at),
        "updated_at": iso(order.updated_at),
    }
    if events:
        body["events"] = [
            {"at": iso(e.at), "from": e.from_state, "to": e.to_state, "reason": e.reason}
            for e in order.events
        ]
    return body
