"""S3 driver (botocore): paths are object keys; appends are segment objects joined on ``move``.

Key layout under the configured prefix::

    f/<path>                    a file (one object; PUT and CopyObject are atomic per object)
    s/<path>/<offset:020d>      the appended segments of an appendable file ``f/<path>``

S3 has no append and no rename. An appendable file (an upload session's ``data``) is an empty
base object marked ``fk-appendable`` plus one segment object per flush (every
``segment_bytes`` and at close); its bytes are the segments in offset order, so an upload
continues on any replica that shares the bucket. ``move`` of an appendable file assembles the
segments into the destination with one multipart upload (server-side ``UploadPartCopy`` for
segments of at least 5 MiB) and then deletes the source: the destination appears whole or not
at all. Plain files are read with one HEAD/GET, never a listing (tags and manifest links are
single objects, so reads on the hot path are strongly consistent on S3 and radosgw).
"""

from __future__ import annotations

import builtins
import io
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from fleetkit.registry.storage.base import PathNotFound, StorageFailure, check_path

__all__ = ["S3Config", "S3Driver", "parse_s3_url"]

_APPENDABLE = "fk-appendable"
_MIN_PART = 5 << 20  # S3's smallest multipart part (except the last)
_PART = 16 << 20
# one segment of an upload is buffered in memory: with skopeo's 3 parallel layer uploads and
# botocore's ~70 MiB, 8 MiB keeps a replica well under 150 MiB (16 MiB peaked near 200)
_SEGMENT = 8 << 20


@dataclass(slots=True)
class S3Config:
    """Distribution's storage.s3 keys (bucket, region, regionendpoint, accesskey, ...)."""

    bucket: str
    region: str = "us-east-1"
    regionendpoint: str | None = None
    accesskey: str | None = None
    secretkey: str | None = None
    secure: bool = True
    rootdirectory: str = ""
    segment_bytes: int = _SEGMENT

    def __repr__(self) -> str:  # never print the secret
        return (
            f"S3Config(bucket={self.bucket!r}, region={self.region!r}, "
            f"regionendpoint={self.regionendpoint!r}, rootdirectory={self.rootdirectory!r})"
        )


def parse_s3_url(url: str) -> S3Config:
    """``s3://BUCKET[/PREFIX]?endpoint=URL&region=R&secure=false`` (keys from the environment
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` or the config file, never from the URL)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an s3:// URL: {url!r}")
    query = urllib.parse.parse_qs(parts.query)

    def one(key: str) -> str | None:
        values = query.get(key)
        return values[-1] if values else None

    cfg = S3Config(bucket=parts.netloc, rootdirectory=parts.path.strip("/"))
    if (region := one("region")) is not None:
        cfg.region = region
    endpoint = one("endpoint") or one("regionendpoint")
    if endpoint is not None:
        cfg.regionendpoint = endpoint
    if (secure := one("secure")) is not None:
        cfg.secure = secure.lower() not in ("0", "false", "no")
    unknown = set(query) - {"region", "endpoint", "regionendpoint", "secure"}
    if unknown:
        raise ValueError(f"unknown s3:// URL parameter(s): {', '.join(sorted(unknown))}")
    return cfg


class _S3Appender:
    """Buffers writes; every ``segment_bytes`` (and at close) the buffer becomes one segment."""

    def __init__(self, driver: S3Driver, path: str, size: int) -> None:
        self._driver = driver
        self._path = path
        self._size = size  # bytes stored (segments) + bytes buffered
        self._buf = bytearray()

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data
        self._size += len(data)
        if len(self._buf) >= self._driver.config.segment_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        offset = self._size - len(self._buf)
        # create-only: two replicas appending to one session at once cannot overwrite each
        # other's bytes (the second gets an error, and its hash state is not kept)
        data, self._buf = self._buf, bytearray()  # sent as it is: no copy into a bytes
        self._driver._put_raw(self._driver._seg_key(self._path, offset), data, create_only=True)

    def sync(self) -> None:
        self._flush()

    def close(self) -> None:
        self._flush()


class _ObjectReader(io.RawIOBase):
    """A readable stream over one or more (key, start) ranges, fetched one GET at a time."""

    def __init__(self, driver: S3Driver, ranges: list[tuple[str, int]]) -> None:
        super().__init__()
        self._driver = driver
        self._ranges = ranges
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        while True:
            if self._body is None:
                if not self._ranges:
                    return 0
                key, start = self._ranges.pop(0)
                self._body = self._driver._get_body(key, start)
            data = self._body.read(len(view))
            if data:
                view[: len(data)] = data
                return len(data)
            self._body.close()
            self._body = None

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
        super().close()


class S3Driver:
    """The storage Protocol on an S3 bucket (AWS, Ceph radosgw, MinIO, ...)."""

    name = "s3"

    def __init__(self, config: S3Config, client: Any = None) -> None:
        self.config = config
        prefix = config.rootdirectory.strip("/")
        self._prefix = f"{prefix}/" if prefix else ""
        self._local = threading.local()
        self._client = client if client is not None else self._make_client()

    def _make_client(self) -> Any:
        import botocore.config
        import botocore.session

        session = botocore.session.get_session()
        cfg = botocore.config.Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=64,
            signature_version="s3v4",
        )
        endpoint = self.config.regionendpoint
        if endpoint and "://" not in endpoint:
            endpoint = ("https://" if self.config.secure else "http://") + endpoint
        return session.create_client(
            "s3",
            region_name=self.config.region,
            endpoint_url=endpoint,
            aws_access_key_id=self.config.accesskey,
            aws_secret_access_key=self.config.secretkey,
            use_ssl=self.config.secure,
            config=cfg,
        )

    @property
    def client(self) -> Any:
        return self._client

    # -- keys ----------------------------------------------------------------------------------
    def _file_key(self, path: str) -> str:
        return f"{self._prefix}f/{path}"

    def _seg_prefix(self, path: str) -> str:
        return f"{self._prefix}s/{path}/"

    def _seg_key(self, path: str, offset: int) -> str:
        return f"{self._seg_prefix(path)}{offset:020d}"

    # -- raw calls -----------------------------------------------------------------------------
    @staticmethod
    def _code(exc: Exception) -> str:
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
        return ""

    def _fail(self, what: str, exc: Exception) -> StorageFailure:
        return StorageFailure(
            f"s3 {what} failed: {self._code(exc) or type(exc).__name__}",
            hint=f"check bucket {self.config.bucket!r} and the endpoint's credentials",
        )

    def _put_raw(
        self,
        key: str,
        data: bytes | bytearray,
        metadata: dict[str, str] | None = None,
        create_only: bool = False,
    ) -> None:
        kwargs: dict[str, Any] = {}
        if create_only:
            kwargs["IfNoneMatch"] = "*"
        try:
            self._client.put_object(
                Bucket=self.config.bucket, Key=key, Body=data, Metadata=metadata or {}, **kwargs
            )
        except Exception as exc:
            if create_only and self._code(exc) == "PreconditionFailed":
                raise StorageFailure(
                    "another request appended to this upload at the same offset",
                    hint="send an upload's chunks one after another",
                ) from None
            raise self._fail("PUT", exc) from None

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self._client.head_object(Bucket=self.config.bucket, Key=key))
        except Exception as exc:
            if self._code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._fail("HEAD", exc) from None

    def _get_body(self, key: str, start: int) -> Any:
        kwargs: dict[str, Any] = {"Bucket": self.config.bucket, "Key": key}
        if start:
            kwargs["Range"] = f"bytes={start}-"
        try:
            return self._client.get_object(**kwargs)["Body"]
        except Exception as exc:
            code = self._code(exc)
            if code in ("404", "NoSuchKey", "NotFound"):
                raise PathNotFound(key) from None
            if code == "InvalidRange":
                return io.BytesIO(b"")
            raise self._fail("GET", exc) from None

    def _list(self, prefix: str, delimiter: str | None) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"Bucket": self.config.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        try:
            yield from self._client.get_paginator("list_objects_v2").paginate(**kwargs)
        except Exception as exc:
            raise self._fail("LIST", exc) from None

    def _segments(self, path: str) -> list[tuple[str, int, int]]:
        """(key, offset, size) of an appendable file's segments, in offset order."""
        out = []
        for page in self._list(self._seg_prefix(path), None):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                tail = key[len(self._seg_prefix(path)) :]
                if tail.isdigit():
                    out.append((key, int(tail), int(obj["Size"])))
        out.sort(key=lambda s: s[1])
        # a segment is valid only where the previous one ended (a crashed writer's overlap
        # or gap is cut there)
        valid: list[tuple[str, int, int]] = []
        end = 0
        for key, offset, size in out:
            if offset != end:
                break
            valid.append((key, offset, size))
            end += size
        return valid

    def _delete_keys(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            try:
                self._client.delete_objects(
                    Bucket=self.config.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except Exception as exc:
                raise self._fail("DELETE", exc) from None

    # -- the Protocol --------------------------------------------------------------------------
    def get(self, path: str) -> bytes:
        with self.reader(path) as f:
            return f.read()

    def put(self, path: str, data: bytes) -> None:
        path = check_path(path)
        self._put_raw(self._file_key(path), bytes(data))

    def stat(self, path: str) -> int | None:
        head = self._head(self._file_key(check_path(path)))
        if head is None:
            return None
        size = int(head.get("ContentLength", 0))
        if head.get("Metadata", {}).get(_APPENDABLE):
            size += sum(s[2] for s in self._segments(path))
        return size

    def exists(self, path: str) -> bool:
        path = check_path(path)
        if self._head(self._file_key(path)) is not None:
            return True
        for page in self._list(self._file_key(path) + "/", None):
            if page.get("KeyCount", 0) or page.get("Contents"):
                return True
            break
        return False

    def list(self, path: str) -> list[str]:
        prefix = self._file_key(check_path(path)) + "/"
        out: set[str] = set()
        for page in self._list(prefix, "/"):
            for obj in page.get("Contents", []):
                out.add(obj["Key"][len(prefix) :])
            for cp in page.get("CommonPrefixes", []):
                out.add(cp["Prefix"][len(prefix) :].rstrip("/"))
        return sorted(n for n in out if n)

    def walk(self, path: str) -> Iterator[str]:
        prefix = self._file_key(check_path(path)) + "/"
        strip = len(self._file_key(""))
        keys = [obj["Key"] for page in self._list(prefix, None) for obj in page.get("Contents", [])]
        yield from sorted(k[strip:] for k in keys)

    def delete(self, path: str) -> None:
        path = check_path(path)
        keys = [self._file_key(path)]
        for prefix in (self._file_key(path) + "/", self._seg_prefix(path)):
            keys += [
                o["Key"] for page in self._list(prefix, None) for o in page.get("Contents", [])
            ]
        # the segments of files below ``path`` live under s/<path>/...
        self._delete_keys(keys)

    def move(self, src: str, dst: str) -> None:
        src, dst = check_path(src), check_path(dst)
        head = self._head(self._file_key(src))
        if head is None:
            raise PathNotFound(src)
        segments = self._segments(src) if head.get("Metadata", {}).get(_APPENDABLE) else []
        base_size = int(head.get("ContentLength", 0))
        if not segments:
            self._copy(self._file_key(src), self._file_key(dst))
        elif base_size == 0 and len(segments) == 1:
            self._copy(segments[0][0], self._file_key(dst))
        else:
            self._compose(src, base_size, segments, dst)
        self.delete(src)

    def _copy(self, src_key: str, dst_key: str) -> None:
        try:
            self._client.copy_object(
                Bucket=self.config.bucket,
                Key=dst_key,
                CopySource={"Bucket": self.config.bucket, "Key": src_key},
                MetadataDirective="REPLACE",
                Metadata={},
            )
        except Exception as exc:
            if self._code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise PathNotFound(src_key) from None
            raise self._fail("COPY", exc) from None

    def _compose(
        self, src: str, base_size: int, segments: builtins.list[tuple[str, int, int]], dst: str
    ) -> None:
        """One multipart upload of base + segments: server-side copies for big segments."""
        bucket, key = self.config.bucket, self._file_key(dst)
        pieces = ([(self._file_key(src), base_size)] if base_size else []) + [
            (k, size) for k, _, size in segments
        ]
        try:
            upload_id = self._client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        except Exception as exc:
            raise self._fail("multipart start", exc) from None
        parts: list[dict[str, Any]] = []
        buf = bytearray()

        def flush() -> None:
            nonlocal buf
            n = len(parts) + 1
            body, buf = buf, bytearray()  # sent as it is: no copy into a bytes
            r = self._client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=body
            )
            parts.append({"ETag": r["ETag"], "PartNumber": n})

        try:
            for piece_key, size in pieces:
                if not buf and size >= _MIN_PART:
                    n = len(parts) + 1
                    r = self._client.upload_part_copy(
                        Bucket=bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=n,
                        CopySource={"Bucket": bucket, "Key": piece_key},
                    )
                    parts.append({"ETag": r["CopyPartResult"]["ETag"], "PartNumber": n})
                    continue
                body = self._get_body(piece_key, 0)
                try:
                    while chunk := body.read(1 << 20):
                        buf += chunk
                        if len(buf) >= _PART:
                            flush()
                finally:
                    body.close()
            if buf or not parts:
                flush()
            self._client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException as exc:
            try:
                self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except Exception:  # noqa: BLE001 - the first failure is the one to report
                pass
            if isinstance(exc, Exception) and not isinstance(exc, (PathNotFound, StorageFailure)):
                raise self._fail("multipart", exc) from None
            raise

    def appender(self, path: str) -> _S3Appender:
        path = check_path(path)
        head = self._head(self._file_key(path))
        if head is not None and head.get("Metadata", {}).get(_APPENDABLE):
            size = int(head.get("ContentLength", 0)) + sum(s[2] for s in self._segments(path))
        else:
            # make the file appendable: its current bytes become the first segment
            existing = b""
            if head is not None:
                existing = self.get(path)
            stale = [
                o["Key"]
                for pg in self._list(self._seg_prefix(path), None)
                for o in pg.get("Contents", [])
            ]
            self._delete_keys(stale)
            self._put_raw(self._file_key(path), b"", {_APPENDABLE: "1"})
            if existing:
                self._put_raw(self._seg_key(path, 0), existing)
            size = len(existing)
        return _S3Appender(self, path, size)

    def reader(self, path: str, offset: int = 0) -> BinaryIO:
        path = check_path(path)
        key = self._file_key(path)
        head = self._head(key)
        if head is None:
            raise PathNotFound(path)
        ranges: list[tuple[str, int]] = []
        pieces = [(key, int(head.get("ContentLength", 0)))]
        if head.get("Metadata", {}).get(_APPENDABLE):
            pieces += [(k, size) for k, _, size in self._segments(path)]
        for piece_key, size in pieces:
            if offset >= size:
                offset -= size
                continue
            ranges.append((piece_key, offset))
            offset = 0
        raw = _ObjectReader(self, ranges)
        return io.BufferedReader(raw, buffer_size=1 << 20)

    def local_path(self, path: str) -> str | None:
        return None

    def modified(self, path: str) -> float | None:
        """The object's last-modified time (epoch seconds), or None (gc's grace period)."""
        head = self._head(self._file_key(check_path(path)))
        if head is None:
            return None
        stamp = head.get("LastModified")
        return None if stamp is None else float(stamp.timestamp())

    def presigned_get(self, path: str, expires_s: int = 300) -> str:
        """A URL a client may GET the file from directly (``--storage-redirect``)."""
        url: str = self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.config.bucket, "Key": self._file_key(check_path(path))},
            ExpiresIn=expires_s,
        )
        return url
