"""The caller themselves: who they are, their roles and departments, how they signed in, and
their personal access tokens."""

from django.http import Http404, HttpRequest
from ninja import Router

from api.auth import ApiCaller
from api.models import AccessToken
from api.params import Id
from api.schemas import MeOut, TokenOut, utc
from api.tokens import access_token_revoke

router = Router(tags=["me"])


def token_out(token: AccessToken) -> TokenOut:
    return TokenOut(
        id=token.pk,
        name=token.name,
        prefix=token.prefix,
        created_at=utc(token.created_at),
        expires_at=utc(token.expires_at),
        last_used_at=utc(token.last_used_at) if token.last_used_at else None,
        status=token.status(),  # type: ignore[arg-type]
    )


@router.get("/me", response=MeOut, summary="You")
def get_me(request: HttpRequest) -> MeOut:
    caller: ApiCaller = request.auth  # type: ignore[attr-defined]
    user = caller.user
    return MeOut(
        email=user.email,
        name=user.display_name,
        platform_admin=user.is_platform_admin,
        finance_approver=user.is_finance_approver,
        security_approver=user.is_security_approver,
        memberships=[
            {"department": m.department.slug, "department_name": m.department.name, "role": m.role}  # type: ignore[misc]
            for m in user.memberships_with_departments
        ],
        authenticated_with=caller.method,  # type: ignore[arg-type]
        access_token=token_out(caller.token) if caller.token is not None else None,
    )


@router.get("/me/tokens", response=list[TokenOut], summary="Your personal access tokens")
def list_my_tokens(request: HttpRequest) -> list[TokenOut]:
    """Newest first, by their prefixes (the tokens themselves are never shown again)."""
    caller: ApiCaller = request.auth  # type: ignore[attr-defined]
    return [token_out(token) for token in caller.user.access_tokens.order_by("-created_at", "-pk")]


@router.delete("/me/tokens/{token_id}", response=TokenOut, summary="Revoke one of your tokens")
def revoke_my_token(request: HttpRequest, token_id: Id) -> TokenOut:
    """The token stops working at once; revoking a revoked token changes nothing. Another
    person's token is a 404."""
    caller: ApiCaller = request.auth  # type: ignore[attr-defined]
    token = caller.user.access_tokens.filter(pk=token_id).first()
    if token is None:
        raise Http404("You have no token with that id.")
    return token_out(access_token_revoke(token=token, actor=caller.user))
