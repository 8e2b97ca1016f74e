"""A circuit breaker around the shared Redis connection. After a Redis error, a cache built on
it (the order cache, the API token cache) skips Redis for a few seconds and reads the
database, instead of making every request wait for a timeout."""

import logging
import time

from django_redis import get_redis_connection

logger = logging.getLogger(__name__)


class RedisBreaker:
    every: list["RedisBreaker"] = []  # so that tests can close them all

    def __init__(self, name: str, *, seconds: float = 5.0):
        self.name = name
        self.seconds = seconds
        self.open_until = 0.0
        RedisBreaker.every.append(self)

    def client(self):
        """The raw Redis client, or None while the breaker is open."""
        if time.monotonic() < self.open_until:
            return None
        return get_redis_connection("default")

    def trip(self, exc: Exception) -> None:
        self.open_until = time.monotonic() + self.seconds
        logger.warning("%s unavailable, reading from the database: %s", self.name, exc)

    def close(self) -> None:
        self.open_until = 0.0
