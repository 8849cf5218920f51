"""SignalWire adapter: order checks, search, purchase, error mapping, reconciliation."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from models.config import Settings
from sandbox.server import SandboxServer
from worker.providers.base import (
    AmbiguousOutcome,
    OrderSpec,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from worker.providers.signalwire import SignalWireClient

BASE = "https://space.signalwire.test"
PURCHASE = "/api/relay/rest/phone_numbers"
SEARCH = "/api/relay/rest/phone_numbers/search"
NUMBER = "+14155550123"
NOW = dt.datetime.now(dt.UTC)

# Seed 002's null-valued PhoneNumberResponse properties (all required).
NULL_FIELDS = [
    "e911_address_id",
    "call_handler",
    "calling_handler_resource_id",
    "call_request_url",
    "call_request_method",
    "call_fallback_url",
    "call_fallback_method",
    "call_status_callback_url",
    "call_status_callback_method",
    "call_laml_application_id",
    "call_dialogflow_agent_id",
    "call_relay_topic",
    "call_relay_topic_status_callback_url",
    "call_relay_script_url",
    "call_relay_context",
    "call_relay_context_status_callback_url",
    "call_relay_application",
    "call_relay_connector_id",
    "call_sip_endpoint_id",
    "call_verto_resource",
    "call_video_room_id",
    "message_handler",
    "messaging_handler_resource_id",
    "message_request_url",
    "message_request_method",
    "message_fallback_url",
    "message_fallback_method",
    "message_laml_application_id",
    "message_relay_topic",
    "message_relay_context",
]


def settings(base_url: str = BASE) -> Settings:
    return Settings(
        signalwire_base_url=base_url,
        signalwire_project_id="sandbox-project",
        signalwire_api_token="sandbox-signalwire-token",
    )


def spec(**fields: Any) -> OrderSpec:
    return OrderSpec(order_id="ord_test", provider="signalwire", **fields)


def phone_number(number: str = NUMBER, created: dt.datetime = NOW, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "5f1c1b2e-4b7a-4a53-9a67-0c2b8d9f1e11",
        "number": number,
        "name": number,
        "capabilities": ["voice", "sms", "mms", "fax"],
        "number_type": "longcode",
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "updated_at": created.isoformat().replace("+00:00", "Z"),
        "next_billed_at": "2030-01-01T00:00:00Z",
        "call_receive_mode": "voice",
        "country_code": "US",
        **dict.fromkeys(NULL_FIELDS),
    }
    record.update(extra)
    return record


def invalid(code: str, detail: str, status: int = 422) -> httpx.Response:
    item = {"code": code, "detail": detail, "status": str(status), "title": "Invalid"}
    return httpx.Response(status, json={"errors": [item]})


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def client() -> Iterator[SignalWireClient]:
    adapter = SignalWireClient(settings())
    yield adapter
    adapter.close()


# -- the order ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({}, set()),
        ({"country": "US", "area_code": "415", "number_type": "local"}, set()),
        ({"country": "CA", "number_type": "tollfree"}, set()),
        ({"phone_number": "+14155550123"}, set()),
        ({"country": "GB"}, {"country"}),
        ({"country": "MX"}, {"country"}),
        ({"phone_number": "14155550123"}, {"phone_number"}),
        ({"phone_number": "+442071838750"}, {"phone_number"}),  # E.164, but not NANPA
        ({"phone_number": "+1415"}, {"phone_number"}),
        ({"number_type": "mobile"}, {"number_type"}),
        ({"number_type": "national"}, {"number_type"}),
        ({"area_code": "4155"}, {"area_code"}),
        ({"area_code": "41"}, {"area_code"}),
        ({"options": {"sharing": "group"}}, {"options.sharing"}),
        ({"options": {"a": 1, "b": 2}}, {"options.a", "options.b"}),
        ({"country": "GB", "options": {"x": None}}, {"country", "options.x"}),
    ],
)
def test_check_names_each_bad_field(fields: dict[str, Any], bad: set[str]) -> None:
    issues = SignalWireClient.check(spec(**fields))

    assert {issue.field for issue in issues} == bad
    assert all(issue.message for issue in issues)


def test_configured_needs_every_credential() -> None:
    assert SignalWireClient.configured(settings())
    assert not SignalWireClient.configured(
        settings().model_copy(update={"signalwire_api_token": ""})
    )
    assert not SignalWireClient.configured(settings(base_url=""))


@pytest.mark.parametrize(
    ("candidate", "named", "body"),
    [
        ("+14155550100", None, {"number": "+14155550100"}),
        (None, "+14155550199", {"number": "+14155550199"}),
        ("+14155550100", "+14155550100", {"number": "+14155550100"}),
    ],
)
def test_build_request_is_the_seed_body(
    client: SignalWireClient, candidate: str | None, named: str | None, body: dict[str, Any]
) -> None:
    assert client.build_request(spec(phone_number=named), candidate) == body


def test_build_request_without_a_number_is_our_bug(client: SignalWireClient) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        client.build_request(spec(), None)
    assert caught.value.kind == "invalid"


# -- search ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "limit", "params"),
    [
        (
            {"area_code": "415", "number_type": "local"},
            3,
            {"areacode": "415", "number_type": "longcode", "max_results": "3"},
        ),
        ({"number_type": "tollfree"}, 2, {"number_type": "toll-free", "max_results": "2"}),
        ({}, 500, {"max_results": "100"}),
    ],
)
def test_search_sends_signalwire_words(
    api: respx.MockRouter,
    client: SignalWireClient,
    fields: dict[str, Any],
    limit: int,
    params: dict[str, str],
) -> None:
    route = api.get(SEARCH).respond(200, json={"data": []})

    assert client.search(spec(**fields), limit) == []
    assert dict(route.calls.last.request.url.params) == params


def test_search_returns_valid_candidates_best_first(
    api: respx.MockRouter, client: SignalWireClient
) -> None:
    rows = [
        {"e164": "+14155550101", "capabilities": ["voice", "sms"]},
        {"e164": "4155550102"},  # not E.164
        {"number": "+14155550103"},  # no e164 field
        "junk",
        {"e164": "+14155550104", "capabilities": ["voice"]},  # no SMS
        {"e164": "+14155550105"},  # capabilities unknown: kept
        {"e164": "+14155550106", "capabilities": ["voice", "sms"]},
    ]
    api.get(SEARCH).respond(200, json={"data": rows})

    assert client.search(spec(sms=True), 10) == ["+14155550101", "+14155550105", "+14155550106"]
    assert client.search(spec(), 2) == ["+14155550101", "+14155550104"]


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (httpx.Response(200, json={"nope": []}), "failed"),
        (httpx.Response(200, text="<html>"), "failed"),
        (httpx.Response(401, json={"error": "Unauthorized"}), "auth"),
        (httpx.Response(503), "transient"),
    ],
)
def test_search_failures(
    api: respx.MockRouter, client: SignalWireClient, response: httpx.Response, kind: str
) -> None:
    api.get(SEARCH).mock(return_value=response)

    with pytest.raises(ProviderError) as caught:
        client.search(spec(), 5)
    assert caught.value.kind == kind


# -- purchase -------------------------------------------------------------------------------


def test_purchase_sends_basic_auth_and_keeps_the_documented_fields(
    api: respx.MockRouter, client: SignalWireClient
) -> None:
    route = api.post(PURCHASE).respond(200, json=phone_number())

    result = client.purchase({"number": NUMBER})

    request = route.calls.last.request
    expected = base64.b64encode(b"sandbox-project:sandbox-signalwire-token").decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.content == b'{"number":"+14155550123"}'
    [acquired] = result.numbers
    assert acquired.number == NUMBER
    assert acquired.provider_number_id == "5f1c1b2e-4b7a-4a53-9a67-0c2b8d9f1e11"
    assert set(acquired.details) == {
        "id",
        "number",
        "capabilities",
        "number_type",
        "created_at",
        "next_billed_at",
    }
    assert acquired.details["capabilities"] == ["voice", "sms", "mms", "fax"]
    assert result.rented and result.outcome == "fulfilled"


@pytest.mark.parametrize(
    "payload",
    [
        {k: v for k, v in phone_number().items() if k != "call_handler"},  # a required field
        phone_number(capabilities="voice"),  # wrong type
        phone_number(id=None),
        phone_number(number="not-a-number"),
        {},
        None,
    ],
)
def test_a_200_that_is_not_a_phone_number_response_is_found_by_reconciling(
    api: respx.MockRouter, client: SignalWireClient, payload: Any
) -> None:
    """A 200 means we own the number: never fail (we would buy again), list it instead."""
    api.post(PURCHASE).respond(200, json=payload)

    result = client.purchase({"number": NUMBER})

    assert result.rented is True
    assert result.numbers == []


ERRORS = [
    # (response, error class, kind, provider_code, retry_after)
    (
        httpx.Response(401, json={"error": "Unauthorized"}),
        PermanentProviderError,
        "auth",
        None,
        None,
    ),
    (httpx.Response(403, json={"error": "Forbidden"}), PermanentProviderError, "auth", None, None),
    (
        invalid(
            "phone_number_not_available", "The phone number +14155550123 is no longer available."
        ),
        PermanentProviderError,
        "unavailable",
        "phone_number_not_available",
        None,
    ),
    (
        invalid("number_unavailable", "This number is not available for purchase"),
        PermanentProviderError,
        "unavailable",
        "number_unavailable",
        None,
    ),
    (
        invalid("invalid_parameter", "number must be a phone number in E.164 format"),
        PermanentProviderError,
        "failed",
        "invalid_parameter",
        None,
    ),
    (
        invalid("missing_required_parameter", "number is required"),
        PermanentProviderError,
        "failed",
        "missing_required_parameter",
        None,
    ),
    (
        httpx.Response(400, json={"error": "Bad Request"}),
        PermanentProviderError,
        "failed",
        "Bad Request",
        None,
    ),
    (httpx.Response(404, text="not here"), PermanentProviderError, "failed", None, None),
    (httpx.Response(408), TransientProviderError, "transient", None, None),
    (
        httpx.Response(429, json={"error": "Too Many Requests"}, headers={"Retry-After": "7"}),
        TransientProviderError,
        "transient",
        "Too Many Requests",
        7.0,
    ),
    (
        httpx.Response(500, json={"error": "Internal Server Error"}),
        TransientProviderError,
        "transient",
        "Internal Server Error",
        None,
    ),
    (
        httpx.Response(503, text="<html>down</html>", headers={"Retry-After": "2"}),
        TransientProviderError,
        "transient",
        None,
        2.0,
    ),
]


@pytest.mark.parametrize(("response", "cls", "kind", "code", "retry_after"), ERRORS)
def test_purchase_errors_map_to_the_service_kinds(
    api: respx.MockRouter,
    client: SignalWireClient,
    response: httpx.Response,
    cls: type[ProviderError],
    kind: str,
    code: str | None,
    retry_after: float | None,
) -> None:
    api.post(PURCHASE).mock(return_value=response)

    with pytest.raises(cls) as caught:
        client.purchase({"number": NUMBER})

    error = caught.value
    assert type(error) is cls
    assert (error.kind, error.provider_code, error.retry_after) == (kind, code, retry_after)
    assert error.status_code == response.status_code
    assert error.provider == "signalwire"
    assert "sandbox-signalwire-token" not in str(error.as_dict())


def test_a_failed_422_keeps_the_providers_detail(
    api: respx.MockRouter, client: SignalWireClient
) -> None:
    api.post(PURCHASE).mock(return_value=invalid("invalid_parameter", "number must be E.164"))

    with pytest.raises(PermanentProviderError) as caught:
        client.purchase({"number": "bad"})
    assert "number must be E.164" in caught.value.message


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (httpx.ConnectError("refused"), TransientProviderError),
        (httpx.ConnectTimeout("slow connect"), TransientProviderError),
        (httpx.ReadTimeout("no answer"), AmbiguousOutcome),
        (httpx.RemoteProtocolError("dropped mid-response"), AmbiguousOutcome),
    ],
)
def test_transport_errors_tell_whether_the_request_left(
    api: respx.MockRouter, client: SignalWireClient, exc: Exception, cls: type[ProviderError]
) -> None:
    api.post(PURCHASE).mock(side_effect=exc)

    with pytest.raises(ProviderError) as caught:
        client.purchase({"number": NUMBER})
    assert type(caught.value) is cls
    assert caught.value.kind == "transient"


# -- reconcile ------------------------------------------------------------------------------


def test_reconcile_finds_the_exact_number_we_asked_for(
    api: respx.MockRouter, client: SignalWireClient
) -> None:
    partial = phone_number("+14155550124")  # filter_number matches part of the number
    route = api.get(PURCHASE).respond(
        200, json={"links": {"next": None}, "data": [partial, phone_number()]}
    )

    found = client.reconcile(spec(), {"number": NUMBER}, NOW - dt.timedelta(seconds=5))

    assert route.calls.last.request.url.params["filter_number"] == NUMBER
    assert found is not None
    assert [n.number for n in found.numbers] == [NUMBER]


def test_reconcile_follows_pages(api: respx.MockRouter, client: SignalWireClient) -> None:
    second = f"{BASE}{PURCHASE}?filter_number=%2B14155550123&page_number=1"
    api.get(PURCHASE, params={"page_number": "1"}).respond(
        200, json={"links": {}, "data": [phone_number()]}
    )
    api.get(PURCHASE).respond(
        200, json={"links": {"next": second}, "data": [phone_number("+14155550124")]}
    )

    found = client.reconcile(spec(), {"number": NUMBER}, NOW)

    assert found is not None and found.numbers[0].number == NUMBER


@pytest.mark.parametrize(
    ("listed", "body"),
    [
        ([], {"number": NUMBER}),
        ([phone_number("+14155550124")], {"number": NUMBER}),
        # Owned since long before the attempt: it was not this purchase that bought it.
        ([phone_number(created=NOW - dt.timedelta(days=3))], {"number": NUMBER}),
        ([phone_number()], {}),
    ],
)
def test_reconcile_finds_nothing(
    api: respx.MockRouter, client: SignalWireClient, listed: list[Any], body: dict[str, Any]
) -> None:
    api.get(PURCHASE).respond(200, json={"links": {"next": None}, "data": listed})

    assert client.reconcile(spec(), body, NOW - dt.timedelta(seconds=5)) is None


def test_reconcile_errors_are_raised_not_swallowed(
    api: respx.MockRouter, client: SignalWireClient
) -> None:
    api.get(PURCHASE).respond(500, json={"error": "Internal Server Error"})

    with pytest.raises(TransientProviderError):
        client.reconcile(spec(), {"number": NUMBER}, NOW)


# -- against the sandbox over real HTTP ------------------------------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[SandboxServer]:
    with SandboxServer(port=0) as server:
        yield server


@pytest.fixture
def live_client(live: SandboxServer) -> Iterator[SignalWireClient]:
    httpx.post(f"{live.url}/_sandbox/reset").raise_for_status()
    adapter = SignalWireClient(settings(f"{live.url}/signalwire"))
    yield adapter
    adapter.close()


def test_sandbox_search_then_purchase_then_reconcile(live_client: SignalWireClient) -> None:
    order = spec(area_code="212", number_type="local")
    started = dt.datetime.now(dt.UTC)

    [candidate] = live_client.search(order, 1)
    bought = live_client.purchase(live_client.build_request(order, candidate))

    assert candidate.startswith("+1212")
    assert [n.number for n in bought.numbers] == [candidate]
    assert bought.numbers[0].details["number_type"] == "longcode"
    found = live_client.reconcile(order, {"number": candidate}, started)
    assert found is not None and found.numbers[0].number == candidate


def test_sandbox_stale_candidate_is_unavailable(live_client: SignalWireClient) -> None:
    order = spec(area_code="200")
    stale, fresh = live_client.search(order, 2)

    with pytest.raises(PermanentProviderError) as caught:
        live_client.purchase(live_client.build_request(order, stale))

    assert caught.value.kind == "unavailable"
    assert caught.value.provider_code == "phone_number_not_available"
    assert live_client.purchase({"number": fresh}).numbers[0].number == fresh


def test_sandbox_wrong_token_is_auth(live: SandboxServer) -> None:
    wrong = settings(f"{live.url}/signalwire").model_copy(update={"signalwire_api_token": "nope"})
    adapter = SignalWireClient(wrong)

    with pytest.raises(PermanentProviderError) as caught:
        adapter.purchase({"number": "+14155550177"})
    adapter.close()
    assert caught.value.kind == "auth"
