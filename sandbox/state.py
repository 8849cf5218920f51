"""Everything the sandbox remembers: numbers handed out, per-provider books, queued faults.

One ``SandboxState`` per sandbox app, shared by the request threads and the CM timers, so every
read-modify-write happens under its lock. Provider modules keep their own extra records through
``extension()``, which keeps this module free of any one provider's shapes.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar, cast

from flask import current_app

CallKind = Literal["purchase", "list"]
FaultKind = Literal["status", "delay", "drop_after_rent", "delay_after_rent", "reset_before"]

# Numbers are NANP-shaped (+1 NPA NXX XXXX). With no prefix asked for, use this area code.
DEFAULT_NPA = "415"
# Exchange used after a three-digit area code: 555-01xx is the range set aside for fiction.
FILLER_EXCHANGE = "555"
# Numbers ending in 0000 are the providers' "no longer available" trigger, never handed out.
UNAVAILABLE_SUFFIX = "0000"


@dataclass(frozen=True)
class SandboxCredentials:
    """The secrets each fake provider accepts; anything else gets that provider's 401."""

    close_api_key: str = "sandbox-close-key"
    close_access_token: str = "sandbox-close-oauth"
    signalwire_project_id: str = "sandbox-project"
    signalwire_api_token: str = "sandbox-signalwire-token"
    identitycall_api_key: str = "sandbox-identitycall-key"
    cm_product_token: str = "sandbox-cm-token"
    cm_account_id: str = "3fa85f64-5717-4562-b3fc-2c963f66afa6"

    def __repr__(self) -> str:
        # Secrets must not leak through a log line or a test failure message.
        return "SandboxCredentials(<redacted>)"


@dataclass
class SandboxConfig:
    """Settings changed at run time through ``POST /_sandbox/config``."""

    latency_ms: float = 0.0
    transient_rate: float = 0.0
    seed: int | None = None
    cm_delay_s: float = 2.0
    # Close's OpenAPI schema says the 201 body is empty; its prose says it carries the number.
    close_empty_201: bool = False
    # CM's page says id, start, validFrom and validTo are null in the 201 answer.
    cm_sparse_201: bool = False


@dataclass(frozen=True)
class Fault:
    """One queued misbehaviour, consumed by the next matching call of one provider."""

    kind: FaultKind
    on: CallKind = "purchase"
    status: int = 500
    seconds: float = 0.0
    # None means "send no retry hint at all", to exercise the client's own backoff.
    retry_after: float | None = 1.0


@dataclass
class ProviderBook:
    """Counters and owned numbers of one provider account."""

    rent_calls: int = 0
    list_calls: int = 0
    numbers: list[str] = field(default_factory=list)
    owned: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: deque[Fault] = field(default_factory=deque)
    next_id: int = 1


class Closable(Protocol):
    def close(self) -> None: ...


T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class SandboxState:
    """Thread-safe store behind every fake provider and the control API."""

    def __init__(self, credentials: SandboxCredentials) -> None:
        self.credentials = credentials
        self.lock = threading.RLock()
        self._init_fields()

    def _init_fields(self) -> None:
        self.config = SandboxConfig()
        self.rng = random.Random()
        self._books: dict[str, ProviderBook] = {}
        self._issued: set[str] = set()
        self._owner: dict[str, str] = {}
        self._next_tail: dict[str, int] = {}
        self._extensions: dict[str, Any] = {}

    def reset(self) -> None:
        with self.lock:
            self.close()
            self._init_fields()

    def close(self) -> None:
        """Stop background work (CM timers) that provider extensions started."""
        with self.lock:
            for extension in self._extensions.values():
                if hasattr(extension, "close"):
                    cast(Closable, extension).close()

    # -- configuration -------------------------------------------------------------------------

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            for key, value in changes.items():
                setattr(self.config, key, value)
            if "seed" in changes:
                self.rng.seed(self.config.seed)
            return asdict(self.config)

    def config_snapshot(self) -> dict[str, Any]:
        with self.lock:
            return asdict(self.config)

    # -- per-provider books --------------------------------------------------------------------

    def book(self, provider: str) -> ProviderBook:
        with self.lock:
            return self._books.setdefault(provider, ProviderBook())

    def extension(self, name: str, factory: Callable[[], T]) -> T:
        """A provider's own store, created on first use and dropped by ``reset()``."""
        with self.lock:
            if name not in self._extensions:
                self._extensions[name] = factory()
            return cast(T, self._extensions[name])

    def next_id(self, provider: str) -> int:
        with self.lock:
            book = self.book(provider)
            book.next_id += 1
            return book.next_id - 1

    def queue_faults(self, provider: str, faults: list[Fault]) -> int:
        with self.lock:
            book = self.book(provider)
            book.faults.extend(faults)
            return len(book.faults)

    def begin_call(self, provider: str, kind: CallKind) -> Fault | None:
        """Count a call that reached handling and hand back the fault it must suffer, if any."""
        with self.lock:
            book = self.book(provider)
            if kind == "purchase":
                book.rent_calls += 1
            else:
                book.list_calls += 1
            fault = self._pop_fault(book, kind)
            if fault is None and kind == "purchase" and self._roll_transient():
                fault = Fault(kind="status", status=503)
            return fault

    def _pop_fault(self, book: ProviderBook, kind: CallKind) -> Fault | None:
        for index, fault in enumerate(book.faults):
            if fault.on == kind:
                del book.faults[index]
                return fault
        return None

    def _roll_transient(self) -> bool:
        rate = self.config.transient_rate
        return rate > 0 and self.rng.random() < rate

    # -- numbers -------------------------------------------------------------------------------

    def allocate(self, prefix: str = "", count: int = 1) -> list[str] | None:
        """Reserve ``count`` consecutive never-issued numbers that start with ``+1<prefix>``.

        Returns None when the prefix has no room left. Reserved numbers are never handed out
        again by any provider, which keeps numbers unique across the whole sandbox.
        """
        base = _base_digits(prefix)
        if base is None or count < 1:
            return None
        tail_len = 10 - len(base)
        with self.lock:
            block = self._find_block(base, tail_len, count)
            if block is not None:
                self._issued.update(block)
            return block

    def _find_block(self, base: str, tail_len: int, count: int) -> list[str] | None:
        limit = 10**tail_len
        start = self._next_tail.get(base, 100 if tail_len >= 4 else 0)
        while start + count <= limit:
            block = [_compose(base, tail, tail_len) for tail in range(start, start + count)]
            clash = next((i for i, n in enumerate(block) if not self._usable(n)), None)
            if clash is None:
                self._next_tail[base] = start + count
                return block
            start += clash + 1
        return None

    def _usable(self, number: str) -> bool:
        return number not in self._issued and not number.endswith(UNAVAILABLE_SUFFIX)

    def owner_of(self, number: str) -> str | None:
        with self.lock:
            return self._owner.get(number)

    def take(self, provider: str, number: str, record: dict[str, Any]) -> bool:
        """Make ``provider`` own ``number`` unless any account already does (atomic)."""
        with self.lock:
            if number in self._owner:
                return False
            self._issued.add(number)
            self._owner[number] = provider
            book = self.book(provider)
            book.owned[number] = record
            book.numbers.append(number)
            return True

    def owned_records(self, provider: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.book(provider).owned.values())

    def book_stats(self, provider: str) -> dict[str, Any]:
        with self.lock:
            book = self.book(provider)
            return {
                "rent_calls": book.rent_calls,
                "rented": len(book.numbers),
                "numbers": list(book.numbers),
                "owned": len(book.owned),
                "list_calls": book.list_calls,
                "faults_pending": len(book.faults),
            }


def _base_digits(prefix: str) -> str | None:
    """Area code plus exchange the number starts with; None when it cannot fit 10 digits."""
    if not prefix.isdigit() and prefix != "":
        return None
    base = prefix + DEFAULT_NPA[len(prefix) :] if len(prefix) < 3 else prefix
    if len(base) < 6:
        base += FILLER_EXCHANGE[len(base) - 3 :]
    return base if len(base) <= 10 else None


def _compose(base: str, tail: int, tail_len: int) -> str:
    return f"+1{base}{tail:0{tail_len}d}" if tail_len else f"+1{base}"


def current_state() -> SandboxState:
    return cast(SandboxState, current_app.extensions["sandbox"])
