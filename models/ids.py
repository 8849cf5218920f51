"""Time-ordered, unguessable identifiers."""

from __future__ import annotations

import hashlib
import secrets
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    """``prefix_`` + a 26-character ULID: sortable by creation time, 80 random bits."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def new_token() -> str:
    """A per-order callback token: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def storable(text: str) -> bool:
    """PostgreSQL text cannot hold a NUL character (SQLite can): a string with one is refused
    at the edge, or can never match a stored value, on either backend alike."""
    return "\x00" not in text
