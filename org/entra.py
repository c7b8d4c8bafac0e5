"""What Microsoft Entra ID says about a person: their group ids.

The id_token lists group object ids in `groups`. A user in more groups than fit in a token
(200 for JWTs) gets an *overage* instead: `_claim_names: {"groups": "src1"}`, and the list
has to be read from Microsoft Graph (`memberOf`).
"""

import logging

from org.graph import GraphClient, GraphError

logger = logging.getLogger(__name__)


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
    # Someone waits at the sign-in page: no second try (their last known departments stand in).
    with GraphClient(access_token=access_token, retries=0) as graph:
        try:
            return graph.my_group_ids()
        except GraphError as error:
            raise GraphUnavailable(str(error)) from error
