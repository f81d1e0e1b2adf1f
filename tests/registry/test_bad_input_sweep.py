"""Bad input to the registry server and client commands: ``error:``, exit 2 / 1, no traceback."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from fleetkit.cli import main

BINARY = b"\x00\xff\xfe garbage\n"

# (what, argv, exit code, text expected in the error line); nothing here reaches the network
CASES = [
    ("pull port out of range", ["pull", "127.0.0.1:99999/x:1", "oci:out"], 2, "invalid port"),
    ("tags port out of range", ["tags", "127.0.0.1:99999/x"], 2, "invalid port"),
    ("login port out of range", ["login", "127.0.0.1:99999", "-u", "a", "-p", "b"], 2, "port"),
    ("login host with a space", ["login", "a b", "-u", "a", "-p", "b"], 2, "invalid registry"),
    ("uppercase repository", ["pull", "127.0.0.1:1/UPPER:1", "oci:out"], 2, "lowercase"),
    ("bad digest", ["manifest", "127.0.0.1:1/x@sha256:abc"], 2, "invalid reference"),
    (
        "binary htpasswd (serve)",
        ["registry", "serve", "--listen", "127.0.0.1:0", "--auth", "htpasswd"]
        + ["--htpasswd", "binary"],
        2,
        "not UTF-8",
    ),
    (
        "binary htpasswd (add)",
        ["registry", "htpasswd", "add", "bob", "--file", "binary", "--password-stdin"],
        2,
        "not UTF-8",
    ),
    (
        "binary policy",
        ["registry", "serve", "--root", "memory:", "--listen", "127.0.0.1:0", "--auth", "token"]
        + ["--policy", "binary"],
        2,
        "not UTF-8",
    ),
    (
        "ready file in a missing directory",
        ["registry", "serve", "--root", "memory:", "--listen", "127.0.0.1:0", "-q"]
        + ["--ready-file", "nodir/ready"],
        1,
        "--ready-file",
    ),
]


@pytest.mark.parametrize(("what", "args", "code", "expect"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(
    what: str,
    args: list[str],
    code: int,
    expect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    (tmp_path / "binary").write_bytes(BINARY)
    rc = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if not x.startswith("WARNING!")]  # docker's -p warning
    assert lines and lines[0].startswith("error: "), err
    assert expect in lines[0]
    assert rc == code
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "nodir").exists()
    assert (tmp_path / "binary").read_bytes() == BINARY  # nothing overwritten


def test_htpasswd_password_over_72_bytes_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # bcrypt reads 72 bytes: storing the hash of a silently truncated password is refused
    monkeypatch.setattr("sys.stdin", io.StringIO("p" * 73 + "\n"))
    rc = main(
        ["registry", "htpasswd", "add", "bob", "--file", str(tmp_path / "h"), "--password-stdin"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: password is longer than 72 bytes"), err
    assert not (tmp_path / "h").exists()


def test_deeply_nested_manifest_is_manifest_invalid() -> None:
    from fleetkit.registry.manifest import ManifestInvalid, parse_manifest

    body = b'{"a":' * 100000 + b"1" + b"}" * 100000
    with pytest.raises(ManifestInvalid, match="nested too deeply"):
        parse_manifest(body, "application/vnd.oci.image.manifest.v1+json")
