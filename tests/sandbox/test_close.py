"""Close over real HTTP: renting, listing, magic prefixes, validation and auth."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from sandbox import SandboxServer
from tests.sandbox.conftest import CLOSE_PREFIX, CREDS, stats

RENT = "/phone_number/request/internal/"


def rent(client: httpx.Client, **fields: Any) -> httpx.Response:
    return client.post(RENT, json={"country": "US", "sharing": "personal", **fields})


def test_rent_answers_201_with_the_new_number(close_client: httpx.Client, control: httpx.Client):
    response = rent(close_client, prefix="415", sharing="group")

    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("phon_")
    assert body["number"].startswith("+1415") and len(body["number"]) == 12
    assert body["is_group_number"] is True
    assert body["supports_sms"] is True
    assert stats(control, "close") == {
        "rent_calls": 1,
        "rented": 1,
        "numbers": [body["number"]],
        "owned": 1,
        "list_calls": 0,
        "faults_pending": 0,
    }


def test_rent_without_prefix_still_gives_a_nanp_number(close_client: httpx.Client):
    number = rent(close_client).json()["number"]

    assert number.startswith("+1") and number[2:].isdigit() and len(number) == 12


def test_rented_numbers_are_unique_and_listed_in_order(close_client: httpx.Client):
    numbers = [rent(close_client, prefix="212").json()["number"] for _ in range(5)]

    listed = close_client.get("/phone_number/").json()
    assert len(set(numbers)) == 5
    assert [item["number"] for item in listed["data"]] == numbers
    assert listed["has_more"] is False


def test_list_filters_by_exact_number(close_client: httpx.Client):
    numbers = [rent(close_client, prefix="312").json()["number"] for _ in range(3)]

    found = close_client.get("/phone_number/", params={"number": numbers[1]}).json()
    missing = close_client.get("/phone_number/", params={"number": "+13125559999"}).json()

    assert [item["number"] for item in found["data"]] == [numbers[1]]
    assert missing == {"has_more": False, "data": []}


def test_list_pages_with_skip_and_limit(close_client: httpx.Client):
    numbers = [rent(close_client).json()["number"] for _ in range(4)]

    first = close_client.get("/phone_number/", params={"_skip": 0, "_limit": 3}).json()
    last = close_client.get("/phone_number/", params={"_skip": 3, "_limit": 3}).json()

    assert [item["number"] for item in first["data"]] == numbers[:3] and first["has_more"]
    assert [item["number"] for item in last["data"]] == numbers[3:] and not last["has_more"]


@pytest.mark.parametrize("params", [{"_limit": "0"}, {"_limit": "abc"}, {"_skip": "-1"}])
def test_list_rejects_bad_paging(close_client: httpx.Client, params: dict[str, str]):
    response = close_client.get("/phone_number/", params=params)

    assert response.status_code == 400
    assert set(response.json()["field-errors"]) == set(params)


def test_empty_201_body_when_configured(close_client: httpx.Client, control: httpx.Client):
    control.post("/config", json={"close_empty_201": True}).raise_for_status()

    response = rent(close_client, prefix="415")

    assert response.status_code == 201
    assert response.json() == {}
    listed = close_client.get("/phone_number/").json()["data"]
    assert len(listed) == 1 and listed[0]["number"].startswith("+1415")


@pytest.mark.parametrize(
    ("prefix", "status", "message"),
    [
        ("555", "has-voice-only", None),
        ("666", "needs-more-info", None),
        ("402", "billing-error", None),
        ("999", "error", "No numbers available for this prefix"),
    ],
)
def test_magic_prefixes_refuse_with_documented_status(
    close_client: httpx.Client,
    control: httpx.Client,
    prefix: str,
    status: str,
    message: str | None,
):
    response = rent(close_client, prefix=prefix)

    assert response.status_code == 400
    assert response.json()["status"] == status
    assert response.json()["error"]
    assert message is None or response.json()["error"] == message
    assert stats(control, "close")["rented"] == 0
    assert stats(control, "close")["rent_calls"] == 1


def test_voice_only_prefix_rents_when_sms_is_off(close_client: httpx.Client):
    response = rent(close_client, prefix="555", with_sms=False)

    assert response.status_code == 201
    assert response.json()["number"].startswith("+1555")
    assert response.json()["supports_sms"] is False


def test_country_without_stock_answers_error_status(close_client: httpx.Client):
    response = rent(close_client, country="GB")

    assert response.status_code == 400
    assert response.json()["status"] == "error"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sharing": "personal"}, "country"),
        ({"country": "USA", "sharing": "personal"}, "country"),
        ({"country": 1, "sharing": "personal"}, "country"),
        ({"country": "US"}, "sharing"),
        ({"country": "US", "sharing": "team"}, "sharing"),
        ({"country": "US", "sharing": "personal", "prefix": "415555"}, "prefix"),
        ({"country": "US", "sharing": "personal", "prefix": 415}, "prefix"),
        ({"country": "US", "sharing": "personal", "prefix": "41a"}, "prefix"),
        ({"country": "US", "sharing": "personal", "carrier_type": "satellite"}, "carrier_type"),
        ({"country": "US", "sharing": "personal", "with_mms": True}, "with_mms"),
        ({"country": "US", "sharing": "personal", "with_mms": True, "with_sms": False}, "with_mms"),
        ({"country": "US", "sharing": "personal", "with_sms": "yes"}, "with_sms"),
        ({"country": "US", "sharing": "personal", "bundle_id": 5}, "bundle_id"),
    ],
)
def test_invalid_input_gets_field_errors(
    close_client: httpx.Client, control: httpx.Client, body: dict[str, Any], field: str
):
    response = close_client.post(RENT, json=body)

    assert response.status_code == 400
    assert field in response.json()["field-errors"]
    assert stats(control, "close")["rented"] == 0


def test_every_documented_optional_field_is_accepted(close_client: httpx.Client):
    response = rent(
        close_client,
        prefix="41555",
        carrier_type=None,
        with_sms=True,
        with_mms=True,
        bundle_id="bund_1",
    )

    assert response.status_code == 201
    assert response.json()["number"].startswith("+141555")


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]"])
def test_body_that_is_not_a_json_object_is_400(close_client: httpx.Client, raw: bytes):
    response = close_client.post(RENT, content=raw, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert "error" in response.json()


def test_bearer_access_token_is_accepted(fresh_sandbox: SandboxServer):
    response = httpx.post(
        fresh_sandbox.url + CLOSE_PREFIX + RENT,
        json={"country": "US", "sharing": "personal"},
        headers={"Authorization": f"Bearer {CREDS.close_access_token}"},
    )

    assert response.status_code == 201


def _basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        _basic("wrong-key"),
        _basic("", CREDS.close_api_key),
        f"Bearer {CREDS.close_api_key}",
        "Bearer wrong-token",
        "Token sandbox-close-key",
    ],
)
def test_bad_credentials_get_401_and_rent_nothing(
    fresh_sandbox: SandboxServer, control: httpx.Client, authorization: str | None
):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.post(
        fresh_sandbox.url + CLOSE_PREFIX + RENT,
        json={"country": "US", "sharing": "personal"},
        headers=headers,
    )

    assert response.status_code == 401
    assert "error" in response.json()
    assert CREDS.close_api_key not in response.text
    assert stats(control, "close")["rent_calls"] == 0
