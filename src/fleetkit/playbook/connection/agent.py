"""The controller's side of the module agent (``_module_agent.py``): one agent process per
(host, become user) over the host's connection, or for local hosts one per (interpreter, become
user) shared by every local host. Module payloads are shipped once per agent as
content-addressed blobs; runs are multiplexed over the agent's pipes by request id."""

from __future__ import annotations

import atexit
import base64
import fcntl
import getpass
import json
import os
import pty
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fleetkit.playbook.connection import (
    Become,
    CommandResult,
    Connection,
    Unreachable,
    _module_agent,
    wait_exit,
)
from fleetkit.playbook.connection.become import Escalation

__all__ = [
    "AgentSession",
    "AgentStartError",
    "ModuleOutput",
    "session_for",
    "close_local_agents",
    "agent_source",
    "run_escalated",
    "login_user",
    "needs_become",
]

_SOURCE = Path(_module_agent.__file__).read_text()
_PUT_CHUNK_BYTES = 4 << 20
_HELLO_TIMEOUT_S = 60.0
# ansible's local connection: become_success_timeout's default
_LOCAL_BECOME_TIMEOUT_S = 10.0


class AgentStartError(OSError):
    """The host answered but its interpreter could not start the agent (python missing...)."""

    def __init__(self, message: str, stderr: str, rc: int | None, stdout: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr
        self.stdout = stdout
        self.rc = rc


class AgentGone(Unreachable):
    """The module agent exited; ``delivered`` says whether the request had reached it."""

    def __init__(self, message: str, delivered: bool) -> None:
        super().__init__(message)
        self.delivered = delivered


@dataclass(frozen=True, slots=True)
class ModuleOutput:
    """What one module run printed and how it exited."""

    rc: int
    stdout: bytes
    stderr: bytes


class AgentSession:
    """One running module agent: ships payloads once and runs modules, several at a time."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        errfile: IO[bytes],
        label: str,
        preread: bytes = b"",
    ) -> None:
        self.proc = proc
        self._preread = preread
        self.label = label
        self._errfile = errfile
        self._wlock = threading.Lock()
        self._plock = threading.Lock()
        self._next = 0
        self._waiting: dict[int, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._bundles: set[str] = set()
        self._bundle_locks: dict[str, threading.Lock] = {}
        self._dead: str | None = None
        self._timed_out: int | None = None
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
        # what the escalation's negotiation read past its success marker comes first
        pending, self._preread = self._preread, b""
        while time.monotonic() < deadline:
            if b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                line += b"\n"
            else:
                more = self.proc.stdout.readline()
                line, pending = pending + more, b""
                if not more:
                    break
            if line.startswith(b"FKMOD 1 "):
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
                raise AgentGone(f"module agent on {self.label} is gone: {self._dead}", False)
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
            with self._plock:
                self._waiting.pop(rid, None)
                self._dead = self._dead or str(exc)
            raise AgentGone(f"module agent on {self.label} is gone: {exc}", False) from None
        if not event.wait(timeout_s):
            with self._plock:
                self._waiting.pop(rid, None)
                self._timed_out = rid
            raise TimeoutError
        if not box:
            raise AgentGone(f"module agent on {self.label} is gone: {self._dead}", True)
        resp = box[0]
        if "error" in resp:
            raise OSError(f"module agent on {self.label}: {resp['error']}")
        return resp

    def cancel_last(self) -> None:
        """Kill the command of the last request whose caller stopped waiting (``op: cmd``)."""
        rid, self._timed_out = self._timed_out, None
        if rid is not None:
            try:
                self.call({"op": "cancel", "target": rid}, 10)
            except (OSError, TimeoutError, Unreachable):
                pass

    def stderr_text(self) -> str:
        """What the agent (and the transport under it) wrote to stderr so far."""
        return self._stderr_text()

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

    def shutdown(self) -> None:
        """Ask the agent to exit once its runs finished (without waiting for it)."""
        try:
            if self.proc.stdin and not self.proc.stdin.closed:
                # on a terminal (become over a pty) closing stdin is no end of file: say bye
                if self._dead is None:
                    try:
                        with self._wlock:
                            self.proc.stdin.write(b'{"op": "bye", "id": 0}\n')
                            self.proc.stdin.flush()
                    except OSError:
                        pass
                self.proc.stdin.close()
        except OSError:
            pass

    def close(self) -> None:
        """Stop the agent (it exits when its stdin closes and its runs finished)."""
        self.shutdown()
        try:
            wait_exit(self.proc, 10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self._errfile.close()


def _become_key(become: Become | None) -> tuple[str, ...] | None:
    return None if become is None else become.key


def login_user(conn: Connection) -> str | None:
    """The user a connection logs in as (ansible's remote_user; local: the controller's)."""
    if conn.local:
        return getpass.getuser()
    user = getattr(conn, "user", None)
    return None if user is None else str(user)


def _allow_same_user() -> bool:
    from fleetkit.playbook import plugins

    plugins._init()
    from ansible import constants as C

    return bool(C.BECOME_ALLOW_SAME_USER)


def needs_become(conn: Connection, become: Become | None) -> bool:
    """ansible's rule: escalate when the become user differs from the login user (or neither
    is known), or always with ``become_allow_same_user``."""
    if become is None:
        return False
    ruser, buser = login_user(conn), become.user
    return buser != ruser or not (ruser or buser) or _allow_same_user()


_needs_become = needs_become


def _append_only(errfile: IO[bytes]) -> None:
    fd = errfile.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)


def _pump(src: IO[bytes], errfile: IO[bytes], first: bytes) -> None:
    """Keep a process's stderr flowing into its file after the negotiation read it."""
    fd = errfile.fileno()

    def loop() -> None:
        try:
            if first:
                os.write(fd, first)
            while chunk := os.read(src.fileno(), 65536):
                os.write(fd, chunk)
        except OSError:
            pass
        finally:
            src.close()

    threading.Thread(target=loop, daemon=True).start()


def _spawn_plain(conn: Connection, argv: list[str], errfile: IO[bytes]) -> subprocess.Popen[bytes]:
    spawn = getattr(conn, "spawn", None)
    if conn.local:
        try:
            return subprocess.Popen(
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
    if spawn is not None:
        proc: subprocess.Popen[bytes] = spawn(argv, stderr=errfile)
        return proc
    raise Unreachable(f"the connection to {conn.name} cannot start a module agent")


def _spawn_escalated(
    conn: Connection, esc: Escalation, command: str, errfile: IO[bytes], label: str
) -> AgentSession:
    """Start ``command`` (the plugin's command line) and negotiate the escalation as
    ansible's connection plugin of the same kind does."""
    tty = esc.wants_tty
    if conn.local:
        master: int | None = None
        stdin: Any = subprocess.PIPE
        if tty:
            master, stdin = pty.openpty()
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        if master is not None:
            os.close(stdin)
            proc.stdin = os.fdopen(master, "wb")
    else:
        spawn_shell = getattr(conn, "spawn_shell", None)
        if spawn_shell is None:
            raise Unreachable(f"the connection to {conn.name} cannot start a module agent")
        # as ansible's ssh plugin: the command line under its shell, on a terminal (an
        # escalated command without data on stdin)
        proc = spawn_shell(f"/bin/sh -c {shlex.quote(command + ' && sleep 0')}", tty=True)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin_file = proc.stdin

    def write(data: bytes) -> None:
        try:
            stdin_file.write(data)
            stdin_file.flush()
        except OSError:
            pass

    def terminate() -> None:
        try:
            proc.terminate()
        except OSError:
            pass

    try:
        if conn.local:
            got = esc.negotiate_local(
                proc.stdout.fileno(), proc.stderr.fileno(), write, _LOCAL_BECOME_TIMEOUT_S
            )
        else:
            timeout_s = float(getattr(conn, "connect_timeout_s", 10)) + 2
            got = esc.negotiate_ssh(
                proc.stdout.fileno(), proc.stderr.fileno(), write, timeout_s, terminate
            )
    except BaseException:
        terminate()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        errfile.close()
        raise
    if not got.escalated:
        rest_err = proc.stderr.read()
        proc.wait()
        err = (got.stderr + rest_err).decode(errors="replace")
        out = got.stdout.decode(errors="replace")
        errfile.close()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        if proc.returncode == 255 and not conn.local:
            raise Unreachable(f"Failed to connect to the host via ssh: {err.strip()}")
        raise AgentStartError(f"module agent on {label} did not start", err, proc.returncode, out)
    _pump(proc.stderr, errfile, got.stderr)
    return AgentSession(proc, errfile, label, preread=got.stdout)


def _spawn(conn: Connection, python: str, become: Become | None, remote_tmp: str) -> AgentSession:
    upgrade = getattr(conn, "upgrade_agent", None)
    if upgrade is not None and not _needs_become(conn, become):
        # over ssh: the host's command agent becomes the module agent (no second session)
        sess: AgentSession | None = upgrade(python, _SOURCE, remote_tmp)
        if sess is not None:
            return sess
    argv = [python, "-c", _SOURCE, remote_tmp]
    errfile = tempfile.TemporaryFile()
    _append_only(errfile)
    if _needs_become(conn, become):
        assert become is not None
        esc = Escalation(become)
        command = esc.command(shlex.join(argv))
        if esc.escalates:
            return _spawn_escalated(conn, esc, command, errfile, conn.name)
    proc = _spawn_plain(conn, argv, errfile)
    # local hosts share their agents: a message names none of them
    return AgentSession(proc, errfile, "this machine" if conn.local else conn.name)


_local_lock = threading.Lock()
_local: dict[tuple[Any, ...], AgentSession] = {}
_starting: dict[tuple[int, tuple[Any, ...]], threading.Lock] = {}
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
        table, glock = _local, _local_lock
    else:
        with _remote_lock:
            table = _remote.setdefault(conn, {})
        glock = _remote_lock
    with glock:
        sess = table.get(key)
        if sess is not None and sess.alive:
            return sess
        # one start per agent at a time; other hosts' agents (and their password prompts)
        # start in parallel
        lock = _starting.setdefault((id(table), key), threading.Lock())
    with lock:
        with glock:
            sess = table.get(key)
            if sess is not None and sess.alive:
                return sess
        sess = _spawn(conn, python, become, remote_tmp)
        with glock:
            table[key] = sess
        return sess


def _exec_session(conn: Connection, become: Become) -> AgentSession:
    """A live agent of this host escalated as ``become`` (any interpreter), or a new one."""
    want = _become_key(become)
    if conn.local:
        with _local_lock:
            found = [s for k, s in _local.items() if k[1] == want and s.alive]
    else:
        with _remote_lock:
            found = [s for k, s in _remote.get(conn, {}).items() if k[1] == want and s.alive]
    if found:
        return found[0]
    return session_for(conn, default_python(conn), become)


def command_request(
    op: str, argv: list[str], stdin: bytes | None, cwd: str | None, env: dict[str, str] | None
) -> dict[str, Any]:
    """A module agent's request to run ``argv`` (``op`` "exec": as the become user; "cmd":
    with pipes, as the command agent runs it)."""
    return {
        "op": op,
        "argv": argv,
        "stdin": base64.b64encode(stdin or b"").decode(),
        "cwd": cwd,
        "env": env or {},
    }


def run_escalated(
    conn: Connection,
    become: Become,
    argv: list[str],
    *,
    stdin: bytes | None,
    cwd: str | None,
    env: dict[str, str] | None,
    timeout_s: float | None,
) -> tuple[CommandResult, bool]:
    """Run argv as the become user through the host's escalated agent: (result, not found)."""
    sess = _exec_session(conn, become)
    req = command_request("exec", argv, stdin, cwd, env)
    try:
        resp = sess.call(req, timeout_s)
    except TimeoutError:
        return CommandResult(-9, b"", b"timed out"), False
    res = CommandResult(
        int(resp["rc"]), base64.b64decode(resp["out"]), base64.b64decode(resp["err"])
    )
    return res, bool(resp.get("notfound"))


def close_remote_agents(conn: Connection, also: Callable[[], None] | None = None) -> None:
    """Stop the module agents started over one connection: all are told first, then waited
    for (an ssh ControlMaster among them exits only after the others' sessions closed);
    ``also()`` runs between the two (the connection's own agent is told to exit)."""
    with _remote_lock:
        table = _remote.pop(conn, {})
    for sess in table.values():
        sess.shutdown()
    if also is not None:
        also()
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
    return sys.executable if conn.local else str(getattr(conn, "python", "python3"))
