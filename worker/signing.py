"""Standard Webhooks v1 signatures: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` with the
base64 key that follows ``whsec_`` in the secret."""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "whsec_"


class BadSecret(ValueError):
    pass


def secret_key(secret: str) -> bytes:
    raw = secret.removeprefix(PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise BadSecret("the notify secret must be whsec_ followed by base64") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"


def verify(secret: str, msg_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """True when any ``v1,`` signature in the (space-separated) header matches."""
    expected = sign(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in header.split())
