"""The operator page: auth (Bearer or a login cookie), what it shows, its buttons (CSRF-protected
forms that call worker.steering), that it never shows a secret; then the same in a real headless
Chromium against the app on a real HTTP server."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from models.db import session_factory
from models.tables import Order, OrderEvent, utcnow
from tests.conftest import API_TOKEN
from tests.integration.helpers import create_order, load, run_placement

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
NEEDS_MORE_INFO = "More information is needed to rent this number."
BILLING = "billing error: Your telephony budget has been reached."


@pytest.fixture
def app() -> Any:
    from webhooks import create_app

    return create_app()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def login(client: Any, token: str = API_TOKEN) -> Any:
    form = client.get("/operator/login")
    assert form.status_code == 200
    return client.post(
        "/operator/login", data={"token": token, "csrf_token": csrf_of(form.get_data(as_text=True))}
    )


@pytest.fixture
def operator(client: Any) -> Any:
    """A browser-like client logged in through the form (cookie session)."""
    response = login(client)
    assert response.status_code == 303 and response.headers["Location"].endswith("/operator")
    return client


def page(client: Any, query: str = "") -> str:
    response = client.get("/operator" + query)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return str(response.get_data(as_text=True))


def section(html: str, name: str) -> str:
    found = re.search(rf'<section id="{name}">(.*?)</section>', html, re.S)
    assert found, f"no section {name}"
    return found.group(1)


def post(client: Any, path: str, **extra: str) -> Any:
    token = csrf_of(page(client))
    return client.post(path, data={"csrf_token": token, **extra})


def failed_order() -> str:
    order_id = create_order(area_code="999")
    run_placement(order_id)
    assert load(order_id).state == "failed"
    return order_id


# -- auth -----------------------------------------------------------------------------------


def test_without_a_token_the_page_sends_the_browser_to_the_login_form(client: Any) -> None:
    response = client.get("/operator")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/operator/login")
    assert 'name="token"' in client.get("/operator/login").get_data(as_text=True)


def test_buttons_without_a_token_change_nothing(client: Any, sandbox: Any) -> None:
    order_id = failed_order()
    response = client.post(f"/operator/orders/{order_id}/retry", data={"csrf_token": "x"})
    assert response.status_code == 401
    assert load(order_id).state == "failed"


def test_a_wrong_bearer_token_gets_401(client: Any) -> None:
    response = client.get("/operator", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


def test_a_valid_bearer_token_shows_the_page(client: Any) -> None:
    response = client.get("/operator", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert response.status_code == 200
    assert "Orders by state and provider" in response.get_data(as_text=True)
    # Its buttons cannot be framed (clickjacking) and no script runs on it.
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "<script" not in response.get_data(as_text=True)


def test_a_wrong_token_in_the_form_does_not_log_in(client: Any) -> None:
    response = login(client, "not-a-token")
    assert response.status_code == 401
    assert "token not accepted" in response.get_data(as_text=True)
    assert client.get("/operator").status_code == 303


def test_login_sets_a_strict_httponly_cookie_that_holds_no_token(app: Any, client: Any) -> None:
    response = login(client)
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/operator" in cookie
    assert API_TOKEN not in cookie
    raw = cookie.split(";", 1)[0].split("=", 1)[1]
    content = app.session_interface.get_signing_serializer(app).loads(raw)
    assert API_TOKEN not in repr(content)
    assert page(client)  # the cookie alone is enough now


def test_a_tampered_cookie_is_refused(client: Any) -> None:
    login(client)
    cookie = client.get_cookie("numbers_operator", path="/operator")
    assert cookie is not None
    client.set_cookie("numbers_operator", cookie.value[:-2] + "xx", path="/operator")
    assert client.get("/operator").status_code == 303


def test_operator_tokens_replace_the_api_tokens_and_rotating_them_ends_sessions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from models.config import reset_settings
    from webhooks import create_app

    monkeypatch.setenv("NUMBERS_OPERATOR_TOKENS", "op-old,op-new")
    reset_settings()
    client = create_app().test_client()
    assert login(client, API_TOKEN).status_code == 401  # API tokens are not operator tokens
    assert login(client, "op-old").status_code == 303
    cookie = client.get_cookie("numbers_operator", path="/operator")
    assert cookie is not None and page(client)
    # Another process with the same tokens (a second gunicorn worker) accepts the cookie.
    other = create_app().test_client()
    other.set_cookie("numbers_operator", cookie.value, path="/operator")
    assert other.get("/operator").status_code == 200

    monkeypatch.setenv("NUMBERS_OPERATOR_TOKENS", "op-new")
    reset_settings()
    rotated = create_app().test_client()
    rotated.set_cookie("numbers_operator", cookie.value, path="/operator")
    assert rotated.get("/operator").status_code == 303


# -- what the page shows --------------------------------------------------------------------


def test_the_page_shows_reasons_failures_paused_providers_and_counts(
    operator: Any, sandbox: Any
) -> None:
    needs_action = create_order(area_code="666")
    run_placement(needs_action)
    failed = failed_order()
    run_placement(create_order(area_code="402"))  # billing error: close is paused
    html = page(operator)

    block = section(html, "needs-action")
    assert needs_action in block and NEEDS_MORE_INFO in block and "needs-more-info" in block
    block = section(html, "failed")
    assert failed in block and "No numbers available for this prefix" in block
    assert f'data-action="retry" data-order-id="{failed}"' in block
    block = section(html, "paused")
    assert "close" in block and BILLING in block and 'data-action="resume"' in block
    counts = section(html, "counts")
    assert re.search(r'data-state="failed">.*?data-provider="close">2<', counts, re.S)
    assert re.search(r'data-state="needs_action">.*?data-provider="close">1<', counts, re.S)
    assert 'data-queue="orders"' in section(html, "queues")
    errors = section(html, "errors")
    assert "needs-more-info" in errors and "billing-error" in errors


def test_stuck_orders_follow_the_threshold(operator: Any, sandbox: Any) -> None:
    old, new = create_order(area_code="415"), create_order(area_code="415")
    then = utcnow() - dt.timedelta(minutes=30)
    with session_factory()() as session:
        session.execute(update(Order).where(Order.id == old).values(created_at=then))
        session.execute(update(OrderEvent).where(OrderEvent.order_id == old).values(at=then))
        session.commit()

    stuck = section(page(operator), "stuck")
    assert old in stuck and new not in stuck and "30m" in stuck
    assert old not in section(page(operator, "?stuck_after=3600"), "stuck")
    everything = section(page(operator, "?stuck_after=0"), "stuck")
    assert old in everything and new in everything
    assert "stuck_after must be" in page(operator, "?stuck_after=soon")


def test_flagged_orders_are_listed_with_what_the_provider_said(operator: Any) -> None:
    # What worker.delayed stores for a status it does not know (tested in test_callbacks).
    order_id = create_order(area_code="415")
    with session_factory()() as session:
        session.execute(
            update(Order)
            .where(Order.id == order_id)
            .values(
                state="waiting_provider",
                flagged="unknown provider status 'ON_HOLD'",
                provider_status="ON_HOLD",
            )
        )
        session.commit()
    block = section(page(operator), "flagged")
    assert order_id in block and "unknown provider status &#39;ON_HOLD&#39;" in block


def test_looking_up_an_order_shows_its_events_and_provider_calls(
    operator: Any, sandbox: Any
) -> None:
    order_id = failed_order()
    block = section(page(operator, f"?order={order_id}"), "lookup")
    assert order_id in block and "picked up by a worker" in block and "purchase" in block
    assert "No order" in section(page(operator, "?order=ord_nope"), "lookup")
    assert "No order" in section(page(operator, "?order=ord_%00x"), "lookup")  # never a 500


def test_the_page_never_shows_a_secret(operator: Any, sandbox: Any) -> None:
    order_id = create_order(
        area_code="999",
        notify_url="https://upstream.example/hook?sig=upstream-s3cret",
        metadata={"api_key": "metadata-s3cret"},
    )
    run_placement(order_id)
    order = load(order_id)
    html = page(operator) + page(operator, f"?order={order_id}")
    assert order_id in html
    for secret in (
        order.callback_token,
        order.callback_token_hash,
        "sandbox-close-key",  # NUMBERS_CLOSE_API_KEY
        "sandbox-signalwire-token",
        API_TOKEN,
        "whsec_",
        "upstream-s3cret",
        "metadata-s3cret",
    ):
        assert secret not in html


# -- the buttons ----------------------------------------------------------------------------


def test_a_form_without_its_csrf_token_is_refused(operator: Any, sandbox: Any) -> None:
    order_id = failed_order()
    assert operator.post(f"/operator/orders/{order_id}/retry").status_code == 400
    wrong = operator.post(f"/operator/orders/{order_id}/retry", data={"csrf_token": "guess"})
    assert wrong.status_code == 400
    assert load(order_id).state == "failed"


def test_retry_moves_a_failed_order_back_to_queued(operator: Any, sandbox: Any) -> None:
    order_id = failed_order()
    response = post(operator, f"/operator/orders/{order_id}/retry", stuck_after="900")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/operator?stuck_after=900")
    order = load(order_id)
    assert order.state == "queued"
    assert order.events[-1].reason == "retried by operator page"
    assert f"{order_id}: retried (now queued)" in page(operator)  # the flash message


def test_a_refused_action_shows_why_with_409_and_changes_nothing(
    operator: Any, sandbox: Any
) -> None:
    order_id = create_order(area_code="415")
    response = post(operator, f"/operator/orders/{order_id}/retry")
    assert response.status_code == 409
    assert "only failed or needs_action orders can be retried" in response.get_data(as_text=True)
    assert load(order_id).state == "queued"
    assert post(operator, "/operator/orders/ord_nope/cancel").status_code == 404
    assert post(operator, "/operator/orders/ord_%00x/retry").status_code == 404


def test_cancel_cancels_a_failed_order(operator: Any, sandbox: Any) -> None:
    order_id = failed_order()
    response = post(operator, f"/operator/orders/{order_id}/cancel")
    assert response.status_code == 303
    assert load(order_id).state == "cancelled"
    assert 'data-action="cancel" data-order-id="' + order_id not in page(operator)


def test_resume_unpauses_the_provider_and_wakes_its_waiting_orders(
    operator: Any, sandbox: Any
) -> None:
    from cli.stats import provider_rows

    run_placement(create_order(area_code="402"))
    waiting = create_order(area_code="415")
    run_placement(waiting)
    assert load(waiting).state == "queued"

    response = post(operator, "/operator/providers/close/resume")
    assert response.status_code == 303
    assert not next(p for p in provider_rows() if p["provider"] == "close")["paused"]
    html = page(operator)
    assert "close resumed; 1 waiting order(s)" in html
    assert '<section id="paused">' not in html
    run_placement(waiting)
    assert load(waiting).state == "fulfilled"
    assert post(operator, "/operator/providers/nope/resume").status_code == 404


def test_a_bearer_client_needs_no_csrf_token(client: Any, sandbox: Any) -> None:
    # A browser never adds an Authorization header on its own: no cross-site forgery possible.
    order_id = failed_order()
    response = client.post(
        f"/operator/orders/{order_id}/retry", headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    assert response.status_code == 303
    assert load(order_id).state == "queued"


# -- a real browser -------------------------------------------------------------------------


@contextlib.contextmanager
def chromium(tmp_path: Path) -> Iterator[Any]:
    """Headless Debian Chromium through its chromedriver; missing binaries fail the test."""
    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        pytest.fail(
            f"{CHROMIUM} or {CHROMEDRIVER} is missing: run `bash .ci/browser.sh` "
            "(apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1800",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def test_an_operator_retries_a_failed_order_in_a_real_browser(
    web_server: str, sandbox: Any, tmp_path: Path
) -> None:
    # web_server (tests/fixtures.py): the real app on a real threaded werkzeug server.
    with chromium(tmp_path) as browser:
        retry_in_browser(browser, web_server, tmp_path)


def retry_in_browser(browser: Any, served_app: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    order_id = failed_order()
    browser.get(f"{served_app}/operator")
    assert browser.current_url.endswith("/operator/login")  # redirected: no cookie yet
    browser.find_element(By.ID, "token").send_keys(API_TOKEN)
    browser.find_element(By.ID, "login-submit").click()
    _wait_for(lambda: browser.current_url.endswith("/operator"), "the page after login")

    row = browser.find_element(By.CSS_SELECTOR, f'#failed tr[data-order-id="{order_id}"]')
    assert row.find_element(By.CSS_SELECTOR, ".state").text == "failed"
    assert "No numbers available for this prefix" in row.text
    row.find_element(By.CSS_SELECTOR, 'button[data-action="retry"]').click()

    flashed = f"{order_id}: retried (now queued)"
    _wait_for(lambda: flashed in browser.find_element(By.CSS_SELECTOR, ".flash-ok").text, "flash")
    latest = browser.find_element(By.CSS_SELECTOR, f'#latest tr[data-order-id="{order_id}"]')
    assert latest.find_element(By.CSS_SELECTOR, ".state").text == "queued"
    assert not browser.find_elements(By.CSS_SELECTOR, f'#failed tr[data-order-id="{order_id}"]')
    assert load(order_id).state == "queued"

    shot = tmp_path / "operator.png"
    assert browser.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def _wait_for(predicate: Any, what: str, timeout: float = 15.0) -> None:
    from selenium.common.exceptions import WebDriverException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # While the old page goes away and the new one is not there yet, ask again.
        with contextlib.suppress(WebDriverException):
            if predicate():
                return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
