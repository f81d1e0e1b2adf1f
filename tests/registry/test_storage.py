"""ONE storage suite, run against every driver (filesystem, memory and S3 on Ceph radosgw)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fleetkit.registry.errors import RegistryAPIError
from fleetkit.registry.manifest import parse_manifest
from fleetkit.registry.storage import (
    FilesystemDriver,
    MemoryDriver,
    PathNotFound,
    RegistryStore,
    StorageDriver,
    StorageFailure,
)
from fleetkit.registry.storage.s3 import S3Driver, parse_s3_url
from fleetkit.registry.storage.store import UploadWriter
from tests.registry._ceph import CephS3
from tests.registry._images import make_image
from tests.registry.conftest import s3_config


@pytest.fixture(params=["filesystem", "memory", "s3"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> StorageDriver:
    if request.param == "filesystem":
        return FilesystemDriver(str(tmp_path / "root"))
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        return S3Driver(s3_config(request.getfixturevalue("ceph_s3"), bucket))
    return MemoryDriver()


@pytest.fixture
def store(driver: StorageDriver) -> RegistryStore:
    return RegistryStore(driver)


# -- the driver contract -------------------------------------------------------------------------


def test_put_get_stat(driver: StorageDriver) -> None:
    driver.put("a/b/c", b"hello")
    assert driver.get("a/b/c") == b"hello"
    assert driver.stat("a/b/c") == 5
    assert driver.stat("a/b") is None  # a directory is not a file
    assert driver.exists("a/b")
    driver.put("a/b/c", b"bye")  # replace
    assert driver.get("a/b/c") == b"bye"


def test_missing_paths(driver: StorageDriver) -> None:
    with pytest.raises(PathNotFound):
        driver.get("nope")
    with pytest.raises(PathNotFound):
        driver.reader("nope")
    with pytest.raises(PathNotFound):
        driver.move("nope", "x")
    assert driver.stat("nope") is None
    assert driver.list("nope") == []
    driver.delete("nope")  # no error


def test_list_walk_delete(driver: StorageDriver) -> None:
    for p in ("r/x/1", "r/x/2", "r/y", "s/z"):
        driver.put(p, p.encode())
    assert driver.list("r") == ["x", "y"]
    assert sorted(driver.walk("r")) == ["r/x/1", "r/x/2", "r/y"]
    driver.delete("r/x")
    assert driver.list("r") == ["y"]
    assert driver.get("s/z") == b"s/z"


def test_move_replaces_atomically(driver: StorageDriver) -> None:
    driver.put("up/data", b"new")
    driver.put("blob/data", b"old")
    driver.move("up/data", "blob/data")
    assert driver.get("blob/data") == b"new"
    assert driver.stat("up/data") is None


def test_appender_and_reader(driver: StorageDriver) -> None:
    w = driver.appender("u/data")
    w.write(b"abc")
    w.write(memoryview(b"def"))
    assert w.size == 6
    w.sync()
    w.close()
    w2 = driver.appender("u/data")  # reopen appends (upload resumed after restart)
    assert w2.size == 6
    w2.write(b"g")
    w2.close()
    with driver.reader("u/data", 2) as f:
        assert f.read() == b"cdefg"


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "a//b", "./a", "a/.", "a\\b"])
def test_paths_cannot_escape(driver: StorageDriver, bad: str) -> None:
    with pytest.raises(ValueError):
        driver.put(bad, b"x")


def test_filesystem_put_leaves_no_temp_files(tmp_path: Path) -> None:
    d = FilesystemDriver(str(tmp_path))
    for i in range(5):
        d.put("x/y", str(i).encode())
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["y"]


# -- the registry model on top --------------------------------------------------------------------


def _upload(store: RegistryStore, name: str, data: bytes, chunk: int = 7) -> str:
    up = store.start_upload(name)
    for i in range(0, len(data), chunk):
        w = UploadWriter(store, up)
        w.write(data[i : i + chunk])
        w.close()
    return store.finish_upload(
        store.get_upload(name, up.id), "sha256:" + hashlib.sha256(data).hexdigest()
    )


def test_blob_upload_links_into_repository(store: RegistryStore) -> None:
    digest = _upload(store, "a/b", b"x" * 100)
    assert store.repo_blob_size("a/b", digest) == 100
    assert store.repo_blob_size("c", digest) is None  # content-addressed, but linked per repo
    assert store.read_blob(digest) == b"x" * 100
    assert store.uploads("a/b") == []


def test_upload_with_wrong_digest_commits_nothing(store: RegistryStore) -> None:
    up = store.start_upload("r")
    w = UploadWriter(store, up)
    w.write(b"abc")
    w.close()
    wrong = "sha256:" + "0" * 64
    with pytest.raises(RegistryAPIError) as err:
        store.finish_upload(store.get_upload("r", up.id), wrong)
    assert err.value.code == "DIGEST_INVALID"
    assert store.blob_size(wrong) is None
    assert list(store.driver.walk("blobs")) == []


def test_upload_survives_a_new_store_instance(store: RegistryStore) -> None:
    """A restart loses the in-memory hash state; the bytes on storage are rehashed."""
    up = store.start_upload("r")
    w = UploadWriter(store, up)
    w.write(b"first half,")
    w.close()
    fresh = RegistryStore(store.driver)
    up2 = fresh.get_upload("r", up.id)
    assert up2.size == 11
    w2 = UploadWriter(fresh, up2)
    w2.write(b"second half")
    w2.close()
    data = b"first half,second half"
    digest = fresh.finish_upload(
        fresh.get_upload("r", up.id), "sha256:" + hashlib.sha256(data).hexdigest()
    )
    assert fresh.read_blob(digest) == data


def test_sha512_upload(store: RegistryStore) -> None:
    up = store.start_upload("r")
    w = UploadWriter(store, up)
    w.write(b"data512")
    w.close()
    digest = "sha512:" + hashlib.sha512(b"data512").hexdigest()
    assert store.finish_upload(store.get_upload("r", up.id), digest) == digest
    assert store.repo_blob_size("r", digest) == 7


def test_unknown_upload(store: RegistryStore) -> None:
    for bad in ("nope", "../../x", "a" * 100):
        with pytest.raises(RegistryAPIError) as err:
            store.get_upload("r", bad)
        assert err.value.code == "BLOB_UPLOAD_UNKNOWN"


def _push(store: RegistryStore, name: str, seed: int, tag: str) -> str:
    img = make_image(seed)
    for data in img.blobs().values():
        store.put_blob(name, data)
    return store.put_manifest(name, img.manifest, parse_manifest(img.manifest), [tag])


def test_manifest_tags_and_delete(store: RegistryStore) -> None:
    d1 = _push(store, "app", 1, "v1")
    store.tag("app", "latest", d1)
    assert store.tags("app") == ["latest", "v1"]
    assert store.resolve_tag("app", "v1") == d1
    info = store.revision("app", d1)
    assert info is not None and info.media_type.endswith("manifest.v1+json")
    assert store.delete_manifest("app", d1)
    assert store.tags("app") == []  # tags pointing at a deleted manifest go with it
    assert store.resolve_tag("app", "v1") is None
    assert not store.delete_manifest("app", d1)


def test_repositories_listing(store: RegistryStore) -> None:
    _push(store, "b/c", 1, "x")
    _push(store, "a", 2, "x")
    _push(store, "b", 3, "x")
    assert store.repositories() == ["a", "b", "b/c"]


def test_gc_removes_only_unreferenced(store: RegistryStore) -> None:
    kept = make_image(1)
    _push(store, "app", 1, "v1")
    orphan = store.put_blob("app", b"orphan bytes")
    d2 = _push(store, "app", 2, "v2")
    store.delete_manifest("app", d2)
    dry = store.gc(dry_run=True)
    assert orphan in dry.blobs_deleted and d2 in dry.blobs_deleted
    assert store.blob_size(orphan) is not None  # dry run deletes nothing
    report = store.gc()
    assert set(report.blobs_deleted) == set(dry.blobs_deleted)
    assert store.blob_size(orphan) is None
    for digest in kept.blobs():
        assert store.blob_size(digest) is not None
    assert store.resolve_tag("app", "v1") == kept.digest
    assert store.gc().blobs_deleted == []


def test_gc_purges_stale_uploads(store: RegistryStore) -> None:
    fresh = store.start_upload("r")
    old = store.start_upload("r")
    store.driver.put(f"repositories/r/_uploads/{old.id}/startedat", b"2000-01-01T00:00:00+00:00")
    report = store.gc(dry_run=True)
    assert report.uploads_deleted == [f"r/{old.id}"]
    assert len(store.uploads("r")) == 2
    store.gc()
    assert [u.id for u in store.uploads("r")] == [fresh.id]
    assert store.gc(upload_max_age_s=None).uploads_deleted == []


# -- S3 specifics: appends as segments, assembled by one multipart upload ---------------------------


def test_s3_upload_continues_on_another_driver_and_assembles(
    ceph_s3: CephS3, s3_bucket: str
) -> None:
    """Two drivers on one bucket (two replicas): appends from both, then one ``move`` joins
    big segments server-side and small ones by reading them; nothing is left under s/."""
    cfg = s3_config(ceph_s3, s3_bucket)
    cfg.segment_bytes = 6 << 20
    a, b = S3Driver(cfg), S3Driver(cfg)
    big = bytes(range(256)) * (4 << 12)  # 4 MiB per write
    w = a.appender("u/data")
    for _ in range(3):
        w.write(big)  # one 8 MiB segment after the second write, 4 MiB at close
    w.close()
    w = b.appender("u/data")
    assert w.size == 12 << 20
    w.write(b"tail")
    w.close()
    assert a.stat("u/data") == (12 << 20) + 4
    with b.reader("u/data", (12 << 20) - 2) as f:
        assert f.read() == big[-2:] + b"tail"
    a.move("u/data", "blob/data")
    assert b.get("blob/data") == big * 3 + b"tail"
    assert b.stat("u/data") is None
    listed = a.client.list_objects_v2(Bucket=s3_bucket, Prefix="s/")
    assert listed.get("KeyCount", 0) == 0


def test_s3_url_parsing() -> None:
    cfg = parse_s3_url("s3://bkt/some/prefix?endpoint=http://127.0.0.1:9&region=eu&secure=false")
    assert (cfg.bucket, cfg.rootdirectory, cfg.regionendpoint, cfg.region, cfg.secure) == (
        "bkt",
        "some/prefix",
        "http://127.0.0.1:9",
        "eu",
        False,
    )
    cfg.secretkey = "s3cr3t"
    assert "s3cr3t" not in repr(cfg)
    with pytest.raises(ValueError):
        parse_s3_url("s3://bkt?accesskey=x")


def test_s3_concurrent_appends_at_one_offset_cannot_overwrite(
    ceph_s3: CephS3, s3_bucket: str
) -> None:
    """Two replicas writing the same session at the same offset: the first one's bytes stay."""
    cfg = s3_config(ceph_s3, s3_bucket)
    a, b = S3Driver(cfg), S3Driver(cfg)
    a.put("u/data", b"")
    wa, wb = a.appender("u/data"), b.appender("u/data")
    wa.write(b"first")
    wb.write(b"other")
    wa.close()
    with pytest.raises(StorageFailure):
        wb.close()
    assert b.get("u/data") == b"first"
