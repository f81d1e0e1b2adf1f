"""``copy``: any of skopeo's transports to any other, manifests kept byte for byte.

Transports (skopeo's names and syntax):

* ``docker://[registry/]repo[:tag|@digest]`` -- a registry;
* ``oci:DIR[:TAG]`` -- an OCI image layout;
* ``oci-archive:FILE[:TAG]`` -- a tar of an OCI image layout;
* ``docker-archive:FILE[:REF]`` -- ``docker save``'s tar (read: also the legacy layout);
* ``dir:DIR`` -- skopeo's directory: ``manifest.json``, blobs named by their hex digest,
  ``version``; with ``--all`` the children as ``<hex>.manifest.json``.

How: the image is first made an OCI layout (the destination itself for ``oci:``, the source
itself for ``oci:`` sources, else a private staging directory that is removed afterwards), and
that layout is then written out in the destination's format. Manifests are never rewritten, so
every digest survives -- except through a legacy docker-archive (no manifest inside: one is
made) or into a docker-archive (which records no manifest digest); ``preserve_digests`` refuses
those two. Registry to registry on the same host mounts every blob from the source repository
(no download at all) and falls back to the staged copy when the registry declines a mount.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fleetkit.errors import UsageError
from fleetkit.registry.client.credentials import Credential
from fleetkit.registry.client.errors import DestinationError, VerificationError
from fleetkit.registry.client.events import EventSink, TraceSink
from fleetkit.registry.client.image import Descriptor, Manifest, Platform, select_platform
from fleetkit.registry.client.layout import (
    ArchiveSource,
    ImageSource,
    LayoutSource,
    Location,
    OCILayout,
    TarWriter,
    dest_error,
    open_source,
    write_docker_archive,
)
from fleetkit.registry.client.pull import MAX_INDEX_DEPTH, pull_async
from fleetkit.registry.client.push import push_async
from fleetkit.registry.client.remote import Remote
from fleetkit.registry.client.transport import RetryPolicy, connect
from fleetkit.registry.digest import Hasher, parse_digest
from fleetkit.registry.reference import Reference, familiar_name, parse_reference

__all__ = [
    "TRANSPORTS",
    "CopyResult",
    "ImageName",
    "parse_image_name",
    "copy",
    "copy_async",
    "DirSource",
    "open_image",
    "write_dir",
    "write_oci_archive",
]

TRANSPORTS = ("docker", "oci", "oci-archive", "docker-archive", "dir")
_HINT = (
    "expected docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], "
    "docker-archive:FILE[:REF] or dir:DIR"
)
DIR_VERSION = b"Directory Transport Version: 1.1\n"
_CHUNK = 1 << 20
_STAGE_NAME = "fleetkit-copy"


@dataclass(frozen=True, slots=True)
class ImageName:
    """One side of a copy: a registry reference or a location on disk."""

    transport: str
    reference: Reference | None = None
    location: Location | None = None

    def __str__(self) -> str:
        if self.reference is not None:
            return f"docker://{self.reference}"
        return str(self.location)


def parse_image_name(text: str) -> ImageName:
    """``TRANSPORT:DETAILS`` as skopeo spells it."""
    transport, sep, rest = text.partition(":")
    if not sep or transport not in TRANSPORTS:
        raise UsageError(f"invalid image name {text!r}", hint=_HINT)
    if transport == "docker":
        if not rest.startswith("//") or not rest[2:]:
            raise UsageError(f"invalid image name {text!r}", hint="expected docker://REF")
        return ImageName("docker", reference=parse_reference(rest[2:]))
    if transport == "dir":
        path, name = rest, None
    else:
        path, _, name_part = rest.partition(":")
        name = name_part or None
    if not path:
        raise UsageError(f"invalid image name {text!r}: empty path", hint=_HINT)
    return ImageName(transport, location=Location(transport, Path(path), name))


@dataclass(frozen=True, slots=True)
class CopyResult:
    source: str
    destination: str
    digest: str  # the top manifest or index copied
    media_type: str
    manifests: int
    blobs: int
    mounted: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "digest": self.digest,
            "mediaType": self.media_type,
            "manifests": self.manifests,
            "blobs": self.blobs,
            "mounted": self.mounted,
        }


# -- dir: --------------------------------------------------------------------------------------


def _dir_blob_name(digest: str) -> str:
    d = parse_digest(digest)
    return d.hex if d.algorithm == "sha256" else f"{d.algorithm}-{d.hex}"


class DirSource:
    """skopeo's ``dir:`` layout as an :class:`ImageSource`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.origin: str | None = None
        if not (root / "manifest.json").is_file():
            raise DestinationError(f"{root}: no manifest.json (not a dir: image)")

    def _read(self, name: str) -> bytes:
        try:
            return (self.root / name).read_bytes()
        except OSError as exc:
            raise DestinationError(f"cannot read {self.root / name}: {exc.strerror}") from None

    def top(self) -> Manifest:
        return Manifest.parse(self._read("manifest.json"), "", where=str(self.root))

    def manifest(self, desc: Descriptor) -> Manifest:
        name = f"{_dir_blob_name(desc.digest)}.manifest.json"
        m = Manifest.parse(
            self._read(name),
            desc.media_type,
            where=str(self.root / name),
            algorithm=parse_digest(desc.digest).algorithm,
        )
        if m.digest != desc.digest:
            raise VerificationError(f"{self.root / name}: content does not match its digest")
        return m

    def open_blob(self, digest: str) -> IO[bytes]:
        path = self.root / _dir_blob_name(digest)
        try:
            return path.open("rb")
        except OSError as exc:
            raise DestinationError(
                f"cannot read blob {digest} from {self.root}: {exc.strerror}"
            ) from None

    def close(self) -> None:
        pass


def open_image(name: ImageName) -> ImageSource:
    loc = name.location
    assert loc is not None
    if loc.transport == "dir":
        return DirSource(loc.path)
    if loc.transport == "oci-archive":
        if not loc.path.is_file():
            raise DestinationError(f"{loc.path}: no such file")
        return ArchiveSource(loc.path, loc.name)
    return open_source(loc)


# -- choosing what to copy ---------------------------------------------------------------------


@dataclass
class _Selection:
    top: Manifest  # what the destination names (an index with --all, else one image)
    manifests: list[Manifest]  # every manifest, children before their parents, top last
    blobs: list[Descriptor]


def _select(src: ImageSource, all_platforms: bool, wanted: Platform) -> _Selection:
    top = src.top()
    manifests: list[Manifest] = []
    if top.is_index and all_platforms:
        seen: set[str] = set()

        def walk(index: Manifest, depth: int) -> None:
            if depth > MAX_INDEX_DEPTH:
                raise VerificationError(f"index {top.digest} is nested too deeply")
            for child in index.children():
                if child.digest in seen:
                    continue
                seen.add(child.digest)
                m = src.manifest(child)
                if m.is_index:
                    walk(m, depth + 1)
                manifests.append(m)

        walk(top, 0)
    else:
        for _depth in range(MAX_INDEX_DEPTH + 1):
            if not top.is_index:
                break
            top = src.manifest(select_platform(top, wanted))
        else:
            raise VerificationError("index nested too deeply")
    manifests.append(top)
    blobs: list[Descriptor] = []
    seen_blobs: set[str] = set()
    for m in manifests:
        if m.is_index:
            continue
        for desc in [m.config(), *m.layers()]:
            if desc.digest not in seen_blobs:
                seen_blobs.add(desc.digest)
                blobs.append(desc)
    return _Selection(top, manifests, blobs)


def _copy_blob(src: ImageSource, desc: Descriptor, layout: OCILayout) -> None:
    """Stream one blob into ``layout``, verified; a blob already there is kept."""
    if layout.has_blob(desc):
        return
    final = layout.blob_path(desc.digest)
    h = Hasher(parse_digest(desc.digest).algorithm)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except OSError as exc:
        raise dest_error(exc, final) from None
    try:
        with os.fdopen(fd, "wb") as out, src.open_blob(desc.digest) as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
        if h.digest() != desc.digest or h.size != desc.size:
            raise VerificationError(
                f"blob {desc.digest}: the source's content does not match its digest or size"
            )
        os.replace(tmp, final)
    except OSError as exc:
        raise dest_error(exc, final) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _into_layout(sel: _Selection, src: ImageSource, layout: OCILayout) -> None:
    for desc in sel.blobs:
        _copy_blob(src, desc, layout)
    for m in sel.manifests:
        layout.write_blob(m.digest, m.raw)


# -- writers -----------------------------------------------------------------------------------


def write_dir(dest: Path, layout: OCILayout, sel_top: Manifest, manifests: list[Manifest]) -> None:
    """skopeo's ``dir:``: blobs by hex name, ``manifest.json``, child manifests, ``version``."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for old in dest.iterdir():  # skopeo empties a dir: destination first
            if old.is_file():
                old.unlink()
        for m in manifests:
            if m.is_index:
                continue
            for desc in [m.config(), *m.layers()]:
                target = dest / _dir_blob_name(desc.digest)
                if not target.exists():
                    shutil.copyfile(layout.blob_path(desc.digest), target)
            if m is not sel_top:
                (dest / f"{_dir_blob_name(m.digest)}.manifest.json").write_bytes(m.raw)
        for m in manifests:
            if m.is_index and m is not sel_top:
                (dest / f"{_dir_blob_name(m.digest)}.manifest.json").write_bytes(m.raw)
        (dest / "manifest.json").write_bytes(sel_top.raw)
        (dest / "version").write_bytes(DIR_VERSION)
    except OSError as exc:
        raise dest_error(exc, dest) from None


def write_oci_archive(dest: Path, layout: OCILayout) -> None:
    """A tar of ``layout`` (``oci-layout``, ``index.json``, ``blobs/``), written then renamed."""
    tmp: str | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        try:
            tar = TarWriter(fd)
            tar.file("oci-layout", layout.root / "oci-layout")
            tar.file("index.json", layout.root / "index.json")
            tar.directory("blobs")
            for alg_dir in sorted((layout.root / "blobs").iterdir()):
                if not alg_dir.is_dir():
                    continue
                tar.directory(f"blobs/{alg_dir.name}")
                for blob in sorted(alg_dir.iterdir()):
                    if blob.is_file() and not blob.name.startswith(".") and "." not in blob.name:
                        tar.file(f"blobs/{alg_dir.name}/{blob.name}", blob)
            tar.close()
        finally:
            os.close(fd)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        tmp = None
    except OSError as exc:
        raise dest_error(exc, dest) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def _staging(near: Path | None) -> Iterator[Path]:
    base = near if near is not None and near.is_dir() else None
    root = Path(tempfile.mkdtemp(prefix=".fleetkit-copy-", dir=base))
    try:
        yield root / "layout"
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- the verb ----------------------------------------------------------------------------------


async def copy_async(
    source: str | ImageName,
    destination: str | ImageName,
    *,
    all_platforms: bool = False,
    platform: str | Platform | None = None,
    preserve_digests: bool = False,
    src_tls_verify: bool = True,
    dest_tls_verify: bool = True,
    src_credential: Credential | None = None,
    dest_credential: Credential | None = None,
    config_path: str | Path | None = None,
    retry: RetryPolicy | None = None,
    events: EventSink | None = None,
    trace: TraceSink | None = None,
    notify: Callable[[str], None] | None = None,
) -> CopyResult:
    """Copy one image (or with ``all_platforms`` a whole index) from ``source`` to ``destination``."""
    src = parse_image_name(source) if isinstance(source, str) else source
    dst = parse_image_name(destination) if isinstance(destination, str) else destination
    if all_platforms and platform is not None:
        raise UsageError("--all and --platform are mutually exclusive", hint="use one of them")
    if dst.transport == "docker-archive" and all_platforms:
        raise UsageError(
            "a docker-archive holds one image; --all needs another destination",
            hint="copy to oci:DIR or docker://REF, or choose one image with --platform",
        )
    if preserve_digests and dst.transport == "docker-archive":
        raise UsageError(
            "--preserve-digests: a docker-archive destination records no manifest digest",
            hint="copy to oci:, oci-archive:, dir: or docker:// to keep digests",
        )
    wanted = (
        Platform.parse(platform) if isinstance(platform, str) else (platform or Platform.host())
    )
    common: dict[str, Any] = {
        "config_path": config_path,
        "retry": retry,
        "events": events,
        "trace": trace,
        "notify": notify,
    }
    # registry -> registry on one host: mount every blob, download nothing
    if src.reference is not None and dst.reference is not None:
        mounted = await _mount_copy(
            src.reference,
            dst.reference,
            all_platforms=all_platforms,
            wanted=wanted,
            tls_verify=src_tls_verify and dest_tls_verify,
            credential=dest_credential or src_credential,
            config_path=config_path,
            retry=retry,
            trace=trace,
            notify=notify,
        )
        if mounted is not None:
            return CopyResult(str(src), str(dst), *mounted)
    if preserve_digests and src.transport == "docker-archive" and _legacy(src):
        raise UsageError(
            f"--preserve-digests: {src.location} has no manifest (a legacy docker-archive)",
            hint="copy without --preserve-digests; fleetkit makes a manifest for it",
        )
    near = dst.location.path.parent if dst.location is not None else None
    with _staging(near) as stage:
        layout, name, sel_top, manifests, nblobs = await _materialize(
            src,
            dst,
            stage,
            all_platforms=all_platforms,
            platform=platform,
            wanted=wanted,
            tls_verify=src_tls_verify,
            credential=src_credential,
            common=common,
        )
        if dst.location is not None:
            loc = dst.location
            if dst.transport == "oci":
                if layout.root != loc.path:  # the destination was not the staging layout
                    raise AssertionError("oci: destinations are written in place")
            elif dst.transport == "docker-archive":
                tags = [loc.name] if loc.name else []
                if loc.name and ":" not in loc.name.rpartition("/")[2]:
                    tags = [f"{loc.name}:latest"]
                if not tags and src.reference is not None and src.reference.tag:
                    tags = [familiar_name(src.reference)]
                await asyncio.to_thread(write_docker_archive, loc.path, layout, sel_top, tags)
            elif dst.transport == "oci-archive":
                if layout.root == stage:
                    await asyncio.to_thread(write_oci_archive, loc.path, layout)
                else:  # the source layout: only the chosen image goes into the archive
                    single = OCILayout.create(stage)
                    for m in manifests:
                        single.write_blob(m.digest, m.raw)
                        if not m.is_index:
                            for d in [m.config(), *m.layers()]:
                                _link_or_copy(
                                    layout.blob_path(d.digest), single.blob_path(d.digest)
                                )
                    single.add_manifest(sel_top.descriptor, loc.name)
                    await asyncio.to_thread(write_oci_archive, loc.path, single)
            else:  # dir
                await asyncio.to_thread(write_dir, loc.path, layout, sel_top, manifests)
        else:
            assert dst.reference is not None
            await push_async(
                Location("oci", layout.root, name),
                dst.reference,
                tls_verify=dest_tls_verify,
                credential=dest_credential,
                config_path=config_path,
                retry=retry,
                events=events,
                trace=trace,
                notify=notify,
            )
    return CopyResult(
        str(src), str(dst), sel_top.digest, sel_top.media_type, len(manifests), nblobs
    )


def _legacy(src: ImageName) -> bool:
    assert src.location is not None
    import tarfile

    try:
        with tarfile.open(src.location.path, "r:") as tar:
            names = {m.name.lstrip("./") for m in tar.getmembers()}
    except (OSError, tarfile.TarError):
        return False
    return "index.json" not in names


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


async def _materialize(
    src: ImageName,
    dst: ImageName,
    stage: Path,
    *,
    all_platforms: bool,
    platform: str | Platform | None,
    wanted: Platform,
    tls_verify: bool,
    credential: Credential | None,
    common: dict[str, Any],
) -> tuple[OCILayout, str | None, Manifest, list[Manifest], int]:
    """The image as an OCI layout: (layout, name in it, top manifest, all manifests, #blobs)."""
    in_place = dst.transport == "oci" and dst.location is not None
    if src.reference is not None:
        ref = src.reference
        if in_place:
            assert dst.location is not None
            target = dst.location
        else:
            target = Location("oci", stage, _stage_name(dst))
        result = await pull_async(
            ref,
            target,
            platform=platform,
            all_platforms=all_platforms,
            tls_verify=tls_verify,
            credential=credential,
            **common,
        )
        layout = OCILayout.open(target.path)
        src_img: ImageSource = LayoutSource(layout, None)
        top = src_img.manifest(
            Descriptor(result.media_type, result.digest, 0)  # size unused for reading
        )
        sel = _select_from(src_img, top, all_platforms)
        return layout, target.name or ref.tag, top, sel.manifests, len(sel.blobs)
    source = await asyncio.to_thread(open_image, src)
    try:
        sel = await asyncio.to_thread(_select, source, all_platforms, wanted)
        if (
            src.transport == "oci"
            and not in_place
            and isinstance(source, LayoutSource)
            and dst.transport != "docker"
        ):
            layout = source.layout
            name = src.location.name if src.location else None
            return layout, name, sel.top, sel.manifests, len(sel.blobs)
        if in_place:
            assert dst.location is not None
            layout = OCILayout.create(dst.location.path)
            name = dst.location.name
        else:
            layout = OCILayout.create(stage)
            name = _stage_name(dst)
        await asyncio.to_thread(_into_layout, sel, source, layout)
        layout.add_manifest(sel.top.descriptor, name)
        return layout, name, sel.top, sel.manifests, len(sel.blobs)
    finally:
        source.close()


def _stage_name(dst: ImageName) -> str | None:
    """oci-archive: the staging layout becomes the archive, so it carries the wanted name."""
    if dst.transport == "oci-archive" and dst.location is not None:
        return dst.location.name
    return _STAGE_NAME


def _select_from(src: ImageSource, top: Manifest, all_platforms: bool) -> _Selection:
    class _Fixed:
        origin: str | None = None

        def top(self) -> Manifest:
            return top

        def manifest(self, desc: Descriptor) -> Manifest:
            return src.manifest(desc)

        def open_blob(self, digest: str) -> IO[bytes]:
            return src.open_blob(digest)

        def close(self) -> None:
            pass

    return _select(_Fixed(), all_platforms, Platform.host())


async def _mount_copy(
    src: Reference,
    dst: Reference,
    *,
    all_platforms: bool,
    wanted: Platform,
    tls_verify: bool,
    credential: Credential | None,
    config_path: str | Path | None,
    retry: RetryPolicy | None,
    trace: TraceSink | None,
    notify: Callable[[str], None] | None,
) -> tuple[str, str, int, int, int] | None:
    """Same registry: mount blobs (none when the repository already has them), put manifests;
    None when the registry declines a mount."""
    if src.registry != dst.registry:
        return None
    async with connect(
        dst.registry,
        credential=credential,
        config_path=config_path,
        tls_verify=tls_verify,
        retry=retry,
        trace=trace,
        notify=notify,
    ) as t:
        source, target = Remote(t, src.repository), Remote(t, dst.repository)
        top = await source.get_manifest(src.identifier, expect_digest=src.digest)
        images: list[Manifest] = []
        if top.is_index and all_platforms:
            seen: set[str] = set()

            async def walk(index: Manifest, depth: int) -> None:
                if depth > MAX_INDEX_DEPTH:
                    raise VerificationError(f"index {top.digest} is nested too deeply")
                for child in index.children():
                    if child.digest in seen:
                        continue
                    seen.add(child.digest)
                    m = await source.get_manifest(child.digest, expect_digest=child.digest)
                    if m.is_index:
                        await walk(m, depth + 1)
                    images.append(m)

            await walk(top, 0)
        else:
            for _depth in range(MAX_INDEX_DEPTH + 1):
                if not top.is_index:
                    break
                child = select_platform(top, wanted)
                top = await source.get_manifest(child.digest, expect_digest=child.digest)
        images.append(top)
        blobs: dict[str, Descriptor] = {}
        for m in images:
            if not m.is_index:
                for d in [m.config(), *m.layers()]:
                    blobs.setdefault(d.digest, d)

        mounted = 0
        for desc in blobs.values():
            if await target.blob_exists(desc.digest):
                continue
            if not await target.mount_blob(desc.digest, src.repository):
                return None
            mounted += 1
        for m in images:
            if m is not top:
                await target.put_manifest(m.digest, m)
        await target.put_manifest(dst.digest or dst.tag or "latest", top)
    return top.digest, top.media_type, len(images), len(blobs), mounted


def copy(source: str | ImageName, destination: str | ImageName, **kwargs: Any) -> CopyResult:
    """Synchronous :func:`copy_async`."""
    return asyncio.run(copy_async(source, destination, **kwargs))
