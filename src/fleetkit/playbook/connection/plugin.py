"""ansible connection plugins from directories (``connection_plugins/`` beside the playbook,
the ``connection_plugins`` setting, ``ANSIBLE_CONNECTION_PLUGINS``), run as ansible's own code.

:class:`PluginConnection` is fleetkit's :class:`~fleetkit.playbook.connection.Connection` over
one such plugin: commands go through its ``exec_command``, files through ``put_file``. The
plugin's ``AnsibleConnectionFailure`` is the host being unreachable, as in ansible. Modules run
the way ansible runs them over a plugin: a temporary directory is made with ``exec_command``, the
module agent is sent with ``put_file`` and run once with the module's payload and arguments on
its stdin (:meth:`PluginConnection.run_agent_batch`). Privilege escalation over a plugin is
refused.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

from fleetkit.playbook.connection import Become, CommandResult, Unreachable
from fleetkit.playbook.errors import ModuleError

__all__ = ["PluginConnection", "find_connection_plugin", "set_connection_plugin_paths"]

_DEFAULT_PATHS = ("~/.ansible/plugins/connection", "/usr/share/ansible/plugins/connection")
_lock = threading.Lock()
_configured: list[str] | None = None
_adjacent: list[str] = []


def set_connection_plugin_paths(paths: list[str] | None) -> None:
    """The ``connection_plugins`` setting (ansible.cfg / ``ANSIBLE_CONNECTION_PLUGINS``)."""
    global _configured
    with _lock:
        _configured = None if paths is None else [os.path.expanduser(p) for p in paths if p]


def add_connection_plugin_dir(path: str) -> None:
    """Connection plugins in ``path`` (``connection_plugins/`` beside a playbook or in a role)."""
    if os.path.isdir(path):
        path = os.path.abspath(path)
        with _lock:
            if path not in _adjacent:
                _adjacent.append(path)


def _search_dirs() -> list[str]:
    with _lock:
        configured = _configured
        adjacent = list(_adjacent)
    if configured is None:
        env = os.environ.get("ANSIBLE_CONNECTION_PLUGINS")
        raw = env.split(os.pathsep) if env else list(_DEFAULT_PATHS)
        configured = [os.path.expanduser(p) for p in raw if p]
    return [*configured, *adjacent]


def find_connection_plugin(name: str) -> str | None:
    """The file of connection plugin ``name`` (short or ``ansible.legacy.``) in a directory."""
    short = name.removeprefix("ansible.legacy.")
    if "." in short:
        return None
    for d in _search_dirs():
        candidate = os.path.join(d, f"{short}.py")
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    return None


def _connection_failure() -> type[BaseException]:
    from ansible.errors import AnsibleConnectionFailure

    failure: type[BaseException] = AnsibleConnectionFailure
    return failure


def _connection_vars(variables: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in variables:
        if key.startswith("ansible_") and key not in ("ansible_facts", "ansible_local"):
            try:
                out[key] = variables[key]
            except Exception:  # noqa: BLE001 - a variable that does not render is no option
                continue
    return out


class PluginConnection:
    """fleetkit's connection interface over an ansible connection plugin instance."""

    local = False

    def __init__(
        self, name: str, kind: str, path: str, variables: Mapping[str, Any], user: str | None
    ) -> None:
        self.name = name
        self.kind = kind
        self.path = path
        self.user = user
        self._variables = variables
        self._plugin: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._plugin is not None:
                return self._plugin
            from fleetkit.playbook import plugins

            plugins._init()
            from ansible.playbook.play_context import PlayContext
            from ansible.plugins.loader import connection_loader

            connection_loader.add_directory(os.path.dirname(self.path))
            pc = PlayContext()
            pc.remote_addr = str(self._variables.get("ansible_host", self.name))
            if self.user:
                pc.remote_user = self.user
            plugin = connection_loader.get(self.kind, pc, "/dev/null")
            if plugin is None:
                raise Unreachable(f"the connection plugin '{self.kind}' ({self.path}) did not load")
            # the host's ansible_* variables: the plugin picks those its options name
            plugin.set_options(var_options=_connection_vars(self._variables))
            self._plugin = plugin
            return plugin

    def _call(self, what: str, *args: Any, **kwargs: Any) -> Any:
        plugin = self._load()
        failure = _connection_failure()
        try:
            if not plugin.connected:
                plugin._connect()
            return getattr(plugin, what)(*args, **kwargs)
        except failure as exc:
            raise Unreachable(getattr(exc, "message", None) or str(exc)) from None

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
        """Run a command through the plugin's ``exec_command``."""
        if become is not None:
            raise ModuleError(
                f"privilege escalation over the connection plugin '{self.kind}' ({self.path}) "
                "is not supported by fleetkit play"
            )
        text = shlex.join(cmd) if isinstance(cmd, list) else cmd
        if cwd:
            text = f"cd {shlex.quote(cwd)} && {text}"
        if env:
            text = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + text
        rc, out, err = self._call("exec_command", text, in_data=stdin, sudoable=False)
        return CommandResult(int(rc), bytes(out), bytes(err))

    def put(self, data: bytes, path: str, mode: int | None = None) -> None:
        """Send a file through the plugin's ``put_file``."""
        fd, local = tempfile.mkstemp(prefix="fleetkit-put-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            self._call("put_file", local, path)
        finally:
            os.unlink(local)
        if mode is not None:
            self.run(f"chmod {mode:o} {shlex.quote(path)}")

    def run_agent_batch(
        self, agent_source: str, python: str, remote_tmp: str, requests: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Run the module agent once over the plugin with ``requests`` on its stdin; return its
        responses (ansible's way over a plugin: make a tmp dir, put the code, exec it)."""
        made = self.run(
            f"umask 77 && mkdir -p {remote_tmp} && mktemp -d {remote_tmp}/ansible-tmp-XXXXXXXX"
        )
        tmpdir = made.stdout.decode().strip()
        if made.rc != 0 or not tmpdir:
            raise Unreachable(
                f"Failed to create temporary directory on {self.name}: "
                f"{made.stderr.decode(errors='replace').strip()}"
            )
        try:
            agent = f"{tmpdir}/fleetkit_agent.py"
            self.put(agent_source.encode(), agent)
            stdin = b"".join(json.dumps(r).encode() + b"\n" for r in requests)
            res = self.run(f"{python} {agent} {shlex.quote(remote_tmp)}", stdin=stdin)
        finally:
            self.run(f"rm -rf {shlex.quote(tmpdir)}")
        responses: list[dict[str, Any]] = []
        for line in res.stdout.splitlines():
            if line.startswith(b"{"):
                try:
                    responses.append(json.loads(line))
                except ValueError:
                    continue
        if not any(line.startswith(b"FKMOD 1 ") for line in res.stdout.splitlines()):
            raise ModuleError(
                f"the module agent did not start over '{self.kind}': "
                f"{res.stderr.decode(errors='replace').strip()}"
            )
        return responses

    def close(self) -> None:
        """Close the plugin's connection."""
        if self._plugin is not None:
            try:
                self._plugin.close()
            except Exception:  # noqa: BLE001 - closing a broken plugin is best effort, as ansible
                pass
