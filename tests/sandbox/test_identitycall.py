"""IdentityCall over real HTTP: available numbers, purchase, list, seed errors and auth."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox import SandboxServer
from tests.sandbox.conftest import CREDS, IDENTITYCALL_PREFIX, fresh_number, stats

PURCHASE = "/virtual_numbers/purchase"


def buy(client: httpx.Client, **fields: Any) -> httpx.Response:
    return client.post(PURCHASE, json={"phone_number": fresh_number(), **fields})


def test_available_lists_fresh_numbers(identitycall_client: httpx.Client):
    first = identitycall_client.get("/virtual_numbers/available", params={"country": "US"})
    second = identitycall_client.get("/virtual_numbers/available")

    rows = first.json()["data"] + second.json()["data"]
    assert first.status_code == 200 and len(first.json()["data"]) == 5
    assert len({row["phone_number"] for row in rows}) == 10
    assert rows[0] == {
        "phone_number": rows[0]["phone_number"],
        "country_code": "US",
        "number_type": "local",
        "upfront_cost": "1.00",
        "monthly_cost": "1.15",
    }


def test_available_toll_free_and_countries_without_stock(identitycall_client: httpx.Client):
    toll_free = identitycall_client.get(
        "/virtual_numbers/available", params={"number_type": "toll-free"}
    ).json()["data"]
    elsewhere = identitycall_client.get("/virtual_numbers/available", params={"country": "DE"})

    assert all(row["phone_number"].startswith("+1833") for row in toll_free)
    assert elsewhere.json() == {"data": []}


@pytest.mark.parametrize("params", [{"country": "usa"}, {"number_type": "pager"}])
def test_available_rejects_bad_filters(identitycall_client: httpx.Client, params: dict[str, str]):
    response = identitycall_client.get("/virtual_numbers/available", params=params)

    assert response.status_code == 422
    assert "error" in response.json()


def test_purchase_answers_201_and_the_number_is_listed(
    identitycall_client: httpx.Client, control: httpx.Client
):
    candidate = identitycall_client.get("/virtual_numbers/available").json()["data"][0]

    response = identitycall_client.post(
        PURCHASE,
        json={
            "phone_number": candidate["phone_number"],
            "country_code": "US",
            "number_type": "local",
            "name": "US Sales Line",
            "requirement_group_id": 12,
            "upfront_cost": "1.00",
            "monthly_cost": "1.15",
        },
    )

    assert response.status_code == 201
    data = response.json()["data"]
    assert isinstance(data["id"], int)
    assert data["phone_number"] == candidate["phone_number"]
    assert data["name"] == "US Sales Line" and data["active"] is True
    assert data["operators"] == [] and data["operators_count"] == 0
    listed = identitycall_client.get("/virtual_numbers").json()["data"]
    assert [row["phone_number"] for row in listed] == [candidate["phone_number"]]
    assert stats(control, "identitycall")["rented"] == 1


def test_unapproved_requirement_group_is_422(
    identitycall_client: httpx.Client, control: httpx.Client
):
    response = buy(identitycall_client, requirement_group_id=13)

    assert response.status_code == 422
    assert response.json() == {"error": "Requirement group must be approved before purchasing"}
    assert stats(control, "identitycall")["rented"] == 0


@pytest.mark.parametrize(
    "body", [{}, {"phone_number": ""}, {"phone_number": "   "}, {"phone_number": None}]
)
def test_missing_or_blank_phone_number_is_422(
    identitycall_client: httpx.Client, body: dict[str, Any]
):
    response = identitycall_client.post(PURCHASE, json=body)

    assert response.status_code == 422
    assert response.json() == {"error": "phone_number is required"}


def test_number_ending_0000_is_no_longer_available(identitycall_client: httpx.Client):
    response = identitycall_client.post(PURCHASE, json={"phone_number": "+16465550000"})

    assert response.status_code == 422
    assert response.json() == {"error": "Number is no longer available"}


def test_buying_an_owned_number_again_is_no_longer_available(
    identitycall_client: httpx.Client, control: httpx.Client
):
    number = fresh_number()

    first = identitycall_client.post(PURCHASE, json={"phone_number": number})
    again = identitycall_client.post(PURCHASE, json={"phone_number": number})

    assert first.status_code == 201
    assert again.status_code == 422
    assert again.json() == {"error": "Number is no longer available"}
    assert stats(control, "identitycall")["rented"] == 1


@pytest.mark.parametrize(
    ("fields", "word"),
    [
        ({"phone_number": "6465550123"}, "phone_number"),
        ({"phone_number": 16465550123}, "phone_number"),
        ({"requirement_group_id": "13"}, "requirement_group_id"),
        ({"requirement_group_id": True}, "requirement_group_id"),
        ({"country_code": "usa"}, "country_code"),
        ({"number_type": "pager"}, "number_type"),
        ({"name": 7}, "name"),
        ({"upfront_cost": 1.0}, "upfront_cost"),
        ({"monthly_cost": "cheap"}, "monthly_cost"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(
    identitycall_client: httpx.Client, control: httpx.Client, fields: dict[str, Any], word: str
):
    response = buy(identitycall_client, **fields)

    assert response.status_code == 422
    assert word in response.json()["error"]
    assert stats(control, "identitycall")["rented"] == 0


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Basic {CREDS.identitycall_api_key}", CREDS.identitycall_api_key],
)
def test_bad_credentials_get_401(
    fresh_sandbox: SandboxServer, control: httpx.Client, authorization: str | None
):
    headers = {} if authorization is None else {"Authorization": authorization}
    url = fresh_sandbox.url + IDENTITYCALL_PREFIX + PURCHASE

    response = httpx.post(url, json={"phone_number": fresh_number()}, headers=headers)

    assert response.status_code == 401
    assert "error" in response.json()
    assert CREDS.identitycall_api_key not in response.text
    assert stats(control, "identitycall")["rent_calls"] == 0
