"""On-disk pieces: partial blobs (resume, verify, discard), index.json naming, docker-archive."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from fleetkit.registry.client.errors import DestinationError, VerificationError
from fleetkit.registry.client.image import Descriptor, Manifest
from fleetkit.registry.client.layout import (
    OCILayout,
    open_source,
    parse_location,
    write_docker_archive,
)
from tests.registry.client.helpers import build_image, sha256


def _desc(data: bytes) -> Descriptor:
    return Descriptor("application/octet-stream", sha256(data), len(data))


def test_partial_blob_resumes_and_verifies(tmp_path: Path) -> None:
    layout = OCILayout.create(tmp_path / "l")
    data = bytes(range(256)) * 4000
    desc = _desc(data)
    first = layout.partial(desc)
    assert first.acquire() is True and first.offset == 0
    first.write(data[:300_000])
    first.release()  # as if the connection broke (or the process died)
    assert not layout.has_blob(desc)
    second = layout.partial(desc)
    assert second.acquire() is True
    assert second.offset == second.resumed_from == 300_000
    second.write(data[300_000:])
    second.commit()
    assert layout.blob_path(desc.digest).read_bytes() == data
    assert not second.path.exists() and not second.state.exists()
    assert layout.partial(desc).acquire() is False  # already complete


def test_partial_blob_mismatch_deletes_partial(tmp_path: Path) -> None:
    layout = OCILayout.create(tmp_path / "l")
    data = b"x" * 1000
    desc = _desc(data)
    p = layout.partial(desc)
    assert p.acquire()
    p.write(b"y" * 1000)
    with pytest.raises(VerificationError, match="does not match"):
        p.commit()
    assert not p.path.exists() and not layout.blob_path(desc.digest).exists()


def test_index_entries_replaced_by_name(tmp_path: Path) -> None:
    layout = OCILayout.create(tmp_path / "l")
    a, b = _desc(b"a"), _desc(b"b")
    layout.add_manifest(a, "v1")
    layout.add_manifest(b, "v2")
    layout.add_manifest(b, "v1")
    entries = layout.read_index()["manifests"]
    names = {e["annotations"]["org.opencontainers.image.ref.name"]: e["digest"] for e in entries}
    assert names == {"v1": b.digest, "v2": b.digest}
    assert layout.resolve("v1").digest == b.digest
    with pytest.raises(DestinationError, match="no image named"):
        layout.resolve("v3")


def test_destination_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DestinationError, match="cannot write|not a directory"):
        OCILayout.create(blocker / "sub")
    with pytest.raises(DestinationError, match="not a directory"):
        OCILayout.create(blocker)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "index.json").write_text("{}")
    with pytest.raises(DestinationError, match="without oci-layout"):
        OCILayout.create(tmp_path / "junk")


def test_docker_archive_holds_oci_layout_and_docker_manifest(tmp_path: Path) -> None:
    img = build_image([1000, 2000])
    layout = OCILayout.create(tmp_path / "stage")
    for blob in [img.config, *img.layers]:
        layout.write_blob(sha256(blob), blob)
    manifest = Manifest.parse(img.manifest, "application/vnd.oci.image.manifest.v1+json", where="t")
    out = tmp_path / "img.tar"
    write_docker_archive(out, layout, manifest, ["127.0.0.1:5000/a/b:v1"])
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        docker_manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        repos = json.loads(tar.extractfile("repositories").read())  # type: ignore[union-attr]
    assert {"oci-layout", "index.json", "manifest.json", "repositories"} <= names
    assert docker_manifest[0]["RepoTags"] == ["127.0.0.1:5000/a/b:v1"]
    assert docker_manifest[0]["Config"] == f"blobs/sha256/{sha256(img.config)[7:]}"
    assert [f"blobs/sha256/{sha256(b)[7:]}" for b in img.layers] == docker_manifest[0]["Layers"]
    assert index["manifests"][0]["digest"] == img.digest
    assert (
        index["manifests"][0]["annotations"]["io.containerd.image.name"] == "127.0.0.1:5000/a/b:v1"
    )
    assert list(repos) == ["127.0.0.1:5000/a/b"]
    # and it reads back as a push source, manifest byte-identical
    src = open_source(parse_location(f"docker-archive:{out}"))
    try:
        assert src.top().raw == img.manifest
        assert src.open_blob(sha256(img.layers[1])).read() == img.layers[1]
    finally:
        src.close()
    assert not list(tmp_path.glob(".img.tar.*"))


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_push_of_broken_docker_archives_is_an_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 11 item 19: missing members and bad index.json were tracebacks."""
    from fleetkit.cli import main

    layer = b"layer-bytes"
    legacy_missing_layer = {
        "manifest.json": json.dumps(
            [{"Config": "c.json", "RepoTags": ["a:b"], "Layers": ["missing/layer.tar"]}]
        ).encode(),
        "c.json": b"{}",
    }
    oci = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}
    cases = {
        "legacy-missing-layer": legacy_missing_layer,
        "legacy-missing-config": {
            "manifest.json": json.dumps([{"Config": "nope.json", "Layers": []}]).encode()
        },
        "legacy-layers-not-strings": {
            "manifest.json": json.dumps([{"Config": "c.json", "Layers": [{"x": 1}]}]).encode(),
            "c.json": b"{}",
        },
        "index-not-json": {**oci, "index.json": b"{not json"},
        "index-is-a-list": {**oci, "index.json": b"[1, 2]"},
        "index-entries-not-objects": {**oci, "index.json": b'{"manifests": ["x", 3]}'},
        "index-manifests-not-a-list": {**oci, "index.json": b'{"manifests": {"a": 1}}'},
        "index-names-missing-blob": {
            **oci,
            "index.json": json.dumps(
                {"manifests": [{"mediaType": "x", "digest": "sha256:" + "0" * 64, "size": 2}]}
            ).encode(),
            "blobs/sha256/" + "1" * 64: layer,
        },
    }
    for name, members in cases.items():
        archive = _tar(tmp_path / f"{name}.tar", members)
        rc = main(["push", f"docker-archive:{archive}", "127.0.0.1:9/a/b:c"])
        _out, err = capsys.readouterr()
        lines = err.splitlines()
        assert rc == 1, (name, err)
        assert lines and lines[0].startswith(f"error: {archive}"), (name, err)
        assert "internal error" not in err and "Traceback" not in err, (name, err)
    # a truncated archive (cut inside a layer) is an error line too
    good = _tar(tmp_path / "good.tar", {**legacy_missing_layer, "missing/layer.tar": layer * 5000})
    cut = tmp_path / "cut.tar"
    cut.write_bytes(good.read_bytes()[:3000])
    rc = main(["push", f"docker-archive:{cut}", "127.0.0.1:9/a/b:c"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith(f"error: {cut}") and "internal error" not in err, err
