"""One shape for every error answer: a code, a message, and the fields at fault."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, jsonify

from worker.providers.base import FieldIssue


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, fields: list[FieldIssue] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []

    def response(self) -> tuple[Response, int]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.fields:
            body["errors"] = [{"field": f.field, "message": f.message} for f in self.fields]
        return jsonify(body), self.status


def invalid(fields: list[FieldIssue]) -> ApiError:
    return ApiError(422, "invalid_request", "the request has invalid fields", fields)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(raw: bytes) -> Any:
    """Decode a body as strict JSON (no NaN/Infinity); a clear 400 otherwise."""
    if not raw:
        raise ApiError(400, "invalid_json", "the body is empty; send a JSON object")
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
