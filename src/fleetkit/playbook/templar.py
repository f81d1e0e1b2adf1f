"""Jinja2 in a sandbox, with ansible's filters/tests, native single-expression results and
lazily templated variables (a variable whose value is itself a template is rendered on use)."""

from __future__ import annotations

import contextvars
import dataclasses
import datetime
import functools
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import GeneratorType
from typing import Any, cast

from jinja2 import StrictUndefined, Undefined, nodes, pass_context
from jinja2.compiler import Frame
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.exceptions import UndefinedError
from jinja2.lexer import TOKEN_STRING, TOKEN_VARIABLE_BEGIN, TOKEN_VARIABLE_END, Lexer
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from jinja2.utils import missing
from jinja2.visitor import NodeTransformer

from fleetkit.playbook import messages, plugins
from fleetkit.playbook.errors import (
    BrokenConditional,
    TemplateError,
    TemplateUndefined,
    UntrustedTemplate,
)
from fleetkit.playbook.filters import FILTERS, TESTS
from fleetkit.playbook.trust import UnsafeText

__all__ = ["Templar", "VarsView", "is_template", "is_all_template", "configure", "OMIT"]

OMIT = "__omit_place_holder__fleetkit__"
_SINGLE = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)
# a template that is one ``{{ }}`` and nothing else (Jinja's lexer drops one final newline): its
# value keeps its type; any other text around it makes the result a string (ansible 2.19)
_WHOLE = re.compile(r"\A\{\{(.*)\}\}(\n?)\Z", re.S)
# ``{{ name }}`` / ``{{ a.b['c'] }}``: a reference to a variable, whose string value is a trusted
# expression when it came from playbook/inventory files (anything else is template output)
_REFERENCE = re.compile(r"^\s*[A-Za-z_]\w*(?:\.\w+|\[\s*(?:'[^']*'|\"[^\"]*\"|\d+)\s*\])*\s*$")
UNTRUSTED = "Encountered untrusted template or expression."
# ansible finds a variable defined through itself by Python's recursion limit; its message
_RECURSIVE = "Recursive loop detected in template: maximum recursion depth exceeded"


_CONST_WARNING = (
    "Jinja constant strings should not contain embedded templates. This feature will be "
    "disabled by default in ansible-core 2.23."
)
_AS_TEMPLATE = (
    "Conditionals should not be surrounded by templating delimiters such as {{ }} or {% %}."
)
_BROKEN_HELP = (
    "Broken conditionals can be temporarily allowed with the `ALLOW_BROKEN_CONDITIONALS` "
    "configuration option."
)


class _Settings:
    """The ansible settings templating reads (ALLOW_BROKEN_CONDITIONALS, ...) and where its
    warnings go; set once per run by :func:`configure`."""

    allow_broken_conditionals = False
    allow_embedded_templates = True
    deprecation_warnings = True
    warn: Callable[[str], None] | None = None
    seen: set[str] = set()
    lock = threading.Lock()


def configure(
    *,
    allow_broken_conditionals: bool = False,
    allow_embedded_templates: bool = True,
    deprecation_warnings: bool = True,
    warn: Callable[[str], None] | None = None,
) -> None:
    """Apply ansible's templating settings for this run; ``warn`` shows a warning line."""
    _Settings.allow_broken_conditionals = allow_broken_conditionals
    _Settings.allow_embedded_templates = allow_embedded_templates
    _Settings.deprecation_warnings = deprecation_warnings
    _Settings.warn = warn
    _Settings.seen = set()


_CONST_HELP_COND = (
    'Use inline expressions, for example: `when: "{{ a_var }}" == 42` becomes `when: a_var == 42`'
)
_CONST_HELP_LOOKUP = (
    "Use inline expressions, for example: `msg: \"{{ lookup('env', '{{ a_var }}') }}\"` becomes "
    "`msg: \"{{ lookup('env', a_var) }}\"`"
)
# where the conditional or template being evaluated is written (for the messages about it)
_ORIGIN: contextvars.ContextVar[messages.Origin | None] = contextvars.ContextVar(
    "fk_template_origin", default=None
)


def _warn(msg: str, help_text: str | None = None) -> None:
    """A warning: kept with the running task's result (shown before its line, registered), or
    outside a task shown once per run (ansible's Display dedupes them)."""
    if messages.active():
        messages.warning(msg, _ORIGIN.get(), help_text)
        return
    if help_text:
        msg = f"{msg} {help_text}"
    with _Settings.lock:
        if msg in _Settings.seen or _Settings.warn is None:
            return
        _Settings.seen.add(msg)
        sink = _Settings.warn
    sink(msg)


def _deprecated(msg: str) -> None:
    if messages.active():
        messages.deprecated(msg, "2.23", origin=_ORIGIN.get())
        return
    if _Settings.deprecation_warnings:
        _warn(messages.removal_text(msg, "2.23", None, messages.CORE))


class AnsibleUndefined(StrictUndefined):
    """Strict, but ``a.b.c | default(x)`` and ``a.b is defined`` work on a missing ``a``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        # the first missing name is the error ansible reports (``d.missing.deeper``: "object of
        # type 'dict' has no attribute 'missing'"; ``nope.x``: "'nope' is undefined")
        return self

    def __getitem__(self, key: Any) -> Any:
        return self.__getattr__(str(key))


# The most one template may build with ``*``/``**``: ansible never renders host data, and a
# template of its own that asks for gigabytes fails instead of taking the controller down.
MAX_STR_BYTES = 64 * 1024 * 1024
MAX_POW_BITS = 1_000_000


class _PluginMap(dict[str, Any]):
    """Jinja2's filters/tests, falling back to ansible's plugins (loaded on first use)."""

    def __init__(self, base: Mapping[str, Any], find: Any) -> None:
        super().__init__(base)
        self._find = find

    def _load(self, key: str) -> Any:
        fn = self._find(key)
        if fn is not None:
            self[key] = fn
        return fn

    def __getitem__(self, key: str) -> Any:
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        fn = self._load(key)
        if fn is None:
            raise KeyError(key)
        return fn

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None


class _ConstTemplate(UnsafeText):
    """A template-looking string constant inside a template (``lookup('pipe', 'echo {{ x }}')``):
    ansible renders it in lookup arguments and conditionals only, with a deprecation warning."""

    __slots__ = ()


def _join(nodes: Iterable[Any]) -> str:
    """Template output nodes as one string."""
    return "".join([str(n) for n in nodes])


# ansible's ``ansible._protomatter.dump_object`` filter is handed an expression that failed as
# a value (ansible's error markers) and returns ``{"exception": <the error>}``. fleetkit has no
# markers: that one filter's input is evaluated under a try (names it reads resolved there,
# not when the template starts) and a failure reaches the filter as a _CapturedError.
_ERRORS_AS_VALUES = "ansible._protomatter.dump_object"


class _CapturedError:
    """An error a template expression raised, as a value (``.message``, as ansible's)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"AnsibleError({self.message!r})"


def _dump_object(value: Any) -> Any:
    """``ansible._protomatter.dump_object``: an error as ``{"exception": ...}``, a dataclass as
    a dict, anything else as it is."""
    if isinstance(value, _CapturedError):
        return {"exception": value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


class _LazyNames(NodeTransformer):
    """Context variables read inside an errors-as-values filter's input, resolved when that
    input is evaluated (``environment._fk_lookup_name(context, name)``)."""

    def __init__(self, local: set[str]) -> None:
        self.local = local

    def visit_Name(self, node: nodes.Name) -> nodes.Node:
        if node.ctx != "load" or node.name in self.local:
            return node
        call = nodes.Call(
            nodes.EnvironmentAttribute("_fk_lookup_name"),
            [nodes.ContextReference(), nodes.Const(node.name)],
            [],
            None,
            None,
        )
        return call.set_lineno(node.lineno)


def _errors_as_values(tree: nodes.Template) -> None:
    """Prepare the inputs of errors-as-values filters (see ``_ERRORS_AS_VALUES``)."""
    found = [f for f in tree.find_all(nodes.Filter) if f.name == _ERRORS_AS_VALUES and f.node]
    if found:
        local = {n.name for n in tree.find_all(nodes.Name) if n.ctx != "load"}
        for f in found:
            if f.node is not None:
                f.node = _LazyNames(local).visit(f.node)


class _CodeGen(NativeCodeGenerator):
    """Jinja2's code generator; template-looking string constants go through
    ``environment._access_const`` at run time, as in ansible's."""

    def visit_Filter(self, node: nodes.Filter, frame: Frame) -> None:
        if node.name != _ERRORS_AS_VALUES or node.node is None:
            super().visit_Filter(node, frame)
            return
        with self._filter_test_common(node, frame, True):
            self.write("environment._fk_capture(lambda: ")
            self.visit(node.node, frame)
            self.write(")")

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        # one constant node keeps its type (``{% if x %}{{ 5 }}{% endif %}`` is 5)
        items = list(group)
        return repr(items[0]) if len(items) == 1 else repr(_join(items))

    def visit_Const(self, node: nodes.Const, frame: Frame) -> None:
        value = node.as_const(frame.eval_ctx)
        if type(value) is str and is_template(value) and _Settings.allow_embedded_templates:
            self.write(f"environment._access_const({value!r})")
        else:
            super().visit_Const(node, frame)


_render_state = threading.local()


class _Env(ImmutableSandboxedEnvironment):
    """The sandbox plus bounds on ``*`` and ``**`` (sequence repetition, huge powers)."""

    intercepted_binops = frozenset({"*", "**"})
    code_generator_class = _CodeGen
    concat = staticmethod(_join)  # {% set %} blocks and macros (output nodes are native values)

    def _fk_capture(self, thunk: Callable[[], Any]) -> Any:
        """The value of an errors-as-values filter's input, or the error it raised."""
        try:
            return thunk()
        except Exception as exc:  # noqa: BLE001 - every error becomes the value (ansible's)
            return _CapturedError(str(exc))

    def _fk_lookup_name(self, context: Context, name: str) -> Any:
        """A context variable, resolved where it is used (see ``_LazyNames``)."""
        value = context.resolve_or_missing(name)
        return self.undefined(name=name) if value is missing else value

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        _errors_as_values(source)
        return super()._generate(source, name, filename, defer_init)

    def _access_const(self, value: str) -> Any:
        """A template-looking constant: rendered at once inside a conditional, else marked for
        the lookup that may receive it."""
        templar: Templar | None = getattr(_render_state, "const_templar", None)
        if templar is None:
            return _ConstTemplate(value)
        _warn(_CONST_WARNING, _CONST_HELP_COND)
        try:
            return templar.template(value)
        except TemplateUndefined as exc:
            # as ansible's lazy markers: the undefined only fails where it is used
            return AnsibleUndefined(hint=str(exc))

    @property
    def lexer(self) -> Lexer:
        """One lexer for the environment (its settings never change)."""
        lex: Lexer | None = self.__dict__.get("_fk_lexer")
        if lex is None:
            lex = _Lexer(self)
            self.__dict__["_fk_lexer"] = lex
        return lex

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                    if len(seq) * n > MAX_STR_BYTES:
                        raise TemplateError(
                            f"Error rendering template: the result of {operator!r} would hold "
                            f"{len(seq) * n} items, more than the sandbox allows ({MAX_STR_BYTES})"
                        )
        elif (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and abs(left) > 1
            and right * max(abs(left).bit_length(), 1) > MAX_POW_BITS
        ):
            raise TemplateError(
                "Error rendering template: the result of '**' would exceed "
                f"{MAX_POW_BITS} bits, more than the sandbox allows"
            )
        return super().call_binop(context, operator, left, right)


def _plain_output(value: Any) -> Any:
    if type(value) is tuple or isinstance(value, (list, GeneratorType)):
        return [_plain_output(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_output(v) for k, v in value.items()}
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def _fail_on_undefined(value: Any) -> None:
    """Raise the undefined error of the first undefined value inside a result (ansible's
    finalization: ``things | map(attribute='name')`` fails when one item has no ``name``)."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    elif isinstance(value, (list, tuple)):
        for v in value:
            _fail_on_undefined(v)
    elif isinstance(value, dict) and not isinstance(value, _LazyDict):
        for v in value.values():
            _fail_on_undefined(v)


# a conditional that starts and ends with template delimiters (ansible's all-template check)
_ALL_TEMPLATE = re.compile(r"\A(?:\{\{|\{%|\{#).*(?:\}\}|%\}|#\})\Z", re.S)


def is_all_template(value: str) -> bool:
    """Whether ``value`` starts and ends with template delimiters (ansible's check)."""
    return _ALL_TEMPLATE.match(value) is not None


_SINGLE_CACHE: dict[str, tuple[str, str] | None] = {}


def _single_expression(value: str) -> tuple[str, str] | None:
    """(expression, trailing newline) when ``value`` is one ``{{ }}`` and nothing else (its
    value then keeps its type); string constants inside may hold template delimiters."""
    m = _WHOLE.match(value)
    if m is None or "{%" in value:
        return None
    inner, newline = m.group(1), m.group(2)
    if "{{" not in inner and "}}" not in inner:
        return inner, newline
    if value in _SINGLE_CACHE:
        return _SINGLE_CACHE[value]
    try:
        kinds = [kind for _line, kind, _v in _ENV.lex(value) if kind != "whitespace"]
    except JinjaTemplateError:
        kinds = []
    if newline and kinds and kinds[-1] == "data":
        kinds.pop()
    single = (
        len(kinds) >= 2
        and kinds[0] == "variable_begin"
        and kinds[-1] == "variable_end"
        and kinds.count("variable_begin") == kinds.count("variable_end") == 1
        and "data" not in kinds
    )
    found = (inner, newline) if single else None
    with _cache_lock:
        _SINGLE_CACHE[value] = found
    return found


def _strip_conditional(value: Any) -> Any:
    """A conditional stripped of surrounding blanks; an empty one is an error (True, with a
    deprecation warning, under ALLOW_BROKEN_CONDITIONALS)."""
    if isinstance(value, str):
        value = type(value)(value.strip())
    if value is None or value == "":
        if _Settings.allow_broken_conditionals:
            _deprecated("Empty conditional expression was evaluated as True.")
            return True
        raise BrokenConditional()
    return value


def _native_type_name(value: Any) -> str:
    """The type name ansible shows for a value (its plain Python type)."""
    for kind in (bool, int, float, str, dict, list, tuple):
        if isinstance(value, kind):
            return kind.__name__
    return type(value).__name__


def _flatten(value: Any) -> Any:
    """A template's value as it leaves the templating system: views over variables
    (``hostvars``, ``hostvars[host]``, ``vars``) and lazy dicts become plain dicts, as ansible
    flattens them (a container without them is returned as it is)."""
    if isinstance(value, _LazyDict) or (isinstance(value, Mapping) and not isinstance(value, dict)):
        return {k: _flatten(value[k]) for k in value}
    if isinstance(value, dict):
        flat = {k: _flatten(v) for k, v in value.items()}
        return value if all(flat[k] is v for k, v in value.items()) else flat
    if isinstance(value, list):
        items = [_flatten(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _same(value: Any) -> Any:
    return value


def _finalize(value: Any) -> Any:
    """What ``{{ }}`` prints inside a larger template: None as "", tuples as lists (ansible)."""
    if value is None:
        return ""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if type(value) is tuple or isinstance(value, (list, dict, GeneratorType)):
        return _plain_output(value)
    return value


class _LazyRange:
    """``range()`` in templates: lazy as ansible's (``range(10**8) | length`` works), while
    iterating more than the sandbox's MAX_RANGE items is refused (no memory bombs)."""

    __slots__ = ("_r",)

    def __init__(self, r: range) -> None:
        self._r = r

    def __len__(self) -> int:
        return len(self._r)

    def __iter__(self) -> Iterator[int]:
        if len(self._r) > MAX_RANGE:
            raise OverflowError(
                f"Range too big. The sandbox blocks ranges larger than MAX_RANGE ({MAX_RANGE})."
            )
        return iter(self._r)

    def __getitem__(self, index: Any) -> Any:
        item = self._r[index]
        return _LazyRange(item) if isinstance(item, range) else item

    def __contains__(self, value: object) -> bool:
        return value in self._r

    def __eq__(self, other: object) -> bool:
        other_r = other._r if isinstance(other, _LazyRange) else other
        return self._r == other_r

    def __hash__(self) -> int:
        return hash(self._r)

    def __repr__(self) -> str:
        return repr(self._r)

    def __reversed__(self) -> Iterator[int]:
        return reversed(list(self))


def _lazy_range(*args: int) -> _LazyRange:
    return _LazyRange(range(*args))


def _now(utc: bool = False, fmt: str | None = None) -> Any:
    """``now()`` in templates: the current time, or it formatted with ``fmt`` (ansible's)."""
    now = (
        datetime.datetime.now(datetime.UTC).replace(tzinfo=None) if utc else datetime.datetime.now()
    )
    return now.strftime(fmt) if fmt else now


def _undef(hint: str | None = None) -> Any:
    """``undef()`` in templates: an undefined value, with an optional hint (ansible's)."""
    if hint is not None and not isinstance(hint, str):
        raise TemplateError(
            "The 'hint' argument must be of type 'str' or 'NoneType', "
            f"not {_native_type_name(hint)!r}."
        )
    return AnsibleUndefined(hint=hint or None, name=None)


def _listing(func: Any, name: str) -> Any:
    """A Jinja2 filter that returns a generator, returning a list as ansible's do (so
    ``select(...) | length`` and indexing work); its errors reported as ansible reports a
    failing ``ansible.builtin`` filter."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return list(func(*args, **kwargs))
        except UndefinedError:
            raise
        except JinjaTemplateError as exc:  # e.g. "No test named 'x'."
            raise TemplateError(
                f"The filter plugin 'ansible.builtin.{name}' failed: {exc.message or exc}"
            ) from None

    return wrapper


def _strict_test(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A Jinja2 test that fails on an undefined argument with that value's own error."""

    def call(*args: Any, **kwargs: Any) -> Any:
        plugins.fail_on_undefined(args, kwargs)
        return fn(*args, **kwargs)

    call.__name__ = getattr(fn, "__name__", "test")
    if hasattr(fn, "jinja_pass_arg"):
        call.jinja_pass_arg = fn.jinja_pass_arg  # type: ignore[attr-defined]
    return call


def _make_env() -> ImmutableSandboxedEnvironment:
    env = _Env(
        optimized=False,  # constant folding would skip _CodeGen.visit_Const (ansible's too)
        finalize=_finalize,
        undefined=AnsibleUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do"],
        cache_size=0,
    )
    # Jinja2's builtins, with ansible's plugins (loaded on first use) where ansible has its own;
    # ansible's map/select/... and defined/undefined exist for its lazy markers, which fleetkit's
    # undefined models with Jinja2's own.
    keep = {"map", "select", "reject", "selectattr", "rejectattr", "groupby"}
    filters = {
        k: v for k, v in env.filters.items() if k not in plugins.ANSIBLE_FILTERS or k in keep
    }
    for name in ("map", "select", "reject", "selectattr", "rejectattr"):
        filters[name] = _listing(filters[name], name)
    filters.update(FILTERS)
    filters[_ERRORS_AS_VALUES] = _dump_object
    # ansible 2.19 wraps Jinja2's own tests too: an undefined argument fails the template
    # (``x.missing is mapping`` is an error, not false), except for defined/undefined
    tests = {
        k: v if k in ("defined", "undefined") else _strict_test(cast(Callable[..., Any], v))
        for k, v in env.tests.items()
        if k not in plugins.ANSIBLE_TESTS or k in ("defined", "undefined")
    }
    tests.update(TESTS)
    env.filters = _PluginMap(filters, plugins.find_filter)
    env.tests = _PluginMap(tests, plugins.find_test)
    env.globals["range"] = _lazy_range
    env.globals["now"] = _now
    env.globals["undef"] = _undef
    env.globals["omit"] = OMIT
    env.globals["lookup"] = _lookup
    env.globals["query"] = _query
    env.globals["q"] = _query
    return env


def _trust_consts(value: Any, variables: Mapping[str, Any]) -> Any:
    """Lookup terms with their template-looking constants rendered (ansible's backward
    compatibility for ``lookup('file', '{{ d }}/x')``, with its deprecation warning)."""
    if isinstance(value, _ConstTemplate):
        _warn(_CONST_WARNING, _CONST_HELP_LOOKUP)
        return Templar(variables).template(str(value))
    if isinstance(value, list):
        return [_trust_consts(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _trust_consts(v, variables) for k, v in value.items()}
    return value


@pass_context
def _lookup(context: Context, name: str, *args: Any, **kwargs: Any) -> Any:
    variables = _ContextVars(context)
    terms = [_trust_consts(a, variables) for a in args]
    return plugins.lookup_value(name, terms, variables, **kwargs)


@pass_context
def _query(context: Context, name: str, *args: Any, **kwargs: Any) -> Any:
    kwargs["wantlist"] = True
    variables = _ContextVars(context)
    terms = [_trust_consts(a, variables) for a in args]
    return plugins.lookup_value(name, terms, variables, **kwargs)


class _ContextVars(Mapping[str, Any]):
    """A template's variables (task variables and loop locals) for a lookup plugin."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def __getitem__(self, key: str) -> Any:
        value = self._ctx.resolve_or_missing(key)
        if value is missing or key in _GLOBALS and key not in self._ctx.parent:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        yield from self._ctx.vars
        for k in self._ctx.parent:
            if k not in self._ctx.vars and k not in _GLOBALS:
                yield k

    def __len__(self) -> int:
        return sum(1 for _ in self)


_ENV = _make_env()
_GLOBALS = dict(_ENV.globals)


def jinja_environment() -> Any:
    """The Jinja environment templates render in (its filters and tests)."""
    return _ENV


_cache_lock = threading.Lock()
_EXPR_CACHE: dict[tuple[str, bool], Any] = {}
_TPL_CACHE: dict[tuple[str, bool], Any] = {}


def is_template(value: str) -> bool:
    return "{{" in value or "{%" in value or "{#" in value


_compile = threading.local()


class _Lexer(Lexer):
    """Jinja2's lexer; for templates from YAML, backslashes in string constants inside
    ``{{ }}`` are data (YAML already processed escapes), as ansible's lexer does."""

    def tokeniter(
        self, source: str, name: str | None, filename: str | None = None, state: str | None = None
    ) -> Iterator[tuple[int, str, str]]:
        stream = super().tokeniter(source, name, filename, state)
        if not getattr(_compile, "escape", False):
            yield from stream
            return
        in_var = state == "variable"
        for lineno, kind, value in stream:
            if kind == TOKEN_VARIABLE_BEGIN:
                in_var = True
            elif kind == TOKEN_VARIABLE_END:
                in_var = False
            elif in_var and kind == TOKEN_STRING:
                value = value.replace("\\", "\\\\")
            yield lineno, kind, value


def _compiled(source: str, escape: bool, expression: bool, kind: str = "template") -> Any:
    """``source`` compiled once (an expression or a whole template); a syntax error is reported
    as ansible reports it for a ``kind`` ("template" or "expression")."""
    cache = _EXPR_CACHE if expression else _TPL_CACHE
    key = (source, escape)
    found = cache.get(key)
    if found is None:
        _compile.escape = escape
        try:
            if expression:
                found = _ENV.compile_expression(source, undefined_to_none=False)
            else:
                found = _ENV.from_string(source)
        except JinjaTemplateError as exc:
            raise TemplateError(f"Syntax error in {kind}: {exc.message or exc}") from None
        except SyntaxError as exc:  # Jinja2's Python code did not compile (a repeated keyword)
            error: Exception = exc
            if expression and kind == "template":
                # ansible compiles a whole template as a template: its code's line numbers
                try:
                    _ENV.from_string("{{" + source + "}}")
                except (SyntaxError, JinjaTemplateError) as again:
                    error = again
            raise TemplateError(f"Error rendering {kind}: {error}") from None
        finally:
            _compile.escape = False
        with _cache_lock:
            cache[key] = found
    return found


class _LazyDict(dict[Any, Any]):
    """A variable's dict whose templated values are rendered when first reached (ansible
    2.19's lazy containers): a template renders only the parts it uses. Any operation that
    sees the whole dict renders the rest first, so a plain dict's view never shows a
    template."""

    __slots__ = ("_view", "_pending")

    def __init__(self, raw: Mapping[Any, Any], view: VarsView) -> None:
        super().__init__(raw)
        self._view = view
        self._pending = {k for k, v in raw.items() if _needs_render(v)}

    def __getitem__(self, key: Any) -> Any:
        value = dict.__getitem__(self, key)
        if key in self._pending:
            value = _render_lazily(value, self._view)
            dict.__setitem__(self, key, value)
            self._pending.discard(key)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if dict.__contains__(self, key) else default

    def __iter__(self) -> Iterator[Any]:
        # defined so that dict(x), {**x} and update(x) use keys() and __getitem__
        return dict.__iter__(self)

    def _render_all(self) -> None:
        for key in list(self._pending):
            self[key]

    def items(self) -> Any:
        self._render_all()
        return dict.items(self)

    def values(self) -> Any:
        self._render_all()
        return dict.values(self)

    def copy(self) -> dict[Any, Any]:
        self._render_all()
        return dict(dict.items(self))

    def pop(self, key: Any, *default: Any) -> Any:
        self._render_all()
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[Any, Any]:
        self._render_all()
        return dict.popitem(self)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._render_all()
        return dict.setdefault(self, key, default)

    def __eq__(self, other: object) -> bool:
        self._render_all()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        self._render_all()
        return dict.__ne__(self, other)

    __hash__ = None

    def __or__(self, other: Any) -> Any:
        self._render_all()
        return dict.__or__(self, other)

    def __repr__(self) -> str:
        self._render_all()
        return dict.__repr__(self)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (dict, (self.copy(),))

    def __copy__(self) -> dict[Any, Any]:
        return self.copy()

    def __deepcopy__(self, memo: Any) -> dict[Any, Any]:
        import copy

        return copy.deepcopy(self.copy(), memo)


def _render_lazily(value: Any, view: VarsView) -> Any:
    """A variable's value as templates see it: strings rendered, dicts lazy, lists rendered."""
    if isinstance(value, dict) and not isinstance(value, _LazyDict):
        return _LazyDict(value, view) if _needs_render(value) else value
    if isinstance(value, list):
        return [_render_lazily(v, view) for v in value]
    if isinstance(value, str):
        return Templar(view)._template(value, final=False)
    return value


class VarsView(Mapping[str, Any]):
    """A read-only view over layered variables; string values that are templates are
    rendered (once) when looked up."""

    def __init__(self, layers: list[Mapping[str, Any]]) -> None:
        self._layers = layers  # highest precedence first
        self._rendered: dict[str, Any] = {}
        self._busy: set[str] = set()

    def raw(self, key: str) -> Any:
        for layer in self._layers:
            if key in layer:
                return layer[key]
        raise KeyError(key)

    def __getitem__(self, key: str) -> Any:
        if key in self._rendered:
            return self._rendered[key]
        value = self.raw(key)
        if _needs_render(value):
            if key in self._busy:
                raise TemplateError(_RECURSIVE)
            self._busy.add(key)
            try:
                value = _render_lazily(value, self)
            finally:
                self._busy.discard(key)
        self._rendered[key] = value
        return value

    def __contains__(self, key: object) -> bool:
        return any(key in layer for layer in self._layers)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for layer in self._layers:
            for k in layer:
                if k not in seen:
                    seen.add(k)
                    yield k

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def with_layer(self, layer: Mapping[str, Any]) -> VarsView:
        return VarsView([layer, *self._layers])


def _needs_render(value: Any) -> bool:
    if isinstance(value, str):
        return not isinstance(value, UnsafeText) and is_template(value)
    if isinstance(value, dict):
        return any(_needs_render(v) for v in value.values())
    if isinstance(value, list):
        return any(_needs_render(v) for v in value)
    return False


class _Globals(Mapping[str, Any]):
    __slots__ = ("_vars",)

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self._vars = variables

    def __getitem__(self, key: str) -> Any:
        if key in self._vars:
            return self._vars[key]
        return _GLOBALS[key]

    def __contains__(self, key: object) -> bool:
        return key in self._vars or key in _GLOBALS

    def __iter__(self) -> Iterator[str]:
        yield from self._vars
        yield from _GLOBALS

    def __len__(self) -> int:
        return len(self._vars) + len(_GLOBALS)


_NO_ATTR = re.compile(r"^'([\w.]+) object' has no attribute (.*)$")
_TYPE_NAMES = {
    "fleetkit.playbook.templar.VarsView": "HostVarsVars",
    "fleetkit.playbook.yamlsrc.Located": "dict",
}


def _describe(exc: Exception) -> str:
    msg = str(exc)
    if isinstance(exc, UndefinedError):
        m = _NO_ATTR.match(msg)
        if m:
            kind = _TYPE_NAMES.get(m.group(1), m.group(1))
            return f"object of type '{kind}' has no attribute {m.group(2)}"
        return msg
    return f"Error rendering template: {msg}"


class Templar:
    """Render values against one set of variables."""

    __slots__ = ("_vars", "_ctxvars")

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self._vars = variables
        self._ctxvars = _Globals(variables)

    def _context(self, template: Any) -> Context:
        ctx: Context = template.new_context(self._ctxvars, shared=True)
        return ctx

    def evaluate(self, expression: str) -> Any:
        """Evaluate an expression (``debug: var``) as ansible 2.19: a whole ``{{ ref }}`` may
        name a trusted expression; other template delimiters are a syntax error; untrusted
        data is never evaluated."""
        if isinstance(expression, UnsafeText):
            raise TemplateError(UNTRUSTED)
        expression = expression.strip()
        m = _SINGLE.match(expression)
        if m and "{{" not in m.group(1) and "}}" not in m.group(1):
            result = self._evaluate(m.group(1), escape=True)
            if not isinstance(result, str):
                return result
            if isinstance(result, UnsafeText) or not _REFERENCE.match(m.group(1)):
                raise TemplateError(UNTRUSTED)
            expression = result.strip()
        return self._expression(expression, consts=False)

    def _expression(self, expression: str, consts: bool) -> Any:
        if is_template(expression):
            try:
                _ENV.compile_expression(expression)
            except JinjaTemplateError as exc:
                raise TemplateError(
                    "Syntax error in expression. Template delimiters are not supported in "
                    f"expressions: {exc}"
                ) from None
        return self._evaluate(expression, escape=False, kind="expression", consts=consts)

    def _evaluate(
        self, expression: str, escape: bool, kind: str = "template", consts: bool = False
    ) -> Any:
        te = _compiled(expression, escape, expression=True, kind=kind)
        tmpl = te._template
        outer = getattr(_render_state, "const_templar", None)
        _render_state.const_templar = self if consts else None
        try:
            ctx = self._context(tmpl)
            for _ in tmpl.root_render_func(ctx):
                pass
            result = ctx.vars["result"]
            if isinstance(result, Undefined):
                result._fail_with_undefined_error()
            if isinstance(result, GeneratorType):
                result = list(result)  # ansible finalizes generators (``map``, ``select``) to lists
            if isinstance(result, (list, dict, tuple)):
                _fail_on_undefined(result)
            return result
        except TemplateError:
            raise
        except (
            JinjaTemplateError,
            TypeError,
            ValueError,
            KeyError,
            AttributeError,
            ZeroDivisionError,
            IndexError,
            MemoryError,
            OverflowError,
        ) as exc:
            if isinstance(exc, UndefinedError):
                raise TemplateUndefined(_describe(exc)) from None
            raise TemplateError(_describe(exc)) from None
        finally:
            _render_state.const_templar = outer

    def conditional_value(self, conditional: Any) -> Any:
        """What a conditional (``when``, ``failed_when``, ``until``, ``assert: that``) evaluates
        to, as ansible 2.19: a string expression, or a whole template whose value is either
        the result (deprecated) or the trusted expression to evaluate."""
        origin = messages.origin_of(conditional)
        token = _ORIGIN.set(origin)
        try:
            return self._conditional_value(conditional, origin)
        finally:
            _ORIGIN.reset(token)

    def _conditional_value(self, conditional: Any, origin: messages.Origin | None) -> Any:
        conditional = _strip_conditional(conditional)
        if type(conditional) is bool:
            return conditional
        if not isinstance(conditional, str):
            if _Settings.allow_broken_conditionals:
                return self.template(conditional)
            raise TemplateError("Conditional expressions must be strings.", hint=_BROKEN_HELP)
        if isinstance(conditional, UnsafeText):
            raise UntrustedTemplate(origin)
        if not _ALL_TEMPLATE.match(conditional):
            return self._expression(conditional, consts=True)
        m = _SINGLE.match(conditional)
        result = _strip_conditional(self.template(conditional))
        if not isinstance(result, str):
            _deprecated(_AS_TEMPLATE)
            return result
        # only a trusted expression may be named this way: a variable's value from a playbook
        if isinstance(result, UnsafeText) or not (m and _REFERENCE.match(m.group(1))):
            raise UntrustedTemplate(origin)
        return self._expression(result, consts=True)

    def condition(self, expression: Any) -> bool:
        """A conditional's boolean result; any other type is a broken conditional (an error,
        or a deprecation warning with ALLOW_BROKEN_CONDITIONALS)."""
        result = self.conditional_value(expression)
        if isinstance(result, bool):
            return result
        msg = (
            f"Conditional result ({bool(result)}) was derived from value of type "
            f"{_native_type_name(result)!r} at '<unknown>'. Conditionals must have a boolean "
            "result."
        )
        if _Settings.allow_broken_conditionals:
            _deprecated(msg)
            return bool(result)
        raise TemplateError(msg, hint=_BROKEN_HELP)

    def render_text(self, source: str, escape_backslashes: bool = False) -> str:
        """Render a whole template file's text to a string (``template`` lookup/module)."""
        return _join(self._render_nodes(source, escape_backslashes))

    def _render_nodes(self, source: str, escape_backslashes: bool) -> list[Any]:
        """The output nodes of a template (text and the values of its ``{{ }}``)."""
        tmpl = _compiled(source, escape_backslashes, expression=False)
        outer = getattr(_render_state, "const_templar", None)
        _render_state.const_templar = None
        try:
            return list(tmpl.root_render_func(self._context(tmpl)))
        except TemplateError:
            raise
        except (
            JinjaTemplateError,
            TypeError,
            ValueError,
            KeyError,
            AttributeError,
            ZeroDivisionError,
            IndexError,
            MemoryError,
            OverflowError,
        ) as exc:
            if isinstance(exc, UndefinedError):
                raise TemplateUndefined(_describe(exc)) from None
            raise TemplateError(_describe(exc)) from None
        finally:
            _render_state.const_templar = outer

    def template(self, value: Any) -> Any:
        """Render ``value`` (strings, and recursively lists/dicts); ``UnsafeText`` is kept."""
        origin = messages.origin_of(value) if isinstance(value, str) else None
        if origin is None:
            return self._template(value, final=True)
        token = _ORIGIN.set(origin)
        try:
            return self._template(value, final=True)
        finally:
            _ORIGIN.reset(token)

    def _template(self, value: Any, final: bool) -> Any:
        """``template``; ``final``: the value leaves the templating system (lazy dicts inside
        it are rendered whole), else it is a variable's value seen by other templates."""
        done = _flatten if final else _same
        if isinstance(value, str):
            if isinstance(value, UnsafeText) or not is_template(value):
                return value
            whole = _single_expression(value)
            if whole is not None:
                result = done(self._evaluate(whole[0], escape=True))
                if isinstance(result, _ConstTemplate):
                    result = UnsafeText(result)  # a constant is data, not a template
                if whole[1] and isinstance(result, str) and not result.endswith("\n"):
                    # ansible gives a string result the template's trailing newline back
                    result = type(result)(result + "\n")
                return result
            out = self._render_nodes(value, escape_backslashes=True)
            if not out:
                return None  # ansible's native concatenation: no output is None
            if len(out) == 1 and not isinstance(out[0], str):
                return done(out[0])  # one node keeps its type
            # a string built by rendering is new data: ansible never trusts it as a template
            return UnsafeText(_join(out))
        if isinstance(value, dict):
            return {self._template(k, final): self._template(v, final) for k, v in value.items()}
        if isinstance(value, list):
            return [self._template(v, final) for v in value]
        return value
