"""The retry policy of DESIGN.md section 2, all in one place."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from models.config import Settings


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 1.0
    cap_s: float = 300.0
    max_attempts: int = 8
    deadline_s: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            base_s=settings.retry_base_s,
            cap_s=settings.retry_cap_s,
            max_attempts=settings.retry_max_attempts,
            deadline_s=settings.retry_deadline_s,
        )

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**n))."""
        ceiling = min(self.cap_s, self.base_s * (2 ** max(0, retry_number)))
        return (rng or random).uniform(0, ceiling)

    def delay(self, retry_after: float | None, retry_number: int) -> float:
        """The server's own hint wins (it knows when it will take us again); else backoff."""
        if retry_after is not None:
            return max(0.0, retry_after)
        return self.backoff(retry_number)

    def next_attempt(
        self, retry_after: float | None, retry_number: int, now: dt.datetime, deadline: dt.datetime
    ) -> dt.datetime | None:
        """When to try again, or None when the attempts or the deadline are spent."""
        if retry_number + 1 >= self.max_attempts:
            return None
        when = now + dt.timedelta(seconds=self.delay(retry_after, retry_number))
        return when if when <= deadline else None
