"""Django's Redis cache, with the process's connections to Redis shared by every request.

Django keeps a cache object per request context under ASGI, and its Redis client opens a
connection pool per cache object: every request (and every chat turn's database job, which runs
in its request's context) connected to Redis anew, with a health check, before its first cache
call. Django also builds a new `redis.Redis` around the pool for every call, which costs about as
much CPU as the call itself. Here each process keeps one client, with its pool, per Redis server:
the client is thread-safe (the pool hands each command a connection of its own), so it serves
every call, request and thread. Sessions, the chat's counters and its remembered checks all go
through the cache, several calls per chat turn.
"""

import threading
from typing import Any

from django.core.cache.backends import redis

from base import compat

_clients: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


class RedisCacheClient(redis.RedisCacheClient):
    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        server = compat.redis_server(self, write=write)
        client = _clients.get(server)
        if client is None:
            with _lock:
                client = _clients.get(server)
                if client is None:
                    client = _clients[server] = compat.redis_client(self, write=write)
        return client


class RedisCache(redis.RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        compat.redis_cache_use_client(self, RedisCacheClient)
