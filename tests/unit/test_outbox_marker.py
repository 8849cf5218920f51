"""The outbox's sent-marker: a flush that returns has seen every published id marked, even the
batch another thread took a moment earlier and has not yet committed."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from worker import outbox


def test_a_flush_waits_for_the_batch_another_thread_is_marking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    happened: list[str] = []
    in_update, commit = threading.Event(), threading.Event()

    @contextlib.contextmanager
    def no_database() -> Iterator[None]:
        yield None

    def slow_mark(_session: Any, ids: list[int]) -> None:
        in_update.set()
        commit.wait(10)
        happened.append(f"marked {ids}")

    monkeypatch.setattr(outbox, "session_scope", no_database)
    monkeypatch.setattr(outbox, "_mark_sent", slow_mark)
    marker = outbox.SentMarker()  # not started: the two flushes below play its part and ours
    marker.add([1, 2])
    batch = threading.Thread(target=marker.flush)
    batch.start()
    assert in_update.wait(10)  # the batch is taken, its UPDATE not yet committed

    def ours() -> None:
        marker.flush()
        happened.append("flush returned")

    caller = threading.Thread(target=ours)
    caller.start()
    caller.join(0.2)  # a flush that did not wait would have returned by now
    commit.set()
    batch.join(10)
    caller.join(10)
    assert happened == ["marked [1, 2]", "flush returned"]
