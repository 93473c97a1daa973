"""Leases that die with their process: one keeper thread per process renews what it holds
(docs/architecture.md §6).

Something a process holds on a lease — a claimed device, a chunk handed to it, a concurrency
slot — is registered here under its :class:`LeaseKind` while the process works on it. The
keeper renews each kind every ``interval()`` seconds with **one call for everything of that
kind the process holds** (for device leases: one UPDATE for every claim token), so a live
process keeps its leases however slow its work is (a 30 s HTTP read), and a dead one's expire
within one lease: nobody renews them any more, and the reaper takes them back.

Promises:
- The keeper never raises into the worker: a renewal that fails (the database is down) is
  logged and tried again at the next tick; the lease is then only as safe as its length.
- It runs on its own daemon thread with its own database connection, closed after every tick
  (so a connection never outlives a database restart), started on the first registration.
- After ``fork`` the child holds nothing and starts its own thread when it first needs one
  (django-q2 forks its workers from the sentinel).
- A renewal may say which of its items it still holds; the others are dropped (a chunk handed
  to a process whose devices were all taken over by their worker needs no more renewals).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import connection

logger = logging.getLogger(__name__)

# Renews every held item of a kind at once; returns the items still held (None: all of them).
Renew = Callable[[frozenset[Hashable]], Iterable[Hashable] | None]


@dataclass(eq=False)
class LeaseKind:
    """A kind of leased thing, renewed every ``interval()`` seconds while this process holds
    any (the interval is read at each tick, so settings changed by tests apply)."""

    name: str
    renew: Renew
    interval: Callable[[], float]

    def hold(self, item: Hashable) -> None:
        keeper().register(self, item)

    def release(self, item: Hashable) -> None:
        keeper().unregister(self, item)

    @contextmanager
    def holding(self, item: Hashable) -> Iterator[None]:
        """Renew ``item`` while the block runs."""
        self.hold(item)
        try:
            yield
        finally:
            self.release(item)


@dataclass(eq=False)
class _Held:
    items: set[Hashable] = field(default_factory=set)
    due: float = 0.0  # monotonic time of the next renewal
    failing: bool = False


class LeaseKeeper:
    """The per-process renewer: a daemon thread that wakes when a kind is due."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._held: dict[LeaseKind, _Held] = {}
        self._thread: threading.Thread | None = None

    def register(self, kind: LeaseKind, item: Hashable) -> None:
        with self._lock:
            held = self._held.setdefault(kind, _Held())
            if not held.items:
                held.due = time.monotonic() + kind.interval()
            held.items.add(item)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="pondops-lease-keeper", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def unregister(self, kind: LeaseKind, item: Hashable) -> None:
        with self._lock:
            held = self._held.get(kind)
            if held is not None:
                held.items.discard(item)

    def held(self, kind: LeaseKind) -> frozenset[Hashable]:
        with self._lock:
            held = self._held.get(kind)
            return frozenset(held.items) if held else frozenset()

    def renew_due(self, now: float | None = None) -> None:
        """Renew every kind that is due (the thread's tick; tests call it directly)."""
        clock = time.monotonic()
        now = clock if now is None else now
        with self._lock:
            due = [
                (kind, held, frozenset(held.items))
                for kind, held in self._held.items()
                if held.items and held.due <= now
            ]
            for kind, held, _ in due:
                held.due = clock + kind.interval()
        try:
            for kind, held, items in due:
                self._renew(kind, held, items)
        finally:
            connection.close()  # the keeper's own connection; a fresh one next tick

    def _renew(self, kind: LeaseKind, held: _Held, items: frozenset[Hashable]) -> None:
        try:
            kept = kind.renew(items)
        except Exception:  # never into the worker: log, try again at the next tick
            if not held.failing:
                logger.exception(
                    "renewing %s %s failed; retrying every %.1f s",
                    len(items),
                    kind.name,
                    kind.interval(),
                )
            held.failing = True
            return
        if held.failing:
            logger.info("renewing %s works again", kind.name)
        held.failing = False
        if kept is not None:
            dropped = items - set(kept)
            if dropped:
                with self._lock:
                    held.items -= dropped

    def _run(self) -> None:
        while True:
            with self._lock:
                pending = [held.due for held in self._held.values() if held.items]
                wait = max(0.0, min(pending) - time.monotonic()) if pending else None
                if wait is None or wait > 0:
                    self._wake.wait(wait)
                    continue
            try:
                self.renew_due()
            except Exception:  # the loop itself must survive anything
                logger.exception("lease keeper tick failed")


_keeper = LeaseKeeper()


def keeper() -> LeaseKeeper:
    return _keeper


def _after_fork_in_child() -> None:
    """A forked child inherits the parent's registrations but not its thread: start empty."""
    global _keeper
    _keeper = LeaseKeeper()


os.register_at_fork(after_in_child=_after_fork_in_child)
