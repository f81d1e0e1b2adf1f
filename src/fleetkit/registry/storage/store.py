"""The registry's data model on top of a :class:`StorageDriver`.

Layout (distribution's, simplified)::

    blobs/<alg>/<hex[:2]>/<hex>/data                         content-addressed bytes
    repositories/<name>/_layers/<alg>/<hex>/link            "this repository has this blob"
    repositories/<name>/_manifests/revisions/<alg>/<hex>/link   "<digest>\\n<media type>\\n"
    repositories/<name>/_manifests/tags/<tag>/current/link  a tag is a link to a revision
    repositories/<name>/_referrers/<alg>/<subject hex>/<alg>/<hex>/link
    repositories/<name>/_uploads/<id>/data, startedat        upload sessions (survive restarts)

Commit order makes crashes harmless: blob bytes are renamed into place (after fsync) before any
link names them; a manifest's blob is written before its revision link, which is written before
any tag points at it. So a crash can leave unreferenced bytes (gc removes them) but never a link
to nothing and never a partial blob under a digest.
"""

from __future__ import annotations

import datetime as _dt
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from fleetkit.registry.digest import Hasher, parse_digest
from fleetkit.registry.errors import RegistryAPIError, api_error
from fleetkit.registry.manifest import Manifest, parse_manifest
from fleetkit.registry.storage.base import PathNotFound, StorageDriver

__all__ = ["RegistryStore", "Upload", "RevisionInfo", "GCReport"]


@dataclass(frozen=True, slots=True)
class RevisionInfo:
    digest: str
    media_type: str
    size: int


@dataclass(slots=True)
class Upload:
    repository: str
    id: str
    size: int
    started_at: str


@dataclass(slots=True)
class GCReport:
    blobs_marked: int
    blobs_deleted: list[str]
    bytes_freed: int
    layer_links_deleted: int
    dry_run: bool
    uploads_deleted: list[str]


def _blob_path(digest: str) -> str:
    d = parse_digest(digest)
    return f"blobs/{d.algorithm}/{d.hex[:2]}/{d.hex}/data"


def _dpath(digest: str) -> str:
    d = parse_digest(digest)
    return f"{d.algorithm}/{d.hex}"


class RegistryStore:
    """Blobs, repositories, tags, uploads and referrers; safe to call from several threads."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver
        # in-memory hash state per upload: (hasher, size it covers); rebuilt from bytes after restart
        self._hashers: dict[str, Hasher] = {}
        self._lock = threading.Lock()
        self._media_types: dict[str, str] = {}

    # -- paths -------------------------------------------------------------------------------
    @staticmethod
    def _repo(name: str) -> str:
        return f"repositories/{name}"

    def _layer_link(self, name: str, digest: str) -> str:
        return f"{self._repo(name)}/_layers/{_dpath(digest)}/link"

    def _revision_link(self, name: str, digest: str) -> str:
        return f"{self._repo(name)}/_manifests/revisions/{_dpath(digest)}/link"

    def _tag_link(self, name: str, tag: str) -> str:
        return f"{self._repo(name)}/_manifests/tags/{tag}/current/link"

    def _upload_dir(self, name: str, upload_id: str) -> str:
        return f"{self._repo(name)}/_uploads/{upload_id}"

    # -- blobs -------------------------------------------------------------------------------
    def blob_size(self, digest: str) -> int | None:
        """Size of the blob in the global store, or None."""
        return self.driver.stat(_blob_path(digest))

    def blob_path(self, digest: str) -> str:
        return _blob_path(digest)

    def repo_has_blob(self, name: str, digest: str) -> bool:
        return self.driver.stat(self._layer_link(name, digest)) is not None or (
            self.driver.stat(self._revision_link(name, digest)) is not None
        )

    def repo_blob_size(self, name: str, digest: str) -> int | None:
        if not self.repo_has_blob(name, digest):
            return None
        return self.blob_size(digest)

    def read_blob(self, digest: str) -> bytes:
        return self.driver.get(_blob_path(digest))

    def link_blob(self, name: str, digest: str) -> None:
        self.driver.put(self._layer_link(name, digest), digest.encode())

    def unlink_blob(self, name: str, digest: str) -> bool:
        path = self._layer_link(name, digest)
        if self.driver.stat(path) is None:
            return False
        self.driver.delete(path.rsplit("/", 1)[0])
        return True

    def put_blob(self, name: str, data: bytes, digest: str | None = None) -> str:
        """Store ``data`` (verifying ``digest`` if given) and link it into ``name``."""
        algorithm = parse_digest(digest).algorithm if digest else "sha256"
        h = Hasher(algorithm)
        h.update(data)
        actual = h.digest()
        if digest is not None and actual != digest:
            raise api_error("DIGEST_INVALID", detail={"expected": digest, "actual": actual})
        if self.blob_size(actual) != len(data):
            self.driver.put(_blob_path(actual), data)
        self.link_blob(name, actual)
        return actual

    def repositories_with_blob(self, digest: str) -> Iterator[str]:
        for name in self.repositories():
            if self.repo_has_blob(name, digest):
                yield name

    # -- uploads -----------------------------------------------------------------------------
    def start_upload(self, name: str) -> Upload:
        upload_id = secrets.token_hex(16)
        started = _dt.datetime.now(_dt.UTC).isoformat()
        d = self._upload_dir(name, upload_id)
        try:
            self.driver.put(f"{d}/startedat", started.encode())
            self.driver.put(f"{d}/data", b"")
        except BaseException:
            # a half-made session (disk full, say) is nobody's: leave nothing behind
            self.driver.delete(d)
            raise
        return Upload(name, upload_id, 0, started)

    @staticmethod
    def check_upload_id(upload_id: str) -> None:
        """Raise BLOB_UPLOAD_UNKNOWN for an id this store never hands out (cheap, no I/O)."""
        if not (upload_id.isascii() and upload_id.isalnum()) or len(upload_id) > 64:
            raise api_error("BLOB_UPLOAD_UNKNOWN")

    def get_upload(self, name: str, upload_id: str) -> Upload:
        self.check_upload_id(upload_id)
        d = self._upload_dir(name, upload_id)
        size = self.driver.stat(f"{d}/data")
        if size is None:
            raise api_error("BLOB_UPLOAD_UNKNOWN")
        try:
            started = self.driver.get(f"{d}/startedat").decode()
        except PathNotFound:
            started = ""
        return Upload(name, upload_id, size, started)

    def _hasher_for(self, upload: Upload, algorithm: str) -> Hasher:
        """The hash of the upload's bytes so far (from memory, else recomputed from storage)."""
        key = f"{upload.repository}/{upload.id}"
        with self._lock:
            h = self._hashers.get(key)
        if h is not None and h.algorithm == algorithm and h.size == upload.size:
            return h.copy()
        h = Hasher(algorithm)
        with self.driver.reader(f"{self._upload_dir(upload.repository, upload.id)}/data") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return h

    def _remember_hasher(self, upload: Upload, h: Hasher) -> None:
        with self._lock:
            self._hashers[f"{upload.repository}/{upload.id}"] = h

    def finish_upload(self, upload: Upload, digest: str, *also: str) -> str:
        """Verify the upload's bytes against ``digest`` (and ``also``) and commit them as the
        blob ``digest``."""
        h = self._hasher_for(upload, parse_digest(digest).algorithm)
        actuals = {h.algorithm: h.digest()}  # each algorithm's hash is computed once
        for expected in dict.fromkeys((digest, *also)):
            alg = parse_digest(expected).algorithm
            if alg not in actuals:
                actuals[alg] = self._hasher_for(upload, alg).digest()
            actual = actuals[alg]
            if actual != expected:
                raise api_error(
                    "DIGEST_INVALID",
                    f"provided digest {expected} did not match uploaded content ({actual})",
                    detail={"expected": expected, "actual": actual},
                )
        updir = self._upload_dir(upload.repository, upload.id)
        if self.blob_size(digest) == h.size:
            self.driver.delete(updir)  # another push of the same bytes won; keep theirs
        else:
            self.driver.move(f"{updir}/data", _blob_path(digest))
            self.driver.delete(updir)
        self.link_blob(upload.repository, digest)
        with self._lock:
            self._hashers.pop(f"{upload.repository}/{upload.id}", None)
        return digest

    def cancel_upload(self, upload: Upload) -> None:
        self.driver.delete(self._upload_dir(upload.repository, upload.id))
        with self._lock:
            self._hashers.pop(f"{upload.repository}/{upload.id}", None)

    def uploads(self, name: str) -> list[Upload]:
        out = []
        for upload_id in self.driver.list(f"{self._repo(name)}/_uploads"):
            try:
                out.append(self.get_upload(name, upload_id))
            except RegistryAPIError:
                continue
        return out

    # -- manifests ---------------------------------------------------------------------------
    def put_manifest(
        self,
        name: str,
        data: bytes,
        manifest: Manifest,
        tags: list[str] | None = None,
        algorithm: str = "sha256",
    ) -> str:
        """Store the bytes, then the revision link, then referrer and tag links (in that order)."""
        h = Hasher(algorithm)
        h.update(data)
        digest = h.digest()
        if self.blob_size(digest) != len(data):
            self.driver.put(_blob_path(digest), data)
        self.driver.put(
            self._revision_link(name, digest), f"{digest}\n{manifest.media_type}\n".encode()
        )
        self._media_types[digest] = manifest.media_type
        if manifest.subject is not None:
            self.driver.put(
                f"{self._repo(name)}/_referrers/{_dpath(manifest.subject.digest)}/{_dpath(digest)}/link",
                digest.encode(),
            )
        for tag in tags or []:
            self.driver.put(self._tag_link(name, tag), digest.encode())
        return digest

    def tag(self, name: str, tag: str, digest: str) -> None:
        self.driver.put(self._tag_link(name, tag), digest.encode())

    def resolve_tag(self, name: str, tag: str) -> str | None:
        try:
            digest = self.driver.get(self._tag_link(name, tag)).decode().strip()
        except PathNotFound:
            return None
        return digest if self.revision(name, digest) is not None else None

    def revision(self, name: str, digest: str) -> RevisionInfo | None:
        try:
            raw = self.driver.get(self._revision_link(name, digest)).decode()
        except PathNotFound:
            return None
        parts = raw.split("\n")
        media_type = parts[1] if len(parts) > 1 and parts[1] else ""
        size = self.blob_size(digest)
        if size is None:
            return None
        if not media_type:
            media_type = parse_manifest(self.read_blob(digest)).media_type
        return RevisionInfo(digest, media_type, size)

    def revisions(self, name: str) -> list[str]:
        out = []
        base = f"{self._repo(name)}/_manifests/revisions"
        for alg in self.driver.list(base):
            for hexpart in self.driver.list(f"{base}/{alg}"):
                out.append(f"{alg}:{hexpart}")
        return out

    def delete_manifest(self, name: str, digest: str) -> bool:
        """Remove a revision, every tag that points at it and its referrer entry."""
        if self.driver.stat(self._revision_link(name, digest)) is None:
            return False
        for tag in self.tags(name):
            try:
                if self.driver.get(self._tag_link(name, tag)).decode().strip() == digest:
                    self.driver.delete(f"{self._repo(name)}/_manifests/tags/{tag}")
            except PathNotFound:
                continue
        try:
            manifest = parse_manifest(self.read_blob(digest))
        except (PathNotFound, RegistryAPIError):
            manifest = None
        if manifest is not None and manifest.subject is not None:
            self.driver.delete(
                f"{self._repo(name)}/_referrers/{_dpath(manifest.subject.digest)}/{_dpath(digest)}"
            )
        self.driver.delete(self._revision_link(name, digest).rsplit("/", 1)[0])
        return True

    def delete_tag(self, name: str, tag: str) -> bool:
        if self.driver.stat(self._tag_link(name, tag)) is None:
            return False
        self.driver.delete(f"{self._repo(name)}/_manifests/tags/{tag}")
        return True

    def tags(self, name: str) -> list[str]:
        base = f"{self._repo(name)}/_manifests/tags"
        return sorted(
            t
            for t in self.driver.list(base)
            if self.driver.stat(self._tag_link(name, t)) is not None
        )

    def referrers(self, name: str, subject: str) -> list[str]:
        base = f"{self._repo(name)}/_referrers/{_dpath(subject)}"
        out = []
        for alg in self.driver.list(base):
            for hexpart in self.driver.list(f"{base}/{alg}"):
                digest = f"{alg}:{hexpart}"
                if self.revision(name, digest) is not None:
                    out.append(digest)
        return sorted(out)

    # -- repositories ------------------------------------------------------------------------
    def repository_exists(self, name: str) -> bool:
        base = self._repo(name)
        return any(
            self.driver.exists(f"{base}/{sub}") for sub in ("_manifests", "_layers", "_uploads")
        )

    def repositories(self, with_uploads_only: bool = False) -> list[str]:
        """Repositories holding manifests or blobs (and, if asked, only upload sessions)."""
        markers = {"_manifests", "_layers"} | ({"_uploads"} if with_uploads_only else set())
        names: set[str] = set()
        self._collect("repositories", "", names, markers)
        return sorted(names)

    def _collect(self, path: str, prefix: str, names: set[str], markers: set[str]) -> None:
        for child in self.driver.list(path):
            if child.startswith("_"):
                if child in markers and prefix:
                    names.add(prefix)
                continue
            self._collect(
                f"{path}/{child}", f"{prefix}/{child}" if prefix else child, names, markers
            )

    # -- garbage collection ------------------------------------------------------------------
    def gc(
        self,
        dry_run: bool = False,
        upload_max_age_s: float | None = 7 * 86400,
        grace_s: float | None = None,
    ) -> GCReport:
        """Mark every blob a stored manifest references; sweep the rest.

        Offline on a filesystem root (the CLI holds the root's exclusive lock). With
        ``grace_s`` (S3, replicas running) a blob is swept only if neither its bytes nor any
        repository's link to it changed in the last ``grace_s`` seconds: a push in progress
        writes (or re-links) its blobs before its manifest, so it keeps them.

        Upload sessions started more than ``upload_max_age_s`` ago are removed too (None keeps
        them all), as distribution's upload purging does after a week.
        """
        modified = getattr(self.driver, "modified", None) if grace_s is not None else None
        cutoff = _dt.datetime.now(_dt.UTC).timestamp() - (grace_s or 0.0)

        def recent(path: str) -> bool:
            if modified is None:
                return False
            stamp = modified(path)
            return stamp is not None and stamp > cutoff

        marked: set[str] = set()
        repos = self.repositories()
        for name in repos:
            for digest in self.revisions(name):
                marked.add(digest)
                try:
                    manifest = parse_manifest(self.read_blob(digest))
                except (PathNotFound, RegistryAPIError):
                    continue
                for desc in manifest.blob_references():
                    marked.add(desc.digest)
                for child in manifest.manifests:
                    marked.add(child.digest)
        deleted: list[str] = []
        freed = 0
        for path in list(self.driver.walk("blobs")):
            parts = path.split("/")
            if len(parts) != 5 or parts[4] != "data":
                continue
            digest = f"{parts[1]}:{parts[3]}"
            if digest in marked:
                continue
            if modified is not None and (
                recent(path) or any(recent(self._layer_link(n, digest)) for n in repos)
            ):
                continue  # within the grace period: maybe a push in progress
            deleted.append(digest)
            freed += self.driver.stat(path) or 0
            if not dry_run:
                self.driver.delete(path.rsplit("/", 1)[0])
        links = 0
        gone = set(deleted)
        for name in repos:
            base = f"{self._repo(name)}/_layers"
            for alg in self.driver.list(base):
                for hexpart in self.driver.list(f"{base}/{alg}"):
                    if f"{alg}:{hexpart}" in gone:
                        links += 1
                        if not dry_run:
                            self.driver.delete(f"{base}/{alg}/{hexpart}")
        stale: list[str] = []
        now = _dt.datetime.now(_dt.UTC)
        for name in self.repositories(with_uploads_only=True):
            base = f"{self._repo(name)}/_uploads"
            for upload_id in self.driver.list(base):
                try:
                    up: Upload | None = self.get_upload(name, upload_id)
                except RegistryAPIError:
                    up = None  # no data (a start that failed half-way) or a foreign name
                if up is not None:
                    if upload_max_age_s is None:
                        continue
                    try:
                        started = _dt.datetime.fromisoformat(up.started_at)
                    except ValueError:
                        started = now - _dt.timedelta(seconds=upload_max_age_s + 1)
                    if (now - started).total_seconds() <= upload_max_age_s:
                        continue
                stale.append(f"{name}/{upload_id}")
                if not dry_run:
                    self.driver.delete(f"{base}/{upload_id}")
                    with self._lock:
                        self._hashers.pop(f"{name}/{upload_id}", None)
        return GCReport(len(marked), sorted(deleted), freed, links, dry_run, stale)


class UploadWriter:
    """Appends request bytes to an upload session, hashing as it goes (sha256)."""

    def __init__(self, store: RegistryStore, upload: Upload) -> None:
        self.store = store
        self.upload = upload
        self._hasher: Hasher | None = store._hasher_for(upload, "sha256")
        self._out = store.driver.appender(f"{store._upload_dir(upload.repository, upload.id)}/data")

    def write(self, data: bytes) -> None:
        self._out.write(data)
        if self._hasher is not None:
            self._hasher.update(data)
        self.upload.size = self._out.size

    def close(self) -> None:
        self._out.close()
        if self._hasher is not None and self._hasher.size == self.upload.size:
            self.store._remember_hasher(self.upload, self._hasher)
