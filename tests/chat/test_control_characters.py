"""A search or a new title with a NUL, a line break or another control character: the chat reads
it as one line of text. (PostgreSQL refuses NUL in any query or text column: these were 500s.)"""

import pytest
from django.urls import reverse

from chat.models import Conversation
from tests.chat.test_streaming import start
from tests.factories import make_deployment

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(mark, marketing) -> Conversation:
    return Conversation.objects.create(
        user=mark,
        deployment=make_deployment(department=marketing),
        department=marketing,
        title="Spring slogans",
    )


@pytest.mark.parametrize("query", ["\x00spring", "spring\x00", "spring\r\n", "\tspring"])
def test_a_search_with_control_characters_finds_what_the_text_says(client_for, mark, conversation, query):
    client = client_for(mark)
    for url in [
        reverse("chat:search"),
        reverse("chat:index"),
        reverse("chat:conversation", args=[conversation.pk]),
    ]:
        response = client.get(url, {"q": query})

        assert response.status_code == 200, url
        assert "Spring slogans" in response.content.decode(), url


def test_a_title_with_control_characters_is_saved_on_one_line(client_for, mark, conversation):
    response = client_for(mark).post(
        reverse("chat:rename", args=[conversation.pk]), {"title": "Summer\x00 slogans\r\n\x0b"}
    )

    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.title == "Summer slogans"


def test_a_title_of_control_characters_only_is_an_empty_title(client_for, mark, conversation):
    response = client_for(mark).post(
        reverse("chat:rename", args=[conversation.pk]), {"title": "\x00\x00"}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 400
    assert response.json() == {"error": "A title cannot be empty."}


def test_a_message_with_nul_is_saved_and_answered_without_it(browser_for, mark, copywriter):
    browser = browser_for(mark)
    started = start(browser, copywriter)

    reply = browser.stream(started["stream_url"], {"content": "a tagline\x00 for our coffee"})

    assert reply.status == 200
    assert reply.names[-1] == "done"
    question = Conversation.objects.get(pk=started["id"]).messages.order_by("created_at").first()
    assert question.content == "a tagline for our coffee"
