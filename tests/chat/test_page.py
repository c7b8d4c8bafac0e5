"""The chat template against the view contract: what a person sees in each situation, and the
rules the page must keep (no inline script or style, model output escaped until chat.js
sanitizes it). Rendered directly, so each case needs no model call."""

import re
from decimal import Decimal

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory

from chat.models import Conversation, Message
from money.budgets import BudgetStatus
from org.models import Department, Membership, User
from tests.factories import make_department, make_deployment, make_user

pytestmark = pytest.mark.django_db


def render_page(user: User, **context: object) -> str:
    request = RequestFactory().get("/chat/")
    request.user = user
    defaults: dict[str, object] = {
        "deployments": [],
        "paying_departments": {},
        "conversations": [],
        "conversation": None,
        "chat_messages": [],
        "conversation_cost": None,
        "budget": None,
        "retention_label": "Kept 30 days",
        "query": "",
    }
    context = {**defaults, **context}
    # As the view gives them: each assistant with the data sets it answers from (none here).
    context.setdefault("assistant_choices", [(deployment, []) for deployment in context["deployments"]])  # type: ignore[attr-defined]
    return render_to_string("chat/chat.html", context, request=request)


@pytest.fixture
def marketing_lead_name(marketing: Department) -> str:
    make_user(email="lena@example.com", first_name="Lena", department=marketing, role=Membership.Role.LEAD)
    return "Lena"


def test_without_an_assistant_the_page_explains_whom_to_ask(marketing, marketing_member, marketing_lead_name):
    html = render_page(marketing_member)

    assert "No assistant for you yet" in html
    assert "Marketing" in html
    assert marketing_lead_name in html
    assert 'id="composer"' not in html


def test_without_a_department_the_page_explains_where_departments_come_from(db):
    html = render_page(make_user(email="new@example.com"))

    assert "You are not in a department yet" in html
    assert 'id="composer"' not in html


def test_a_department_picker_appears_only_for_an_assistant_more_than_one_department_pays_for(
    marketing, finance, marketing_member
):
    Membership.objects.create(user=marketing_member, department=finance)
    shared = make_deployment(
        department=marketing, display_name="Company assistant", shared_with=[marketing, finance]
    )
    dedicated = make_deployment(department=marketing, display_name="Copywriter")

    html = render_page(
        marketing_member,
        deployments=[shared, dedicated],
        paying_departments={shared.pk: [finance, marketing], dedicated.pk: [marketing]},
    )

    assert html.count("<select") == 1
    assert f'data-departments-for="{shared.pk}"' in html
    only_payer = rf'type="hidden" name="department"[^>]*value="{marketing.pk}"[^>]*for="{dedicated.pk}"'
    assert re.search(only_payer, html)
    assert "gpt-4o-mini · 2024-07-18 · shared" in html
    assert "What can I help with?" in html


def test_a_conversation_shows_its_messages_escaped_for_chat_js_to_render(marketing, marketing_member):
    assistant = make_deployment(department=marketing, display_name="Copywriter")
    conversation = Conversation.objects.create(
        user=marketing_member, deployment=assistant, department=marketing, title="Launch email"
    )
    question = Message.objects.create(conversation=conversation, role="user", content="Write <b>it</b>")
    answer = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="**Hi** <script>alert(1)</script>",
        finish_reason="stop",
    )

    html = render_page(
        marketing_member,
        deployments=[assistant],
        conversations=[conversation],
        conversation=conversation,
        chat_messages=[question, answer],
        conversation_cost=Decimal("0.000156"),
    )

    assert "<script>alert(1)</script>" not in html
    assert '<div class="markdown" data-markdown>**Hi** &lt;script&gt;alert(1)&lt;/script&gt;</div>' in html
    assert "Write &lt;b&gt;it&lt;/b&gt;" in html
    assert html.count("data-regenerate>") == 1
    assert "This conversation so far: <span data-conversation-cost>$0.0002</span>" in html
    assert "<strong>Copywriter</strong> answers" in html
    assert "Marketing pays" in html
    assert 'aria-current="page"' in html


def test_the_page_has_no_inline_script_or_style(marketing, marketing_member):
    assistant = make_deployment(department=marketing)
    html = render_page(
        marketing_member, deployments=[assistant], paying_departments={assistant.pk: [marketing]}
    )

    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    assert " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None


def test_an_exhausted_budget_names_the_department_and_pauses_the_input(marketing, marketing_member):
    assistant = make_deployment(department=marketing)
    budget = BudgetStatus(marketing, spent=Decimal("1000.00"), budget=Decimal("1000.00"))

    html = render_page(marketing_member, deployments=[assistant], budget=budget)

    assert "Marketing has used its monthly budget" in html
    assert re.search(r"<textarea[^>]*disabled", html)


def test_the_conversation_list_renders_alone_for_search(marketing, marketing_member):
    request = RequestFactory().get("/chat/search?q=nothing")
    request.user = marketing_member

    html = render_to_string(
        "chat/chat.html#conversation-list", {"conversations": [], "query": "nothing"}, request=request
    )

    assert html.strip().startswith('<nav id="conversation-list"')
    assert "Nothing matches “nothing”" in html


def test_a_department_with_history_off_says_so(marketing_member):
    department = make_department(name="Legal", chat_retention_days=0)
    assert department.retention_label == "History off"
    assistant = make_deployment(department=department)

    html = render_page(
        marketing_member,
        deployments=[assistant],
        paying_departments={assistant.pk: [department]},
        retention_label=department.retention_label,
    )

    assert "History off" in html
