"""Grounded answers in a real browser: an answer's [1], [2] link to the cited pages in the document
viewer, and the Sources list under it says whose documents answered. SCREENSHOT_DIR, when set,
keeps a picture of the page."""

import os
import re
from pathlib import Path

import pytest
from django.urls import NoReverseMatch, reverse
from playwright.sync_api import Page, expect

from chat.models import Conversation, Message
from grounding.models import Grounding
from grounding.quoting import citations_of
from grounding.retrieval import Passage
from org.models import Department, User
from provisioning.models import LandingZone, ModelDeployment
from tests.chat.conftest import provisioned
from tests.e2e.browser import sign_in
from tests.factories import make_account, make_department, make_user
from tests.grounding.backend import ingest, make_data_set, make_document


def keep_picture(page: Page, name: str) -> None:
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def viewer_installed() -> bool:
    try:
        reverse("grounding:document_view", kwargs={"document_id": 1})
    except NoReverseMatch:
        return False
    return True


LEAVE = Passage(
    number=1,
    id="handbook-v1-3",
    document_id=41,
    document_name="Employee handbook.pdf",
    data_set_id=5,
    data_set_name="HR policies",
    department_name="HR",
    page=4,
    heading="Leave > Parental leave",
    text="Parents get 16 weeks of parental leave at full pay. It can be taken in up to two blocks "
    "within the child's first two years.",
    score=0.92,
)
EXPENSES = Passage(
    number=2,
    id="travel-v2-0",
    document_id=42,
    document_name="Travel and expenses policy.docx",
    data_set_id=6,
    data_set_name="Finance rules",
    department_name="Finance",
    page=2,
    heading="Refunds",
    text="Travel costs are refunded within 30 days of the claim; receipts are needed above 25 euros.",
    score=0.81,
)
ANSWER = (
    "According to Employee handbook.pdf: Parents get **16 weeks** of parental leave at full pay [1]. "
    "Travel costs during the leave are refunded within 30 days of the claim [2]."
)


@pytest.fixture
def cited_conversation(demo_site) -> Conversation:
    company = ModelDeployment.objects.get(display_name="Company assistant")
    company.account = make_account(
        landing_zone=LandingZone.objects.get(slug="central"), region=company.region
    )
    company.state = ModelDeployment.State.ACTIVE
    company.save()
    conversation = Conversation.objects.create(
        user=User.objects.get(email="mark@example.com"),
        deployment=company,
        department=Department.objects.get(slug="marketing"),
        title="Parental leave and travel costs",
    )
    Message.objects.create(
        conversation=conversation,
        role=Message.Role.USER,
        content="How long is parental leave, and are travel costs refunded?",
    )
    Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content=ANSWER,
        citations=citations_of(ANSWER, [LEAVE, EXPENSES]),
        finish_reason="stop",
    )
    return conversation


def test_a_cited_answer_links_its_sources_and_says_whose_documents_answered(
    page: Page, demo_site, cited_conversation
):
    sign_in(page, demo_site, "mark@example.com")
    page.goto(f"{demo_site}/chat/{cited_conversation.pk}/")

    answer = page.get_by_role("article", name="Answer")
    expect(answer.locator(".citation")).to_have_count(2)
    sources = answer.get_by_role("region", name="Sources")
    expect(sources).to_contain_text("from HR\u2019s and Finance\u2019s documents")
    expect(sources).to_contain_text("Employee handbook.pdf, page 4")
    expect(sources).to_contain_text("HR policies · HR")
    expect(sources).to_contain_text("Travel and expenses policy.docx, page 2")
    expect(answer.locator("strong")).to_have_text("16 weeks")  # still Markdown around the links
    keep_picture(page, "chat-cited-answer")
    if viewer_installed():
        first = answer.locator("a.citation").first
        viewer = reverse("grounding:document_view", kwargs={"document_id": LEAVE.document_id})
        expect(first).to_have_attribute("href", f"{viewer}?page=4")


HANDBOOK = b"""# Employee handbook

## Parental leave

Parents get 16 weeks of parental leave at full pay. The leave can be taken in up to two blocks
within the child's first two years.

## Remote work

Employees may work remotely up to three days a week with their lead's agreement.
"""


# The journey over ingested documents (the search service and the emulator's embeddings) -----


@pytest.fixture
def hr_helper(asgi_server, emulator, search_backend, search_zone) -> ModelDeployment:
    """HR's helper grounded on HR's policies: a handbook ingested as uploads are."""
    hr = make_department(name="HR", slug="hr", cost_center="CC-4100")
    hana = make_user(email="hana@example.com", department=hr, role="lead")
    helen = make_user(email="helen@example.com", first_name="Helen", department=hr)
    helen.set_password("switchyard-demo")
    helen.save()
    policies = make_data_set(department=hr, owner=hana, zone=search_zone, name="HR policies")
    handbook = ingest(make_document(data_set=policies, name="Employee handbook.md", content=HANDBOOK))
    assert handbook.state == handbook.State.INDEXED, handbook.state_reason
    emulator.configure(per_token_ms=5)
    helper = provisioned(
        hr,
        search_zone,
        display_name="HR policy helper",
        name="hr-helper",
        system_prompt="You answer questions about HR policies.",
    )
    Grounding.objects.create(deployment=helper, data_set=policies, state=Grounding.State.ACTIVE)
    return helper


def test_a_member_asks_the_hr_helper_and_opens_the_cited_page(page: Page, asgi_server, hr_helper):
    sign_in(page, asgi_server, "helen@example.com")
    page.goto(f"{asgi_server}/chat/")
    page.get_by_role("textbox", name="Message").fill("How many weeks of parental leave do parents get?")
    page.get_by_role("textbox", name="Message").press("Enter")

    answer = page.get_by_role("article", name="Answer").last
    expect(answer.get_by_role("region", name="Sources")).to_contain_text(
        "from HR\u2019s documents", timeout=20_000
    )
    expect(answer).to_contain_text("16 weeks")
    expect(answer.get_by_role("region", name="Sources")).to_contain_text("Employee handbook.md")
    expect(answer.get_by_role("region", name="Sources")).to_contain_text("HR policies · HR")
    expect(answer.locator(".citation").first).to_be_visible()
    keep_picture(page, "chat-grounded-answer")
    if viewer_installed():
        with page.context.expect_page() as opened:
            answer.locator("a.citation").first.click()
        viewer = opened.value
        document = Grounding.objects.get(deployment=hr_helper).data_set.documents.get()
        expect(viewer).to_have_url(
            re.compile(re.escape(reverse("grounding:document_view", args=[document.pk])))
        )
        keep_picture(viewer, "chat-citation-viewer")
