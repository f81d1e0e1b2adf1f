"""The remote half of the SSH connection: a tiny Python loop kept running on the target for the
whole play, so each command costs a fork/exec there instead of a new SSH session.

It imports only built-in modules (os, sys, marshal; _signal and select once a command runs):
json, base64 and subprocess would double its start-up (~14 ms of CPU per host). Commands are
forked and exec'd here as subprocess.Popen does it (the program looked up in the PATH of the
environment it runs with, the working directory entered in the child, SIGPIPE and SIGXFSZ back
to their defaults, descriptors other than the three pipes closed, the same errors) and their
output read until both pipes end, then the exit status, as subprocess.run does.

Protocol: the first line out is ``FKAGENT 2``; then each message either way is a 4-byte
big-endian length and a marshal (version 4) dict. A request ``{"upgrade": SOURCE, "args":
[...]}`` turns this process into the module agent (``_module_agent.py``, sent as SOURCE) on
the same pipes: the host's modules and commands then share one interpreter, one SSH session and
one login shell.
"""

from __future__ import annotations

import marshal
import os
import sys


def _read_exact(n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = os.read(0, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _send(obj: dict[str, object]) -> None:
    data = marshal.dumps(obj, 4)
    data = len(data).to_bytes(4, "big") + data
    while data:
        data = data[os.write(1, data) :]


def _spawn(
    argv: list[str], cwd: str | None, env: dict[str, str] | None
) -> tuple[int, int, int, int]:
    """fork + exec ``argv`` as subprocess.Popen does: (pid, stdin, stdout, stderr) or OSError."""
    exe = argv[0]
    if os.path.dirname(exe):
        paths = [exe]
    else:
        paths = [os.path.join(d, exe) for d in os.get_exec_path(env)]
    environ = os.environ if env is None else env
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    ex_r, ex_w = os.pipe()  # close-on-exec: nothing arrives here when the exec works
    pid = os.fork()
    if pid == 0:
        stage = "noexec"
        try:
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            try:
                inherited = [int(fd) for fd in os.listdir("/proc/self/fd")]
            except OSError:
                inherited = list(range(3, 1024))
            for fd in inherited:
                if fd > 2 and fd != ex_w:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            if cwd:
                stage = "noexec:chdir"
                os.chdir(cwd)
                stage = "noexec"
            signals = __import__("_signal")  # built in (the signal module imports enum)
            for sig in ("SIGPIPE", "SIGXFZ", "SIGXFSZ"):
                if hasattr(signals, sig):
                    signals.signal(getattr(signals, sig), signals.SIG_DFL)
            stage = ""
            first: OSError | None = None
            last: OSError | None = None
            for path in paths:
                try:
                    os.execve(path, argv, environ)
                except OSError as exc:
                    last = exc
                    if exc.errno not in (2, 20) and first is None:  # ENOENT, ENOTDIR
                        first = exc
            failed = first or last
            os.write(ex_w, f"{failed.errno if failed else 2}:{stage}".encode())
        except OSError as exc:
            os.write(ex_w, f"{exc.errno}:{stage}".encode())
        finally:
            os._exit(255)
    for fd in (in_r, out_w, err_w, ex_w):
        os.close(fd)
    report = b""
    while True:
        chunk = os.read(ex_r, 512)
        if not chunk:
            break
        report += chunk
    os.close(ex_r)
    if report:
        os.waitpid(pid, 0)
        for fd in (in_w, out_r, err_r):
            os.close(fd)
        num, _, stage = report.decode().partition(":")
        errno = int(num)
        filename = cwd if stage == "noexec:chdir" else None if stage == "noexec" else exe
        if filename is None:
            raise OSError(errno, os.strerror(errno))
        raise OSError(errno, os.strerror(errno), filename)
    return pid, in_w, out_r, err_r


def _run(
    argv: list[str], data: bytes, cwd: str | None, env: dict[str, str] | None
) -> dict[str, object]:
    """subprocess.run(argv, input=data, capture_output=True): the exit code and both outputs."""
    import select

    pid, in_w, out_r, err_r = _spawn(argv, cwd, env)
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    readers = [out_r, err_r]
    writers = [in_w] if data else []
    if not data:
        os.close(in_w)
    else:
        os.set_blocking(in_w, False)
    view = memoryview(data)
    while readers or writers:
        ready, writable, _ = select.select(readers, writers, [])
        if writable:
            try:
                view = view[os.write(in_w, view[:65536]) :]
            except BlockingIOError:
                pass
            except OSError:
                view = view[:0]  # the command closed its stdin (as subprocess.run ignores)
            if not view:
                writers = []
                os.close(in_w)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if chunk:
                chunks[fd].append(chunk)
            else:
                readers.remove(fd)
                os.close(fd)
    status = os.waitpid(pid, 0)[1]
    rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return {"rc": rc, "out": b"".join(chunks[out_r]), "err": b"".join(chunks[err_r])}


def serve() -> None:
    os.write(1, b"FKAGENT 2\n")
    while True:
        head = _read_exact(4)
        if head is None:
            return
        body = _read_exact(int.from_bytes(head, "big"))
        if body is None:
            return
        req = marshal.loads(body)
        if "upgrade" in req:
            # nothing else is in flight: the controller waits for the module agent's hello
            sys.argv = ["-c", *req.get("args", [])]
            scope: dict[str, object] = {"__name__": "fleetkit_module_agent"}
            exec(compile(req["upgrade"], "<fleetkit module agent>", "exec"), scope)
            module_agent = scope["serve"]
            if callable(module_agent):
                module_agent()
            return
        cwd = req.get("cwd") or None
        env = dict(os.environ, **req["env"]) if req.get("env") else None
        try:
            resp = _run(req["argv"], req.get("stdin") or b"", cwd, env)
        except OSError as exc:
            if cwd and exc.filename == cwd:
                # the working directory cannot be entered (not the program)
                resp = {"rc": 1, "out": b"", "err": b"", "chdir": [exc.errno, exc.strerror]}
            elif isinstance(exc, FileNotFoundError):
                msg = f"[Errno 2] No such file or directory: {exc.filename!r}"
                resp = {"rc": 2, "out": b"", "err": msg.encode(), "notfound": True}
            elif isinstance(exc, PermissionError):
                msg = f"[Errno 13] Permission denied: {exc.filename!r}"
                resp = {"rc": 13, "out": b"", "err": msg.encode()}
            else:
                resp = {"rc": 1, "out": b"", "err": str(exc).encode()}
        _send(resp)


if __name__ == "__main__":
    serve()
