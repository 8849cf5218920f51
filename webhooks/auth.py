"""Bearer tokens for ``/v1`` (``NUMBERS_API_TOKENS``), compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, request

from webhooks.errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])


def token_matches(given: str, accepted: list[str]) -> bool:
    found = False
    for token in accepted:
        # Compare against every token: how long this takes does not tell which one is close.
        found |= hmac.compare_digest(given.encode(), token.encode())
    return found


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def require_token(kind: str = "api") -> Callable[[F], F]:
    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            settings = current_app.config["SETTINGS"]
            accepted = settings.tokens() if kind == "api" else settings.operator_token_list()
            given = bearer()
            if given is None or not accepted or not token_matches(given, accepted):
                raise ApiError(
                    401, "unauthorized", "send Authorization: Bearer <token> with a valid token"
                )
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator
