"""The emulator's sign-in pages (provisioning/emulator/oidc.py): the page that lists the tenant's
people, Entra's error page and the form_post page. Plain HTML with its own small stylesheet: the
emulator serves no static files."""

import html
from dataclasses import dataclass
from typing import Any

from provisioning.emulator.identity_registry import DEMO_PEOPLE_PASSWORD


@dataclass(frozen=True)
class SignInForm:
    tenant: str
    client_name: str
    hidden_fields: dict[str, str]


STYLE = """
:root { --ink: #1b1b1b; --muted: #5e5e5e; --line: #c8c8c8; --accent: #0067b8; --error: #a4262c; }
* { box-sizing: border-box; }
body { margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center;
  background: #eef2f6; color: var(--ink); font: 15px/1.45 "Segoe UI", system-ui, -apple-system, sans-serif; }
main { width: min(440px, 100vw - 24px); background: #fff; padding: 40px 44px 32px;
  box-shadow: 0 2px 6px rgba(0,0,0,.2); }
.brand { display: flex; align-items: center; gap: 10px; font-weight: 600; color: var(--muted); }
.logo { display: grid; grid-template-columns: 10px 10px; gap: 2px; }
.logo span { width: 10px; height: 10px; }
.logo span:nth-child(1) { background: #f25022; } .logo span:nth-child(2) { background: #7fba00; }
.logo span:nth-child(3) { background: #00a4ef; } .logo span:nth-child(4) { background: #ffb900; }
h1 { font-size: 24px; font-weight: 600; margin: 20px 0 4px; }
.lead { color: var(--muted); margin: 0 0 18px; }
fieldset { border: 0; padding: 0; margin: 0 0 14px; }
legend { font-weight: 600; margin-bottom: 6px; }
.person { display: flex; gap: 12px; align-items: center; padding: 10px 12px; border: 1px solid var(--line);
  margin-bottom: 6px; cursor: pointer; }
.person:hover { background: #f3f6f9; }
.person:has(input:checked) { border-color: var(--accent); background: #eaf3fb; }
.avatar { width: 34px; height: 34px; border-radius: 50%; background: #e1e6ec; display: grid; place-items: center;
  font-weight: 600; color: #2b4a6b; flex: none; }
.person small { display: block; color: var(--muted); }
.disabled { color: var(--error); font-size: 13px; }
label.field { display: block; font-weight: 600; margin: 14px 0 4px; }
input[type=password] { width: 100%; padding: 8px 2px; border: 0; border-bottom: 1px solid #666; font: inherit; }
input[type=password]:focus { outline: none; border-bottom: 2px solid var(--accent); }
.hint { color: var(--muted); font-size: 13px; margin: 6px 0 0; }
.error { color: var(--error); margin: 0 0 12px; }
.actions { display: flex; justify-content: flex-end; gap: 8px; margin-top: 24px; }
button { min-width: 108px; padding: 7px 14px; font: inherit; border: 1px solid transparent; cursor: pointer; }
button.primary { background: var(--accent); color: #fff; }
button.secondary { background: #e6e6e6; color: var(--ink); }
button:focus-visible, .person:focus-within { outline: 2px solid #000; outline-offset: 2px; }
footer { margin-top: 26px; padding-top: 12px; border-top: 1px solid #eee; color: var(--muted); font-size: 12px; }
code { font-family: ui-monospace, Consolas, monospace; font-size: 13px; word-break: break-all; }
"""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body><main>"
        '<div class="brand"><span class="logo" aria-hidden="true"><span></span><span></span><span></span>'
        "<span></span></span>Microsoft Entra ID</div>"
        f"{body}"
        "<footer>Azure emulator: a stand-in for Microsoft's sign-in, for development and tests. "
        "Nothing here reaches Microsoft.</footer></main></body></html>"
    )


def _initials(name: str) -> str:
    return "".join(part[0] for part in name.split()[:2]).upper() or "?"


def sign_in_page(
    form: SignInForm, people: list[tuple[str, dict[str, Any]]], *, selected: str, error: str | None
) -> str:
    """The page that lists the tenant's people, with a password field and the request's
    parameters carried in hidden fields."""
    escape = html.escape
    hidden = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in form.hidden_fields.items()
    )
    choices = []
    for number, (username, person) in enumerate(people):
        name = str(person.get("name") or username)
        checked = " checked" if username == selected or (not selected and number == 0) else ""
        disabled = (
            "" if person.get("accountEnabled", True) else '<span class="disabled">Account disabled</span>'
        )
        choices.append(
            f'<label class="person"><input type="radio" name="username" value="{escape(username)}"{checked}>'
            f'<span class="avatar" aria-hidden="true">{escape(_initials(name))}</span>'
            f"<span>{escape(name)}<small>{escape(username)}</small>{disabled}</span></label>"
        )
    people_list = "".join(choices) or '<p class="lead">This tenant has nobody who can sign in yet.</p>'
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    action = f"/{escape(form.tenant)}/oauth2/v2.0/authorize"
    body = (
        "<h1>Sign in</h1>"
        f'<p class="lead">to continue to <strong>{escape(form.client_name)}</strong></p>'
        f'{message}<form method="post" action="{action}">{hidden}'
        f"<fieldset><legend>Pick an account</legend>{people_list}</fieldset>"
        '<label class="field" for="password">Password</label>'
        '<input type="password" id="password" name="password" autocomplete="current-password" autofocus>'
        f'<p class="hint">The demo people\'s password is <code>{escape(DEMO_PEOPLE_PASSWORD)}</code>.</p>'
        '<div class="actions"><button type="submit" class="secondary" name="cancel" value="1">Cancel</button>'
        '<button type="submit" class="primary">Sign in</button></div></form>'
    )
    return _page("Sign in to your account", body)


def error_page(*, code: int, error: str, description: str) -> str:
    """Entra's page for a request it will not send back: the client or redirect URI is unknown."""
    body = (
        "<h1>Sorry, but we are having trouble signing you in.</h1>"
        f'<p class="error" role="alert">AADSTS{code}: {html.escape(description)}</p>'
        f'<p class="hint">Error code <code>{html.escape(error)}</code>. The application that sent you here '
        "needs to be registered with this redirect URI; nothing was sent back to it.</p>"
    )
    return _page("Sign in to your account", body)


def form_post_page(redirect_uri: str, answer: dict[str, str]) -> str:
    fields = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in answer.items()
    )
    # Entra's form_post page submits itself with a script; the button is for browsers without one.
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Working...</title></head>'
        f'<body><form method="post" name="hiddenform" action="{html.escape(redirect_uri)}">{fields}'
        '<noscript><p>Script is disabled. Click Submit to continue.</p><button type="submit">Submit</button>'
        "</noscript></form><script>document.forms[0].submit();</script></body></html>"
    )
