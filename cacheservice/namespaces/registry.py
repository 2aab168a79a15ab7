"""Every namespace's configuration, as this process last read it from Postgres.

Postgres is the source of truth. Each process reloads all configurations (and any new
compression dictionaries) every ``refresh_interval`` seconds in a background thread, so a
change reaches every web worker within seconds without a query per request; while Postgres is
down, the last configuration read keeps serving. Changes made through this process take
effect in it at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import psycopg_pool
from psycopg.types.json import Jsonb

from cacheservice.db import Database
from cacheservice.namespaces.config import NamespaceConfig

log = logging.getLogger(__name__)

REFRESH_INTERVAL_SECONDS = 2.0


@dataclass(frozen=True)
class StoredConfig:
    namespace: str
    config: NamespaceConfig
    created_at: datetime | None
    updated_at: datetime | None
    created: bool = False


@dataclass
class NamespaceRegistry:
    database: Database
    queries: dict[str, str]
    defaults: NamespaceConfig
    refresh_interval: float = REFRESH_INTERVAL_SECONDS
    _configs: dict[str, StoredConfig] = field(default_factory=dict)
    _dictionaries: dict[int, bytes] = field(default_factory=dict)
    _latest_dictionary: dict[str, int] = field(default_factory=dict)
    _loaded_at: float = 0.0
    _refresher_pid: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: bool = False

    # Reading (hot path: memory only).

    def config(self, namespace: str) -> NamespaceConfig:
        self._ensure_fresh()
        stored = self._configs.get(namespace)
        return stored.config if stored is not None else self.defaults

    def stored(self, namespace: str) -> StoredConfig | None:
        self._ensure_fresh()
        return self._configs.get(namespace)

    def all(self) -> list[StoredConfig]:
        self._ensure_fresh()
        return sorted(self._configs.values(), key=lambda stored: stored.namespace)

    def dictionary(self, dictionary_id: int) -> bytes | None:
        found = self._dictionaries.get(dictionary_id)
        if found is None:
            # Written by another process since our last refresh. Its id may be below ones
            # this process already holds (it trained one itself meanwhile, or transactions
            # committed out of id order), which a refresh never looks at: fetch from it on.
            self._load_dictionaries(after=dictionary_id - 1)
            found = self._dictionaries.get(dictionary_id)
        return found

    def latest_dictionary(self, namespace: str) -> tuple[int, bytes] | None:
        self._ensure_fresh()
        dictionary_id = self._latest_dictionary.get(namespace)
        if dictionary_id is None:
            return None
        data = self.dictionary(dictionary_id)
        return None if data is None else (dictionary_id, data)

    def _load_dictionaries(self, after: int) -> None:
        try:
            with self.database.connection() as conn:
                rows = conn.execute(self.queries["dictionaries_after"], {"after": after}).fetchall()
        except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
            log.warning("compression dictionaries not loaded, Postgres unavailable: %s", error)
            return
        for dictionary_id, _namespace, data in rows:
            self._dictionaries[int(dictionary_id)] = bytes(data)

    def _ensure_fresh(self) -> None:
        if self._refresher_pid == os.getpid():
            return
        with self._lock:
            if self._refresher_pid == os.getpid():
                return
            self._refresher_pid = os.getpid()
        # The first read in a process loads synchronously; after that a thread keeps it fresh.
        self.refresh()
        thread = threading.Thread(
            target=_refresh_forever, args=(weakref.ref(self), self.refresh_interval), daemon=True
        )
        thread.start()

    def refresh(self) -> bool:
        """Reload from Postgres; False (and the old state kept) when it is unreachable."""
        try:
            with self.database.connection() as conn:
                rows = conn.execute(self.queries["all_configurations"]).fetchall()
                known = max(self._dictionaries, default=0)
                new_dictionaries = conn.execute(
                    self.queries["dictionaries_after"], {"after": known}
                ).fetchall()
                latest = conn.execute(self.queries["latest_dictionaries"]).fetchall()
        except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
            log.warning("namespace configurations not refreshed, Postgres unavailable: %s", error)
            return False
        configs = {row[0]: self._from_row(row) for row in rows}
        # A change this process made after the read above began must not be rolled back by
        # it: keep whichever copy is newer.
        for namespace, mine in self._configs.items():
            loaded = configs.get(namespace)
            if loaded is not None and _newer(mine, loaded):
                configs[namespace] = mine
        for dictionary_id, _namespace, data in new_dictionaries:
            self._dictionaries[int(dictionary_id)] = bytes(data)
        self._latest_dictionary = {
            namespace: int(dictionary_id) for namespace, dictionary_id in latest
        }
        self._configs = configs
        self._loaded_at = time.time()
        return True

    def _from_row(self, row: tuple[Any, ...], created: bool = False) -> StoredConfig:
        namespace, configuration, status, created_at, updated_at = row[:5]
        config = NamespaceConfig.from_stored(self.defaults, dict(configuration or {}), status)
        return StoredConfig(namespace, config, created_at, updated_at, created)

    # Writing (admin API: Postgres first, then this process's copy).

    def put(self, namespace: str, config: NamespaceConfig) -> StoredConfig:
        body = config.to_body()
        status = body.pop("status")
        with self.database.connection() as conn:
            row = conn.execute(
                self.queries["put_configuration"],
                {"namespace": namespace, "configuration": Jsonb(body), "status": status},
            ).fetchone()
        row = _returned(row)
        stored = self._from_row(row, created=bool(row[5]))
        self._configs = {**self._configs, namespace: stored}
        return stored

    def patch(
        self, namespace: str, changes: dict[str, Any], encryption_available: bool
    ) -> StoredConfig:
        """Merge ``changes`` into the stored configuration under a row lock (no lost update).

        The merged configuration is checked inside the lock: two PATCHes that are each valid
        against an older copy must not combine into an invalid one (say gzip at level 20).
        """
        with self.database.connection() as conn, conn.transaction():
            conn.execute(self.queries["lock_configuration"], {"namespace": namespace})
            row = conn.execute(
                self.queries["get_configuration"], {"namespace": namespace}
            ).fetchone()
            current = self._from_row(row).config if row else self.defaults
            merged = current.merged(changes)
            merged.check(encryption_available)
            body = merged.to_body()
            status = body.pop("status")
            saved = conn.execute(
                self.queries["put_configuration"],
                {"namespace": namespace, "configuration": Jsonb(body), "status": status},
            ).fetchone()
        saved = _returned(saved)
        stored = self._from_row(saved, created=bool(saved[5]))
        self._configs = {**self._configs, namespace: stored}
        return stored

    def delete(self, namespace: str) -> bool:
        with self.database.connection() as conn:
            row = conn.execute(
                self.queries["delete_configuration"], {"namespace": namespace}
            ).fetchone()
        self._configs = {
            name: stored for name, stored in self._configs.items() if name != namespace
        }
        return row is not None

    def add_dictionary(self, namespace: str, data: bytes, samples: int) -> tuple[int, datetime]:
        with self.database.connection() as conn:
            row = conn.execute(
                self.queries["insert_dictionary"],
                {"namespace": namespace, "data": data, "samples": samples},
            ).fetchone()
        row = _returned(row)
        dictionary_id = int(row[0])
        self._dictionaries[dictionary_id] = data
        self._latest_dictionary = {**self._latest_dictionary, namespace: dictionary_id}
        return dictionary_id, row[1]


def _newer(mine: StoredConfig, loaded: StoredConfig) -> bool:
    if mine.updated_at is None or loaded.updated_at is None:
        return False
    return bool(mine.updated_at > loaded.updated_at)


def _returned(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """The row of an INSERT/UPSERT ... RETURNING, which always returns one."""
    if row is None:
        raise RuntimeError("INSERT ... RETURNING returned no row")
    return row


def _refresh_forever(registry: weakref.ref[NamespaceRegistry], interval: float) -> None:
    while True:
        time.sleep(interval)
        current = registry()
        if current is None or current.stopped:
            return
        try:
            current.refresh()
        except Exception:  # The refresher must outlive any single failure; it logs and goes on.
            log.exception("namespace configuration refresh failed")
        del current
