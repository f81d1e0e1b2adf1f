"""The ``local`` connection: subprocesses on the controller, no module shipping."""

from __future__ import annotations

import os
import selectors
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO

from fleetkit.playbook.connection import (
    Become,
    BecomeFailed,
    ChdirFailed,
    CommandNotFound,
    CommandResult,
)

__all__ = [
    "LocalConnection",
    "PASS_VAR",
    "become_failure",
    "become_prefix",
    "become_stdin",
]


# With a become password, sudo asks an askpass helper (-A) instead of a terminal: the helper is
# printenv, the "prompt" it is given is the name of the variable holding the password, and a
# tiny bootstrap reads that password from the first line of stdin (never from argv, where ps
# would show it), puts it in sudo's environment (which sudo's env_reset keeps from the command)
# and execs sudo with the rest of stdin untouched.
PASS_VAR = "FK_BECOME_PASS"
_PASS_BOOT = (
    "import os,sys\n"
    "b=b''\n"
    "while not b.endswith(b'\\n'):\n"
    "    c=os.read(0,1)\n"
    "    if not c: break\n"
    "    b+=c\n"
    f"os.environ['{PASS_VAR}']=b[:-1].decode('utf-8','surrogateescape')\n"
    "os.environ['SUDO_ASKPASS']='/usr/bin/printenv'\n"
    "os.execvp(sys.argv[1],sys.argv[1:])\n"
)
_MISSING = ("a password is required", "a terminal is required")
_WRONG = ("incorrect password attempt", "Sorry, try again.")


def become_prefix(become: Become | None, python: str = "python3") -> list[str]:
    """The argv prefix that runs a command as ``become.user``."""
    if become is None:
        return []
    if become.method != "sudo":
        return [become.method, "-", become.user, "-c"]
    flags = shlex.split(become.flags)
    if become.password is None:
        return ["sudo", *flags, "-u", become.user, "--"]
    # as ansible's sudo plugin: no -n once there is a password (and -A instead of -S here)
    flags = [f for f in flags if f not in ("-n", "-S", "--non-interactive", "--stdin")]
    return [python, "-c", _PASS_BOOT, "sudo", *flags, "-A", "-p", PASS_VAR, "-u", become.user, "--"]


def become_stdin(become: Become | None, data: bytes | None) -> bytes | None:
    """stdin for a command run through :func:`become_prefix`: the password line first."""
    if become is None or become.password is None or become.method != "sudo":
        return data
    return become.password.encode() + b"\n" + (data or b"")


def become_failure(become: Become | None, rc: int, stderr: bytes | str) -> str | None:
    """ansible's message when sudo itself refused (``Missing sudo password``...), else None."""
    if become is None or become.method != "sudo" or rc != 1:
        return None
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    first = text.strip().splitlines()[:3]
    if any(line.startswith("sudo:") and m in line for line in first for m in _MISSING):
        return f"Missing {become.method} password"
    if any(m in line for line in first for m in _WRONG):
        return f"Incorrect {become.method} password"
    return None


def _communicate(
    proc: subprocess.Popen[bytes], data: bytes | None, timeout_s: float | None
) -> tuple[int, bytes, bytes]:
    """The exit status and output of ``proc``, read as ansible's run_command reads it: once the
    process has exited, a second without new output ends the reading, so a background child
    that keeps the pipes open does not hold the task."""
    if proc.stdin is not None:
        feed = threading.Thread(target=_feed, args=(proc.stdin, data or b""), daemon=True)
        feed.start()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    chunks: dict[int, list[bytes]] = {}
    sel = selectors.DefaultSelector()
    for pipe in (proc.stdout, proc.stderr):
        assert pipe is not None
        chunks[pipe.fileno()] = []
        sel.register(pipe, selectors.EVENT_READ)
    try:
        while sel.get_map():
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            events = sel.select(wait)
            for key, _mask in events:
                block = os.read(key.fd, 65536)
                if block:
                    chunks[key.fd].append(block)
                else:
                    sel.unregister(key.fileobj)
            if not events and proc.poll() is not None:
                break
            if deadline is not None and time.monotonic() >= deadline:
                proc.kill()
                proc.wait()
                out = b"".join(chunks[proc.stdout.fileno()])  # type: ignore[union-attr]
                err = b"".join(chunks[proc.stderr.fileno()])  # type: ignore[union-attr]
                return -9, out, err + b"timed out"
        rc = proc.wait()
        out = b"".join(chunks[proc.stdout.fileno()])  # type: ignore[union-attr]
        err = b"".join(chunks[proc.stderr.fileno()])  # type: ignore[union-attr]
        return rc, out, err
    finally:
        sel.close()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _feed(pipe: IO[bytes], data: bytes) -> None:
    try:
        pipe.write(data)
    except (BrokenPipeError, OSError):
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


class LocalConnection:
    local = True

    def __init__(self, name: str = "localhost") -> None:
        self.name = name

    def _needs_become(self, become: Become | None) -> bool:
        if become is None:
            return False
        return not (os.geteuid() == 0 and become.user == "root")

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
        if self._needs_become(become):
            argv = become_prefix(become, sys.executable) + argv
            stdin = become_stdin(become, stdin)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env={**os.environ, **env} if env else None,
            )
        except OSError as exc:
            if cwd and exc.filename == cwd:
                raise ChdirFailed(cwd, exc.errno or 0, exc.strerror or str(exc)) from None
            if isinstance(exc, FileNotFoundError):
                raise CommandNotFound(str(exc.filename or argv[0])) from None
            if not isinstance(exc, PermissionError):
                raise
            return CommandResult(
                13, b"", f"[Errno 13] Permission denied: {exc.filename!r}".encode()
            )
        rc, out, err = _communicate(proc, stdin, timeout_s)
        if self._needs_become(become):
            refused = become_failure(become, rc, err)
            if refused:
                raise BecomeFailed(refused)
        return CommandResult(rc, out, err)

    def put(self, data: bytes, path: str, mode: int | None = None) -> None:
        d = os.path.dirname(os.path.abspath(path)) or "."
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".fleetkit-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            if mode is not None:
                os.chmod(tmp, mode)
            elif os.path.exists(path):
                os.chmod(tmp, os.stat(path).st_mode & 0o7777)
            else:
                os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def close(self) -> None:
        return None
