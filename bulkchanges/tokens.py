"""The shared TokenStore for token carriers: Django's cache (Redis in production, the database
cache locally), with a lock made of ``cache.add`` so that N workers on N hosts authenticate once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.cache import cache

from integrations.base import TransientError

PREFIX = "pondops:tokens:"


class CacheTokenStore:
    def get(self, key: str) -> Any:
        return cache.get(PREFIX + key)

    def set(self, key: str, value: Any, *, ttl: float) -> None:
        cache.set(PREFIX + key, value, timeout=max(1, int(ttl)))

    def delete(self, key: str) -> None:
        cache.delete(PREFIX + key)

    @contextmanager
    def lock(self, key: str, *, timeout: float = 30) -> Iterator[None]:
        """``cache.add`` is atomic on Redis and on the database cache (an INSERT), so only one
        holder at a time; the lock expires by itself if its holder dies."""
        name, owner = f"{PREFIX}lock:{key}", uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        while not cache.add(name, owner, timeout=int(timeout) + 1):
            if time.monotonic() > deadline:
                raise TransientError(f"timed out waiting for the {key} lock")
            time.sleep(0.05)
        try:
            yield
        finally:
            if cache.get(name) == owner:
                cache.delete(name)


token_store = CacheTokenStore()
