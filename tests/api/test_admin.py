"""Platform admins look personal access tokens up in Django admin, read-only, and revoke them
through the service (audited); the hash is never shown."""

from api.tokens import access_token_create
from audit.models import AuditEvent


def test_admins_look_tokens_up_read_only_and_revoke_through_the_service(
    client_for, platform_admin, marketing_lead
):
    token, raw = access_token_create(user=marketing_lead, name="Leaked script", actor=None)
    client = client_for(platform_admin)

    listing = client.get("/admin/api/accesstoken/?q=lead@example.com")
    assert listing.status_code == 200
    assert token.prefix in listing.content.decode()
    detail = client.get(f"/admin/api/accesstoken/{token.pk}/change/").content.decode()
    assert token.prefix in detail
    assert token.secret_hash not in detail
    assert raw not in detail
    assert 'name="name"' not in detail
    assert client.get("/admin/api/accesstoken/add/").status_code == 403

    response = client.post(
        "/admin/api/accesstoken/", {"action": "revoke", "_selected_action": [str(token.pk)]}, follow=True
    )

    assert "1 token revoked." in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_by == platform_admin
    assert AuditEvent.objects.get(verb="access_token.revoked").actor == platform_admin
    # A lead is not let into admin at all.
    assert client_for(marketing_lead).get("/admin/api/accesstoken/").status_code == 302
