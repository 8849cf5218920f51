"""The providers the service knows, by key, and one client per provider per process."""

from __future__ import annotations

import os
import threading
from typing import Any

from models.config import Settings, get_settings
from worker.providers.base import Provider
from worker.providers.close import CloseClient
from worker.providers.cm import CMClient
from worker.providers.identitycall import IdentityCallClient
from worker.providers.signalwire import SignalWireClient

PROVIDERS: dict[str, Any] = {
    "close": CloseClient,
    "signalwire": SignalWireClient,
    "identitycall": IdentityCallClient,
    "cm": CMClient,
}

_clients: dict[tuple[int, str], Provider] = {}
_lock = threading.Lock()


class UnknownProvider(KeyError):
    pass


class UnconfiguredProvider(RuntimeError):
    pass


def provider_names() -> list[str]:
    return list(PROVIDERS)


def is_configured(name: str, settings: Settings | None = None) -> bool:
    cls = PROVIDERS.get(name)
    return cls is not None and bool(cls.configured(settings or get_settings()))


def adapter_class(name: str) -> Any:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise UnknownProvider(name) from None


def get_client(name: str, settings: Settings | None = None) -> Provider:
    """The process's pooled client for ``name`` (keep-alive connections are reused across
    tasks; a forked child builds its own)."""
    settings = settings or get_settings()
    key = (os.getpid(), name)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                cls = adapter_class(name)
                if not cls.configured(settings):
                    raise UnconfiguredProvider(name)
                client = cls(settings)
                _clients[key] = client
    return client


def warm_up(settings: Settings | None = None) -> list[str]:
    """Build the pooled client of every configured provider now, not in the first task: the
    first order of a fresh worker then pays no setup (httpx loads its transport lazily)."""
    settings = settings or get_settings()
    ready = [name for name in PROVIDERS if is_configured(name, settings)]
    for name in ready:
        get_client(name, settings)
    return ready


def reset_clients() -> None:
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
