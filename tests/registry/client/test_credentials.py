"""docker config.json: auths, identity tokens, credHelpers/credsStore via real helper programs."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from fleetkit.registry.client import credentials
from fleetkit.registry.client.credentials import Credential
from fleetkit.registry.client.errors import CredentialsError
from tests.registry.client.helpers import env

HELPER = """#!/bin/sh
# A docker credential helper keeping one JSON file per server, as the protocol describes.
store_dir="{store}"
action="$1"
read -r input
case "$action" in
  get)
    f="$store_dir/$(printf %s "$input" | tr '/:' '__')"
    [ -f "$f" ] || {{ echo "credentials not found in native keychain"; exit 1; }}
    cat "$f" ;;
  store)
    key=$(printf %s "$input" | sed 's/.*"ServerURL": *"\\([^"]*\\)".*/\\1/')
    printf %s "$input" > "$store_dir/$(printf %s "$key" | tr '/:' '__')" ;;
  erase)
    f="$store_dir/$(printf %s "$input" | tr '/:' '__')"
    [ -f "$f" ] || {{ echo "credentials not found in native keychain"; exit 1; }}
    rm -f "$f" ;;
esac
"""


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "dockercfg"
    cfg.mkdir()
    with env(DOCKER_CONFIG=str(cfg)):
        yield cfg / "config.json"


@pytest.fixture
def helper(tmp_path: Path) -> str:
    bindir, store = tmp_path / "bin", tmp_path / "store"
    bindir.mkdir()
    store.mkdir()
    prog = bindir / "docker-credential-fktest"
    prog.write_text(HELPER.format(store=store))
    prog.chmod(0o755)
    with env(PATH=f"{bindir}:{os.environ['PATH']}"):
        yield "fktest"


def test_auths_from_docker_config_env(docker_config: Path) -> None:
    auth = base64.b64encode(b"alice:pa:ss").decode()
    docker_config.write_text(
        json.dumps(
            {
                "auths": {
                    "https://127.0.0.1:5000/v1/": {"auth": auth},
                    "https://index.docker.io/v1/": {"identitytoken": "idtok"},
                }
            }
        )
    )
    cred = credentials.resolve("127.0.0.1:5000")
    assert cred == Credential("alice", "pa:ss")
    assert "pa:ss" not in repr(cred)
    hub = credentials.resolve("docker.io")
    assert hub is not None and hub.identity_token == "idtok"
    assert credentials.resolve("other:5000") is None


def test_store_and_erase_write_like_docker(docker_config: Path) -> None:
    docker_config.write_text(json.dumps({"auths": {}, "psFormat": "table {{.ID}}"}))
    credentials.store("127.0.0.1:5000", Credential("bob", "pw"))
    doc = json.loads(docker_config.read_text())
    assert doc["psFormat"] == "table {{.ID}}"
    assert doc["auths"]["127.0.0.1:5000"] == {"auth": base64.b64encode(b"bob:pw").decode()}
    assert stat.S_IMODE(docker_config.stat().st_mode) == 0o600
    assert credentials.resolve("127.0.0.1:5000") == Credential("bob", "pw")
    assert credentials.erase("127.0.0.1:5000") is True
    assert credentials.resolve("127.0.0.1:5000") is None
    assert credentials.erase("127.0.0.1:5000") is False


def test_cred_helpers_and_creds_store(docker_config: Path, helper: str) -> None:
    docker_config.write_text(json.dumps({"credHelpers": {"127.0.0.1:5000": helper}}))
    assert credentials.resolve("127.0.0.1:5000") is None
    credentials.store("127.0.0.1:5000", Credential("carol", "hunter2"))
    assert "hunter2" not in docker_config.read_text()
    assert credentials.resolve("127.0.0.1:5000") == Credential("carol", "hunter2")
    assert credentials.erase("127.0.0.1:5000") is True
    assert credentials.resolve("127.0.0.1:5000") is None
    # credsStore: every registry goes to the store; <token> means an identity token
    docker_config.write_text(json.dumps({"credsStore": helper}))
    credentials.store("reg.example.com", Credential(identity_token="refresh-xyz"))
    got = credentials.resolve("reg.example.com")
    assert got == Credential(identity_token="refresh-xyz")


def test_bad_config_and_missing_helper(docker_config: Path) -> None:
    docker_config.write_text("{not json")
    with pytest.raises(CredentialsError, match="invalid JSON"):
        credentials.resolve("127.0.0.1:5000")
    docker_config.write_text(json.dumps({"credHelpers": {"127.0.0.1:5000": "nonexistent-fk"}}))
    with pytest.raises(CredentialsError, match="docker-credential-nonexistent-fk not found"):
        credentials.resolve("127.0.0.1:5000")
    docker_config.write_text(json.dumps({"auths": {"127.0.0.1:5000": {"auth": "!!!"}}}))
    with pytest.raises(CredentialsError) as info:
        credentials.resolve("127.0.0.1:5000")
    assert info.value.hint and "fleetkit login" in info.value.hint
