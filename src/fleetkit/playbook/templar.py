"""Jinja2 in a sandbox, with ansible's filters/tests, native single-expression results and
lazily templated variables (a variable whose value is itself a template is rendered on use)."""

from __future__ import annotations

import contextvars
import functools
import re
import threading
from collections.abc import Iterator, Mapping
from types import GeneratorType
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes, pass_context
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.exceptions import UndefinedError
from jinja2.lexer import TOKEN_STRING, TOKEN_VARIABLE_BEGIN, TOKEN_VARIABLE_END, Lexer
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

__all__ = ["Templar", "VarsView", "is_template", "OMIT"]

OMIT = "__omit_place_holder__fleetkit__"
_SINGLE = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)
# a template that is one ``{{ }}`` and nothing else (Jinja's lexer drops one final newline): its
# value keeps its type; any other text around it makes the result a string (ansible 2.19)
_WHOLE = re.compile(r"\A\{\{(.*)\}\}(\n?)\Z", re.S)
# ``{{ name }}`` / ``{{ a.b['c'] }}``: a reference to a variable, whose string value is a trusted
# expression when it came from playbook/inventory files (anything else is template output)
_REFERENCE = re.compile(r"^\s*[A-Za-z_]\w*(?:\.\w+|\[\s*(?:'[^']*'|\"[^\"]*\"|\d+)\s*\])*\s*$")
UNTRUSTED = "Encountered untrusted template or expression."


class AnsibleUndefined(StrictUndefined):
    """Strict, but ``a.b.c | default(x)`` and ``a.b is defined`` work on a missing ``a``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return AnsibleUndefined(
            name=f"{self._undefined_name}.{name}" if self._undefined_name else name,
            hint=self._undefined_hint,
        )

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


def _one_expression(text: str, m: re.Match[str]) -> bool:
    """Whether ``text`` (matched by _WHOLE or _SINGLE) is one ``{{ }}`` block and nothing else
    (braces inside its string constants included)."""
    inner = m.group(1)
    if "{{" not in inner and "}}" not in inner and "{%" not in text:
        return True
    try:
        kinds = [kind for _line, kind, _v in _ENV.lexer.tokeniter(text.strip(), None)]
    except JinjaTemplateError:
        return False
    kinds = [k for k in kinds if k != "whitespace"]
    return (
        bool(kinds)
        and kinds[0] == TOKEN_VARIABLE_BEGIN
        and kinds[-1] == TOKEN_VARIABLE_END
        and kinds.count(TOKEN_VARIABLE_BEGIN) == 1
        and "block_begin" not in kinds
    )


class _ConstTemplate(str):
    """A template-looking string constant written inside a template (``'{{ x }}'``): a
    lookup renders it as a term (ansible 2.19's embedded templates, with their warning)."""

    __slots__ = ()


_CONST_MSG = (
    "Jinja constant strings should not contain embedded templates. This feature will be "
    "disabled by default in ansible-core 2.23."
)
_CONST_HELP_COND = (
    'Use inline expressions, for example: `when: "{{ a_var }}" == 42` becomes `when: a_var == 42`'
)
_CONST_HELP_LOOKUP = (
    "Use inline expressions, for example: `msg: \"{{ lookup('env', '{{ a_var }}') }}\"` becomes "
    "`msg: \"{{ lookup('env', a_var) }}\"`"
)
# where the template being rendered is written (for the lookup-term warning)
_CONST_ORIGIN: contextvars.ContextVar[messages.Origin | None] = contextvars.ContextVar(
    "fk_const_origin", default=None
)
# set while a conditional expression is evaluated: (templar, origin of the expression)
_CONST_RENDER: contextvars.ContextVar[tuple[Templar, messages.Origin | None] | None] = (
    contextvars.ContextVar("fk_const_render", default=None)
)


class _MarkConsts(NodeTransformer):
    """Template-looking string constants become calls of ``_fk_const`` (see _const_value)."""

    def visit_Const(self, node: nodes.Const) -> nodes.Node:
        value = node.value
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            return nodes.Call(
                nodes.Name("_fk_const", "load", lineno=node.lineno),
                [nodes.Const(value, lineno=node.lineno)],
                [],
                None,
                None,
                lineno=node.lineno,
            )
        return node


def _const_value(value: str) -> Any:
    """A template-looking constant: rendered (with ansible's warning) inside a conditional
    expression, else kept as a :class:`_ConstTemplate` for lookups."""
    state = _CONST_RENDER.get()
    if state is None:
        return _ConstTemplate(value)
    templar, origin = state
    messages.warning(_CONST_MSG, origin, _CONST_HELP_COND)
    try:
        return templar.template(str(value))
    except TemplateUndefined as exc:
        # as ansible's lazy markers: the undefined only fails where it is used
        return AnsibleUndefined(hint=str(exc))


class _Env(ImmutableSandboxedEnvironment):
    """The sandbox plus bounds on ``*`` and ``**`` (sequence repetition, huge powers)."""

    intercepted_binops = frozenset({"*", "**"})

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        source = _MarkConsts().visit(source)
        return super()._generate(source, name, filename, defer_init)

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
    elif isinstance(value, dict):
        for v in value.values():
            _fail_on_undefined(v)


def _finalize(value: Any) -> Any:
    """What ``{{ }}`` prints inside a larger template: None as "", tuples as lists (ansible)."""
    if value is None:
        return ""
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


def _listing(func: Any) -> Any:
    """A Jinja2 filter that returns a generator, returning a list as ansible's do (so
    ``select(...) | length`` and indexing work)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return list(func(*args, **kwargs))

    return wrapper


def _make_env() -> ImmutableSandboxedEnvironment:
    env = _Env(
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
        filters[name] = _listing(filters[name])
    filters.update(FILTERS)
    tests = {
        k: v
        for k, v in env.tests.items()
        if k not in plugins.ANSIBLE_TESTS or k in ("defined", "undefined")
    }
    tests.update(TESTS)
    env.filters = _PluginMap(filters, plugins.find_filter)
    env.tests = _PluginMap(tests, plugins.find_test)
    env.globals["range"] = _lazy_range
    env.globals["omit"] = OMIT
    env.globals["lookup"] = _lookup
    env.globals["query"] = _query
    env.globals["q"] = _query
    env.globals["_fk_const"] = _const_value
    return env


def _trust_consts(context: Context, value: Any) -> Any:
    """A lookup's positional terms: template-looking constants written in the template are
    rendered first (as ansible 2.19 still does, with a warning)."""
    if isinstance(value, _ConstTemplate):
        messages.warning(_CONST_MSG, _CONST_ORIGIN.get(), _CONST_HELP_LOOKUP)
        return Templar(_ContextVars(context)).template(str(value))
    if isinstance(value, (list, tuple)):
        return type(value)(_trust_consts(context, v) for v in value)
    if isinstance(value, dict):
        return {k: _trust_consts(context, v) for k, v in value.items()}
    return value


@pass_context
def _lookup(context: Context, name: str, *args: Any, **kwargs: Any) -> Any:
    args = tuple(_trust_consts(context, a) for a in args)
    return plugins.lookup_value(name, args, _ContextVars(context), **kwargs)


@pass_context
def _query(context: Context, name: str, *args: Any, **kwargs: Any) -> Any:
    kwargs["wantlist"] = True
    args = tuple(_trust_consts(context, a) for a in args)
    return plugins.lookup_value(name, args, _ContextVars(context), **kwargs)


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


def _compiled(source: str, escape: bool, expression: bool) -> Any:
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
            raise TemplateError(
                f"template error while templating string: {exc}. String: {source}"
            ) from None
        finally:
            _compile.escape = False
        with _cache_lock:
            cache[key] = found
    return found


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
                raise TemplateError(f"recursive loop detected in template for variable {key!r}")
            self._busy.add(key)
            try:
                value = Templar(self).template(value)
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

    def evaluate(self, expression: str, origin: messages.Origin | None = None) -> Any:
        """Evaluate a conditional expression (``when:``, ``until:``, ``that:``) as ansible 2.19:
        a whole ``{{ ref }}`` may name a trusted expression; other template delimiters are a
        syntax error; untrusted data is never evaluated (``origin``: where the expression is
        written, for the deprecation a ``{{ }}``-wrapped conditional raises)."""
        origin = origin or messages.origin_of(expression)
        if isinstance(expression, UnsafeText):
            raise UntrustedTemplate(origin)
        expression = expression.strip()
        if not expression:
            raise BrokenConditional()
        m = _SINGLE.match(expression)
        if m and _one_expression(expression, m):
            where = _CONST_ORIGIN.set(origin)
            try:
                result = self._evaluate(m.group(1), escape=True)
            finally:
                _CONST_ORIGIN.reset(where)
            if not isinstance(result, str):
                messages.deprecated(messages.CONDITIONAL_AS_TEMPLATE, "2.23", origin=origin)
                return result
            if isinstance(result, UnsafeText) or not _REFERENCE.match(m.group(1)):
                raise UntrustedTemplate(origin)
            expression = result.strip()
        elif expression.startswith(("{{", "{%", "{#")) and expression.endswith(("}}", "%}", "#}")):
            # all template: rendered, and only a non-string result is usable (a rendered
            # string is never trusted as an expression: no meta-templating)
            result = self.template(expression)
            if isinstance(result, str):
                raise UntrustedTemplate(origin)
            messages.deprecated(messages.CONDITIONAL_AS_TEMPLATE, "2.23", origin=origin)
            return result
        if is_template(expression):
            try:
                _ENV.compile_expression(expression)
            except JinjaTemplateError as exc:
                raise TemplateError(
                    "Syntax error in expression. Template delimiters are not supported in "
                    f"expressions: {exc}"
                ) from None
        # constants with embedded templates are rendered in a conditional expression
        token = _CONST_RENDER.set((self, origin))
        where = _CONST_ORIGIN.set(origin)
        try:
            return self._evaluate(expression, escape=False)
        finally:
            _CONST_ORIGIN.reset(where)
            _CONST_RENDER.reset(token)

    def _evaluate(self, expression: str, escape: bool) -> Any:
        te = _compiled(expression, escape, expression=True)
        tmpl = te._template
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

    def condition(self, expression: Any, origin: messages.Origin | None = None) -> bool:
        if isinstance(expression, bool):
            return expression
        if expression is None:
            return False
        if isinstance(expression, (int, float)):
            return bool(expression)
        result = self.evaluate(
            expression if isinstance(expression, str) else str(expression), origin
        )
        if isinstance(result, str):
            low = result.strip().lower()
            if low in ("true", "yes", "on", "1"):
                return True
            if low in ("false", "no", "off", "0", ""):
                return False
        return bool(result)

    def render_text(self, source: str, escape_backslashes: bool = False) -> str:
        """Render a whole template file's text to a string (``template`` lookup/module)."""
        tmpl = _compiled(source, escape_backslashes, expression=False)
        try:
            return "".join(tmpl.root_render_func(self._context(tmpl)))
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

    def template(self, value: Any) -> Any:
        """Render ``value`` (strings, and recursively lists/dicts); ``UnsafeText`` is kept."""
        if isinstance(value, str):
            if isinstance(value, UnsafeText) or not is_template(value):
                return value
            render = _CONST_RENDER.set(None)
            where = _CONST_ORIGIN.set(messages.origin_of(value))
            try:
                return self._template_str(value)
            finally:
                _CONST_ORIGIN.reset(where)
                _CONST_RENDER.reset(render)
        if isinstance(value, dict):
            return {self.template(k): self.template(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.template(v) for v in value]
        return value

    def _template_str(self, value: str) -> Any:
        m = _WHOLE.match(value)
        if m and _one_expression(value, m):
            result = self._evaluate(m.group(1), escape=True)
            if m.group(2) and isinstance(result, str) and not result.endswith("\n"):
                # ansible gives a string result the template's trailing newline back
                result = type(result)(result + "\n")
            return result
        # a string built by rendering is new data: ansible never trusts it as a template
        return UnsafeText(self.render_text(value, escape_backslashes=True))
