"""The controller's side of the module agent (``_module_agent.py``): one agent process per
(host, become user) over the host's connection, or for local hosts one per (interpreter, become
user) shared by every local host. Module payloads are shipped once per agent as
content-addressed blobs; runs are multiplexed over the agent's pipes by request id."""

from __future__ import annotations

import atexit
import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fleetkit.playbook.connection import (
    Become,
    BecomeFailed,
    Connection,
    Unreachable,
    _module_agent,
)
from fleetkit.playbook.connection.local import become_failure, become_prefix, become_stdin

__all__ = [
    "AgentSession",
    "AgentStartError",
    "ModuleOutput",
    "session_for",
    "close_local_agents",
    "agent_source",
]

_SOURCE = Path(_module_agent.__file__).read_text()
_PUT_CHUNK_BYTES = 4 << 20
_HELLO_TIMEOUT_S = 60.0


class AgentStartError(OSError):
    """The host answered but its interpreter could not start the agent (python missing...)."""

    def __init__(self, message: str, stderr: str, rc: int | None) -> None:
        super().__init__(message)
        self.stderr = stderr
        self.rc = rc


@dataclass(frozen=True, slots=True)
class ModuleOutput:
    """What one module run printed and how it exited."""

    rc: int
    stdout: bytes
    stderr: bytes


class AgentSession:
    """One running module agent: ships payloads once and runs modules, several at a time."""

    def __init__(self, proc: subprocess.Popen[bytes], errfile: IO[bytes], label: str) -> None:
        self.proc = proc
        self.label = label
        self._errfile = errfile
        self._wlock = threading.Lock()
        self._plock = threading.Lock()
        self._next = 0
        self._waiting: dict[int, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._bundles: set[str] = set()
        self._bundle_locks: dict[str, threading.Lock] = {}
        self._dead: str | None = None
        self.hello = self._read_hello()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    def _stderr_text(self) -> str:
        try:
            self._errfile.seek(0)
            return self._errfile.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""

    def _read_hello(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + _HELLO_TIMEOUT_S
        line = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line or line.startswith(b"FKMOD 1 "):
                break
        if not line.startswith(b"FKMOD 1 "):
            self.proc.wait(timeout=10)
            err = self._stderr_text()
            if self.proc.returncode == 255:
                raise Unreachable(f"Failed to connect to the host via ssh: {err}")
            raise AgentStartError(
                f"module agent on {self.label} did not start", err, self.proc.returncode
            )
        hello: dict[str, Any] = json.loads(line[8:])
        return hello

    def _read_loop(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                resp = json.loads(line)
            except ValueError:
                continue
            with self._plock:
                slot = self._waiting.pop(int(resp.get("id", -1)), None)
            if slot is not None:
                slot[1].append(resp)
                slot[0].set()
        err = self._stderr_text()
        with self._plock:
            self._dead = err or "the module agent exited"
            waiting, self._waiting = self._waiting, {}
        for event, _box in waiting.values():
            event.set()

    def call(self, req: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        """Send one request and wait for its response."""
        event = threading.Event()
        box: list[dict[str, Any]] = []
        with self._plock:
            if self._dead is not None:
                raise Unreachable(f"module agent on {self.label} is gone: {self._dead}")
            self._next += 1
            rid = self._next
            self._waiting[rid] = (event, box)
        data = json.dumps({**req, "id": rid}).encode() + b"\n"
        assert self.proc.stdin is not None
        try:
            with self._wlock:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise Unreachable(f"module agent on {self.label} is gone: {exc}") from None
        if not event.wait(timeout_s):
            with self._plock:
                self._waiting.pop(rid, None)
            raise TimeoutError
        if not box:
            raise Unreachable(f"module agent on {self.label} is gone: {self._dead}")
        resp = box[0]
        if "error" in resp:
            raise OSError(f"module agent on {self.label}: {resp['error']}")
        return resp

    def ensure(
        self, bundle: str, files: tuple[tuple[str, str], ...], blobs: dict[str, bytes]
    ) -> None:
        """Make a payload present on the host (shipping only the blobs it lacks)."""
        if bundle in self._bundles:
            return
        with self._plock:
            lock = self._bundle_locks.setdefault(bundle, threading.Lock())
        with lock:
            if bundle in self._bundles:
                return
            req = {"op": "have", "bundle": bundle, "files": [list(f) for f in files]}
            missing = self.call(req).get("missing") or []
            if missing:
                chunk: dict[str, str] = {}
                size = 0
                for sha in missing:
                    chunk[sha] = base64.b64encode(blobs[sha]).decode()
                    size += len(chunk[sha])
                    if size >= _PUT_CHUNK_BYTES:
                        self.call({"op": "put", "blobs": chunk})
                        chunk, size = {}, 0
                if chunk:
                    self.call({"op": "put", "blobs": chunk})
                if self.call(req).get("missing"):
                    raise OSError(f"module agent on {self.label}: payload {bundle} incomplete")
            self._bundles.add(bundle)

    def run(self, req: dict[str, Any], timeout_s: float | None = None) -> ModuleOutput:
        """Run one module (``op: run`` fields) and return what it printed."""
        resp = self.call({**req, "op": "run"}, timeout_s)
        return ModuleOutput(
            int(resp["rc"]), base64.b64decode(resp["out"]), base64.b64decode(resp["err"])
        )

    def mktemp(self, remote_tmp: str) -> str:
        """Create a fresh ``ansible-tmp-*`` directory under the remote tmp; return its path."""
        return str(self.call({"op": "mktemp", "remote_tmp": remote_tmp})["path"])

    def write(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Write a file on the host as the agent's user."""
        self.call(
            {"op": "write", "path": path, "data": base64.b64encode(data).decode(), "mode": mode}
        )

    def rmtree(self, path: str) -> None:
        """Remove a directory tree on the host."""
        self.call({"op": "rmtree", "path": path})

    @property
    def alive(self) -> bool:
        """True while the agent process runs."""
        return self._dead is None and self.proc.poll() is None

    def close(self) -> None:
        """Stop the agent (it exits when its stdin closes and its runs finished)."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self._errfile.close()


def _become_key(become: Become | None) -> tuple[str, str] | None:
    return None if become is None else (become.method, become.user)


def _needs_become(conn: Connection, become: Become | None) -> bool:
    if become is None:
        return False
    if conn.local:
        return not (os.geteuid() == 0 and become.user == "root")
    user = getattr(conn, "user", None)
    return user not in (None, "root") or become.user != "root"


def _spawn(conn: Connection, python: str, become: Become | None, remote_tmp: str) -> AgentSession:
    argv = [python, "-c", _SOURCE, remote_tmp]
    escalate = _needs_become(conn, become)
    if escalate:
        argv = become_prefix(become, python) + argv
    errfile = tempfile.TemporaryFile()
    spawn = getattr(conn, "spawn", None)
    if conn.local:
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errfile
            )
        except FileNotFoundError as exc:
            errfile.close()
            missing = exc.filename or argv[0]
            raise AgentStartError(
                f"module agent on {conn.name} did not start",
                f"/bin/sh: 1: {missing}: not found",
                127,
            ) from None
    elif spawn is not None:
        proc = spawn(argv, stderr=errfile)
    else:
        raise Unreachable(f"the connection to {conn.name} cannot start a module agent")
    password = become_stdin(become, None) if escalate else None
    if password and proc.stdin is not None:
        try:
            proc.stdin.write(password)
            proc.stdin.flush()
        except OSError:
            pass  # the agent's own error (or ssh's) tells what happened
    try:
        return AgentSession(proc, errfile, conn.name)
    except AgentStartError as exc:
        refused = become_failure(become, exc.rc or 0, exc.stderr) if escalate else None
        if refused:
            raise BecomeFailed(refused) from None
        raise


_local_lock = threading.Lock()
_local: dict[tuple[Any, ...], AgentSession] = {}
_remote_lock = threading.Lock()
_remote: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], AgentSession]] = (
    weakref.WeakKeyDictionary()
)


def session_for(
    conn: Connection, python: str, become: Become | None, remote_tmp: str = "~/.ansible/tmp"
) -> AgentSession:
    """The module agent for a host and become user, started on first use."""
    key = (python, _become_key(become) if _needs_become(conn, become) else None, remote_tmp)
    if conn.local:
        with _local_lock:
            sess = _local.get(key)
            if sess is None or not sess.alive:
                sess = _spawn(conn, python, become, remote_tmp)
                _local[key] = sess
            return sess
    with _remote_lock:
        table = _remote.setdefault(conn, {})
        sess = table.get(key)
        if sess is None or not sess.alive:
            sess = _spawn(conn, python, become, remote_tmp)
            table[key] = sess
        return sess


def close_remote_agents(conn: Connection) -> None:
    """Stop the module agents started over one connection."""
    with _remote_lock:
        table = _remote.pop(conn, {})
    for sess in table.values():
        sess.close()


def close_local_agents() -> None:
    """Stop every local module agent of this process."""
    with _local_lock:
        sessions = list(_local.values())
        _local.clear()
    for sess in sessions:
        sess.close()


atexit.register(close_local_agents)


def agent_source() -> str:
    """The module agent's source (what runs on the host)."""
    return _SOURCE


def default_python(conn: Connection) -> str:
    """The interpreter for a host's agent when the inventory names none."""
    return sys.executable if conn.local else "python3"
