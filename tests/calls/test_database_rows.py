"""A read-only query that a call waits for (calls.database.database_rows): from the event loop on
PostgreSQL, as a job on the database thread elsewhere; the same rows either way, with what other
connections have committed."""

import asyncio

import pytest
from django.test import override_settings

from base import loop_database
from calls import database
from org.models import Department
from tests.factories import make_department


@pytest.mark.django_db(transaction=True)
@override_settings(CHAT_DATABASE_THREAD=True)
def test_the_rows_of_a_values_list_query_with_what_was_committed():
    make_department(name="Marketing")
    make_department(name="Human Resources")

    async def run() -> list[tuple[object, ...]]:
        try:
            return await database.database_rows(
                Department.objects.filter(name__in=["Marketing", "Finance"])
                .order_by()
                .values_list("name", "pk")
            )
        finally:
            await loop_database.close()
            await database.close_connection()

    rows = asyncio.run(run())

    assert rows == [("Marketing", Department.objects.get(name="Marketing").pk)]
