"""Images on disk: OCI image layouts, docker-archive tarballs, and resumable partial blobs.

* ``oci:DIR[:TAG]`` -- an OCI image layout (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``)
  shared by many pulls: a blob already there is not fetched again; ``index.json`` entries are
  named by the ``org.opencontainers.image.ref.name`` annotation and replaced by name.
* ``docker-archive:FILE[:REF]`` -- one tar holding both an OCI layout and docker's
  ``manifest.json`` + ``repositories`` (as ``docker save`` writes since 25.0), so ``docker load``,
  ``podman load`` and OCI tools all read it. Read back for ``fleetkit push``, including the
  legacy layout ``podman save`` writes (``manifest.json`` only).

A blob being downloaded lives in ``blobs/<alg>/<hex>.partial`` next to a small
``<hex>.partial.json`` state file that is also the lock (``flock``); the next attempt or the next
run re-hashes what is there and asks for the rest with ``Range``. A verified blob is renamed into
place, so a file named by its digest is always complete. Every other file is written to a
temporary name and renamed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from fleetkit.errors import UsageError
from fleetkit.registry import mediatypes as mt
from fleetkit.registry.client.errors import DestinationError, VerificationError
from fleetkit.registry.client.image import Descriptor, Manifest
from fleetkit.registry.digest import Hasher, digest_bytes, parse_digest
from fleetkit.registry.errors import DigestInvalid
from fleetkit.registry.reference import parse_reference

__all__ = [
    "Location",
    "parse_location",
    "OCILayout",
    "PartialBlob",
    "ImageSource",
    "open_source",
    "write_docker_archive",
    "LayoutSource",
    "ArchiveSource",
    "TarWriter",
    "dest_error",
    "REF_NAME",
    "CONTAINERD_NAME",
]

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
_LAYOUT_FILE = {"imageLayoutVersion": "1.0.0"}
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Location:
    """``oci:DIR[:TAG]`` or ``docker-archive:FILE[:REF]`` (skopeo's transports)."""

    transport: str  # "oci" | "docker-archive"
    path: Path
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.transport}:{self.path}" + (f":{self.name}" if self.name else "")


def parse_location(text: str) -> Location:
    transport, sep, rest = text.partition(":")
    if not sep or transport not in ("oci", "docker-archive"):
        raise UsageError(
            f"invalid image location {text!r}",
            hint="expected oci:DIR[:TAG] or docker-archive:FILE[:REF]",
        )
    path, _, name = rest.partition(":")
    if not path:
        raise UsageError(
            f"invalid image location {text!r}: empty path",
            hint="expected oci:DIR[:TAG] or docker-archive:FILE[:REF]",
        )
    return Location(transport, Path(path), name or None)


def _dest_error(exc: OSError, what: Path) -> DestinationError:
    reason = exc.strerror or str(exc)
    hint = None
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "choose a destination you can write to"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "free some space and run the same command again: finished layers are kept"
    return DestinationError(f"cannot write {what}: {reason}", hint=hint)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PartialBlob:
    """One blob being written: resumable, verified on the fly, renamed into place when whole."""

    def __init__(self, final: Path, digest: str, size: int) -> None:
        self.final = final
        self.digest = digest
        self.size = size
        self.path = final.with_name(final.name + ".partial")
        self.state = final.with_name(final.name + ".partial.json")
        self.offset = 0
        self.resumed_from = 0
        self._hasher = Hasher(parse_digest(digest).algorithm)
        self._lock_fd: int | None = None
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Lock (blocking); False when the blob is already complete. Re-hashes a partial file."""
        try:
            while True:
                fd = os.open(self.state, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.state).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
            self._lock_fd = fd
            if self.final.exists() and self.final.stat().st_size == self.size:
                self.release(remove_state=True)
                return False
            try:
                state = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:
                state = {}
            if state.get("digest") not in (None, self.digest) or state.get("size") not in (
                None,
                self.size,
            ):
                self.path.unlink(missing_ok=True)
            body = json.dumps({"digest": self.digest, "size": self.size}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, body, 0)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            end = os.lseek(self._fd, 0, os.SEEK_END)
            if end > self.size:
                os.ftruncate(self._fd, 0)
                end = os.lseek(self._fd, 0, os.SEEK_SET)
            if end:
                os.lseek(self._fd, 0, os.SEEK_SET)
                remaining = end
                while remaining:
                    chunk = os.read(self._fd, min(_CHUNK, remaining))
                    if not chunk:
                        break
                    self._hasher.update(chunk)
                    remaining -= len(chunk)
            self.offset = self.resumed_from = end
            return True
        except OSError as exc:
            self.release()
            raise _dest_error(exc, self.path) from None

    def write(self, data: bytes | memoryview) -> None:
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            raise _dest_error(exc, self.path) from None
        self._hasher.update(data)
        self.offset += len(data)

    def write_many(self, chunks: list[bytes]) -> None:
        """Append and hash ``chunks`` in order (each hashed right after its write, in cache)."""
        assert self._fd is not None
        fd, update = self._fd, self._hasher.update
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                update(chunk)
                self.offset += len(chunk)
        except OSError as exc:
            raise _dest_error(exc, self.path) from None

    def restart(self) -> None:
        """The server ignored ``Range``: start from zero."""
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._hasher = Hasher(self._hasher.algorithm)
        self.offset = 0

    def commit(self) -> None:
        """Verify size and digest; rename into place, or delete the partial and raise."""
        actual = self._hasher.digest()
        if self.offset != self.size or actual != self.digest:
            self.discard()
            got = f"{self.offset} bytes" if self.offset != self.size else actual
            raise VerificationError(
                f"blob {self.digest}: downloaded content does not match (got {got}, "
                f"expected {self.size} bytes with that digest); the partial file was deleted",
                hint="the registry served corrupt or different content; report it to its operator",
            )
        try:
            os.replace(self.path, self.final)
        except OSError as exc:
            self.release()
            raise _dest_error(exc, self.final) from None
        self.release(remove_state=True)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.release(remove_state=True)

    def release(self, remove_state: bool = False) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove_state:
            self.state.unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


class OCILayout:
    """An OCI image layout directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def create(cls, root: Path) -> OCILayout:
        layout = cls(root)
        try:
            if root.exists() and not root.is_dir():
                raise DestinationError(f"{root} exists and is not a directory")
            root.mkdir(parents=True, exist_ok=True)
            marker = root / "oci-layout"
            if marker.exists():
                layout._check_marker()
            elif any(p.name not in (".", "..") for p in root.iterdir()):
                if (root / "index.json").exists() or (root / "blobs").exists():
                    # a concurrent pull may have created the layout since the check above: it
                    # writes oci-layout before blobs/ and index.json, so look once more
                    if not marker.exists():
                        raise DestinationError(f"{root}: index.json or blobs/ without oci-layout")
                    layout._check_marker()
                else:
                    _atomic_write(marker, json.dumps(_LAYOUT_FILE).encode())
            else:
                _atomic_write(marker, json.dumps(_LAYOUT_FILE).encode())
            (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            if not (root / "index.json").exists():
                _atomic_write(root / "index.json", _index_bytes([]))
            with tempfile.TemporaryFile(dir=root / "blobs"):
                pass  # the destination is writable (fail now, not after downloading)
        except OSError as exc:
            raise _dest_error(exc, root) from None
        return layout

    @classmethod
    def open(cls, root: Path) -> OCILayout:
        layout = cls(root)
        if not (root / "oci-layout").is_file():
            raise DestinationError(
                f"{root} is not an OCI image layout (no oci-layout file)",
                hint="pull into it first: fleetkit pull IMAGE oci:DIR",
            )
        layout._check_marker()
        return layout

    def _check_marker(self) -> None:
        try:
            doc = json.loads((self.root / "oci-layout").read_bytes())
            ok = isinstance(doc, dict) and doc.get("imageLayoutVersion") == "1.0.0"
        except (OSError, ValueError):
            ok = False
        if not ok:
            raise DestinationError(f"{self.root}/oci-layout: not an OCI image layout version 1.0.0")

    def blob_path(self, digest: str) -> Path:
        d = parse_digest(digest)
        return self.root / "blobs" / d.algorithm / d.hex

    def has_blob(self, desc: Descriptor) -> bool:
        try:
            return self.blob_path(desc.digest).stat().st_size == desc.size
        except OSError:
            return False

    def partial(self, desc: Descriptor) -> PartialBlob:
        path = self.blob_path(desc.digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _dest_error(exc, path.parent) from None
        return PartialBlob(path, desc.digest, desc.size)

    def write_blob(self, digest: str, data: bytes) -> None:
        path = self.blob_path(digest)
        if path.exists() and path.stat().st_size == len(data):
            return
        if digest_bytes(data, parse_digest(digest).algorithm) != digest:
            raise VerificationError(f"blob {digest}: content does not match its digest")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, data)
        except OSError as exc:
            raise _dest_error(exc, path) from None

    def read_blob(self, digest: str, limit: int = 16 * 1024 * 1024) -> bytes:
        path = self.blob_path(digest)
        try:
            with path.open("rb") as fh:
                data = fh.read(limit + 1)
        except OSError as exc:
            raise DestinationError(f"cannot read {path}: {exc.strerror}") from None
        if len(data) > limit:
            raise DestinationError(f"{path}: too large to be a manifest or config")
        return data

    def read_index(self) -> dict[str, Any]:
        path = self.root / "index.json"
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return json.loads(_index_bytes([]))  # type: ignore[no-any-return]
        except (OSError, ValueError) as exc:
            raise DestinationError(f"{path}: unreadable or invalid JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise DestinationError(f"{path}: not an OCI image index")
        entries = doc.get("manifests", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise DestinationError(f"{path}: not an OCI image index")
        return doc

    @contextlib.contextmanager
    def _index_lock(self) -> Iterator[None]:
        fd = os.open(self.root / ".index.json.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def add_manifest(
        self, desc: Descriptor, name: str | None, full_name: str | None = None
    ) -> None:
        """Record ``desc`` in index.json, replacing an entry with the same ref name."""
        entry = desc.to_json()
        entry.pop("platform", None) if desc.platform is None else None
        annotations = dict(entry.get("annotations") or {})
        if name:
            annotations[REF_NAME] = name
        if full_name:
            annotations[CONTAINERD_NAME] = full_name
        if annotations:
            entry["annotations"] = annotations
        try:
            with self._index_lock():
                doc = self.read_index()
                kept = []
                for old in doc.get("manifests", []):
                    old_name = (
                        (old.get("annotations") or {}).get(REF_NAME)
                        if isinstance(old, dict)
                        else None
                    )
                    if name and old_name == name:
                        continue
                    if not name and not old_name and old.get("digest") == desc.digest:
                        continue
                    kept.append(old)
                kept.append(entry)
                doc["manifests"] = kept
                doc.setdefault("schemaVersion", 2)
                doc.setdefault("mediaType", mt.OCI_INDEX)
                _atomic_write(self.root / "index.json", json.dumps(doc, indent=None).encode())
        except OSError as exc:
            raise _dest_error(exc, self.root / "index.json") from None

    def resolve(self, name: str | None) -> Descriptor:
        """The index entry named ``name`` (or the only entry when ``name`` is None)."""
        entries = self.read_index().get("manifests", [])
        if name is None:
            if len(entries) != 1:
                names = [str((e.get("annotations") or {}).get(REF_NAME)) for e in entries]
                raise DestinationError(
                    f"{self.root} holds {len(entries)} images; name one",
                    hint=f"use oci:{self.root}:TAG with TAG one of: {', '.join(names) or 'none'}",
                )
            return Descriptor.from_json(entries[0], f"{self.root}/index.json")
        for e in entries:
            if isinstance(e, dict) and (e.get("annotations") or {}).get(REF_NAME) == name:
                return Descriptor.from_json(e, f"{self.root}/index.json")
        raise DestinationError(f"{self.root}: no image named {name!r} in index.json")


def _index_bytes(manifests: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests}
    ).encode()


# -- docker-archive ----------------------------------------------------------------------------


class _TarWriter:
    """A pax tar written by hand so blob bodies go through ``os.sendfile``.

    ``tarfile`` copies file bodies through Python in 16 KiB pieces; here the kernel copies them
    from the staging layout into the archive.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def _header(self, name: str, size: int, directory: bool = False) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o755 if directory else 0o644
        if directory:
            info.type = tarfile.DIRTYPE
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def _pad(self, size: int) -> None:
        if size % tarfile.BLOCKSIZE:
            self._write(b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE))

    def directory(self, name: str) -> None:
        self._header(name, 0, directory=True)

    def data(self, name: str, data: bytes) -> None:
        self._header(name, len(data))
        self._write(data)
        self._pad(len(data))

    def file(self, name: str, path: Path) -> None:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            self._header(name, size)
            offset = 0
            while offset < size:
                sent = os.sendfile(self.fd, fh.fileno(), offset, min(size - offset, 1 << 30))
                if sent == 0:
                    raise OSError(errno.EIO, f"{path} shrank while being archived")
                offset += sent
        self._pad(size)

    def close(self) -> None:
        self._write(b"\0" * (2 * tarfile.BLOCKSIZE))


def _blob_name(digest: str) -> str:
    d = parse_digest(digest)
    return f"blobs/{d.algorithm}/{d.hex}"


def write_docker_archive(
    dest: Path, layout: OCILayout, manifest: Manifest, repo_tags: list[str]
) -> None:
    """Write ``dest`` (temp file + rename): OCI layout + ``manifest.json`` + ``repositories``."""
    config = manifest.config()
    layers = manifest.layers()
    tmp: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            tar = _TarWriter(fd)
            tar.directory("blobs")
            algorithms = sorted(
                {parse_digest(d.digest).algorithm for d in [config, *layers]} | {"sha256"}
            )
            for alg in algorithms:
                tar.directory(f"blobs/{alg}")
            seen: set[str] = set()
            for desc in [*layers, config]:
                if desc.digest not in seen:
                    seen.add(desc.digest)
                    tar.file(_blob_name(desc.digest), layout.blob_path(desc.digest))
            tar.data(_blob_name(manifest.digest), manifest.raw)
            annotations: dict[str, str] = {}
            if repo_tags:
                # containerd's name is fully qualified (docker.io/library/nginx:latest)
                try:
                    annotations[CONTAINERD_NAME] = str(parse_reference(repo_tags[0]))
                except UsageError:
                    annotations[CONTAINERD_NAME] = repo_tags[0]
                annotations[REF_NAME] = repo_tags[0].rpartition(":")[2]
            entry: dict[str, Any] = manifest.descriptor.to_json()
            if annotations:
                entry["annotations"] = annotations
            tar.data("index.json", _index_bytes([entry]))
            docker_manifest = [
                {
                    "Config": _blob_name(config.digest),
                    "RepoTags": repo_tags,
                    "Layers": [_blob_name(d.digest) for d in layers],
                }
            ]
            tar.data("manifest.json", json.dumps(docker_manifest).encode())
            tar.data("oci-layout", json.dumps(_LAYOUT_FILE).encode())
            repositories: dict[str, dict[str, str]] = {}
            top = parse_digest(layers[-1].digest).hex if layers else ""
            for tag in repo_tags:
                repo, _, t = tag.rpartition(":")
                repositories.setdefault(repo, {})[t] = top
            tar.data("repositories", json.dumps(repositories).encode())
            tar.close()
        finally:
            os.close(fd)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        tmp = None
    except OSError as exc:
        raise _dest_error(exc, dest) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


# -- sources for push --------------------------------------------------------------------------


class ImageSource(Protocol):
    origin: str | None  # the image name the top entry was pulled as (io.containerd.image.name)

    def top(self) -> Manifest: ...

    def manifest(self, desc: Descriptor) -> Manifest: ...

    def open_blob(self, digest: str) -> IO[bytes]: ...

    def close(self) -> None: ...


class _LayoutSource:
    def __init__(self, layout: OCILayout, name: str | None) -> None:
        self.layout = layout
        self.name = name
        self.origin: str | None = None

    def top(self) -> Manifest:
        desc = self.layout.resolve(self.name)
        origin = (desc.doc.get("annotations") or {}).get(CONTAINERD_NAME)
        self.origin = origin if isinstance(origin, str) else None
        return self.manifest(desc)

    def manifest(self, desc: Descriptor) -> Manifest:
        raw = self.layout.read_blob(desc.digest)
        algorithm = parse_digest(desc.digest).algorithm
        m = Manifest.parse(
            raw, desc.media_type, where=str(self.layout.blob_path(desc.digest)), algorithm=algorithm
        )
        if m.digest != desc.digest:
            raise VerificationError(
                f"{self.layout.blob_path(desc.digest)}: content does not match its digest"
            )
        return m

    def open_blob(self, digest: str) -> IO[bytes]:
        path = self.layout.blob_path(digest)
        try:
            return path.open("rb")
        except OSError as exc:
            raise DestinationError(
                f"cannot read blob {digest} from {self.layout.root}: {exc.strerror}"
            ) from None

    def close(self) -> None:
        pass


class _ArchiveSource:
    """A docker-archive: its OCI part when present, else the legacy ``manifest.json``.

    Every member is untrusted input: a missing member, a truncated tar or a ``manifest.json``
    / ``index.json`` of the wrong shape is a :class:`DestinationError` naming the archive.
    """

    def __init__(self, path: Path, name: str | None) -> None:
        self.path = path
        self.name = name
        try:
            self.tar = tarfile.open(path, "r:")
            members = self.tar.getmembers()
        except (OSError, EOFError, tarfile.TarError) as exc:
            raise DestinationError(f"{path}: cannot read the archive ({exc})") from None
        self.members = {m.name.lstrip("./"): m for m in members if m.isfile()}
        self.synthetic: dict[str, bytes] = {}
        self.by_digest: dict[str, str] = {}
        self.origin: str | None = None

    def _member(self, name: str) -> IO[bytes]:
        member = self.members.get(name)
        try:
            fh = self.tar.extractfile(member) if member else None
        except (OSError, EOFError, tarfile.TarError) as exc:
            raise DestinationError(f"{self.path}: cannot read {name} ({exc})") from None
        if fh is None:
            raise DestinationError(f"{self.path}: no {name} in the archive")
        return fh

    def _read(self, name: str, limit: int = 16 * 1024 * 1024) -> bytes:
        fh = self._member(name)
        try:
            return fh.read(limit)
        except (OSError, EOFError, tarfile.TarError) as exc:
            raise DestinationError(f"{self.path}: cannot read {name} ({exc})") from None

    def _json(self, name: str) -> Any:
        try:
            return json.loads(self._read(name))
        except ValueError:
            raise DestinationError(f"{self.path}: {name} is not valid JSON") from None

    def top(self) -> Manifest:
        if "index.json" in self.members and "oci-layout" in self.members:
            doc = self._json("index.json")
            entries = doc.get("manifests") if isinstance(doc, dict) else None
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise DestinationError(
                    f"{self.path}: index.json is not an OCI image index",
                    hint='expected {"manifests": [descriptor, ...]}',
                )
            chosen = entries[0] if entries else None
            if self.name:
                for e in entries:
                    ann = e.get("annotations")
                    ann = ann if isinstance(ann, dict) else {}
                    if self.name in (ann.get(CONTAINERD_NAME), ann.get(REF_NAME)):
                        chosen = e
            if chosen is None:
                raise DestinationError(f"{self.path}: index.json lists no image")
            annotations = chosen.get("annotations")
            origin = annotations.get(CONTAINERD_NAME) if isinstance(annotations, dict) else None
            self.origin = origin if isinstance(origin, str) else None
            try:
                desc = Descriptor.from_json(chosen, f"{self.path}:index.json")
            except VerificationError as exc:
                raise DestinationError(exc.message) from None
            return self.manifest(desc)
        return self._legacy()

    def _legacy(self) -> Manifest:
        doc = self._json("manifest.json")
        try:
            item = doc[0]
            if self.name:
                item = next((i for i in doc if self.name in (i.get("RepoTags") or [])), item)
            config_name, layer_names = item["Config"], list(item["Layers"])
            if not isinstance(config_name, str) or not all(isinstance(n, str) for n in layer_names):
                raise TypeError
        except (KeyError, IndexError, TypeError, AttributeError):
            raise DestinationError(
                f"{self.path}: not a docker-archive (bad manifest.json)",
                hint='expected [{"Config": FILE, "RepoTags": [...], "Layers": [FILE, ...]}]',
            ) from None
        config = self._read(config_name)
        config_digest = digest_bytes(config)
        self.synthetic[config_digest] = config
        layers = []
        for name in layer_names:
            h = Hasher()
            fh = self._member(name)
            try:
                head = fh.read(2)
                h.update(head)
                while chunk := fh.read(_CHUNK):
                    h.update(chunk)
            except (OSError, EOFError, tarfile.TarError) as exc:
                raise DestinationError(f"{self.path}: cannot read {name} ({exc})") from None
            self.by_digest[h.digest()] = name
            media = (
                mt.DOCKER_LAYER_GZIP
                if head == b"\x1f\x8b"
                else "application/vnd.docker.image.rootfs.diff.tar"
            )
            layers.append({"mediaType": media, "size": h.size, "digest": h.digest()})
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": {"mediaType": mt.DOCKER_CONFIG, "size": len(config), "digest": config_digest},
            "layers": layers,
        }
        raw = json.dumps(manifest, indent=3).encode()
        return Manifest.parse(raw, mt.DOCKER_MANIFEST, where=str(self.path))

    def manifest(self, desc: Descriptor) -> Manifest:
        try:
            name = _blob_name(desc.digest)
        except DigestInvalid:
            raise DestinationError(f"{self.path}: invalid digest {desc.digest!r}") from None
        raw = self._read(name)
        m = Manifest.parse(
            raw,
            desc.media_type,
            where=f"{self.path}:{desc.digest}",
            algorithm=parse_digest(desc.digest).algorithm,
        )
        if m.digest != desc.digest:
            raise VerificationError(
                f"{self.path}: manifest {desc.digest} does not match its digest"
            )
        return m

    def open_blob(self, digest: str) -> IO[bytes]:
        if digest in self.synthetic:
            return io.BytesIO(self.synthetic[digest])
        name = self.by_digest.get(digest) or _blob_name(digest)
        if name not in self.members:
            raise DestinationError(f"{self.path}: blob {digest} is missing from the archive")
        return self._member(name)

    def close(self) -> None:
        self.tar.close()


# used by copy (other transports on top of the same readers and writer)
LayoutSource = _LayoutSource
ArchiveSource = _ArchiveSource
TarWriter = _TarWriter
dest_error = _dest_error


def open_source(location: Location) -> ImageSource:
    if location.transport == "oci":
        return _LayoutSource(OCILayout.open(location.path), location.name)
    if not location.path.is_file():
        raise DestinationError(f"{location.path}: no such file")
    return _ArchiveSource(location.path, location.name)
