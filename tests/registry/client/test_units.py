"""Pure units: references, challenges, redaction, retry policy, platforms, locations."""

from __future__ import annotations

import email.utils
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetkit.errors import UsageError
from fleetkit.registry.client.image import Platform
from fleetkit.registry.client.layout import parse_location
from fleetkit.registry.client.transport import (
    RetryPolicy,
    _retry_after,
    parse_challenges,
    redact_header,
    redact_url,
)
from fleetkit.registry.reference import (
    InvalidReference,
    familiar_name,
    is_insecure_default,
    parse_reference,
)

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repo", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", "latest", None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("index.docker.io/foo/bar", "docker.io", "foo/bar", "latest", None),
        ("127.0.0.1:5000/nginx/ingress:v1.0.0", "127.0.0.1:5000", "nginx/ingress", "v1.0.0", None),
        ("localhost/a", "localhost", "a", "latest", None),
        (f"localhost:5000/a/b@{D}", "localhost:5000", "a/b", None, D),
        (f"reg.example.com/a:t@{D}", "reg.example.com", "a", "t", D),
        ("[::1]:5000/x", "[::1]:5000", "x", "latest", None),
    ],
)
def test_parse_reference_defaults(
    text: str, registry: str, repo: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repo, tag, digest)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " nginx",
        "Nginx",
        "a/B/c",
        "nginx:",
        "nginx:-bad",
        "x@sha256:abc",
        "a//b",
        "a b",
        f"a@md5:{'0' * 32}",
        "bad_host:5000:x/y",
    ],
)
def test_invalid_references_are_usage_errors(text: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert info.value.exit_code == 2
    assert info.value.hint


def test_familiar_name() -> None:
    assert familiar_name(parse_reference("nginx")) == "nginx:latest"
    assert familiar_name(parse_reference("127.0.0.1:5000/a/b:v1")) == "127.0.0.1:5000/a/b:v1"


@pytest.mark.parametrize(
    ("host", "insecure"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.9.8.7", True),
        ("[::1]:5000", True),
        ("10.0.0.1:5000", False),
        ("example.com", False),
        ("docker.io", False),
    ],
)
def test_plain_http_only_for_loopback(host: str, insecure: bool) -> None:
    assert is_insecure_default(host) is insecure


_component = st.from_regex(r"[a-z0-9]{1,8}(?:[._-][a-z0-9]{1,5})?", fullmatch=True)


@given(
    repo=st.lists(_component, min_size=1, max_size=3).map("/".join),
    tag=st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True),
)
def test_reference_round_trips(repo: str, tag: str) -> None:
    ref = parse_reference(f"127.0.0.1:5000/{repo}:{tag}")
    assert parse_reference(str(ref)) == ref


def test_parse_challenges() -> None:
    [bearer] = parse_challenges(
        [
            'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
            'scope="repository:a/b:pull,push repository:c:pull"'
        ]
    )
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:a/b:pull,push repository:c:pull",
    }
    both = parse_challenges(
        ['Basic realm="x\\"y", Bearer realm=http://t/token, error=insufficient_scope']
    )
    assert [c.scheme for c in both] == ["basic", "bearer"]
    assert both[0].params["realm"] == 'x"y'
    assert both[1].params == {"realm": "http://t/token", "error": "insufficient_scope"}
    assert parse_challenges([""]) == []


def test_redaction() -> None:
    assert redact_header("Authorization", "Bearer abc.def") == "Bearer [redacted]"
    assert redact_header("authorization", "Basic YTpi") == "Basic [redacted]"
    assert redact_header("Set-Cookie", "s=1") == "[redacted]"
    assert redact_header("Accept", "x") == "x"
    url = redact_url(
        "https://s3.example.com/blob?X-Amz-Signature=deadbeef&partNumber=1&access_token=t0k"
    )
    assert "deadbeef" not in url and "t0k" not in url and "partNumber=1" in url
    assert "pw" not in redact_url("http://u:pw@host/v2/")


def test_retry_policy_and_retry_after() -> None:
    policy = RetryPolicy(attempts=5, base_s=1.0, max_s=4.0)
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert RetryPolicy(max_retry_after_s=3.0).delay(1, retry_after=100.0) == 3.0
    for failure in range(1, 8):
        d = policy.delay(failure)
        assert 0 < d <= 4.0
    assert _retry_after("3") == 3.0
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (_retry_after(future) or 0) <= 31
    assert _retry_after("soon") is None


def test_platforms() -> None:
    assert str(Platform.parse("linux/arm64")) == "linux/arm64"
    assert Platform.parse("linux/arm64").matches(Platform("linux", "arm64", "v8"))
    assert not Platform.parse("linux/arm/v6").matches(Platform("linux", "arm", "v7"))
    assert Platform.parse("linux/x86_64") == Platform("linux", "amd64")
    with pytest.raises(UsageError):
        Platform.parse("linux")
    assert Platform.host().os


def test_locations() -> None:
    loc = parse_location("oci:/tmp/x:v1")
    assert (loc.transport, str(loc.path), loc.name) == ("oci", "/tmp/x", "v1")
    arch = parse_location("docker-archive:out.tar:reg:5000/a:b")
    assert (arch.transport, str(arch.path), arch.name) == (
        "docker-archive",
        "out.tar",
        "reg:5000/a:b",
    )
    for bad in ("dir:/x", "/tmp/x", "oci:", "docker://x"):
        with pytest.raises(UsageError):
            parse_location(bad)


def test_progress_renders_bars_on_a_tty_and_lines_otherwise() -> None:
    import io

    from fleetkit.cli.client import Progress
    from fleetkit.registry.client.events import Event

    digest = "sha256:" + "ab" * 32
    tty = io.StringIO()
    bars = Progress(tty, "tty", "Download", width=120)
    bars(Event("waiting", digest, 4 << 20))
    bars(Event("start", digest, 4 << 20, 0))
    bars(Event("progress", digest, 4 << 20, 1 << 20))
    bars.draw()
    out = tty.getvalue()
    assert "\x1b[1A" in out and "\x1b[2K" in out  # redrawn in place
    assert "abababababab: Waiting\n" in out
    assert "abababababab: Downloading [======>" in out and "1.0 MiB/4.0 MiB" in out and "ETA" in out
    lines = io.StringIO()
    plain = Progress(lines, "lines", "Download")
    for ev in (
        Event("start", digest, 4 << 20, 1 << 20),
        Event("progress", digest, 4 << 20, 2 << 20),
        Event("retry", digest, 4 << 20, 2 << 20, "connection lost; resuming in 0.5s"),
        Event("done", digest, 4 << 20, 4 << 20),
    ):
        plain(ev)
    assert lines.getvalue().splitlines() == [
        "abababababab: resuming download at 1.0 MiB of 4.0 MiB",
        "abababababab: connection lost; resuming in 0.5s",
        "abababababab: Download complete (4.0 MiB, resumed at 1.0 MiB)",
    ]
    quiet = io.StringIO()
    Progress(quiet, "quiet")(Event("done", digest, 1, 1))
    assert quiet.getvalue() == ""


def test_progress_bars_fit_the_terminal_and_notes_go_above_them() -> None:
    """Issue 11: bars wider than the terminal smeared on redraw; retry lines garbled them."""
    import io
    import re

    from fleetkit.cli.client import Progress
    from fleetkit.registry.client.events import Event

    digests = ["sha256:" + c * 64 for c in "abc"]
    for columns in (80, 60, 40):
        tty = io.StringIO()
        bars = Progress(tty, "tty", "Download", width=columns)
        for d in digests:
            bars(Event("waiting", d, 900 << 20))
        bars(Event("start", digests[0], 900 << 20, 0))
        bars(Event("progress", digests[0], 900 << 20, 123 << 20))
        bars(Event("retry", digests[1], 900 << 20, 0, "HTTP 503 " + "x" * 200))
        bars.note("GET https://r/v2/: timed out; retry 2/5 in 1.0s")
        bars.draw()
        text = re.sub(r"\x1b\[\d*[AK]", "", tty.getvalue())
        assert all(len(line) < columns for line in text.splitlines()), (columns, text)
        assert "fleetkit: GET https://r/v2/" in text
        # after the note the three bars are drawn again below it, not over it
        after_note = tty.getvalue().rpartition("fleetkit: GET")[2].partition("\x1b[3A")[0]
        assert after_note.count("\x1b[2K") == 3 and after_note.count("\n") == 4
