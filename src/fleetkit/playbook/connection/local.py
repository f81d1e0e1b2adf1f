"""The ``local`` connection: subprocesses on the controller, no module shipping."""

from __future__ import annotations

import os
import subprocess
import tempfile

from fleetkit.playbook.connection import (
    Become,
    CommandNotFound,
    CommandResult,
)

__all__ = ["LocalConnection"]


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
            proc = subprocess.run(
                argv,
                input=stdin,
                stdin=subprocess.DEVNULL if stdin is None else None,
                capture_output=True,
                timeout=timeout_s,
                cwd=cwd,
                env={**os.environ, **env} if env else None,
                check=False,
            )
        except FileNotFoundError as exc:
            if cwd and not os.path.isdir(cwd):
                return CommandResult(1, b"", f"Unable to change directory: {cwd}".encode())
            raise CommandNotFound(str(exc.filename or argv[0])) from None
        except PermissionError as exc:
            return CommandResult(
                13, b"", f"[Errno 13] Permission denied: {exc.filename!r}".encode()
            )
        except subprocess.TimeoutExpired as exc:
            return CommandResult(-9, exc.stdout or b"", (exc.stderr or b"") + b"timed out")
        return CommandResult(proc.returncode, proc.stdout, proc.stderr)

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
