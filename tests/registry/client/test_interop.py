"""Against the real distribution registry 2.8 (docker-registry), skopeo and podman."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetkit.registry.client import (
    AuthError,
    Credential,
    PlatformNotFound,
    get_manifest,
    list_tags,
    pull,
    push,
)
from fleetkit.registry.errors import RegistryAPIError
from tests.peers import require
from tests.registry.client.conftest import PASSWORD, USER, Images, TokenRegistry
from tests.registry.client.helpers import Registry, sha256

pytestmark = pytest.mark.interop


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / "blobs").rglob("*"))
        if p.is_file()
    }


def _run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_pull_is_byte_identical_to_skopeo(
    registry: Registry, images: Images, tmp_path: Path
) -> None:
    ref = f"{registry.host}/test/app:v1"
    result = pull(ref, f"oci:{tmp_path / 'ours'}:v1")
    proc = _run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            f"docker://{ref}",
            f"oci:{tmp_path / 'skopeo'}:v1",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    ours, theirs = _files(tmp_path / "ours"), _files(tmp_path / "skopeo")
    assert ours == theirs
    assert len(ours) == 5  # manifest, config, 3 layers
    assert result.digest == images.app.digest
    our_index = json.loads((tmp_path / "ours" / "index.json").read_text())["manifests"]
    their_index = json.loads((tmp_path / "skopeo" / "index.json").read_text())["manifests"]
    assert [(m["digest"], m["size"]) for m in our_index] == [
        (m["digest"], m["size"]) for m in their_index
    ]
    assert our_index[0]["annotations"]["org.opencontainers.image.ref.name"] == "v1"
    assert [b.status for b in result.blobs] == ["downloaded"] * 4
    # a second pull into the same layout downloads nothing
    again = pull(ref, f"oci:{tmp_path / 'ours'}:again")
    assert {b.status for b in again.blobs} == {"exists"}
    assert again.bytes_downloaded == 0


def test_skopeo_reads_our_oci_layout(registry: Registry, images: Images, tmp_path: Path) -> None:
    pull(f"{registry.host}/test/app:v1", f"oci:{tmp_path / 'layout'}:v1")
    proc = _run(["skopeo", "inspect", f"oci:{tmp_path / 'layout'}:v1"])
    assert proc.returncode == 0, proc.stderr
    inspected = json.loads(proc.stdout)
    assert inspected["Digest"] == images.app.digest
    assert inspected["Layers"] == [sha256(b) for b in images.app.layers]
    # skopeo copies it out (verifying every blob's digest as it goes)
    proc = _run(
        ["skopeo", "copy", "--quiet", f"oci:{tmp_path / 'layout'}:v1", f"dir:{tmp_path / 'dir'}"]
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "dir" / sha256(images.app.layers[2])[7:]).read_bytes() == images.app.layers[
        2
    ]


@pytest.mark.parametrize(
    ("platform", "index"),
    [("linux/amd64", 0), ("linux/arm64", 1), ("linux/arm64/v8", 1), ("linux/arm/v7", 2)],
)
def test_platform_selection(
    registry: Registry, images: Images, tmp_path: Path, platform: str, index: int
) -> None:
    result = pull(f"{registry.host}/test/multi:v1", f"oci:{tmp_path}:x", platform=platform)
    wanted = images.multi[index]
    assert result.digest == wanted.digest
    assert result.index_digest == images.multi_index
    assert (
        tmp_path / "blobs" / "sha256" / sha256(wanted.layers[0])[7:]
    ).read_bytes() == wanted.layers[0]
    others = [i for n, i in enumerate(images.multi) if n != index]
    assert not any(
        (tmp_path / "blobs" / "sha256" / sha256(o.layers[0])[7:]).exists() for o in others
    )


def test_platform_missing_and_all_platforms(
    registry: Registry, images: Images, tmp_path: Path
) -> None:
    with pytest.raises(PlatformNotFound) as info:
        pull(f"{registry.host}/test/multi:v1", f"oci:{tmp_path / 'none'}", platform="linux/s390x")
    assert "linux/arm64/v8" in (info.value.hint or "") and "linux/arm/v7" in (info.value.hint or "")
    result = pull(
        f"{registry.host}/test/multi:v1", f"oci:{tmp_path / 'all'}:v1", all_platforms=True
    )
    assert result.digest == images.multi_index
    assert len(result.blobs) == 6
    proc = _run(["skopeo", "inspect", "--raw", f"oci:{tmp_path / 'all'}:v1"])
    assert proc.returncode == 0, proc.stderr
    assert sha256(proc.stdout.encode()) == images.multi_index


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[list[str]]:
    require("podman", "apt-get install -y podman")
    # podman refuses a runroot longer than 50 characters: keep it short, outside tmp_path
    runroot = Path(tempfile.mkdtemp(prefix="fkp-", dir="/tmp"))
    try:
        yield _podman(tmp_path, runroot)
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


def _podman(tmp_path: Path, runroot: Path) -> list[str]:
    base = [
        "podman",
        "--root",
        str(tmp_path / "proot"),
        "--runroot",
        str(runroot),
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "none",
    ]
    probe = _run([*base, "info", "--format", "{{.Store.GraphDriverName}}"], timeout=60)
    if probe.returncode != 0:
        # installed but unable to run here (no user namespaces, no cgroups, ...): skip with the
        # precise reason, even under CI, rather than fail the suite for the sandbox's limits
        pytest.skip(f"podman cannot run in this sandbox: {probe.stderr.strip()[:300]}")
    return base


def test_podman_loads_our_docker_archive(
    registry: Registry, images: Images, tmp_path: Path, podman: list[str]
) -> None:
    archive = tmp_path / "app.tar"
    pull(f"{registry.host}/test/app:v1", f"docker-archive:{archive}")
    assert not list(tmp_path.glob(".app.tar*"))  # staging removed
    proc = _run([*podman, "load", "-i", str(archive)])
    assert proc.returncode == 0, proc.stderr
    assert f"Loaded image: {registry.host}/test/app:v1" in proc.stdout
    proc = _run([*podman, "image", "inspect", f"{registry.host}/test/app:v1"])
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)[0]
    assert info["Id"] == sha256(images.app.config)[7:]
    assert info["RootFS"]["Layers"] == json.loads(images.app.config)["rootfs"]["diff_ids"]
    # podman's own save (legacy docker-archive) pushes back through fleetkit
    saved = tmp_path / "saved.tar"
    proc = _run([*podman, "save", "-o", str(saved), f"{registry.host}/test/app:v1"])
    assert proc.returncode == 0, proc.stderr
    result = push(f"docker-archive:{saved}", f"{registry.host}/test/from-podman:v1")
    proc = _run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{registry.host}/test/from-podman:v1"]
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Digest"] == result.digest


def test_push_monolithic_chunked_and_mount(
    registry: Registry, images: Images, tmp_path: Path
) -> None:
    host = registry.host
    mono = push(f"oci:{images.src / 'app'}:v1", f"{host}/pushed/mono:v1")
    assert mono.digest == images.app.digest
    assert {s for _, _, s in mono.blobs} == {"uploaded"}
    chunked = push(
        f"oci:{images.src / 'big'}:v1", f"{host}/pushed/chunked:v1", chunk_size=256 * 1024
    )
    assert chunked.digest == images.big.digest
    mounted = push(
        f"oci:{images.src / 'app'}:v1", f"{host}/pushed/mounted:v1", mount_from=("test/app",)
    )
    assert {s for _, _, s in mounted.blobs} == {"mounted"}
    again = push(f"oci:{images.src / 'app'}:v1", f"{host}/pushed/mono:v2")
    assert {s for _, _, s in again.blobs} == {"exists"}
    # skopeo pulls what we pushed, verifying digests
    for repo, img in (("pushed/chunked:v1", images.big), ("pushed/mounted:v1", images.app)):
        proc = _run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                f"docker://{host}/{repo}",
                f"oci:{tmp_path / repo.replace('/', '_').replace(':', '_')}:x",
            ]
        )
        assert proc.returncode == 0, proc.stderr
        copied = tmp_path / repo.replace("/", "_").replace(":", "_")
        assert _files(copied)[f"blobs/sha256/{sha256(img.layers[0])[7:]}"] == img.layers[0]
    # an index with all platforms keeps its digest
    multi = push(f"oci:{images.src / 'multi'}:v1", f"{host}/pushed/multi:v1")
    assert multi.digest == images.multi_index
    assert get_manifest(f"{host}/pushed/multi:v1").digest == images.multi_index
    assert sorted(list_tags(f"{host}/pushed/mono")) == ["v1", "v2"]


def test_manifest_and_tags(registry: Registry, images: Images) -> None:
    m = get_manifest(f"{registry.host}/test/app:v1")
    assert m.raw == images.app.manifest
    assert get_manifest(f"{registry.host}/test/app@{images.app.digest}").raw == images.app.manifest
    child = get_manifest(f"{registry.host}/test/multi:v1", platform="linux/arm64")
    assert child.digest == images.multi[1].digest
    assert list_tags(f"{registry.host}/test/app") == ["v1"]
    with pytest.raises(RegistryAPIError) as info:
        get_manifest(f"{registry.host}/test/app:nope")
    assert info.value.code == "MANIFEST_UNKNOWN" and "manifest unknown" in info.value.message
    with pytest.raises(RegistryAPIError) as info:
        list_tags(f"{registry.host}/no/such")
    assert info.value.code == "NAME_UNKNOWN"


def test_htpasswd_basic_auth(basic_registry: Registry, images: Images, tmp_path: Path) -> None:
    ref = f"{basic_registry.host}/test/app:v1"
    with pytest.raises(AuthError) as info:
        pull(ref, f"oci:{tmp_path / 'anon'}")
    assert "fleetkit login" in (info.value.hint or "")
    with pytest.raises(AuthError):
        pull(ref, f"oci:{tmp_path / 'bad'}", credential=Credential(USER, "wrong"))
    result = pull(ref, f"oci:{tmp_path / 'ok'}:v1", credential=Credential(USER, PASSWORD))
    assert result.digest == images.app.digest
    pushed = push(
        f"oci:{tmp_path / 'ok'}:v1",
        f"{basic_registry.host}/test/copy:v1",
        credential=Credential(USER, PASSWORD),
    )
    assert pushed.digest == images.app.digest


def test_token_auth(token_registry: TokenRegistry, images: Images, tmp_path: Path) -> None:
    host, tokens = token_registry.registry.host, token_registry.tokens
    # anonymous: the token service grants pull on public/* only
    public = pull(f"{host}/public/app:v1", f"oci:{tmp_path / 'public'}:v1")
    assert public.digest == images.app.digest
    with pytest.raises(AuthError) as info:
        pull(f"{host}/test/app:v1", f"oci:{tmp_path / 'denied'}")
    assert "authentication required" in info.value.message
    # with credentials: GET realm?service&scope&account with Basic
    tokens.requests.clear()
    result = pull(
        f"{host}/test/app:v1", f"oci:{tmp_path / 'alice'}:v1", credential=Credential(USER, PASSWORD)
    )
    assert result.digest == images.app.digest
    get = tokens.requests[0]
    assert get.method == "GET" and get.query["account"] == [USER]
    assert get.query["scope"] == ["repository:test/app:pull"]
    assert get.query["service"] == [tokens.SERVICE]
    assert get.authorization and get.authorization.startswith("Basic ")
    assert len(tokens.requests) == 1  # cached for the whole pull (manifest + 4 blobs)
    # an identity token: OAuth2 POST grant_type=refresh_token
    tokens.requests.clear()
    pull(
        f"{host}/test/app:v1",
        f"oci:{tmp_path / 'oauth'}:v1",
        credential=Credential(identity_token="refresh-abc"),
    )
    post = tokens.requests[0]
    assert post.method == "POST" and post.form["grant_type"] == "refresh_token"
    assert (
        post.form["refresh_token"] == "refresh-abc"
        and post.form["scope"] == "repository:test/app:pull"
    )
    # push asks for pull,push
    tokens.requests.clear()
    push(
        f"oci:{tmp_path / 'alice'}:v1",
        f"{host}/test/pushed:v1",
        credential=Credential(USER, PASSWORD),
    )
    assert any(
        "repository:test/pushed:pull,push" in r.query.get("scope", []) for r in tokens.requests
    )


def test_push_mounts_from_the_repository_it_was_pulled_from(
    registry: Registry, images: Images, tmp_path: Path
) -> None:
    pull(f"{registry.host}/test/app:v1", f"oci:{tmp_path}:v1")
    index = json.loads((tmp_path / "index.json").read_text())
    assert (
        index["manifests"][0]["annotations"]["io.containerd.image.name"]
        == f"{registry.host}/test/app:v1"
    )
    result = push(f"oci:{tmp_path}:v1", f"{registry.host}/auto/mounted:v1")
    assert {s for _, _, s in result.blobs} == {"mounted"}
    assert get_manifest(f"{registry.host}/auto/mounted:v1").raw == images.app.manifest
