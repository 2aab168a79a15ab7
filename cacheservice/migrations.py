"""Applying the numbered SQL scripts of ``sql/``, each exactly once.

Every applied script is recorded in ``schema_migrations``. The whole upgrade runs under a
Postgres advisory lock, so two hosts starting at once apply each script once between them:
the second waits, then finds nothing left to do.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cacheservice.db import SQL_DIR

log = logging.getLogger(__name__)

# Any fixed number, unique to this service within the database: "cache" on a phone keypad.
ADVISORY_LOCK_ID = 22243
SCRIPT_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")


def scripts(directory: Path = SQL_DIR) -> list[Path]:
    """The forward-only scripts in version order."""
    found = [path for path in directory.iterdir() if SCRIPT_NAME.fullmatch(path.name)]
    return sorted(found, key=lambda path: path.name)


def ensure_database(url: str) -> bool:
    """Create the database ``url`` names if it does not exist; True when it was created."""
    params = conninfo_to_dict(url)
    name = params.get("dbname") or params.get("user") or "postgres"
    try:
        psycopg.connect(url, connect_timeout=5).close()
        return False
    except psycopg.OperationalError as error:
        if "does not exist" not in str(error):
            raise
    maintenance = make_conninfo(url, dbname="postgres")
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(name))))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            # Another host created it a moment ago (a race surfaces as either error).
            return False
    log.info("created database %s", name)
    return True


def upgrade(url: str, directory: Path = SQL_DIR) -> list[str]:
    """Apply every script not yet applied; returns the names of those applied now."""
    ensure_database(url)
    applied_now: list[str] = []
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for script in scripts(directory):
                if script.name in done:
                    continue
                with conn.transaction():
                    # A script of several statements: sent without parameters, in one go.
                    conn.execute(script.read_text().encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES (%s)", (script.name,)
                    )
                applied_now.append(script.name)
                log.info("applied %s", script.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_ID,))
    return applied_now
