"""CM.com over real HTTP: immediate and delayed requests, callbacks, cancel, errors, auth."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from sandbox import SandboxServer
from tests.sandbox.conftest import CM_PREFIX, CREDS, PROFILE_ID, CallbackReceiver, stats

REQUEST_FIELDS = {
    "id",
    "accountId",
    "status",
    "reason",
    "companyProfileId",
    "quantity",
    "rangeSize",
    "numberType",
    "areaCode",
    "city",
    "region",
    "comment",
    "callbackUrl",
    "start",
    "phoneNumbers",
    "validFrom",
    "validTo",
    "created",
    "updated",
}
DELAY_S = 0.2


def create(client: httpx.Client, **fields: Any) -> httpx.Response:
    body = {"companyProfileId": PROFILE_ID, "quantity": 1, "numberType": "LOCAL", **fields}
    return client.post("/numberrequests", json=body)


@pytest.fixture
def quick(control: httpx.Client) -> None:
    control.post("/config", json={"cm_delay_s": DELAY_S}).raise_for_status()


def test_area_code_201_assigns_numbers_at_once(cm_client: httpx.Client, control: httpx.Client):
    response = create(cm_client, areaCode="201", quantity=2, rangeSize=3, comment="ref-1")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == REQUEST_FIELDS
    assert body["status"] == "Accepted" and body["accountId"] == CREDS.cm_account_id
    numbers = body["phoneNumbers"]
    assert len(numbers) == 6 and body["start"] == numbers[0]
    assert all(number.startswith("+1201") for number in numbers)
    first_range = [int(number[-4:]) for number in numbers[:3]]
    assert first_range == list(range(first_range[0], first_range[0] + 3))
    assert cm_client.get(f"/numberrequests/{body['id']}").json() == body
    assert stats(control, "cm")["rented"] == 6


def test_delayed_request_is_accepted_later_with_a_callback(
    cm_client: httpx.Client, control: httpx.Client, receiver: CallbackReceiver, quick: None
):
    created = create(cm_client, areaCode="415", quantity=2, callbackUrl=receiver.url + "/hook/t1")

    assert created.status_code == 201
    assert created.json()["status"] == "Pending"
    assert created.json()["phoneNumbers"] == [] and created.json()["start"] is None
    [delivery] = receiver.wait_for(1)
    assert delivery["path"] == "/hook/t1"
    assert delivery["body"]["id"] == created.json()["id"]
    assert delivery["body"]["status"] == "Accepted"
    assert len(delivery["body"]["phoneNumbers"]) == 2
    assert cm_client.get(f"/numberrequests/{created.json()['id']}").json() == delivery["body"]
    attempts = stats(control, "cm")["callbacks"]
    assert [(a["status"], a["status_code"]) for a in attempts] == [("Accepted", 200)]


@pytest.mark.parametrize(
    ("area_code", "quantity", "status", "assigned"),
    [
        ("666", 2, "Rejected", 0),
        ("777", 4, "Accepted", 2),
        ("777", 1, "Accepted", 1),
        ("333", 1, "OnHold", 0),
        ("415", 3, "Accepted", 3),
    ],
)
def test_delayed_outcomes_by_area_code(
    cm_client: httpx.Client,
    receiver: CallbackReceiver,
    quick: None,
    area_code: str,
    quantity: int,
    status: str,
    assigned: int,
):
    create(cm_client, areaCode=area_code, quantity=quantity, callbackUrl=receiver.url)

    [delivery] = receiver.wait_for(1)

    assert delivery["body"]["status"] == status
    assert len(delivery["body"]["phoneNumbers"]) == assigned
    if status != "Accepted" or assigned < quantity:
        assert delivery["body"]["reason"]


def test_cancel_pending_request_sends_cancelled_and_nothing_after(
    cm_client: httpx.Client, control: httpx.Client, receiver: CallbackReceiver, quick: None
):
    created = create(cm_client, areaCode="415", callbackUrl=receiver.url).json()

    cancelled = cm_client.delete(f"/numberrequests/{created['id']}")

    assert cancelled.status_code == 200 and cancelled.json()["status"] == "Cancelled"
    assert receiver.wait_for(1)[0]["body"]["status"] == "Cancelled"
    time.sleep(DELAY_S * 2)
    assert len(receiver.deliveries) == 1
    assert cm_client.get(f"/numberrequests/{created['id']}").json()["status"] == "Cancelled"
    assert stats(control, "cm")["rented"] == 0


@pytest.mark.parametrize("area_code", ["201", "666"])
def test_cancel_of_a_finalized_request_is_400(
    cm_client: httpx.Client, control: httpx.Client, area_code: str
):
    control.post("/config", json={"cm_delay_s": 0}).raise_for_status()
    created = create(cm_client, areaCode=area_code).json()
    deadline = time.monotonic() + 5
    while cm_client.get(f"/numberrequests/{created['id']}").json()["status"] == "Pending":
        assert time.monotonic() < deadline
        time.sleep(0.02)

    response = cm_client.delete(f"/numberrequests/{created['id']}")

    assert response.status_code == 400
    assert "status" in response.json()["errors"]


def test_list_returns_every_request_oldest_first(cm_client: httpx.Client):
    ids = [create(cm_client, areaCode="201", comment=f"ref-{i}").json()["id"] for i in range(3)]

    listed = cm_client.get("/numberrequests").json()

    assert [item["id"] for item in listed] == ids
    assert [item["comment"] for item in listed] == ["ref-0", "ref-1", "ref-2"]


def test_sparse_201_hides_the_id_until_listed(cm_client: httpx.Client, control: httpx.Client):
    control.post("/config", json={"cm_sparse_201": True}).raise_for_status()

    body = create(cm_client, areaCode="201", comment="order-42").json()
    [listed] = cm_client.get("/numberrequests").json()

    assert body["id"] is None and body["start"] is None and body["status"] == "Accepted"
    assert listed["comment"] == "order-42" and listed["id"]


def test_city_instead_of_area_code_is_accepted(cm_client: httpx.Client):
    response = create(cm_client, city="Springfield", region="IL")

    assert response.status_code == 201
    assert response.json()["status"] == "Pending"


def test_field_names_match_case_insensitively(cm_client: httpx.Client):
    body = {"CompanyProfileID": PROFILE_ID, "QUANTITY": 1, "numbertype": "LOCAL", "AreaCode": "201"}

    response = cm_client.post("/numberrequests", json=body)

    assert response.status_code == 201
    assert response.json()["status"] == "Accepted"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"companyProfileId": None}, "companyProfileId"),
        ({"companyProfileId": "not-a-uuid"}, "companyProfileId"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": 1001}, "quantity"),
        ({"quantity": "5"}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"rangeSize": 0}, "rangeSize"),
        ({"quantity": 500, "rangeSize": 3}, "rangeSize"),
        ({"numberType": "FIXED"}, "numberType"),
        ({"numberType": None}, "numberType"),
        ({"areaCode": None}, "areaCode"),
        ({"areaCode": "", "city": ""}, "areaCode"),
        ({"areaCode": "abc"}, "areaCode"),
        ({"callbackUrl": "ftp://example.com/x"}, "callbackUrl"),
        ({"callbackUrl": "not a url"}, "callbackUrl"),
        ({"comment": 5}, "comment"),
    ],
)
def test_invalid_fields_get_400_with_field_errors(
    cm_client: httpx.Client, control: httpx.Client, fields: dict[str, Any], field: str
):
    response = create(cm_client, **{"areaCode": "201", **fields})

    assert response.status_code == 400
    body = response.json()
    assert body["message"] and isinstance(body["errors"][field], list)
    assert stats(control, "cm")["requests"] == []


def test_body_that_is_not_json_is_400(cm_client: httpx.Client):
    response = cm_client.post(
        "/numberrequests", content=b"{", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert "body" in response.json()["errors"]


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_bad_product_token_gets_401(fresh_sandbox: SandboxServer, token: str | None):
    headers = {} if token is None else {"X-CM-PRODUCTTOKEN": token}

    response = httpx.get(fresh_sandbox.url + CM_PREFIX + "/numberrequests", headers=headers)

    assert response.status_code == 401
    assert CREDS.cm_product_token not in response.text


def test_unknown_account_and_unknown_request_are_404(
    fresh_sandbox: SandboxServer, cm_client: httpx.Client
):
    headers = {"X-CM-PRODUCTTOKEN": CREDS.cm_product_token}
    other = fresh_sandbox.url + "/cm/voice-phonenumberrequestapi/v1/" + PROFILE_ID

    assert httpx.get(other + "/numberrequests", headers=headers).status_code == 404
    unknown = "/numberrequests/00000000-0000-0000-0000-000000000000"
    assert cm_client.get(unknown).status_code == 404
    assert cm_client.delete(unknown).status_code == 404


@pytest.mark.parametrize("status", ["Frozen", "Rejected", "Accepted"])
def test_control_sets_any_status_and_calls_back_before_answering(
    cm_client: httpx.Client, control: httpx.Client, receiver: CallbackReceiver, status: str
):
    created = create(cm_client, areaCode="415", quantity=2, callbackUrl=receiver.url).json()

    response = control.post(f"/cm/{created['id']}/status", json={"status": status, "reason": "x"})

    assert response.status_code == 200
    assert response.json()["callback"]["status_code"] == 200
    assert [d["body"]["status"] for d in receiver.deliveries] == [status]
    fetched = cm_client.get(f"/numberrequests/{created['id']}").json()
    assert fetched["status"] == status and fetched["reason"] == "x"
    assert len(fetched["phoneNumbers"]) == (2 if status == "Accepted" else 0)


def test_control_status_validates_input(control: httpx.Client, cm_client: httpx.Client):
    created = create(cm_client, areaCode="415").json()

    assert control.post(f"/cm/{created['id']}/status", json={"status": ""}).status_code == 400
    assert control.post("/cm/nope/status", json={"status": "Accepted"}).status_code == 404


def test_failing_callbacks_are_recorded_and_harmless(
    cm_client: httpx.Client, control: httpx.Client, quick: None
):
    broken = CallbackReceiver(status=500)
    gone = CallbackReceiver()
    gone.close()
    create(cm_client, areaCode="415", callbackUrl=broken.url)
    create(cm_client, areaCode="415", callbackUrl=gone.url)

    try:
        broken.wait_for(1)
        deadline = time.monotonic() + 5
        while len(stats(control, "cm")["callbacks"]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        broken.close()

    attempts = {a["url"]: a for a in stats(control, "cm")["callbacks"]}
    assert attempts[broken.url]["status_code"] == 500
    assert attempts[gone.url]["status_code"] is None and attempts[gone.url]["error"]
    assert cm_client.get("/numberrequests").status_code == 200
