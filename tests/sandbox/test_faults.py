"""Faults from the control API, per provider, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.sandbox.conftest import PROFILE_ID, fresh_number, stats

PROVIDERS = ("close", "signalwire", "identitycall", "cm")
SUCCESS = {"close": 201, "signalwire": 200, "identitycall": 201, "cm": 201}
ERROR_KEY = {"close": "error", "signalwire": "error", "identitycall": "error", "cm": "message"}


def _purchase_close(client: httpx.Client) -> httpx.Response:
    body = {"country": "US", "sharing": "personal", "prefix": "415"}
    return client.post("/phone_number/request/internal/", json=body)


def _purchase_signalwire(client: httpx.Client) -> httpx.Response:
    return client.post("/phone_numbers", json={"number": fresh_number()})


def _purchase_identitycall(client: httpx.Client) -> httpx.Response:
    return client.post("/virtual_numbers/purchase", json={"phone_number": fresh_number()})


def _purchase_cm(client: httpx.Client) -> httpx.Response:
    body = {"companyProfileId": PROFILE_ID, "quantity": 1, "numberType": "LOCAL", "areaCode": "201"}
    return client.post("/numberrequests", json=body)


PURCHASE: dict[str, Callable[[httpx.Client], httpx.Response]] = {
    "close": _purchase_close,
    "signalwire": _purchase_signalwire,
    "identitycall": _purchase_identitycall,
    "cm": _purchase_cm,
}
LIST_PATH = {
    "close": "/phone_number/",
    "signalwire": "/phone_numbers/search",
    "identitycall": "/virtual_numbers",
    "cm": "/numberrequests",
}


@pytest.fixture
def clients(
    close_client: httpx.Client,
    signalwire_client: httpx.Client,
    identitycall_client: httpx.Client,
    cm_client: httpx.Client,
) -> dict[str, httpx.Client]:
    return {
        "close": close_client,
        "signalwire": signalwire_client,
        "identitycall": identitycall_client,
        "cm": cm_client,
    }


def queue(control: httpx.Client, provider: str, *faults: dict[str, Any]) -> None:
    response = control.post("/faults", json={"provider": provider, "faults": list(faults)})
    assert response.status_code == 200, response.text


def purchase(clients: dict[str, httpx.Client], provider: str) -> httpx.Response:
    return PURCHASE[provider](clients[provider])


@pytest.mark.parametrize("status", [500, 502, 503, 408])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_status_fault_answers_in_provider_format_then_recovers(
    clients: dict[str, httpx.Client], control: httpx.Client, provider: str, status: int
):
    queue(control, provider, {"kind": "status", "status": status})

    failed = purchase(clients, provider)
    recovered = purchase(clients, provider)

    assert failed.status_code == status
    assert ERROR_KEY[provider] in failed.json()
    assert recovered.status_code == SUCCESS[provider]
    assert stats(control, provider)["rent_calls"] == 2
    assert stats(control, provider)["rented"] == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rate_limit_fault_carries_the_retry_hint(
    clients: dict[str, httpx.Client], control: httpx.Client, provider: str
):
    queue(control, provider, {"kind": "status", "status": 429, "retry_after": 1.5})

    response = purchase(clients, provider)

    assert response.status_code == 429
    if provider == "close":
        assert response.headers["RateLimit"] == "limit=40, remaining=0, reset=1.5"
        assert response.json()["error"]["rate_reset"] == 1.5
    else:
        assert response.headers["Retry-After"] == "1.5"
    assert stats(control, provider)["rented"] == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rate_limit_without_hint_sends_no_hint(
    clients: dict[str, httpx.Client], control: httpx.Client, provider: str
):
    queue(control, provider, {"kind": "status", "status": 429, "retry_after": None})

    response = purchase(clients, provider)

    assert response.status_code == 429
    assert "Retry-After" not in response.headers and "RateLimit" not in response.headers


@pytest.mark.parametrize("provider", PROVIDERS)
def test_drop_after_rent_rents_and_breaks_the_response(
    clients: dict[str, httpx.Client], control: httpx.Client, provider: str
):
    queue(control, provider, {"kind": "drop_after_rent"})

    with pytest.raises(httpx.TransportError):
        purchase(clients, provider)

    assert stats(control, provider)["rented"] == 1
    assert stats(control, provider)["rent_calls"] == 1
    assert purchase(clients, provider).status_code == SUCCESS[provider]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_reset_before_breaks_the_connection_without_renting(
    clients: dict[str, httpx.Client], control: httpx.Client, provider: str
):
    queue(control, provider, {"kind": "reset_before"})

    with pytest.raises(httpx.TransportError):
        purchase(clients, provider)

    assert stats(control, provider)["rented"] == 0
    assert stats(control, provider)["rent_calls"] == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_delay_after_rent_times_the_client_out_with_the_number_rented(
    clients: dict[str, httpx.Client], control: httpx.Client, provider: str
):
    queue(control, provider, {"kind": "delay_after_rent", "seconds": 1.0})
    impatient = httpx.Client(
        base_url=clients[provider].base_url,
        auth=clients[provider].auth,
        headers=clients[provider].headers,
        timeout=0.3,
    )

    with impatient, pytest.raises(httpx.ReadTimeout):
        purchase({provider: impatient}, provider)

    assert stats(control, provider)["rented"] == 1


@pytest.mark.parametrize("provider", ["close", "cm"])
def test_delay_fault_waits_then_answers_normally(
    clients: dict[str, httpx.Client], control: httpx.Client, provider: str
):
    queue(control, provider, {"kind": "delay", "seconds": 0.3})

    started = time.monotonic()
    response = purchase(clients, provider)

    assert time.monotonic() - started >= 0.3
    assert response.status_code == SUCCESS[provider]


def test_faults_are_consumed_in_order(clients: dict[str, httpx.Client], control: httpx.Client):
    queue(control, "close", {"kind": "status", "status": 503}, {"kind": "status", "status": 500})

    codes = [purchase(clients, "close").status_code for _ in range(3)]

    assert codes == [503, 500, 201]
    assert stats(control, "close")["faults_pending"] == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_purchase_faults_leave_list_calls_alone(
    clients: dict[str, httpx.Client], control: httpx.Client, provider: str
):
    queue(control, provider, {"kind": "status", "status": 500})

    listed = clients[provider].get(LIST_PATH[provider])

    assert listed.status_code == 200
    assert purchase(clients, provider).status_code == 500


@pytest.mark.parametrize("provider", PROVIDERS)
def test_list_faults_hit_only_list_calls(
    clients: dict[str, httpx.Client], control: httpx.Client, provider: str
):
    queue(control, provider, {"kind": "status", "status": 503, "on": "list"})

    bought = purchase(clients, provider)
    listed = clients[provider].get(LIST_PATH[provider])
    again = clients[provider].get(LIST_PATH[provider])

    assert bought.status_code == SUCCESS[provider]
    assert (listed.status_code, again.status_code) == (503, 200)


def test_drop_on_list_breaks_a_list_call(clients: dict[str, httpx.Client], control: httpx.Client):
    purchase(clients, "close")
    queue(control, "close", {"kind": "drop_after_rent", "on": "list"})

    with pytest.raises(httpx.TransportError):
        clients["close"].get("/phone_number/")

    assert clients["close"].get("/phone_number/").status_code == 200


def test_transient_rate_one_fails_every_purchase_but_no_list(
    clients: dict[str, httpx.Client], control: httpx.Client
):
    control.post("/config", json={"transient_rate": 1.0}).raise_for_status()

    codes = [purchase(clients, "identitycall").status_code for _ in range(3)]

    assert codes == [503, 503, 503]
    assert clients["identitycall"].get("/virtual_numbers").status_code == 200
    assert stats(control, "identitycall")["rented"] == 0


def _transient_pattern(clients: dict[str, httpx.Client], control: httpx.Client) -> list[int]:
    control.post("/reset").raise_for_status()
    control.post("/config", json={"transient_rate": 0.5, "seed": 7}).raise_for_status()
    return [purchase(clients, "close").status_code for _ in range(12)]


def test_transient_rate_is_seeded_and_reproducible(
    clients: dict[str, httpx.Client], control: httpx.Client
):
    first = _transient_pattern(clients, control)
    second = _transient_pattern(clients, control)

    assert first == second
    assert set(first) == {201, 503}


def test_latency_applies_to_provider_calls_only(
    clients: dict[str, httpx.Client], control: httpx.Client
):
    control.post("/config", json={"latency_ms": 300}).raise_for_status()

    started = time.monotonic()
    clients["signalwire"].get("/phone_numbers")
    provider_elapsed = time.monotonic() - started
    started = time.monotonic()
    control.get("/stats")
    control_elapsed = time.monotonic() - started

    assert provider_elapsed >= 0.3
    assert control_elapsed < 0.3


@pytest.mark.parametrize(
    "body",
    [
        {"provider": "twilio", "faults": [{"kind": "status", "status": 500}]},
        {"provider": "close", "faults": []},
        {"provider": "close", "faults": "status"},
        {"provider": "close", "faults": [{"kind": "explode"}]},
        {"provider": "close", "faults": [{"kind": "status", "status": 200}]},
        {"provider": "close", "faults": [{"kind": "status", "status": "500"}]},
        {"provider": "close", "faults": [{"kind": "delay", "seconds": -1}]},
        {"provider": "close", "faults": [{"kind": "delay", "seconds": True}]},
        {"provider": "close", "faults": [{"kind": "status", "on": "delete"}]},
        {"provider": "close", "faults": [{"kind": "status", "status": 429, "retry_after": "1"}]},
    ],
)
def test_invalid_fault_requests_are_400_and_queue_nothing(
    control: httpx.Client, body: dict[str, Any]
):
    response = control.post("/faults", json=body)

    assert response.status_code == 400
    assert response.json()["error"]
    assert stats(control, "close")["faults_pending"] == 0
