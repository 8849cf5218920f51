"""Random and malformed input against the real Flask app: never a 5xx, never a changed order.

A property-based test (hypothesis) throws thousands of bodies and headers at the callback
endpoint and the orders API; schemathesis fuzzes every operation of the app's OpenAPI spec.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from models.db import session_factory
from models.tables import Order, OrderEvent
from tests.conftest import API_TOKEN
from tests.integration.helpers import create_order

CM = {
    "provider": "cm",
    "country": "NL",
    "number_type": "local",
    "area_code": "20",
    "options": {"company_profile_id": "6f1c2b1e-6d1a-4f47-9a43-3f1f0e0c7b11"},
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"status": st.text(max_size=15), "phoneNumbers": json_values, "id": json_values}
    ).map(lambda v: json.dumps(v).encode()),
)
header_names = st.sampled_from(
    ["Content-Type", "X-Cm-Producttoken", "Authorization", "X-Anything", "Content-Encoding"]
)
headers = st.dictionaries(
    header_names,
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    max_size=3,
)
tokens = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_%.", min_size=1, max_size=80),
    st.just("REAL"),
)


def snapshot() -> tuple[Any, ...]:
    with session_factory()() as session:
        orders = tuple(
            session.execute(
                select(Order.id, Order.state, Order.provider_status, Order.updated_at).order_by(
                    Order.id
                )
            ).all()
        )
        events = session.scalar(select(func.count()).select_from(OrderEvent))
    return orders, events


@pytest.fixture
def waiting_order() -> tuple[str, str]:
    order_id = create_order(**CM)
    with session_factory()() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order_id, order.callback_token


def test_random_callbacks_never_5xx_and_change_no_order(
    api: Any, waiting_order: tuple[str, str]
) -> None:
    _, real_token = waiting_order
    before = snapshot()
    seen: set[int] = set()

    @settings(
        max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(
        body=bodies,
        extra=headers,
        token=tokens,
        provider=st.sampled_from(["cm", "close", "signalwire", "nope"]),
    )
    def send(body: bytes, extra: dict[str, str], token: str, provider: str) -> None:
        token = real_token if token == "REAL" else token
        response = api.post(f"/webhooks/{provider}/{token}", data=body, headers=extra)
        seen.add(response.status_code)
        assert response.status_code < 500, response.get_data(as_text=True)

    send()
    assert snapshot() == before  # receiving stores and enqueues; it never moves an order
    assert {202, 404} <= seen


def test_random_order_bodies_never_5xx(api: Any) -> None:
    @settings(
        max_examples=800, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(
        body=st.one_of(
            bodies,
            st.fixed_dictionaries(
                {
                    "provider": st.sampled_from(["close", "cm", "x"]),
                    "quantity": json_values,
                    "country": json_values,
                }
            ).map(lambda v: json.dumps(v).encode()),
        ),
        extra=headers,
        key=st.text(
            alphabet=st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"),
            max_size=300,
        ),
    )
    def send(body: bytes, extra: dict[str, str], key: str) -> None:
        response = api.post(
            "/v1/orders",
            data=body,
            headers={**extra, "Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": key},
        )
        assert response.status_code < 500, response.get_data(as_text=True)

    send()


def test_openapi_spec_fuzzed_by_schemathesis_gets_no_5xx(sandbox: Any) -> None:
    from webhooks import create_app

    app = create_app()
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", app)
    failures: list[str] = []
    checked = 0
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(
            max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(case=op.as_strategy())
        def run(case: Any) -> None:
            nonlocal checked
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {API_TOKEN}"}
            response = case.call()
            checked += 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.path}: {response.status_code} {response.text[:200]}"
                )

        run()
    assert checked > 200
    assert failures == []
