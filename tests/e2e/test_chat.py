"""The chat in a real browser: a streamed Markdown answer with highlighted code, a stop half-way,
search after a reload, privacy by URL, sanitized model output, and the phone layout.

The Company assistant that seed_demo creates is provisioned here through the real path (the
provisioning service against the emulator, driven as the worker would), and the emulator writes
a token every 20 ms so that an answer can be stopped while it streams."""

import re

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from chat.models import Conversation, Message
from org.models import User
from provisioning import services
from provisioning.models import ModelDeployment
from tests.e2e.browser import sign_in
from tests.emulator.fixtures import drive_run

UUID_PATH = r"/chat/[0-9a-f-]{36}/$"


@pytest.fixture
def company_assistant(emulator, demo_site, settings) -> ModelDeployment:
    """The demo's shared assistant, provisioned on the emulator as a worker would do it."""
    settings.PROVISIONING_POLL_SECONDS = 0.1
    emulator.configure(per_token_ms=20)
    services.deployment_request_provisioning(
        deployment=ModelDeployment.objects.get(display_name="Company assistant")
    )
    assistant: ModelDeployment = drive_run(ModelDeployment.objects.get(display_name="Company assistant").pk)
    assert assistant.state == ModelDeployment.State.ACTIVE, assistant.status_message
    return assistant


def test_an_employee_gets_a_streamed_answer_stops_one_and_finds_the_conversation_again(
    page: Page, browser: Browser, demo_site, company_assistant
):
    sign_in(page, demo_site, "mark@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Chat").click()
    expect(page).to_have_url(f"{demo_site}/chat/")
    expect(page.get_by_text("No conversations yet")).to_be_visible()

    page.get_by_role("radio", name=re.compile("Company assistant")).check()
    expect(page.get_by_role("group", name="Assistant")).to_contain_text("gpt-4o-mini")
    expect(page.locator("#composer-info")).to_contain_text("Company assistant answers")
    expect(page.locator("#composer-info")).to_contain_text("Marketing pays")
    expect(page.locator("#composer-info")).to_contain_text("Kept 30 days")

    message = page.get_by_role("textbox", name="Message")
    conversation_url = _ask_and_see_a_highlighted_answer(page, message)
    _stop_a_long_answer_half_way(page, message)
    _find_it_again_after_a_reload(page, conversation_url)
    _finance_cannot_open_it(browser, demo_site, conversation_url)


def _ask_and_see_a_highlighted_answer(page: Page, message: Locator) -> str:
    """While the answer streams the input waits; the code in it is highlighted once complete."""
    message.fill("Write a python function that adds two numbers")
    message.press("Enter")

    # While the answer streams the input waits and a Stop button is offered.
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_visible()
    expect(message).to_be_disabled()
    expect(page).to_have_url(re.compile(UUID_PATH))
    conversation_url = page.url
    log = page.get_by_role("log", name="Conversation")
    expect(log.get_by_text("Write a python function that adds two numbers")).to_be_visible()

    first_answer = log.locator("article.chat-message--assistant").first
    code = first_answer.locator(".code-block pre code")
    expect(code).to_be_visible(timeout=20_000)
    expect(first_answer.get_by_role("button", name="Regenerate")).to_be_visible(timeout=20_000)
    expect(code).to_have_class(re.compile(r"\bhljs\b"))  # highlighted once complete
    expect(first_answer.get_by_role("button", name="Copy code")).to_be_visible()
    expect(first_answer.get_by_role("button", name="Copy", exact=True)).to_be_visible()
    expect(stop).to_be_hidden()
    expect(message).to_be_enabled()
    expect(message).to_be_focused()
    expect(page.locator("#composer-info")).to_contain_text(re.compile(r"This conversation so far: \$\d"))
    expect(
        page.locator("#conversation-list").get_by_role("link", name=re.compile("adds two numbers"))
    ).to_be_visible()
    return conversation_url


def _stop_a_long_answer_half_way(page: Page, message: Locator) -> None:
    """A second, long answer is stopped half-way: what was written stays, marked as stopped."""
    log = page.get_by_role("log", name="Conversation")
    stop = page.get_by_role("button", name="Stop")
    first_answer = log.locator("article.chat-message--assistant").first
    message.fill("Explain in detail how a hash map works, step by step")
    message.press("Enter")
    second_answer = log.locator("article.chat-message--assistant").nth(1)
    expect(second_answer.locator("[data-markdown]")).to_contain_text(
        re.compile(r"\w+ \w+ \w+"), timeout=20_000
    )
    stop.click()
    expect(second_answer).to_contain_text("Stopped")
    partial = second_answer.locator("[data-markdown]").inner_text()
    assert partial.strip()
    expect(message).to_be_enabled()
    expect(second_answer.get_by_role("button", name="Regenerate")).to_be_visible()
    expect(first_answer.get_by_role("button", name="Regenerate")).to_have_count(0)


def _find_it_again_after_a_reload(page: Page, conversation_url: str) -> None:
    # After a reload the conversation is still there, the stopped answer included, and search
    # (by what was asked) finds it.
    page.reload()
    log = page.get_by_role("log", name="Conversation")
    expect(log.locator("article.chat-message--assistant")).to_have_count(2)
    expect(log.locator("article.chat-message--assistant .code-block code.hljs").first).to_be_visible()
    search = page.get_by_role("searchbox", name="Search conversations")
    search.fill("hash map")
    results = page.locator("#conversation-list")
    expect(results.get_by_role("link")).to_have_count(1)
    search.fill("quantum entanglement of spreadsheets")
    expect(results).to_contain_text("Nothing matches")
    search.fill("")
    expect(results.get_by_role("link", name=re.compile("adds two numbers"))).to_be_visible()
    results.get_by_role("link", name=re.compile("adds two numbers")).click()
    expect(page).to_have_url(conversation_url)


def _finance_cannot_open_it(browser: Browser, demo_site: str, conversation_url: str) -> None:
    # Someone in Finance cannot open it, not even with the address.
    finance = browser.new_context()
    other = finance.new_page()
    sign_in(other, demo_site, "fred@example.com")
    response = other.goto(conversation_url)
    assert response is not None
    assert response.status == 404
    expect(other.get_by_role("heading", name="There is nothing here")).to_be_visible()
    expect(other.get_by_text("adds two numbers")).to_have_count(0)
    finance.close()


def test_model_output_never_runs_script(page: Page, demo_site):
    mark = User.objects.get(email="mark@example.com")
    assistant = ModelDeployment.objects.get(display_name="Company assistant")
    conversation = Conversation.objects.create(
        user=mark, deployment=assistant, department=mark.memberships.get().department, title="Markup test"
    )
    Message.objects.create(conversation=conversation, role="user", content='<b onclick="x()">Say it</b>')
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        content=(
            "Here you are:\n\n<script>window.pwned=1</script>\n\n"
            '<img src=x onerror="window.pwned=1">\n\n'
            "[a link](javascript:window.pwned=1) and **bold** text.\n\n"
            '<iframe src="javascript:window.pwned=1"></iframe>\n'
        ),
        finish_reason="stop",
    )

    sign_in(page, demo_site, "mark@example.com")
    page.goto(f"{demo_site}/chat/{conversation.pk}/")
    expect(page.locator("#chat.is-ready")).to_have_count(1)
    answer = page.locator("article.chat-message--assistant .markdown")
    expect(answer.locator("strong")).to_have_text("bold")  # the Markdown was rendered

    page.wait_for_timeout(300)
    assert page.evaluate("window.pwned") is None
    log = page.locator("#chat-log")
    expect(log.locator("script")).to_have_count(0)
    expect(log.locator("img")).to_have_count(0)
    expect(log.locator("iframe")).to_have_count(0)
    expect(log.locator("[onerror], [onclick]")).to_have_count(0)
    expect(log.locator("a[href^='javascript']")).to_have_count(0)
    # The markup is shown for what it is: text.
    expect(answer).to_contain_text("<script>window.pwned=1</script>")
    expect(log.locator("article.chat-message--user")).to_contain_text('<b onclick="x()">Say it</b>')


def test_on_a_phone_the_sidebar_slides_in_and_the_input_stays_usable(
    page: Page, demo_site, company_assistant
):
    mark = User.objects.get(email="mark@example.com")
    Conversation.objects.create(
        user=mark,
        deployment=company_assistant,
        department=mark.memberships.get().department,
        title="Quarterly newsletter ideas",
    )
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, demo_site, "mark@example.com")
    page.goto(f"{demo_site}/chat/")

    sidebar = page.get_by_role("complementary", name="Conversations")
    toggle = page.get_by_role("button", name="Conversations")
    expect(sidebar).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(sidebar).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(sidebar.get_by_role("link", name=re.compile("Quarterly newsletter ideas"))).to_be_in_viewport()
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(toggle).to_be_focused()

    message = page.get_by_role("textbox", name="Message")
    expect(message).to_be_in_viewport()
    before = message.bounding_box()
    message.click()
    page.keyboard.type("First line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("Second line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("Third line")
    expect(message).to_have_value("First line\nSecond line\nThird line")
    after = message.bounding_box()
    assert before is not None
    assert after is not None
    assert after["height"] > before["height"]  # it grew with the text
    page.get_by_role("button", name="Send").click()
    expect(page.locator("article.chat-message--user")).to_contain_text("Third line")
    expect(page.get_by_role("button", name="Regenerate")).to_be_visible(timeout=20_000)
    expect(message).to_be_in_viewport()
    sizes = page.evaluate("({page: document.documentElement.scrollWidth, viewport: window.innerWidth})")
    assert sizes["page"] <= sizes["viewport"], sizes
