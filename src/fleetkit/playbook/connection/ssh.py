"""The ``ssh`` connection: OpenSSH with one ControlMaster (persistent connection) per host,
and over it one long-lived remote agent (``_agent.py``, python3 on the target) that runs each
command, so a task costs a fork/exec on the target rather than a new SSH session. Targets
without python3 fall back to one SSH channel per command.

The agent's own ssh process is the ControlMaster (``ControlPersist=no``): it lives as long as
the agent, other channels (become, a second interpreter) multiplex over it, and it exits with
the last of them, so closing a host costs no ``ssh -O exit``. The first module turns the agent
into the module agent in place (one interpreter, one session and one login per host); from
then on commands go through the module agent as well.

Host key checking follows ANSIBLE_HOST_KEY_CHECKING / ``ansible_host_key_checking``: on by
default (ssh's own settings apply: BatchMode refuses unknown keys), off ->
``StrictHostKeyChecking=no``; a user's own options (ansible_ssh_common_args, ~/.ssh/config) win.
A failed transport (ssh exit 255) raises :class:`Unreachable` with ssh's own message, as
ansible reports it.
"""

from __future__ import annotations

import base64
import fcntl
import marshal
import os
import pty
import select
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from fleetkit.playbook.connection import (
    Become,
    ChdirFailed,
    CommandNotFound,
    CommandResult,
    Unreachable,
    _agent,
    wait_exit,
)

if TYPE_CHECKING:
    from fleetkit.playbook.connection.agent import AgentSession

_AGENT_SOURCE = Path(_agent.__file__).read_text()

__all__ = ["SSHConnection", "cleanup_control_dir"]

_control_dir_lock = threading.Lock()
_control_dir: str | None = None


def _control_path_dir() -> str:
    global _control_dir
    with _control_dir_lock:
        if _control_dir is None or not os.path.isdir(_control_dir):
            _control_dir = tempfile.mkdtemp(prefix="fk-ssh-")
        return _control_dir


def cleanup_control_dir() -> None:
    """Remove this process's ControlPath directory (after every connection was closed)."""
    global _control_dir
    with _control_dir_lock:
        if _control_dir is not None:
            shutil.rmtree(_control_dir, ignore_errors=True)
            _control_dir = None


class SSHConnection:
    local = False

    def __init__(
        self,
        name: str,
        host: str,
        port: int | None = None,
        user: str | None = None,
        key_file: str | None = None,
        host_key_checking: bool = True,
        connect_timeout_s: int = 10,
        extra_args: str = "",
        password: str | None = None,
        python: str = "python3",
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.user = user
        self.key_file = key_file
        self.host_key_checking = host_key_checking
        self.connect_timeout_s = connect_timeout_s
        self.extra_args = extra_args
        self._lock = threading.Lock()
        self._control = os.path.join(_control_path_dir(), f"{abs(hash((name, host, port))):x}")
        self._opened = False
        self.python = python  # the agent's interpreter (interpreter_python; auto: python3)
        self._agent: subprocess.Popen[bytes] | None = None
        self._agent_err: IO[bytes] | None = None
        self._agent_ok = True
        self._buf = b""
        # the module agent the command agent became (commands go through it from then on)
        self._session: AgentSession | None = None

    def _base(self, persist: bool = False) -> list[str]:
        # ssh keeps the first value of an option: the user's own arguments go first, so their
        # StrictHostKeyChecking/UserKnownHostsFile (or ~/.ssh/config's, which we then leave
        # alone) win, as with ansible's ssh plugin
        user_args = shlex.split(self.extra_args) if self.extra_args else []
        user_opts = {
            a.split("=", 1)[0].strip().lower()
            for a in [*user_args, *(x[2:] for x in user_args if x.startswith("-o"))]
        }
        args = [
            "ssh",
            *user_args,
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={self.connect_timeout_s}",
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self._control}",
            "-o",
            # the master is the agent's own ssh: it exits with the host's last session (a host
            # without python runs one channel per command: there the master persists)
            f"ControlPersist={'120' if persist else 'no'}",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            "LogLevel=ERROR",
        ]
        if not self.host_key_checking and "stricthostkeychecking" not in user_opts:
            # host key checking on: nothing is passed, ssh's own settings (BatchMode refuses
            # unknown keys by default) apply, as ansible does
            args += ["-o", "StrictHostKeyChecking=no"]
        if self.port:
            args += ["-p", str(self.port)]
        if self.user:
            args += ["-l", self.user]
        if self.key_file:
            args += ["-i", os.path.expanduser(self.key_file), "-o", "IdentitiesOnly=yes"]
        return args

    def _fail_from(self, proc: subprocess.Popen[bytes]) -> Unreachable:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err = ""
        if proc.stderr:
            err = proc.stderr.read().decode(errors="replace").strip()
        elif self._agent_err is not None and not self._agent_err.closed:
            self._agent_err.seek(0)
            err = self._agent_err.read().decode(errors="replace").strip()
        return Unreachable(f"Failed to connect to the host via ssh: {err}".rstrip())

    def _readline(self, proc: subprocess.Popen[bytes], deadline: float | None) -> bytes | None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while b"\n" not in self._buf:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _read_exact(
        self, proc: subprocess.Popen[bytes], n: int, deadline: float | None
    ) -> bytes | None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while len(self._buf) < n:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _agent_call(
        self, proc: subprocess.Popen[bytes], req: dict[str, object], deadline: float | None
    ) -> dict[str, Any] | None:
        """One request to the command agent (length-prefixed marshal both ways)."""
        assert proc.stdin is not None
        data = marshal.dumps(req, 4)
        proc.stdin.write(len(data).to_bytes(4, "big") + data)
        proc.stdin.flush()
        head = self._read_exact(proc, 4, deadline)
        body = (
            None if head is None else self._read_exact(proc, int.from_bytes(head, "big"), deadline)
        )
        if body is None:
            return None
        resp: dict[str, Any] = marshal.loads(body)
        return resp

    def _start_agent(self) -> subprocess.Popen[bytes] | None:
        remote = f"{self.python} -c {shlex.quote(_AGENT_SOURCE)}"
        if self._agent_err is not None:
            self._agent_err.close()
        # ssh's and the agent's stderr: a file (a pipe nobody reads could fill up)
        self._agent_err = tempfile.TemporaryFile()
        fd = self._agent_err.fileno()
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
        proc = subprocess.Popen(
            [*self._base(), self.host, remote],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._agent_err,
        )
        self._agent = proc
        self._buf = b""
        try:
            hello = self._readline(proc, time.monotonic() + self.connect_timeout_s + 20)
        except TimeoutError:
            proc.kill()
            proc.wait()
            self._agent = None
            raise Unreachable(
                f"Failed to connect to the host via ssh: timed out after {self.connect_timeout_s} s"
            ) from None
        if hello is None:
            proc.wait(timeout=10)
            if proc.returncode == 255:
                failure = self._fail_from(proc)
                self._agent = None
                raise failure
            # reachable, but no usable python3: one SSH channel per command from now on
            self._agent = None
            self._agent_ok = False
            return None
        self._opened = True
        return proc

    def upgrade_agent(self, python: str, source: str, remote_tmp: str) -> AgentSession | None:
        """Turn this host's command agent into the module agent (``source``) in place and
        return its session; None when the modules want another interpreter (or none runs)."""
        from fleetkit.playbook.connection.agent import AgentSession

        with self._lock:
            if python != self.python or not self._agent_ok:
                return None
            if self._session is not None and self._session.alive:
                return None  # one already serves another remote tmp: start a separate one
            if self._agent is None or self._agent.poll() is not None:
                self._agent = self._start_agent()
                if self._agent is None:
                    return None
            proc, err = self._agent, self._agent_err
            assert proc.stdin is not None and err is not None
            data = marshal.dumps({"upgrade": source, "args": [remote_tmp]}, 4)
            try:
                proc.stdin.write(len(data).to_bytes(4, "big") + data)
                proc.stdin.flush()
            except OSError:
                self._agent = None
                raise self._fail_from(proc) from None
            preread, self._buf = self._buf, b""
            # the session owns the process (and its stderr file) from here on
            self._agent, self._agent_err = None, None
            sess = AgentSession(proc, err, self.name, preread=preread)
            self._session = sess
            return sess

    def _agent_run(
        self,
        argv: list[str],
        stdin: bytes | None,
        cwd: str | None,
        timeout_s: float | None,
        env: dict[str, str] | None = None,
    ) -> CommandResult | None:
        if self._agent is None or self._agent.poll() is not None:
            self._agent = self._start_agent()
            if self._agent is None:
                return None
        proc = self._agent
        req: dict[str, object] = {
            "argv": list(argv),
            "stdin": stdin or b"",
            "cwd": cwd,
            "env": dict(env or {}),
        }
        try:
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            resp = self._agent_call(proc, req, deadline)
        except TimeoutError:
            self._stop_agent()
            return CommandResult(-9, b"", b"timed out")
        except (BrokenPipeError, OSError):
            resp = None
        if resp is None:
            self._agent = None
            raise self._fail_from(proc)
        if resp.get("chdir") and cwd is not None:
            errno, strerror = resp["chdir"]
            raise ChdirFailed(cwd, int(errno or 0), str(strerror))
        if resp.get("notfound") and cwd is None:
            raise CommandNotFound(argv[0])
        return CommandResult(int(resp["rc"]), bytes(resp["out"]), bytes(resp["err"]))

    def _session_run(
        self,
        sess: AgentSession,
        argv: list[str],
        stdin: bytes | None,
        cwd: str | None,
        timeout_s: float | None,
        env: dict[str, str] | None,
    ) -> CommandResult:
        """A command through the module agent the command agent became (same answers)."""
        from fleetkit.playbook.connection.agent import command_request

        req = command_request("cmd", argv, stdin, cwd, env)
        try:
            resp = sess.call(req, timeout_s)
        except TimeoutError:
            sess.cancel_last()
            return CommandResult(-9, b"", b"timed out")
        except Unreachable:
            self._session = None
            raise Unreachable(
                f"Failed to connect to the host via ssh: {sess.stderr_text()}".rstrip()
            ) from None
        if resp.get("chdir") and cwd is not None:
            errno, strerror = resp["chdir"]
            raise ChdirFailed(cwd, int(errno or 0), str(strerror))
        if resp.get("notfound") and cwd is None:
            raise CommandNotFound(argv[0])
        return CommandResult(
            int(resp["rc"]), base64.b64decode(resp["out"]), base64.b64decode(resp["err"])
        )

    def _stop_agent(self) -> None:
        proc, self._agent = self._agent, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            wait_exit(proc, 5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
        if self._agent_err is not None:
            self._agent_err.close()
            self._agent_err = None

    def run(
        self,
        cmd: list[str] | str,
        *,
        stdin: bytes | None = None,
        timeout_s: float | None = None,
        become: Become | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        argv = list(cmd) if isinstance(cmd, list) else ["/bin/sh", "-c", cmd]
        from fleetkit.playbook.connection.agent import needs_become, run_escalated

        if become is not None and needs_become(self, become):
            # through the agent the become plugin escalated once (as that user already)

            res, notfound = run_escalated(
                self, become, argv, stdin=stdin, cwd=cwd, env=env, timeout_s=timeout_s
            )
            if notfound and cwd is None:
                raise CommandNotFound(argv[0])
            return res
        sess = self._session
        if sess is not None and sess.alive:
            return self._session_run(sess, argv, stdin, cwd, timeout_s, env)
        if self._agent_ok:
            with self._lock:
                done = self._agent_run(argv, stdin, cwd, timeout_s, env)
            if done is not None:
                return done
        remote = shlex.join(cmd) if isinstance(cmd, list) else cmd
        if env:
            remote = shlex.join(["env", *(f"{k}={v}" for k, v in env.items())]) + " " + remote
        if cwd:
            remote = f"cd {shlex.quote(cwd)} && {remote}"
        argv = [*self._base(persist=True), self.host, remote]
        try:
            proc = subprocess.run(
                argv,
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise Unreachable(
                f"Failed to connect to the host via ssh: timed out after {timeout_s} s"
            ) from None
        except FileNotFoundError:
            raise Unreachable(
                "Failed to connect to the host via ssh: ssh client not found"
            ) from None
        if proc.returncode == 255:
            msg = proc.stderr.decode(errors="replace").strip()
            raise Unreachable(f"Failed to connect to the host via ssh: {msg}")
        self._opened = True
        return CommandResult(proc.returncode, proc.stdout, proc.stderr)

    def put(self, data: bytes, path: str, mode: int | None = None) -> None:
        tmp = f"{path}.fleetkit-tmp"
        script = f"umask 022 && cat > {shlex.quote(tmp)}"
        if mode is not None:
            script += f" && chmod {mode:o} {shlex.quote(tmp)}"
        script += f" && mv -f {shlex.quote(tmp)} {shlex.quote(path)}"
        res = self.run(script, stdin=data)
        if res.rc != 0:
            raise OSError(res.stderr.decode(errors="replace").strip() or f"cannot write {path}")

    def spawn(self, argv: list[str], stderr: IO[bytes]) -> subprocess.Popen[bytes]:
        """Start a long-running process on the host over the master connection, with pipes."""
        return subprocess.Popen(
            [*self._base(), self.host, shlex.join(argv)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )

    def spawn_shell(self, command: str, *, tty: bool) -> subprocess.Popen[bytes]:
        """Start a shell command line on the host; ``tty``: on a terminal as ansible's ssh
        plugin runs an escalated command that gets no data on stdin (``-tt``, with a local pty
        as ssh's stdin, whose modes ssh passes on to the remote one)."""
        base = self._base()
        if not tty:
            return subprocess.Popen(
                [*base, self.host, command],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        if not self._opened:
            # the master connection first (its notices, such as a host key added, are not
            # this command's), as ansible's first command of a task opens it
            self.run(["true"])
        # ssh's own "Shared connection to ... closed." goes to stderr, as with ansible's
        i = base.index("LogLevel=ERROR")
        base = [*base[: i - 1], *base[i + 1 :], "-tt", "-e", "none"]
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen(
                [*base, self.host, command],
                stdin=slave,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        # ssh sets its end raw once the session is up; only then is anything written here
        proc.stdin = os.fdopen(master, "wb")
        return proc

    def reset(self) -> None:
        """Drop the agent and the master connection (after a reboot); the next run reconnects."""
        from fleetkit.playbook.connection.agent import close_remote_agents

        def agent_eof() -> None:
            proc = self._agent
            if proc is not None and proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass

        close_remote_agents(self, also=agent_eof)
        self._session = None
        with self._lock:
            self._stop_agent()
        if os.path.exists(self._control):
            # a master that outlived its sessions (ControlPersist from the user's ssh args)
            subprocess.run(
                [*self._base(), "-O", "exit", self.host],
                capture_output=True,
                timeout=10,
                check=False,
            )
            try:
                os.unlink(self._control)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        if self._opened or os.path.exists(self._control):
            try:
                self.reset()
            except (OSError, subprocess.SubprocessError):
                pass
