"""The server itself: lifecycle, foreground serve(), control API, stats, errors, credentials."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sandbox import SandboxCredentials, SandboxServer, SandboxState, create_sandbox_app
from tests.sandbox.conftest import CLOSE_PREFIX, CM_PREFIX, CREDS, PROFILE_ID, stats

REPO_ROOT = Path(__file__).resolve().parents[2]
RENT_BODY = {"country": "US", "sharing": "personal"}


def test_server_serves_on_its_port_and_stops():
    with SandboxServer() as server:
        assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
        assert httpx.get(f"{server.url}/_sandbox/stats").status_code == 200
        assert isinstance(server.state, SandboxState)
        url = server.url

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_sandbox/stats", timeout=1)


def test_port_is_only_known_while_running():
    server = SandboxServer()

    with pytest.raises(RuntimeError):
        _ = server.port
    assert server.start() is server.start()
    server.stop()
    server.stop()


def test_custom_credentials_replace_the_defaults():
    creds = SandboxCredentials(close_api_key="another-key")
    with SandboxServer(credentials=creds) as server:
        url = server.url + CLOSE_PREFIX + "/phone_number/request/internal/"
        old = httpx.post(url, json=RENT_BODY, auth=(CREDS.close_api_key, ""))
        new = httpx.post(url, json=RENT_BODY, auth=("another-key", ""))

    assert (old.status_code, new.status_code) == (401, 201)


def test_credentials_never_show_in_their_repr():
    assert CREDS.close_api_key not in repr(CREDS)
    assert CREDS.cm_product_token not in str(CREDS)


def test_app_factory_works_without_a_socket():
    app = create_sandbox_app()
    client = app.test_client()

    response = client.post(
        CLOSE_PREFIX + "/phone_number/request/internal/",
        json=RENT_BODY,
        headers={"Authorization": f"Bearer {CREDS.close_access_token}"},
    )

    assert response.status_code == 201
    assert isinstance(app.extensions["sandbox"], SandboxState)
    assert app.extensions["sandbox"].book_stats("close")["rented"] == 1


def test_serve_runs_in_the_foreground_until_sigterm():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", "from sandbox.server import serve; serve('127.0.0.1', 0)"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        url = first_line.rsplit(" ", 1)[-1].strip()
        assert httpx.get(f"{url}/_sandbox/stats", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "sandbox stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_stats_cover_every_provider(control: httpx.Client):
    body = control.get("/stats").json()

    assert set(body) == {"close", "signalwire", "identitycall", "cm"}
    for provider in body.values():
        assert {"rent_calls", "rented", "numbers", "owned"} <= set(provider)
    assert body["cm"]["requests"] == [] and body["cm"]["callbacks"] == []


def test_reset_forgets_numbers_faults_and_settings(
    close_client: httpx.Client, control: httpx.Client
):
    close_client.post("/phone_number/request/internal/", json=RENT_BODY)
    control.post("/faults", json={"provider": "close", "faults": [{"kind": "reset_before"}]})
    control.post("/config", json={"latency_ms": 5, "close_empty_201": True})

    assert control.post("/reset").status_code == 200

    assert stats(control, "close") == {
        "rent_calls": 0,
        "rented": 0,
        "numbers": [],
        "owned": 0,
        "list_calls": 0,
        "faults_pending": 0,
    }
    config = control.get("/config").json()
    assert config["latency_ms"] == 0 and config["close_empty_201"] is False


def test_config_accepts_a_subset_and_echoes_the_whole(control: httpx.Client):
    response = control.post("/config", json={"cm_delay_s": 1.0, "seed": 7})

    assert response.status_code == 200
    assert response.json() == {
        "latency_ms": 0.0,
        "transient_rate": 0.0,
        "seed": 7,
        "cm_delay_s": 1.0,
        "close_empty_201": False,
        "cm_sparse_201": False,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"latency": 5},
        {"latency_ms": "100"},
        {"latency_ms": -1},
        {"transient_rate": 2},
        {"transient_rate": True},
        {"seed": 1.5},
        {"cm_delay_s": None},
        {"close_empty_201": "yes"},
    ],
)
def test_invalid_config_is_400_and_changes_nothing(control: httpx.Client, body: dict[str, object]):
    response = control.post("/config", json=body)

    assert response.status_code == 400
    assert control.get("/config").json()["transient_rate"] == 0.0
    assert control.get("/config").json()["latency_ms"] == 0.0


def test_numbers_are_unique_across_providers(
    close_client: httpx.Client,
    signalwire_client: httpx.Client,
    identitycall_client: httpx.Client,
    cm_client: httpx.Client,
):
    # Close and CM both draw from area code 201; search and available hand out numbers too.
    numbers = [
        close_client.post(
            "/phone_number/request/internal/", json={**RENT_BODY, "prefix": "201"}
        ).json()["number"]
        for _ in range(3)
    ]
    cm_body = {"companyProfileId": PROFILE_ID, "quantity": 3, "numberType": "LOCAL"}
    numbers += cm_client.post("/numberrequests", json={**cm_body, "areaCode": "201"}).json()[
        "phoneNumbers"
    ]
    found = signalwire_client.get("/phone_numbers/search", params={"areacode": "201"}).json()
    numbers += [item["e164"] for item in found["data"]]
    available = identitycall_client.get("/virtual_numbers/available").json()["data"]
    numbers += [item["phone_number"] for item in available]

    assert len(numbers) == 3 + 3 + 10 + 5
    assert len(set(numbers)) == len(numbers)


def test_a_number_owned_by_one_provider_cannot_be_bought_at_another(
    signalwire_client: httpx.Client, identitycall_client: httpx.Client
):
    number = "+16465550199"
    assert signalwire_client.post("/phone_numbers", json={"number": number}).status_code == 200

    response = identitycall_client.post("/virtual_numbers/purchase", json={"phone_number": number})

    assert response.status_code == 422


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (CLOSE_PREFIX + "/nothing/here/", "error"),
        ("/signalwire/api/relay/rest/nothing", "error"),
        ("/identitycall/api/v1/public/nothing", "error"),
        (CM_PREFIX + "/nothing/at/all/here", "message"),
        ("/nowhere", "error"),
    ],
)
def test_unknown_paths_are_json_404_in_the_provider_format(
    fresh_sandbox: SandboxServer, path: str, key: str
):
    response = httpx.get(fresh_sandbox.url + path)

    assert response.status_code == 404
    assert key in response.json()


def test_wrong_method_is_json_405(fresh_sandbox: SandboxServer):
    response = httpx.put(fresh_sandbox.url + CLOSE_PREFIX + "/phone_number/request/internal/")

    assert response.status_code == 405
    assert response.json() == {"error": "Method Not Allowed"}


def test_oversized_body_is_refused(fresh_sandbox: SandboxServer, control: httpx.Client):
    huge = b'{"number": "' + b"1" * (2 * 1024 * 1024) + b'"}'

    response = httpx.post(
        fresh_sandbox.url + "/signalwire/api/relay/rest/phone_numbers",
        content=huge,
        auth=(CREDS.signalwire_project_id, CREDS.signalwire_api_token),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert stats(control, "signalwire")["rented"] == 0
