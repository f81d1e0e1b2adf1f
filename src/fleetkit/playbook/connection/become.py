"""Privilege escalation through ansible's own become plugins.

Every become plugin ansible's loader finds (``ansible.builtin.sudo``/``su``/``runas``, the
collections' ``community.general.doas``, ``dzdo``, ``ksu``, ``machinectl``, ``pbrun``,
``pfexec``, ``pmrun``, ``sesu``, ``sudosu`` ..., FQCN or short name) is used from its own code:
its options are resolved as ansible resolves them (the task's keywords, the plugin's variables,
ansible.cfg and the environment), its ``build_become_command`` builds the command line (with its
``BECOME-SUCCESS-`` marker), and what the command prints before the marker is read the way
ansible's ``ssh`` and ``local`` connection plugins read it: the password is sent when the
plugin's ``check_password_prompt`` sees its prompt, ``check_success`` ends the negotiation,
``check_incorrect_password`` / ``check_missing_password`` fail it with ansible's messages.

fleetkit escalates once per (host, become) for its module agent, which then keeps running as
the become user (:mod:`fleetkit.playbook.connection.agent`); commands that need escalation run
through that agent.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fleetkit.playbook.connection import Become, BecomeFailed, Connection, Unreachable

__all__ = [
    "Escalation",
    "Negotiated",
    "TmpShare",
    "plugin_pipelining",
    "resolve_become",
    "tty_refusal",
    "invalid_method_message",
    "share_tmp_files",
    "sh_plugin",
]

_BASE = ("become_user", "become_exe", "become_flags", "become_pass")
_lock = threading.Lock()
_resolved: dict[tuple[Any, ...], Become] = {}
_plugin_vars: dict[str, list[str]] = {}


def invalid_method_message(name: str) -> str:
    """ansible's message for a become method no plugin provides."""
    return (
        f"Invalid become method specified, could not find matching plugin: '{name}'. "
        "Use `ansible-doc -t become -l` to list available plugins."
    )


_load_lock = threading.Lock()


def _load(name: str) -> Any:
    from fleetkit.playbook import plugins

    plugins._init()
    from ansible.plugins.loader import become_loader

    # one import of a collection's plugin at a time (a concurrent one sees a half module)
    with _load_lock:
        return become_loader.get(name)


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, str):
        return str(value)
    return value


def resolve_become(
    method: str,
    keywords: Mapping[str, Any],
    lookup: Callable[[str], tuple[bool, Any]],
) -> Become:
    """The become plugin ``method`` with its options resolved as ansible's task executor does.

    ``keywords``: the task's become_user / become_flags / become_exe keywords that are set
    (and ``become_pass`` from -K); ``lookup(name)`` -> (present, templated value) of a host
    variable. Raises :class:`BecomeFailed` with ansible's message for an unknown method.
    """
    plugin = _load(method)
    if plugin is None:
        raise BecomeFailed(invalid_method_message(method))
    load_name = str(plugin._load_name)
    name = str(getattr(plugin, "ansible_name", None) or load_name)
    with _lock:
        names = _plugin_vars.get(load_name)
    if names is None:
        from ansible import constants as C

        names = list(C.config.get_plugin_vars("become", load_name))
        with _lock:
            _plugin_vars[load_name] = names
    from fleetkit.playbook.plugins import _arg

    var_options: dict[str, Any] = {}
    for var in names:
        present, value = lookup(var)
        if present:
            var_options[var] = _arg(value)  # plain str: ansible tags its own values
    keywords = {k: _arg(v) for k, v in keywords.items()}
    key = (
        name,
        tuple(sorted((k, repr(v)) for k, v in keywords.items())),
        tuple(sorted((k, repr(v)) for k, v in var_options.items())),
    )
    with _lock:
        done = _resolved.get(key)
    if done is not None:
        return done
    plugin.set_options(task_keys=dict(keywords), var_options=var_options)
    opts: dict[str, Any] = dict(getattr(plugin, "_options", {}))
    password = opts.get("become_pass")
    exe = opts.get("become_exe")
    out = Become(
        user=str(opts.get("become_user") or ""),
        method=str(plugin.name or name),
        flags=str(opts.get("become_flags") or ""),
        password=None if password is None else str(password),
        exe=None if exe in (None, "") else str(exe),
        plugin=name,
        options=tuple(sorted((k, _freeze(v)) for k, v in opts.items() if k not in _BASE)),
    )
    with _lock:
        _resolved[key] = out
    return out


def sh_plugin() -> Any:
    """A fresh instance of ansible's ``sh`` shell plugin (loaded one thread at a time)."""
    from fleetkit.playbook import plugins

    plugins._init()
    from ansible.plugins.loader import shell_loader

    with _load_lock:
        return shell_loader.get("sh")


def _shell() -> Any:
    shell = sh_plugin()
    shell.executable = "/bin/sh"
    return shell


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What an escalated process printed before (and, on stdout, just after) its marker."""

    stdout: bytes
    stderr: bytes
    escalated: bool


class Escalation:
    """One escalation: a fresh instance of the become plugin with the task's options."""

    def __init__(self, become: Become) -> None:
        self.become = become
        plugin = _load(become.plugin)
        if plugin is None:
            raise BecomeFailed(invalid_method_message(become.plugin))
        direct: dict[str, Any] = {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in become.options
        }
        direct.update(
            become_user=become.user,
            become_flags=become.flags,
            become_pass=become.password,
        )
        if become.exe:
            direct["become_exe"] = become.exe
        plugin.set_options(direct=direct)
        self.plugin = plugin

    def command(self, cmd: str) -> str:
        """The plugin's command line that runs shell command ``cmd`` as the become user."""
        return str(self.plugin.build_become_command(cmd, _shell()))

    @property
    def escalates(self) -> bool:
        """False for a plugin whose command line is the command itself (runas on POSIX)."""
        return bool(self.plugin.success)

    @property
    def wants_tty(self) -> bool:
        """The plugin expects a password prompt: ansible runs the command on a terminal."""
        return bool(self.plugin.expect_prompt())

    @property
    def name(self) -> str:
        """The plugin's name in ansible's messages."""
        return str(self.plugin.name)

    def _password(self) -> bytes:
        return (self.become.password or "").encode("utf-8", "surrogateescape") + b"\n"

    def negotiate_ssh(
        self,
        out_fd: int,
        err_fd: int | None,
        write: Callable[[bytes], None],
        timeout_s: float,
        terminate: Callable[[], None],
    ) -> Negotiated:
        """ansible's ssh connection's state machine up to the success marker.

        Raises :class:`BecomeFailed` ("Incorrect su password", "Missing sudo password") or
        :class:`Unreachable` ("Timeout (12s) waiting for privilege escalation prompt: ...");
        returns ``escalated=False`` with the output when the process ended first.
        """
        p = self.plugin
        awaiting_prompt, awaiting_escalation, ready = 0, 1, 2
        state = awaiting_prompt if p.prompt else awaiting_escalation
        flags = {"prompt": False, "success": False, "error": False, "nopass": False}
        names = {out_fd: "out"} | ({err_fd: "err"} if err_fd is not None else {})
        open_fds = set(names)
        tmp = {"out": b"", "err": b""}
        kept = {"out": b"", "err": b""}

        def examine(chunk: bytes) -> tuple[bytes, bytes]:
            output: list[bytes] = []
            for line in chunk.splitlines(True):
                suppress = False
                if p.expect_prompt() and p.check_password_prompt(line):
                    flags["prompt"] = suppress = True
                elif p.success and p.check_success(line):
                    flags["success"] = suppress = True
                elif p.check_incorrect_password(line):
                    flags["error"] = True
                elif p.check_missing_password(line):
                    flags["nopass"] = True
                if not suppress:
                    output.append(line)
            remainder = b""
            if output and not output[-1].endswith(b"\n"):
                remainder = output.pop()
            return b"".join(output), remainder

        while True:
            ready_fds = select.select(list(open_fds), [], [], timeout_s)[0] if open_fds else []
            if not ready_fds and open_fds:
                terminate()
                shown = kept["out"].decode(errors="replace")
                msg = (
                    f"Timeout ({int(timeout_s)}s) waiting for privilege escalation prompt: {shown}"
                )
                raise Unreachable(msg.rstrip())  # ansible's messages are stripped
            for fd in ready_fds:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    open_fds.discard(fd)
                tmp[names[fd]] += chunk
            for name in ("out", "err"):
                if tmp[name]:
                    done, tmp[name] = examine(tmp[name])
                    kept[name] += done
            if state == awaiting_prompt:
                if flags["prompt"]:
                    write(self._password())
                    flags["prompt"] = False
                    state = awaiting_escalation
                elif flags["success"]:
                    state = awaiting_escalation
            if state == awaiting_escalation:
                if flags["success"]:
                    state = ready
                elif flags["error"] or flags["prompt"]:
                    terminate()
                    raise BecomeFailed(f"Incorrect {self.name} password")
                elif flags["nopass"]:
                    terminate()
                    raise BecomeFailed(f"Missing {self.name} password")
            if state == ready:
                return Negotiated(kept["out"] + tmp["out"], kept["err"] + tmp["err"], True)
            if not open_fds:
                return Negotiated(kept["out"] + tmp["out"], kept["err"] + tmp["err"], False)

    def negotiate_local(
        self,
        out_fd: int,
        err_fd: int,
        write: Callable[[bytes], None],
        timeout_s: float,
    ) -> Negotiated:
        """ansible's local connection's wait for the success marker (its own messages:
        "Timed out waiting for become success or become password prompt." ...)."""
        p = self.plugin
        bufs = {out_fd: bytearray(), err_fd: bytearray()}
        offsets = {out_fd: 0, err_fd: 0}
        open_fds = {out_fd, err_fd}
        expect = bool(p.expect_prompt())
        sent = False
        start = time.monotonic()

        def message(reason: str) -> str:
            text = f"{reason} waiting for become success"
            if expect and not sent:
                text += " or become password prompt"
            text += "."
            if bufs[out_fd]:
                text += f"\n>>> Standard Output\n{bytes(bufs[out_fd]).decode(errors='replace')}"
            if bufs[err_fd]:
                text += f"\n>>> Standard Error\n{bytes(bufs[err_fd]).decode(errors='replace')}"
            return text.rstrip()  # as ansible's error messages

        while not p.check_success(bytes(bufs[out_fd])):
            if not open_fds:
                raise BecomeFailed(message("Premature end of stream"))
            if expect and any(p.check_password_prompt(bytes(bufs[f][offsets[f] :])) for f in bufs):
                if sent:
                    raise BecomeFailed(message("Duplicate become password prompt encountered"))
                offsets = {f: len(b) for f, b in bufs.items()}
                write(self._password())
                sent = True
            remaining = timeout_s - (time.monotonic() - start)
            ready_fds = select.select(list(open_fds), [], [], remaining)[0] if remaining > 0 else []
            if not ready_fds:
                raise Unreachable(message("Timed out"))
            for fd in ready_fds:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if chunk:
                    bufs[fd] += chunk
                else:
                    open_fds.discard(fd)
        out = bytes(bufs[out_fd])
        marker = re.escape(str(p.success).encode())
        after = re.sub(rb"^.*?" + marker + rb"\s*", b"", out, count=1, flags=re.DOTALL)
        return Negotiated(after, bytes(bufs[err_fd]), True)


def tty_refusal(become: Become, conn: Connection, ssh_args: str) -> str | None:
    """ansible's error for a plugin that needs a terminal (``require_tty``: machinectl) over
    an ssh connection whose arguments request none (``-t``/``-tt``, ``RequestTTY=yes|force``)."""
    plugin = _load(become.plugin)
    if conn.local or not getattr(plugin, "require_tty", False):
        return None
    args = shlex.split(f"{ssh_args} {getattr(conn, 'extra_args', '') or ''}")
    for i, arg in enumerate(args):
        if re.fullmatch(r"-t+", arg):
            return None
        opt = arg[2:] if arg.startswith("-o") and len(arg) > 2 else None
        if arg == "-o" and i + 1 < len(args):
            opt = args[i + 1]
        if opt is not None:
            name, _, value = opt.replace("=", " ", 1).partition(" ")
            if name.strip().lower() == "requesttty" and value.strip().lower() in ("yes", "force"):
                return None
    return (
        "The 'ssh' connection does not provide a TTY which is required for the selected "
        f"become plugin: {plugin.name}."
    )


def plugin_pipelining(become: Become) -> bool:
    """Whether the become plugin allows pipelining (``su``, ``ksu``... do not)."""
    plugin = _load(become.plugin)
    return bool(getattr(plugin, "pipelining", True))


@dataclass(frozen=True, slots=True)
class TmpShare:
    """How a login user would share its temporary files with an unprivileged become user:
    ansible's error when no way works, and the warnings it prints on the way."""

    error: str | None
    warnings: tuple[str, ...] = ()


_shares_lock = threading.Lock()
_shares: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], TmpShare]] = (
    weakref.WeakKeyDictionary()
)


def _doclink() -> str:
    from ansible.utils.plugin_docs import get_versioned_doclink

    link = get_versioned_doclink("playbook_guide/playbooks_privilege_escalation.html")
    return f"{link}#risks-of-becoming-an-unprivileged-user"


def share_tmp_files(
    conn: Connection,
    become_user: str,
    remote_user: str | None,
    admin_users: list[str],
    common_group: str | None,
    world_readable: bool,
) -> TmpShare:
    """ansible's ``_fixup_perms2`` for an unprivileged become user, tried on files like the
    ones ansible would upload (a ``/var/tmp/ansible-tmp-*`` directory and a module file made
    by the login user): setfacl, chown, ``chmod +a``, ``chmod A+user``, the common remote
    group, world-readable files; the first that works shares them. Once per connection."""
    key = (become_user, remote_user, tuple(admin_users), common_group, world_readable)
    with _shares_lock:
        done = _shares.get(conn, {}).get(key)
    if done is not None:
        return done
    made = conn.run(
        "umask 77 && d=$(mktemp -d /var/tmp/ansible-tmp-XXXXXXXXXX) && "
        'touch "$d/AnsiballZ_module.py" && echo "$d"'
    )
    top = made.stdout.decode(errors="replace").strip()
    if made.rc != 0 or not top.startswith("/"):
        return TmpShare(None)  # no tmp files here either: the module's own run tells
    paths = [top, f"{top}/AnsiballZ_module.py"]
    try:
        out = _fixup(
            conn, paths, become_user, remote_user, admin_users, common_group, world_readable
        )
    finally:
        conn.run(f"rm -rf {shlex.quote(top)}")
    with _shares_lock:
        _shares.setdefault(conn, {})[key] = out
    return out


def _fixup(
    conn: Connection,
    paths: list[str],
    user: str,
    remote_user: str | None,
    admin_users: list[str],
    group: str | None,
    world_readable: bool,
) -> TmpShare:
    def run(*argv: str) -> tuple[int, str]:
        res = conn.run(shlex.join([*argv, *paths]))
        return res.rc, res.stderr.decode(errors="replace")

    def run_acl(first: str, mode: str) -> tuple[int, str]:
        res = conn.run(shlex.join(["chmod", mode, first, *paths]))
        return res.rc, res.stderr.decode(errors="replace")

    warnings: list[str] = []
    rc, err = run("setfacl", "-m", f"u:{user}:r-x")
    if rc == 0:
        return TmpShare(None)
    rc, err = run("chmod", "u+rwx")
    if rc != 0:
        return TmpShare(
            f"Failed to set file mode or acl on remote temporary files (rc: {rc}, err: {err})"
        )
    rc, err = run("chown", user)
    if rc == 0:
        return TmpShare(None)
    if remote_user in admin_users:
        return TmpShare(
            "Failed to change ownership of the temporary files Ansible (via chmod nor setfacl) "
            "needs to create despite connecting as a privileged user. Unprivileged become user "
            "would be unable to read the file."
        )
    rc, err = run_acl(f"{user} allow read,execute", "+a")
    if rc == 0:
        return TmpShare(None)
    rc, err = run("chmod", f"A+user:{user}:rx:allow")
    if rc == 0:
        return TmpShare(None)
    link = _doclink()
    if group is not None:
        rc, err = run("chgrp", group)
        if rc == 0:
            if world_readable:
                warnings.append(
                    "Both common_remote_group and allow_world_readable_tmpfiles are set. chgrp "
                    "was successful, but there is no guarantee that Ansible will be able to "
                    "read the files after this operation, particularly if common_remote_group "
                    "was set to a group of which the unprivileged become user is not a member. "
                    "In this situation, allow_world_readable_tmpfiles is a no-op. See this URL "
                    f"for more details: {link}"
                )
            rc, err = run("chmod", "g+rwx")
            if rc == 0:
                return TmpShare(None, tuple(warnings))
    if world_readable:
        warnings.append(
            "Using world-readable permissions for temporary files Ansible needs to create when "
            "becoming an unprivileged user. This may be insecure. For information on securing "
            f"this, see {link}"
        )
        rc, err = run("chmod", "a+rx")
        if rc == 0:
            return TmpShare(None, tuple(warnings))
        return TmpShare(
            f"Failed to set file mode on remote files (rc: {rc}, err: {err})", tuple(warnings)
        )
    return TmpShare(
        "Failed to set permissions on the temporary files Ansible needs to create when "
        f"becoming an unprivileged user (rc: {rc}, err: {err}}}). For information on "
        f"working around this, see {link}",
        tuple(warnings),
    )
