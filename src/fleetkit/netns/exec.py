"""Carry out an nsenter :class:`~fleetkit.netns.plan.Plan` the way util-linux nsenter does.

Order (util-linux sys-utils/nsenter.c): with ``-a`` add every namespace the kernel supports
(the user namespace only if it differs from ours); open every namespace file, ``-r`` and ``-w``
before entering anything; drop supplementary groups early when a user namespace is entered
(credentials default to 0/0 there unless ``--preserve-credentials``); enter all namespaces but
the user one ignoring errors, then whatever is left including user, reporting errors (so root
deprivileging into a container and an unprivileged owner of a user namespace both work);
chroot for ``-r``, chdir for ``-w``/``-W``; fork when a pid namespace was entered (unless
``-F``) and relay the child's status; setgroups/setgid/setuid; exec the program or the shell.
"""

from __future__ import annotations

import errno
import os
import sys

from fleetkit.netns import _syscalls as sc

# imported up front: after entering a mount namespace or chroot, fleetkit's files may be gone
from fleetkit.netns.errors import EnterError, from_oserror
from fleetkit.netns.namespaces import KINDS
from fleetkit.netns.plan import Plan

__all__ = ["enter_and_exec", "exit_code_of"]

_SIGPIPE, _SIGXFSZ, _SIGINT, _SIGQUIT, _SIGSTOP, _SIGCONT = 13, 25, 2, 3, 19, 18


def _fail(message: str, exc: OSError | None = None, pid: int | None = None) -> Exception:
    if exc is not None:
        return from_oserror(exc, message, pid)
    return EnterError(message)


def _open(path: str, pid: int | None, what: str | None = None) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise _fail(what or f"cannot open {path}", exc, pid) from None


def _usable(name: str, target: int) -> bool:
    """util-linux is_usable_namespace: kernel supports it, and user ns differs from ours."""
    try:
        mine = os.stat(f"/proc/self/ns/{name}")
    except FileNotFoundError:
        return False
    if name == "user":
        try:
            theirs = os.stat(f"/proc/{target}/ns/{name}")
        except OSError as exc:
            raise _fail(f"stat of /proc/{target}/ns/{name} failed", exc, target) from None
        return (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino)
    return True


def _which(program: str) -> str:
    if "/" in program:
        return program
    for directory in os.get_exec_path():
        path = os.path.join(directory, program)
        if os.path.isfile(path):
            return path
    return program


def exit_code_of(status: int) -> int:
    """Shell-style exit code of a waitpid status."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return 1


def _continue_as_child() -> None:
    """Fork; the child returns, the parent relays stops and exits with the child's status."""
    sc.default_signals(_SIGINT, _SIGQUIT, _SIGPIPE, _SIGXFSZ)
    child = os.fork()
    if child == 0:
        return
    while True:
        try:
            _, status = os.waitpid(child, os.WUNTRACED)
        except InterruptedError:
            continue
        if os.WIFSTOPPED(status):
            os.kill(os.getpid(), _SIGSTOP)
            os.kill(child, _SIGCONT)
            continue
        break
    sys.stdout.flush()
    if os.WIFEXITED(status):
        os._exit(os.WEXITSTATUS(status))
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        sc.default_signals(signum)
        os.kill(os.getpid(), signum)
    os._exit(1)


def enter_and_exec(plan: Plan) -> int:
    """Enter, then exec ``plan.argv`` (or the shell). Returns only through an exception.

    Raises NetnsError subclasses (exit 1) for every failure util-linux reports with exit 1;
    an exec failure exits 126 (or 127 when the program does not exist), as util-linux does.
    """
    target = plan.target
    if plan.all and target is not None:
        for name, _t, _s, _l in KINDS:
            if name not in plan.namespaces and _usable(name, target):
                plan.namespaces[name] = None

    # Open every namespace file (and -r/-w directories) before entering anything.
    fds: list[tuple[str, int, int]] = []  # (name, nstype, fd)
    for name, nstype, path in plan.ordered():
        if path is None:
            if target is None:
                raise _fail(f"neither filename nor target pid supplied for ns/{name}")
            path = f"/proc/{target}/ns/{name}"
        fds.append((name, nstype, _open(path, target)))

    root_fd = wd_fd = -1
    if plan.root is not None:
        root_fd = _open(plan.root, target)
    elif plan.root_from_target:
        if target is None:
            raise _fail("neither filename nor target pid supplied for root")
        root_fd = _open(f"/proc/{target}/root", target)
    if plan.wd is not None:
        wd_fd = _open(plan.wd, target)
    elif plan.wd_from_target:
        if target is None:
            raise _fail("neither filename nor target pid supplied for cwd")
        wd_fd = _open(f"/proc/{target}/cwd", target)

    entered = {name for name, _t, _f in fds}
    do_fork = plan.fork if plan.fork is not None else "pid" in entered
    force_uid, force_gid = plan.uid is not None, plan.gid is not None
    uid, gid = plan.uid or 0, plan.gid or 0
    setgroups_failed = False
    if "user" in entered and not plan.preserve_credentials:
        force_uid = force_gid = True
        try:
            os.setgroups([])
        except OSError:
            setgroups_failed = True

    # Two passes: everything but user ignoring errors, then what is left, reporting errors.
    pending = [entry for entry in fds if entry[0] != "user"]
    for entry in list(pending):
        try:
            sc.setns(entry[2], entry[1])
        except OSError:
            continue
        pending.remove(entry)
        os.close(entry[2])
    pending = [entry for entry in fds if entry[0] == "user" or entry in pending]
    for name, nstype, fd in pending:
        try:
            sc.setns(fd, nstype)
        except OSError as exc:
            raise _fail(f"reassociate to namespace 'ns/{name}' failed", exc) from None
        os.close(fd)

    if root_fd >= 0 and wd_fd < 0 and plan.wdns is None:
        wd_fd = _open(".", None, "cannot open current working directory")
    if root_fd >= 0:
        try:
            os.fchdir(root_fd)
        except OSError as exc:
            raise _fail("change directory by root file descriptor failed", exc) from None
        try:
            os.chroot(".")
            os.chdir("/")
        except OSError as exc:
            raise _fail("chroot failed", exc) from None
        os.close(root_fd)
    if plan.wdns is not None:
        wd_fd = _open(plan.wdns, None, "cannot open current working directory")
    if wd_fd >= 0:
        try:
            os.fchdir(wd_fd)
        except OSError as exc:
            raise _fail(
                "change directory by working directory file descriptor failed", exc
            ) from None
        os.close(wd_fd)

    if do_fork:
        _continue_as_child()

    if force_uid or force_gid:
        try:
            if force_gid:
                try:
                    os.setgroups([])
                except OSError:
                    if setgroups_failed:
                        raise
                os.setgid(gid)
            if force_uid:
                os.setuid(uid)
        except OSError as exc:
            raise _fail("setuid()/setgid() failed", exc) from None

    sc.default_signals(_SIGPIPE, _SIGXFSZ)
    sys.stdout.flush()
    sys.stderr.flush()
    if plan.argv:
        program, args = plan.argv[0], plan.argv
    else:
        program = os.environ.get("SHELL") or "/bin/sh"
        args = ["-" + os.path.basename(program)]
    try:
        try:
            os.execvp(program, args)
        except OSError as exc:
            if exc.errno != errno.ENOEXEC:
                raise
            # glibc's execvp runs a file without a #! line with /bin/sh; so does nsenter
            os.execv("/bin/sh", ["/bin/sh", _which(program), *args[1:]])
    except OSError as exc:
        error = EnterError(f"failed to execute {program}: {exc.strerror}")
        error.exit_code = 127 if exc.errno == errno.ENOENT else 126
        raise error from None
    raise AssertionError("unreachable")
