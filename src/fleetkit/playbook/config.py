"""ansible.cfg and ``ANSIBLE_*`` as ansible-core 2.19 reads them (the settings fleetkit honours).

The file is the first readable of ``$ANSIBLE_CONFIG`` (a directory means its ``ansible.cfg``),
``./ansible.cfg`` (skipped, with ansible's warning, when the cwd is world-writable),
``~/.ansible.cfg`` and ``/etc/ansible/ansible.cfg``. For each setting the environment wins over
the file, the file over the default; values are converted as ansible's ``ensure_type`` does
(booleans leniently, paths expanded and made absolute relative to the file's directory).
A value fleetkit cannot honour is refused (:func:`check_supported`), never ignored.
"""

from __future__ import annotations

import configparser
import decimal
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetkit.errors import UsageError
from fleetkit.playbook.errors import PlaybookError

__all__ = [
    "Setting",
    "SETTINGS",
    "Config",
    "ConfigError",
    "find_config_file",
    "load_config",
    "check_supported",
    "SUPPORTED_INVENTORY_PLUGINS",
    "ENGINE_PENDING",
]

_HOME = "~/.ansible"
SUPPORTED_INVENTORY_PLUGINS = ("host_list", "script", "auto", "yaml", "ini")


class ConfigError(PlaybookError, UsageError):
    """An invalid option or setting (ansible's AnsibleOptionsError, exit 5), or one fleetkit
    cannot honour (exit 1)."""

    exit_code = 5  # ansible's AnsibleOptionsError

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 5) -> None:
        UsageError.__init__(self, message, hint=hint)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class Setting:
    """One ansible setting: its ansible name, our key, type, default, ini keys and env vars."""

    name: str
    key: str
    type: str
    default: Any
    ini: tuple[tuple[str, str], ...]
    env: tuple[str, ...]


def _s(name: str, key: str, type_: str, default: Any, ini: str, *env: str) -> Setting:
    pairs = tuple(tuple(p.split(".", 1)) for p in ini.split())
    return Setting(name, key, type_, default, pairs, env)  # type: ignore[arg-type]


SETTINGS: tuple[Setting, ...] = (
    _s("DEFAULT_HOST_LIST", "inventory", "pathlist", ["/etc/ansible/hosts"],
       "defaults.inventory", "ANSIBLE_INVENTORY"),
    _s("LOCALHOST_WARNING", "localhost_warning", "boolean", True,
       "defaults.localhost_warning", "ANSIBLE_LOCALHOST_WARNING"),
    _s("DEFAULT_ROLES_PATH", "roles_path", "pathspec",
       [f"{_HOME}/roles", "/usr/share/ansible/roles", "/etc/ansible/roles"],
       "defaults.roles_path", "ANSIBLE_ROLES_PATH"),
    _s("COLLECTIONS_PATHS", "collections_path", "pathspec",
       [f"{_HOME}/collections", "/usr/share/ansible/collections"],
       "defaults.collections_path", "ANSIBLE_COLLECTIONS_PATH"),
    _s("DEFAULT_MODULE_PATH", "library", "pathspec",
       [f"{_HOME}/plugins/modules", "/usr/share/ansible/plugins/modules"],
       "defaults.library", "ANSIBLE_LIBRARY"),
    _s("DEFAULT_ACTION_PLUGIN_PATH", "action_plugins", "pathspec",
       [f"{_HOME}/plugins/action", "/usr/share/ansible/plugins/action"],
       "defaults.action_plugins", "ANSIBLE_ACTION_PLUGINS"),
    _s("DEFAULT_CONNECTION_PLUGIN_PATH", "connection_plugins", "pathspec",
       [f"{_HOME}/plugins/connection", "/usr/share/ansible/plugins/connection"],
       "defaults.connection_plugins", "ANSIBLE_CONNECTION_PLUGINS"),
    _s("DEFAULT_NO_LOG", "no_log", "boolean", False, "defaults.no_log", "ANSIBLE_NO_LOG"),
    _s("DEFAULT_FORKS", "forks", "integer", 5, "defaults.forks", "ANSIBLE_FORKS"),
    _s("DEFAULT_REMOTE_USER", "remote_user", "string", None,
       "defaults.remote_user", "ANSIBLE_REMOTE_USER"),
    _s("DEFAULT_PRIVATE_KEY_FILE", "private_key_file", "path", None,
       "defaults.private_key_file", "ANSIBLE_PRIVATE_KEY_FILE"),
    _s("HOST_KEY_CHECKING", "host_key_checking", "boolean", True,
       "defaults.host_key_checking", "ANSIBLE_HOST_KEY_CHECKING"),
    _s("DEFAULT_TIMEOUT", "timeout", "integer", 10, "defaults.timeout", "ANSIBLE_TIMEOUT"),
    _s("DEFAULT_GATHERING", "gathering", "string", "implicit",
       "defaults.gathering", "ANSIBLE_GATHERING"),
    # the fact cache (ansible's VariableManager); the plugin reads its own options itself
    _s("CACHE_PLUGIN", "fact_caching", "string", "memory",
       "defaults.fact_caching", "ANSIBLE_CACHE_PLUGIN"),
    _s("CACHE_PLUGIN_CONNECTION", "fact_caching_connection", "string", None,
       "defaults.fact_caching_connection", "ANSIBLE_CACHE_PLUGIN_CONNECTION"),
    _s("CACHE_PLUGIN_PREFIX", "fact_caching_prefix", "string", "ansible_facts",
       "defaults.fact_caching_prefix", "ANSIBLE_CACHE_PLUGIN_PREFIX"),
    _s("CACHE_PLUGIN_TIMEOUT", "fact_caching_timeout", "integer", 86400,
       "defaults.fact_caching_timeout", "ANSIBLE_CACHE_PLUGIN_TIMEOUT"),
    _s("INJECT_FACTS_AS_VARS", "inject_facts_as_vars", "boolean", True,
       "defaults.inject_facts_as_vars", "ANSIBLE_INJECT_FACT_VARS"),
    _s("FACTS_MODULES", "facts_modules", "list", ["smart"],
       "defaults.facts_modules", "ANSIBLE_FACTS_MODULES"),
    _s("DEFAULT_TRANSPORT", "transport", "string", "ssh", "defaults.transport",
       "ANSIBLE_TRANSPORT"),
    _s("DEFAULT_VAULT_PASSWORD_FILE", "vault_password_file", "path", None,
       "defaults.vault_password_file", "ANSIBLE_VAULT_PASSWORD_FILE"),
    _s("DEFAULT_VAULT_IDENTITY_LIST", "vault_identity_list", "list", [],
       "defaults.vault_identity_list", "ANSIBLE_VAULT_IDENTITY_LIST"),
    _s("DEFAULT_VAULT_ID_MATCH", "vault_id_match", "boolean", False,
       "defaults.vault_id_match", "ANSIBLE_VAULT_ID_MATCH"),
    _s("DEFAULT_ASK_VAULT_PASS", "ask_vault_pass", "boolean", False,
       "defaults.ask_vault_pass", "ANSIBLE_ASK_VAULT_PASS"),
    _s("DEFAULT_STDOUT_CALLBACK", "stdout_callback", "string", "default",
       "defaults.stdout_callback", "ANSIBLE_STDOUT_CALLBACK"),
    _s("CALLBACKS_ENABLED", "callbacks_enabled", "list", [],
       "defaults.callbacks_enabled", "ANSIBLE_CALLBACKS_ENABLED"),
    _s("RETRY_FILES_ENABLED", "retry_files_enabled", "boolean", False,
       "defaults.retry_files_enabled", "ANSIBLE_RETRY_FILES_ENABLED"),
    _s("DEFAULT_HASH_BEHAVIOUR", "hash_behaviour", "string", "replace",
       "defaults.hash_behaviour", "ANSIBLE_HASH_BEHAVIOUR"),
    _s("DEFAULT_REMOTE_PORT", "remote_port", "integer", None,
       "defaults.remote_port", "ANSIBLE_REMOTE_PORT"),
    _s("INTERPRETER_PYTHON", "interpreter_python", "string", "auto",
       "defaults.interpreter_python", "ANSIBLE_PYTHON_INTERPRETER"),
    _s("DEFAULT_STRATEGY", "strategy", "string", "linear", "defaults.strategy",
       "ANSIBLE_STRATEGY"),
    _s("DEFAULT_FORCE_HANDLERS", "force_handlers", "boolean", False,
       "defaults.force_handlers", "ANSIBLE_FORCE_HANDLERS"),
    _s("ANY_ERRORS_FATAL", "any_errors_fatal", "boolean", False,
       "defaults.any_errors_fatal", "ANSIBLE_ANY_ERRORS_FATAL"),
    _s("ERROR_ON_MISSING_HANDLER", "error_on_missing_handler", "boolean", True,
       "defaults.error_on_missing_handler", "ANSIBLE_ERROR_ON_MISSING_HANDLER"),
    _s("DEFAULT_DEBUG", "debug", "boolean", False, "defaults.debug", "ANSIBLE_DEBUG"),
    _s("DISPLAY_SKIPPED_HOSTS", "display_skipped_hosts", "boolean", True,
       "defaults.display_skipped_hosts", "ANSIBLE_DISPLAY_SKIPPED_HOSTS"),
    # ansible's default callback's options (doc fragments default_callback, result_format)
    _s("display_ok_hosts", "display_ok_hosts", "boolean", True,
       "defaults.display_ok_hosts", "ANSIBLE_DISPLAY_OK_HOSTS"),
    _s("display_failed_stderr", "display_failed_stderr", "boolean", False,
       "defaults.display_failed_stderr", "ANSIBLE_DISPLAY_FAILED_STDERR"),
    _s("DEPRECATION_WARNINGS", "deprecation_warnings", "boolean", True,
       "defaults.deprecation_warnings", "ANSIBLE_DEPRECATION_WARNINGS"),
    _s("show_custom_stats", "show_custom_stats", "boolean", False,
       "defaults.show_custom_stats", "ANSIBLE_SHOW_CUSTOM_STATS"),
    _s("show_per_host_start", "show_per_host_start", "boolean", False,
       "defaults.show_per_host_start", "ANSIBLE_SHOW_PER_HOST_START"),
    _s("check_mode_markers", "check_mode_markers", "boolean", False,
       "defaults.check_mode_markers", "ANSIBLE_CHECK_MODE_MARKERS"),
    _s("show_task_path_on_failure", "show_task_path_on_failure", "boolean", False,
       "defaults.show_task_path_on_failure", "ANSIBLE_SHOW_TASK_PATH_ON_FAILURE"),
    _s("result_format", "callback_result_format", "string", "json",
       "defaults.callback_result_format", "ANSIBLE_CALLBACK_RESULT_FORMAT"),
    _s("pretty_results", "callback_format_pretty", "boolean", None,
       "defaults.callback_format_pretty", "ANSIBLE_CALLBACK_FORMAT_PRETTY"),
    _s("DEFAULT_BECOME", "become", "boolean", False,
       "privilege_escalation.become", "ANSIBLE_BECOME"),
    _s("DEFAULT_BECOME_USER", "become_user", "string", "root",
       "privilege_escalation.become_user", "ANSIBLE_BECOME_USER"),
    _s("DEFAULT_BECOME_METHOD", "become_method", "string", "sudo",
       "privilege_escalation.become_method", "ANSIBLE_BECOME_METHOD"),
    _s("DEFAULT_BECOME_ASK_PASS", "become_ask_pass", "boolean", False,
       "privilege_escalation.become_ask_pass", "ANSIBLE_BECOME_ASK_PASS"),
    # the ssh connection plugin's options (ansible.builtin.ssh documentation)
    _s("ssh_args", "ssh_args", "string", "-C -o ControlMaster=auto -o ControlPersist=60s",
       "ssh_connection.ssh_args", "ANSIBLE_SSH_ARGS"),
    _s("pipelining", "pipelining", "boolean", False,
       "defaults.pipelining connection.pipelining ssh_connection.pipelining",
       "ANSIBLE_PIPELINING", "ANSIBLE_SSH_PIPELINING"),
    _s("control_path", "control_path", "string", None,
       "ssh_connection.control_path", "ANSIBLE_SSH_CONTROL_PATH"),
    _s("control_path_dir", "control_path_dir", "path", f"{_HOME}/cp",
       "ssh_connection.control_path_dir", "ANSIBLE_SSH_CONTROL_PATH_DIR"),
    _s("INVENTORY_ENABLED", "enable_plugins", "list",
       ["host_list", "script", "auto", "yaml", "ini", "toml"],
       "inventory.enable_plugins", "ANSIBLE_INVENTORY_ENABLED"),
    _s("INVENTORY_IGNORE_EXTS", "inventory_ignore_extensions", "list",
       [".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst",
        ".orig", ".cfg", ".retry"],
       "defaults.inventory_ignore_extensions inventory.ignore_extensions",
       "ANSIBLE_INVENTORY_IGNORE"),
    _s("INVENTORY_IGNORE_PATTERNS", "inventory_ignore_patterns", "list", [],
       "defaults.inventory_ignore_patterns inventory.ignore_patterns",
       "ANSIBLE_INVENTORY_IGNORE_REGEX"),
    _s("INVENTORY_UNPARSED_IS_FAILED", "unparsed_is_failed", "boolean", False,
       "inventory.unparsed_is_failed", "ANSIBLE_INVENTORY_UNPARSED_FAILED"),
    _s("INVENTORY_ANY_UNPARSED_IS_FAILED", "any_unparsed_is_failed", "boolean", False,
       "inventory.any_unparsed_is_failed", "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED"),
    _s("INVENTORY_UNPARSED_WARNING", "inventory_unparsed_warning", "boolean", True,
       "inventory.inventory_unparsed_warning", "ANSIBLE_INVENTORY_UNPARSED_WARNING"),
    _s("LOCALHOST_WARNING", "localhost_warning", "boolean", True,
       "defaults.localhost_warning", "ANSIBLE_LOCALHOST_WARNING"),
    _s("ALLOW_BROKEN_CONDITIONALS", "allow_broken_conditionals", "boolean", False,
       "defaults.allow_broken_conditionals", "ANSIBLE_ALLOW_BROKEN_CONDITIONALS"),
    _s("ALLOW_EMBEDDED_TEMPLATES", "allow_embedded_templates", "boolean", True,
       "defaults.allow_embedded_templates", "ANSIBLE_ALLOW_EMBEDDED_TEMPLATES"),
)  # fmt: skip

_BY_KEY = {s.key: s for s in SETTINGS}

# Settings resolved here that the engine does not read yet: a value other than ansible's
# default is refused (check_supported). Remove a key once the engine consumes
# ``RunOptions.config[key]``.
ENGINE_PENDING = frozenset(
    {
        "host_key_checking",
        "ssh_args",
        "control_path",
        "control_path_dir",
    }
)


@dataclass
class Config:
    """Resolved settings: ``values[key]`` typed, ``origins[key]`` as ansible names the origin."""

    path: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def is_default(self, key: str) -> bool:
        """Whether ``key`` came from neither the file nor the environment."""
        return self.origins.get(key, "default") == "default"


def find_config_file(
    env: Mapping[str, str] | None = None, warnings: list[str] | None = None
) -> str | None:
    """The ansible.cfg ansible would read, or None."""
    env = os.environ if env is None else env
    candidates: list[str] = []
    from_env: str | None = None
    if "ANSIBLE_CONFIG" in env:
        from_env = os.path.abspath(os.path.expanduser(os.path.expandvars(env["ANSIBLE_CONFIG"])))
        if os.path.isdir(from_env):
            from_env = os.path.join(from_env, "ansible.cfg")
        candidates.append(from_env)
    skipped_cwd: str | None = None
    try:
        cwd = os.getcwd()
        cwd_cfg = os.path.join(cwd, "ansible.cfg")
        if os.stat(cwd).st_mode & stat.S_IWOTH:
            if os.path.exists(cwd_cfg):
                skipped_cwd = cwd
        else:
            candidates.append(cwd_cfg)
    except OSError:
        pass
    candidates.append(os.path.expanduser("~/.ansible.cfg"))
    candidates.append("/etc/ansible/ansible.cfg")
    found = next((p for p in candidates if os.path.exists(p) and os.access(p, os.R_OK)), None)
    if skipped_cwd is not None and (from_env is None or found != from_env) and warnings is not None:
        warnings.append(
            f"Ansible is being run in a world writable directory ({skipped_cwd}), ignoring it as "
            "an ansible.cfg source. For more information see https://docs.ansible.com/ansible/"
            "devel/reference_appendices/config.html#cfg-in-world-writable-dir"
        )
    return found


_TRUE = {"y", "yes", "on", "1", "true", "t"}


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _resolve_path(path: str, basedir: str | None) -> str:
    path = path.replace("{{CWD}}", os.getcwd())
    path = os.path.expanduser(os.path.expandvars(path))
    if not os.path.isabs(path):
        path = os.path.join(basedir or os.getcwd(), path)
    return os.path.normpath(path)


def convert(value: Any, type_: str, basedir: str | None = None) -> Any:
    """Convert a raw setting as ansible's ``ensure_type`` does (ValueError when it cannot)."""
    if value is None:
        return None
    if type_ == "boolean":
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in _TRUE
    if type_ == "integer":
        if isinstance(value, int):
            return int(value)
        try:
            number = decimal.Decimal(str(value))
            if number == int(number):
                return int(number)
        except (decimal.DecimalException, ValueError):
            pass
    elif type_ == "list":
        if isinstance(value, list):
            return value
        return [_unquote(x.strip()) for x in str(value).split(",")]
    elif type_ == "path":
        return _resolve_path(str(value), basedir)
    elif type_ == "pathspec":
        parts = value if isinstance(value, list) else str(value).split(os.pathsep)
        return [_resolve_path(p, basedir) for p in parts]
    elif type_ == "pathlist":
        parts = value if isinstance(value, list) else [x.strip() for x in str(value).split(",")]
        return [_resolve_path(p, basedir) for p in parts]
    elif type_ == "string":
        return str(value)
    else:
        return value
    raise ValueError(f"Invalid value provided for {type_!r}: {value!r}")


def load_config(env: Mapping[str, str] | None = None, path: str | None = None) -> Config:
    """Read the config file (found as ansible finds it unless ``path``) and ``ANSIBLE_*``."""
    env = os.environ if env is None else env
    cfg = Config()
    cfg.path = path if path is not None else find_config_file(env, cfg.warnings)
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None)
    if cfg.path:
        try:
            parser.read(cfg.path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"Error reading config file ({cfg.path}): {exc}",
                hint="fix the INI syntax of that file",
            ) from None
    for s in SETTINGS:
        raw: Any = None
        origin = "default"
        basedir: str | None = None
        for section, key in s.ini:
            if parser.has_option(section, key):
                raw = parser.get(section, key)
                origin = cfg.path or ""
                basedir = os.path.dirname(os.path.abspath(origin))
        for name in s.env:
            if name in env:
                raw = env[name]
                origin = f"env: {name}"
                basedir = None
        if raw is None:
            value = s.default
            if s.type in ("path", "pathspec", "pathlist") and value is not None:
                value = convert(value, s.type)
        else:
            try:
                value = convert(raw, s.type, basedir)
            except ValueError as exc:
                raise ConfigError(
                    f"Config {s.name!r} from {origin!r} has an invalid value: {exc}",
                    hint=f"give {s.key} a valid {s.type}",
                ) from None
            if isinstance(value, str) and origin != "default" and not origin.startswith("env:"):
                value = _unquote(value)
        cfg.values[s.key] = value
        cfg.origins[s.key] = origin
    return cfg


def _refuse(cfg: Config, key: str, why: str, hint: str) -> ConfigError:
    return ConfigError(
        f"{key}={cfg.values[key]!r} (from {cfg.origins[key]}) {why}", hint=hint, exit_code=1
    )


def check_supported(cfg: Config, run: bool = True) -> None:
    """Refuse a setting whose value fleetkit cannot honour (ansible would act on it).

    ``run=False`` (``fleetkit inventory``) checks only what reading an inventory uses.
    """
    if run:
        _check_run_settings(cfg)
    if cfg["vault_id_match"]:
        raise _refuse(
            cfg,
            "vault_id_match",
            "is not implemented by fleetkit",
            "unset vault_id_match; fleetkit tries the labelled secret first, then the others",
        )
    for name in cfg["enable_plugins"]:
        short = name.removeprefix("ansible.builtin.")
        if short not in SUPPORTED_INVENTORY_PLUGINS + ("toml",):
            raise _refuse(
                cfg,
                "enable_plugins",
                f"enables inventory plugin {name!r}, which fleetkit does not implement",
                "enable only host_list, script, auto, yaml, ini",
            )


def _check_run_settings(cfg: Config) -> None:
    if cfg["hash_behaviour"] != "replace":
        raise _refuse(
            cfg,
            "hash_behaviour",
            "is not implemented by fleetkit (only 'replace')",
            "use the combine filter instead of hash_behaviour=merge",
        )
    if cfg["retry_files_enabled"]:
        raise _refuse(
            cfg,
            "retry_files_enabled",
            "is not implemented: fleetkit writes no .retry files",
            "set retry_files_enabled = False (or use --limit with the failed hosts)",
        )
    if cfg["gathering"] not in ("implicit", "explicit", "smart"):
        raise _refuse(
            cfg,
            "gathering",
            "is not one of implicit, explicit, smart",
            "set gathering to implicit, explicit or smart",
        )
    for key in sorted(ENGINE_PENDING):
        definition = setting(key)
        if cfg.is_default(key) or cfg[key] == convert(definition.default, definition.type):
            continue
        if key == "host_key_checking" and cfg.origins[key].startswith("env:"):
            continue  # today's engine reads ANSIBLE_HOST_KEY_CHECKING itself
        raise _refuse(
            cfg,
            key,
            "is not honoured by fleetkit's engine yet",
            f"remove {key} from ansible.cfg / the environment for fleetkit runs",
        )


def setting(key: str) -> Setting:
    """The definition of one setting by its key."""
    return _BY_KEY[key]
