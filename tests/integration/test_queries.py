"""Every named query of ``sql/queries.sql`` prepares against the migrated schema (STYLE 6).

Postgres prepares only plain statements (SELECT, INSERT, UPDATE, DELETE, VALUES): the temp
table statements are run instead (their tables then exist for the queries that use them), and
the COPY statements are run with no rows. Each query is checked in a transaction rolled back
afterwards, so nothing is left behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cacheservice.db import load_queries

# Uses no Redis: run once, on the single-node pass.
pytestmark = pytest.mark.topology_independent

QUERIES = load_queries()
REPOSITORY = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
# The statements that make the temp tables other queries read; run before each check.
TEMP_TABLES = sorted(name for name, sql in QUERIES.items() if sql.startswith("CREATE TEMP TABLE"))


def numbered(sql: str) -> tuple[str, list[str]]:
    """``%(name)s`` placeholders as ``$n`` (the same name, the same number)."""
    names: list[str] = []

    def number(found: re.Match[str]) -> str:
        if found.group(1) not in names:
            names.append(found.group(1))
        return f"${names.index(found.group(1)) + 1}"

    return PLACEHOLDER.sub(number, sql), names


@pytest.fixture(scope="module")
def connection(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url) as conn:
        yield conn


def test_there_are_named_queries() -> None:
    assert {"claim_batch", "upsert_metrics", "metric_totals", "top_keys", "ping"} <= set(QUERIES)
    assert all(sql.strip() for sql in QUERIES.values())


def test_placeholders_are_numbered_by_name() -> None:
    sql, names = numbered("SELECT %(a)s, %(b)s WHERE %(a)s::text IS NULL")

    assert sql == "SELECT $1, $2 WHERE $1::text IS NULL"
    assert names == ["a", "b"]


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_named_query_prepares(connection: psycopg.Connection[Any], name: str) -> None:
    sql = QUERIES[name]
    # The connection is not in autocommit: everything below is one transaction, rolled back.
    try:
        if name in TEMP_TABLES:
            connection.execute(sql)
            return
        for table in TEMP_TABLES:
            connection.execute(QUERIES[table])
        if sql.startswith("COPY"):
            with connection.cursor().copy(sql):
                pass  # No rows: the statement itself is what is checked.
            return
        statement, names = numbered(sql)
        assert "%(" not in statement, "a placeholder that is not %(name)s"
        connection.execute(f"PREPARE named_query AS {statement}")
        described = connection.execute(
            "SELECT cardinality(parameter_types) FROM pg_prepared_statements "
            "WHERE name = 'named_query'"
        ).fetchone()
        assert described == (len(names),)
    finally:
        connection.rollback()
        connection.execute("DEALLOCATE ALL")
        connection.commit()


def test_every_query_the_code_names_exists() -> None:
    used: set[str] = set()
    for package in ("cacheservice", "workers"):
        for source in (REPOSITORY / package).rglob("*.py"):
            used |= set(re.findall(r"""queries\[["'](\w+)["']\]""", source.read_text()))

    assert used, "no named query found in the code"
    assert used <= set(QUERIES), sorted(used - set(QUERIES))
