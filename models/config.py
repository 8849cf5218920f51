"""Settings read from ``NUMBERS_*`` environment variables (see CONTRACT.md)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'numbers.db'}"


def _default_broker_url() -> str:
    return f"sqla+sqlite:///{Path.cwd() / 'numbers-broker.db'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NUMBERS_", extra="ignore")

    database_url: str = Field(default_factory=_default_database_url)
    broker_url: str = Field(default_factory=_default_broker_url)
    public_url: str = "http://127.0.0.1:8000"
    api_tokens: str = ""
    operator_tokens: str = ""

    close_base_url: str = "https://api.close.com/api/v1"
    close_api_key: str = ""
    # Close also accepts OAuth access tokens as ``Bearer``; when set it wins over the API key.
    close_access_token: str = ""
    signalwire_base_url: str = ""
    signalwire_project_id: str = ""
    signalwire_api_token: str = ""
    identitycall_base_url: str = "https://api.identitycall.ai/api/v1/public"
    identitycall_api_key: str = ""
    cm_base_url: str = "https://api.cm.com/voice-phonenumberrequestapi/v1"
    cm_product_token: str = ""
    cm_account_id: str = ""

    notify_secret: str = ""
    # Standard Webhooks' retry schedule (seconds after the previous try): then give up.
    notify_schedule_s: str = "0,5,300,1800,7200,18000,36000,36000"
    notify_timeout_s: float = 10.0
    callback_grace_s: float = 900.0

    # Retry policy (DESIGN.md section 2).
    retry_base_s: float = 1.0
    retry_cap_s: float = 300.0
    retry_max_attempts: int = 8
    retry_deadline_s: float = 3600.0
    # Waits shorter than this ride on a broker countdown; longer ones live in the database.
    countdown_limit_s: float = 300.0

    provider_timeout_s: float = 30.0
    provider_connect_timeout_s: float = 5.0
    # A worker holds an order this long at most; a dead worker's claim expires and the sweep
    # re-drives the order.
    claim_ttl_s: float = 120.0
    sweep_interval_s: float = 5.0
    relay_interval_s: float = 1.0
    max_body_bytes: int = 65536
    db_pool_size: int = 20
    # A queued order nobody picked up for this long is published again (its message was lost
    # with a broker's data); shorter waits are the relay's and the queue's business.
    redrive_queued_after_s: float = 600.0

    @field_validator("api_tokens", "operator_tokens")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    def notify_schedule(self) -> list[float]:
        return [float(x) for x in self.notify_schedule_s.split(",") if x.strip()]

    def tokens(self) -> list[str]:
        return [t.strip() for t in self.api_tokens.split(",") if t.strip()]

    def operator_token_list(self) -> list[str]:
        own = [t.strip() for t in self.operator_tokens.split(",") if t.strip()]
        return own or self.tokens()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()
