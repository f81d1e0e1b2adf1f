"""The ``local`` connection: subprocesses on the controller, no module shipping."""

from __future__ import annotations

import os
import selectors
import subprocess
import tempfile
import threading
import time
from typing import IO

from fleetkit.playbook.connection import (
    Become,
    ChdirFailed,
    CommandNotFound,
    CommandResult,
)

__all__ = ["LocalConnection"]


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
            if notfound and cwd and not os.path.isdir(cwd):
                return CommandResult(1, b"", f"Unable to change directory: {cwd}".encode())
            if notfound:
                raise CommandNotFound(argv[0])
            return res
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
