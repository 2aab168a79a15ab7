"""The per-process objects the views use, created once per app and shared by requests."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Flask, current_app

from cacheservice.access import AccessControl
from cacheservice.cache import Cache
from cacheservice.config import Settings
from cacheservice.limits import RateLimiter
from cacheservice.store.connection import connect
from cacheservice.store.entries import EntryStore
from cacheservice.store.invalidation import Invalidator
from cacheservice.store.keys import KeySpace

EXTENSION_NAME = "cacheservice"


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: redis.Redis
    cache: Cache
    access: AccessControl

    @classmethod
    def build(cls, settings: Settings) -> Services:
        # redis-py opens connections lazily and its pool notices a fork, so building the
        # client here is safe before gunicorn forks its workers.
        client = connect(settings)
        keyspace = KeySpace(settings.namespace_buckets)
        cache = Cache(settings, EntryStore(client, keyspace), Invalidator(client, keyspace))
        access = AccessControl.build(settings, RateLimiter.build(settings, client))
        return cls(settings, client, cache, access)

    @classmethod
    def init_app(cls, app: Flask, settings: Settings) -> Services:
        services = cls.build(settings)
        app.extensions[EXTENSION_NAME] = services
        return services


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION_NAME]
    return found


def cache() -> Cache:
    return services().cache
