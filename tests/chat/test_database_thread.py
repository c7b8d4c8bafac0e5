"""The chat's database work on its own thread and connection (calls/database.py), as it runs in
the web process: on committed data, so these tests use a transactional database. Every other chat
test runs the same thread on the test's connection, in the test's transaction (conftest.py)."""

import asyncio
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from django.db import IntegrityError, connection, connections
from django.urls import reverse

from calls import database
from chat.models import Message
from money.models import UsageRecord
from org.models import Department
from tests.factories import make_department

pytestmark = pytest.mark.django_db(transaction=True)


def open_connections() -> int:
    return sum(connection.connection is not None for connection in connections.all(initialized_only=True))


def test_an_answer_is_prepared_and_saved_on_the_database_thread(browser_for, mark, copywriter):
    browser = browser_for(mark)
    started = browser.post(reverse("chat:start"), {"deployment": copywriter.pk}).json()

    reply = browser.stream(started["stream_url"], {"content": "A slogan for tea"})
    again = browser.stream(started["regenerate_url"])

    assert reply.names[0] == "start"
    assert reply.names[-1] == again.names[-1] == "done"
    assert list(Message.objects.values_list("role", flat=True)) == ["user", "assistant"]
    assert Message.objects.get(role="assistant").content == again.text
    assert UsageRecord.objects.count() == 2


def test_anonymous_people_are_sent_to_sign_in_by_the_streaming_views(browser_for, client, mark, copywriter):
    started = browser_for(mark).post(reverse("chat:start"), {"deployment": copywriter.pk}).json()

    response = client.post(started["stream_url"], {"content": "Hello"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert not Message.objects.exists()


def test_the_thread_keeps_its_connection_from_one_answer_to_the_next(browser_for, mark, copywriter):
    browser = browser_for(mark)
    started = browser.post(reverse("chat:start"), {"deployment": copywriter.pk}).json()
    browser.stream(started["stream_url"], {"content": "Hello"})

    # The next question does not wait for a connection to be opened.
    assert async_to_sync(database.database_job)(open_connections) == 1


def test_the_thread_lets_go_of_its_connection_after_a_quiet_spell(monkeypatch, browser_for, mark, copywriter):
    monkeypatch.setattr(database, "IDLE_SECONDS", 0.05)
    browser = browser_for(mark)
    started = browser.post(reverse("chat:start"), {"deployment": copywriter.pk}).json()
    browser.stream(started["stream_url"], {"content": "Hello"})

    time.sleep(0.5)

    # A quiet process holds no connection (the check itself opens none).
    assert async_to_sync(database.database_job)(open_connections) == 0


def test_closing_the_connection_waits_for_the_jobs_before_it(browser_for, mark, copywriter):
    browser = browser_for(mark)
    started = browser.post(reverse("chat:start"), {"deployment": copywriter.pk}).json()
    browser.stream(started["stream_url"], {"content": "Hello"})

    async_to_sync(database.close_connection)()

    assert async_to_sync(database.database_job)(open_connections) == 0
    assert UsageRecord.objects.count() == 1


@pytest.mark.django_db  # the data in the test's transaction, as every other chat test keeps it
def test_a_chat_test_runs_its_database_work_on_the_thread_in_its_transaction(browser_for, mark, copywriter):
    browser = browser_for(mark)
    started = browser.post(reverse("chat:start"), {"deployment": copywriter.pk}).json()

    reply = browser.stream(started["stream_url"], {"content": "A slogan for tea"})

    def where() -> tuple[str, object]:
        return threading.current_thread().name, connections["default"]

    assert reply.names[-1] == "done"
    assert async_to_sync(database.database_job)(where) == ("chat-database", connection)
    assert list(Message.objects.values_list("role", flat=True)) == ["user", "assistant"]


def test_jobs_queued_together_commit_together_and_fail_alone():
    make_department(slug="taken")
    gate = threading.Event()
    commits = []

    def wait_for_the_others() -> None:
        gate.wait(5)

    def add(slug: str) -> str:
        connection.on_commit(lambda: commits.append(slug))
        return make_department(slug=slug).slug

    def add_then_refuse(slug: str) -> None:
        make_department(slug=slug)
        raise ValueError("refused after writing")

    def add_twice() -> None:
        make_department(slug="twice")
        make_department(slug="taken")  # the unique slug: a database error

    async def queue_together() -> list[object]:
        blocking = asyncio.ensure_future(database.database_job(wait_for_the_others))
        await asyncio.sleep(0.05)  # the thread is busy: what follows queues up behind it
        jobs = [
            asyncio.ensure_future(job)
            for job in (
                database.database_job(add, "first"),
                database.database_job(add_twice),
                database.database_job(add_then_refuse, "refused"),
                database.database_job(add, "last"),
            )
        ]
        await asyncio.sleep(0.05)
        gate.set()
        await blocking
        return await asyncio.gather(*jobs, return_exceptions=True)

    first, twice, refused, last = async_to_sync(queue_together)()

    assert (first, last) == ("first", "last")
    assert isinstance(twice, IntegrityError)
    assert isinstance(refused, ValueError)
    # The failed job's writes are undone, the others' kept; each is told after the one commit.
    assert set(Department.objects.values_list("slug", flat=True)) == {"taken", "first", "refused", "last"}
    assert commits == ["first", "last"]
