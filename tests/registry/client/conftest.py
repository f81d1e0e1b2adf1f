"""Fixtures: real docker-registry instances (anonymous, htpasswd, token) with images in them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers import require
from tests.registry.client.helpers import (
    BuiltImage,
    Registry,
    build_image,
    htpasswd_line,
    skopeo_push,
    start_docker_registry,
    write_layout,
)
from tests.registry.client.servers import TokenService

USER, PASSWORD = "alice", "s3cret-pa55"


@dataclass
class Images:
    app: BuiltImage  # test/app:v1, 3 small layers
    big: BuiltImage  # test/big:v1, 3 layers of ~1.5 MiB
    multi: list[BuiltImage]  # test/multi:v1, an index of amd64, arm64/v8, arm/v7
    multi_index: str
    src: Path  # OCI layouts they were pushed from


def _peers() -> None:
    require("docker-registry", "apt-get install -y docker-registry")
    require("skopeo", "apt-get install -y skopeo")


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    src = tmp_path_factory.mktemp("images")
    app = build_image([300_000, 600_000, 100_000], seed=1)
    big = build_image([1_500_000, 1_600_000, 1_400_000], seed=2)
    multi = [
        build_image([50_000], seed=3, arch="amd64"),
        build_image([60_000], seed=4, arch="arm64", variant="v8"),
        build_image([70_000], seed=5, arch="arm", variant="v7"),
    ]
    write_layout(src / "app", [app], "v1")
    write_layout(src / "big", [big], "v1")
    index = write_layout(src / "multi", multi, "v1", as_index=True)
    return Images(app, big, multi, index, src)


def _populate(reg: Registry, images: Images, creds: str | None = None) -> None:
    skopeo_push(images.src / "app", "v1", f"{reg.host}/test/app:v1", creds=creds)
    skopeo_push(images.src / "big", "v1", f"{reg.host}/test/big:v1", creds=creds)
    skopeo_push(images.src / "multi", "v1", f"{reg.host}/test/multi:v1", all_=True, creds=creds)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, images: Images) -> Iterator[Registry]:
    """docker-registry 2.8, anonymous, holding test/app:v1, test/big:v1, test/multi:v1."""
    _peers()
    reg = start_docker_registry(tmp_path_factory.mktemp("registry-anon"))
    try:
        _populate(reg, images)
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory, images: Images) -> Iterator[Registry]:
    """docker-registry with htpasswd (bcrypt) auth; alice can push and pull."""
    _peers()
    root = tmp_path_factory.mktemp("registry-basic")
    (root / "htpasswd").write_text(htpasswd_line(USER, PASSWORD))
    reg = start_docker_registry(
        root, {"htpasswd": {"realm": "fleetkit-test", "path": str(root / "htpasswd")}}
    )
    try:
        skopeo_push(images.src / "app", "v1", f"{reg.host}/test/app:v1", creds=f"{USER}:{PASSWORD}")
        yield reg
    finally:
        reg.stop()


@dataclass
class TokenRegistry:
    registry: Registry
    tokens: TokenService


@pytest.fixture(scope="session")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory, images: Images
) -> Iterator[TokenRegistry]:
    """docker-registry with ``auth: token`` pointing at an in-test token service."""
    _peers()
    root = tmp_path_factory.mktemp("registry-token")
    tokens = TokenService(
        root, users={USER: PASSWORD}, refresh_tokens={"refresh-abc": USER}
    ).start()
    assert isinstance(tokens, TokenService)
    reg = start_docker_registry(root, tokens.registry_auth())
    try:
        skopeo_push(images.src / "app", "v1", f"{reg.host}/test/app:v1", creds=f"{USER}:{PASSWORD}")
        skopeo_push(
            images.src / "app", "v1", f"{reg.host}/public/app:v1", creds=f"{USER}:{PASSWORD}"
        )
        yield TokenRegistry(reg, tokens)
    finally:
        reg.stop()
        tokens.stop()
