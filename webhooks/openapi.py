"""The OpenAPI 3.1 description of ``/v1`` (served at ``/v1/openapi.json``).

The order body schema comes from the pydantic model the API validates with, so the two
cannot drift apart.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from worker.intake import OrderRequest

ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

ORDER = {
    "type": "object",
    "required": ["id", "state", "provider", "quantity", "numbers", "attempts", "created_at"],
    "properties": {
        "id": {"type": "string"},
        "state": {
            "type": "string",
            "enum": [
                "queued",
                "in_progress",
                "waiting_provider",
                "fulfilled",
                "partially_fulfilled",
                "needs_action",
                "failed",
                "cancelled",
            ],
        },
        "provider": {"type": "string"},
        "quantity": {"type": "integer"},
        "reference": {"type": ["string", "null"]},
        "numbers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "number": {"type": "string"},
                    "provider_number_id": {"type": ["string", "null"]},
                    "acquired_at": {"type": ["string", "null"]},
                },
            },
        },
        "attempts": {"type": "integer"},
        "last_error": {"type": ["object", "null"]},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
        "events": {"type": "array", "items": {"type": "object"}},
    },
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        400: "Malformed body",
        401: "Missing or wrong bearer token",
        404: "No such order",
        409: "Conflict",
        413: "Body too large",
        422: "Invalid fields",
    }
    return {str(c): _json("Error", words[c]) for c in codes}


ORDER_ID = {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}}


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    request_schema = OrderRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = request_schema.pop("$defs", {})
    return {
        "openapi": "3.1.0",
        "info": {"title": "numbers: phone-number order fulfilment", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"OrderRequest": request_schema, "Order": ORDER, "Error": ERROR, **defs},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/orders": {
                "post": {
                    "operationId": "createOrder",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/OrderRequest"}
                            }
                        },
                    },
                    "responses": {
                        "202": _json("Order", "Accepted and queued"),
                        "200": _json("Order", "The same key and body as before: the same order"),
                        **_errors(400, 401, 409, 413, 422),
                    },
                },
                "get": {
                    "operationId": "listOrders",
                    "parameters": [
                        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                        for n in ("state", "provider", "reference", "cursor")
                    ]
                    + [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "A page of orders",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "data": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Order"},
                                            },
                                            "next_cursor": {"type": ["string", "null"]},
                                        },
                                    }
                                }
                            },
                        },
                        **_errors(401, 422),
                    },
                },
            },
            "/v1/orders/{order_id}": {
                "get": {
                    "operationId": "getOrder",
                    "parameters": [ORDER_ID],
                    "responses": {"200": _json("Order", "The order"), **_errors(401, 404)},
                },
            },
            "/v1/orders/{order_id}/retry": {
                "post": {
                    "operationId": "retryOrder",
                    "parameters": [ORDER_ID],
                    "responses": {"202": _json("Order", "Queued again"), **_errors(401, 404, 409)},
                },
            },
            "/v1/orders/{order_id}/cancel": {
                "post": {
                    "operationId": "cancelOrder",
                    "parameters": [ORDER_ID],
                    "responses": {
                        "202": _json("Order", "Cancelled or being cancelled"),
                        **_errors(401, 404, 409),
                    },
                },
            },
        },
    }
