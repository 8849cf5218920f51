"""IdentityCall adapter: order checks, search, purchase, error mapping, reconciliation."""

from __future__ import annotations

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
from worker.providers.identitycall import IdentityCallClient

BASE = "https://identitycall.test/api/v1/public"
PURCHASE = "/virtual_numbers/purchase"
LIST = "/virtual_numbers"
AVAILABLE = "/virtual_numbers/available"
NUMBER = "+15551234567"
NOW = dt.datetime.now(dt.UTC)
KEY = "sandbox-identitycall-key"


def settings(base_url: str = BASE, key: str = KEY) -> Settings:
    return Settings(identitycall_base_url=base_url, identitycall_api_key=key)


def spec(**fields: Any) -> OrderSpec:
    fields.setdefault("country", "US")
    return OrderSpec(order_id="ord_test", provider="identitycall", **fields)


def virtual_number(number: str = NUMBER, **extra: Any) -> dict[str, Any]:
    """Seed 003's 201 ``data`` example."""
    return {
        "id": 9,
        "phone_number": number,
        "name": "US Sales Line",
        "country_code": "US",
        "active": True,
        "ai_receptionist_enabled": False,
        "operators": [],
        "operators_count": 0,
        **extra,
    }


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def client() -> Iterator[IdentityCallClient]:
    adapter = IdentityCallClient(settings())
    yield adapter
    adapter.close()


# -- the order ------------------------------------------------------------------------------

OK_OPTIONS = {
    "name": "US Sales Line",
    "requirement_group_id": 12,
    "upfront_cost": "1.00",
    "monthly_cost": "1.15",
}


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({}, set()),
        ({"number_type": "tollfree", "options": OK_OPTIONS}, set()),
        ({"country": "GB", "number_type": "mobile"}, set()),
        ({"phone_number": NUMBER}, set()),
        ({"country": None, "phone_number": "+442071838750"}, set()),
        ({"country": None}, {"country"}),
        ({"country": "XX"}, {"country"}),
        ({"phone_number": "15551234567"}, {"phone_number"}),
        ({"country": "GB", "phone_number": NUMBER}, {"phone_number"}),  # +1 is not GB
        ({"area_code": "415"}, {"area_code"}),
        ({"sms": True}, {"capabilities"}),
        ({"mms": True}, {"capabilities"}),
        ({"options": {"requirement_group_id": "12"}}, {"options.requirement_group_id"}),
        ({"options": {"requirement_group_id": True}}, {"options.requirement_group_id"}),
        ({"options": {"requirement_group_id": 0}}, {"options.requirement_group_id"}),
        ({"options": {"upfront_cost": 1.0}}, {"options.upfront_cost"}),
        ({"options": {"upfront_cost": "1,00"}}, {"options.upfront_cost"}),
        ({"options": {"monthly_cost": "-1"}}, {"options.monthly_cost"}),
        ({"options": {"monthly_cost": "١٢"}}, {"options.monthly_cost"}),  # not ASCII digits
        ({"options": {"name": ""}}, {"options.name"}),
        ({"options": {"name": "x" * 256}}, {"options.name"}),
        ({"options": {"sharing": "group"}}, {"options.sharing"}),
    ],
)
def test_check_names_each_bad_field(fields: dict[str, Any], bad: set[str]) -> None:
    issues = IdentityCallClient.check(spec(**fields))

    assert {issue.field for issue in issues} == bad


@pytest.mark.parametrize(
    ("fields", "candidate", "body"),
    [
        (
            {"number_type": "tollfree", "options": OK_OPTIONS},
            "+18335550100",
            {
                "phone_number": "+18335550100",
                "country_code": "US",
                "number_type": "toll-free",
                **OK_OPTIONS,
            },
        ),
        (
            {"number_type": "local"},
            NUMBER,
            {"phone_number": NUMBER, "country_code": "US", "number_type": "local"},
        ),
        # No country on the order: the named number's own country.
        (
            {"country": None, "phone_number": "+442071838750"},
            None,
            {"phone_number": "+442071838750", "country_code": "GB"},
        ),
        (
            {"options": {"name": "Desk"}},
            NUMBER,
            {"phone_number": NUMBER, "country_code": "US", "name": "Desk"},
        ),
    ],
)
def test_build_request(
    client: IdentityCallClient, fields: dict[str, Any], candidate: str | None, body: dict[str, Any]
) -> None:
    assert client.build_request(spec(**fields), candidate) == body


def test_build_request_never_goes_without_a_phone_number(client: IdentityCallClient) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        client.build_request(spec(), None)
    assert caught.value.kind == "invalid"


# -- search ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "params"),
    [
        ({"number_type": "tollfree"}, {"country": "US", "number_type": "toll-free"}),
        ({"country": "GB", "number_type": "mobile"}, {"country": "GB", "number_type": "mobile"}),
        ({"country": "CA"}, {"country": "CA"}),
    ],
)
def test_search_sends_identitycall_words(
    api: respx.MockRouter,
    client: IdentityCallClient,
    fields: dict[str, Any],
    params: dict[str, str],
) -> None:
    route = api.get(AVAILABLE).respond(200, json={"data": []})

    assert client.search(spec(**fields), 5) == []
    assert dict(route.calls.last.request.url.params) == params
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"


def test_search_parses_candidates(api: respx.MockRouter, client: IdentityCallClient) -> None:
    rows = [
        {"phone_number": "+16465550100", "upfront_cost": "1.00"},
        {"phone_number": "6465550101"},
        {"number": "+16465550102"},
        7,
        {"phone_number": "+16465550103"},
        {"phone_number": "+16465550104"},
    ]
    api.get(AVAILABLE).respond(200, json={"data": rows})

    assert client.search(spec(), 2) == ["+16465550100", "+16465550103"]


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (httpx.Response(200, json=[]), "failed"),
        (httpx.Response(401, json={"error": "Invalid or missing API key"}), "auth"),
        (httpx.Response(429, headers={"Retry-After": "3"}), "transient"),
    ],
)
def test_search_failures(
    api: respx.MockRouter, client: IdentityCallClient, response: httpx.Response, kind: str
) -> None:
    api.get(AVAILABLE).mock(return_value=response)

    with pytest.raises(ProviderError) as caught:
        client.search(spec(), 5)
    assert caught.value.kind == kind


# -- purchase -------------------------------------------------------------------------------


def test_purchase_keeps_the_number_and_our_costs(
    api: respx.MockRouter, client: IdentityCallClient
) -> None:
    route = api.post(PURCHASE).respond(201, json={"data": virtual_number()})
    body = {"phone_number": NUMBER, "upfront_cost": "1.00", "monthly_cost": "1.15"}

    result = client.purchase(body)

    assert route.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"
    [acquired] = result.numbers
    assert acquired.number == NUMBER
    assert acquired.provider_number_id == "9"
    assert acquired.details == {
        "id": 9,
        "phone_number": NUMBER,
        "name": "US Sales Line",
        "country_code": "US",
        "active": True,
    }
    assert result.costs == {"upfront_cost": "1.00", "monthly_cost": "1.15"}


def test_purchase_without_costs_records_none(
    api: respx.MockRouter, client: IdentityCallClient
) -> None:
    api.post(PURCHASE).respond(201, json={"data": virtual_number()})

    assert client.purchase({"phone_number": NUMBER}).costs is None


@pytest.mark.parametrize(
    "payload",
    [{"data": {"id": 9}}, {"data": virtual_number(phone_number="5551234567")}, {"id": 9}, None],
)
def test_a_201_without_the_number_is_found_by_reconciling(
    api: respx.MockRouter, client: IdentityCallClient, payload: Any
) -> None:
    api.post(PURCHASE).respond(201, json=payload)

    result = client.purchase({"phone_number": NUMBER})

    assert result.rented is True and result.numbers == []


ERRORS = [
    # (response, error class, kind, retry_after)
    (
        httpx.Response(422, json={"error": "Requirement group must be approved before purchasing"}),
        PermanentProviderError,
        "needs_action",
        None,
    ),
    (
        httpx.Response(422, json={"error": "phone_number is required"}),
        PermanentProviderError,
        "invalid",
        None,
    ),
    (
        httpx.Response(422, json={"message": "phone_number is required"}),
        PermanentProviderError,
        "invalid",
        None,
    ),
    (
        httpx.Response(422, json={"error": "Number is no longer available"}),
        PermanentProviderError,
        "unavailable",
        None,
    ),
    (
        httpx.Response(422, json={"errors": ["Regulatory block for this country"]}),
        PermanentProviderError,
        "unavailable",
        None,
    ),
    (httpx.Response(422, text=""), PermanentProviderError, "unavailable", None),
    (
        httpx.Response(401, json={"error": "Invalid or missing API key"}),
        PermanentProviderError,
        "auth",
        None,
    ),
    (
        httpx.Response(403, json={"error": "Requires write permission"}),
        PermanentProviderError,
        "auth",
        None,
    ),
    (httpx.Response(404, json={"error": "Not found"}), PermanentProviderError, "failed", None),
    (
        httpx.Response(429, json={"error": "Rate limit exceeded"}, headers={"Retry-After": "12"}),
        TransientProviderError,
        "transient",
        12.0,
    ),
    (
        httpx.Response(429, json={"error": "Rate limit exceeded"}),
        TransientProviderError,
        "transient",
        None,
    ),
    (httpx.Response(500, json={"error": "boom"}), TransientProviderError, "transient", None),
    (
        httpx.Response(502, text="<html>bad gateway</html>"),
        TransientProviderError,
        "transient",
        None,
    ),
]


@pytest.mark.parametrize(("response", "cls", "kind", "retry_after"), ERRORS)
def test_purchase_errors_map_to_the_service_kinds(
    api: respx.MockRouter,
    client: IdentityCallClient,
    response: httpx.Response,
    cls: type[ProviderError],
    kind: str,
    retry_after: float | None,
) -> None:
    api.post(PURCHASE).mock(return_value=response)

    with pytest.raises(cls) as caught:
        client.purchase({"phone_number": NUMBER})

    error = caught.value
    assert type(error) is cls
    assert (error.kind, error.retry_after, error.status_code) == (
        kind,
        retry_after,
        response.status_code,
    )
    assert KEY not in str(error.as_dict())


def test_the_providers_message_is_kept_as_its_code(
    api: respx.MockRouter, client: IdentityCallClient
) -> None:
    message = "Requirement group must be approved before purchasing"
    api.post(PURCHASE).respond(422, json={"error": message})

    with pytest.raises(PermanentProviderError) as caught:
        client.purchase({"phone_number": NUMBER, "requirement_group_id": 13})
    assert caught.value.provider_code == message
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (httpx.ConnectError("refused"), TransientProviderError),
        (httpx.ReadTimeout("no answer"), AmbiguousOutcome),
        (httpx.ReadError("reset"), AmbiguousOutcome),
    ],
)
def test_transport_errors_tell_whether_the_request_left(
    api: respx.MockRouter, client: IdentityCallClient, exc: Exception, cls: type[ProviderError]
) -> None:
    api.post(PURCHASE).mock(side_effect=exc)

    with pytest.raises(ProviderError) as caught:
        client.purchase({"phone_number": NUMBER})
    assert type(caught.value) is cls


# -- reconcile ------------------------------------------------------------------------------


def test_reconcile_matches_the_number_client_side(
    api: respx.MockRouter, client: IdentityCallClient
) -> None:
    listed = [virtual_number("+15551234000", id=3), virtual_number(id=9), "junk"]
    route = api.get(LIST).respond(200, json={"data": listed})

    found = client.reconcile(
        spec(), {"phone_number": NUMBER, "upfront_cost": "1.00"}, NOW - dt.timedelta(seconds=5)
    )

    assert not route.calls.last.request.url.params  # no filters: IdentityCall has none
    assert found is not None
    assert [(n.number, n.provider_number_id) for n in found.numbers] == [(NUMBER, "9")]
    assert found.costs == {"upfront_cost": "1.00"}


@pytest.mark.parametrize(
    ("listed", "body"),
    [
        ([], {"phone_number": NUMBER}),
        ([virtual_number("+15551234000")], {"phone_number": NUMBER}),
        ([virtual_number(created_at="2020-01-01T00:00:00Z")], {"phone_number": NUMBER}),
        ([virtual_number()], {}),
    ],
)
def test_reconcile_finds_nothing(
    api: respx.MockRouter, client: IdentityCallClient, listed: list[Any], body: dict[str, Any]
) -> None:
    api.get(LIST).respond(200, json={"data": listed})

    assert client.reconcile(spec(), body, NOW - dt.timedelta(seconds=5)) is None


def test_reconcile_list_failure_is_raised(
    api: respx.MockRouter, client: IdentityCallClient
) -> None:
    api.get(LIST).respond(401, json={"error": "Invalid or missing API key"})

    with pytest.raises(PermanentProviderError) as caught:
        client.reconcile(spec(), {"phone_number": NUMBER}, NOW)
    assert caught.value.kind == "auth"


# -- against the sandbox over real HTTP ------------------------------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[SandboxServer]:
    with SandboxServer(port=0) as server:
        yield server


@pytest.fixture
def live_client(live: SandboxServer) -> Iterator[IdentityCallClient]:
    httpx.post(f"{live.url}/_sandbox/reset").raise_for_status()
    adapter = IdentityCallClient(settings(f"{live.url}/identitycall/api/v1/public"))
    yield adapter
    adapter.close()


def test_sandbox_search_then_purchase_then_reconcile(live_client: IdentityCallClient) -> None:
    order = spec(number_type="tollfree", options={"name": "Support", "upfront_cost": "2.00"})
    started = dt.datetime.now(dt.UTC)

    candidate = live_client.search(order, 3)[0]
    body = live_client.build_request(order, candidate)
    bought = live_client.purchase(body)

    assert candidate.startswith("+1833")
    assert [n.number for n in bought.numbers] == [candidate]
    assert bought.numbers[0].details["name"] == "Support"
    assert bought.costs == {"upfront_cost": "2.00"}
    found = live_client.reconcile(order, body, started)
    assert found is not None and found.numbers[0].number == candidate


def test_sandbox_unapproved_group_needs_action(live_client: IdentityCallClient) -> None:
    order = spec(options={"requirement_group_id": 13})
    candidate = live_client.search(order, 1)[0]

    with pytest.raises(PermanentProviderError) as caught:
        live_client.purchase(live_client.build_request(order, candidate))
    assert caught.value.kind == "needs_action"
    assert caught.value.status_code == 422


def test_sandbox_number_sold_already_is_unavailable(live_client: IdentityCallClient) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        live_client.purchase({"phone_number": "+16465550000", "country_code": "US"})
    assert caught.value.kind == "unavailable"
