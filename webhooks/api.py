"""``/v1``: the orders API of CONTRACT.md."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from models.ids import storable
from models.serialize import order_json
from models.states import OrderState
from models.tables import Order
from webhooks.auth import require_token
from webhooks.db import db
from webhooks.errors import ApiError, invalid, strict_json
from worker import intake, steering
from worker.providers.base import FieldIssue
from worker.providers.registry import PROVIDERS

bp = Blueprint("api", __name__, url_prefix="/v1")

MAX_PAGE = 200


@bp.post("/orders")
@require_token()
def create_order() -> tuple[Response, int]:
    try:
        key = intake.validate_key(request.headers.get("Idempotency-Key"))
        order_request = intake.parse_request(strict_json(request.get_data()))
    except intake.RequestInvalid as exc:
        raise invalid(exc.issues) from None
    try:
        submitted = intake.submit(db(), order_request, key)
    except intake.IdempotencyConflict:
        raise ApiError(
            409, "idempotency_conflict", "this Idempotency-Key was used with a different body"
        ) from None
    return jsonify(order_json(submitted.order)), 202 if submitted.created else 200


@bp.get("/orders/<order_id>")
@require_token()
def get_order(order_id: str) -> Response:
    return jsonify(order_json(_load(order_id)))


@bp.get("/orders")
@require_token()
def list_orders() -> Response:
    query, limit = _list_query(request.args)
    rows = list(db().scalars(query.limit(limit + 1)))
    page = rows[:limit]
    next_cursor = _cursor(page[-1].id) if len(rows) > limit else None
    return jsonify(
        {"data": [order_json(o, events=False) for o in page], "next_cursor": next_cursor}
    )


@bp.post("/orders/<order_id>/retry")
@require_token()
def retry_order(order_id: str) -> tuple[Response, int]:
    order = _load(order_id)
    try:
        steering.retry(db(), order, actor="api")
    except steering.NotAllowed as exc:
        raise ApiError(409, "not_retryable", str(exc)) from None
    return jsonify(order_json(_load(order_id))), 202


@bp.post("/orders/<order_id>/cancel")
@require_token()
def cancel_order(order_id: str) -> tuple[Response, int]:
    order = _load(order_id)
    try:
        steering.cancel(db(), order, actor="api")
    except steering.NotAllowed as exc:
        raise ApiError(409, "not_cancellable", str(exc)) from None
    return jsonify(order_json(_load(order_id))), 202


def _load(order_id: str) -> Order:
    session = db()
    session.expire_all()
    order = None
    if storable(order_id):
        order = session.scalar(
            select(Order)
            .where(Order.id == order_id)
            .options(selectinload(Order.numbers), selectinload(Order.events))
        )
    if order is None:
        raise ApiError(404, "not_found", f"no order with id {order_id!r}")
    return order


def _list_query(args: Any) -> tuple[Any, int]:
    issues: list[FieldIssue] = []
    query = select(Order).options(selectinload(Order.numbers)).order_by(Order.id.desc())
    state = args.get("state")
    if state is not None:
        if state not in {s.value for s in OrderState}:
            issues.append(FieldIssue("state", f"one of {', '.join(s.value for s in OrderState)}"))
        query = query.where(Order.state == state)
    provider = args.get("provider")
    if provider is not None:
        if provider not in PROVIDERS:
            issues.append(FieldIssue("provider", f"one of {', '.join(PROVIDERS)}"))
        query = query.where(Order.provider == provider)
    reference = args.get("reference")
    if reference is not None:
        if not storable(reference):
            issues.append(FieldIssue("reference", "must not contain NUL characters"))
        query = query.where(Order.reference == reference)
    limit = _limit(args.get("limit"), issues)
    cursor = args.get("cursor")
    if cursor is not None:
        after = _decode_cursor(cursor)
        if after is None:
            issues.append(FieldIssue("cursor", "not a cursor this API gave out"))
        else:
            query = query.where(Order.id < after)
    if issues:
        raise invalid(issues)
    return query, limit


def _limit(raw: str | None, issues: list[FieldIssue]) -> int:
    if raw is None:
        return 50
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        issues.append(FieldIssue("limit", f"an integer from 1 to {MAX_PAGE}"))
        return 50
    return int(raw)


def _cursor(order_id: str) -> str:
    return base64.urlsafe_b64encode(order_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str | None:
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return value if value.startswith("ord_") and value.isprintable() else None
