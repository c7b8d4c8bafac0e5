"""The chat's pages and sidebar actions: every view walks the ladder (anonymous, someone else,
a member without the deployment, the owner), plus start, rename, delete, search, export,
retention and history-off mode, and what admins may see."""

import json
import logging
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from chat.models import Conversation, Message
from chat.services import ChatInputError, conversation_title
from chat.tasks import purge_expired_conversations_task
from chat.turns import conversation_history, fitted_prompt
from money.models import UsageRecord
from org.models import Membership, PlatformGroup
from tests.factories import make_account, make_department, make_deployment, make_landing_zone, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def assistant(marketing):
    zone = make_landing_zone()
    return make_deployment(
        department=marketing,
        display_name="Marketing copy assistant",
        landing_zone=zone,
        account=make_account(landing_zone=zone),
    )


@pytest.fixture
def conversation(mark, marketing, assistant) -> Conversation:
    conversation = Conversation.objects.create(
        user=mark,
        deployment=assistant,
        department=marketing,
        title="Launch plan for the coffee range",
        expires_at=timezone.now() + timedelta(days=30),
    )
    Message.objects.create(conversation=conversation, role="user", content="Plan the launch of our coffee")
    Message.objects.create(
        conversation=conversation, role="assistant", content="## Plan\n\n```python\nprint('beans')\n```"
    )
    return conversation


def views_of(conversation):
    pk = conversation.pk
    return [
        ("get", reverse("chat:conversation", args=[pk])),
        ("post", reverse("chat:stream", args=[pk])),
        ("post", reverse("chat:regenerate", args=[pk])),
        ("post", reverse("chat:rename", args=[pk])),
        ("post", reverse("chat:delete", args=[pk])),
        ("get", reverse("chat:export", args=[pk]) + "?format=json"),
    ]


def test_anonymous_people_are_sent_to_sign_in(conversation):
    urls = [
        ("get", reverse("chat:index")),
        ("post", reverse("chat:start")),
        ("get", reverse("chat:search")),
        ("get", reverse("chat:export_all")),
        *views_of(conversation),
    ]
    for method, url in urls:
        response = getattr(Client(), method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("account_login")), url


def test_someone_elses_conversation_does_not_exist_for_them(conversation, lena, fred, client_for):
    for intruder in (lena, fred):  # the same department's lead, another department's member
        client = client_for(intruder)
        for method, url in views_of(conversation):
            response = getattr(client, method)(url, {"content": "hi", "title": "mine"})
            assert response.status_code == 404, (intruder, url)
    assert Conversation.objects.filter(pk=conversation.pk, title="Launch plan for the coffee range").exists()
    assert conversation.messages.count() == 2


def test_an_unknown_conversation_is_404(mark, client_for):
    assert client_for(mark).get(reverse("chat:conversation", args=[uuid.uuid4()])).status_code == 404


def test_a_member_without_the_deployment_cannot_start_a_chat_with_it(fred, assistant, client_for):
    response = client_for(fred).post(reverse("chat:start"), {"deployment": assistant.pk})

    assert response.status_code == 404
    assert response.json() == {"error": "That assistant does not exist or is not available to you."}
    assert not Conversation.objects.exists()


def test_the_owner_sees_their_conversation(conversation, mark, client_for, assistant):
    response = client_for(mark).get(reverse("chat:conversation", args=[conversation.pk]))

    assert response.status_code == 200
    context = response.context
    assert context["conversation"] == conversation
    assert [m.role for m in context["chat_messages"]] == ["user", "assistant"]
    assert context["conversation_cost"] == Decimal(0)
    assert context["retention_label"] == "Kept 30 days"
    assert context["budget"].department.name == "Marketing"
    assert list(context["deployments"]) == [assistant]
    assert context["conversations"] == [conversation]
    assert "Plan the launch of our coffee" in response.content.decode()


def test_the_index_offers_the_usable_deployments_and_who_pays(
    mark, marketing, finance, assistant, client_for
):
    Membership.objects.create(user=mark, department=finance)
    zone = make_landing_zone()
    shared = make_deployment(
        department=marketing, display_name="Company assistant", shared_with=[marketing, finance]
    )
    make_deployment(department=finance, display_name="Finance only", landing_zone=zone, state="provisioning")
    other = make_department(name="HR")
    make_deployment(department=other, display_name="HR helper")

    response = client_for(mark).get(reverse("chat:index"))

    assert response.status_code == 200
    context = response.context
    assert [d.display_name for d in context["deployments"]] == [
        "Company assistant",
        "Marketing copy assistant",
    ]
    assert context["paying_departments"] == {shared.pk: [finance, marketing], assistant.pk: [marketing]}
    assert context["conversation"] is None
    assert context["chat_messages"] == []
    assert context["query"] == ""


def test_someone_without_a_department_sees_an_explanation(client_for):
    response = client_for(make_user(email="new@example.com")).get(reverse("chat:index"))

    assert response.status_code == 200
    assert list(response.context["deployments"]) == []
    assert "You are not in a department yet" in response.content.decode()


def test_a_member_whose_department_has_no_assistant_sees_whom_to_ask(mark, lena, client_for):
    response = client_for(mark).get(reverse("chat:index"))

    assert response.status_code == 200
    assert "No assistant for you yet" in response.content.decode()


def test_start_needs_a_department_when_several_may_pay(mark, marketing, finance, client_for):
    Membership.objects.create(user=mark, department=finance)
    shared = make_deployment(
        department=marketing, display_name="Company assistant", shared_with=[marketing, finance]
    )
    client = client_for(mark)

    assert client.post(reverse("chat:start"), {"deployment": shared.pk}).json() == {
        "error": "Choose which of your departments pays for Company assistant."
    }
    other = make_department(name="HR")
    assert (
        client.post(reverse("chat:start"), {"deployment": shared.pk, "department": other.pk}).status_code
        == 400
    )
    response = client.post(reverse("chat:start"), {"deployment": shared.pk, "department": finance.pk})

    assert response.status_code == 201
    conversation = Conversation.objects.get()
    assert conversation.department == finance
    assert response.json() == {
        "id": str(conversation.pk),
        "url": f"/chat/{conversation.pk}/",
        "stream_url": f"/chat/{conversation.pk}/messages",
        "regenerate_url": f"/chat/{conversation.pk}/regenerate",
    }


def test_rename_redirects_back_or_answers_htmx(conversation, mark, client_for):
    client = client_for(mark)
    url = reverse("chat:rename", args=[conversation.pk])

    response = client.post(url, {"title": "  Coffee\nlaunch  "})
    assert response.status_code == 302
    assert response["Location"] == reverse("chat:conversation", args=[conversation.pk])
    conversation.refresh_from_db()
    assert conversation.title == "Coffee launch"

    assert client.post(url, {"title": "Beans"}, headers={"HX-Request": "true"}).status_code == 204
    assert client.post(url, {"title": " "}, headers={"HX-Request": "true"}).status_code == 400
    conversation.refresh_from_db()
    assert conversation.title == "Beans"


def test_delete_removes_the_conversation_but_keeps_the_money(
    conversation, mark, marketing, assistant, client_for
):
    record = UsageRecord.objects.create(
        department=marketing,
        user=mark,
        deployment=assistant,
        conversation=conversation,
        input_tokens=10,
        output_tokens=10,
        cost=Decimal("0.01"),
        created_at=timezone.now(),
    )

    response = client_for(mark).post(reverse("chat:delete", args=[conversation.pk]))

    assert response.status_code == 302
    assert response["Location"] == reverse("chat:index")
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()
    record.refresh_from_db()
    assert record.conversation is None
    assert record.cost == Decimal("0.01")


def test_search_finds_conversations_by_title_and_content(
    conversation, mark, marketing, assistant, client_for
):
    other = Conversation.objects.create(user=mark, deployment=assistant, department=marketing, title="Tea")
    Message.objects.create(conversation=other, role="user", content="Green or black?")
    someone_else = make_user(department=marketing)
    Conversation.objects.create(
        user=someone_else, deployment=assistant, department=marketing, title="Coffee too"
    )
    client = client_for(mark)

    by_title = client.get(reverse("chat:search"), {"q": "coffee"}, headers={"HX-Request": "true"})
    by_content = client.get(reverse("chat:search"), {"q": "BLACK"})

    assert by_title.status_code == 200
    html = by_title.content.decode()
    assert 'id="conversation-list"' in html
    assert "<html" not in html
    assert f'data-conversation="{conversation.pk}"' in html
    assert "Tea" not in html
    assert "Coffee too" not in html
    html = by_content.content.decode()
    assert f'data-conversation="{other.pk}"' in html
    assert str(conversation.pk) not in html


def test_export_one_conversation_as_markdown_and_json(conversation, mark, client_for):
    client = client_for(mark)

    markdown = client.get(reverse("chat:export", args=[conversation.pk]), {"format": "md"})
    exported = client.get(reverse("chat:export", args=[conversation.pk]), {"format": "json"})

    assert markdown.status_code == 200
    assert "attachment" in markdown["Content-Disposition"]
    text = markdown.content.decode()
    assert text.startswith("# Launch plan for the coffee range")
    assert "## You\n\nPlan the launch of our coffee" in text
    assert "print('beans')" in text
    assert exported["Content-Disposition"].endswith('.json"')
    data = json.loads(exported.content)
    assert [c["title"] for c in data["conversations"]] == ["Launch plan for the coffee range"]
    assert [m["role"] for m in data["conversations"][0]["messages"]] == ["user", "assistant"]


def test_export_all_holds_only_the_users_conversations(
    conversation, mark, lena, marketing, assistant, client_for
):
    Conversation.objects.create(user=lena, deployment=assistant, department=marketing, title="Lena's")

    response = client_for(mark).get(reverse("chat:export_all"), {"format": "json"})

    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["user"] == "mark@example.com"
    assert [c["id"] for c in data["conversations"]] == [str(conversation.pk)]


def test_the_purge_deletes_expired_conversations_and_keeps_usage(conversation, mark, marketing, assistant):
    expired = Conversation.objects.create(
        user=mark,
        deployment=assistant,
        department=marketing,
        expires_at=timezone.now() - timedelta(minutes=1),
    )
    Message.objects.create(conversation=expired, role="user", content="old")
    record = UsageRecord.objects.create(
        department=marketing,
        user=mark,
        deployment=assistant,
        conversation=expired,
        input_tokens=1,
        output_tokens=1,
        cost=Decimal("0.5"),
        created_at=timezone.now(),
    )

    assert purge_expired_conversations_task() == 1
    assert purge_expired_conversations_task() == 0  # safe to run twice

    assert list(Conversation.objects.all()) == [conversation]
    assert not Message.objects.filter(content="old").exists()
    record.refresh_from_db()
    assert record.conversation is None
    assert record.cost == Decimal("0.5")


def test_the_purge_runs_hourly_from_beat():
    schedule = settings.CELERY_BEAT_SCHEDULE["purge-expired-conversations"]
    assert schedule == {"task": "chat.tasks.purge_expired_conversations_task", "schedule": 3600.0}


def test_with_history_off_a_conversation_lives_only_in_the_browser_session(
    marketing, mark, assistant, client_for
):
    marketing.chat_retention_days = 0
    marketing.save()
    browser = client_for(mark)

    started = browser.post(reverse("chat:start"), {"deployment": assistant.pk}).json()

    conversation = Conversation.objects.get()
    lifetime = conversation.expires_at - timezone.now()
    assert (
        timedelta(seconds=settings.SESSION_COOKIE_AGE - 60)
        < lifetime
        <= timedelta(seconds=settings.SESSION_COOKIE_AGE)
    )
    assert browser.get(started["url"]).status_code == 200
    page = browser.get(reverse("chat:index"))
    assert page.context["conversations"] == [conversation]
    assert page.context["retention_label"] == "History off"

    another_session = client_for(mark)
    assert another_session.get(started["url"]).status_code == 404
    assert another_session.get(reverse("chat:index")).context["conversations"] == []

    conversation.expires_at = timezone.now() - timedelta(seconds=1)
    conversation.save()
    assert purge_expired_conversations_task() == 1


def test_history_off_conversations_end_with_the_browser_session(marketing, mark, assistant, client_for):
    marketing.chat_retention_days = 0
    marketing.save()
    browser = client_for(mark)
    started = browser.post(reverse("chat:start"), {"deployment": assistant.pk}).json()
    kept = Conversation.objects.create(user=mark, deployment=assistant, department=marketing)  # from before

    browser.post(reverse("account_logout"))

    assert list(Conversation.objects.all()) == [kept]
    assert client_for(mark).get(started["url"]).status_code == 404


def test_history_off_conversations_never_reappear_when_the_policy_changes(
    marketing, mark, assistant, client_for
):
    marketing.chat_retention_days = 0
    marketing.save()
    started = client_for(mark).post(reverse("chat:start"), {"deployment": assistant.pk}).json()

    marketing.chat_retention_days = 30
    marketing.save()

    later = client_for(mark)
    assert later.get(reverse("chat:index")).context["conversations"] == []
    assert later.get(started["url"]).status_code == 404


def test_titles_come_from_the_first_message():
    assert conversation_title("  hello\n\nworld ") == "Hello world"
    long = conversation_title(
        "please write a very long introduction for our quarterly newsletter about coffee"
    )
    assert long == "Please write a very long introduction for our quarterly…"
    assert len(long) <= 61


def test_long_conversations_are_trimmed_oldest_first_keeping_system_prompt_and_latest():
    history = [("user", "a " * 1000, 1000), ("assistant", "b " * 1000, 1000), ("user", "c " * 1000, 1000)]
    history.append(("user", "latest", None))

    # Room for the system prompt, "c" and "latest", not for "b": 3 + (3 + 3) + (3 + 1000) + (3 + 1).
    prompt, tokens = fitted_prompt(
        system_prompt="Be brief.", history=history, model_name="gpt-4o-mini", room=1020
    )

    assert [m["content"][:1] for m in prompt] == ["B", "c", "l"]
    assert prompt[0]["role"] == "system"
    assert tokens == 3 + (3 + 3) + (3 + 1000) + (3 + 1)


def test_a_message_that_cannot_fit_the_model_is_refused_not_cut():
    with pytest.raises(ChatInputError, match="context window"):
        fitted_prompt(
            system_prompt="", history=[("user", "word " * 500, None)], model_name="gpt-4o", room=100
        )


def test_the_history_sent_to_the_model_is_the_conversation_so_far(conversation, mark, marketing, assistant):
    other = Conversation.objects.create(user=mark, deployment=assistant, department=marketing)
    user, assistant_ = Message.Role.USER, Message.Role.ASSISTANT
    said = [
        Message.objects.create(conversation=conversation, role=user, content="First question"),
        Message.objects.create(conversation=conversation, role=assistant_, content="First answer"),
        Message.objects.create(conversation=other, role=user, content="Another conversation"),
        Message.objects.create(conversation=conversation, role=user, content="Second question"),
        # Failed before its first token: nothing for the model to read.
        Message.objects.create(conversation=conversation, role=assistant_, content=""),
        Message.objects.create(conversation=conversation, role=user, content="Third question"),
        Message.objects.create(conversation=conversation, role=assistant_, content="Later answer"),
    ]
    up_to = said[5]

    history = [
        (role, text)
        for role, text, _ in conversation_history(conversation_id=conversation.pk, up_to=up_to.pk)
    ]

    earlier = list(conversation.messages.filter(pk__lt=said[0].pk).values_list("role", "content"))
    assert history == [
        *earlier,
        ("user", "First question"),
        ("assistant", "First answer"),
        ("user", "Second question"),
        ("user", "Third question"),
    ]
    assert history == list(
        conversation.messages.filter(pk__lte=up_to.pk).exclude(content="").values_list("role", "content")
    )


def test_admins_see_no_content_unless_the_department_allows_auditing(conversation, marketing, client, caplog):
    admin = make_user(email="root@example.com", platform_group=PlatformGroup.ADMINS)
    admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    url = reverse("admin:chat_conversation_change", args=[conversation.pk])

    with caplog.at_level(logging.WARNING, logger="chat.audit"):
        hidden = client.get(url).content.decode()
        listing = client.get(reverse("admin:chat_conversation_changelist")).content.decode()
    assert "Plan the launch of our coffee" not in hidden
    assert "coffee range" not in hidden
    assert "coffee range" not in listing
    assert not caplog.records
    assert not AuditEvent.objects.filter(verb="chat.content_viewed").exists()

    marketing.approvers_may_audit_chats = True
    marketing.save()
    with caplog.at_level(logging.WARNING, logger="chat.audit"):
        shown = client.get(url).content.decode()
    assert "Plan the launch of our coffee" in shown
    assert len(caplog.records) == 1
    assert "root@example.com" in caplog.records[0].getMessage()
    assert str(conversation.pk) in caplog.records[0].getMessage()
    event = AuditEvent.objects.get(verb="chat.content_viewed")
    assert (event.actor, event.verb, event.object_id) == (admin, "chat.content_viewed", str(conversation.pk))
