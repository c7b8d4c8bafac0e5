"""What Microsoft Entra ID says about a person: their group ids.

The id_token lists group object ids in `groups`. A user in more groups than fit in a token
(200 for JWTs) gets an *overage* instead: `_claim_names: {"groups": "src1"}`, and the list
has to be read from Microsoft Graph (`memberOf`).
"""

import logging

import requests
from django.conf import settings

logger = logging.getLogger(__name__)

GRAPH_TIMEOUT_SECONDS = 10


class GraphUnavailable(Exception):
    """Microsoft Graph could not tell us the user's groups."""


def group_ids_from_claims(claims: dict[str, object], *, access_token: str | None) -> set[str]:
    """The Entra group ids in an id_token's claims, following a groups overage to Graph.

    Raises GraphUnavailable when the token has an overage and Graph cannot be read.
    """
    groups = claims.get("groups")
    if isinstance(groups, list):
        return {str(group_id) for group_id in groups}
    claim_names = claims.get("_claim_names")
    if isinstance(claim_names, dict) and "groups" in claim_names:
        if not access_token:
            raise GraphUnavailable("the token has a groups overage but no access token came with it")
        return _group_ids_from_graph(access_token)
    return set()


def _group_ids_from_graph(access_token: str) -> set[str]:
    url: str | None = (
        f"{settings.ENTRA_GRAPH_URL}/v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id&$top=999"
    )
    group_ids: set[str] = set()
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {access_token}"
        while url:
            try:
                response = session.get(url, timeout=GRAPH_TIMEOUT_SECONDS)
                response.raise_for_status()
                page = response.json()
            except (requests.RequestException, ValueError) as error:
                raise GraphUnavailable(str(error)) from error
            group_ids.update(str(item["id"]) for item in page.get("value", []))
            url = page.get("@odata.nextLink")
    return group_ids
