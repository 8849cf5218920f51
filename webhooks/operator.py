"""``/operator``: the operators' page. Server-rendered, plain HTML forms, no JavaScript.

Auth: ``Authorization: Bearer <operator token>`` (scripts, curl), or a session cookie set by
``POST /operator/login``. A browser cannot send a Bearer header from a link, hence the cookie:
Flask's signed session under a key derived from the operator tokens (every gunicorn worker
derives the same key; changing the tokens ends every session), HttpOnly, SameSite=Strict, scoped
to ``/operator``. The cookie holds a keyed fingerprint of the token, never the token. Every form
carries a CSRF token; requests authenticated by a Bearer header need none (a browser never
attaches that header on its own, so no other site can forge one).

The page never shows a secret: no callback token, notify URL, metadata or request body.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.db import session_factory
from models.ids import storable
from models.serialize import iso
from models.states import CANCELLABLE, RETRYABLE, IllegalTransition, OrderState
from models.tables import Attempt, Order, OrderEvent, utcnow
from webhooks.auth import bearer, token_matches
from webhooks.db import db
from worker import steering

bp = Blueprint("operator", __name__, url_prefix="/operator", template_folder="templates")

F = TypeVar("F", bound=Callable[..., Any])
S = OrderState

SESSION_MAX_AGE_S = 12 * 3600
DEFAULT_STUCK_AFTER_S = 600
MAX_STUCK_AFTER_S = 30 * 86400
LIST_LIMIT = 50
STUCK_STATES = (S.QUEUED.value, S.IN_PROGRESS.value, S.WAITING_PROVIDER.value)
FAILED_OUTCOMES = ("transient", "permanent", "ambiguous")


# -- setup and auth -------------------------------------------------------------------------


@bp.record_once
def _configure(state: BlueprintSetupState) -> None:
    app = state.app
    settings = app.config["SETTINGS"]
    if not app.secret_key:
        app.secret_key = session_key(settings.operator_token_list())
    app.config.update(
        SESSION_COOKIE_NAME="numbers_operator",
        SESSION_COOKIE_PATH="/operator",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
    )


# No script at all, no framing (clickjacking the buttons), forms only to this site, no caching.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


@bp.after_request
def _harden(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def session_key(tokens: list[str]) -> bytes:
    """The session signing key: the same in every process that has the same tokens."""
    if not tokens:
        return secrets.token_bytes(32)  # nobody can log in; nothing to share
    material = "\n".join(sorted(tokens)).encode()
    return hmac.new(b"numbers.operator.session.v1", material, hashlib.sha256).digest()


def _fingerprint(token: str) -> str:
    key = current_app.secret_key
    assert key is not None
    raw = key if isinstance(key, bytes) else key.encode()
    return hmac.new(raw, b"operator:" + token.encode(), hashlib.sha256).hexdigest()


def _accepted() -> list[str]:
    tokens: list[str] = current_app.config["SETTINGS"].operator_token_list()
    return tokens


def _session_valid() -> bool:
    mark, since = session.get("op"), session.get("at")
    if not isinstance(mark, str) or not isinstance(since, int | float):
        return False
    if time.time() - since > SESSION_MAX_AGE_S:
        return False
    found = False
    for token in _accepted():
        found |= hmac.compare_digest(mark, _fingerprint(token))
    return found


def _authenticate() -> str | None:
    """ "bearer", "session", or None; a Bearer header that is present but wrong is None too."""
    if request.headers.get("Authorization"):
        given, accepted = bearer(), _accepted()
        return "bearer" if given and accepted and token_matches(given, accepted) else None
    return "session" if _session_valid() else None


def operator_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        how = _authenticate()
        if how is None:
            if request.method == "GET" and not request.headers.get("Authorization"):
                return redirect(url_for(".login"), 303)
            return _plain(401, "an operator token is needed: log in at /operator/login")
        if request.method == "POST" and how == "session" and not _csrf_ok():
            return _plain(400, "the form's CSRF token is missing or stale; reload the page")
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def _csrf_ok() -> bool:
    expected, given = session.get("csrf"), request.form.get("csrf_token", "")
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), given.encode())


def _plain(status: int, message: str) -> Response:
    return Response(message + "\n", status, mimetype="text/plain")


# -- login ----------------------------------------------------------------------------------


@bp.get("/login")
def login() -> str:
    return render_template("operator.html", page="login", csrf_token=csrf_token(), error=None)


@bp.post("/login")
def login_submit() -> Any:
    if not _csrf_ok():
        return _plain(400, "the form's CSRF token is missing or stale; reload the login page")
    given, accepted = request.form.get("token", "").strip(), _accepted()
    if not given or not accepted or not token_matches(given, accepted):
        page = render_template(
            "operator.html", page="login", csrf_token=csrf_token(), error="token not accepted"
        )
        return page, 401
    session.clear()  # a fresh session (and CSRF token) on every login
    session["op"] = _fingerprint(given)
    session["at"] = int(time.time())
    return redirect(url_for(".page"), 303)


@bp.post("/logout")
@operator_required
def logout() -> Any:
    session.clear()
    return redirect(url_for(".login"), 303)


# -- the page -------------------------------------------------------------------------------


@bp.get("/")
@bp.get("")  # registered first: url_for gives /operator
@operator_required
def page() -> Any:
    stuck_after, notice = _stuck_after(request.args.get("stuck_after"))
    return _render(stuck_after, notice=notice)


@bp.post("/orders/<order_id>/retry")
@operator_required
def retry(order_id: str) -> Any:
    return _act(order_id, steering.retry, "retried")


@bp.post("/orders/<order_id>/cancel")
@operator_required
def cancel(order_id: str) -> Any:
    return _act(order_id, steering.cancel, "cancel requested")


@bp.post("/providers/<name>/resume")
@operator_required
def resume(name: str) -> Any:
    from worker.providers.registry import PROVIDERS

    stuck_after, _ = _stuck_after(request.form.get("stuck_after"))
    if name not in PROVIDERS:
        return _render(stuck_after, error=f"no provider named {name!r}", status=404)
    woken = steering.resume_provider(db(), name)
    flash(f"{name} resumed; {woken} waiting order(s) sent on", "ok")
    return redirect(url_for(".page", stuck_after=stuck_after), 303)


def _act(order_id: str, action: Callable[..., None], done: str) -> Any:
    stuck_after, _ = _stuck_after(request.form.get("stuck_after"))
    session_ = db()
    order = session_.get(Order, order_id) if storable(order_id) else None
    if order is None:
        session_.rollback()
        return _render(stuck_after, error=f"no order with id {order_id!r}", status=404)
    try:
        action(session_, order, actor="operator page")
    except (steering.NotAllowed, IllegalTransition) as exc:
        session_.rollback()
        return _render(stuck_after, error=f"{order_id}: {exc}", status=409)
    flash(f"{order_id}: {done} (now {order.state})", "ok")
    return redirect(url_for(".page", stuck_after=stuck_after), 303)


def _stuck_after(raw: str | None) -> tuple[int, str | None]:
    if raw is None or raw == "":
        return DEFAULT_STUCK_AFTER_S, None
    if raw.isdigit() and int(raw) <= MAX_STUCK_AFTER_S:
        return int(raw), None
    return DEFAULT_STUCK_AFTER_S, f"stuck_after must be 0..{MAX_STUCK_AFTER_S} seconds"


def _render(
    stuck_after: int, *, notice: str | None = None, error: str | None = None, status: int = 200
) -> tuple[str, int]:
    view = gather(stuck_after, request.args.get("order", "").strip() or None)
    html = render_template(
        "operator.html",
        page="main",
        view=view,
        stuck_after=stuck_after,
        notice=notice,
        error=error,
        csrf_token=csrf_token(),
    )
    return html, status


# -- what the page shows --------------------------------------------------------------------


@dataclass
class OrderRow:
    id: str
    state: str
    provider: str
    reference: str | None
    quantity: int
    attempts: int
    created_at: str | None
    since: str | None
    age: str
    error_code: str | None
    error_message: str | None
    provider_status: str | None
    http_status: Any
    flagged: str | None
    next_attempt_at: str | None
    can_retry: bool
    can_cancel: bool


def gather(stuck_after: int, lookup: str | None) -> dict[str, Any]:
    """Everything the page shows, as plain data. Each query is small and index-served."""
    from cli.stats import collect, provider_rows

    # Sessions are opened one after another, never nested: on SQLite every transaction takes
    # the write lock (models.db), so a second one opened inside the first would wait on it.
    stats = collect()
    providers = provider_rows()
    now = utcnow()
    with session_factory()() as s:
        view: dict[str, Any] = {
            "stats": stats,
            "states": [state.value for state in S],
            "providers": providers,
            "paused": [p for p in providers if p["paused"]],
            "stuck": _stuck(s, now, stuck_after),
            "needs_action": _rows(s, now, Order.state == S.NEEDS_ACTION.value),
            "failed": _rows(s, now, Order.state == S.FAILED.value),
            "flagged": _rows(s, now, Order.flagged.is_not(None)),
            "errors": _recent_errors(s, now),
            "latest": _latest(s, now),
            "lookup": _lookup(s, now, lookup) if lookup else None,
            "lookup_query": lookup,
        }
    return view


def _since_subquery() -> Any:
    """When the order entered its current state: its last event."""
    return (
        select(func.max(OrderEvent.at))
        .where(OrderEvent.order_id == Order.id)
        .correlate(Order)
        .scalar_subquery()
    )


def _stuck(s: Session, now: dt.datetime, stuck_after: int) -> list[OrderRow]:
    cutoff = now - dt.timedelta(seconds=stuck_after)
    since = _since_subquery()
    # created_at <= cutoff narrows through ix_orders_state_created before the per-order lookup.
    query = (
        select(Order, since.label("since"))
        .where(Order.state.in_(STUCK_STATES), Order.created_at <= cutoff, since <= cutoff)
        .order_by(since)
        .limit(LIST_LIMIT)
    )
    return [_row(o, now, _utc(at)) for o, at in s.execute(query)]


def _rows(s: Session, now: dt.datetime, where: Any) -> list[OrderRow]:
    since = _since_subquery().label("since")
    query = select(Order, since).where(where).order_by(Order.updated_at.desc()).limit(LIST_LIMIT)
    return [_row(o, now, _utc(at)) for o, at in s.execute(query)]


def _latest(s: Session, now: dt.datetime) -> list[OrderRow]:
    since = _since_subquery().label("since")
    query = select(Order, since).order_by(Order.id.desc()).limit(20)  # ids sort by creation
    return [_row(o, now, _utc(at)) for o, at in s.execute(query)]


def _lookup(s: Session, now: dt.datetime, key: str) -> dict[str, Any]:
    if not storable(key):
        return {"missing": key}
    order = s.get(Order, key) or s.scalar(
        select(Order).where(Order.reference == key).order_by(Order.id.desc()).limit(1)
    )
    if order is None:
        return {"missing": key}
    events = list(
        s.scalars(select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id))
    )
    attempts = list(
        s.scalars(select(Attempt).where(Attempt.order_id == order.id).order_by(Attempt.id))
    )
    since = events[-1].at if events else None
    return {
        "order": _row(order, now, since),
        "numbers": [n.number for n in order.numbers],
        "events": [
            {"at": iso(e.at), "from": e.from_state, "to": e.to_state, "reason": e.reason}
            for e in events
        ],
        "attempts": [_attempt(a) for a in attempts],
    }


def _recent_errors(s: Session, now: dt.datetime) -> list[dict[str, Any]]:
    """Failed provider calls in the last hour, newest first (one query per provider, each
    served by ix_attempts_provider_started)."""
    from worker.providers.registry import PROVIDERS

    since = now - dt.timedelta(hours=1)
    found: list[Attempt] = []
    for provider in PROVIDERS:
        found += s.scalars(
            select(Attempt)
            .where(
                Attempt.provider == provider,
                Attempt.started_at >= since,
                Attempt.outcome.in_(FAILED_OUTCOMES),
            )
            .order_by(Attempt.started_at.desc())
            .limit(20)
        )
    found.sort(key=lambda a: a.started_at, reverse=True)
    return [_attempt(a) for a in found[:20]]


def _attempt(a: Attempt) -> dict[str, Any]:
    return {
        "order_id": a.order_id,
        "provider": a.provider,
        "operation": a.operation,
        "started_at": iso(a.started_at),
        "outcome": a.outcome or "unsettled",
        "status_code": a.status_code,
        "provider_code": a.provider_code,
        "error": a.error,
        "duration_ms": a.duration_ms,
        "number": a.number,
    }


def _row(order: Order, now: dt.datetime, since: dt.datetime | None) -> OrderRow:
    error = order.last_error if isinstance(order.last_error, dict) else {}
    state = S(order.state)
    return OrderRow(
        id=order.id,
        state=order.state,
        provider=order.provider,
        reference=order.reference,
        quantity=order.quantity,
        attempts=order.attempt_count,
        created_at=iso(order.created_at),
        since=iso(since),
        age=_duration(now - (since or order.created_at)),
        error_code=error.get("code"),
        error_message=error.get("message"),
        provider_status=error.get("provider_status") or order.provider_status,
        http_status=error.get("http_status"),
        flagged=order.flagged,
        next_attempt_at=iso(order.next_attempt_at),
        can_retry=state in RETRYABLE,
        can_cancel=state in CANCELLABLE,
    )


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite: an aggregate comes back naive
        return value.replace(tzinfo=dt.UTC)
    return value


def _duration(delta: dt.timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s"
