"""The /v1 orders API through the real Flask app: auth, validation, idempotency, paging,
retry and cancel. Bad input gets a clear 4xx and creates nothing."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from models.db import session_factory
from models.tables import Order, OutboxMessage
from tests.conftest import API_TOKEN

BODY = {"provider": "close", "country": "US", "area_code": "415", "reference": "up-1"}


def counts() -> tuple[int, int]:
    with session_factory()() as session:
        orders = session.scalar(select(func.count()).select_from(Order))
        outbox = session.scalar(select(func.count()).select_from(OutboxMessage))
    return orders or 0, outbox or 0


def post(api: Any, body: Any, key: str | None = "k-1", **headers: str) -> Any:
    if key is not None:
        headers["Idempotency-Key"] = key
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return api.post("/v1/orders", data=data, headers=headers, content_type="application/json")


def test_create_answers_202_with_the_order_and_queues_it(api: Any) -> None:
    response = post(api, BODY)
    assert response.status_code == 202
    order = response.get_json()
    assert (
        order["state"] == "queued" and order["provider"] == "close" and order["reference"] == "up-1"
    )
    assert order["events"][0]["to"] == "queued"
    assert "callback_token" not in json.dumps(order)
    assert counts() == (1, 1)


def test_the_published_outbox_row_is_marked_sent_soon_after(api: Any) -> None:
    from tests.fixtures import wait_for

    post(api, BODY)

    def marked() -> bool:
        with session_factory()() as session:
            return session.scalar(select(OutboxMessage.sent_at)) is not None

    wait_for(marked, 5, 0.05, "the outbox row to be marked sent")


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Basic abc", "Bearer "])
def test_without_a_valid_token_nothing_happens(api: Any, auth: str | None) -> None:
    headers = {"Idempotency-Key": "k", "Content-Type": "application/json"}
    environ = {"HTTP_AUTHORIZATION": auth} if auth else {"HTTP_AUTHORIZATION": ""}
    response = api.post("/v1/orders", data=json.dumps(BODY), headers=headers, environ_base=environ)
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert counts() == (0, 0)


def test_every_configured_token_is_accepted(api: Any) -> None:
    response = post(api, BODY, Authorization="Bearer second-token")
    assert response.status_code == 202


def test_missing_idempotency_key_is_422(api: Any) -> None:
    response = post(api, BODY, key=None)
    assert response.status_code == 422
    assert response.get_json()["errors"] == [
        {"field": "Idempotency-Key", "message": "header is required"}
    ]
    assert counts() == (0, 0)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"quantity": "5"}, "quantity"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": 1001}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"provider": "acme"}, "provider"),
        ({"country": "us"}, "country"),
        ({"number_type": "landline"}, "number_type"),
        ({"area_code": "41a"}, "area_code"),
        ({"phone_number": "4155550123"}, "phone_number"),
        ({"capabilities": {"sms": "yes"}}, "capabilities.sms"),
        ({"capabilities": {"fax": True}}, "capabilities.fax"),
        ({"notify_url": "ftp://x"}, "notify_url"),
        ({"metadata": []}, "metadata"),
        ({"surprise": 1}, "surprise"),
        ({"area_code": "123456"}, "area_code"),
        ({"options": {"sharing": "team"}}, "options.sharing"),
        # PostgreSQL text cannot hold NUL: refused on both backends, never a 500.
        ({"reference": "a\x00b"}, "reference"),
        ({"notify_url": "https://upstream.example/\x00"}, "notify_url"),
    ],
)
def test_invalid_fields_are_named_one_error_each(
    api: Any, patch: dict[str, Any], field: str
) -> None:
    response = post(api, {**BODY, **patch})
    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]
    assert field in [e["field"] for e in errors]
    assert all(e["message"] for e in errors)
    assert counts() == (0, 0)


def test_several_bad_fields_get_several_errors(api: Any) -> None:
    response = post(api, {"provider": "close", "quantity": "x", "country": 1, "number_type": 3})
    fields = {e["field"] for e in response.get_json()["errors"]}
    assert {"quantity", "country", "number_type"} <= fields


@pytest.mark.parametrize("raw", [b"", b"{", b"[1,2]", b'"text"', b'{"quantity": NaN}', b"\xff\xfe"])
def test_malformed_bodies_get_a_clear_4xx(api: Any, raw: bytes) -> None:
    response = post(api, raw)
    assert response.status_code in (400, 422)
    assert response.get_json()["message"]
    assert counts() == (0, 0)


def test_oversized_body_is_refused(api: Any) -> None:
    response = post(api, {**BODY, "metadata": {"blob": "x" * 70_000}})
    assert response.status_code == 413
    assert counts() == (0, 0)


def test_unconfigured_provider_is_refused(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from models.config import reset_settings

    monkeypatch.setenv("NUMBERS_CLOSE_API_KEY", "")
    reset_settings()
    response = post(api, BODY)
    assert response.status_code == 422
    assert "not configured" in response.get_json()["errors"][0]["message"]


def test_same_key_same_body_returns_the_same_order(api: Any) -> None:
    first = post(api, BODY)
    again = post(api, BODY)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert counts() == (1, 1)


def test_same_key_other_body_is_409(api: Any) -> None:
    post(api, BODY)
    response = post(api, {**BODY, "area_code": "212"})
    assert response.status_code == 409
    assert response.get_json()["error"] == "idempotency_conflict"
    assert counts() == (1, 1)


def test_concurrent_identical_posts_make_one_order() -> None:
    """Twenty clients POST the same key at once, over real HTTP to a threaded server."""
    from werkzeug.serving import make_server

    from webhooks import create_app

    server = make_server("127.0.0.1", 0, create_app(), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1/orders"
    key = str(uuid.uuid4())
    barrier = threading.Barrier(20)
    results: list[tuple[int, str]] = []

    def client() -> None:
        barrier.wait()
        r = httpx.post(
            url,
            json=BODY,
            headers={"Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": key},
            timeout=30,
        )
        results.append((r.status_code, r.json()["id"]))

    threads = [threading.Thread(target=client) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.shutdown()
    assert sorted(code for code, _ in results) == [200] * 19 + [202]
    assert len({order_id for _, order_id in results}) == 1
    assert counts() == (1, 1)


def test_get_and_404(api: Any) -> None:
    order_id = post(api, BODY).get_json()["id"]
    assert api.get(f"/v1/orders/{order_id}").get_json()["id"] == order_id
    missing = api.get("/v1/orders/ord_nope")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"


def test_list_pages_with_a_cursor_and_filters(api: Any) -> None:
    ids = [
        post(api, {**BODY, "reference": f"r{i}"}, key=f"k{i}").get_json()["id"] for i in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        page = api.get(
            "/v1/orders", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})}
        ).get_json()
        seen += [o["id"] for o in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    only = api.get("/v1/orders", query_string={"reference": "r3"}).get_json()["data"]
    assert [o["id"] for o in only] == [ids[3]]
    assert api.get("/v1/orders", query_string={"state": "failed"}).get_json()["data"] == []


@pytest.mark.parametrize(
    ("param", "value"),
    [("state", "done"), ("provider", "acme"), ("limit", "0"), ("limit", "x"), ("cursor", "!!")],
)
def test_list_rejects_bad_parameters(api: Any, param: str, value: str) -> None:
    response = api.get("/v1/orders", query_string={param: value})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == param


def test_retry_only_failed_or_needs_action(api: Any, sandbox: Any) -> None:
    from tests.integration.helpers import run_placement

    order_id = post(api, BODY).get_json()["id"]
    refused = api.post(f"/v1/orders/{order_id}/retry")
    assert refused.status_code == 409 and "queued" in refused.get_json()["message"]
    bad = post(api, {**BODY, "area_code": "999"}, key="k-bad").get_json()["id"]
    run_placement(bad)
    assert api.get(f"/v1/orders/{bad}").get_json()["state"] == "failed"
    retried = api.post(f"/v1/orders/{bad}/retry")
    assert retried.status_code == 202
    assert retried.get_json()["state"] == "queued"
    assert retried.get_json()["events"][-1]["reason"] == "retried by api"


def test_cancel_a_queued_order_and_not_a_fulfilled_one(api: Any, sandbox: Any) -> None:
    from tests.integration.helpers import run_placement

    order_id = post(api, BODY).get_json()["id"]
    cancelled = api.post(f"/v1/orders/{order_id}/cancel")
    assert cancelled.status_code == 202 and cancelled.get_json()["state"] == "cancelled"
    run_placement(order_id)
    assert sandbox.stats("close")["rent_calls"] == 0  # a cancelled order is never placed
    done = post(api, BODY, key="k-2").get_json()["id"]
    run_placement(done)
    refused = api.post(f"/v1/orders/{done}/cancel")
    assert refused.status_code == 409


def test_health_ready_and_openapi(api: Any) -> None:
    assert api.get("/healthz").get_json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"] == {
        "database": "ok",
        "broker": "ok",
    }
    spec = api.get("/v1/openapi.json").get_json()
    from openapi_spec_validator import validate

    validate(spec)
    assert "/v1/orders" in spec["paths"]
    assert (
        spec["components"]["schemas"]["OrderRequest"]["properties"]["quantity"]["maximum"] == 1000
    )


def test_unknown_routes_and_methods_answer_json(api: Any) -> None:
    assert api.get("/v1/nothing").status_code == 404
    wrong = api.delete("/v1/orders")
    assert wrong.status_code == 405 and wrong.get_json()["error"]


def test_nul_characters_in_ids_and_filters_get_a_4xx(api: Any) -> None:
    """A NUL can never match a stored value: 404 for an id, 422 for a filter, never a 500."""
    for path in ("/v1/orders/ord_%00x", "/v1/orders/ord_%00x/cancel"):
        method = api.post if path.endswith("cancel") else api.get
        response = method(path)
        assert response.status_code == 404 and response.get_json()["error"] == "not_found", path
    response = api.get("/v1/orders?reference=a%00b")
    assert response.status_code == 422
    assert response.get_json()["errors"] == [
        {"field": "reference", "message": "must not contain NUL characters"}
    ]
