"""Property-based tests: the parsers on the wire either parse or raise the spec's error."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetkit.registry.auth.challenge import parse_authorization, parse_scope, parse_scopes
from fleetkit.registry.auth.policy import PolicyError, parse_policy
from fleetkit.registry.auth.tokens import InvalidToken, SigningKey, TokenVerifier
from fleetkit.registry.digest import parse_digest
from fleetkit.registry.errors import DigestInvalid, RegistryAPIError, from_response
from fleetkit.registry.manifest import parse_manifest
from fleetkit.registry.server.blobs import RangeInvalid, parse_range
from fleetkit.registry.server.manifests import acceptable, parse_accept
from fleetkit.registry.server.uploads import parse_content_range

SETTINGS = settings(max_examples=300, deadline=None)


@SETTINGS
@given(st.text())
def test_parse_digest_total(text: str) -> None:
    try:
        d = parse_digest(text)
    except DigestInvalid as exc:
        assert exc.code == "DIGEST_INVALID" and exc.status == 400
    else:
        assert str(d) == text


@SETTINGS
@given(st.binary(), st.sampled_from(["sha256", "sha512"]))
def test_real_digests_parse(data: bytes, alg: str) -> None:
    text = f"{alg}:{hashlib.new(alg, data).hexdigest()}"
    assert str(parse_digest(text)) == text
    with pytest.raises(DigestInvalid):
        parse_digest(text.upper())
    with pytest.raises(DigestInvalid):
        parse_digest(text[:-1])


@SETTINGS
@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 10**6))
def test_parse_range_within_bounds(a: int, b: int, size: int) -> None:
    try:
        start, end = parse_range(f"bytes={a}-{b}", size)
    except RangeInvalid:
        assert a >= size or b < a
    else:
        assert 0 <= start <= end < size and start == a and end == min(b, size - 1)


@SETTINGS
@given(st.text(max_size=40), st.integers(0, 1000))
def test_parse_range_garbage(header: str, size: int) -> None:
    try:
        start, end = parse_range(header, size)
    except RangeInvalid as exc:
        assert exc.status == 416
    else:
        assert 0 <= start <= end < size


@SETTINGS
@given(st.text(max_size=50))
def test_content_range(header: str) -> None:
    try:
        start, end = parse_content_range(header)
    except ValueError:
        return
    assert 0 <= start <= end


def test_content_range_forms() -> None:
    assert parse_content_range("0-99") == (0, 99)
    assert parse_content_range("bytes 100-199/300") == (100, 199)
    for bad in ("", "5-1", "a-b", "-5", "1-"):
        with pytest.raises(ValueError):
            parse_content_range(bad)


@SETTINGS
@given(st.lists(st.text(max_size=60), max_size=4))
def test_accept_merge(values: list[str]) -> None:
    types = parse_accept(values)
    assert len(types) == len(set(types))
    assert all("," not in t and ";" not in t and t == t.strip() for t in types)


def test_accept_rules() -> None:
    oci = "application/vnd.oci.image.manifest.v1+json"
    docker = "application/vnd.docker.distribution.manifest.v2+json"
    assert parse_accept([f"{docker}; q=0.9, {oci}", oci]) == [docker, oci]
    assert acceptable(oci, []) and acceptable(oci, ["*/*"]) and acceptable(oci, [docker, oci])
    assert not acceptable(oci, [docker])
    assert acceptable(oci, ["application/json"])


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=12), kids, max_size=4)
    ),
    max_leaves=20,
)
MANIFEST_KEYS = st.sampled_from(
    [
        "schemaVersion",
        "mediaType",
        "config",
        "layers",
        "manifests",
        "subject",
        "artifactType",
        "annotations",
        "digest",
        "size",
    ]
)


@SETTINGS
@given(st.dictionaries(MANIFEST_KEYS, JSONISH, max_size=6), st.none() | st.text(max_size=40))
def test_parse_manifest_only_raises_wire_errors(doc: dict[str, object], ctype: str | None) -> None:
    try:
        m = parse_manifest(json.dumps(doc).encode(), ctype)
    except RegistryAPIError as exc:
        assert exc.code in ("MANIFEST_INVALID", "MANIFEST_TOO_BIG")
    else:
        assert m.media_type


@SETTINGS
@given(st.binary(max_size=200))
def test_parse_manifest_bytes(data: bytes) -> None:
    try:
        parse_manifest(data)
    except RegistryAPIError as exc:
        assert exc.code == "MANIFEST_INVALID"


@SETTINGS
@given(st.text(max_size=80))
def test_parse_scope_total(text: str) -> None:
    scope = parse_scope(text)
    if scope is not None:
        assert scope.type and scope.name and text.startswith(scope.type + ":")
    parse_scopes([text])


@SETTINGS
@given(st.text(max_size=80))
def test_parse_authorization_total(text: str) -> None:
    creds = parse_authorization(text)
    if creds is not None:
        assert creds.scheme in ("basic", "bearer")
        assert "password" not in repr(creds) or not creds.password


@SETTINGS
@given(st.text(max_size=200))
def test_parse_policy_total(text: str) -> None:
    try:
        parse_policy(text, "p.yaml")
    except PolicyError as exc:
        assert str(exc).startswith("p.yaml")


_SIGNER = SigningKey.generate()
_VERIFIER = TokenVerifier([_SIGNER.cert], "i", "a")


@SETTINGS
@given(st.text(max_size=300))
def test_token_verify_total(text: str) -> None:
    with pytest.raises(InvalidToken):
        _VERIFIER.verify(text)


@SETTINGS
@given(st.integers(100, 599), st.binary(max_size=100))
def test_from_response_total(status: int, body: bytes) -> None:
    err = from_response(status, body)
    assert err.status == status and err.code
