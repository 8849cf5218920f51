"""Every body an adapter records and sends validates against its provider's request schema.

Close (seed 000) and SignalWire (seed 002) publish OpenAPI: their YAML is read straight out of
the seed files. IdentityCall (seed 003) and CM (seed 004, with the seeds README's assumptions)
publish tables, from which ``schemas/*.json`` were written by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from models.config import Settings
from tests.seeds import openapi
from worker.providers import signalwire
from worker.providers.base import OrderSpec
from worker.providers.close import CloseClient
from worker.providers.cm import CMClient
from worker.providers.identitycall import IdentityCallClient
from worker.providers.signalwire import SignalWireClient

SCHEMAS = Path(__file__).resolve().parent / "schemas"
PROFILE = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
ORDER = "ord_01jschema000000000000000"

SETTINGS = Settings(
    close_api_key="k",
    signalwire_base_url="https://space.signalwire.test",
    signalwire_project_id="p",
    signalwire_api_token="t",
    identitycall_api_key="k",
    cm_product_token="t",
    cm_account_id="3fa85f64-5717-4562-b3fc-2c963f66afa6",
)


def seed_validator(seed_prefix: str, component: str) -> jsonschema.Draft202012Validator:
    """The named component, its ``#/components/...`` refs resolved against the whole document
    (OpenAPI 3.1 schemas are JSON Schema 2020-12)."""
    document = openapi(seed_prefix)
    schema = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def file_validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def order(provider: str, **fields: Any) -> OrderSpec:
    return OrderSpec(
        order_id=ORDER,
        provider=provider,
        reference=ORDER,
        callback_url=f"http://127.0.0.1:8000/webhooks/{provider}/tok",
        **fields,
    )


def test_the_seed_files_are_found() -> None:
    assert openapi("000")["paths"]["/phone_number/request/internal/"]["post"]
    assert openapi("002")["paths"]["/api/relay/rest/phone_numbers"]["post"]


# -- Close (seed 000) -----------------------------------------------------------------------

CLOSE_ORDERS = [
    ({"country": "US"}, False),
    (
        {"country": "US", "area_code": "415", "number_type": "local", "sms": True, "mms": True},
        False,
    ),
    (
        {
            "country": "GB",
            "number_type": "mobile",
            "options": {"sharing": "group", "bundle_id": "b1"},
        },
        False,
    ),
    ({"country": "US", "area_code": "212", "sms": False}, False),
    ({"country": "US", "area_code": "212", "number_type": "tollfree"}, True),
]


@pytest.mark.parametrize(("fields", "voice_only"), CLOSE_ORDERS)
def test_close_bodies_match_create_phone_number_request(
    fields: dict[str, Any], voice_only: bool
) -> None:
    client = CloseClient(SETTINGS)
    spec = order("close", **fields)
    assert CloseClient.check(spec) == []

    body = client.build_request(spec, None, voice_only=voice_only)

    seed_validator("000", "CreatePhoneNumberRequest").validate(body)
    client.close()


@pytest.mark.parametrize(
    "body",
    [
        {"sharing": "personal"},  # country is required
        {"country": "US"},  # sharing is required
        {"country": "US", "sharing": "team"},
        {"country": "US", "sharing": "personal", "carrier_type": "landline"},
        {"country": "US", "sharing": "personal", "with_sms": "yes"},
    ],
)
def test_close_schema_refuses_bad_bodies(body: dict[str, Any]) -> None:
    assert not seed_validator("000", "CreatePhoneNumberRequest").is_valid(body)


# -- SignalWire (seed 002) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "candidate"),
    [
        ({"area_code": "415"}, "+14155550100"),
        ({"phone_number": "+18335550123", "number_type": "tollfree"}, None),
        ({"country": "CA"}, "+16045550100"),
    ],
)
def test_signalwire_bodies_match_purchase_phone_number_request(
    fields: dict[str, Any], candidate: str | None
) -> None:
    client = SignalWireClient(SETTINGS)
    spec = order("signalwire", **fields)
    assert SignalWireClient.check(spec) == []

    body = client.build_request(spec, candidate)

    seed_validator("002", "PurchasePhoneNumberRequest").validate(body)
    client.close()


@pytest.mark.parametrize("body", [{}, {"number": 14155550100}, {"phone_number": "+14155550100"}])
def test_signalwire_schema_refuses_bad_bodies(body: dict[str, Any]) -> None:
    assert not seed_validator("002", "PurchasePhoneNumberRequest").is_valid(body)


def test_signalwire_adapter_requires_what_the_seed_requires() -> None:
    """The adapter's list of PhoneNumberResponse fields is the seed's, not a guess."""
    required = openapi("002")["components"]["schemas"]["PhoneNumberResponse"]["required"]
    assert list(signalwire.REQUIRED_FIELDS) == required


def test_signalwire_kept_fields_are_documented() -> None:
    properties = openapi("002")["components"]["schemas"]["PhoneNumberResponse"]["properties"]
    assert set(signalwire.KEPT_FIELDS) <= set(properties)


# -- IdentityCall (seed 003, hand-written schema) -------------------------------------------

IDENTITYCALL_ORDERS = [
    ({"country": "US"}, "+15551234567"),
    ({"country": "US", "number_type": "tollfree"}, "+18335550100"),
    ({"phone_number": "+442071838750"}, None),
    (
        {
            "country": "US",
            "number_type": "local",
            "options": {
                "name": "US Sales Line",
                "requirement_group_id": 12,
                "upfront_cost": "1.00",
                "monthly_cost": "1.15",
            },
        },
        "+16465550100",
    ),
]


@pytest.mark.parametrize(("fields", "candidate"), IDENTITYCALL_ORDERS)
def test_identitycall_bodies_match_the_seed_table(
    fields: dict[str, Any], candidate: str | None
) -> None:
    client = IdentityCallClient(SETTINGS)
    spec = order("identitycall", **fields)
    assert IdentityCallClient.check(spec) == []

    body = client.build_request(spec, candidate)

    file_validator("identitycall_purchase.json").validate(body)
    client.close()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"phone_number": ""},
        {"phone_number": "+15551234567", "requirement_group_id": "12"},
        {"phone_number": "+15551234567", "number_type": "tollfree"},
        {"phone_number": "+15551234567", "upfront_cost": 1.0},
        {"phone_number": "+15551234567", "country": "US"},
    ],
)
def test_identitycall_schema_refuses_bad_bodies(body: dict[str, Any]) -> None:
    assert not file_validator("identitycall_purchase.json").is_valid(body)


# -- CM (seed 004 + the seeds README, hand-written schema) ----------------------------------

CM_ORDERS = [
    {"country": "US", "number_type": "local", "area_code": "201", "options": {"region": "NJ"}},
    {
        "quantity": 10,
        "country": "NL",
        "number_type": "tollfree",
        "options": {"city": "Amsterdam", "range_size": 100, "comment": "group 7"},
    },
    {"quantity": 1000, "number_type": "mobile", "area_code": "6"},
    {
        "number_type": "national",
        "area_code": "20",
        "options": {"account_id": "9b2f0f5e-0d3a-4f4e-9a43-3d7a4a0f6c11"},
    },
]


@pytest.mark.parametrize("fields", CM_ORDERS)
def test_cm_bodies_match_the_assumed_create_body(fields: dict[str, Any]) -> None:
    client = CMClient(SETTINGS)
    options = {"company_profile_id": PROFILE, **fields.pop("options", {})}
    spec = order("cm", options=options, **fields)
    assert CMClient.check(spec) == []

    body = client.build_request(spec, None)

    file_validator("cm_numberrequest.json").validate(body)
    client.close()


def cm_body(**changes: Any) -> dict[str, Any]:
    body = {
        "accountId": SETTINGS.cm_account_id,
        "companyProfileId": PROFILE,
        "quantity": 1,
        "numberType": "LOCAL",
        "areaCode": "201",
        "comment": f"[order:{ORDER}]",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_cm_schema_accepts_the_reference_body() -> None:
    assert file_validator("cm_numberrequest.json").is_valid(cm_body())


@pytest.mark.parametrize(
    "body",
    [
        cm_body(quantity="5"),
        cm_body(quantity=0),
        cm_body(quantity=1001),
        cm_body(numberType="local"),
        cm_body(areaCode=None),  # neither areaCode nor city
        cm_body(companyProfileId="not-a-uuid"),
        cm_body(comment="no reference"),
        cm_body(rangeSize=True),
        cm_body(company_profile_id=PROFILE),
    ],
)
def test_cm_schema_refuses_bad_bodies(body: dict[str, Any]) -> None:
    assert not file_validator("cm_numberrequest.json").is_valid(body)
