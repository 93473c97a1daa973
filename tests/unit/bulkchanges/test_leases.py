"""The lease keeper (bulkchanges/leases.py): one thread per process renews every held item of a
kind with one call, survives failing renewals, drops what its renewal says is no longer held."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Hashable, Iterable

import pytest

from bulkchanges.leases import LeaseKeeper, LeaseKind, keeper


class Recorder:
    def __init__(self, *, fail: int = 0, keep: set[Hashable] | None = None) -> None:
        self.calls: list[frozenset[Hashable]] = []
        self.fail = fail
        self.keep = keep
        self.called = threading.Event()

    def __call__(self, items: frozenset[Hashable]) -> Iterable[Hashable] | None:
        self.calls.append(items)
        self.called.set()
        if self.fail:
            self.fail -= 1
            raise ConnectionError("database unavailable")
        return None if self.keep is None else items & self.keep


def test_every_held_item_of_a_kind_is_renewed_in_one_call_once_due() -> None:
    renew = Recorder()
    kind = LeaseKind("slots", renew=renew, interval=lambda: 10)
    lease_keeper = LeaseKeeper()
    lease_keeper.register(kind, "a")
    lease_keeper.register(kind, "b")

    lease_keeper.renew_due(now=0)  # registered just now: not due for another 10 s
    assert renew.calls == []
    lease_keeper.renew_due(now=float("inf"))
    assert renew.calls == [frozenset({"a", "b"})]

    lease_keeper.unregister(kind, "a")
    lease_keeper.renew_due(now=float("inf"))
    assert renew.calls[-1] == frozenset({"b"})


def test_a_failing_renewal_is_logged_once_and_tried_again_never_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    renew = Recorder(fail=2)
    kind = LeaseKind("device leases", renew=renew, interval=lambda: 3600)
    lease_keeper = LeaseKeeper()
    lease_keeper.register(kind, "token")
    with caplog.at_level(logging.INFO, logger="bulkchanges.leases"):
        for _ in range(3):
            lease_keeper.renew_due(now=float("inf"))

    assert len(renew.calls) == 3
    failures = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(failures) == 1 and "renewing 1 device leases failed" in failures[0].getMessage()
    assert any("works again" in record.getMessage() for record in caplog.records)
    assert lease_keeper.held(kind) == frozenset({"token"})


def test_items_the_renewal_no_longer_holds_are_dropped() -> None:
    renew = Recorder(keep={"still-mine"})
    kind = LeaseKind("hand-offs", renew=renew, interval=lambda: 3600)
    lease_keeper = LeaseKeeper()
    lease_keeper.register(kind, "still-mine")
    lease_keeper.register(kind, "taken-over")
    lease_keeper.renew_due(now=float("inf"))

    assert lease_keeper.held(kind) == frozenset({"still-mine"})


def test_the_keeper_thread_renews_while_held_and_stops_renewing_once_released() -> None:
    renew = Recorder()
    kind = LeaseKind("device leases", renew=renew, interval=lambda: 0.05)
    with kind.holding("token"):
        assert renew.called.wait(timeout=10), "the keeper thread never renewed"
    held_after = keeper().held(kind)
    assert held_after == frozenset()
    assert all(items == frozenset({"token"}) for items in renew.calls)


def test_a_forked_child_holds_nothing_of_its_parent() -> None:
    renew = Recorder()
    kind = LeaseKind("device leases", renew=renew, interval=lambda: 3600)
    kind.hold("parent-token")
    try:
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            os.write(write, str(len(keeper().held(kind))).encode())
            os._exit(0)
        os.close(write)
        held_in_child = os.read(read, 16).decode()
        os.waitpid(child, 0)
        os.close(read)
    finally:
        kind.release("parent-token")
    assert held_in_child == "0"
