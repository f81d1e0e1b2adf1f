"""Registry test fixtures: a one-node Ceph (radosgw) S3 endpoint, once per session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from fleetkit.registry.storage.s3 import S3Config, S3Driver
from tests.peers import require
from tests.registry._ceph import CephS3, start_ceph

_INSTALL = "apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd ceph-common"


@pytest.fixture(scope="session")
def ceph_s3() -> Iterator[CephS3]:
    for tool in ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph"):
        require(tool, _INSTALL)
    with start_ceph() as ceph:
        yield ceph


def s3_config(ceph: CephS3, bucket: str) -> S3Config:
    return S3Config(
        bucket=bucket,
        regionendpoint=ceph.endpoint,
        accesskey=ceph.access_key,
        secretkey=ceph.secret_key,
        secure=False,
    )


@pytest.fixture
def s3_bucket(ceph_s3: CephS3) -> Iterator[str]:
    """A fresh bucket per test, emptied and removed afterwards."""
    bucket = "fk-" + uuid.uuid4().hex[:20]
    driver = S3Driver(s3_config(ceph_s3, bucket))
    driver.client.create_bucket(Bucket=bucket)
    yield bucket
    keys = [
        o["Key"]
        for page in driver.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]
    driver._delete_keys(keys)
    for page in driver.client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for up in page.get("Uploads", []):
            driver.client.abort_multipart_upload(
                Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"]
            )
    driver.client.delete_bucket(Bucket=bucket)
