"""The caller themselves: who they are, their roles and departments, how they signed in."""

from django.http import HttpRequest
from ninja import Router

from api.auth import ApiCaller
from api.models import AccessToken
from api.schemas import MeOut, TokenOut, utc

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
