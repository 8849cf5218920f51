"""What every provider adapter is: the Protocol, the data it takes and gives, its errors.

An adapter knows HTTP, its provider's API and the order; it opens no database session and
sends no task. The task around it records attempts and moves state.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import httpx

ErrorKind = Literal[
    "transient",  # retry with backoff
    "failed",  # permanent: the order fails with this error
    "needs_action",  # permanent: a person must act
    "unavailable",  # this candidate number is gone: try the next one
    "voice_only",  # close has-voice-only: retry once without SMS if the order allows
    "auth",  # 401/403: pause the provider, the order waits
    "billing",  # billing error: the order fails and the provider is paused
    "invalid",  # our request was wrong: a bug of ours, the order fails
]


class ProviderError(Exception):
    """Base of every adapter error: carries the provider, HTTP status and the provider's code."""

    kind: ErrorKind = "failed"

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status_code: int | None = None,
        provider_code: str | None = None,
        retry_after: float | None = None,
        kind: ErrorKind | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.message = message
        self.status_code = status_code
        # Some providers' only "code" is their message text: keep what fits the column.
        self.provider_code = provider_code[:128] if provider_code else provider_code
        self.retry_after = retry_after
        if kind is not None:
            self.kind = kind

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.kind,
            "message": self.message,
            "provider_status": self.provider_code,
            "http_status": self.status_code,
        }


class TransientProviderError(ProviderError):
    kind: ErrorKind = "transient"


class PermanentProviderError(ProviderError):
    kind: ErrorKind = "failed"


class AmbiguousOutcome(ProviderError):
    """The request may have reached the provider and the answer was lost: reconcile first."""

    kind: ErrorKind = "transient"


@dataclass(frozen=True)
class FieldIssue:
    field: str
    message: str


@dataclass(frozen=True)
class OrderSpec:
    """The order as an adapter sees it: plain data, no ORM."""

    order_id: str
    provider: str
    quantity: int = 1
    country: str | None = None
    number_type: str | None = None
    area_code: str | None = None
    phone_number: str | None = None
    sms: bool | None = None
    mms: bool | None = None
    options: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    callback_url: str | None = None


@dataclass(frozen=True)
class Acquired:
    number: str
    provider_number_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Purchase:
    """What one purchase (or a read of a delayed request) returned.

    ``numbers`` may be empty with ``rented=True`` (close's empty 201): the number is then found
    by reconciliation. A delayed provider sets ``request_id`` and ``status`` and ``settled``
    False while its request is pending.
    """

    numbers: list[Acquired] = field(default_factory=list)
    rented: bool = True
    request_id: str | None = None
    status: str | None = None
    settled: bool = True
    outcome: Literal["fulfilled", "failed", "cancelled", "waiting", "unknown"] = "fulfilled"
    reason: str | None = None
    costs: dict[str, Any] | None = None


class Provider(Protocol):
    name: ClassVar[str]
    # One rent call per number (close, signalwire, identitycall) or one call for them all (cm).
    rents_one_per_call: ClassVar[bool]
    # The provider buys a named number: search candidates when the order names none.
    needs_candidates: ClassVar[bool]
    # The provider may answer later (cm): the order waits for a callback or a poll.
    delayed: ClassVar[bool]

    @classmethod
    def check(cls, spec: OrderSpec) -> list[FieldIssue]:
        """Field problems of this order for this provider (options included); [] when fine."""
        ...

    def search(self, spec: OrderSpec, limit: int) -> list[str]:
        """Candidate numbers to buy, best first."""
        ...

    def build_request(
        self, spec: OrderSpec, candidate: str | None, *, voice_only: bool = False
    ) -> dict[str, Any]:
        """The exact body the purchase call will send, recorded on the attempt before it."""
        ...

    def purchase(self, body: dict[str, Any]) -> Purchase:
        """Send one purchase; raise a ``ProviderError`` subclass on anything but success."""
        ...

    def reconcile(
        self, spec: OrderSpec, body: dict[str, Any], since: dt.datetime
    ) -> Purchase | None:
        """After an unknown outcome: what the account owns that this request may have rented,
        best match first (the caller skips numbers another order was credited with). None when
        the provider shows nothing the request could have produced."""
        ...

    def fetch_request(self, request_id: str, spec: OrderSpec) -> Purchase:
        """Delayed providers: read the request's current status."""
        ...

    def cancel_request(self, request_id: str, spec: OrderSpec) -> Purchase:
        """Delayed providers: cancel a pending request."""
        ...

    @classmethod
    def configured(cls, settings: Any) -> bool:
        """Credentials are set: orders for an unconfigured provider are refused at intake."""
        ...

    def close(self) -> None: ...


def classify_transport_error(provider: str, exc: httpx.TransportError) -> ProviderError:
    """Did the request leave? Connect failures did not: safe to retry. Anything after the
    request was written (read timeout, dropped connection) is an unknown outcome."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return TransientProviderError(provider, f"could not connect: {type(exc).__name__}")
    return AmbiguousOutcome(provider, f"no answer after the request was sent: {type(exc).__name__}")


def is_transient(status_code: int) -> bool:
    """DESIGN.md section 2: 408, 429 and 5xx are worth retrying; other 4xx are not."""
    return status_code in (408, 429) or status_code >= 500


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = now or dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def json_or_none(response: httpx.Response) -> Any:
    """The body as JSON, or None when it is empty or not JSON (a provider's HTML error page)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def http_client(
    base_url: str, timeout: float, connect_timeout: float, headers: dict[str, str] | None = None
) -> httpx.Client:
    """One pooled keep-alive client per provider per process."""
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        headers={
            "Accept": "application/json",
            "User-Agent": "numbers-fulfilment/0.1",
            **(headers or {}),
        },
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
    )


def issues_from_pydantic(exc: Any, prefix: str) -> list[FieldIssue]:
    """Turn a pydantic ``ValidationError`` into one issue per field, named from the order."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        out.append(FieldIssue(f"{prefix}.{loc}" if loc else prefix, err["msg"]))
    return out


class HttpAdapter:
    """What every HTTP adapter shares: one pooled keep-alive client per process, and transport
    errors classified (did the request leave?) in one place."""

    name: ClassVar[str]

    def __init__(self, settings: Any, base_url: str, headers: dict[str, str] | None = None) -> None:
        self._http = http_client(
            base_url, settings.provider_timeout_s, settings.provider_connect_timeout_s, headers
        )

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise classify_transport_error(self.name, exc) from exc
