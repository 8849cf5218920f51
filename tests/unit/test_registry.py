"""The provider registry: one pooled client per provider per process, built before the first
task for every configured provider and never for an unconfigured one."""

from __future__ import annotations

from models.config import Settings, get_settings
from worker.providers import registry


def test_warm_up_builds_each_configured_client_once() -> None:
    settings = get_settings().model_copy(update={"close_api_key": "", "close_access_token": ""})
    ready = registry.warm_up(settings)
    assert "close" not in ready and set(ready) == {"signalwire", "identitycall", "cm"}
    first = registry.get_client("cm", settings)
    registry.warm_up(settings)
    assert registry.get_client("cm", settings) is first  # the same pooled client, kept


def test_nothing_is_built_when_nothing_is_configured() -> None:
    bare = Settings(
        close_api_key="", signalwire_project_id="", identitycall_api_key="", cm_product_token=""
    )
    assert registry.warm_up(bare) == []
