"""The module agent: a stdlib-only Python loop that runs ansible modules on a target.

Started once per (host, become user) and fed over its stdin. Module payloads arrive once as
content-addressed blobs and are laid out in a per-user cache under the remote tmp directory
(``~/.ansible/tmp/fleetkit-modules``); each run forks a child that runs the module as
``__main__`` the way AnsiballZ's loader does, with ansible's module_utils already imported in
the parent (so a run costs a fork, not an interpreter start and 100 ms of imports). Modules
that need their own interpreter (old-style, WANT_JSON, binary, or marked isolated) run as a
separate process instead.

Protocol: JSON lines both ways, each request and response carrying the caller's ``id``; the
first line out is ``FKMOD 1 {...}``. Several runs may be in flight at once. Over SSH the agent
usually starts as the small command agent (``_agent.py``), which turns into this one on the
first module, and then also runs the connection's commands (``op: cmd``).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import random
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

CACHE = ""
BLOBS = ""
PRELOADED: dict[
    str, tuple[str | None, str | None]
] = {}  # module name -> (payload path, sha) of the modules imported in this process
PRELOAD_TRIED = [False]
MANIFESTS: dict[str, dict[str, str]] = {}  # bundle -> {payload path: sha}
RUNNING: dict[
    int, tuple[int, str, str, str, str | None]
] = {}  # pid -> (request id, stdout path, stderr path, tmpdir, the task's remote tmp dir)
OUT = sys.stdout.buffer
POPENS: dict[int, subprocess.Popen[bytes]] = {}  # pid -> the separate interpreters running
# the commands of ``op: cmd`` (pipes, as the small agent runs them): pid -> state, and each of
# their open pipe ends -> (pid, "in" | "out" | "err")
CMDS: dict[int, dict[str, Any]] = {}
PIPES: dict[int, tuple[int, str]] = {}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _send(obj: dict[str, Any]) -> None:
    OUT.write(json.dumps(obj).encode("utf-8") + b"\n")
    OUT.flush()


def _cache_dir(remote_tmp: str) -> str:
    base = os.path.expanduser(os.path.expandvars(remote_tmp or "~/.ansible/tmp"))
    path = os.path.join(base, "fleetkit-modules")
    try:
        os.makedirs(os.path.join(path, "blobs"), mode=0o700, exist_ok=True)
    except OSError:
        path = tempfile.mkdtemp(prefix="fleetkit-modules-")
        os.makedirs(os.path.join(path, "blobs"), mode=0o700, exist_ok=True)
    return path


def _write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _bundle_dir(bundle: str) -> str:
    return os.path.join(CACHE, bundle)


def op_have(req: dict[str, Any]) -> dict[str, Any]:
    bundle = req["bundle"]
    files = req["files"]
    MANIFESTS[bundle] = dict((rel, sha) for rel, sha in files)
    d = _bundle_dir(bundle)
    if os.path.exists(os.path.join(d, ".complete")):
        _preload(bundle)
        return {"missing": []}
    missing = [sha for _rel, sha in files if not os.path.exists(os.path.join(BLOBS, sha))]
    if missing:
        return {"missing": sorted(set(missing))}
    tmp = tempfile.mkdtemp(dir=CACHE, prefix=".build-")
    for rel, sha in files:
        dest = os.path.join(tmp, rel)
        parent = os.path.dirname(dest)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        try:
            os.link(os.path.join(BLOBS, sha), dest)
        except OSError:
            with open(os.path.join(BLOBS, sha), "rb") as src, open(dest, "wb") as out:
                out.write(src.read())
    open(os.path.join(tmp, ".complete"), "w").close()
    try:
        os.rename(tmp, d)
    except OSError:
        # another agent of the same user built it first
        subprocess.call(["rm", "-rf", tmp])
    _preload(bundle)
    return {"missing": []}


def op_put(req: dict[str, Any]) -> dict[str, Any]:
    for sha, data in req["blobs"].items():
        _write_atomic(os.path.join(BLOBS, sha), base64.b64decode(data))
    return {"ok": True}


_UTILS_PREFIXES = ("ansible/module_utils/", "ansible_collections/")


def _dotted(rel: str) -> str | None:
    if not rel.endswith(".py") or not rel.startswith(_UTILS_PREFIXES):
        return None
    if rel.startswith("ansible_collections/") and "/plugins/module_utils/" not in rel:
        return None
    name = rel[:-3].replace("/", ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def _extend_package_paths(d: str) -> None:
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__path__", None)
        if path is None or not name.startswith("ansible"):
            continue
        cand = os.path.join(d, *name.split("."))
        if os.path.isdir(cand):
            # this payload's directory first: its ansible.modules (or a collection's
            # plugins.modules) is a regular package, found in the first directory that has it
            if cand in list(path):
                path.remove(cand)
            path.insert(0, cand)


def _preload(bundle: str) -> None:
    """Import ansible's module_utils once in this process, so a forked run skips the imports.

    The first payload brings ``basic`` and what it needs; each payload adds its other
    module_utils. A child whose payload has a different file under a preloaded name drops the
    preloaded modules and imports its own (see ``_child``)."""
    if os.environ.get("FLEETKIT_AGENT_PRELOAD", "1") != "1":
        return
    manifest = MANIFESTS.get(bundle, {})
    if PRELOAD_TRIED[0] and any(
        rel and manifest.get(rel, sha) != sha for rel, sha in PRELOADED.values()
    ):
        return  # another ansible's module_utils: leave the preloaded ones alone
    if not PRELOAD_TRIED[0] and "ansible/module_utils/basic.py" not in manifest:
        return
    names = [
        "ansible.module_utils._internal._ansiballz._loader",
        "ansible.module_utils._internal._json._profiles._module_legacy_c2m",
        "ansible.module_utils._internal._json._profiles._module_legacy_m2c",
        "ansible.module_utils.basic",
    ]
    if PRELOAD_TRIED[0]:
        names = []
    # the payload's other module_utils too (the first payload's as well: a gather_facts that
    # starts the play brings the ~90 facts modules, imported once here rather than per host)
    names += [n for n in map(_dotted, sorted(manifest)) if n and n not in sys.modules]
    PRELOAD_TRIED[0] = True
    d = _bundle_dir(bundle)
    before = set(sys.modules)
    sys.path.insert(0, d)
    _extend_package_paths(d)
    try:
        import importlib

        for name in names:
            try:
                importlib.import_module(name)
            except BaseException:  # noqa: BLE001 - an optional dependency missing here
                if name == "ansible.module_utils.basic":
                    raise
    except BaseException:  # noqa: BLE001
        for name in set(sys.modules) - before:
            del sys.modules[name]
        return
    finally:
        sys.path.remove(d)
    for name in set(sys.modules) - before:
        mod = sys.modules[name]
        fn = getattr(mod, "__file__", None)
        if fn and fn.startswith(d + os.sep):
            rel = fn[len(d) + 1 :]
            PRELOADED[name] = (rel, manifest.get(rel))
        elif name == "ansible" or name.startswith(("ansible.", "ansible_collections.")):
            PRELOADED[name] = (None, None)


def _noop_preexec(fn: Any) -> bool:
    """Whether ``fn`` is ansible's run_command ``preexec`` with no umask to set (a no-op)."""
    code = getattr(fn, "__code__", None)
    if (
        code is None
        or getattr(fn, "__module__", None) != "ansible.module_utils.basic"
        or getattr(fn, "__qualname__", None) != "AnsibleModule.run_command.<locals>.preexec"
        or code.co_freevars != ("umask",)
        or code.co_names != ("os", "umask")
    ):
        return False
    return not fn.__closure__[0].cell_contents


def _cheap_spawn() -> None:
    """In a module's process: start commands without a ``preexec_fn`` where ansible's
    run_command passes one that does nothing (no umask asked for).

    A preexec_fn makes CPython fork() the whole module process for every command; without one
    it uses vfork(). The command starts with the same arguments, environment, descriptors and
    signal dispositions either way."""
    init = subprocess.Popen.__init__

    def popen_init(self: Any, *args: Any, **kwargs: Any) -> None:
        fn = kwargs.get("preexec_fn")
        if fn is not None and _noop_preexec(fn):
            kwargs["preexec_fn"] = None
        init(self, *args, **kwargs)

    subprocess.Popen.__init__ = popen_init  # type: ignore[method-assign]


def _child(req: dict[str, Any], out_path: str, err_path: str) -> None:
    """In the forked child: run one new-style module as __main__ and exit with its code."""
    code = 1
    try:
        for fd in list(PIPES):
            os.close(fd)  # the pipes of the agent's commands (their stdin must see its end)
        fd_in = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd_in, 0)
        fd_out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        fd_err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd_out, 1)
        os.dup2(fd_err, 2)
        for fd in (fd_in, fd_out, fd_err):
            os.close(fd)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        if req.get("env"):
            os.environ.update(req["env"])
        if os.environ.get("FLEETKIT_AGENT_VFORK", "1") == "1":
            _cheap_spawn()
        if req.get("cwd"):
            os.chdir(req["cwd"])
        d = _bundle_dir(req["bundle"])
        manifest = MANIFESTS.get(req["bundle"], {})
        stale = [
            n
            for n, (rel, sha) in PRELOADED.items()
            if rel and rel in manifest and manifest[rel] != sha
        ]
        if stale:
            for name in list(sys.modules):
                if name == "ansible" or name.startswith(("ansible.", "ansible_collections")):
                    del sys.modules[name]
        else:
            _extend_package_paths(d)
        sys.path = [d] + [p for p in sys.path if p not in ("", ".")]
        sys.argv = [os.path.join(d, *req["pyname"].split(".")) + ".py"]
        import importlib

        _loader: Any = importlib.import_module("ansible.module_utils._internal._ansiballz._loader")
        _loader.run_module(
            json_params=req["args"].encode("utf-8"),
            profile=req.get("profile") or "legacy",
            module_fqn=req["pyname"],
            modlib_path=d,
            extensions={},
        )
        code = 0
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            sys.stderr.write(str(exc.code) + "\n")
            code = 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    try:
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
        pass
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    os._exit(code)


def _interpreter_argv(req: dict[str, Any], d: str, args_path: str) -> list[str]:
    style = req["style"]
    path = os.path.join(d, req["filename"])
    if style == "new":
        boot = (
            "import sys\n"
            "d = sys.argv[1]\n"
            "sys.path.insert(0, d)\n"
            "from ansible.module_utils._internal._ansiballz import _loader\n"
            "_loader.run_module(json_params=open(sys.argv[2], 'rb').read(), profile='legacy',"
            " module_fqn=sys.argv[3], modlib_path=d, extensions={})\n"
        )
        return [req.get("python") or sys.executable, "-c", boot, d, args_path, req["pyname"]]
    with open(path, "rb") as fh:
        head = fh.readline()
    if head.startswith(b"#!"):
        interp = shlex.split(head[2:].decode("utf-8", "replace").strip())
        if (
            interp
            and "python" in os.path.basename(interp[0])
            or (interp and interp[0].endswith("env") and len(interp) > 1 and "python" in interp[1])
        ):
            interp = [req.get("python") or sys.executable]
        return interp + [path, args_path]
    if style == "binary":
        return [path, args_path]
    return ["/bin/sh", path, args_path]


def _spawn_interpreter(req: dict[str, Any], out_path: str, err_path: str, tmpdir: str) -> int:
    d = _bundle_dir(req["bundle"])
    args_path = os.path.join(tmpdir, "args")
    with open(args_path, "w") as fh:
        fh.write(req["args_file"] if req["style"] != "new" else req["args"])
    path = os.path.join(d, req["filename"])
    if req["style"] != "new":
        os.chmod(path, 0o700)
    env = dict(os.environ)
    env.update(req.get("env") or {})
    argv = _interpreter_argv(req, d, args_path)
    with open(os.devnull, "rb") as fin, open(out_path, "wb") as fout, open(err_path, "wb") as ferr:
        proc = subprocess.Popen(
            argv, stdin=fin, stdout=fout, stderr=ferr, env=env, cwd=req.get("cwd") or None
        )
    # keep the Popen object: when it is collected, Popen.__del__ reaps a child that has already
    # exited, and _reap's waitpid(-1) would then wait forever for it (a fast module's run hung)
    POPENS[proc.pid] = proc
    return proc.pid


def _task_tmpdir(req: dict[str, Any]) -> str | None:
    """The per-task ``ansible-tmp-*`` directory ansible makes for a module (``_ansible_tmpdir``,
    where modules such as get_url put their files), removed after the run."""
    if not req.get("task_tmp"):
        return None
    params = json.loads(req["args"])
    margs = params.get("ANSIBLE_MODULE_ARGS")
    if not isinstance(margs, dict) or margs.get("_ansible_tmpdir") is not None:
        return None
    base = os.path.expanduser(
        os.path.expandvars(margs.get("_ansible_remote_tmp") or "~/.ansible/tmp")
    )
    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
        path = os.path.join(
            base,
            f"ansible-tmp-{time.time()}-{os.getpid()}-{random.randint(0, 2**48)}",
        )
        os.mkdir(path, 0o700)
    except OSError:
        return None  # the module makes its own (ansible-moduletmp-*) as with pipelining
    margs["_ansible_tmpdir"] = path
    req["args"] = json.dumps(params)
    return path


def op_run(req: dict[str, Any]) -> dict[str, Any] | None:
    task_tmp = _task_tmpdir(req)
    tmpdir = tempfile.mkdtemp(dir=CACHE, prefix=".run-")
    out_path = os.path.join(tmpdir, "out")
    err_path = os.path.join(tmpdir, "err")
    if req["style"] == "new" and req.get("inproc", True):
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(req, out_path, err_path)
    else:
        try:
            pid = _spawn_interpreter(req, out_path, err_path, tmpdir)
        except OSError as exc:
            shutil.rmtree(tmpdir, ignore_errors=True)
            if task_tmp:
                shutil.rmtree(task_tmp, ignore_errors=True)
            return {"rc": 127, "out": "", "err": _b64(str(exc).encode())}
    RUNNING[pid] = (req["id"], out_path, err_path, tmpdir, task_tmp)
    return None


def _reap() -> None:
    while RUNNING or CMDS:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        entry = RUNNING.pop(pid, None)
        popen = POPENS.pop(pid, None)
        if popen is not None:
            popen.returncode = status  # reaped here: the object must not wait for it again
        if pid in CMDS:
            CMDS[pid]["status"] = status
            _cmd_done(pid)
            continue
        if entry is None:
            continue
        rid, out_path, err_path, tmpdir, task_tmp = entry
        if task_tmp:
            shutil.rmtree(task_tmp, ignore_errors=True)
        if os.WIFEXITED(status):
            rc = os.WEXITSTATUS(status)
        else:
            rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else 1
        data: dict[str, str] = {}
        for key, path in (("out", out_path), ("err", err_path)):
            try:
                with open(path, "rb") as fh:
                    data[key] = _b64(fh.read())
            except OSError:
                data[key] = ""
        shutil.rmtree(tmpdir, ignore_errors=True)
        _send({"id": rid, "rc": rc, "out": data["out"], "err": data["err"]})


def op_mktemp(req: dict[str, Any]) -> dict[str, Any]:
    base = os.path.expanduser(os.path.expandvars(req.get("remote_tmp") or "~/.ansible/tmp"))
    os.makedirs(base, mode=0o700, exist_ok=True)
    return {"path": tempfile.mkdtemp(dir=base, prefix="ansible-tmp-")}


def op_write(req: dict[str, Any]) -> dict[str, Any]:
    path = os.path.expanduser(req["path"])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, req.get("mode") or 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.b64decode(req["data"]))
    return {"ok": True}


def op_rmtree(req: dict[str, Any]) -> dict[str, Any]:
    shutil.rmtree(os.path.expanduser(req["path"]), ignore_errors=True)
    return {"ok": True}


def op_exec(req: dict[str, Any]) -> dict[str, Any] | None:
    """Run a command as this agent's user (the commands of an escalated task)."""
    tmpdir = tempfile.mkdtemp(dir=CACHE, prefix=".run-")
    out_path = os.path.join(tmpdir, "out")
    err_path = os.path.join(tmpdir, "err")
    in_path = os.path.join(tmpdir, "in")
    with open(in_path, "wb") as fh:
        fh.write(base64.b64decode(req.get("stdin") or ""))
    env = dict(os.environ)
    env.update(req.get("env") or {})
    try:
        with open(in_path, "rb") as fin, open(out_path, "wb") as fout:
            with open(err_path, "wb") as ferr:
                proc = subprocess.Popen(
                    req["argv"],
                    stdin=fin,
                    stdout=fout,
                    stderr=ferr,
                    cwd=req.get("cwd") or None,
                    env=env,
                )
    except FileNotFoundError as exc:
        shutil.rmtree(tmpdir, ignore_errors=True)
        msg = f"[Errno 2] No such file or directory: {exc.filename!r}"
        return {"rc": 2, "out": "", "err": _b64(msg.encode()), "notfound": True}
    except PermissionError as exc:
        shutil.rmtree(tmpdir, ignore_errors=True)
        msg = f"[Errno 13] Permission denied: {exc.filename!r}"
        return {"rc": 13, "out": "", "err": _b64(msg.encode())}
    except OSError as exc:
        shutil.rmtree(tmpdir, ignore_errors=True)
        return {"rc": 1, "out": "", "err": _b64(str(exc).encode())}
    POPENS[proc.pid] = proc
    RUNNING[proc.pid] = (req["id"], out_path, err_path, tmpdir, None)
    return None


def op_cmd(req: dict[str, Any]) -> dict[str, Any] | None:
    """Run a command with pipes, as the small agent does (the answer comes once it exited and
    both its output pipes reached end of file)."""
    env = dict(os.environ, **req["env"]) if req.get("env") else None
    try:
        proc = subprocess.Popen(
            req["argv"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=req.get("cwd") or None,
            env=env,
        )
    except OSError as exc:
        if req.get("cwd") and exc.filename == req["cwd"]:
            return {"rc": 1, "out": "", "err": "", "chdir": [exc.errno, exc.strerror]}
        if isinstance(exc, FileNotFoundError):
            msg = f"[Errno 2] No such file or directory: {exc.filename!r}"
            return {"rc": 2, "out": "", "err": _b64(msg.encode()), "notfound": True}
        if isinstance(exc, PermissionError):
            msg = f"[Errno 13] Permission denied: {exc.filename!r}"
            return {"rc": 13, "out": "", "err": _b64(msg.encode())}
        return {"rc": 1, "out": "", "err": _b64(str(exc).encode())}
    POPENS[proc.pid] = proc
    state: dict[str, Any] = {
        "id": req["id"],
        "in": base64.b64decode(req.get("stdin") or ""),
        "out": [],
        "err": [],
        "status": None,
        "fds": {},
    }
    CMDS[proc.pid] = state
    for kind in ("in", "out", "err"):
        pipe = getattr(proc, {"in": "stdin", "out": "stdout", "err": "stderr"}[kind])
        fd = os.dup(pipe.fileno())  # this loop owns the pipe ends from here on
        pipe.close()
        os.set_blocking(fd, False)
        state["fds"][kind] = fd
        PIPES[fd] = (proc.pid, kind)
    proc.stdin = proc.stdout = proc.stderr = None
    if not state["in"]:
        _cmd_close(state["fds"]["in"])
    return None


def _cmd_close(fd: int) -> None:
    pid, kind = PIPES.pop(fd)
    os.close(fd)
    del CMDS[pid]["fds"][kind]
    _cmd_done(pid)


def _cmd_io(readable: list[int], writable: list[int]) -> None:
    """Feed the commands' stdin and collect their output (non-blocking pipe ends)."""
    for fd in writable:
        if fd not in PIPES:
            continue
        state = CMDS[PIPES[fd][0]]
        try:
            n = os.write(fd, state["in"][:65536])
        except BlockingIOError:
            continue
        except OSError:
            n = len(state["in"])  # the command closed its stdin: the rest is dropped
        state["in"] = state["in"][n:]
        if not state["in"]:
            _cmd_close(fd)
    for fd in readable:
        if fd not in PIPES:
            continue
        pid, kind = PIPES[fd]
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        except OSError:
            chunk = b""
        if chunk:
            CMDS[pid][kind].append(chunk)
        else:
            _cmd_close(fd)


def _cmd_done(pid: int) -> None:
    state = CMDS[pid]
    if state["status"] is None or "out" in state["fds"] or "err" in state["fds"]:
        return
    if "in" in state["fds"]:
        PIPES.pop(state["fds"]["in"])
        os.close(state["fds"].pop("in"))
    del CMDS[pid]
    status = state["status"]
    if os.WIFEXITED(status):
        rc = os.WEXITSTATUS(status)
    else:
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else 1
    out, err = b"".join(state["out"]), b"".join(state["err"])
    _send({"id": state["id"], "rc": rc, "out": _b64(out), "err": _b64(err)})


def op_cancel(req: dict[str, Any]) -> dict[str, Any]:
    """Kill the command of request ``target`` (its caller stopped waiting)."""
    for pid, state in list(CMDS.items()):
        if state["id"] == req["target"]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return {"ok": True}


OPS: dict[str, Any] = {
    "cancel": op_cancel,
    "cmd": op_cmd,
    "exec": op_exec,
    "have": op_have,
    "put": op_put,
    "run": op_run,
    "mktemp": op_mktemp,
    "write": op_write,
    "rmtree": op_rmtree,
}


def serve() -> None:
    global CACHE, BLOBS
    CACHE = _cache_dir(os.environ.get("FLEETKIT_REMOTE_TMP") or (sys.argv[1:] or [""])[0])
    BLOBS = os.path.join(CACHE, "blobs")
    rfd, wfd = os.pipe()
    for fd in (rfd, wfd):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wfd)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    if os.isatty(0):
        # started on a terminal (a become method that prompts): from here on the protocol's
        # bytes pass unchanged (no echo, no line editing, no CR/LF translation)
        import tty

        tty.setraw(0)
    hello = {"pid": os.getpid(), "uid": os.geteuid(), "cache": CACHE, "python": sys.executable}
    OUT.write(b"FKMOD 1 " + json.dumps(hello).encode() + b"\n")
    OUT.flush()
    buf = b""
    stdin_open = True
    while stdin_open or RUNNING or CMDS:
        rlist = [0, rfd] if stdin_open else [rfd]
        rlist += [fd for fd, (_pid, kind) in PIPES.items() if kind != "in"]
        wlist = [fd for fd, (_pid, kind) in PIPES.items() if kind == "in"]
        try:
            ready, writable, _ = select.select(rlist, wlist, [], 5.0)
        except InterruptedError:
            ready, writable = [], []
        except OSError as exc:
            if exc.errno == errno.EINTR:
                ready, writable = [], []
            else:
                raise
        if PIPES:
            _cmd_io(ready, writable)
        if rfd in ready:
            try:
                while os.read(rfd, 4096):
                    pass
            except OSError:
                pass
        _reap()
        if 0 not in ready:
            continue
        try:
            chunk = os.read(0, 1 << 20)
        except OSError:
            chunk = b""  # a terminal whose other side closed (EIO)
        if not chunk:
            stdin_open = False
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.strip():
                continue
            req = json.loads(line.decode("utf-8"))
            if req.get("op") == "bye":
                stdin_open = False  # the runs in flight finish, then the agent exits
                break
            try:
                resp = OPS[req["op"]](req)
            except Exception as exc:
                resp = {"error": f"{type(exc).__name__}: {exc}"}
            if resp is not None:
                resp["id"] = req["id"]
                _send(resp)
        _reap()


if __name__ == "__main__":
    serve()
