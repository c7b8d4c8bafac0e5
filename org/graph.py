"""Microsoft Graph, as the directory sync and a sign-in with a groups overage read it.

The same code talks to Graph and to the emulator: only ENTRA_AUTHORITY and ENTRA_GRAPH_URL
differ. The application's own token comes from the client credentials grant at
`{ENTRA_AUTHORITY}/{ENTRA_TENANT_ID}/oauth2/v2.0/token` (ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET,
scope `https://graph.microsoft.com/.default`); the app needs the application permissions
GroupMember.Read.All and User.Read.All, consented by an administrator. A sign-in instead passes
the person's own (delegated) token.

Whatever goes wrong (no answer, a timeout, an error status, a body that is not Graph's) is one
exception, `GraphError`, whose message an admin can act on.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# Seconds to connect and to wait for an answer: a sync must end, even when Graph does not.
TIMEOUT_SECONDS = (5, 30)
# Graph's largest page for member lists: fewer round trips for big groups.
PAGE_SIZE = 999
# A delta $filter names at most this many groups; more mapped groups take several rounds.
DELTA_FILTER_GROUPS = 50
# Graph throttles (429) and has short outages (503, 504), saying when to come back: a request is
# tried this many times more, waiting as told but never longer than this, before the run fails
# (a failed run takes platform roles away, which a moment's throttling should not).
RETRIES = 2
LONGEST_WAIT_SECONDS = 10.0
DEFAULT_WAIT_SECONDS = 1.0
TRANSIENT_STATUSES = {429, 503, 504}


class GraphError(Exception):
    """Microsoft Graph (or the token service in front of it) could not answer."""


class DeltaLinkExpired(GraphError):
    """Graph no longer knows a delta link's sync state (410 Gone): start the round afresh."""


@dataclass(frozen=True)
class DirectoryPerson:
    """A person as Graph lists them among a group's members."""

    object_id: str
    account_enabled: bool


@dataclass
class GroupsDelta:
    """One delta round over some groups: the members each group gained and lost directly since
    the round's link was issued (every member on a first round), and the link for the next round."""

    added: dict[str, set[str]] = field(default_factory=dict)
    removed: dict[str, set[str]] = field(default_factory=dict)
    delta_link: str = ""

    @property
    def changed_group_ids(self) -> set[str]:
        return {group_id for group_id, members in (self.added | self.removed).items() if members}


class GraphClient:
    def __init__(self, *, access_token: str | None = None, retries: int = RETRIES) -> None:
        """With `access_token`, a person's delegated token; without, the application's own.
        `retries`: how often a throttled or briefly unavailable request is tried again."""
        self._access_token = access_token
        self._retries = retries
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "GraphClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Reading ---------------------------------------------------------------------------------

    def group_people(self, group_id: str) -> list[DirectoryPerson]:
        """Everyone in a group, directly or through nested groups, with their account's state."""
        url = (
            f"{_graph_url()}/v1.0/groups/{quote(group_id)}/transitiveMembers/microsoft.graph.user"
            f"?$select=id,accountEnabled&$top={PAGE_SIZE}"
        )
        people = []
        for page in self._pages(url):
            for item in page.get("value", []):
                people.append(
                    DirectoryPerson(str(item["id"]).lower(), bool(item.get("accountEnabled", True)))
                )
        return people

    def groups_delta(self, *, group_ids: list[str], delta_link: str = "") -> GroupsDelta:
        """A delta round over the groups' direct members: from `delta_link` if given (the changes
        since it was issued), else from the start (every member). At most DELTA_FILTER_GROUPS."""
        if delta_link:
            url = delta_link
        else:
            listed = ",".join(f"'{group_id}'" for group_id in group_ids)
            url = f"{_graph_url()}/v1.0/groups/delta?$filter=id in ({listed})&$select=members"
        delta = GroupsDelta()
        for page in self._pages(url):
            for group in _items(page):
                group_id = _object_id(group)
                members = group.get("members@delta", [])
                for member in members if isinstance(members, list) else []:
                    side = delta.removed if "@removed" in member else delta.added
                    side.setdefault(group_id, set()).add(_object_id(member))
            if "@odata.deltaLink" in page:
                delta.delta_link = str(page["@odata.deltaLink"])
        if not delta.delta_link:
            raise GraphError("Microsoft Graph ended a delta round without a delta link.")
        return delta

    def my_group_ids(self) -> set[str]:
        """The groups of the person whose delegated token this client holds (transitively)."""
        url = f"{_graph_url()}/v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id&$top={PAGE_SIZE}"
        return {_object_id(item) for page in self._pages(url) for item in _items(page)}

    # Plumbing --------------------------------------------------------------------------------

    def _pages(self, url: str) -> Iterator[dict[str, Any]]:
        """Each page of a Graph collection, following `@odata.nextLink`."""
        next_url: str | None = url
        while next_url:
            page = self._get(next_url)
            yield page
            next_url = page.get("@odata.nextLink")

    def _get(self, url: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        for attempt in range(self._retries + 1):
            try:
                response = self._session.get(url, headers=headers, timeout=TIMEOUT_SECONDS)
            except requests.RequestException as error:
                raise GraphError(
                    f"Microsoft Graph did not answer ({error.__class__.__name__}: {error})."
                ) from error
            if response.status_code not in TRANSIENT_STATUSES or attempt == self._retries:
                break
            time.sleep(_wait_seconds(response))
        if response.status_code == 410 and "deltatoken=" in url.lower():
            raise DeltaLinkExpired(f"Microsoft Graph answered 410: {_error_message(response)}")
        if response.status_code != 200:
            raise GraphError(f"Microsoft Graph answered {response.status_code}: {_error_message(response)}")
        try:
            page = response.json()
        except ValueError as error:
            raise GraphError("Microsoft Graph answered with a body that is not JSON.") from error
        if not isinstance(page, dict):
            raise GraphError("Microsoft Graph answered with a body that is not a JSON object.")
        return page

    def _token(self) -> str:
        if self._access_token is None:
            self._access_token = _application_token(self._session)
        return self._access_token


def _items(page: dict[str, Any]) -> list[dict[str, Any]]:
    items = page.get("value", [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise GraphError("Microsoft Graph answered with a page whose value is not a list of objects.")
    return items


def _object_id(item: dict[str, Any]) -> str:
    object_id = item.get("id")
    if not isinstance(object_id, str) or not object_id:
        raise GraphError("Microsoft Graph listed an object without an id.")
    return object_id.lower()


def _wait_seconds(response: requests.Response) -> float:
    try:
        asked = float(response.headers.get("Retry-After", DEFAULT_WAIT_SECONDS))
    except ValueError:
        asked = DEFAULT_WAIT_SECONDS
    return min(max(asked, 0.0), LONGEST_WAIT_SECONDS)


def _graph_url() -> str:
    return str(settings.ENTRA_GRAPH_URL).rstrip("/")


def _application_token(session: requests.Session) -> str:
    if not (settings.ENTRA_TENANT_ID and settings.ENTRA_CLIENT_ID and settings.ENTRA_CLIENT_SECRET):
        raise GraphError(
            "Microsoft Entra ID is not configured: "
            "set ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET."
        )
    url = f"{str(settings.ENTRA_AUTHORITY).rstrip('/')}/{settings.ENTRA_TENANT_ID}/oauth2/v2.0/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": settings.ENTRA_CLIENT_ID,
        "client_secret": settings.ENTRA_CLIENT_SECRET,
        "scope": GRAPH_SCOPE,
    }
    try:
        response = session.post(url, data=form, timeout=TIMEOUT_SECONDS)
    except requests.RequestException as error:
        raise GraphError(
            f"Microsoft Entra ID's token service did not answer ({error.__class__.__name__}: {error})."
        ) from error
    try:
        body = response.json()
    except ValueError:
        body = {}
    token = body.get("access_token") if isinstance(body, dict) else None
    if response.status_code != 200 or not isinstance(token, str):
        reason = body.get("error_description") if isinstance(body, dict) else None
        raise GraphError(
            f"Microsoft Entra ID refused a token for Microsoft Graph ({response.status_code}): "
            f"{reason or response.reason}"
        )
    return token


def _error_message(response: requests.Response) -> str:
    try:
        error = response.json().get("error", {})
        return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ") or response.reason
    except (ValueError, AttributeError):
        return str(response.reason)
