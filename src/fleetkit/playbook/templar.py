"""Jinja2 in a sandbox, with ansible's filters/tests, native single-expression results and
lazily templated variables (a variable whose value is itself a template is rendered on use)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, Undefined
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.exceptions import UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from fleetkit.playbook.errors import TemplateError
from fleetkit.playbook.filters import FILTERS, TESTS

__all__ = ["Templar", "VarsView", "is_template", "OMIT"]

OMIT = "__omit_place_holder__fleetkit__"
_SINGLE = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)


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


def _make_env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=AnsibleUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do"],
        cache_size=0,
    )
    env.filters.update(FILTERS)
    env.tests.update(TESTS)
    env.globals["omit"] = OMIT
    return env


_ENV = _make_env()
_GLOBALS = dict(_ENV.globals)
_cache_lock = threading.Lock()
_EXPR_CACHE: dict[str, Any] = {}
_TPL_CACHE: dict[str, Any] = {}


def is_template(value: str) -> bool:
    return "{{" in value or "{%" in value or "{#" in value


def _expr(source: str) -> Any:
    te = _EXPR_CACHE.get(source)
    if te is None:
        try:
            te = _ENV.compile_expression(source, undefined_to_none=False)
        except JinjaTemplateError as exc:
            raise TemplateError(
                f"template error while templating string: {exc}. String: {source}"
            ) from None
        with _cache_lock:
            _EXPR_CACHE[source] = te
    return te


def _tpl(source: str) -> Any:
    t = _TPL_CACHE.get(source)
    if t is None:
        try:
            t = _ENV.from_string(source)
        except JinjaTemplateError as exc:
            raise TemplateError(
                f"template error while templating string: {exc}. String: {source}"
            ) from None
        with _cache_lock:
            _TPL_CACHE[source] = t
    return t


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
        return is_template(value)
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
        """Evaluate a bare Jinja2 expression (``when:``, ``until:``, ``failed_when:``)."""
        expression = expression.strip()
        if is_template(expression):
            m = _SINGLE.match(expression)
            if m and "{{" not in m.group(1) and "}}" not in m.group(1):
                expression = m.group(1)
            else:
                rendered = self.template(expression)
                if not isinstance(rendered, str):
                    return rendered
                expression = rendered
        te = _expr(expression)
        tmpl = te._template
        try:
            ctx = self._context(tmpl)
            for _ in tmpl.root_render_func(ctx):
                pass
            result = ctx.vars["result"]
            if isinstance(result, Undefined):
                result._fail_with_undefined_error()
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
        ) as exc:
            raise TemplateError(_describe(exc)) from None

    def condition(self, expression: Any) -> bool:
        if isinstance(expression, bool):
            return expression
        if expression is None:
            return False
        if isinstance(expression, (int, float)):
            return bool(expression)
        result = self.evaluate(str(expression))
        if isinstance(result, str):
            low = result.strip().lower()
            if low in ("true", "yes", "on", "1"):
                return True
            if low in ("false", "no", "off", "0", ""):
                return False
        return bool(result)

    def template(self, value: Any) -> Any:
        if isinstance(value, str):
            if not is_template(value):
                return value
            m = _SINGLE.match(value)
            if m and "{{" not in m.group(1) and "}}" not in m.group(1) and "{%" not in value:
                return self.evaluate(m.group(1))
            tmpl = _tpl(value)
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
            ) as exc:
                raise TemplateError(_describe(exc)) from None
        if isinstance(value, dict):
            return {self.template(k): self.template(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.template(v) for v in value]
        return value
