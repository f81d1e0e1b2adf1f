"""``registry serve --ui``: the read-only web view, over HTTP in each auth mode, and as headless
Chromium renders it (DOM by structure, screenshot by the colours of its elements)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from fleetkit.registry.auth.users import add_user
from fleetkit.registry.manifest import parse_manifest
from fleetkit.registry.storage.store import RegistryStore
from tests.chromium import png_colours, png_size, render
from tests.registry._images import OCI_MANIFEST, Image, make_image, sha256
from tests.registry._server import ThreadServer, thread_server

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SBOM = "application/vnd.example.sbom.v1+json"
EMPTY = b"{}"
XSS = '<img src=x onerror="alert(1)">'


class _Page(HTMLParser):
    """Every element that carries a data-* attribute (tag, attributes) and the page's text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.marked: list[dict[str, str]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if any(k.startswith("data-") for k in a):
            self.marked.append({"tag": tag, **a})

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def values(self, key: str) -> list[str]:
        return [m[key] for m in self.marked if key in m]

    def element(self, key: str, value: str) -> dict[str, str]:
        found = [m for m in self.marked if m.get(key) == value]
        assert found, f"no element with {key}={value!r}"
        return found[0]


@dataclass
class Content:
    image: Image
    arm: Image
    index: bytes
    referrer: bytes

    @property
    def image_size(self) -> int:
        return len(self.image.manifest) + sum(len(b) for b in self.image.blobs().values())

    @property
    def index_size(self) -> int:
        blobs = {**self.image.blobs(), **self.arm.blobs()}
        return (
            len(self.index)
            + len(self.image.manifest)
            + len(self.arm.manifest)
            + sum(len(b) for b in blobs.values())
        )


def _put_image(store: RegistryStore, name: str, image: Image, tags: list[str]) -> None:
    for data in image.blobs().values():
        store.put_blob(name, data)
    store.put_manifest(name, image.manifest, parse_manifest(image.manifest), tags=tags)


def populate(store: RegistryStore, name: str = "team/app") -> Content:
    """An image (tag v1), a two-platform index (tag multi), an SBOM referring to the image."""
    image, arm = make_image(1, (3000, 5000)), make_image(2, (7000,))
    _put_image(store, name, image, ["v1"])
    _put_image(store, name, arm, [])
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": image.digest,
                    "size": len(image.manifest),
                    "platform": {"os": "linux", "architecture": "amd64"},
                },
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": arm.digest,
                    "size": len(arm.manifest),
                    "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
                },
            ],
        }
    ).encode()
    store.put_manifest(name, index, parse_manifest(index), tags=["multi"])
    sbom = b'{"spdxVersion": "SPDX-2.3"}'
    store.put_blob(name, EMPTY)
    store.put_blob(name, sbom)
    referrer = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SBOM,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": sha256(EMPTY),
                "size": 2,
            },
            "layers": [{"mediaType": SBOM, "digest": sha256(sbom), "size": len(sbom)}],
            "subject": {
                "mediaType": OCI_MANIFEST,
                "digest": image.digest,
                "size": len(image.manifest),
            },
            "annotations": {"org.example.note": XSS},
        }
    ).encode()
    store.put_manifest(name, referrer, parse_manifest(referrer))
    return Content(image, arm, index, referrer)


@pytest.fixture(scope="module")
def open_ui() -> Iterator[tuple[ThreadServer, Content]]:
    with thread_server(root="memory:", ui=True) as srv:
        content = populate(srv.state.store)
        _put_image(srv.state.store, "other/tool", make_image(3, (100,)), ["latest"])
        yield srv, content


def get(srv: ThreadServer, path: str, **kwargs: object) -> requests.Response:
    return requests.get(srv.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]


def test_ui_is_off_by_default() -> None:
    with thread_server(root="memory:") as srv:
        r = get(srv, "/ui")
        assert r.status_code == 404
        assert r.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_index_lists_repositories(open_ui: tuple[ThreadServer, Content]) -> None:
    srv, _ = open_ui
    r = get(srv, "/ui")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    page = _Page(r.text)
    assert page.values("data-repo") == ["other/tool", "team/app"]
    assert page.element("data-repo", "team/app") is not None
    assert page.values("data-tags") == ["1", "2"]


def test_repository_page_sizes_platforms_referrers(open_ui: tuple[ThreadServer, Content]) -> None:
    srv, c = open_ui
    page = _Page(get(srv, "/ui/team/app").text)
    assert page.values("data-tag") == ["multi", "v1"]
    assert page.values("data-digest") == [sha256(c.index), c.image.digest]
    assert page.values("data-size") == [str(c.index_size), str(c.image_size)]
    assert page.values("data-platform") == ["linux/amd64", "linux/arm64/v8", "linux/amd64"]
    assert page.values("data-referrers") == ["0", "1"]
    host = srv.host
    pulls = page.values("data-pull")
    assert f"docker pull {host}/team/app:v1" in pulls
    assert f"fleetkit pull {host}/team/app@{c.image.digest} oci:./image" in pulls


def test_manifest_page_by_tag_and_digest(open_ui: tuple[ThreadServer, Content]) -> None:
    srv, c = open_ui
    by_tag = get(srv, "/ui/team/app:v1").text
    by_digest = get(srv, f"/ui/team/app@{c.image.digest}").text
    assert by_tag == by_digest
    page = _Page(by_digest)
    assert page.values("data-manifest") == [c.image.digest]
    assert page.values("data-layer") == [sha256(layer) for layer in c.image.layers]
    assert page.values("data-config") == [sha256(c.image.config)]
    assert page.values("data-referrer") == [SBOM]
    # the annotation is shown as text, never as markup
    assert XSS in "".join(page.text)
    assert XSS not in by_digest and "onerror" not in [m["tag"] for m in page.marked]
    # the referrer's own page links back to its subject
    ref_page = _Page(get(srv, f"/ui/team/app@{sha256(c.referrer)}").text)
    assert ref_page.values("data-subject") == [c.image.digest]
    index_page = _Page(get(srv, "/ui/team/app:multi").text)
    assert index_page.values("data-child") == [c.image.digest, c.arm.digest]
    assert index_page.values("data-media-type") == [OCI_INDEX]


def test_ui_is_read_only_and_refuses_unknown(open_ui: tuple[ThreadServer, Content]) -> None:
    srv, _ = open_ui
    assert requests.head(srv.url + "/ui/team/app", timeout=30).status_code == 200
    r = requests.post(srv.url + "/ui/team/app", data=b"x", timeout=30)
    assert r.status_code == 405
    assert get(srv, "/ui/team/nothing").status_code == 404
    assert get(srv, "/ui/team/app:nope").status_code == 404
    assert get(srv, "/ui/team/app@sha256:" + "0" * 64).status_code == 404
    assert get(srv, "/ui/Bad..Name").status_code == 404


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("ui-auth")
    htpasswd = d / "htpasswd"
    add_user(str(htpasswd), "alice", "alice-pw", cost=4)
    add_user(str(htpasswd), "bob", "bob-pw", cost=4)
    policy = d / "policy.yaml"
    policy.write_text(
        "repositories:\n"
        "  - name: 'team/*'\n    pull: [alice]\n"
        "  - name: 'other/*'\n    pull: ['*']\n    anonymous_pull: true\n"
        "catalog: [alice]\n"
    )
    return str(htpasswd), str(policy)


@pytest.mark.parametrize("mode", ["htpasswd", "token"])
def test_ui_follows_the_auth_mode(mode: str, users: tuple[str, str], tmp_path: Path) -> None:
    htpasswd, policy = users
    extra = {"token_key": str(tmp_path / "key.pem")} if mode == "token" else {}
    with thread_server(
        root="memory:", ui=True, auth=mode, htpasswd=htpasswd, policy=policy, **extra
    ) as srv:
        populate(srv.state.store)
        _put_image(srv.state.store, "other/tool", make_image(3, (100,)), ["latest"])
        anon = get(srv, "/ui")
        assert anon.status_code == 401
        assert anon.headers["WWW-Authenticate"].startswith("Basic realm=")
        # anonymous may pull other/*: its page shows; team/* asks for a login
        assert get(srv, "/ui/other/tool").status_code == 200
        assert get(srv, "/ui/team/app").status_code == 401
        assert get(srv, "/ui", auth=("alice", "wrong")).status_code == 401
        alice = _Page(get(srv, "/ui", auth=("alice", "alice-pw")).text)
        assert alice.values("data-repo") == ["other/tool", "team/app"]
        assert alice.values("data-viewer") == ["alice"]
        assert get(srv, "/ui/team/app:v1", auth=("alice", "alice-pw")).status_code == 200
        # bob may pull other/* but not list the catalog nor see team/*
        bob = _Page(get(srv, "/ui", auth=("bob", "bob-pw")).text)
        assert bob.values("data-repo") == [] and bob.values("data-denied") == ["catalog"]
        assert get(srv, "/ui/team/app", auth=("bob", "bob-pw")).status_code == 404
        assert get(srv, "/ui/other/tool", auth=("bob", "bob-pw")).status_code == 200
        if mode == "token":
            token = requests.get(
                srv.url + "/service/token",
                params={"service": "fleetkit-registry", "scope": "repository:team/app:pull"},
                auth=("alice", "alice-pw"),
                timeout=30,
            ).json()["token"]
            bearer = {"Authorization": f"Bearer {token}"}
            assert get(srv, "/ui/team/app", headers=bearer).status_code == 200
            assert get(srv, "/ui/other/tool", headers=bearer).status_code == 404
            bad = {"Authorization": "Bearer not-a-token"}
            assert get(srv, "/ui/team/app", headers=bad).status_code == 401


def test_serve_help_names_the_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fleetkit", "registry", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "--ui" in out and out.rstrip().endswith("--ui")


# colours of the page's elements (render.STYLE): header bar, platform and artifact badges,
# the pull-command boxes
HEADER = (0x26, 0x41, 0x5F)
PLATFORM = (0x3A, 0x7A, 0x4A)
ARTIFACT = (0x7A, 0x4A, 0x8A)
PULL = (0x1F, 0x26, 0x30)


def test_ui_in_chromium(open_ui: tuple[ThreadServer, Content], tmp_path: Path) -> None:
    srv, c = open_ui
    html, shot = render(f"{srv.url}/ui/team/app", tmp_path, (1280, 900), "repo")
    page = _Page(html)
    assert page.values("data-tag") == ["multi", "v1"]
    assert page.values("data-platform") == ["linux/amd64", "linux/arm64/v8", "linux/amd64"]
    assert png_size(shot) == (1280, 900)
    colours = png_colours(shot)
    for what, colour in (("header", HEADER), ("platform badges", PLATFORM), ("pull", PULL)):
        assert colours[colour] > 500, f"no {what} in the screenshot"
    assert colours[ARTIFACT] == 0  # the repository page has no referrer badges
    html, shot = render(f"{srv.url}/ui/team/app@{c.image.digest}", tmp_path, (1280, 1200), "m")
    page = _Page(html)
    assert page.values("data-referrer") == [SBOM]
    assert len(page.values("data-layer")) == 2
    colours = png_colours(shot)
    assert colours[ARTIFACT] > 100, "no referrer badge in the screenshot"
    assert colours[PLATFORM] > 100, "no platform badge in the screenshot"
