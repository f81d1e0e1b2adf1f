"""Tokens, htpasswd, policy, and the three auth modes over HTTP."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from fleetkit.registry.auth.challenge import Scope, bearer_challenge, parse_scopes
from fleetkit.registry.auth.policy import Policy, PolicyError, parse_policy
from fleetkit.registry.auth.tokens import (
    InvalidToken,
    SigningKey,
    TokenVerifier,
    b64url,
    b64url_decode,
)
from fleetkit.registry.auth.users import Htpasswd, HtpasswdError, add_user
from tests.registry._images import OCI_MANIFEST, make_image, sha256
from tests.registry._server import ThreadServer, thread_server

ISS, AUD = "test-issuer", "test-service"


@pytest.fixture(scope="module")
def signer() -> SigningKey:
    return SigningKey.generate()


def pull(name: str) -> Scope:
    return Scope("repository", name, frozenset({"pull"}))


def test_token_roundtrip(signer: SigningKey) -> None:
    token, iat = signer.issue(issuer=ISS, subject="alice", audience=AUD, access=[pull("a/b")])
    header = json.loads(b64url_decode(token.split(".")[0]))
    assert header["alg"] == "ES256" and len(header["x5c"]) == 1
    claims = json.loads(b64url_decode(token.split(".")[1]))
    assert isinstance(claims["aud"], str) and claims["sub"] == "alice"
    assert set(claims) >= {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"}
    got = TokenVerifier([signer.cert], ISS, AUD).verify(token)
    assert got.allows(pull("a/b"))
    assert not got.allows(pull("a/c"))
    assert not got.allows(Scope("repository", "a/b", frozenset({"pull", "push"})))


def test_token_rejections(signer: SigningKey) -> None:
    v = TokenVerifier([signer.cert], ISS, AUD)
    old, _ = signer.issue(
        issuer=ISS,
        subject="a",
        audience=AUD,
        access=[],
        expires_in_s=1,
        now=int(time.time()) - 3600,
    )
    with pytest.raises(InvalidToken, match="expired"):
        v.verify(old)
    future, _ = signer.issue(
        issuer=ISS, subject="a", audience=AUD, access=[], now=int(time.time()) + 3600
    )
    with pytest.raises(InvalidToken, match="not valid yet"):
        v.verify(future)
    other_aud, _ = signer.issue(issuer=ISS, subject="a", audience="elsewhere", access=[])
    with pytest.raises(InvalidToken, match="audience"):
        v.verify(other_aud)
    other_iss, _ = signer.issue(issuer="mallory", subject="a", audience=AUD, access=[])
    with pytest.raises(InvalidToken, match="issuer"):
        v.verify(other_iss)
    # tampered claims: grant ourselves push
    good, _ = signer.issue(issuer=ISS, subject="a", audience=AUD, access=[pull("x")])
    h, c, s = good.split(".")
    claims = json.loads(b64url_decode(c))
    claims["access"][0]["actions"] = ["pull", "push"]
    with pytest.raises(InvalidToken, match="signature"):
        v.verify(f"{h}.{b64url(json.dumps(claims).encode())}.{s}")
    # a token from another key with its own (untrusted) certificate
    forged, _ = SigningKey.generate().issue(issuer=ISS, subject="a", audience=AUD, access=[])
    with pytest.raises(InvalidToken, match="root bundle"):
        v.verify(forged)
    for junk in ("", "a.b", "a.b.c", "....", good + "x"):
        with pytest.raises(InvalidToken):
            v.verify(junk)


def test_key_files_generated_and_reloaded(tmp_path: Path) -> None:
    key, cert = str(tmp_path / "k.pem"), str(tmp_path / "k.crt")
    s1 = SigningKey.load_or_create(key, cert)
    s2 = SigningKey.load_or_create(key, cert)
    assert s1.cert_der == s2.cert_der
    token, _ = s1.issue(issuer=ISS, subject="a", audience=AUD, access=[])
    TokenVerifier([s2.cert], ISS, AUD).verify(token)
    (tmp_path / "bad.pem").write_text("not a key")
    from fleetkit.registry.auth.tokens import KeyFileError

    with pytest.raises(KeyFileError):
        SigningKey.load_or_create(str(tmp_path / "bad.pem"), str(tmp_path / "bad.crt"))


def test_refresh_tokens(signer: SigningKey) -> None:
    rt = signer.refresh_token("alice")
    assert signer.check_refresh_token(rt) == "alice"
    assert signer.check_refresh_token(rt[:-2] + "xx") is None
    assert SigningKey.generate().check_refresh_token(rt) is None
    assert signer.check_refresh_token(signer.refresh_token("bob", ttl_s=-10)) is None


def test_htpasswd(tmp_path: Path) -> None:
    path = str(tmp_path / "htpasswd")
    assert add_user(path, "alice", "pw1", cost=4) is False
    assert add_user(path, "bob", "pw2", cost=4) is False
    assert add_user(path, "alice", "pw3", cost=4) is True
    text = Path(path).read_text()
    assert text.count("alice:$2y$") == 1 and "bob:$2y$" in text
    users = Htpasswd.load(path)
    assert users.check("alice", "pw3") and users.check("alice", "pw3")  # cached path
    assert not users.check("alice", "pw1") and not users.check("carol", "x")
    Path(path).write_text("alice:{SHA}abc\n")
    with pytest.raises(HtpasswdError, match=r"htpasswd:1"):
        Htpasswd.load(path)


POLICY = """
groups:
  devs: [bob]
repositories:
  - name: "public/*"
    pull: ["*"]
    anonymous_pull: true
  - name: "team/**"
    pull: [group:devs, alice]
    push: [group:devs]
    delete: [alice]
catalog: [alice]
"""


def test_policy_grants() -> None:
    p = parse_policy(POLICY)
    assert p.allowed(None, "public/x") == {"pull"}
    assert p.allowed("carol", "public/x") == {"pull"}
    assert p.allowed("bob", "team/a/b") == {"pull", "push"}
    assert p.allowed("alice", "team/a") == {"pull", "delete"}
    assert p.allowed(None, "team/a") == set()
    assert p.allowed("carol", "private") == set()
    assert p.grant("alice", "registry", "catalog", frozenset({"*"})) == {"*"}
    assert p.grant("bob", "registry", "catalog", frozenset({"*"})) == set()
    d = Policy.default_policy()
    assert d.allowed("anyone", "x") == {"pull", "push"} and d.allowed(None, "x") == set()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("repositories: [{name: x, pul: [a]}]", ":1"),
        ("repositories:\n  - name: x\n  - pull: [a]\n", ":3"),
        ("groups: [a]", ""),
        ("bogus: 1", ""),
        ("repositories: {", ":1"),
        ("repositories: [{name: x, anonymous_pull: maybe}]", ""),
    ],
)
def test_policy_errors(text: str, where: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "p.yaml")
    assert str(err.value).startswith("p.yaml" + where)


def test_scope_parsing() -> None:
    got = parse_scopes(["repository:a/b:pull", "repository:a/b:push repository:c:pull", "junk"])
    assert got == [
        Scope("repository", "a/b", frozenset({"pull", "push"})),
        Scope("repository", "c", frozenset({"pull"})),
    ]
    assert parse_scopes(["repository:localhost:5000/x:pull"])[0].name == "localhost:5000/x"
    ch = bearer_challenge("https://r/t", "svc", got[:1], "insufficient_scope")
    assert ch == (
        'Bearer realm="https://r/t",service="svc",scope="repository:a/b:pull,push",'
        'error="insufficient_scope"'
    )


# -- the modes over HTTP ---------------------------------------------------------------------------


def basic(user: str, pw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("users") / "htpasswd")
    add_user(path, "alice", "alicepw", cost=4)
    add_user(path, "bob", "bobpw", cost=4)
    return path


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(POLICY)
    return str(path)


def push_image(url: str, name: str, headers: dict[str, str]) -> int:
    img = make_image(9)
    for data in img.blobs().values():
        r = requests.post(
            f"{url}/v2/{name}/blobs/uploads/",
            params={"digest": sha256(data)},
            data=data,
            headers=headers,
            timeout=30,
        )
        if r.status_code != 201:
            return r.status_code
    r = requests.put(
        f"{url}/v2/{name}/manifests/v1",
        data=img.manifest,
        headers={**headers, "Content-Type": OCI_MANIFEST},
        timeout=30,
    )
    return r.status_code


def test_htpasswd_mode(users_file: str, policy_file: str) -> None:
    with thread_server(
        root="memory:", auth="htpasswd", htpasswd=users_file, policy=policy_file
    ) as s:
        r = requests.get(s.url + "/v2/", timeout=30)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
        assert (
            requests.get(s.url + "/v2/", headers=basic("alice", "nope"), timeout=30).status_code
            == 401
        )
        assert (
            requests.get(s.url + "/v2/", headers=basic("alice", "alicepw"), timeout=30).status_code
            == 200
        )
        assert push_image(s.url, "team/app", basic("bob", "bobpw")) == 201
        assert push_image(s.url, "team/app", basic("alice", "alicepw")) == 403
        assert push_image(s.url, "team/app", {}) == 401
        r = requests.get(
            s.url + "/v2/team/app/manifests/v1", headers=basic("alice", "alicepw"), timeout=30
        )
        assert r.status_code == 200
        r = requests.get(s.url + "/v2/team/app/manifests/v1", timeout=30)
        assert r.status_code == 401
        r = requests.get(s.url + "/v2/_catalog", headers=basic("bob", "bobpw"), timeout=30)
        assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED"


@pytest.fixture
def token_server(users_file: str, policy_file: str) -> Iterator[ThreadServer]:
    with thread_server(
        root="memory:",
        auth="token",
        htpasswd=users_file,
        policy=policy_file,
        service="reg",
        issuer="iss",
    ) as s:
        yield s


def get_token(url: str, scopes: list[str], auth: dict[str, str] | None = None) -> str:
    r = requests.get(
        url + "/service/token",
        params={"service": "reg", "scope": scopes},
        headers=auth or {},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["token"] == doc["access_token"] and doc["expires_in"] == 300
    assert doc["issued_at"].endswith("Z")
    return str(doc["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_mode_challenges(token_server: ThreadServer) -> None:
    url = token_server.url
    r = requests.get(url + "/v2/", timeout=30)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == f'Bearer realm="{url}/service/token",service="reg"'
    r = requests.get(url + "/v2/team/app/manifests/v1", timeout=30)
    assert r.headers["WWW-Authenticate"].endswith(',scope="repository:team/app:pull"')
    r = requests.post(url + "/v2/team/app/blobs/uploads/", timeout=30)
    assert 'scope="repository:team/app:pull,push"' in r.headers["WWW-Authenticate"]
    r = requests.get(url + "/v2/", headers=bearer("garbage"), timeout=30)
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_token_mode_scopes(token_server: ThreadServer) -> None:
    url = token_server.url
    bob = basic("bob", "bobpw")
    push_tok = get_token(url, ["repository:team/app:pull,push"], bob)
    assert push_image(url, "team/app", bearer(push_tok)) == 201
    # a pull-only token cannot push
    pull_tok = get_token(url, ["repository:team/app:pull"], basic("alice", "alicepw"))
    r = requests.post(url + "/v2/team/app/blobs/uploads/", headers=bearer(pull_tok), timeout=30)
    assert r.status_code == 401 and 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert (
        requests.get(
            url + "/v2/team/app/manifests/v1", headers=bearer(pull_tok), timeout=30
        ).status_code
        == 200
    )
    # a token for one repository cannot read another
    r = requests.get(url + "/v2/team/other/manifests/v1", headers=bearer(pull_tok), timeout=30)
    assert r.status_code == 401
    # asking for more than the policy allows yields only what it allows
    tok = get_token(url, ["repository:team/app:pull,push,delete"], basic("alice", "alicepw"))
    claims = json.loads(b64url_decode(tok.split(".")[1]))
    assert claims["access"] == [
        {"type": "repository", "name": "team/app", "actions": ["delete", "pull"]}
    ]
    # anonymous: pull on public/*, nothing on team/*
    anon = get_token(url, ["repository:public/x:pull,push", "repository:team/app:pull"])
    claims = json.loads(b64url_decode(anon.split(".")[1]))
    assert claims["sub"] == "" and claims["access"] == [
        {"type": "repository", "name": "public/x", "actions": ["pull"]}
    ]
    # wrong password: 401, no token
    r = requests.get(
        url + "/service/token",
        params={"scope": "repository:x:pull"},
        headers=basic("bob", "wrong"),
        timeout=30,
    )
    assert r.status_code == 401
    # a mount needs pull on the source too
    d = sha256(make_image(9).config)
    only_dst = get_token(url, ["repository:team/dst:pull,push"], bob)
    r = requests.post(
        url + "/v2/team/dst/blobs/uploads/",
        params={"mount": d, "from": "team/app"},
        headers=bearer(only_dst),
        timeout=30,
    )
    assert r.status_code == 202  # no pull on team/app in the token: an upload session instead
    both = get_token(url, ["repository:team/dst:pull,push", "repository:team/app:pull"], bob)
    r = requests.post(
        url + "/v2/team/dst/blobs/uploads/",
        params={"mount": d, "from": "team/app"},
        headers=bearer(both),
        timeout=30,
    )
    assert r.status_code == 201


def test_token_oauth_post(token_server: ThreadServer) -> None:
    url = token_server.url + "/service/token"
    form = {
        "grant_type": "password",
        "username": "bob",
        "password": "bobpw",
        "service": "reg",
        "client_id": "test",
        "scope": "repository:team/app:pull repository:team/b:push",
        "access_type": "offline",
    }
    r = requests.post(url, data=form, timeout=30)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["access_token"] and doc["refresh_token"] and doc["scope"]
    r2 = requests.post(
        url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": doc["refresh_token"],
            "service": "reg",
            "client_id": "t",
            "scope": "repository:team/app:pull",
        },
        timeout=30,
    )
    assert r2.status_code == 200
    claims = json.loads(b64url_decode(r2.json()["access_token"].split(".")[1]))
    assert claims["sub"] == "bob"
    bad = requests.post(url, data={**form, "password": "x"}, timeout=30)
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_grant"
    bad = requests.post(url, data={"grant_type": "client_credentials"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"] == "unsupported_grant_type"


def test_token_mode_catalog_and_expired_token(token_server: ThreadServer) -> None:
    url = token_server.url
    r = requests.get(url + "/v2/_catalog", timeout=30)
    assert r.status_code == 401
    assert 'scope="registry:catalog:*"' in r.headers["WWW-Authenticate"]
    alice = get_token(url, ["registry:catalog:*"], basic("alice", "alicepw"))
    assert requests.get(url + "/v2/_catalog", headers=bearer(alice), timeout=30).status_code == 200
    bob = get_token(url, ["registry:catalog:*"], basic("bob", "bobpw"))  # policy: catalog [alice]
    r = requests.get(url + "/v2/_catalog", headers=bearer(bob), timeout=30)
    assert r.status_code == 401 and 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    ts = token_server.state.token_service
    assert ts is not None
    expired, _ = ts.signer.issue(
        issuer="iss",
        subject="bob",
        audience="reg",
        access=[Scope("repository", "team/app", frozenset({"pull"}))],
        expires_in_s=1,
        now=int(time.time()) - 600,
    )
    r = requests.get(url + "/v2/team/app/tags/list", headers=bearer(expired), timeout=30)
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert "expired" in r.json()["errors"][0]["message"]


def test_registry_trusts_an_external_token_service(tmp_path: Path) -> None:
    """--token-rootcert: tokens signed by another issuer's key (e.g. token-server) are accepted."""
    external = SigningKey.load_or_create(str(tmp_path / "ext.key"), str(tmp_path / "ext.crt"))
    with thread_server(
        root="memory:",
        auth="token",
        service="reg",
        issuer="iss",
        realm="https://tokens.example/service/token",
        token_rootcert=str(tmp_path / "ext.crt"),
    ) as s:
        r = requests.get(s.url + "/v2/", timeout=30)
        assert 'realm="https://tokens.example/service/token"' in r.headers["WWW-Authenticate"]
        token, _ = external.issue(
            issuer="iss",
            subject="ci",
            audience="reg",
            access=[Scope("repository", "team/app", frozenset({"pull", "push"}))],
        )
        assert push_image(s.url, "team/app", bearer(token)) == 201
        stranger, _ = SigningKey.generate().issue(
            issuer="iss",
            subject="ci",
            audience="reg",
            access=[Scope("repository", "team/app", frozenset({"pull"}))],
        )
        r = requests.get(s.url + "/v2/team/app/tags/list", headers=bearer(stranger), timeout=30)
        assert r.status_code == 401
