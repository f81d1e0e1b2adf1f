"""Registries for tests: in a thread (fast, any driver) or as a subprocess (faults, peers)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fleetkit.registry.server.app import ServerConfig, State, build_state, create_app, serve

REPO = Path(__file__).resolve().parents[2]


class ThreadServer:
    """``serve()`` on its own event loop in a daemon thread; ``url`` once ready."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.url = ""
        self.state: State = build_state(config)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def ready(url: str) -> None:
                self.url = url
                self._ready.set()

            await serve(
                self.config, lambda c: create_app(c, self.state), stop=self._stop, on_ready=ready
            )

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    def start(self) -> ThreadServer:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"server did not start: {self._error!r}")
        return self

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@contextmanager
def thread_server(**kwargs: object) -> Iterator[ThreadServer]:
    kwargs.setdefault("listen", "127.0.0.1:0")
    server = ThreadServer(ServerConfig(**kwargs)).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


class ProcessServer:
    """``fleetkit registry serve|token-server`` as a child process, stopped by its PID."""

    def __init__(self, tmp: Path, *args: str, command: str = "serve") -> None:
        self.tmp = tmp
        self.args = list(args)
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log = tmp / f"server-{os.getpid()}-{time.monotonic_ns()}.log"

    def start(self, timeout_s: float = 30.0) -> ProcessServer:
        ready = self.tmp / f"ready-{time.monotonic_ns()}"
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        self._logf = open(self.log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fleetkit",
                "registry",
                self.command,
                *self.args,
                "--ready-file",
                str(ready),
            ],
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready.exists():
                self.url = ready.read_text().strip()
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._logf.close()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._logf.close()
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def process_server(tmp: Path, *args: str, command: str = "serve") -> Iterator[ProcessServer]:
    server = ProcessServer(tmp, *args, command=command).start()
    try:
        yield server
    finally:
        server.stop()


def make_tls_cert(directory: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1/localhost; returns (cert, key) paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)
