"""The remote half of the SSH connection: a tiny stdlib-only Python loop kept running on the
target for the whole play, so each command costs a fork/exec there instead of a new SSH
session. Protocol: one JSON object per line each way; the first line out is ``FKAGENT 1``.

A request ``{"upgrade": SOURCE, "args": [...]}`` turns this process into the module agent
(``_module_agent.py``, sent as SOURCE) on the same pipes: the host's modules and commands then
share one interpreter, one SSH session and one login shell."""

import base64
import json
import os
import subprocess
import sys


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def serve() -> None:
    out = sys.stdout.buffer
    out.write(b"FKAGENT 1\n")
    out.flush()
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        req = json.loads(line.decode())
        if "upgrade" in req:
            # nothing else is in flight: the controller waits for the module agent's hello
            sys.argv = ["-c", *req.get("args", [])]
            scope: dict[str, object] = {"__name__": "fleetkit_module_agent"}
            exec(compile(req["upgrade"], "<fleetkit module agent>", "exec"), scope)
            module_agent = scope["serve"]
            if callable(module_agent):
                module_agent()
            return
        try:
            proc = subprocess.run(
                req["argv"],
                input=base64.b64decode(req.get("stdin") or ""),
                capture_output=True,
                cwd=req.get("cwd") or None,
                env=dict(os.environ, **req["env"]) if req.get("env") else None,
                check=False,
            )
            resp = {"rc": proc.returncode, "out": _b64(proc.stdout), "err": _b64(proc.stderr)}
        except OSError as exc:
            if req.get("cwd") and exc.filename == req["cwd"]:
                # the working directory cannot be entered (not the program)
                resp = {"rc": 1, "out": "", "err": "", "chdir": [exc.errno, exc.strerror]}
            elif isinstance(exc, FileNotFoundError):
                msg = f"[Errno 2] No such file or directory: {exc.filename!r}"
                resp = {"rc": 2, "out": "", "err": _b64(msg.encode()), "notfound": True}
            elif isinstance(exc, PermissionError):
                msg = f"[Errno 13] Permission denied: {exc.filename!r}"
                resp = {"rc": 13, "out": "", "err": _b64(msg.encode())}
            else:
                resp = {"rc": 1, "out": "", "err": _b64(str(exc).encode())}
        out.write(json.dumps(resp).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    serve()
