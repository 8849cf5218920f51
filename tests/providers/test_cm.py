"""CM.com adapter: order checks, the create body, status mapping, cancel, reconciliation."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
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
    Purchase,
    TransientProviderError,
)
from worker.providers.cm import CMClient, parse_request_object, reference_in, tagged_comment

BASE = "https://cm.test/voice-phonenumberrequestapi/v1"
ACCOUNT = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
OTHER_ACCOUNT = "9b2f0f5e-0d3a-4f4e-9a43-3d7a4a0f6c11"
PROFILE = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
TOKEN = "sandbox-cm-token"
REQUESTS = f"/{ACCOUNT}/numberrequests"
REQUEST_ID = "0d9bd7b4-6a35-4f33-9c59-9b0d2c6f0a01"
ORDER = "ord_01jcm0000000000000000000"
CALLBACK = "http://127.0.0.1:8000/webhooks/cm/tok"
NOW = dt.datetime.now(dt.UTC)


def settings(base_url: str = BASE, token: str = TOKEN) -> Settings:
    return Settings(cm_base_url=base_url, cm_product_token=token, cm_account_id=ACCOUNT)


def spec(**fields: Any) -> OrderSpec:
    options = {"company_profile_id": PROFILE, "region": "NJ", **fields.pop("options", {})}
    defaults: dict[str, Any] = {
        "order_id": ORDER,
        "quantity": 2,
        "country": "US",
        "number_type": "local",
        "area_code": "201",
        "reference": ORDER,
        "callback_url": CALLBACK,
    }
    return OrderSpec(provider="cm", options=options, **{**defaults, **fields})


def request_object(
    status: str = "Pending", numbers: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    """The number request object the seeds README assumes."""
    numbers = numbers or []
    # Now, not import time: the adapter skips requests created long before the attempt.
    stamp = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    return {
        "id": REQUEST_ID,
        "accountId": ACCOUNT,
        "status": status,
        "reason": None,
        "companyProfileId": PROFILE,
        "quantity": 2,
        "rangeSize": None,
        "numberType": "LOCAL",
        "areaCode": "201",
        "city": None,
        "region": "NJ",
        "comment": f"[order:{ORDER}]",
        "callbackUrl": CALLBACK,
        "start": numbers[0] if numbers else None,
        "phoneNumbers": numbers,
        "validFrom": stamp if numbers else None,
        "validTo": None,
        "created": stamp,
        "updated": stamp,
        **extra,
    }


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def client() -> Iterator[CMClient]:
    adapter = CMClient(settings())
    yield adapter
    adapter.close()


# -- the order ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({}, set()),
        ({"quantity": 1000}, set()),
        ({"quantity": 10, "options": {"range_size": 100}}, set()),
        ({"options": {"range_size": None}}, set()),
        ({"area_code": None, "options": {"city": "Newark"}}, set()),
        ({"country": "NL", "options": {"region": None}, "number_type": "mobile"}, set()),
        ({"country": None, "options": {"region": None}}, set()),  # NANPA-ness unknown
        ({"options": {"comment": "ip 10.0.0.1", "account_id": OTHER_ACCOUNT}}, set()),
        ({"quantity": 0}, {"quantity"}),
        ({"quantity": 1001}, {"quantity"}),
        ({"quantity": 11, "options": {"range_size": 100}}, {"options.range_size"}),
        ({"options": {"range_size": 0}}, {"options.range_size"}),
        ({"options": {"range_size": "10"}}, {"options.range_size"}),
        ({"options": {"range_size": True}}, {"options.range_size"}),
        ({"number_type": None}, {"number_type"}),
        ({"number_type": "landline"}, {"number_type"}),
        ({"area_code": None}, {"area_code"}),
        ({"area_code": None, "options": {"city": ""}}, {"area_code", "options.city"}),
        ({"options": {"region": None}}, {"options.region"}),  # US is NANPA
        ({"country": "CA", "options": {"region": None}}, {"options.region"}),
        ({"country": "JM", "options": {"region": None}}, {"options.region"}),  # +1 too
        ({"country": "ZZ"}, {"country"}),
        ({"options": {"company_profile_id": None}}, {"options.company_profile_id"}),
        ({"options": {"company_profile_id": "not-a-uuid"}}, {"options.company_profile_id"}),
        ({"options": {"account_id": "acct"}}, {"options.account_id"}),
        ({"options": {"comment": "x" * 201}}, {"options.comment"}),
        ({"options": {"colour": "red"}}, {"options.colour"}),
        ({"phone_number": "+12015550123"}, {"phone_number"}),
        ({"sms": True}, {"capabilities"}),
    ],
)
def test_check_names_each_bad_field(fields: dict[str, Any], bad: set[str]) -> None:
    issues = CMClient.check(spec(**fields))

    assert {issue.field for issue in issues} == bad


def test_check_requires_the_company_profile() -> None:
    order = OrderSpec(order_id="", provider="cm", number_type="local", area_code="20", country="NL")
    assert {i.field for i in CMClient.check(order)} == {"options.company_profile_id"}


def test_configured_needs_token_and_account() -> None:
    assert CMClient.configured(settings())
    assert not CMClient.configured(settings(token=""))
    assert not CMClient.configured(settings().model_copy(update={"cm_account_id": ""}))


@pytest.mark.parametrize(
    ("fields", "body"),
    [
        (
            {},
            {
                "accountId": ACCOUNT,
                "companyProfileId": PROFILE,
                "quantity": 2,
                "numberType": "LOCAL",
                "areaCode": "201",
                "region": "NJ",
                "comment": f"[order:{ORDER}]",
                "callbackUrl": CALLBACK,
            },
        ),
        (
            {
                "quantity": 3,
                "number_type": "tollfree",
                "area_code": None,
                "country": "NL",
                "callback_url": None,
                "options": {
                    "region": None,
                    "city": "Amsterdam",
                    "range_size": 10,
                    "comment": "dist group 7",
                    "account_id": OTHER_ACCOUNT.upper(),
                },
            },
            {
                "accountId": OTHER_ACCOUNT,
                "companyProfileId": PROFILE,
                "quantity": 3,
                "rangeSize": 10,
                "numberType": "TOLLFREE",
                "city": "Amsterdam",
                "comment": f"dist group 7 [order:{ORDER}]",
            },
        ),
    ],
)
def test_build_request_is_the_camel_case_body(
    client: CMClient, fields: dict[str, Any], body: dict[str, Any]
) -> None:
    assert client.build_request(spec(**fields), None) == body


def test_the_comment_carries_our_reference_and_cannot_be_spoofed() -> None:
    comment = tagged_comment("please [order:ord_someone_else]", ORDER)

    assert reference_in(comment) == ORDER
    assert reference_in("no tag here") is None
    assert reference_in(None) is None


def test_build_request_without_a_reference_is_our_bug(client: CMClient) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        client.build_request(spec(reference=None, order_id=""), None)
    assert caught.value.kind == "invalid"


# -- the request object ---------------------------------------------------------------------

NUMBERS = ["+12015550100", "+12015550101"]


@pytest.mark.parametrize(
    ("status", "numbers", "outcome", "settled"),
    [
        ("Pending", [], "waiting", False),
        ("Accepted", NUMBERS, "fulfilled", True),
        ("Rejected", [], "failed", True),
        ("Cancelled", [], "cancelled", True),
        ("ACCEPTED", NUMBERS, "fulfilled", True),  # CM's names are case-insensitive
        ("OnHold", [], "unknown", False),  # a word the documents never list
        ("Processing", NUMBERS[:1], "unknown", False),
    ],
)
def test_status_words_map_to_outcomes(
    status: str, numbers: list[str], outcome: str, settled: bool
) -> None:
    result = parse_request_object(request_object(status, numbers, reason="why"))

    assert (result.outcome, result.settled) == (outcome, settled)
    assert result.status == status  # kept verbatim, never normalised
    assert result.request_id == REQUEST_ID
    assert [n.number for n in result.numbers] == numbers
    assert result.reason == "why"


def test_partial_delivery_gives_fewer_numbers_than_asked() -> None:
    payload = request_object("Accepted", NUMBERS[:1], quantity=2)

    result = parse_request_object(payload)

    assert result.outcome == "fulfilled" and result.settled
    assert [n.number for n in result.numbers] == NUMBERS[:1]
    assert result.numbers[0].details == {"request_id": REQUEST_ID}


def test_object_names_are_read_case_insensitively() -> None:
    payload = {"ID": REQUEST_ID, "Status": "Accepted", "PhoneNumbers": NUMBERS}

    result = parse_request_object(payload)

    assert result.request_id == REQUEST_ID and len(result.numbers) == 2


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "Accepted",
        {"id": REQUEST_ID},
        request_object(status=""),
        request_object(status=7),  # type: ignore[arg-type]
        request_object("Accepted", ["2015550100"]),
        request_object(phoneNumbers="+12015550100"),
        request_object(id=42),
    ],
)
def test_a_malformed_object_is_invalid(payload: Any) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        parse_request_object(payload)
    assert caught.value.kind == "invalid"


# -- create ---------------------------------------------------------------------------------


def test_purchase_posts_to_the_account_without_the_account_in_the_body(
    api: respx.MockRouter, client: CMClient
) -> None:
    route = api.post(REQUESTS).respond(201, json=request_object())
    body = client.build_request(spec(), None)

    result = client.purchase(body)

    request = route.calls.last.request
    assert request.headers["X-CM-PRODUCTTOKEN"] == TOKEN
    sent = json.loads(request.content)
    assert "accountId" not in sent
    assert sent == {k: v for k, v in body.items() if k != "accountId"}
    assert result == Purchase(
        numbers=[],
        rented=False,
        request_id=REQUEST_ID,
        status="Pending",
        settled=False,
        outcome="waiting",
    )


def test_purchase_uses_the_orders_own_account(api: respx.MockRouter, client: CMClient) -> None:
    route = api.post(f"/{OTHER_ACCOUNT}/numberrequests").respond(201, json=request_object())

    client.purchase(client.build_request(spec(options={"account_id": OTHER_ACCOUNT}), None))

    assert route.called


def test_an_immediate_assignment_is_fulfilled(api: respx.MockRouter, client: CMClient) -> None:
    api.post(REQUESTS).respond(201, json=request_object("Accepted", NUMBERS))

    result = client.purchase(client.build_request(spec(), None))

    assert result.outcome == "fulfilled" and result.settled
    assert [n.number for n in result.numbers] == NUMBERS


def test_a_create_answer_without_id_is_found_by_its_reference(
    api: respx.MockRouter, client: CMClient
) -> None:
    """Seed 004: "id, start, validFrom and validTo fields will be null" in the 201."""
    sparse = request_object(id=None, start=None, validFrom=None, validTo=None)
    older = request_object(id=str(uuid.uuid4()), created="2020-01-01T00:00:00Z")
    other = request_object(id=str(uuid.uuid4()), comment="[order:ord_other]")
    api.post(REQUESTS).respond(201, json=sparse)
    api.get(REQUESTS).respond(200, json=[older, other, request_object()])

    result = client.purchase(client.build_request(spec(), None))

    assert result.request_id == REQUEST_ID
    assert result.outcome == "waiting"


@pytest.mark.parametrize("listed", [[], [request_object(comment="[order:ord_other]")]])
def test_a_create_answer_without_id_and_not_listed_still_never_fails(
    api: respx.MockRouter, client: CMClient, listed: list[Any]
) -> None:
    api.post(REQUESTS).respond(201, json=request_object(id=None))
    api.get(REQUESTS).respond(200, json=listed)

    result = client.purchase(client.build_request(spec(), None))

    assert result.request_id is None
    assert result.outcome == "waiting" and not result.settled


def test_a_malformed_create_answer_waits_unknown_instead_of_failing(
    api: respx.MockRouter, client: CMClient
) -> None:
    """CM created the request: failing the order would lose it; sending again would double it."""
    api.post(REQUESTS).respond(201, text="<html>ok</html>")
    api.get(REQUESTS).respond(200, json=[])

    result = client.purchase(client.build_request(spec(), None))

    assert (result.outcome, result.settled, result.request_id) == ("unknown", False, None)


ERRORS = [
    # (response, error class, kind, provider_code, retry_after)
    (
        httpx.Response(
            400,
            json={
                "message": "One or more validation errors occurred.",
                "errors": {"areaCode": ["The areaCode field is required when city is empty."]},
            },
        ),
        PermanentProviderError,
        "invalid",
        "areaCode",
        None,
    ),
    (
        httpx.Response(400, json={"message": "Request could not be processed", "errors": {}}),
        PermanentProviderError,
        "failed",
        None,
        None,
    ),
    (
        httpx.Response(401, json={"message": "Unauthorized"}),
        PermanentProviderError,
        "auth",
        None,
        None,
    ),
    (httpx.Response(403), PermanentProviderError, "auth", None, None),
    (
        httpx.Response(404, json={"message": "Account not found"}),
        PermanentProviderError,
        "failed",
        None,
        None,
    ),
    (httpx.Response(408), TransientProviderError, "transient", None, None),
    (
        httpx.Response(429, json={"message": "Too Many Requests"}, headers={"Retry-After": "4"}),
        TransientProviderError,
        "transient",
        None,
        4.0,
    ),
    (
        httpx.Response(500, json={"message": "Internal Server Error"}),
        TransientProviderError,
        "transient",
        None,
        None,
    ),
    (httpx.Response(503, text="down"), TransientProviderError, "transient", None, None),
]


@pytest.mark.parametrize(("response", "cls", "kind", "code", "retry_after"), ERRORS)
def test_create_errors_map_to_the_service_kinds(
    api: respx.MockRouter,
    client: CMClient,
    response: httpx.Response,
    cls: type[ProviderError],
    kind: str,
    code: str | None,
    retry_after: float | None,
) -> None:
    api.post(REQUESTS).mock(return_value=response)

    with pytest.raises(cls) as caught:
        client.purchase(client.build_request(spec(), None))

    error = caught.value
    assert type(error) is cls
    assert (error.kind, error.provider_code, error.retry_after) == (kind, code, retry_after)
    assert error.status_code == response.status_code
    assert TOKEN not in str(error.as_dict())


def test_field_errors_reach_the_message(api: respx.MockRouter, client: CMClient) -> None:
    errors = {"quantity": ["must be 1..1000"], "numberType": ["unknown"]}
    api.post(REQUESTS).respond(400, json={"message": "Invalid", "errors": errors})

    with pytest.raises(PermanentProviderError) as caught:
        client.purchase(client.build_request(spec(), None))
    assert "quantity: must be 1..1000" in caught.value.message
    assert caught.value.provider_code == "quantity,numberType"


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (httpx.ConnectError("refused"), TransientProviderError),
        (httpx.ReadTimeout("no answer"), AmbiguousOutcome),
    ],
)
def test_transport_errors_tell_whether_the_request_left(
    api: respx.MockRouter, client: CMClient, exc: Exception, cls: type[ProviderError]
) -> None:
    api.post(REQUESTS).mock(side_effect=exc)

    with pytest.raises(ProviderError) as caught:
        client.purchase(client.build_request(spec(), None))
    assert type(caught.value) is cls


# -- fetch, cancel --------------------------------------------------------------------------


def test_fetch_reads_the_request(api: respx.MockRouter, client: CMClient) -> None:
    api.get(f"{REQUESTS}/{REQUEST_ID}").respond(
        200, json=request_object("Rejected", reason="none left")
    )

    result = client.fetch_request(REQUEST_ID, spec())

    assert (result.outcome, result.settled, result.reason) == ("failed", True, "none left")


def test_fetch_unknown_id_is_failed(api: respx.MockRouter, client: CMClient) -> None:
    api.get(f"{REQUESTS}/{REQUEST_ID}").respond(404, json={"message": "Number request not found"})

    with pytest.raises(PermanentProviderError) as caught:
        client.fetch_request(REQUEST_ID, spec())
    assert (caught.value.kind, caught.value.status_code) == ("failed", 404)


def test_cancel_returns_the_cancelled_request(api: respx.MockRouter, client: CMClient) -> None:
    route = api.delete(f"{REQUESTS}/{REQUEST_ID}").respond(200, json=request_object("Cancelled"))

    result = client.cancel_request(REQUEST_ID, spec())

    assert route.called
    assert (result.outcome, result.settled, result.request_id) == ("cancelled", True, REQUEST_ID)


def test_cancel_without_a_body_reads_the_request_back(
    api: respx.MockRouter, client: CMClient
) -> None:
    api.delete(f"{REQUESTS}/{REQUEST_ID}").respond(204)
    api.get(f"{REQUESTS}/{REQUEST_ID}").respond(200, json=request_object("Cancelled"))

    assert client.cancel_request(REQUEST_ID, spec()).outcome == "cancelled"


def test_cancel_of_a_final_request_answers_its_final_state(
    api: respx.MockRouter, client: CMClient
) -> None:
    refusal = {
        "message": "The number request cannot be cancelled.",
        "errors": {"status": ["final"]},
    }
    api.delete(f"{REQUESTS}/{REQUEST_ID}").respond(400, json=refusal)
    api.get(f"{REQUESTS}/{REQUEST_ID}").respond(200, json=request_object("Accepted", NUMBERS))

    result = client.cancel_request(REQUEST_ID, spec())

    assert result.outcome == "fulfilled"
    assert [n.number for n in result.numbers] == NUMBERS


def test_cancel_refused_while_pending_is_raised(api: respx.MockRouter, client: CMClient) -> None:
    api.delete(f"{REQUESTS}/{REQUEST_ID}").respond(
        400, json={"message": "no", "errors": {"id": ["x"]}}
    )
    api.get(f"{REQUESTS}/{REQUEST_ID}").respond(200, json=request_object("Pending"))

    with pytest.raises(PermanentProviderError):
        client.cancel_request(REQUEST_ID, spec())


def test_cancel_of_an_unknown_request_is_failed(api: respx.MockRouter, client: CMClient) -> None:
    api.delete(f"{REQUESTS}/{REQUEST_ID}").respond(
        404, json={"message": "Number request not found"}
    )

    with pytest.raises(PermanentProviderError) as caught:
        client.cancel_request(REQUEST_ID, spec())
    assert caught.value.status_code == 404


# -- reconcile ------------------------------------------------------------------------------


@pytest.mark.parametrize("wrap", [lambda items: items, lambda items: {"data": items}])
def test_reconcile_finds_the_request_carrying_our_reference(
    api: respx.MockRouter, client: CMClient, wrap: Any
) -> None:
    ours = request_object("Accepted", NUMBERS)
    others = [
        request_object(id=str(uuid.uuid4()), comment="[order:ord_other]"),
        request_object(id=str(uuid.uuid4()), comment=None),
        "junk",
    ]
    api.get(REQUESTS).respond(200, json=wrap([*others, ours]))
    order = spec()

    found = client.reconcile(
        order, client.build_request(order, None), NOW - dt.timedelta(seconds=5)
    )

    assert found is not None
    assert found.request_id == REQUEST_ID and found.outcome == "fulfilled"


def test_reconcile_prefers_the_newest_request_of_the_order(
    api: respx.MockRouter, client: CMClient
) -> None:
    earlier = (NOW - dt.timedelta(seconds=20)).isoformat()
    rejected = request_object("Rejected", id=str(uuid.uuid4()), created=earlier)
    api.get(REQUESTS).respond(200, json=[request_object("Pending"), rejected])
    order = spec()

    found = client.reconcile(
        order, client.build_request(order, None), NOW - dt.timedelta(seconds=30)
    )

    assert found is not None and found.request_id == REQUEST_ID


@pytest.mark.parametrize(
    "listed",
    [
        [],
        [request_object(comment="[order:ord_other]")],
        [request_object(comment=f"[order:{ORDER}x]")],
        # Created long before this attempt: an earlier attempt's request, not this one's.
        [request_object(created="2020-01-01T00:00:00Z")],
    ],
)
def test_reconcile_finds_nothing(
    api: respx.MockRouter, client: CMClient, listed: list[Any]
) -> None:
    api.get(REQUESTS).respond(200, json=listed)
    order = spec()

    assert client.reconcile(order, client.build_request(order, None), NOW) is None


def test_reconcile_list_failure_is_raised(api: respx.MockRouter, client: CMClient) -> None:
    api.get(REQUESTS).respond(503)
    order = spec()

    with pytest.raises(TransientProviderError):
        client.reconcile(order, client.build_request(order, None), NOW)


# -- against the sandbox over real HTTP ------------------------------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[SandboxServer]:
    with SandboxServer(port=0) as server:
        yield server


@pytest.fixture
def live_client(live: SandboxServer) -> Iterator[CMClient]:
    httpx.post(f"{live.url}/_sandbox/reset").raise_for_status()
    adapter = CMClient(settings(f"{live.url}/cm/voice-phonenumberrequestapi/v1"))
    yield adapter
    adapter.close()


def configure(live: SandboxServer, **changes: Any) -> None:
    httpx.post(f"{live.url}/_sandbox/config", json=changes).raise_for_status()


def test_sandbox_immediate_assignment(live_client: CMClient) -> None:
    order = spec(callback_url=None)

    result = live_client.purchase(live_client.build_request(order, None))

    assert (result.status, result.outcome, result.settled) == ("Accepted", "fulfilled", True)
    assert len(result.numbers) == 2
    assert all(n.number.startswith("+1201") for n in result.numbers)


def test_sandbox_pending_then_fetch_after_completion(
    live: SandboxServer, live_client: CMClient
) -> None:
    configure(live, cm_delay_s=0.2)
    order = spec(area_code="415", callback_url=None)
    started = dt.datetime.now(dt.UTC)

    created = live_client.purchase(live_client.build_request(order, None))

    assert (created.outcome, created.settled, created.numbers) == ("waiting", False, [])
    assert created.request_id is not None
    deadline = time.monotonic() + 5
    fetched = live_client.fetch_request(created.request_id, order)
    while not fetched.settled and time.monotonic() < deadline:
        time.sleep(0.05)
        fetched = live_client.fetch_request(created.request_id, order)
    assert (fetched.status, fetched.outcome) == ("Accepted", "fulfilled")
    assert len(fetched.numbers) == 2
    found = live_client.reconcile(order, live_client.build_request(order, None), started)
    assert found is not None and found.request_id == created.request_id


def test_sandbox_sparse_create_answer_is_found_by_reference(
    live: SandboxServer, live_client: CMClient
) -> None:
    configure(live, cm_sparse_201=True, cm_delay_s=30)

    created = live_client.purchase(live_client.build_request(spec(area_code="415"), None))

    assert created.request_id is not None
    assert live_client.fetch_request(created.request_id, spec()).status == "Pending"


def test_sandbox_cancel_and_unknown_status(live: SandboxServer, live_client: CMClient) -> None:
    configure(live, cm_delay_s=30)
    order = spec(area_code="415", callback_url=None)
    created = live_client.purchase(live_client.build_request(order, None))
    assert created.request_id is not None

    cancelled = live_client.cancel_request(created.request_id, order)
    assert (cancelled.status, cancelled.outcome) == ("Cancelled", "cancelled")

    other = live_client.purchase(live_client.build_request(spec(area_code="415"), None))
    assert other.request_id is not None
    httpx.post(
        f"{live.url}/_sandbox/cm/{other.request_id}/status", json={"status": "OnHold"}
    ).raise_for_status()
    held = live_client.fetch_request(other.request_id, order)
    assert (held.status, held.outcome, held.settled) == ("OnHold", "unknown", False)


def test_sandbox_validation_error_is_invalid(live_client: CMClient) -> None:
    body = live_client.build_request(spec(), None)
    body.pop("areaCode")

    with pytest.raises(PermanentProviderError) as caught:
        live_client.purchase(body)
    assert (caught.value.kind, caught.value.provider_code) == ("invalid", "areaCode")


def test_sandbox_wrong_token_is_auth(live: SandboxServer) -> None:
    adapter = CMClient(settings(f"{live.url}/cm/voice-phonenumberrequestapi/v1", token="nope"))

    with pytest.raises(PermanentProviderError) as caught:
        adapter.purchase(adapter.build_request(spec(), None))
    adapter.close()
    assert caught.value.kind == "auth"
