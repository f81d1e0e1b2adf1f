"""Docker registry tokens: ES256 JWTs with an ``x5c`` header, and the token service's grants.

A token's claims are distribution's: ``iss``, ``sub``, ``aud`` (a string, which distribution 2.8
and 3.x both accept), ``exp``, ``nbf``, ``iat``, ``jti`` and ``access`` (a list of
``{type, name, actions}``). The header carries the signing certificate chain (``x5c``); a
registry trusts a token when that chain verifies against its root bundle and the signature
verifies with the leaf's key.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import hmac
import json
import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509 import verification as x509_verification
from cryptography.x509.oid import NameOID

from fleetkit.errors import RegistryError, UsageError
from fleetkit.registry.auth.challenge import Scope

__all__ = [
    "SigningKey",
    "TokenVerifier",
    "InvalidToken",
    "Claims",
    "b64url",
    "b64url_decode",
    "LEEWAY_S",
    "KeyFileError",
    "load_cert_bundle",
]

LEEWAY_S = 60


class InvalidToken(RegistryError):
    """A token that is malformed, expired, not yet valid, for another audience or forged."""


class KeyFileError(UsageError):
    """A key or certificate file that cannot be read or written (exit 2)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or any(c not in _B64URL for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class Claims:
    issuer: str
    subject: str
    audience: str
    expires_at: int
    not_before: int
    issued_at: int
    jwt_id: str
    access: tuple[Scope, ...]

    def allows(self, scope: Scope) -> bool:
        granted: set[str] = set()
        for a in self.access:
            if a.type == scope.type and a.name == scope.name:
                granted |= a.actions
        return "*" in granted or scope.actions <= granted


def _atomic_write(path: str, data: bytes, mode: int) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class SigningKey:
    """A P-256 key and its certificate (self-signed when generated here)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self._refresh_secret = hashlib.sha256(
            b"fleetkit-refresh\0"
            + key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        ).digest()

    @classmethod
    def generate(cls, common_name: str = "fleetkit token signer") -> SigningKey:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _dt.datetime.now(_dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(days=1))
            .not_valid_after(now + _dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def load_or_create(cls, key_path: str, cert_path: str) -> SigningKey:
        """Load ``key_path`` + ``cert_path``; generate and write both when neither exists."""
        have_key, have_cert = os.path.exists(key_path), os.path.exists(cert_path)
        if not have_key and not have_cert:
            signer = cls.generate()
            try:
                _atomic_write(key_path, signer.key_pem(), 0o600)
                _atomic_write(cert_path, signer.cert_pem(), 0o644)
            except OSError as exc:
                raise KeyFileError(f"cannot write token key: {exc.strerror}") from None
            return signer
        if not have_key:
            raise KeyFileError(f"token key {key_path} is missing but {cert_path} exists")
        try:
            with open(key_path, "rb") as f:
                key_pem = f.read()
            cert_pem = None
            if have_cert:
                with open(cert_path, "rb") as f:
                    cert_pem = f.read()
        except OSError as exc:
            raise KeyFileError(f"cannot read token key: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(
                f"{key_path}: not a PEM private key ({exc})",
                hint="use an unencrypted P-256 key: openssl ecparam -name prime256v1 -genkey -noout",
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise KeyFileError(f"{key_path}: ES256 needs a P-256 (prime256v1) EC key")
        if cert_pem is None:
            signer = cls(key, _self_sign(key))
            _atomic_write(cert_path, signer.cert_pem(), 0o644)
            return signer
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise KeyFileError(f"{cert_path}: not a PEM certificate ({exc})") from None
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        pem = serialization.Encoding.PEM
        if cert.public_key().public_bytes(pem, spki) != key.public_key().public_bytes(pem, spki):
            raise KeyFileError(f"{cert_path} does not certify the key in {key_path}")
        return cls(key, cert)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def sign_jwt(self, claims: dict[str, Any]) -> str:
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self.cert_der).decode()],
        }
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def issue(
        self,
        *,
        issuer: str,
        subject: str,
        audience: str,
        access: list[Scope],
        expires_in_s: int = 300,
        now: int | None = None,
    ) -> tuple[str, int]:
        """Return ``(jwt, issued_at)``."""
        iat = int(time.time()) if now is None else now
        claims = {
            "iss": issuer,
            "sub": subject,
            "aud": audience,
            "exp": iat + expires_in_s,
            "nbf": iat - 1,
            "iat": iat,
            "jti": secrets.token_hex(16),
            "access": [s.to_claim() for s in access],
        }
        return self.sign_jwt(claims), iat

    # refresh tokens: opaque to clients; an HMAC over (user, generation, expiry) with a key
    # derived from the signing key, so they survive restarts. The generation is the server's
    # word on the user at issue time (a fingerprint of their htpasswd entry): a refresh whose
    # generation is no longer current (user removed, password changed) is refused, which
    # revokes every refresh token of that user. Rotating the signing key revokes them all.
    def refresh_token(self, user: str, ttl_s: int = 30 * 86400, generation: str = "") -> str:
        doc = {"u": user, "g": generation, "e": int(time.time()) + ttl_s}
        body = b64url(json.dumps(doc).encode())
        mac = hmac.new(self._refresh_secret, body.encode(), hashlib.sha256).digest()
        return f"fkr2.{body}.{b64url(mac)}"

    def check_refresh_token(
        self, token: str, generation: Callable[[str], str | None] | None = None
    ) -> str | None:
        """The user a valid refresh token names, or None.

        With ``generation`` (user -> current generation, None for no such user) the token's
        generation must still be current.
        """
        try:
            prefix, body, mac = token.split(".")
            if prefix != "fkr2" or len(body) > 4096:
                return None
            want = hmac.new(self._refresh_secret, body.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(want, b64url_decode(mac)):
                return None
            doc = json.loads(b64url_decode(body))
            expires = doc["e"]
            if not isinstance(expires, int) or expires < time.time():
                return None
            user, gen = doc["u"], doc.get("g", "")
            if not isinstance(user, str) or not isinstance(gen, str):
                return None
            if generation is not None:
                current = generation(user)
                if current is None or not hmac.compare_digest(current, gen):
                    return None
            return user
        except (ValueError, KeyError, TypeError):
            return None


def _self_sign(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleetkit token signer")])
    now = _dt.datetime.now(_dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def load_cert_bundle(path: str) -> list[x509.Certificate]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise KeyFileError(f"cannot read certificate bundle {path}: {exc.strerror}") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise KeyFileError(f"{path}: not a PEM certificate bundle ({exc})") from None
    return certs


_MAX_X5C = 8  # certificates in a token's chain (leaf, intermediates)


def _numeric_claim(claims: dict[str, Any], name: str, required: bool = False) -> int:
    """A NumericDate claim as an int; InvalidToken for anything else (bools, inf, NaN, huge)."""
    value = claims.get(name)
    if value is None and not required:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"token has no valid {name} claim")
    if not math.isfinite(value) or abs(value) > _MAX_NUMERIC_DATE:
        raise InvalidToken(f"token has no valid {name} claim")
    return int(value)


_MAX_NUMERIC_DATE = 1 << 40  # about year 36812: any real date fits, no overflow past it


class TokenVerifier:
    """Verify tokens as distribution does: x5c chain, signature, then issuer, audience and time.

    The chain is verified by cryptography's X.509 verifier (CA and basicConstraints checks on
    every issuer, validity periods, path building to the root bundle); a root certificate used
    directly as the signing certificate is trusted, as with distribution's rootcertbundle.
    Nothing in the claims is looked at before the signature verifies.
    """

    def __init__(self, roots: list[x509.Certificate], issuer: str, audience: str) -> None:
        self.roots = roots
        self.issuer = issuer
        self.audience = audience
        self._store = x509_verification.Store(roots)

    def _trusted_leaf(self, x5c: Any, now: _dt.datetime) -> ec.EllipticCurvePublicKey:
        if not isinstance(x5c, list) or not x5c or not all(isinstance(c, str) for c in x5c):
            raise InvalidToken("token header has no x5c certificate chain")
        if len(x5c) > _MAX_X5C:
            raise InvalidToken("token certificate chain is too long")
        try:
            chain = [
                x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in x5c
            ]
        except (ValueError, binascii.Error):
            raise InvalidToken("token header has a malformed x5c chain") from None
        verifier = (
            x509_verification.PolicyBuilder()
            .store(self._store)
            .time(now)
            .max_chain_depth(_MAX_X5C)
            .extension_policies(
                ca_policy=x509_verification.ExtensionPolicy.webpki_defaults_ca(),
                # a token signing certificate is no TLS client: no EKU or SAN is required of it
                ee_policy=x509_verification.ExtensionPolicy.permit_all(),
            )
            .build_client_verifier()
        )
        try:
            verifier.verify(chain[0], chain[1:])
        except x509_verification.VerificationError as exc:
            raise InvalidToken(
                f"token certificate chain does not verify against the root bundle ({exc})"
            ) from None
        key = chain[0].public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise InvalidToken("token signing key is not a P-256 EC key")
        return key

    def verify(self, token: str, now: float | None = None) -> Claims:
        """Return the token's claims, or raise :class:`InvalidToken` for any flaw at all."""
        try:
            return self._verify(token, now)
        except InvalidToken:
            raise
        except (ValueError, TypeError, OverflowError, RecursionError, UnicodeError):
            raise InvalidToken("malformed token") from None

    def _verify(self, token: str, now: float | None) -> Claims:
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("malformed token")
        try:
            header = json.loads(b64url_decode(parts[0]))
            signature = b64url_decode(parts[2])
        except (ValueError, UnicodeDecodeError):
            raise InvalidToken("malformed token") from None
        if not isinstance(header, dict):
            raise InvalidToken("malformed token")
        if header.get("alg") != "ES256":
            raise InvalidToken(f"unsupported token algorithm {str(header.get('alg'))[:40]!r}")
        if len(signature) != 64:
            raise InvalidToken("token signature has the wrong length")
        t = time.time() if now is None else now
        key = self._trusted_leaf(header.get("x5c"), _dt.datetime.fromtimestamp(t, _dt.UTC))
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            key.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise InvalidToken("token signature does not verify") from None
        # only signed claims from here on
        try:
            claims = json.loads(b64url_decode(parts[1]))
        except (ValueError, UnicodeDecodeError):
            raise InvalidToken("malformed token") from None
        if not isinstance(claims, dict):
            raise InvalidToken("malformed token")
        if claims.get("iss") != self.issuer:
            raise InvalidToken("token from an untrusted issuer")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if self.audience not in auds:
            raise InvalidToken("token intended for another audience")
        exp = _numeric_claim(claims, "exp", required=True)
        nbf = _numeric_claim(claims, "nbf")
        iat = _numeric_claim(claims, "iat")
        if t > exp + LEEWAY_S:
            raise InvalidToken("token has expired")
        if t < nbf - LEEWAY_S:
            raise InvalidToken("token is not valid yet")
        access: list[Scope] = []
        for item in claims.get("access") or []:
            if not isinstance(item, dict):
                continue
            actions = item.get("actions") or []
            if not isinstance(actions, list):
                continue
            access.append(
                Scope(
                    str(item.get("type", "")),
                    str(item.get("name", "")),
                    frozenset(str(a) for a in actions),
                )
            )
        return Claims(
            issuer=str(claims.get("iss")),
            subject=str(claims.get("sub", "")),
            audience=self.audience,
            expires_at=exp,
            not_before=nbf,
            issued_at=iat,
            jwt_id=str(claims.get("jti", "")),
            access=tuple(access),
        )
