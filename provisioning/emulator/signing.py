"""The tenant's token-signing keys, as Microsoft Entra ID publishes them.

Each key is a 2048-bit RSA key with a self-signed certificate; its key id is the certificate's
SHA-1 thumbprint in base64url (`kid` and `x5t` are the same value in Entra's key set). The
private key is kept in the emulator's state as PEM, so tokens it issued before a restart still
verify after it. Rotating puts a new key first and keeps the previous one published, as Entra
does during a rollover: tokens signed with the old key stay valid until they expire.
"""

import base64
import datetime
import hashlib
from functools import cache
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

# How many keys the key set publishes: the one that signs and the one it replaced.
PUBLISHED_KEYS = 2
CERTIFICATE_NAME = "accounts.accesscontrol.windows.net"


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _base64url_uint(value: int) -> str:
    return _base64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def new_signing_key() -> dict[str, Any]:
    """A fresh key as the state keeps it: key id, private key (PEM) and certificate (base64 DER)."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERTIFICATE_NAME)])
    issued = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(issued)
        .not_valid_after(issued + datetime.timedelta(days=5 * 365))
        .sign(private_key, hashes.SHA256())
    )
    der = certificate.public_bytes(serialization.Encoding.DER)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "kid": _base64url(hashlib.sha1(der).digest()),  # noqa: S324  (Entra's thumbprint, not security)
        "privateKey": pem.decode(),
        "certificate": base64.b64encode(der).decode(),
        "createdAt": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@cache
def _private_key(pem: str) -> rsa.RSAPrivateKey:
    # Parsing a PEM key takes longer than signing with it; each key is parsed once per process.
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def public_jwk(key: dict[str, Any], *, issuer: str) -> dict[str, Any]:
    """The key as the key set lists it (Entra's fields, in Entra's order)."""
    numbers = _private_key(key["privateKey"]).public_key().public_numbers()
    return {
        "kty": "RSA",
        "use": "sig",
        "kid": key["kid"],
        "x5t": key["kid"],
        "n": _base64url_uint(numbers.n),
        "e": _base64url_uint(numbers.e),
        "x5c": [key["certificate"]],
        "issuer": issuer,
    }


def sign(claims: dict[str, Any], key: dict[str, Any], *, legacy_thumbprint: bool = False) -> str:
    """An RS256 JWT of `claims`; v1.0 tokens also carry the key id as `x5t` in the header."""
    headers = {"typ": "JWT", "kid": key["kid"]}
    if legacy_thumbprint:
        headers["x5t"] = key["kid"]
    return jwt.encode(claims, _private_key(key["privateKey"]), algorithm="RS256", headers=headers)
