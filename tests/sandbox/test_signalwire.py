"""SignalWire over real HTTP: search, purchase (full schema), list, errors and auth."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import httpx
import pytest

from sandbox import SandboxServer
from tests.sandbox.conftest import CREDS, SIGNALWIRE_PREFIX, fresh_number, stats
from tests.seeds import required_fields

NUMBERS = "/phone_numbers"
SEARCH = "/phone_numbers/search"

# Every "required" property of PhoneNumberResponse, read from seed 002 itself.
REQUIRED = required_fields("002", "PhoneNumberResponse")


def search(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = client.get(SEARCH, params=params)
    assert response.status_code == 200
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def buy(client: httpx.Client, number: str) -> httpx.Response:
    return client.post(NUMBERS, json={"number": number})


def test_search_returns_fresh_numbers_in_the_area_code(signalwire_client: httpx.Client):
    first = search(signalwire_client, areacode="415", max_results=3)
    second = search(signalwire_client, areacode="415", max_results=3)

    numbers = [item["e164"] for item in first + second]
    assert len(first) == 3 and len(set(numbers)) == 6
    assert all(number.startswith("+1415") and len(number) == 12 for number in numbers)
    assert first[0]["number_type"] == "longcode" and first[0]["country_code"] == "US"
    assert set(first[0]) == {
        "e164",
        "number_type",
        "capabilities",
        "rate_center",
        "region",
        "country_code",
    }


def test_search_toll_free_gives_toll_free_numbers(signalwire_client: httpx.Client):
    found = search(signalwire_client, number_type="toll-free", max_results=2)

    assert [item["number_type"] for item in found] == ["toll-free", "toll-free"]
    assert all(item["e164"].startswith("+1833") for item in found)


def test_search_area_code_999_finds_nothing(signalwire_client: httpx.Client):
    assert search(signalwire_client, areacode="999") == []


@pytest.mark.parametrize(
    "params", [{"areacode": "41"}, {"number_type": "mobile"}, {"max_results": "0"}]
)
def test_search_rejects_bad_parameters(signalwire_client: httpx.Client, params: dict[str, str]):
    response = signalwire_client.get(SEARCH, params=params)

    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "invalid_parameter"


def test_purchase_answers_a_full_phone_number_response(
    signalwire_client: httpx.Client, control: httpx.Client
):
    candidate = search(signalwire_client, areacode="212", max_results=1)[0]["e164"]

    response = buy(signalwire_client, candidate)

    assert response.status_code == 200
    body = response.json()
    assert [key for key in REQUIRED if key not in body] == []
    assert body["number"] == candidate
    assert body["number_type"] == "longcode"
    assert set(body["capabilities"]) <= {"voice", "sms", "mms", "fax"}
    assert body["call_receive_mode"] in ("voice", "fax")
    datetime.fromisoformat(body["created_at"])
    assert stats(control, "signalwire")["numbers"] == [candidate]


def test_stale_candidate_is_no_longer_available_and_the_next_one_is(
    signalwire_client: httpx.Client,
):
    stale, fresh = search(signalwire_client, areacode="200", max_results=2)

    refused = buy(signalwire_client, stale["e164"])

    assert stale["e164"].endswith("0000")
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["code"] == "phone_number_not_available"
    assert buy(signalwire_client, fresh["e164"]).status_code == 200


def test_number_ending_0000_is_not_available(
    signalwire_client: httpx.Client, control: httpx.Client
):
    response = buy(signalwire_client, "+14155550000")

    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert set(error) == {"detail", "status", "title", "code"}
    assert error["code"] == "phone_number_not_available" and error["status"] == "422"
    assert stats(control, "signalwire")["rented"] == 0


def test_buying_an_owned_number_again_is_422(
    signalwire_client: httpx.Client, control: httpx.Client
):
    number = fresh_number()

    assert buy(signalwire_client, number).status_code == 200
    again = buy(signalwire_client, number)

    assert again.status_code == 422
    assert again.json()["errors"][0]["code"] == "phone_number_not_available"
    assert stats(control, "signalwire")["rented"] == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "missing_required_parameter"),
        ({"number": "4155550123"}, "invalid_parameter"),
        ({"number": 14155550123}, "invalid_parameter"),
        ({"number": "+1 415 555 0123"}, "invalid_parameter"),
    ],
)
def test_purchase_validation_errors_are_422(
    signalwire_client: httpx.Client, body: dict[str, Any], code: str
):
    response = signalwire_client.post(NUMBERS, json=body)

    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == code


@pytest.mark.parametrize("raw", [b"{oops", b"[]", b""])
def test_malformed_body_is_400_bad_request(signalwire_client: httpx.Client, raw: bytes):
    response = signalwire_client.post(
        NUMBERS, content=raw, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json() == {"error": "Bad Request"}


def test_list_owned_numbers_with_filter(signalwire_client: httpx.Client):
    first, second = fresh_number(), fresh_number()
    buy(signalwire_client, first)
    buy(signalwire_client, second)

    everything = signalwire_client.get(NUMBERS).json()
    filtered = signalwire_client.get(NUMBERS, params={"filter_number": first}).json()

    assert [item["number"] for item in everything["data"]] == [first, second]
    assert [item["number"] for item in filtered["data"]] == [first]
    assert set(everything["links"]) == {"self", "first", "next", "prev"}
    assert everything["links"]["next"] is None


def test_list_pages_follow_links(signalwire_client: httpx.Client):
    bought = [fresh_number() for _ in range(3)]
    for number in bought:
        buy(signalwire_client, number)

    page = signalwire_client.get(NUMBERS, params={"page_size": 2}).json()
    rest = httpx.get(page["links"]["next"], auth=signalwire_client.auth).json()

    assert [item["number"] for item in page["data"] + rest["data"]] == bought
    assert rest["links"]["next"] is None


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        _basic(CREDS.signalwire_project_id, "wrong"),
        _basic("other-project", CREDS.signalwire_api_token),
        f"Bearer {CREDS.signalwire_api_token}",
    ],
)
def test_bad_credentials_get_401(
    fresh_sandbox: SandboxServer, control: httpx.Client, authorization: str | None
):
    headers = {} if authorization is None else {"Authorization": authorization}
    url = fresh_sandbox.url + SIGNALWIRE_PREFIX + NUMBERS

    response = httpx.post(url, json={"number": fresh_number()}, headers=headers)

    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized"}
    assert stats(control, "signalwire")["rent_calls"] == 0
