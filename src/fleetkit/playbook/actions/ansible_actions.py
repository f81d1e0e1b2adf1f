"""ansible's own action plugins (``ActionBase`` subclasses) from ``action_plugins/`` directories
and collections, run on the controller behind a shim backed by fleetkit's connection and agent.

Where ansible finds them: ``action_plugins/`` beside the playbook and in each role, the
``action_plugins`` setting (ansible.cfg, ``ANSIBLE_ACTION_PLUGINS``; default
``~/.ansible/plugins/action:/usr/share/ansible/plugins/action``), and a collection's
``plugins/action/<name>.py`` for its FQCN. A plugin from a directory overrides a module or
fleetkit action of the same short name (``ansible.legacy``), as in ansible.

The plugin runs as ansible's code with ansible's loader, a real ``Task`` and ``PlayContext``.
What it asks of the host goes through fleetkit: ``_execute_module`` runs the module on the
host's agent, ``_low_level_execute_command`` and file transfers use fleetkit's connection, and
``self._templar`` renders with fleetkit's templar. A plugin that needs a part of ansible's
executor the shim does not provide fails its task with a message naming that part: it never
reports ok without having done its work.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from functools import lru_cache
from typing import Any

from fleetkit.playbook.errors import ModuleError
from fleetkit.playbook.modules import Module, ModuleContext
from fleetkit.playbook.plugins import ShimMissing, TemplarShim

__all__ = [
    "ShimMissing",
    "add_action_plugin_dir",
    "set_action_plugin_paths",
    "find_action_plugin",
    "action_plugin_module",
]

_DEFAULT_PATHS = ("~/.ansible/plugins/action", "/usr/share/ansible/plugins/action")
_lock = threading.RLock()
_adjacent: list[str] = []  # action_plugins/ beside playbooks and in roles, in load order
_configured: list[str] | None = None  # the action_plugins setting (None: environment/default)
_loaded: set[str] = set()  # directories handed to ansible's action loader
_ready = False
_MODULE_FAILURE = "_fk_module_failure"


def add_action_plugin_dir(path: str) -> None:
    """Action plugins in ``path`` (``action_plugins/`` beside a playbook or in a role) resolve
    from here on, as ansible adds them when it loads the playbook or role."""
    if not os.path.isdir(path):
        return
    path = os.path.abspath(path)
    with _lock:
        if path not in _adjacent:
            _adjacent.append(path)


def set_action_plugin_paths(paths: list[str] | None) -> None:
    """The ``action_plugins`` setting (ansible.cfg / ``ANSIBLE_ACTION_PLUGINS``)."""
    global _configured
    with _lock:
        _configured = None if paths is None else [os.path.expanduser(p) for p in paths if p]


def _search_dirs() -> list[str]:
    with _lock:
        configured = _configured
        adjacent = list(_adjacent)
    if configured is None:
        env = os.environ.get("ANSIBLE_ACTION_PLUGINS")
        configured = (
            [os.path.expanduser(p) for p in env.split(os.pathsep) if p]
            if env
            else [os.path.expanduser(p) for p in _DEFAULT_PATHS]
        )
    return [*configured, *adjacent]


def _short_legacy(name: str) -> str | None:
    """The short name a task's action looks up in plugin directories (ansible.legacy)."""
    if name.startswith("ansible.legacy."):
        return name[len("ansible.legacy.") :]
    if "." not in name:
        return name
    return None


# ansible-core's own action plugins fleetkit runs through the shim rather than natively, with
# their BYPASS_HOST_LOOP (pause runs once for the batch)
ANSIBLE_CORE_ACTIONS = {"pause": True, "set_stats": False}


def core_action_plugin(name: str) -> str | None:
    """The file of ansible-core's own action plugin for a builtin ``name`` fleetkit runs as
    ansible's code (``pause``: its prompts are ansible's Display's; ``set_stats``)."""
    short = name.removeprefix("ansible.builtin.").removeprefix("ansible.legacy.")
    if short not in ANSIBLE_CORE_ACTIONS or ("." in short):
        return None
    from fleetkit.playbook.modules import _finder

    base = _finder._ansible_dir()
    return os.path.join(base, "plugins", "action", f"{short}.py") if base else None


def find_action_plugin(name: str) -> str | None:
    """The file of the action plugin a task named ``name`` runs through (a directory's or a
    collection's), or None when fleetkit's own dispatch applies. Reads no Python."""
    short = _short_legacy(name)
    if short is not None:
        return _in_dirs(short, tuple(_search_dirs()))
    return _in_collection(name)


@lru_cache(maxsize=4096)
def _in_dirs(short: str, dirs: tuple[str, ...]) -> str | None:
    for d in dirs:
        candidate = os.path.join(d, f"{short}.py")
        if os.path.isfile(candidate):
            return candidate
    return None


@lru_cache(maxsize=4096)
def _in_collection(name: str) -> str | None:
    parts = name.split(".")
    if len(parts) != 3 or parts[0] == "ansible" and parts[1] in ("builtin", "legacy"):
        return None
    from fleetkit.playbook.modules import _finder

    cdir = _finder._collection_dir(parts[0], parts[1])
    if cdir is None:
        return None
    candidate = os.path.join(cdir, "plugins", "action", f"{parts[2]}.py")
    return candidate if os.path.isfile(candidate) else None


def _init() -> Any:
    """Import ansible, install its collection finder, hand it our directories, patch the shim
    into ``ActionBase``; return ansible's action loader."""
    global _ready
    from fleetkit.playbook import plugins

    plugins._init()
    from ansible.plugins.loader import action_loader

    with _lock:
        for d in _search_dirs():
            if d not in _loaded and os.path.isdir(d):
                action_loader.add_directory(d)
                _loaded.add(d)
        if not _ready:
            _patch_action_base()
            _ready = True
    return action_loader


# -- the shim: what ActionBase asks of the executor -------------------------------------------


class _TaskVars(MutableMapping[str, Any]):
    """The task variables an action plugin reads and may change (a layer over fleetkit's)."""

    def __init__(self, base: Mapping[str, Any]) -> None:
        self._base = base
        self._set: dict[str, Any] = {}
        self._deleted: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        if key in self._set:
            return self._set[key]
        if key in self._deleted:
            raise KeyError(key)
        return self._base[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._set[key] = value
        self._deleted.discard(key)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._set.pop(key, None)
        self._deleted.add(key)

    def __contains__(self, key: object) -> bool:
        if key in self._set:
            return True
        return key not in self._deleted and key in self._base

    def __iter__(self) -> Iterator[str]:
        yield from self._set
        for k in self._base:
            if k not in self._set and k not in self._deleted:
                yield k

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def copy(self) -> _TaskVars:
        """A shallow copy (ActionBase copies task_vars before changing them)."""
        out = _TaskVars(self._base)
        out._set = dict(self._set)
        out._deleted = set(self._deleted)
        return out


class _Missing:
    """Raises :class:`ShimMissing` naming what a plugin asked for."""

    _what = "object"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ShimMissing(
            f"{self._what}.{name}, which fleetkit play's action plugin shim does not provide"
        )


class _ConnectionShim(_Missing):
    """ansible's connection interface over fleetkit's connection to the task's host."""

    _what = "connection"
    has_native_async = False
    has_pipelining = True
    always_pipeline_modules = False
    allow_executable = True
    module_implementation_preferences = (".py", "")
    become = None

    def __init__(self, ctx: ModuleContext, shell: Any) -> None:
        self.fk_ctx = ctx
        self._shell = shell
        self.transport = "local" if ctx.conn.local else "ssh"
        self.ansible_name = f"ansible.builtin.{self.transport}"
        self._options: dict[str, Any] = {
            "remote_addr": ctx.variables.get("ansible_host", ctx.host),
            "remote_user": ctx.variables.get("ansible_user"),
            "pipelining": True,
        }

    def get_option(self, option: str, hostvars: Any = None) -> Any:
        """A connection option (those ansible's action plugins read)."""
        if option not in self._options:
            raise KeyError(option)
        return self._options[option]

    def set_option(self, option: str, value: Any) -> None:
        """Set a connection option."""
        self._options[option] = value

    def set_options(self, *args: Any, **kwargs: Any) -> None:
        """Accept option updates (fleetkit's connection carries its own settings)."""

    def _connect(self) -> _ConnectionShim:
        return self

    def reset(self) -> None:
        """ansible's reset: fleetkit reopens connections itself."""

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = True
    ) -> tuple[int, bytes, bytes]:
        """Run a shell command on the host."""
        become = self.fk_ctx.become if sudoable else None
        res = self.fk_ctx.conn.run(cmd, stdin=in_data, become=become, env=self.fk_ctx.env)
        return res.rc, res.stdout, res.stderr

    def put_file(self, in_path: str, out_path: str) -> None:
        """Copy a controller file to the host."""
        with open(in_path, "rb") as fh:
            self.fk_ctx.conn.put(fh.read(), out_path)

    def fetch_file(self, in_path: str, out_path: str) -> None:
        """Copy a host file to the controller."""
        res = self.fk_ctx.conn.run(["cat", "--", in_path], become=self.fk_ctx.become)
        if res.rc != 0:
            raise ModuleError(f"file or module does not exist: {in_path}")
        with open(out_path, "wb") as fh:
            fh.write(res.stdout)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape").encode("utf-8", "replace").decode()


def _patch_action_base() -> None:
    """Route ActionBase's host access through the shim when the action runs under fleetkit."""
    from ansible.plugins.action import ActionBase

    orig_execute = ActionBase._execute_module
    orig_low = ActionBase._low_level_execute_command
    orig_transfer = ActionBase._transfer_data

    def _ctx(action: Any) -> ModuleContext | None:
        conn = getattr(action, "_connection", None)
        ctx = conn.__dict__.get("fk_ctx") if isinstance(conn, _ConnectionShim) else None
        return ctx if isinstance(ctx, ModuleContext) else None

    def _execute_module(
        self: Any,
        module_name: str | None = None,
        module_args: Mapping[str, Any] | None = None,
        tmp: Any = None,
        task_vars: Any = None,
        persist_files: bool = False,
        delete_remote_tmp: Any = None,
        wrap_async: bool = False,
        ignore_unknown_opts: bool = False,
    ) -> dict[str, Any]:
        ctx = _ctx(self)
        if ctx is None:
            return orig_execute(  # type: ignore[no-any-return]
                self,
                module_name,
                module_args,
                tmp,
                task_vars,
                persist_files,
                delete_remote_tmp,
                wrap_async,
                ignore_unknown_opts,
            )
        if wrap_async:
            raise ShimMissing(
                "_execute_module(wrap_async=True), which fleetkit play's action plugin shim "
                "does not provide"
            )
        from fleetkit.playbook.modules.upstream import run_module

        name = module_name or str(self._task.action)
        args = dict(self._task.args if module_args is None else module_args)
        task = self._task
        run_ctx = dataclasses.replace(
            ctx,
            check=bool(task.check_mode),
            diff=bool(task.diff),
            no_log=bool(task.no_log) or ctx.no_log,
        )
        if ignore_unknown_opts:
            args["_ansible_ignore_unknown_opts"] = True
        result = run_module(run_ctx, name, args, module_name=name)
        if result.pop("_fk_action_failed", None) is None and result.get("failed"):
            # ansible keeps the module's error with the result: a failure later derived from
            # it (rc) is still the module's ("Module failed")
            result[_MODULE_FAILURE] = True
        return result

    def _low_level_execute_command(
        self: Any,
        cmd: str,
        sudoable: bool = True,
        in_data: Any = None,
        executable: str | None = None,
        encoding_errors: str = "surrogate_then_replace",
        chdir: str | None = None,
    ) -> dict[str, Any]:
        ctx = _ctx(self)
        if ctx is None:
            return orig_low(  # type: ignore[no-any-return]
                self, cmd, sudoable, in_data, executable, encoding_errors, chdir
            )
        if chdir:
            cmd = f"cd {shlex.quote(chdir)} && {cmd}"
        if executable:
            cmd = f"{executable} -c {shlex.quote(cmd)}"
        data = in_data.encode() if isinstance(in_data, str) else in_data
        res = ctx.conn.run(cmd, stdin=data, become=ctx.become if sudoable else None)
        out, err = _text(res.stdout), _text(res.stderr)
        return {
            "rc": res.rc,
            "stdout": out,
            "stdout_lines": out.splitlines(),
            "stderr": err,
            "stderr_lines": err.splitlines(),
        }

    def _transfer_data(self: Any, remote_path: str, data: Any) -> str:
        ctx = _ctx(self)
        if ctx is None:
            return orig_transfer(self, remote_path, data)  # type: ignore[no-any-return]
        if isinstance(data, dict):
            import json

            data = json.dumps(data)
        raw = data.encode() if isinstance(data, str) else bytes(data)
        ctx.conn.put(raw, remote_path)
        return remote_path

    ActionBase._execute_module = _execute_module
    ActionBase._low_level_execute_command = _low_level_execute_command
    ActionBase._transfer_data = _transfer_data


def _task(ctx: ModuleContext, name: str, args: dict[str, Any]) -> Any:
    from ansible.playbook.task import Task

    task = Task()
    task.action = name
    task.args = dict(args)
    task.check_mode = ctx.check
    task.diff = ctx.diff
    task.no_log = ctx.no_log
    task.async_val = 0
    task.environment = [dict(ctx.env)] if ctx.env else []
    if ctx.task_name:
        task.name = ctx.task_name
    task._resolved_action = name
    return task


def _play_context(ctx: ModuleContext) -> Any:
    from ansible.playbook.play_context import PlayContext

    pc = PlayContext()
    pc.check_mode = ctx.check
    pc.diff = ctx.diff
    pc.remote_addr = str(ctx.variables.get("ansible_host", ctx.host))
    user = ctx.variables.get("ansible_user")
    if user:
        pc.remote_user = str(user)
    pc.become = ctx.become is not None
    if ctx.become is not None:
        pc.become_user = ctx.become.user
        pc.become_method = ctx.become.method
    return pc


def _loader(ctx: ModuleContext) -> Any:
    from ansible.parsing.dataloader import DataLoader

    loader = DataLoader()
    base = ctx.variables.get("role_path") or ctx.variables.get("playbook_dir")
    if base:
        loader.set_basedir(str(base))
    return loader


def _shell(ctx: ModuleContext) -> Any:
    from ansible.plugins.loader import shell_loader

    shell = shell_loader.get("sh")
    remote_tmp = str(ctx.variables.get("ansible_remote_tmp") or "~/.ansible/tmp")
    shell.set_options(direct={"remote_tmp": remote_tmp})
    return shell


def _failure(exc: BaseException, name: str, path: str) -> dict[str, Any]:
    if isinstance(exc, ShimMissing):
        msg = f"the action plugin '{name}' ({path}) needs {exc}"
        return {
            "failed": True,
            "changed": False,
            "msg": msg,
            "_fk_error": f"Task failed: {msg}",
            "_fk_action_failed": True,
        }
    from ansible._internal._errors._error_utils import result_dict_from_exception
    from ansible.errors import AnsibleTaskError

    # as ansible's TaskExecutor: the plugin's exception is the cause of a task error
    try:
        raise AnsibleTaskError() from exc
    except AnsibleTaskError as task_error:
        result = dict(result_dict_from_exception(task_error, accept_result_contribution=True))
    result.setdefault("changed", False)
    if "exception" in result:
        result["exception"] = "(traceback unavailable)"
    if "msg" in result:
        result["msg"] = str(result["msg"])
    brief = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    result["_fk_error"] = f"Task failed: {brief}"
    result["_fk_action_failed"] = True
    return result


def action_plugin_module(name: str, path: str, run_once: bool = False) -> Module:
    """A :class:`Module` that runs ansible's action plugin at ``path`` for the task's ``name``
    (``run_once``: the plugin's BYPASS_HOST_LOOP)."""

    def run(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
        action_loader = _init()
        # the name as the task wrote it (ansible.builtin.x loads through the collection loader:
        # messages name the plugin as ansible's do)
        written = ctx.action if ctx.action.rsplit(".", 1)[-1] == name.rsplit(".", 1)[-1] else name
        loaded = action_loader.get(
            written,
            task=_task(ctx, name, args),
            connection=_ConnectionShim(ctx, _shell(ctx)),
            play_context=_play_context(ctx),
            loader=_loader(ctx),
            templar=TemplarShim(ctx.variables, trusted_only=True),
            shared_loader_obj=None,
        )
        if loaded is None:
            raise ModuleError(f"the action plugin '{name}' ({path}) could not be loaded")
        from ansible._internal._display_utils import DeferredWarningContext

        task_vars = _TaskVars(ctx.variables)
        sys.stdout.flush()  # what the plugin displays (pause's prompts) comes after our output
        # as ansible's TaskExecutor: warnings the plugin displays go with its result
        with DeferredWarningContext(variables=task_vars) as warning_ctx:
            try:
                try:
                    result = loaded.run(task_vars=task_vars)
                finally:
                    loaded.cleanup()
            except Exception as exc:  # noqa: BLE001 - ansible turns any exception into a result
                return _failure(exc, name, path)
            captured = [str(w.event.msg) for w in warning_ctx.get_warnings()]
        if not isinstance(result, dict):
            raise ModuleError(f"the action plugin '{name}' ({path}) returned no result dict")
        result = dict(result)
        if captured:
            result["warnings"] = [*(result.get("warnings") or []), *captured]
        if not result.pop(_MODULE_FAILURE, False):
            result["_fk_action_failed"] = True  # a failure of the action's own making
        return result

    return Module(name, run, None, check_mode=True, run_once=run_once)
