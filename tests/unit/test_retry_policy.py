"""DESIGN.md section 2: full-jitter backoff with a cap, server hints win, bounded by attempts
and a deadline."""

from __future__ import annotations

import datetime as dt
import random

from worker.retry import RetryPolicy

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = RetryPolicy(base_s=1, cap_s=30)
    rng = random.Random(3)
    for n in range(10):
        ceiling = min(30, 2**n)
        samples = [policy.backoff(n, rng) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # spread over the whole range, not fixed
        assert min(samples) < ceiling * 0.2


def test_server_hint_wins_over_backoff() -> None:
    policy = RetryPolicy(base_s=100, cap_s=1000)
    assert policy.delay(2.5, retry_number=5) == 2.5


def test_stops_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    deadline = NOW + dt.timedelta(hours=1)
    assert policy.next_attempt(1.0, 0, NOW, deadline) is not None
    assert policy.next_attempt(1.0, 1, NOW, deadline) is not None
    assert policy.next_attempt(1.0, 2, NOW, deadline) is None


def test_stops_when_the_next_try_would_pass_the_deadline() -> None:
    policy = RetryPolicy(max_attempts=100)
    deadline = NOW + dt.timedelta(seconds=10)
    assert policy.next_attempt(5.0, 0, NOW, deadline) == NOW + dt.timedelta(seconds=5)
    assert policy.next_attempt(11.0, 0, NOW, deadline) is None
