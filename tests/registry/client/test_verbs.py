"""copy / sync / inspect / delete / catalog / manifest -o json against fleetkit's own registry
(in-process, memory storage, 127.0.0.1), and against skopeo when it is installed."""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetkit.cli import main
from fleetkit.errors import UsageError
from fleetkit.registry.auth.users import add_user, list_users, remove_user
from fleetkit.registry.client import (
    AuthError,
    Credential,
    RetryPolicy,
    VerificationError,
    get_manifest,
    list_tags,
    push,
)
from fleetkit.registry.client.commands import catalog, delete
from fleetkit.registry.client.copy import copy, parse_image_name
from fleetkit.registry.client.inspect import inspect
from fleetkit.registry.client.sync import load_sync_config, sync
from tests.peers import require
from tests.registry._server import ThreadServer, thread_server
from tests.registry.client.helpers import BuiltImage, build_image, sha256, write_layout

SKOPEO_KEYS = {
    "Name",
    "Digest",
    "RepoTags",
    "Created",
    "DockerVersion",
    "Labels",
    "Architecture",
    "Os",
    "Layers",
    "Env",
}


@dataclass
class World:
    server: ThreadServer
    host: str
    app: BuiltImage
    multi: list[BuiltImage]
    multi_index: str
    src: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    src = tmp_path_factory.mktemp("verbs-src")
    app = build_image([30_000, 60_000], seed=11)
    multi = [
        build_image([5_000], seed=12, arch="amd64"),
        build_image([6_000], seed=13, arch="arm64", variant="v8"),
    ]
    write_layout(src / "app", [app], "v1")
    index = write_layout(src / "multi", multi, "v1", as_index=True)
    with thread_server(root="memory:") as server:
        host = server.host
        push(f"oci:{src / 'app'}:v1", f"{host}/test/app:v1")
        push(f"oci:{src / 'multi'}:v1", f"{host}/test/multi:v1")
        yield World(server, host, app, multi, index, src)


def _blobs(root: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in (root / "blobs" / "sha256").iterdir()
        if p.is_file() and not p.name.startswith(".")
    }


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# -- transports -------------------------------------------------------------------------------


def test_parse_image_name() -> None:
    assert parse_image_name("docker://127.0.0.1:5000/a/b:v1").reference is not None
    dir_name = parse_image_name("dir:/tmp/x:y")
    assert dir_name.location is not None and str(dir_name.location.path) == "/tmp/x:y"
    oci = parse_image_name("oci-archive:/tmp/a.tar:v1")
    assert oci.location is not None and oci.location.name == "v1"
    for bad in ("docker:/x", "tar:/x", "oci:", "nonsense"):
        with pytest.raises(UsageError):
            parse_image_name(bad)


def test_copy_round_trip_through_every_transport(world: World, tmp_path: Path) -> None:
    """docker -> dir -> oci-archive -> oci -> docker-archive -> docker: digests survive."""
    ref = f"docker://{world.host}/test/app:v1"
    r1 = copy(ref, f"dir:{tmp_path / 'd'}")
    assert r1.digest == world.app.digest
    d = tmp_path / "d"
    assert (d / "manifest.json").read_bytes() == world.app.manifest
    assert (d / "version").read_bytes() == b"Directory Transport Version: 1.1\n"
    for layer in world.app.layers:
        assert (d / sha256(layer)[7:]).read_bytes() == layer
    assert (d / sha256(world.app.config)[7:]).read_bytes() == world.app.config

    copy(f"dir:{d}", f"oci-archive:{tmp_path / 'a.tar'}:v1")
    with tarfile.open(tmp_path / "a.tar") as tar:
        names = set(tar.getnames())
    assert {"oci-layout", "index.json", f"blobs/sha256/{world.app.digest[7:]}"} <= names

    copy(f"oci-archive:{tmp_path / 'a.tar'}:v1", f"oci:{tmp_path / 'o'}:v2")
    assert _blobs(tmp_path / "o") == _blobs(world.src / "app")
    index = json.loads((tmp_path / "o" / "index.json").read_text())["manifests"]
    assert [
        (m["digest"], m["annotations"]["org.opencontainers.image.ref.name"]) for m in index
    ] == [(world.app.digest, "v2")]

    copy(f"oci:{tmp_path / 'o'}:v2", f"docker-archive:{tmp_path / 'img.tar'}:x/app:v3")
    r5 = copy(f"docker-archive:{tmp_path / 'img.tar'}", f"docker://{world.host}/copied/app:v5")
    assert r5.digest == world.app.digest
    assert get_manifest(f"{world.host}/copied/app:v5").raw == world.app.manifest


def test_copy_oci_to_oci_is_byte_identical(world: World, tmp_path: Path) -> None:
    copy(f"oci:{world.src / 'app'}:v1", f"oci:{tmp_path}:v1")
    assert _blobs(tmp_path) == _blobs(world.src / "app")


def test_copy_all_and_platform(world: World, tmp_path: Path) -> None:
    ref = f"docker://{world.host}/test/multi:v1"
    whole = copy(ref, f"oci:{tmp_path / 'all'}:v1", all_platforms=True)
    assert whole.digest == world.multi_index and whole.manifests == 3
    assert _blobs(tmp_path / "all") == _blobs(world.src / "multi")
    one = copy(ref, f"dir:{tmp_path / 'arm'}", platform="linux/arm64")
    assert one.digest == world.multi[1].digest
    assert (tmp_path / "arm" / "manifest.json").read_bytes() == world.multi[1].manifest
    # an index from disk, --all to dir: children as <hex>.manifest.json
    copy(f"oci:{world.src / 'multi'}:v1", f"dir:{tmp_path / 'alldir'}", all_platforms=True)
    assert (tmp_path / "alldir" / f"{world.multi[0].digest[7:]}.manifest.json").is_file()
    back = copy(f"dir:{tmp_path / 'alldir'}", f"oci:{tmp_path / 'back'}:v1", all_platforms=True)
    assert back.digest == world.multi_index
    with pytest.raises(UsageError):
        copy(ref, f"oci:{tmp_path / 'x'}", all_platforms=True, platform="linux/amd64")


def test_oci_to_oci_archive_holds_only_the_chosen_image(world: World, tmp_path: Path) -> None:
    copy(
        f"oci:{world.src / 'multi'}:v1",
        f"oci-archive:{tmp_path / 'a.tar'}:arm",
        platform="linux/arm64",
    )
    with tarfile.open(tmp_path / "a.tar") as tar:
        names = {n for n in tar.getnames() if n.startswith("blobs/sha256/")}
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    arm = world.multi[1]
    assert names == {f"blobs/sha256/{d[7:]}" for d in [arm.digest, *arm_blobs(arm)]}
    assert index["manifests"][0]["digest"] == arm.digest
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "arm"


def arm_blobs(image: BuiltImage) -> list[str]:
    return [sha256(image.config), *(sha256(b) for b in image.layers)]


def test_copy_same_registry_mounts_every_blob(world: World) -> None:
    result = copy(
        f"docker://{world.host}/test/multi:v1",
        f"docker://{world.host}/mounted/multi:v1",
        all_platforms=True,
    )
    assert result.digest == world.multi_index
    assert result.mounted == result.blobs == 4  # 2 configs + 2 layers, none downloaded
    assert get_manifest(f"{world.host}/mounted/multi:v1").digest == world.multi_index


def test_copy_falls_back_to_bytes_when_a_mount_is_declined(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetkit.registry.client.remote import Remote

    declined: list[str] = []

    async def decline(self: Remote, digest: str, source: str) -> bool:
        declined.append(digest)
        return False

    monkeypatch.setattr(Remote, "mount_blob", decline)
    result = copy(f"docker://{world.host}/test/app:v1", f"docker://{world.host}/declined/app:v1")
    assert len(declined) == 1 and result.mounted == 0  # the first decline ends the mount path
    assert get_manifest(f"{world.host}/declined/app:v1").raw == world.app.manifest


def test_copy_within_one_repository_only_tags(world: World) -> None:
    result = copy(f"docker://{world.host}/test/app:v1", f"docker://{world.host}/test/app:retag")
    assert result.mounted == 0 and result.digest == world.app.digest
    assert get_manifest(f"{world.host}/test/app:retag").raw == world.app.manifest


def test_copy_refuses_a_corrupt_blob_from_disk(world: World, tmp_path: Path) -> None:
    copy(f"oci:{world.src / 'app'}:v1", f"dir:{tmp_path / 'd'}")
    layer = tmp_path / "d" / sha256(world.app.layers[1])[7:]
    layer.write_bytes(layer.read_bytes()[:-1] + b"X")
    with pytest.raises(VerificationError, match="does not match"):
        copy(f"dir:{tmp_path / 'd'}", f"oci:{tmp_path / 'o'}:v1")
    assert not (tmp_path / "o" / "blobs" / "sha256" / layer.name).exists()
    assert json.loads((tmp_path / "o" / "index.json").read_text())["manifests"] == []


def test_copy_docker_to_docker_on_another_registry(world: World) -> None:
    with thread_server(root="memory:") as other:
        result = copy(
            f"docker://{world.host}/test/app:v1", f"docker://{other.host}/elsewhere/app:v9"
        )
        assert result.mounted == 0
        assert get_manifest(f"{other.host}/elsewhere/app:v9").raw == world.app.manifest


def test_preserve_digests_refuses_docker_archive(world: World, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="preserve-digests"):
        copy(
            f"docker://{world.host}/test/app:v1",
            f"docker-archive:{tmp_path / 'x.tar'}",
            preserve_digests=True,
        )
    assert not (tmp_path / "x.tar").exists()
    result = copy(
        f"docker://{world.host}/test/app:v1", f"oci:{tmp_path / 'o'}:v1", preserve_digests=True
    )
    assert result.digest == world.app.digest


def test_copy_and_sync_cli(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = _run(
        capsys,
        "copy",
        "-q",
        "-o",
        "json",
        f"docker://{world.host}/test/app:v1",
        f"dir:{tmp_path}/d",
    )
    assert rc == 0, err
    assert json.loads(out)["digest"] == world.app.digest
    rc, out, err = _run(capsys, "copy", "--all", "--platform", "linux/amd64", "oci:x", "dir:y")
    assert rc == 2 and "mutually exclusive" in err
    rc, out, err = _run(capsys, "copy", "docker://h:1/a", "tar:/x")
    assert rc == 2 and err.startswith("error: invalid image name")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"{world.host}:\n  images:\n    test/app: [v1]\n")
    rc, out, err = _run(capsys, "sync", "--dry-run", str(cfg), f"dir:{tmp_path}/m")
    assert rc == 0, err
    assert out.splitlines() == [
        f"would copy docker://{world.host}/test/app:v1 -> dir:{tmp_path}/m/app:v1",
        "1 image(s)",
    ]
    assert not (tmp_path / "m").exists()


# -- inspect ----------------------------------------------------------------------------------


def test_inspect_has_skopeos_keys(world: World) -> None:
    result = inspect(f"docker://{world.host}/test/app:v1")
    info = result.info
    assert set(info) == SKOPEO_KEYS and info["Created"] is None
    assert info["Name"] == f"{world.host}/test/app"
    assert info["Digest"] == world.app.digest
    assert "v1" in info["RepoTags"]
    assert info["RepoTags"] == list_tags(f"{world.host}/test/app")
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert info["Layers"] == [sha256(b) for b in world.app.layers]
    assert result.raw_manifest == world.app.manifest
    assert result.raw_config == world.app.config
    local = inspect(f"oci:{world.src / 'app'}:v1").info
    assert local["Digest"] == world.app.digest and local["RepoTags"] == []
    assert "Name" not in local


def test_inspect_index_reports_the_index_digest_and_chosen_platform(world: World) -> None:
    info = inspect(f"docker://{world.host}/test/multi:v1", platform="linux/arm64/v8").info
    assert info["Digest"] == world.multi_index
    assert info["Architecture"] == "arm64" and "Variant" not in info  # as skopeo 1.9
    assert info["Layers"] == [sha256(b) for b in world.multi[1].layers]


def test_inspect_cli_raw_and_config(
    world: World, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert main(["inspect", "--raw", f"docker://{world.host}/test/app:v1"]) == 0
    assert capfdbinary.readouterr().out == world.app.manifest
    assert main(["inspect", "--config", "--raw", f"docker://{world.host}/test/app:v1"]) == 0
    assert capfdbinary.readouterr().out == world.app.config
    assert main(["inspect", "--config", f"docker://{world.host}/test/app:v1"]) == 0
    assert json.loads(capfdbinary.readouterr().out) == json.loads(world.app.config)
    assert main(["inspect", f"docker://{world.host}/test/app:v1"]) == 0
    out = capfdbinary.readouterr().out.decode()
    assert out.startswith('{\n    "Name": ')  # skopeo's four-space indent


# -- delete / catalog / manifest -o json / sync -----------------------------------------------


def test_delete_resolves_a_tag_to_its_digest(world: World, tmp_path: Path) -> None:
    push(f"oci:{world.src / 'app'}:v1", f"{world.host}/doomed/app:a")
    push(f"oci:{world.src / 'app'}:v1", f"{world.host}/doomed/app:b")
    assert delete(f"{world.host}/doomed/app:a") == world.app.digest
    assert list_tags(f"{world.host}/doomed/app") == []  # b pointed at the same manifest


def test_catalog_lists_repositories(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    names = catalog(world.host, page_size=1)
    assert {"test/app", "test/multi"} <= set(names)
    rc, out, _ = _run(capsys, "catalog", world.host, "-o", "json")
    assert rc == 0 and {"test/app", "test/multi"} <= set(json.loads(out)["repositories"])


def test_manifest_json_prints_the_manifest(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = _run(capsys, "manifest", "-o", "json", f"{world.host}/test/app:v1")
    assert rc == 0 and json.loads(out) == json.loads(world.app.manifest)
    rc, out, _ = _run(capsys, "manifest", "--descriptor", f"{world.host}/test/multi:v1")
    assert rc == 0 and json.loads(out)["digest"] == world.multi_index


def test_sync_yaml_to_dir_and_registry(world: World, tmp_path: Path) -> None:
    push(f"oci:{world.src / 'app'}:v1", f"{world.host}/test/app:v2")
    push(f"oci:{world.src / 'app'}:v1", f"{world.host}/test/app:other")
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(
        f"{world.host}:\n"
        "  images:\n"
        "    test/multi: [v1]\n"
        "  images-by-tag-regex:\n"
        "    test/app: ^v[0-9]$\n"
        "  tls-verify: false\n"
    )
    result = sync(cfg, f"dir:{tmp_path / 'mirror'}")
    assert sorted(d for _, d in result.planned) == sorted(
        f"dir:{tmp_path / 'mirror' / n}" for n in ("multi:v1", "app:v1", "app:v2")
    )
    assert (tmp_path / "mirror" / "app:v2" / "manifest.json").read_bytes() == world.app.manifest
    with thread_server(root="memory:") as other:
        sync(cfg, f"docker://{other.host}/mirror", all_platforms=True)
        assert list_tags(f"{other.host}/mirror/app") == ["v1", "v2"]
        assert get_manifest(f"{other.host}/mirror/multi:v1").digest == world.multi_index


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n", "expected a mapping"),
        ("h:5000:\n  imagez: {}\n", "unknown key"),
        ("h:5000:\n  images-by-tag-regex:\n    a: '('\n", "invalid regex"),
        ("h:5000:\n  tls-verify: maybe\n", "tls-verify"),
    ],
)
def test_sync_config_errors(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_sync_config(cfg)


def test_htpasswd_remove_takes_effect_on_a_running_registry(tmp_path: Path) -> None:
    users = tmp_path / "htpasswd"
    add_user(str(users), "alice", "pw-alice", cost=4)
    add_user(str(users), "bob", "pw-bob", cost=4)
    with thread_server(root="memory:", auth="htpasswd", htpasswd=str(users)) as server:
        bob = Credential("bob", "pw-bob")
        assert catalog(server.host, credential=bob) == []
        assert remove_user(str(users), "bob") and list_users(str(users)) == ["alice"]
        with pytest.raises(AuthError):
            catalog(server.host, credential=bob, retry=RetryPolicy(attempts=1))
        assert catalog(server.host, credential=Credential("alice", "pw-alice")) == []


# -- against skopeo ---------------------------------------------------------------------------


def test_copy_matches_skopeo(world: World, tmp_path: Path) -> None:
    skopeo = require("skopeo", "apt-get install -y skopeo")
    ref = f"{world.host}/test/app:v1"
    copy(f"docker://{ref}", f"oci:{tmp_path / 'ours'}:v1")
    copy(f"docker://{ref}", f"dir:{tmp_path / 'ours-dir'}")
    for dest in (f"oci:{tmp_path / 'theirs'}:v1", f"dir:{tmp_path / 'theirs-dir'}"):
        proc = subprocess.run(
            [skopeo, "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", dest],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
    assert _blobs(tmp_path / "ours") == _blobs(tmp_path / "theirs")
    ours_dir = {p.name: p.read_bytes() for p in (tmp_path / "ours-dir").iterdir()}
    theirs_dir = {p.name: p.read_bytes() for p in (tmp_path / "theirs-dir").iterdir()}
    assert ours_dir == theirs_dir
    proc = subprocess.run(
        [skopeo, "inspect", "--tls-verify=false", f"docker://{ref}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout)
    ours = inspect(f"docker://{ref}").info
    assert set(ours) == set(theirs)
    assert ours == theirs  # every key and value
    # an index, another platform; and a layout on disk
    cases = [
        (
            ["--override-arch", "arm64", "--override-variant", "v8", "--tls-verify=false"],
            f"docker://{world.host}/test/multi:v1",
            "linux/arm64/v8",
        ),
        ([], f"oci:{world.src / 'app'}:v1", None),
    ]
    for flags, name, platform in cases:
        proc = subprocess.run(
            [skopeo, *flags[:4], "inspect", *flags[4:], name],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert inspect(name, platform=platform).info == json.loads(proc.stdout), name


def test_sync_matches_skopeo_sync(world: World, tmp_path: Path) -> None:
    skopeo = require("skopeo", "apt-get install -y skopeo")
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(f"{world.host}:\n  images:\n    test/app: []\n  tls-verify: false\n")
    for scoped in ([], ["--scoped"]):
        theirs, ours = tmp_path / f"theirs{len(scoped)}", tmp_path / f"ours{len(scoped)}"
        proc = subprocess.run(
            [skopeo, "sync", *scoped, "--src", "yaml", "--dest", "dir", str(cfg), str(theirs)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert main(["sync", "-q", *scoped, "--dest", "dir", str(cfg), str(ours)]) == 0
        tree = {
            str(p.relative_to(theirs)): p.read_bytes() for p in theirs.rglob("*") if p.is_file()
        }
        assert tree == {
            str(p.relative_to(ours)): p.read_bytes() for p in ours.rglob("*") if p.is_file()
        }
        assert len(tree) >= 4


def test_oci_archive_matches_skopeo(world: World, tmp_path: Path) -> None:
    skopeo = require("skopeo", "apt-get install -y skopeo")
    ref = f"docker://{world.host}/test/multi:v1"
    proc = subprocess.run(
        [
            skopeo,
            "copy",
            "--all",
            "--src-tls-verify=false",
            ref,
            f"oci-archive:{tmp_path}/t.tar:v1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    copy(ref, f"oci-archive:{tmp_path}/o.tar:v1", all_platforms=True)

    def members(path: Path) -> dict[str, bytes]:
        with tarfile.open(path) as tar:
            return {
                m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers()
                if m.isfile() and m.name.startswith("blobs/")
            }

    assert members(tmp_path / "o.tar") == members(tmp_path / "t.tar")


def test_copy_all_to_dir_matches_skopeo(world: World, tmp_path: Path) -> None:
    skopeo = require("skopeo", "apt-get install -y skopeo")
    ref = f"docker://{world.host}/test/multi:v1"
    proc = subprocess.run(
        [skopeo, "copy", "--all", "--src-tls-verify=false", ref, f"dir:{tmp_path}/theirs"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    copy(ref, f"dir:{tmp_path}/ours", all_platforms=True)
    theirs = {p.name: p.read_bytes() for p in (tmp_path / "theirs").iterdir()}
    assert theirs == {p.name: p.read_bytes() for p in (tmp_path / "ours").iterdir()}
    assert sum(name.endswith(".manifest.json") for name in theirs) == 2
