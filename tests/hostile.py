"""Hostile input for every page: the values to send, the URL patterns to send them to, and what
each page reads, found by asking the pages themselves rather than by a list kept by hand.

- Routes come from the URL configuration (`routes()`), each with a concrete URL: one a crawl of
  the site found (`crawl()`), else one filled in from the pattern (`fallback_url()`).
- Query parameters are the keys a view reads from `request.GET` (recorded by `RecordingMiddleware`
  while the crawl visits it), the keys of the links and GET forms that point at it, and, for views
  that read the whole query (the admin's add pages take every field as initial data), the fields
  of its own forms.
- POST fields are the fields of every form that posts to it, plus the keys the view reads from
  `request.POST` when sent an empty one (`probe()`).
- A parameter that every route of one view reads (the admin's `_popup` on each model) is that
  view's own and is fuzzed on its first route only (`share_view_parameters()`).
"""

import re
import traceback
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

from asgiref.sync import iscoroutinefunction
from django.db import transaction
from django.http import HttpRequest, HttpResponse, QueryDict
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404
from django.utils.regex_helper import normalize

HOSTILE: dict[str, str] = {
    "empty": "",
    "huge": "9" * 20_000,
    "negative": "-1",
    "non-numeric": "abc",
    "nan": "NaN",
    "inf": "inf",
    "1e999999": "1e999999",
    "past-64-bits": "99999999999999999999",
    "null-byte": "\x00",
    "script": "<script>alert(1)</script>",
    "attribute-break": '"><img src=x onerror=alert(1)>',
    # A real month, at the start of the calendar: a page stepping back a month from it overflows.
    "first-month": "0001-01",
}
# What must never come back unescaped in an HTML page.
MARKUP = [HOSTILE["script"], "<img src=x onerror=alert(1)>"]

WILDCARD = "*"  # a view read the whole query (items(), lists(), iteration)


# Recording what a view reads ---------------------------------------------------------------------

_reads: dict[str, set[str]] | None = None


def _note(kind: str, key: str) -> None:
    if _reads is not None:
        _reads.setdefault(kind, set()).add(key)


class RecordingQueryDict(QueryDict):
    """A QueryDict that notes every key read from it; `kind` is "GET" or "POST"."""

    kind = "GET"

    def __getitem__(self, key: str) -> Any:
        _note(self.kind, key)
        return super().__getitem__(key)

    def getlist(self, key: str, default: Any = None) -> Any:
        _note(self.kind, key)
        return super().getlist(key, default)

    def __contains__(self, key: object) -> bool:
        _note(self.kind, str(key))
        return super().__contains__(key)

    def items(self) -> Any:
        _note(self.kind, WILDCARD)
        return super().items()

    def lists(self) -> Any:
        _note(self.kind, WILDCARD)
        return super().lists()

    def keys(self) -> Any:
        _note(self.kind, WILDCARD)
        return super().keys()

    def __iter__(self) -> Iterator[str]:
        _note(self.kind, WILDCARD)
        return super().__iter__()


class RecordingPost(RecordingQueryDict):
    kind = "POST"


def _recording(data: QueryDict, cls: type[RecordingQueryDict]) -> RecordingQueryDict:
    copy = cls(mutable=True)
    for key, values in dict.items(data):
        copy.setlist(key, list(values))
    copy._mutable = False
    return copy


class RecordingMiddleware:
    """Last in the chain, so what it records is what the view (and its forms) read."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _reads is not None:
            request.GET = _recording(request.GET, RecordingQueryDict)  # type: ignore[assignment]
            if request.method == "POST":
                # The body first: once request.POST has parsed a multipart stream, the body cannot be
                # read, and the API reads it (a view that never touches POST must still find it).
                request.body  # noqa: B018
                request._post = _recording(request.POST, RecordingPost)  # type: ignore[attr-defined]
        response: HttpResponse = self.get_response(request)
        return response


class recording:
    """`with recording() as reads:` notes the keys read from request.GET / request.POST."""

    def __enter__(self) -> dict[str, set[str]]:
        global _reads
        _reads = {}
        return _reads

    def __exit__(self, *exc: object) -> None:
        global _reads
        _reads = None


# Reading pages -----------------------------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)  # what the form sends untouched
    names: list[str] = field(default_factory=list)  # every field a person can set
    switches: set[str] = field(default_factory=set)  # submit buttons: each takes its own path
    extra_actions: list[str] = field(default_factory=list)  # hx-post inside the form

    def add_name(self, name: str) -> None:
        if name and name not in self.names:
            self.names.append(name)


class PageParser(HTMLParser):
    """Links (href, hx-get, form actions, data-* paths), htmx targets and forms of a page."""

    def __init__(self, url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.url = url
        self.links: list[str] = []
        self.fragments: list[tuple[str, str]] = []  # (hx-get URL, target element id)
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: tuple[str, bool, list[str], list[str]] | None = None
        self._textarea: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self._links(tag, attributes)
        if tag == "form":
            action = urljoin(self.url, attributes.get("action", ""))
            self._form = Form(action, attributes.get("method", "get").lower())
        elif self._form is not None:
            self._field(tag, attributes)

    def _links(self, tag: str, attributes: dict[str, str]) -> None:
        for name, value in attributes.items():
            if name in {"href", "action", "hx-get", "hx-post"} and not value.startswith(("#", "javascript:")):
                self.links.append(urljoin(self.url, value))
            elif name.startswith("data-") and name != "data-ajax--url" and value.startswith("/"):
                self.links.append(value)
        if "data-ajax--url" in attributes:
            # A select2 widget (the admin's autocomplete) asks its URL with its data-* attributes.
            query = {
                name.removeprefix("data-").replace("-", "_"): value
                for name, value in attributes.items()
                if name in {"data-app-label", "data-model-name", "data-field-name"}
            }
            self.links.append(f"{attributes['data-ajax--url']}?{urlencode(query)}")
        if "hx-get" in attributes:
            target = attributes.get("hx-target", "").removeprefix("#")
            self.fragments.append(
                (urljoin(self.url, attributes["hx-get"]), target or attributes.get("id", ""))
            )
        if "hx-post" in attributes and self._form is not None:
            self._form.extra_actions.append(urljoin(self.url, attributes["hx-post"]))

    def _field(self, tag: str, attributes: dict[str, str]) -> None:
        assert self._form is not None
        name = attributes.get("name", "")
        kind = attributes.get("type", "text").lower()
        if tag == "input" and name and kind != "file":
            self._form.add_name(name)
            if kind in {"checkbox", "radio"}:
                if "checked" in attributes:
                    self._form.fields.append((name, attributes.get("value", "on")))
            elif kind in {"submit", "image", "button"}:
                self._form.switches.add(name)
                if not any(sent == name for sent, _ in self._form.fields):
                    self._form.fields.append((name, attributes.get("value", "")))
            else:
                self._form.fields.append((name, attributes.get("value", "")))
        elif tag == "button" and name and attributes.get("type", "submit") == "submit":
            self._form.add_name(name)
            self._form.switches.add(name)
            if not any(sent == name for sent, _ in self._form.fields):
                self._form.fields.append((name, attributes.get("value", "")))
        elif tag == "select" and name:
            self._select = (name, "multiple" in attributes, [], [])
        elif tag == "option" and self._select is not None:
            value = attributes.get("value", "")
            self._select[2].append(value)
            if "selected" in attributes:
                self._select[3].append(value)
        elif tag == "textarea" and name:
            self._textarea = (name, [])

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._form is not None:
            self.forms.append(self._form)
            self._form = None
        elif tag == "select" and self._select is not None and self._form is not None:
            name, multiple, options, selected = self._select
            self._form.add_name(name)
            chosen = selected or ([] if multiple else options[:1])
            self._form.fields.extend((name, value) for value in chosen)
            self._select = None
        elif tag == "textarea" and self._textarea is not None and self._form is not None:
            name, text = self._textarea
            self._form.add_name(name)
            self._form.fields.append((name, "".join(text).removeprefix("\n")))
            self._textarea = None


# Routes ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    route: str  # as ResolverMatch.route spells it
    pattern: URLPattern

    @property
    def is_admin(self) -> bool:
        return self.route.startswith("admin/")

    @property
    def streams(self) -> bool:
        """An async view: the chat's streamed answers, whose body goes to the model."""
        return iscoroutinefunction(self.pattern.callback)


def _join(prefix: str, route: str) -> str:
    return prefix + route.removeprefix("^") if prefix else route


def routes() -> list[Route]:
    """Every URL pattern of the project, admin and third-party apps included."""

    def walk(patterns: list[Any], prefix: str) -> Iterator[Route]:
        for pattern in patterns:
            route = _join(prefix, str(pattern.pattern))
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            else:
                yield Route(route, pattern)

    return list(walk(get_resolver().url_patterns, ""))


def route_of(url: str) -> str | None:
    try:
        return resolve(urlsplit(url).path).route
    except Resolver404:
        return None


_SAMPLES = ["1", "x", str(uuid.UUID(int=1))]
_CONVERTED = re.compile(r"<(?:\w+:)?(\w+)>")


def fallback_url(route: str) -> str:
    """A URL that this route (and no earlier one) resolves, each parameter filled with a sample
    its converter or regex accepts. The object is unlikely to exist: its 404 is tested too."""
    if "(?P" in route:
        candidates = normalize(route)
    else:
        candidates = [(_CONVERTED.sub(r"%(\1)s", route), _CONVERTED.findall(route))]
    for format_string, params in candidates:
        for sample in _SAMPLES:
            url = "/" + format_string % dict.fromkeys(params, sample)
            if route_of(url) == route:
                return url
    raise AssertionError(f"No URL found for the route {route!r}")


# Crawling ----------------------------------------------------------------------------------------


@dataclass
class Target:
    """What one route looks like from the pages: a URL to call and what it reads."""

    url: str
    query_keys: set[str] = field(default_factory=set)
    fragment_targets: set[str] = field(default_factory=set)
    forms: list[Form] = field(default_factory=list)
    own_forms: list[Form] = field(default_factory=list)  # forms on its own page
    reads: set[str] = field(default_factory=set)
    status: int = 0  # its answer to a plain GET, once visited
    post_reads: set[str] = field(default_factory=set)
    post_status: int = 0  # its answer to an empty POST; 0 for the chat's streamed answers
    shared: set[str] = field(default_factory=set)  # fuzzed on another route of the same view
    failures: list[str] = field(default_factory=list)  # of the plain GET and the empty POST


def _same_site(url: str) -> bool:
    parts = urlsplit(url)
    # __fk__ and __prefix__ stand in for ids in the admin's URL templates for its JavaScript.
    placeholder = "__fk__" in url or "__prefix__" in url
    return not placeholder and parts.scheme in {"", "http"} and parts.netloc in {"", "testserver"}


def crawl(client: Any, starts: list[str]) -> dict[str, Target]:
    """Visit each route reachable by links from `starts` once (GET), noting what it reads."""
    targets: dict[str, Target] = {}
    queue = deque(starts)
    while queue:
        url = queue.popleft()
        route = route_of(url)
        if route is None or (route in targets and targets[route].url != url):
            continue
        target = targets.setdefault(route, Target(url))
        if target.status:
            continue
        with recording() as reads:
            response = client.get(url)
        target.reads, target.status = reads.get("GET", set()), response.status_code
        if "text/html" not in response.get("Content-Type", ""):
            continue
        page = PageParser(url)
        page.feed(response.content.decode(errors="replace"))
        for link in page.links:
            _note_link(targets, link, queue)
        for link, target_id in page.fragments:
            if (linked := route_of(link)) is not None:
                targets.setdefault(linked, Target(link)).fragment_targets.add(target_id)
        for form in page.forms:
            _note_form(targets, route, form, queue)
    return targets


def _note_link(targets: dict[str, Target], link: str, queue: deque[str]) -> None:
    if not _same_site(link) or (route := route_of(link)) is None:
        return
    target = targets.setdefault(route, Target(link))
    target.query_keys.update(key for key, _ in parse_qsl(urlsplit(link).query, keep_blank_values=True))
    queue.append(link)


def _note_form(targets: dict[str, Target], page_route: str, form: Form, queue: deque[str]) -> None:
    for action in [form.action, *form.extra_actions]:
        if not _same_site(action) or (route := route_of(action)) is None:
            continue
        target = targets.setdefault(route, Target(action))
        if form.method == "get":
            target.query_keys.update(form.names)
            queue.append(action)
        elif len(target.forms) < 2 and all(known.names != form.names for known in target.forms):
            target.forms.append(Form(action, "post", list(form.fields), list(form.names), set(form.switches)))
        if route == page_route:
            targets[page_route].own_forms.append(form)


def send(client: Any, method: str, url: str, data: Any = None, **headers: str) -> Any:
    """One request, rolled back, with the session cookie as it was (a hostile sign-out or
    session change must not spoil the next request)."""
    cookies = SimpleCookie(client.cookies.output(header="", sep=";"))
    with transaction.atomic():
        response = getattr(client, method)(url, data, headers=headers or None)
        transaction.set_rollback(True)
    client.cookies = cookies
    return response


def failure(response: Any) -> str:
    """What is wrong with an answer to hostile input: a server error, or markup shown as sent."""
    if response.status_code >= 500:
        head = ""
        if getattr(response, "exc_info", None):
            head = traceback.format_exception_only(*response.exc_info[:2])[-1].strip()
        return f"{response.status_code} {head[:300]}"
    if "text/html" in response.get("Content-Type", "") and not response.streaming:
        body = response.content.decode(errors="replace")
        if any(markup in body for markup in MARKUP):
            return "markup shown unescaped"
    return ""


def probe(client: Any, route: Route, target: Target) -> None:
    """What the route reads from a plain GET (unless the crawl has seen it) and an empty POST."""
    if not target.status:
        with recording() as reads:
            response = send(client, "get", target.url)
        target.reads, target.status = reads.get("GET", set()), response.status_code
        if found := failure(response):
            target.failures.append(f"GET {target.url} -> {found}")
    if route.streams:
        return  # the chat's answers: what is posted goes to the model (tests/chat)
    with recording() as reads:
        response = send(client, "post", target.url, {})
    target.post_reads, target.post_status = reads.get("POST", set()) - {WILDCARD}, response.status_code
    if found := failure(response):
        target.failures.append(f"POST {target.url} (empty) -> {found}")


def _view_of(route: Route) -> str:
    callback = route.pattern.callback
    view = getattr(callback, "view_class", callback)
    return f"{view.__module__}.{view.__qualname__}"


def share_view_parameters(routes: list[Route], targets: dict[str, Target]) -> None:
    """A parameter that every route of one view reads (the admin's _popup, _to_field, its save
    buttons) is the view's own: the same code reads it on each route, so only the view's first
    route fuzzes it. A parameter only some routes read (a model's fields and filters) is fuzzed
    on each."""
    by_view: dict[str, list[Target]] = {}
    for route in routes:
        by_view.setdefault(_view_of(route), []).append(targets[route.route])
    for group in by_view.values():
        if len(group) > 1:
            common = set.intersection(*(target.reads | target.post_reads for target in group)) - {WILDCARD}
            for target in group[1:]:
                target.shared |= common


def with_query(url: str, changes: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = [(name, current) for name, current in parse_qsl(parts.query, keep_blank_values=True)]
    query = [(name, current) for name, current in query if name not in changes] + list(changes.items())
    return f"{parts.path}?{urlencode(query)}"


def alone(name: str, form: Form, reads: set[str]) -> bool:
    """Fields sent hostile one at a time even when the rest go together: a submit button the
    view reads picks its path, and a formset's form counts decide whether its forms are read."""
    return (name in form.switches and name in reads) or name.endswith(("-TOTAL_FORMS", "-INITIAL_FORMS"))
