"""Statements sent from the event loop on connections of its own (base/loop_database.py): several
at once on a few connections, a failed statement leaving its connection usable, and the
connections closed when asked (before a test database is dropped). On PostgreSQL only, which is
where the gateway uses them."""

import asyncio

import psycopg
import pytest
from django.db import connection

from base import loop_database

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")


@pytest.mark.django_db(transaction=True)
def test_more_statements_at_once_than_connections_all_answer():
    async def run() -> tuple[list[list[tuple[object, ...]]], int]:
        database = loop_database.loop_database()
        try:
            answers = await asyncio.gather(
                *(database.fetchall("SELECT %s::integer, pg_sleep(0.01)", [number]) for number in range(12))
            )
            return list(answers), database.opened
        finally:
            await loop_database.close()

    answers, opened = asyncio.run(run())

    assert [rows[0][0] for rows in answers] == list(range(12))
    assert opened <= loop_database.CONNECTIONS


@pytest.mark.django_db(transaction=True)
def test_a_failed_statement_leaves_the_connections_usable():
    async def run() -> list[tuple[object, ...]]:
        database = loop_database.loop_database()
        try:
            with pytest.raises(psycopg.errors.DataError):
                await database.fetchall("SELECT CAST(%s AS integer)", ["no room"])
            return await database.fetchall("SELECT 1", [])
        finally:
            await loop_database.close()

    assert asyncio.run(run()) == [(1,)]


@pytest.mark.django_db(transaction=True)
def test_closing_leaves_no_connection_open():
    async def run() -> int:
        database = loop_database.loop_database()
        await database.fetchall("SELECT 1", [])
        await loop_database.close()
        return database.opened

    assert asyncio.run(run()) == 0


@pytest.mark.django_db(transaction=True)
def test_a_statement_is_prepared_once_per_connection_and_bound_by_the_server():
    statement = "SELECT %s::integer + 1 AS prepared_here"

    async def run() -> tuple[list[int], list[tuple[object, ...]]]:
        database = loop_database.LoopDatabase(size=1)
        try:
            answers = [(await database.fetchall(statement, [number]))[0][0] for number in range(3)]
            prepared = await database.fetchall(
                "SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", ["%prepared_here%"]
            )
            return answers, prepared
        finally:
            await database.close()

    answers, prepared = asyncio.run(run())

    assert answers == [1, 2, 3]
    # One prepared statement for the three runs, its parameter a placeholder, not a quoted value.
    assert [row[0] for row in prepared] == ["SELECT $1::integer + 1 AS prepared_here"]
