"""The Close adapter against seeds 000/001: every field rule, every documented status, the
retry hints, both auth forms, both shapes of a 201."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import httpx
import pytest
import respx

from models.config import Settings
from worker.providers.base import AmbiguousOutcome, OrderSpec, ProviderError, TransientProviderError
from worker.providers.close import CloseClient

BASE = "https://close.test/api/v1"


def settings(**overrides: Any) -> Settings:
    return Settings(close_base_url=BASE, close_api_key="key_123", **overrides)


def spec(**fields: Any) -> OrderSpec:
    return OrderSpec(order_id="ord_1", provider="close", **{"country": "US", **fields})


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"country": None}, "country"),
        ({"country": "USA"}, "country"),
        ({"country": "ZZ"}, "country"),
        ({"area_code": "123456"}, "area_code"),
        ({"phone_number": "+14155550123"}, "phone_number"),
        ({"mms": True}, "capabilities.sms"),
        ({"mms": True, "sms": False}, "capabilities.sms"),
        ({"options": {"sharing": "team"}}, "options.sharing"),
        ({"options": {"bundle_id": 5}}, "options.bundle_id"),
        ({"options": {"colour": "red"}}, "options.colour"),
    ],
)
def test_field_rules_reject(fields: dict[str, Any], bad_field: str) -> None:
    issues = CloseClient.check(spec(**fields))
    assert bad_field in [i.field for i in issues]


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"area_code": "41555"},
        {"number_type": "tollfree"},
        {"sms": True, "mms": True},
        {"sms": False},
        {"options": {"sharing": "group", "bundle_id": "bndl_1"}},
    ],
)
def test_field_rules_accept(fields: dict[str, Any]) -> None:
    assert CloseClient.check(spec(**fields)) == []


def test_request_body_carries_every_field() -> None:
    client = CloseClient(settings())
    body = client.build_request(
        spec(
            area_code="415",
            number_type="mobile",
            sms=True,
            mms=True,
            options={"sharing": "group", "bundle_id": "b1"},
        ),
        None,
    )
    assert body == {
        "country": "US",
        "sharing": "group",
        "prefix": "415",
        "carrier_type": "mobile",
        "bundle_id": "b1",
        "with_sms": True,
        "with_mms": True,
    }


def test_voice_only_request_drops_sms_and_mms() -> None:
    body = CloseClient(settings()).build_request(spec(area_code="555"), None, voice_only=True)
    assert body["with_sms"] is False and "with_mms" not in body


def test_basic_auth_is_api_key_with_empty_password() -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/phone_number/request/internal/").respond(
            201, json={"id": "phon_1", "number": "+14155550100"}
        )
        CloseClient(settings()).purchase({"country": "US", "sharing": "personal"})
    sent = route.calls.last.request.headers["Authorization"]
    assert sent == "Basic " + base64.b64encode(b"key_123:").decode()


def test_bearer_auth_wins_when_an_access_token_is_set() -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/phone_number/request/internal/").respond(
            201, json={"id": "phon_1", "number": "+14155550100"}
        )
        CloseClient(settings(close_access_token="oauth_9")).purchase(
            {"country": "US", "sharing": "personal"}
        )
    assert route.calls.last.request.headers["Authorization"] == "Bearer oauth_9"


def test_201_with_the_number_credits_it() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/phone_number/request/internal/").respond(
            201, json={"id": "phon_1", "number": "+14155550100", "is_group_number": False}
        )
        result = CloseClient(settings()).purchase({"country": "US", "sharing": "personal"})
    assert [n.number for n in result.numbers] == ["+14155550100"]
    assert result.numbers[0].provider_number_id == "phon_1"


@pytest.mark.parametrize("body", [b"", b"{}"])
def test_empty_201_means_rented_number_unknown(body: bytes) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/phone_number/request/internal/").respond(201, content=body)
        result = CloseClient(settings()).purchase({"country": "US", "sharing": "personal"})
    assert result.rented and result.numbers == []


@pytest.mark.parametrize(
    ("status", "payload", "kind", "code"),
    [
        (400, {"status": "has-voice-only", "error": "voice only"}, "voice_only", "has-voice-only"),
        (
            400,
            {"status": "needs-more-info", "error": "documents"},
            "needs_action",
            "needs-more-info",
        ),
        (400, {"status": "billing-error", "error": "budget"}, "billing", "billing-error"),
        (400, {"status": "error", "error": "No numbers"}, "failed", "error"),
        (400, {"status": "brand-new-status", "error": "?"}, "failed", "brand-new-status"),
        (400, {"field-errors": {"country": "bad"}}, "invalid", None),
        (401, {"error": "auth"}, "auth", None),
        (403, {"error": "perm"}, "auth", None),
        (404, {"error": "nope"}, "failed", None),
        (408, {}, "transient", None),
        (429, {}, "transient", None),
        (500, {}, "transient", None),
        (503, {}, "transient", None),
    ],
)
def test_every_status_is_mapped(
    status: int, payload: dict[str, Any], kind: str, code: str | None
) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/phone_number/request/internal/").respond(status, json=payload)
        with pytest.raises(ProviderError) as caught:
            CloseClient(settings()).purchase({"country": "US", "sharing": "personal"})
    assert caught.value.kind == kind
    assert caught.value.provider_code == code
    assert caught.value.status_code == status


def test_error_text_is_kept_as_the_message() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/phone_number/request/internal/").respond(
            400, json={"status": "error", "error": "Prefix sold out"}
        )
        with pytest.raises(ProviderError) as caught:
            CloseClient(settings()).purchase({"country": "US", "sharing": "personal"})
    assert caught.value.message == "Prefix sold out"


@pytest.mark.parametrize(
    ("headers", "payload", "expected"),
    [
        ({"RateLimit": "limit=40, remaining=0, reset=7"}, {}, 7.0),
        ({"RateLimit": "limit=40, remaining=0, reset=2.5", "Retry-After": "30"}, {}, 2.5),
        ({"Retry-After": "12"}, {}, 12.0),
        ({}, {"error": {"rate_reset": 4.25}}, 4.25),
        ({}, {}, None),
    ],
)
def test_rate_limit_hints(
    headers: dict[str, str], payload: dict[str, Any], expected: float | None
) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/phone_number/request/internal/").respond(429, json=payload, headers=headers)
        with pytest.raises(TransientProviderError) as caught:
            CloseClient(settings()).purchase({"country": "US", "sharing": "personal"})
    assert caught.value.retry_after == expected


def test_connect_error_is_transient_not_ambiguous() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/phone_number/request/internal/").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(ProviderError) as caught:
            CloseClient(settings()).purchase({"country": "US", "sharing": "personal"})
    assert type(caught.value) is TransientProviderError


@pytest.mark.parametrize(
    "exc",
    [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), httpx.ReadError("reset")],
)
def test_errors_after_sending_are_ambiguous(exc: Exception) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/phone_number/request/internal/").mock(side_effect=exc)
        with pytest.raises(AmbiguousOutcome):
            CloseClient(settings()).purchase({"country": "US", "sharing": "personal"})


def test_reconcile_lists_every_page_and_matches_prefix_and_time() -> None:
    since = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    old = "2025-12-01T00:00:00+00:00"
    new = "2026-01-01T12:00:05+00:00"
    pages = [
        {
            "has_more": True,
            "data": [
                {"id": "p1", "number": "+14155550100", "date_created": old},
                {"id": "p2", "number": "+12125550100", "date_created": new},
            ],
        },
        {"has_more": False, "data": [{"id": "p3", "number": "+14155550199", "date_created": new}]},
    ]
    with respx.mock(base_url=BASE) as mock:
        mock.get("/phone_number/").mock(side_effect=[httpx.Response(200, json=p) for p in pages])
        found = CloseClient(settings()).reconcile(spec(area_code="415"), {"prefix": "415"}, since)
    assert found is not None
    assert [n.number for n in found.numbers] == ["+14155550199"]


def test_reconcile_finds_nothing() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.get("/phone_number/").respond(200, json={"has_more": False, "data": []})
        assert (
            CloseClient(settings()).reconcile(spec(), {"prefix": "415"}, dt.datetime.now(dt.UTC))
            is None
        )
