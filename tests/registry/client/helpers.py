"""Test helpers: real registries on 127.0.0.1, image builders, a token service, a fault proxy."""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import signal
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- images -----------------------------------------------------------------------------------


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def random_layer(size: int, seed: int) -> tuple[bytes, str]:
    """A gzip-compressed tar with ``size`` random bytes; returns (blob, diff_id)."""
    rnd = random.Random(seed)
    tar = layer_tar({f"data-{seed}.bin": rnd.randbytes(size)})
    return gzip.compress(tar, compresslevel=1, mtime=0), sha256(tar)


@dataclass
class BuiltImage:
    manifest: bytes
    config: bytes
    layers: list[bytes]
    media_type: str = OCI_MANIFEST
    platform: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def build_image(
    layer_sizes: list[int],
    seed: int = 0,
    os_name: str = "linux",
    arch: str = "amd64",
    variant: str = "",
) -> BuiltImage:
    layers, diff_ids = [], []
    for i, size in enumerate(layer_sizes):
        blob, diff = random_layer(size, seed * 100 + i)
        layers.append(blob)
        diff_ids.append(diff)
    cfg: dict[str, Any] = {
        "architecture": arch,
        "os": os_name,
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
    }
    if variant:
        cfg["variant"] = variant
    config = json.dumps(cfg, sort_keys=True).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER_GZIP, "digest": sha256(b), "size": len(b)} for b in layers
            ],
        },
        indent=2,
    ).encode()
    plat = {"os": os_name, "architecture": arch}
    if variant:
        plat["variant"] = variant
    return BuiltImage(manifest, config, layers, platform=plat)


def write_layout(root: Path, images: list[BuiltImage], tag: str, as_index: bool = False) -> str:
    """Write an OCI layout (by hand, independent of fleetkit); returns the tagged digest."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def put(data: bytes) -> str:
        d = sha256(data)
        (blobs / d.split(":")[1]).write_bytes(data)
        return d

    for img in images:
        put(img.config)
        for b in img.layers:
            put(b)
        put(img.manifest)
    if as_index:
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": i.digest,
                        "size": len(i.manifest),
                        "platform": i.platform,
                    }
                    for i in images
                ],
            }
        ).encode()
        top = {"mediaType": OCI_INDEX, "digest": put(index), "size": len(index)}
    else:
        top = {
            "mediaType": OCI_MANIFEST,
            "digest": images[0].digest,
            "size": len(images[0].manifest),
        }
    top["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (root / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top]})
    )
    return str(top["digest"])


def skopeo_push(
    layout: Path, tag: str, dest: str, *, all_: bool = False, creds: str | None = None
) -> None:
    cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
    if all_:
        cmd.append("--all")
    if creds:
        cmd += ["--dest-creds", creds]
    cmd += [f"oci:{layout}:{tag}", f"docker://{dest}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# -- docker-registry (distribution 2.8) -------------------------------------------------------


@dataclass
class Registry:
    host: str
    proc: subprocess.Popen[bytes]
    root: Path

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_docker_registry(root: Path, auth: dict[str, Any] | None = None) -> Registry:
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        port = free_port()
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(root / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": f"127.0.0.1:{port}", "secret": "fleetkit-test-secret"},
        }
        if auth:
            config["auth"] = auth
        cfg = root / "config.yml"
        cfg.write_text(json.dumps(config))  # JSON is YAML
        log = (root / "registry.log").open("wb")
        proc = subprocess.Popen(
            ["/usr/bin/docker-registry", "serve", str(cfg)], stdout=log, stderr=subprocess.STDOUT
        )
        reg = Registry(f"127.0.0.1:{port}", proc, root)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                urllib.request.urlopen(reg.url("/v2/"), timeout=2)
                return reg
            except urllib.error.HTTPError:
                return reg  # 401: up, wants auth
            except OSError:
                time.sleep(0.05)
        reg.stop()
    raise AssertionError(
        f"docker-registry did not start: {(root / 'registry.log').read_text()[-2000:]}"
    )


def htpasswd_line(user: str, password: str) -> str:
    import bcrypt

    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@contextlib.contextmanager
def env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- fleetkit's own server (issue 2) ----------------------------------------------------------


@dataclass
class FleetkitServer:
    host: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_fleetkit(workdir: Path, command: str, *args: str) -> FleetkitServer:
    """``fleetkit registry serve|token-server ... --listen 127.0.0.1:0`` until its ready file."""
    import sys

    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / f"{command}.ready"
    log = workdir / f"{command}.log"
    cmd = [
        sys.executable,
        "-m",
        "fleetkit",
        "registry",
        command,
        "--listen",
        "127.0.0.1:0",
        "--ready-file",
        str(ready),
        "-q",
        *args,
    ]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=workdir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ready.exists() and ready.read_text().strip():
            url = ready.read_text().strip()
            return FleetkitServer(url.split("://", 1)[1].rstrip("/"), proc, log)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=10)
    raise AssertionError(f"fleetkit registry {command} did not start: {log.read_text()[-2000:]}")
