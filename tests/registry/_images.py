"""Build small images on disk for interop tests: OCI layouts and docker-archive tarballs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Image:
    config: bytes
    layers: list[bytes]  # gzip-compressed tars
    diff_ids: list[str]
    manifest: bytes

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    def blobs(self) -> dict[str, bytes]:
        out = {sha256(self.config): self.config}
        for layer in self.layers:
            out[sha256(layer)] = layer
        return out


def make_image(seed: int = 0, layer_sizes: tuple[int, ...] = (1024, 2048)) -> Image:
    """An OCI image whose layers hold ``size`` random bytes each (seeded, reproducible)."""
    import random

    rng = random.Random(seed)
    layers, diff_ids = [], []
    for i, size in enumerate(layer_sizes):
        tar = layer_tar({f"layer{i}/data.bin": rng.randbytes(size), f"seed{seed}-{i}": b"x"})
        diff_ids.append(sha256(tar))
        layers.append(gzip.compress(tar, compresslevel=1, mtime=0))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/true"], "Labels": {"seed": str(seed)}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"fleetkit test layer {i}"} for i in range(len(layers))],
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER_GZIP, "digest": sha256(layer), "size": len(layer)}
                for layer in layers
            ],
        },
        sort_keys=True,
    ).encode()
    return Image(config, layers, diff_ids, manifest)


def write_oci_layout(image: Image, path: str, tag: str = "latest") -> str:
    """Write ``image`` as an OCI layout at ``path``; return ``oci:PATH:TAG``."""
    os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
    for digest, data in {**image.blobs(), image.digest: image.manifest}.items():
        with open(os.path.join(path, "blobs", "sha256", digest.split(":")[1]), "wb") as f:
            f.write(data)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": image.digest,
                "size": len(image.manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump(index, f)
    return f"oci:{path}:{tag}"
