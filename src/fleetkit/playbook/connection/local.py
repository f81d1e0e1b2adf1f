"""The ``local`` connection: subprocesses on the controller, no module shipping."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile

from fleetkit.playbook.connection import Become, CommandNotFound, CommandResult

__all__ = ["LocalConnection", "become_prefix"]


def become_prefix(become: Become | None) -> list[str]:
    if become is None:
        return []
    if become.method != "sudo":
        return [become.method, "-", become.user, "-c"]
    return ["sudo", *shlex.split(become.flags), "-u", become.user, "--"]


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
            argv = become_prefix(become) + argv
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
