"""ansible's lookup, filter and test plugins, loaded from ansible-core and collections.

Contract with the engine: ``run_lookup`` serves ``with_<name>`` loops (through ``loop_items``),
``lookup()`` and ``query()``.

ansible is imported on first use of a name fleetkit does not implement itself (about 0.2 s), never
at start-up. Plugins run as ansible's own code: lookups through ansible's plugin loader with a
``DataLoader`` rooted at the playbook directory (so file lookups search ``ansible_search_path``,
role ``files``/``templates`` dirs and the playbook dir as ansible does); filters and tests are
ansible's Jinja2 functions. The lookups that need ansible's own templar (``template``, ``vars``,
``varnames``) are served by fleetkit's templar with ansible's semantics. What a lookup returns is
data: its strings come back marked :class:`~fleetkit.playbook.trust.UnsafeText`.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from types import SimpleNamespace
from typing import Any

from fleetkit.playbook.errors import TemplateError
from fleetkit.playbook.trust import UnsafeText, mark_unsafe, to_ansible

__all__ = [
    "ANSIBLE_FILTERS",
    "ANSIBLE_TESTS",
    "add_plugin_dirs",
    "find_filter",
    "find_test",
    "loop_items",
    "lookup_value",
    "run_lookup",
]

_log = logging.getLogger("fleetkit.playbook")

# The ansible.builtin filters and tests of ansible-core 2.19 (test_plugins checks this list
# against the installed ansible), so a Jinja2-only name never costs an ansible import.
ANSIBLE_FILTERS = frozenset(
    """b64decode b64encode basename bool checksum combinations combine comment commonpath d
    default dict2items difference dirname expanduser expandvars extract fileglob flatten from_json
    from_yaml from_yaml_all groupby hash human_readable human_to_bytes intersect items2dict log
    mandatory map md5 normpath password_hash path_join permutations pow product quote random
    realpath regex_escape regex_findall regex_replace regex_search reject rejectattr
    rekey_on_member relpath root select selectattr sha1 shuffle split splitext strftime
    subelements symmetric_difference ternary to_datetime to_json to_nice_json to_nice_yaml to_uuid
    to_yaml type_debug union unique unvault urldecode urlsplit vault win_basename win_dirname
    win_splitdrive zip zip_longest""".split()
)
ANSIBLE_TESTS = frozenset(
    """abs all any change changed contains defined directory exists failed failure falsy file
    finished is_abs is_dir is_file is_link is_mount is_same_file isnan issubset issuperset link
    link_exists match mount nan reachable regex same_file search skip skipped started subset
    succeeded success successful superset timedout truthy undefined unreachable uri url urn
    vault_encrypted vaulted_file version version_compare""".split()
)

_FQCN = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*\.[A-Za-z_][\w.]*$")
_BUILTIN = "ansible.builtin."
_lock = threading.RLock()
_ready = False
_cache: dict[tuple[str, str], Callable[..., Any] | None] = {}


class _PluginLoadError(TemplateError):
    """A lookup, filter or test plugin that exists but cannot be loaded."""


class ShimMissing(AttributeError):
    """A plugin asked for a part of ansible's executor or Templar the shim does not provide."""


class TemplarShim:
    """The slice of ansible's Templar that ansible's action and lookup plugins use, rendered by
    fleetkit's templar. An action plugin's strings were rendered by fleetkit already: only
    those it marks as templates (``trust_as_template``, as ansible 2.19 requires) are rendered
    again (``trusted_only``). A lookup's values are variables: rendered as ansible renders them.
    Anything else a plugin asks of it raises :class:`ShimMissing` naming it."""

    def __init__(
        self,
        available_variables: Mapping[str, Any] | None,
        basedir: str = ".",
        trusted_only: bool = False,
    ) -> None:
        self.available_variables = available_variables
        self.basedir = basedir
        self._trusted_only = trusted_only

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ShimMissing(f"templar.{name}, which fleetkit play's plugin shim does not provide")

    def copy_with_new_env(self, **kwargs: Any) -> TemplarShim:
        """A templar over other variables (ansible's ``Templar.copy_with_new_env``); other
        Jinja2 environment options are refused."""
        unsupported = set(kwargs) - {"available_variables"}
        if unsupported:
            raise ShimMissing(
                f"templar.copy_with_new_env({', '.join(sorted(unsupported))}=...), which "
                "fleetkit play's plugin shim does not provide"
            )
        names = kwargs.get("available_variables")
        return TemplarShim(
            self.available_variables if names is None else names,
            self.basedir,
            self._trusted_only,
        )

    @property
    def environment(self) -> Any:
        """The Jinja environment (deprecated in ansible 2.19, with its warning; ansible.utils'
        index_of reads its ``tests``)."""
        from fleetkit.playbook import messages
        from fleetkit.playbook.templar import jinja_environment

        messages.deprecated(
            "Direct access to the `environment` attribute is deprecated.",
            version="2.23",
            help_text="Consider using `copy_with_new_env` or passing `overrides` to `template`.",
        )
        return jinja_environment()

    def is_template(self, data: Any) -> bool:
        """Whether ``data`` holds template syntax."""
        from fleetkit.playbook.templar import is_template

        return isinstance(data, str) and is_template(data)

    def template(self, variable: Any, *_args: Any, **_kwargs: Any) -> Any:
        """``variable`` rendered with this templar's variables."""
        from fleetkit.playbook.templar import Templar, VarsView

        if not self._trusted_only:
            view = VarsView([dict(self.available_variables or {})])
            return Templar(view).template(variable)
        from ansible._internal._datatag._tags import TrustedAsTemplate

        templar = Templar(self.available_variables or {})

        def render(value: Any) -> Any:
            if isinstance(value, str):
                if not TrustedAsTemplate.is_tagged_on(value):
                    return value
                return templar.template(str(value))
            if isinstance(value, Mapping):
                return {k: render(v) for k, v in value.items()}
            if isinstance(value, list):
                return [render(v) for v in value]
            return value

        return render(variable)


def _init() -> None:
    """Import ansible and install its collection finder, once."""
    global _ready
    with _lock:
        if _ready:
            return
        from ansible.plugins.loader import init_plugin_loader

        init_plugin_loader()
        _ready = True


_adjacent: set[str] = set()


def add_plugin_dirs(basedir: str) -> None:
    """Load ``filter_plugins/``, ``test_plugins/``, ``lookup_plugins/`` next to a playbook (or in
    a role), as ansible does; costs nothing when there are none."""
    import os

    kinds = ("filter_plugins", "test_plugins", "lookup_plugins")
    if basedir in _adjacent or not any(os.path.isdir(os.path.join(basedir, k)) for k in kinds):
        return
    _init()
    from ansible.plugins.loader import add_all_plugin_dirs

    with _lock:
        add_all_plugin_dirs(basedir)
        _adjacent.add(basedir)
        _cache.clear()


def _fqcn(name: str) -> str:
    return name if _FQCN.match(name) else _BUILTIN + name


def _is_ansible_name(name: str, builtin: frozenset[str], kind: str = "") -> bool:
    if name.startswith(_BUILTIN) or _adjacent:
        return True
    return name in builtin or bool(_FQCN.match(name)) or name in _routed(kind)


@functools.cache
def _routed(kind: str) -> frozenset[str]:
    """Short names ansible.builtin redirects to a collection (``json_query`` ->
    community.general.json_query): its ``ansible_builtin_runtime.yml`` plugin routing."""
    import importlib.util
    import os

    import yaml

    spec = importlib.util.find_spec("ansible")
    if not kind or spec is None or not spec.submodule_search_locations:
        return frozenset()
    path = os.path.join(
        list(spec.submodule_search_locations)[0], "config", "ansible_builtin_runtime.yml"
    )
    try:
        with open(path, encoding="utf-8") as fh:
            routing = (yaml.safe_load(fh) or {}).get("plugin_routing", {})
    except OSError:
        return frozenset()
    return frozenset(routing.get(kind) or {})


def _arg(value: Any) -> Any:
    """fleetkit's dict/str subclasses (``Located``, ``UnsafeText``) as the plain types ansible's
    functions expect; other values as they are."""
    if isinstance(value, str):
        return value if type(value) is str else str(value)
    if isinstance(value, dict):
        return {_arg(k): _arg(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_arg(v) for v in value]
    return value


# ansible-internal plugins that read a value's data tags
_READ_TAGS = frozenset(
    {
        "ansible._protomatter.tagged",
        "ansible._protomatter.tagged_with",
        "ansible._protomatter.tag_names",
    }
)
# plugins whose first argument is the vaulted value itself, not its plaintext
_TAKE_VAULTED = frozenset({"ansible.builtin.unvault", "ansible.builtin.vault_encrypted"})


def _vaulted(value: Any, fqcn: str) -> Any:
    """An inline ``!vault`` value as ``unvault`` takes it (the ciphertext) or as the
    ``vault_encrypted`` test does (ansible's own encrypted string)."""
    from fleetkit.playbook.vault import EncryptedString

    if not isinstance(value, EncryptedString) or not value.ciphertext:
        return value
    if fqcn == "ansible.builtin.unvault":
        return value.ciphertext
    from ansible.parsing.vault import EncryptedString as AnsibleEncryptedString

    return AnsibleEncryptedString(ciphertext=value.ciphertext)


def fail_on_undefined(args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    """As ansible: a plugin given an undefined argument fails with that value's own undefined
    error, not the plugin's."""
    from jinja2 import Undefined

    for a in (*args, *kwargs.values()):
        if isinstance(a, Undefined):
            a._fail_with_undefined_error()


def _wrap_jinja(
    kind: str, fqcn: str, fn: Callable[..., Any], accepts_undefined: bool, resolved: str = ""
) -> Callable[..., Any]:
    from jinja2.exceptions import UndefinedError

    # the plugin's own name (a short name asked for beside adjacent plugins resolves to it)
    vault_name = resolved or fqcn

    def call(*args: Any, **kwargs: Any) -> Any:
        if not accepts_undefined:
            fail_on_undefined(args, kwargs)
        if vault_name in _TAKE_VAULTED:
            args = tuple(_vaulted(a, vault_name) for a in args)
        plain = [_arg(a) for a in args]
        if fqcn in _READ_TAGS and args:
            # fleetkit's trust, the one data tag it keeps, as ansible's TrustedAsTemplate
            plain[0] = to_ansible(args[0])
        try:
            return fn(*plain, **{k: _arg(v) for k, v in kwargs.items()})
        except (TemplateError, UndefinedError):
            raise
        except Exception as exc:  # noqa: BLE001 - ansible reports any plugin error this way
            msg = getattr(exc, "message", None) or str(exc)
            raise TemplateError(f"The {kind} plugin {fqcn!r} failed: {msg}") from None

    call.__name__ = getattr(fn, "__name__", fqcn)
    for attr in ("jinja_pass_arg",):
        if hasattr(fn, attr):
            setattr(call, attr, getattr(fn, attr))
    return call


def _find_jinja(kind: str, name: str, builtin: frozenset[str]) -> Callable[..., Any] | None:
    if not _is_ansible_name(name, builtin, kind):
        return None
    key = (kind, name)
    if key in _cache:
        return _cache[key]
    _init()
    from ansible.plugins.loader import filter_loader, test_loader

    loader = filter_loader if kind == "filter" else test_loader
    # adjacent plugins go by their short name; ansible.builtin ones by their FQCN
    fqcn = name if _adjacent and "." not in name else _fqcn(name)
    # ansible's plugin loader imports a plugin's module on first use and is not thread-safe:
    # two forks asking for `combine` at once each saw a half-imported module
    with _lock:
        if key in _cache:
            return _cache[key]
        try:
            try:
                plugin = loader.get(fqcn)
            except KeyError:
                plugin = None  # an invalid plugin name: not found, as ansible's lookup says
            fn = (
                None
                if plugin is None
                else _wrap_jinja(
                    kind,
                    fqcn,
                    plugin.j2_function,
                    bool(getattr(plugin, "accept_args_markers", False)),
                    str(getattr(plugin, "ansible_name", "") or ""),
                )
            )
        except Exception as exc:  # noqa: BLE001 - ansible reports a broken plugin as a load error
            raise _PluginLoadError(f"The {kind} plugin {name!r} failed to load: {exc}") from None
        _cache[key] = fn
    return fn


def find_filter(name: str) -> Callable[..., Any] | None:
    """ansible's filter ``name`` (short builtin name or FQCN), or None when there is none."""
    return _find_jinja("filter", name, ANSIBLE_FILTERS)


def find_test(name: str) -> Callable[..., Any] | None:
    """ansible's test ``name`` (short builtin name or FQCN), or None when there is none."""
    return _find_jinja("test", name, ANSIBLE_TESTS)


# -- lookups -----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """ansible's tagged containers and strings as plain Python values, strings marked unsafe."""
    if isinstance(value, str):
        return UnsafeText(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return mark_unsafe(value)


def _search_vars(variables: Mapping[str, Any]) -> dict[str, Any]:
    """What ansible's file-reading lookups read from the task variables."""
    out: dict[str, Any] = {}
    pdir = variables.get("playbook_dir")
    if "ansible_search_path" in variables:
        out["ansible_search_path"] = list(variables["ansible_search_path"])
    else:
        paths = []
        if "role_path" in variables:
            paths.append(str(variables["role_path"]))
        if pdir:
            paths.append(str(pdir))
        if paths:
            out["ansible_search_path"] = paths
    if "role_path" in variables:
        out["role_path"] = variables["role_path"]
    return out


class _LookupVars(Mapping[str, Any]):
    """The task variables as ansible's lookups see them: search paths first, then the view."""

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self._vars = variables
        self._extra = _search_vars(variables)

    def __getitem__(self, key: str) -> Any:
        if key in self._extra:
            return self._extra[key]
        return self._vars[key]

    def __contains__(self, key: object) -> bool:
        return key in self._extra or key in self._vars

    def __iter__(self) -> Any:
        yield from self._extra
        yield from (k for k in self._vars if k not in self._extra)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _native_lookup(name: str) -> Callable[..., list[Any]] | None:
    short = name[len(_BUILTIN) :] if name.startswith(_BUILTIN) else name
    return {"vars": _lookup_vars, "varnames": _lookup_varnames, "template": _lookup_template}.get(
        short
    )


def _lookup_vars(terms: list[Any], variables: Mapping[str, Any], **kwargs: Any) -> list[Any]:
    default = kwargs.pop("default", None)
    if kwargs:
        raise TemplateError(f"Unsupported parameters for (vars) lookup: {', '.join(kwargs)}")
    out: list[Any] = []
    for term in terms:
        if not isinstance(term, str):
            raise TemplateError(
                f"Variable name must be 'str' not {type(term).__name__!r}."  # ansible's wording
            )
        if term in variables:
            out.append(variables[term])
        elif "hostvars" in variables and term in _host_vars(variables):
            out.append(_host_vars(variables)[term])
        elif default is not None:
            out.append(default)
        else:
            raise TemplateError(f"No variable named {term!r} was found.")
    return out


def _host_vars(variables: Mapping[str, Any]) -> Mapping[str, Any]:
    hv = variables.get("hostvars")
    host = variables.get("inventory_hostname")
    if isinstance(hv, Mapping) and host in hv and isinstance(hv[host], Mapping):
        return hv[host]  # type: ignore[no-any-return]
    return {}


def _lookup_varnames(terms: list[Any], variables: Mapping[str, Any], **kwargs: Any) -> list[Any]:
    if kwargs:
        raise TemplateError(f"Unsupported parameters for (varnames) lookup: {', '.join(kwargs)}")
    names = list(variables)
    out: list[Any] = []
    for term in terms:
        if not isinstance(term, str):
            raise TemplateError(f"Invalid setting identifier, {term!r} is not a string")
        try:
            rx = re.compile(term)
        except re.error as exc:
            raise TemplateError(f"Unable to use {term!r} as a search parameter: {exc}") from None
        out.extend(n for n in names if rx.search(n))
    return out


def _lookup_template(terms: list[Any], variables: Mapping[str, Any], **kwargs: Any) -> list[Any]:
    import os

    from fleetkit.playbook.templar import Templar, VarsView

    kwargs.pop("convert_data", None)
    template_vars = kwargs.pop("template_vars", {}) or {}
    kwargs.pop("jinja2_native", None)
    if kwargs:
        raise TemplateError(
            "fleetkit's template lookup does not support: " + ", ".join(sorted(kwargs))
        )
    _init()
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.lookup import LookupBase

    loader = DataLoader()
    if variables.get("playbook_dir"):
        loader.set_basedir(str(variables["playbook_dir"]))

    class _Finder(LookupBase):  # type: ignore[misc]
        def run(self, terms: Any, variables: Any = None, **kw: Any) -> list[Any]:
            return []

    finder = _Finder(loader=loader, templar=None)
    out: list[Any] = []
    for term in terms:
        path = finder.find_file_in_search_path(_LookupVars(variables), "templates", term)
        if path is None:
            raise TemplateError(f"the template file {term} could not be found for the lookup")
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
        layer: dict[str, Any] = dict(template_vars)
        layer.update(
            template_host=os.uname().nodename,
            template_path=path,
            template_fullpath=os.path.abspath(path),
            template_destpath=None,
            template_run_date=None,
        )
        view = VarsView([layer, variables])
        rendered = Templar(view).render_text(source)
        out.append(rendered)
    return out


def _ansible_lookup(
    name: str,
    terms: list[Any],
    variables: Mapping[str, Any],
    kwargs: dict[str, Any],
    task_action: str | None,
) -> list[Any]:
    _init()
    from ansible._internal._task import TaskContext
    from ansible._internal._templating._jinja_plugins import _LookupContext
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import lookup_loader

    fqcn = name if _adjacent and "." not in name else _fqcn(name)
    loader = DataLoader()
    basedir = str(variables.get("playbook_dir") or ".")
    loader.set_basedir(basedir)
    try:
        with _lock:  # the loader is not thread-safe (see _find_jinja)
            shim = TemplarShim(_LookupVars(variables), basedir)
            plugin = lookup_loader.get(fqcn, loader=loader, templar=shim)
    except Exception as exc:  # noqa: BLE001 - ansible reports this as a plugin load error
        raise _PluginLoadError(f"The lookup plugin {name!r} failed to load: {exc}") from None
    if plugin is None:
        raise TemplateError(f"The lookup plugin {name!r} was not found.")
    as_with = task_action is not None
    with _LookupContext(invoked_as_with=as_with):
        if as_with:
            with TaskContext(task=SimpleNamespace(action=task_action)):
                res = plugin.run(terms, variables=_LookupVars(variables), **kwargs)
        else:
            res = plugin.run(terms, variables=_LookupVars(variables), **kwargs)
    if not isinstance(res, (list, tuple)):
        raise TypeError(f"returned {type(res)} instead of {list}")
    return list(res)


def run_lookup(name: str, terms: Any, variables: Mapping[str, Any], **kwargs: Any) -> list[Any]:
    """Run lookup plugin ``name`` on ``terms`` (already templated) and return its list.

    ``errors`` (strict/warn/ignore) is honoured as ansible does; ``wantlist`` is accepted and
    ignored (the plugin's list is always returned).
    """
    task_action = kwargs.pop("_task_action", None)
    kwargs.pop("wantlist", None)
    errors = kwargs.pop("errors", "strict")
    if not isinstance(terms, list):
        terms = [terms]
    try:
        native = _native_lookup(name)
        if native is not None:
            result = native(list(terms), variables, **kwargs)
        else:
            result = _ansible_lookup(name, list(terms), variables, kwargs, task_action)
    except Exception as exc:  # noqa: BLE001 - any plugin error is reported as ansible does
        msg = exc.message if hasattr(exc, "message") else str(exc)
        if isinstance(exc, _PluginLoadError) or (
            isinstance(exc, TemplateError) and str(exc).endswith("was not found.")
        ):
            raise
        if errors == "warn":
            _log.warning("An error occurred while running the lookup plugin %r. %s", name, msg)
            return []
        if errors == "ignore":
            return []
        raise TemplateError(f"The lookup plugin {name!r} failed: {msg}") from None
    return [_plain(v) for v in result]


def lookup_value(name: str, args: Iterable[Any], variables: Mapping[str, Any], **kw: Any) -> Any:
    """``lookup(name, *args, **kw)`` as a template function: ansible's wantlist/join rules."""
    wantlist = bool(kw.pop("wantlist", False))
    errors = kw.get("errors", "strict")
    terms = list(args)
    res = run_lookup(name, terms, variables, **kw)
    if errors in ("warn", "ignore") and not res and not wantlist:
        return None
    if wantlist or not res:
        return res
    if len(res) == 1:
        return res[0]
    try:
        return UnsafeText(",".join(res))
    except TypeError:
        return res


def loop_items(name: str, loop: Any, variables: Mapping[str, Any], task_action: str) -> list[Any]:
    """The items of ``with_<name>: loop`` (``loop`` already templated), as ansible's executor."""
    if isinstance(loop, str):
        loop = loop.strip()
    terms = loop if isinstance(loop, list) else [loop]
    return run_lookup(name, terms, variables, wantlist=True, _task_action=task_action)
