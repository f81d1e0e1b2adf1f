"""Issue 11, server side: bounded work per request, honest responses, auth that holds.

Each test reproduces one finding of the attack pass against a registry on 127.0.0.1, with
bounded counts and sizes, and checks the fixed behaviour.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from fleetkit.registry.server import manifests as manifests_mod
from tests.registry._images import OCI_MANIFEST, make_image, sha256
from tests.registry._server import ThreadServer, thread_server

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.tracebacks = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.tracebacks += record.exc_info is not None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def reglog() -> Iterator[_Lines]:
    """The registry's log lines (whatever other tests did to its loggers' configuration)."""
    handler = _Lines()
    loggers = [
        logging.getLogger("fleetkit.registry"),
        logging.getLogger("fleetkit.registry.access"),
    ]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    loggers[0].setLevel(logging.INFO)
    loggers[1].setLevel(logging.NOTSET)
    loggers[1].propagate = True
    loggers[0].addHandler(handler)
    try:
        yield handler
    finally:
        loggers[0].removeHandler(handler)
        for lg, (level, propagate) in zip(loggers, saved, strict=True):
            lg.setLevel(level)
            lg.propagate = propagate


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadServer]:
    with thread_server(root=str(tmp_path / "data")) as srv:
        yield srv


def _conn(srv: ThreadServer) -> http.client.HTTPConnection:
    host, port = srv.host.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=30)


def _push_image(url: str, name: str, tag: str, seed: int = 0) -> str:
    img = make_image(seed)
    for digest, data in img.blobs().items():
        r = requests.post(
            f"{url}/v2/{name}/blobs/uploads/", params={"digest": digest}, data=data, timeout=30
        )
        assert r.status_code == 201, r.text
    r = requests.put(
        f"{url}/v2/{name}/manifests/{tag}",
        data=img.manifest,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return img.digest


# -- item 23: error responses never carry a Content-Length that lies ---------------------------


def test_416_on_keepalive_connection_does_not_corrupt_the_next_response(
    server: ThreadServer,
) -> None:
    conn = _conn(server)
    try:
        conn.request("POST", "/v2/a/blobs/uploads/", body=b"")
        r = conn.getresponse()
        r.read()
        assert r.status == 202
        location = r.getheader("Location", "").split(server.host, 1)[1]
        conn.request("PATCH", location, body=b"xyz", headers={"Content-Range": "5-7"})
        r = conn.getresponse()
        body = r.read()
        assert r.status == 416
        assert int(r.getheader("Content-Length", "-1")) == len(body)
        assert json.loads(body)["errors"][0]["code"] == "RANGE_INVALID"
        assert r.getheader("Range") == "0-0"  # the upload's state still travels with the error
        # the same connection answers the next request cleanly
        conn.request("GET", "/v2/")
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b"{}"
    finally:
        conn.close()


# -- item 2: Accept parsing is linear and capped ------------------------------------------------


def test_parse_accept_is_capped_and_deduplicated() -> None:
    lines = [",".join(f"a/t{i}-{j}" for j in range(500)) for i in range(64)]
    lines.append("application/json, application/JSON;q=0.5, application/json")
    out = manifests_mod.parse_accept(lines)
    assert len(out) == manifests_mod.MAX_ACCEPT_TYPES
    assert len(set(out)) == len(out)
    assert manifests_mod.parse_accept(["a/b, A/B;q=1", "c/d"]) == ["a/b", "c/d"]


def test_manifest_get_with_huge_accept_header_is_served(server: ThreadServer) -> None:
    _push_image(server.url, "acc", "v1")
    conn = _conn(server)
    try:
        conn.putrequest("GET", "/v2/acc/manifests/v1", skip_accept_encoding=True)
        for i in range(64):
            conn.putheader("Accept", ",".join(f"x/t{i}-{j}" for j in range(600)))
        conn.putheader("Accept", OCI_MANIFEST)
        conn.endheaders()
        r = conn.getresponse()
        r.read()
        # the manifest type comes after the cap: it is ignored, so no manifest type is listed
        # and the stored type is served, as for any client that lists none
        assert r.status == 200
    finally:
        conn.close()


# -- item 1: bodies read whole are bounded while reading ----------------------------------------


def test_token_form_post_is_bounded(tmp_path: Path) -> None:
    with thread_server(root="memory:", auth="token") as srv:
        big = b"grant_type=password&username=a&password=" + b"x" * (1 << 20)
        r = requests.post(
            f"{srv.url}/service/token",
            data=big,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=30,
        )
        assert r.status_code == 413
        assert r.json()["errors"][0]["code"] == "SIZE_INVALID"


def test_manifest_without_content_length_is_bounded_while_reading(server: ThreadServer) -> None:
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(80):  # 5 MiB in 64 KiB pieces, chunked (no Content-Length)
            sent += 1
            yield b" " * (64 << 10)

    try:
        r = requests.put(
            f"{server.url}/v2/big/manifests/v1",
            data=body(),
            headers={"Content-Type": OCI_MANIFEST},
            timeout=30,
        )
    except requests.ConnectionError:
        return  # the server may close before the client finishes sending: refused early
    assert r.status_code == 413
    assert r.json()["errors"][0]["code"] == "MANIFEST_TOO_BIG"


# -- item 7: upload locks are validated first and do not outlive their use ----------------------


def test_upload_locks_do_not_accumulate(server: ThreadServer) -> None:
    s = requests.Session()
    for i in range(150):
        bogus = f"{i:04d}" + "z" * 400 if i % 2 else f"{i:032x}"
        r = s.patch(f"{server.url}/v2/a/blobs/uploads/{bogus}", data=b"x", timeout=30)
        assert r.status_code == 404, r.text
        assert r.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
        r = s.put(
            f"{server.url}/v2/a/blobs/uploads/{bogus}",
            params={"digest": sha256(b"x")},
            data=b"x",
            timeout=30,
        )
        assert r.status_code == 404
    # a real session, used and finished, leaves nothing behind either
    r = s.post(f"{server.url}/v2/a/blobs/uploads/", timeout=30)
    loc = r.headers["Location"]
    r = s.patch(loc, data=b"abc", timeout=30)
    assert r.status_code == 202
    r = s.put(loc, params={"digest": sha256(b"abc")}, timeout=30)
    assert r.status_code == 201
    assert server.state.upload_locks == {}


# -- item 20: expensive requests are capped, and heavy work leaves the event loop ---------------


def test_repeated_digest_parameters_are_refused(server: ThreadServer) -> None:
    data = b"d" * 1000
    params = [("digest", sha256(data))] * 55
    r = requests.post(f"{server.url}/v2/a/blobs/uploads/", params=params, data=data, timeout=30)
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    # one digest given twice is still one digest
    r = requests.post(f"{server.url}/v2/a/blobs/uploads/", params=params[:2], data=data, timeout=30)
    assert r.status_code == 201, r.text


def test_manifest_put_parses_off_the_event_loop(
    server: ThreadServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real = manifests_mod.parse_manifest

    def spy(data: bytes, content_type: str | None = None) -> object:
        threads.append(threading.get_ident())
        return real(data, content_type)

    monkeypatch.setattr(manifests_mod, "parse_manifest", spy)
    _push_image(server.url, "off", "v1")
    assert threads and server._thread.ident not in threads


def test_too_many_tag_parameters_are_refused(server: ThreadServer) -> None:
    img = make_image(3)
    for digest, data in img.blobs().items():
        requests.post(
            f"{server.url}/v2/t/blobs/uploads/", params={"digest": digest}, data=data, timeout=30
        )
    r = requests.put(
        f"{server.url}/v2/t/manifests/{img.digest}",
        params=[("tag", f"t{i}") for i in range(101)],
        data=img.manifest,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=30,
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == "TAG_INVALID"


# -- items 13 and 14: tokens: signature first, claims strictly typed, chains fully verified ----

ISS, AUD = "iss", "reg"


def _jwt(key: object, x5c: list[object], claims: dict[str, object], alg: str = "ES256") -> str:
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    from fleetkit.registry.auth.tokens import b64url

    ders = [c.public_bytes(serialization.Encoding.DER) for c in x5c]  # type: ignore[attr-defined]
    header = {"typ": "JWT", "alg": alg, "x5c": [base64.b64encode(d).decode() for d in ders]}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def _claims(**over: object) -> dict[str, object]:
    import time

    now = int(time.time())
    doc: dict[str, object] = {
        "iss": ISS,
        "sub": "alice",
        "aud": AUD,
        "exp": now + 300,
        "nbf": now - 1,
        "iat": now,
        "access": [{"type": "repository", "name": "a", "actions": ["pull"]}],
    }
    doc.update(over)
    return doc


def _cert(
    cn: str,
    issuer: tuple[object, object] | None = None,
    ca: bool = True,
    days: tuple[int, int] = (-1, 30),
) -> tuple[object, object]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    ikey, icert = issuer if issuer else (key, None)
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(icert.subject if icert is not None else name)  # type: ignore[attr-defined]
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, False, False, False),
            critical=True,
        )
    return key, b.sign(ikey, hashes.SHA256())  # type: ignore[arg-type]


def test_signed_tokens_with_absurd_numbers_are_invalid_not_crashes() -> None:
    from fleetkit.registry.auth.tokens import InvalidToken, SigningKey, TokenVerifier

    signer = SigningKey.generate()
    v = TokenVerifier([signer.cert], ISS, AUD)
    for exp in (float("inf"), float("-inf"), float("nan"), 1e400, 10**400, True, "123", None):
        token = signer.sign_jwt(_claims(exp=exp))
        with pytest.raises(InvalidToken):
            v.verify(token)
    with pytest.raises(InvalidToken):
        v.verify(signer.sign_jwt(_claims(nbf=-(10**30))))


def test_unsigned_tokens_get_401_invalid_token() -> None:
    import base64

    from fleetkit.registry.auth.tokens import b64url

    with thread_server(root="memory:", auth="token", service=AUD, issuer=ISS) as srv:
        bodies = [
            b'{"iss":"iss","aud":"reg","exp":1e400}',
            b'{"iss":"iss","aud":"reg","exp":-Infinity}',
            b'{"iss":"iss","aud":"reg","exp":NaN}',
            b"[" * 3000 + b"]" * 3000,
        ]
        for alg in ("none", "ES256"):
            header = json.dumps({"alg": alg, "x5c": [base64.b64encode(b"x").decode()]})
            for body in bodies:
                token = f"{b64url(header.encode())}.{b64url(body)}.{b64url(b'0' * 64)}"
                r = requests.get(
                    f"{srv.url}/v2/",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=30,
                )
                assert r.status_code == 401, (alg, body[:40], r.text)
                assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
                assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_x5c_chain_needs_ca_issuers_and_valid_intermediates() -> None:
    from fleetkit.registry.auth.tokens import InvalidToken, TokenVerifier

    root_key, root = _cert("root")
    v = TokenVerifier([root], ISS, AUD)  # type: ignore[list-item]
    # the sound cases: root as signer, leaf under root, leaf under a CA intermediate
    v.verify(_jwt(root_key, [root], _claims()))
    leaf_key, leaf = _cert("leaf", (root_key, root), ca=False)
    v.verify(_jwt(leaf_key, [leaf], _claims()))
    inter_key, inter = _cert("inter", (root_key, root))
    leaf2_key, leaf2 = _cert("leaf2", (inter_key, inter), ca=False)
    v.verify(_jwt(leaf2_key, [leaf2, inter], _claims()))
    # a trusted end-entity certificate is no CA: what it signs is not trusted
    mallory_key, mallory = _cert("mallory", (leaf_key, leaf), ca=False)
    with pytest.raises(InvalidToken, match="root bundle"):
        v.verify(_jwt(mallory_key, [mallory, leaf], _claims()))
    # a root bundle entry without basicConstraints cA may not issue either
    plain_key, plain = _cert("plain", ca=False)
    child_key, child = _cert("child", (plain_key, plain), ca=False)
    with pytest.raises(InvalidToken, match="root bundle"):
        TokenVerifier([plain], ISS, AUD).verify(_jwt(child_key, [child], _claims()))  # type: ignore[list-item]
    # an expired intermediate breaks the chain
    old_key, old = _cert("old", (root_key, root), days=(-30, -2))
    leaf3_key, leaf3 = _cert("leaf3", (old_key, old), ca=False)
    with pytest.raises(InvalidToken, match="root bundle"):
        v.verify(_jwt(leaf3_key, [leaf3, old], _claims()))


# -- items 3 and 6: refresh tokens are revocable; password checks are off-loop and limited -----


def _basic(user: str, password: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    from fleetkit.registry.auth.users import add_user

    path = tmp_path / "htpasswd"
    add_user(str(path), "alice", "alicepw", cost=4)
    add_user(str(path), "bob", "bobpw", cost=4)
    return path


def _refresh(url: str, token: str) -> requests.Response:
    return requests.post(
        f"{url}/service/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "service": AUD},
        timeout=30,
    )


def test_refresh_tokens_die_with_the_user_and_their_password(users_file: Path) -> None:
    from fleetkit.registry.auth.users import add_user

    with thread_server(
        root="memory:", auth="token", htpasswd=str(users_file), service=AUD, issuer=ISS
    ) as srv:

        def login(user: str, password: str) -> str:
            r = requests.post(
                f"{srv.url}/service/token",
                data={
                    "grant_type": "password",
                    "username": user,
                    "password": password,
                    "service": AUD,
                    "access_type": "offline",
                    "scope": "repository:a:pull",
                },
                timeout=30,
            )
            assert r.status_code == 200, r.text
            return str(r.json()["refresh_token"])

        alice, bob = login("alice", "alicepw"), login("bob", "bobpw")
        assert _refresh(srv.url, alice).status_code == 200
        # alice changes her password: her old refresh tokens stop working
        add_user(str(users_file), "alice", "newpw", cost=4)
        r = _refresh(srv.url, alice)
        assert r.status_code == 401 and r.json()["error"] == "invalid_grant"
        assert _refresh(srv.url, login("alice", "newpw")).status_code == 200
        # bob is removed from htpasswd: no refresh, no password login, no renewal
        lines = [ln for ln in users_file.read_text().splitlines() if not ln.startswith("bob:")]
        users_file.write_text("\n".join(lines) + "\n")
        assert _refresh(srv.url, bob).status_code == 401
        r = requests.get(
            f"{srv.url}/service/token", params={"service": AUD}, headers=_basic("bob", "bobpw")
        )
        assert r.status_code == 401


def test_htpasswd_mode_notices_a_removed_user(users_file: Path) -> None:
    with thread_server(root="memory:", auth="htpasswd", htpasswd=str(users_file)) as srv:
        assert requests.get(f"{srv.url}/v2/", headers=_basic("bob", "bobpw")).status_code == 200
        users_file.write_text(users_file.read_text().split("\n", 1)[0] + "\n")  # alice only
        assert requests.get(f"{srv.url}/v2/", headers=_basic("bob", "bobpw")).status_code == 401


def test_bcrypt_runs_off_the_event_loop_and_for_unknown_users_too(
    users_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bcrypt

    calls: list[int] = []
    real = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        calls.append(threading.get_ident())
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    with thread_server(root="memory:", auth="htpasswd", htpasswd=str(users_file)) as srv:
        for user, pw in (("alice", "alicepw"), ("alice", "wrong"), ("nobody", "x")):
            requests.get(f"{srv.url}/v2/", headers=_basic(user, pw), timeout=30)
        assert len(calls) == 3  # the unknown user costs a bcrypt check as well
        assert srv._thread.ident not in calls
    calls.clear()
    with thread_server(root="memory:", auth="token", htpasswd=str(users_file)) as srv:
        requests.get(f"{srv.url}/service/token", headers=_basic("alice", "x"), timeout=30)
        requests.post(
            f"{srv.url}/service/token",
            data={"grant_type": "password", "username": "bob", "password": "x"},
            timeout=30,
        )
        assert len(calls) == 2 and srv._thread.ident not in calls


def test_failed_logins_are_rate_limited_per_user_and_per_client(users_file: Path) -> None:
    with thread_server(
        root="memory:",
        auth="htpasswd",
        htpasswd=str(users_file),
        login_failures_per_user=3,
        login_failures_per_client=5,
    ) as srv:
        for _ in range(3):
            r = requests.get(f"{srv.url}/v2/", headers=_basic("alice", "guess"), timeout=30)
            assert r.status_code == 401
        r = requests.get(f"{srv.url}/v2/", headers=_basic("alice", "alicepw"), timeout=30)
        assert r.status_code == 429
        assert r.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert 0 < int(r.headers["Retry-After"]) <= 60
        # another user is not locked out by alice's attacker ...
        assert requests.get(f"{srv.url}/v2/", headers=_basic("bob", "bobpw")).status_code == 200
        # ... until this client address has failed too often for anyone
        for _ in range(2):
            requests.get(f"{srv.url}/v2/", headers=_basic("bob", "guess"), timeout=30)
        r = requests.get(f"{srv.url}/v2/", headers=_basic("bob", "bobpw"), timeout=30)
        assert r.status_code == 429
    with thread_server(
        root="memory:", auth="token", htpasswd=str(users_file), login_failures_per_user=2
    ) as srv:
        for _ in range(2):
            r = requests.get(f"{srv.url}/service/token", headers=_basic("bob", "x"), timeout=30)
            assert r.status_code == 401
        r = requests.get(f"{srv.url}/service/token", headers=_basic("bob", "bobpw"), timeout=30)
        assert r.status_code == 429 and "Retry-After" in r.headers


def test_login_limiter_window() -> None:
    from fleetkit.registry.auth.logins import LoginLimiter

    now = [1000.0]
    lim = LoginLimiter(per_user=2, per_client=100, window_s=60, clock=lambda: now[0])
    lim.failed("u", "1.2.3.4")
    assert lim.retry_after_s("u", "1.2.3.4") == 0
    now[0] += 10
    lim.failed("u", "1.2.3.4")
    assert lim.retry_after_s("u", "5.6.7.8") == 50
    now[0] += 50
    assert lim.retry_after_s("u", "1.2.3.4") == 0


# -- item 24: a mount's challenge names the source repository too -------------------------------


def test_mount_challenge_asks_for_the_source_scope() -> None:
    with thread_server(root="memory:", auth="token", service=AUD, issuer=ISS) as srv:
        r = requests.post(
            f"{srv.url}/v2/team/b/blobs/uploads/",
            params={"mount": "sha256:" + "a" * 64, "from": "team/a"},
            timeout=30,
        )
        assert r.status_code == 401
        challenge = r.headers["WWW-Authenticate"]
        assert 'scope="repository:team/b:pull,push repository:team/a:pull"' in challenge
        # not a mount (no from): only the target
        r = requests.post(f"{srv.url}/v2/team/b/blobs/uploads/", timeout=30)
        assert 'scope="repository:team/b:pull,push"' in r.headers["WWW-Authenticate"]


def test_token_mode_without_users_warns(reglog: _Lines) -> None:
    from fleetkit.registry.server.app import ServerConfig, build_state

    build_state(ServerConfig(root="memory:", auth="token"))
    caplog = reglog
    assert "no --htpasswd: nobody can log in" in caplog.text


# -- item 22: failed POSTs on a full disk leave no upload directories, and gc removes old ones --


def _full_disk_server(tmp_path: Path, fail: str) -> ThreadServer:
    from fleetkit.registry.server.app import ServerConfig
    from fleetkit.registry.storage.base import StorageFailure
    from fleetkit.registry.storage.filesystem import FilesystemDriver

    class FullDisk(FilesystemDriver):
        def put(self, path: str, data: bytes) -> None:
            if fail == "put" and "/_uploads/" in path and path.endswith("/data"):
                raise StorageFailure(f"cannot write {path}: No space left on device")
            super().put(path, data)

        def appender(self, path: str):  # type: ignore[no-untyped-def]
            real = super().appender(path)
            if fail != "append":
                return real

            class Full:
                size = 0

                def write(self, data: bytes) -> None:
                    raise StorageFailure("write failed: No space left on device")

                def sync(self) -> None:
                    pass

                def close(self) -> None:
                    real.close()

            return Full()

    srv = ThreadServer(ServerConfig(root=str(tmp_path / "data"), listen="127.0.0.1:0"))
    srv.state.store.driver = FullDisk(str(tmp_path / "data"))
    return srv.start()


@pytest.mark.parametrize("fail", ["put", "append"])
def test_failed_posts_on_a_full_disk_leave_no_upload_dirs(
    tmp_path: Path, fail: str, reglog: _Lines
) -> None:
    srv = _full_disk_server(tmp_path, fail)
    try:
        data = b"z" * 5000
        for _ in range(3):
            r = requests.post(
                f"{srv.url}/v2/full/blobs/uploads/",
                params={"digest": sha256(data)},
                data=data,
                timeout=30,
            )
            assert r.status_code == 500
            assert r.json()["errors"][0]["code"] == "UNKNOWN"
        uploads = tmp_path / "data" / "repositories" / "full" / "_uploads"
        assert not uploads.exists() or list(uploads.iterdir()) == []
        # the same failure three times is one log line, not three
        assert sum("No space left on device" in ln for ln in reglog.lines) == 1
    finally:
        srv.stop()


def test_gc_removes_upload_dirs_without_data(tmp_path: Path) -> None:
    from fleetkit.registry.storage import FilesystemDriver, RegistryStore

    store = RegistryStore(FilesystemDriver(str(tmp_path)))
    kept = store.start_upload("r")
    broken = tmp_path / "repositories" / "r" / "_uploads" / ("f" * 32)
    broken.mkdir(parents=True)
    (broken / "startedat").write_text("2026-01-01T00:00:00+00:00")
    report = store.gc()
    assert report.uploads_deleted == [f"r/{'f' * 32}"]
    assert not broken.exists()
    assert store.get_upload("r", kept.id).size == 0


# -- item 12: gc never runs under a live server --------------------------------------------------


def test_gc_refuses_a_live_root_and_runs_once_it_is_stopped(tmp_path: Path) -> None:
    from fleetkit.cli.registry import main
    from fleetkit.registry.storage.filesystem import RootInUse

    root = tmp_path / "data"
    with thread_server(root=str(root)) as srv:
        _push_image(srv.url, "live", "v1")
        # a push in progress: its blob is not referenced by any manifest yet
        data = b"in flight" * 100
        r = requests.post(
            f"{srv.url}/v2/live/blobs/uploads/", params={"digest": sha256(data)}, data=data
        )
        assert r.status_code == 201
        with pytest.raises(RootInUse, match="in use by a running server"):
            main("registry", ["gc", "--root", str(root)])
        assert main("registry", ["gc", "--root", str(root), "--dry-run"]) == 0  # reads only
        r = requests.get(f"{srv.url}/v2/live/blobs/{sha256(data)}", timeout=30)
        assert r.status_code == 200
    assert main("registry", ["gc", "--root", str(root)]) == 0


def test_server_refuses_to_start_while_gc_holds_the_root(tmp_path: Path) -> None:
    from fleetkit.registry.storage.filesystem import FilesystemDriver

    root = tmp_path / "data"
    with FilesystemDriver(str(root)).lock(exclusive=True):
        with pytest.raises(RuntimeError, match="gc is running"):
            with thread_server(root=str(root)):
                pass


# -- extra: a memory: registry does not claim to keep upload sessions ---------------------------


def test_memory_root_does_not_claim_to_keep_sessions(reglog: _Lines) -> None:
    with thread_server(root="memory:"):
        pass
    caplog = reglog
    assert "upload sessions are kept" not in caplog.text
    assert "in-memory storage: all data is discarded" in caplog.text


# -- item 8: header/idle and body timeouts, and a connection cap with a clean refusal ----------


def _raw(srv: ThreadServer, timeout_s: float = 20.0) -> socket.socket:
    host, port = srv.host.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout_s)
    return s


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            return out
        if not data:
            return out
        out += data


def test_half_open_and_slow_header_connections_are_closed() -> None:
    with thread_server(root="memory:", idle_timeout_s=0.3) as srv:
        silent, partial = _raw(srv), _raw(srv)
        try:
            partial.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")  # never finished
            # both are closed by the server (recv returns EOF) well before the 20 s timeout
            assert _read_all(silent) == b""
            assert _read_all(partial) == b""
        finally:
            silent.close()
            partial.close()


def test_a_stalled_body_is_cut_off() -> None:
    with thread_server(root="memory:", body_timeout_s=0.3) as srv:
        r = requests.post(f"{srv.url}/v2/a/blobs/uploads/", timeout=30)
        path = r.headers["Location"].split(srv.host, 1)[1]
        s = _raw(srv)
        try:
            s.sendall(
                f"PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode()
                + b"x" * 10
            )
            reply = _read_all(s)
        finally:
            s.close()
        assert reply.startswith(b"HTTP/1.1 408 ")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert json.loads(body)["errors"][0]["code"] == "SIZE_INVALID"
        # what arrived before the stall is kept, as for any interrupted PATCH
        r = requests.get(f"{srv.url}{path}", timeout=30)
        assert r.status_code == 204 and r.headers["Range"] == "0-9"


def test_connections_past_the_cap_get_a_clean_503(reglog: _Lines) -> None:
    caplog = reglog
    with thread_server(root="memory:", max_connections=2) as srv:
        held = [_raw(srv), _raw(srv)]
        try:
            for s in held:  # a full request each, so both are surely accepted
                s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
                assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
            refused = []
            for _ in range(5):
                s = _raw(srv)
                refused.append(_read_all(s))
                s.close()
        finally:
            for s in held:
                s.close()
        for reply in refused:
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 ")
            length = int(
                [h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][
                    0
                ].split(b":")[1]
            )
            assert length == len(body)
            assert json.loads(body)["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert srv.state.metrics.connections_refused == 5
    # one line when the limit is reached, not one per refused socket
    assert caplog.text.count("connection limit reached") == 1


def test_malformed_requests_are_one_line_not_a_traceback_each(reglog: _Lines) -> None:
    aiohttp_log = logging.getLogger("aiohttp.server")
    aiohttp_log.addHandler(reglog)
    try:
        with thread_server(root="memory:") as srv:
            for _ in range(20):
                s = _raw(srv)
                s.sendall(b"GET /v2/ HTTP/1.1\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n")
                assert _read_all(s).split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
                s.close()
    finally:
        aiohttp_log.removeHandler(reglog)
    assert reglog.tracebacks == 0
    bad = [ln for ln in reglog.lines if "bad request" in ln]
    assert len(bad) == 1 and "8190" in bad[0]


def test_max_connections_fits_the_fd_limit() -> None:
    import resource

    from fleetkit.registry.server.limits import effective_max_connections

    limit = effective_max_connections(10**9)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)  # raised toward the hard limit
    assert 0 < limit <= soft // 2
    assert effective_max_connections(3) == 3


# -- item 21: /metrics is not open to anonymous clients under auth -----------------------------


@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_metrics_only_on_its_own_listener_under_auth(users_file: Path, auth: str) -> None:
    with thread_server(
        root="memory:", auth=auth, htpasswd=str(users_file), metrics_listen="127.0.0.1:0"
    ) as srv:
        r = requests.get(f"{srv.url}/metrics", timeout=30)
        assert r.status_code == 404
        assert srv.state.metrics_url.startswith("http://127.0.0.1:")
        r = requests.get(f"{srv.state.metrics_url}/metrics", timeout=30)
        assert r.status_code == 200 and "fleetkit_registry_http_requests_total" in r.text
        # the metrics listener serves nothing else
        assert requests.get(f"{srv.state.metrics_url}/v2/", timeout=30).status_code == 404
    with thread_server(root="memory:", auth=auth, htpasswd=str(users_file)) as srv:
        assert requests.get(f"{srv.url}/metrics", timeout=30).status_code == 404


# -- item 25: a client that goes away mid-blob is a 499, not a 500 -------------------------------


def test_client_disconnect_mid_blob_is_499_not_500(tmp_path: Path, reglog: _Lines) -> None:
    import struct
    import time

    blob = os.urandom(1 << 20) * 24  # larger than the socket buffers on loopback
    digest = sha256(blob)
    caplog = reglog
    with thread_server(root=str(tmp_path / "data")) as srv:
        r = requests.post(f"{srv.url}/v2/big/blobs/uploads/", params={"digest": digest}, data=blob)
        assert r.status_code == 201
        s = _raw(srv)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(f"GET /v2/big/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 200 ")
        while len(head.partition(b"\r\n\r\n")[2]) == 0:  # body bytes are on their way
            more = s.recv(4096)
            assert more, "the server closed before sending any body byte"
            head += more
        # Ctrl-C: close with RST while the server is still sending
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        deadline = time.monotonic() + 20
        key = ("GET", "blob", 499)
        while srv.state.metrics.requests.get(key, 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)  # waiting for the server to notice, bounded
        assert srv.state.metrics.requests.get(key) == 1
        assert srv.state.metrics.requests.get(("GET", "blob", 500)) is None
        assert srv.state.metrics.client_disconnects == 1
        # ranged bodies log the bytes they sent
        r = requests.get(
            f"{srv.url}/v2/big/blobs/{digest}", headers={"Range": "bytes=10-109"}, timeout=30
        )
        assert r.status_code == 206 and len(r.content) == 100
    assert "internal error" not in caplog.text and "Traceback" not in caplog.text
    assert "client disconnected" in caplog.text
    lines = [ln for ln in caplog.text.splitlines() if f"/v2/big/blobs/{digest} HTTP" in ln]
    disconnected = [ln for ln in lines if '" 499 ' in ln]
    assert len(disconnected) == 1
    sent = int(disconnected[0].split('" 499 ')[1].split()[0])
    assert 0 < sent < len(blob)
    assert any('" 206 100 ' in ln for ln in lines)


# -- the new server flags in the bad-input sweep: error: lines, exit 2, nothing started ---------

FLAG_CASES = [
    (["--idle-timeout", "0"], "--idle-timeout"),
    (["--body-timeout", "nan"], "--body-timeout"),
    (["--max-connections", "0"], "--max-connections"),
    (["--login-failures-per-user", "0"], "--login-failures"),
    (["--metrics-listen", "0.0.0.0:0"], "plain HTTP /metrics"),
    (["--metrics-listen", "nonsense"], "invalid listen address"),
]


@pytest.mark.parametrize(("flags", "expect"), FLAG_CASES, ids=[c[1] for c in FLAG_CASES])
def test_bad_server_flags(
    flags: list[str], expect: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleetkit.cli import main

    ready = tmp_path / "ready"
    args = ["registry", "serve", "--root", "memory:", "--listen", "127.0.0.1:0", "-q"]
    rc = main([*args, "--ready-file", str(ready), *flags])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ") and expect in lines[0], err
    assert rc == 2
    assert not ready.exists()


def test_a_challenge_driven_client_mounts_across_repositories(users_file: Path) -> None:
    from fleetkit.registry.auth.challenge import parse_scopes

    with thread_server(
        root="memory:", auth="token", htpasswd=str(users_file), service=AUD, issuer=ISS
    ) as srv:

        def token_for(challenge: str) -> dict[str, str]:
            scope = challenge.split('scope="', 1)[1].split('"', 1)[0]
            r = requests.get(
                f"{srv.url}/service/token",
                params={"service": AUD, "scope": scope.split(" ")},
                headers=_basic("alice", "alicepw"),
                timeout=30,
            )
            assert r.status_code == 200
            return {"Authorization": f"Bearer {r.json()['token']}"}

        data = b"shared layer" * 100
        digest = sha256(data)
        url = f"{srv.url}/v2/team/a/blobs/uploads/"
        r = requests.post(url, params={"digest": digest}, data=data, timeout=30)
        r = requests.post(
            url,
            params={"digest": digest},
            data=data,
            headers=token_for(r.headers["WWW-Authenticate"]),
        )
        assert r.status_code == 201
        mount = {"mount": digest, "from": "team/a"}
        target = f"{srv.url}/v2/team/b/blobs/uploads/"
        r = requests.post(target, params=mount, timeout=30)
        challenge = r.headers["WWW-Authenticate"]
        assert {str(s) for s in parse_scopes([challenge.split('scope="')[1].split('"')[0]])} == {
            "repository:team/b:pull,push",
            "repository:team/a:pull",
        }
        r = requests.post(target, params=mount, headers=token_for(challenge), timeout=30)
        assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == digest
        # a token for the target alone still pushes: by upload, not by mount
        only_b = 'Bearer scope="repository:team/c:pull,push"'
        r = requests.post(
            f"{srv.url}/v2/team/c/blobs/uploads/", params=mount, headers=token_for(only_b)
        )
        assert r.status_code == 202
