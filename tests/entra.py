"""A stand-in for Microsoft Entra ID and Microsoft Graph on loopback.

It answers the OpenID Connect discovery, authorize and token endpoints the way
login.microsoftonline.com does, and Graph's `transitiveMemberOf`, so sign-in tests run the
real allauth flow end to end. Only the identity provider is stood in for.
"""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import jwt

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "0c1f6d2a-5b7e-4c8f-9a3d-1e2f3a4b5c6d"


class EntraStandIn:
    def __init__(self) -> None:
        self.claims: dict[str, Any] = {}
        self.graph_pages: list[list[str]] = []
        self.graph_status = 200
        self.graph_calls = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.issuer = f"{self.url}/{TENANT_ID}/v2.0"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "EntraStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sign_in_as(
        self, *, oid: str, email: str, name: str, groups: list[str] | None = None, overage: bool = False
    ) -> None:
        """What the next id_token says: a realistic Entra ID v2.0 id_token payload."""
        given, _, family = name.partition(" ")
        now = int(time.time())
        self.claims = {
            "aud": CLIENT_ID,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "aio": "AWQAm/8aAAAA",
            "email": email,
            "family_name": family,
            "given_name": given,
            "name": name,
            "oid": oid,
            "preferred_username": email,
            "rh": "0.AQ8Av4j5cvGGr0GRqy180BHbRw",
            "sub": f"sub-{oid}",
            "tid": TENANT_ID,
            "uti": uuid.uuid4().hex[:22],
            "ver": "2.0",
        }
        if overage:
            self.claims["_claim_names"] = {"groups": "src1"}
            self.claims["_claim_sources"] = {
                "src1": {"endpoint": f"https://graph.windows.net/{TENANT_ID}/users/{oid}/getMemberObjects"}
            }
        else:
            self.claims["groups"] = groups or []

    def openid_configuration(self) -> dict[str, object]:
        base = f"{self.url}/{TENANT_ID}"
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "userinfo_endpoint": f"{self.url}/oidc/userinfo",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        }

    def groups_page(self, query: str) -> tuple[dict[str, object], int]:
        """One page of Graph's transitiveMemberOf, or the error Graph is set to answer."""
        self.graph_calls += 1
        if self.graph_status != 200:
            return {"error": {"code": "ServiceNotAvailable", "message": "Try later"}}, self.graph_status
        page = int(parse_qs(query).get("page", ["0"])[0])
        body: dict[str, object] = {
            "value": [
                {"@odata.type": "#microsoft.graph.group", "id": group_id}
                for group_id in self.graph_pages[page]
            ]
        }
        if page + 1 < len(self.graph_pages):
            body["@odata.nextLink"] = (
                f"{self.url}/v1.0/me/transitiveMemberOf/microsoft.graph.group?page={page + 1}"
            )
        return body, 200

    def token_response(self) -> dict[str, object]:
        return {
            "token_type": "Bearer",
            "scope": "openid profile email User.Read GroupMember.Read.All",
            "expires_in": 3600,
            "access_token": "graph-access-token",
            "id_token": jwt.encode(self.claims, "stand-in-signing-key-of-enough-length", "HS256"),
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _json(self, body: object, status: int = 200) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                path = urlparse(self.path)
                if path.path.endswith("/.well-known/openid-configuration"):
                    self._json(standin.openid_configuration())
                elif path.path.startswith("/v1.0/me/transitiveMemberOf"):
                    self._json(*standin.groups_page(path.query))
                else:
                    self._json({"error": "not_found"}, 404)

            def do_POST(self) -> None:
                if self.path.endswith("/oauth2/v2.0/token"):
                    self._json(standin.token_response())
                else:
                    self._json({"error": "not_found"}, 404)

        return Handler
