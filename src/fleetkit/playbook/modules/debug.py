"""Controller-side actions: ``debug``, ``fail``, ``assert``, ``set_fact``, ``ping`` (``pause`` is ansible's own action)."""

from __future__ import annotations

import re
from typing import Any

from fleetkit.playbook.errors import ModuleError, TemplateError, TemplateUndefined
from fleetkit.playbook.modules import Module, ModuleContext, Param, _bool
from fleetkit.playbook.templar import OMIT, is_all_template
from fleetkit.playbook.trust import UnsafeText

__all__ = ["MODULES", "RAW_ARGS", "ActionArgError", "VarExpressionError"]

# argument keys the runner must not template (they are expressions evaluated by the action)
RAW_ARGS = {"debug": ("var",), "assert": ("that",)}


UNTRUSTED = "Encountered untrusted template or expression."
_REF = re.compile(r"^\s*\{\{\s*([A-Za-z_][\w.]*)\s*\}\}\s*$")


class VarExpressionError(ModuleError):
    """``debug: var:`` names an expression that cannot be evaluated (untrusted, an error)."""

    def __init__(self, message: str, untrusted: bool = True) -> None:
        super().__init__(message)
        self.untrusted = untrusted


class ActionArgError(ModuleError):
    """An action plugin's argument check failed (ansible's validate_argument_spec)."""


def run_debug(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    verbosity = int(args.get("verbosity") or 0)
    if verbosity > ctx.verbosity:
        return {"skipped": True, "skipped_reason": "Verbosity threshold not met.", "changed": False}
    if args.get("msg") is not None and args.get("var") is not None:
        msg = "parameters are mutually exclusive: msg|var"
        # ansible's debug action raises it (AnsibleActionFail): no "Action failed:" prefix
        return {"failed": True, "changed": False, "msg": msg, "_fk_error": f"Task failed: {msg}"}
    if args.get("var") is not None:
        var = args["var"]
        assert ctx.evaluate is not None
        if not isinstance(var, str):
            kind = next(
                (n for t, n in ((dict, "dict"), (list, "list")) if isinstance(var, t)),
                type(var).__name__,
            )
            raise ActionArgError(
                f"argument 'var' is of type {kind} and we were unable to convert "
                f"to _check_type_str_no_conversion: '{var}' is not a string and conversion is "
                "not allowed"
            )
        if isinstance(var, UnsafeText):
            # ansible 2.19: an untrusted `var` expression fails the task
            raise VarExpressionError(UNTRUSTED)
        try:
            value = ctx.evaluate(var)
        except TemplateUndefined as exc:
            # an undefined variable is shown, with a warning, not raised
            return {
                str(var): f"<< error 1 - {exc} >>",
                "changed": False,
                "failed": False,
                "warnings": [f"Encountered 1 template error.\nerror 1 - {exc}"],
                "_ansible_verbose_always": True,
            }
        except TemplateError as exc:
            if str(exc) == UNTRUSTED:
                raise VarExpressionError(UNTRUSTED) from None
            detail = str(exc).replace("Error rendering template:", "Error rendering expression:", 1)
            raise VarExpressionError(detail, untrusted=False) from None
        ref = _REF.match(var)
        if ref is not None:
            # `var: '{{ name }}'`: the expression is name's (trusted) value; the key shows it
            named = ctx.evaluate(ref.group(1))
            if isinstance(named, str):
                var = named
        if isinstance(value, str) and value == OMIT:
            return {
                str(var): "<<Omit>>",
                "changed": False,
                "failed": False,
                "warnings": [
                    "The result of the `var` expression could not be omitted; a placeholder "
                    "was used instead."
                ],
                "_ansible_verbose_always": True,
            }
        return {str(var): value, "changed": False, "_ansible_verbose_always": True}
    msg = args.get("msg", "Hello world!")
    if msg is None:
        msg = "Hello world!"
    return {"msg": msg, "changed": False, "_ansible_verbose_always": True}


def run_fail(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    msg = args.get("msg")
    if msg is None:
        msg = "Failed as requested from task"
    return {"failed": True, "msg": msg, "changed": False}


def run_assert(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    if "that" not in args:
        raise ModuleError("missing required arguments: that")
    that = args.get("that")
    assert ctx.condition is not None and ctx.template is not None
    if isinstance(that, str) and not isinstance(that, UnsafeText) and is_all_template(that):
        # a whole template may give the list of conditionals (its items are not templated)
        from fleetkit.playbook.templar import VarsView

        ref = _REF.match(that)
        resolved: Any = None
        if ref and "." not in ref.group(1) and isinstance(ctx.variables, VarsView):
            try:
                resolved = ctx.variables.raw(ref.group(1))  # the list as written
            except KeyError:
                resolved = None
        if resolved is None:
            try:
                resolved = ctx.template(that)
            except TemplateError:
                resolved = None
        if isinstance(resolved, list):
            that = resolved
    conds = that if isinstance(that, list) else [that]
    fail_msg = args.get("fail_msg", args.get("msg"))
    quiet = bool(args.get("quiet"))
    for cond in conds:
        if not ctx.condition(cond):
            failure: dict[str, Any] = {
                "failed": True,
                "changed": False,
                "assertion": cond,
                "evaluated_to": False,
                "msg": fail_msg if fail_msg is not None else "Assertion failed",
            }
            if not quiet:
                failure["_ansible_verbose_always"] = True
            return failure
    result: dict[str, Any] = {
        "changed": False,
        "msg": args.get("success_msg") or "All assertions passed",
    }
    if not quiet:
        result["_ansible_verbose_always"] = True
    return result


def run_set_fact(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    # keys were templated and validated as variable names by the executor
    cacheable = _bool(args.get("cacheable", False), "cacheable")
    facts = {k: v for k, v in args.items() if k != "cacheable"}
    if not facts:
        return {
            "failed": True,
            "changed": False,
            "msg": "No key/value pairs provided, at least one is required for this action "
            "to succeed",
        }
    return {"ansible_facts": facts, "_ansible_facts_cacheable": cacheable, "changed": False}


MODULES = (
    Module(
        "debug",
        run_debug,
        {"msg": Param("raw"), "var": Param("raw"), "verbosity": Param("int", 0)},
        controller=True,
    ),
    Module("fail", run_fail, {"msg": Param("raw")}, controller=True),
    Module(
        "assert",
        run_assert,
        {
            "that": Param("raw", required=True),
            "fail_msg": Param("raw", aliases=("msg",)),
            "success_msg": Param("raw"),
            "quiet": Param("bool", False),
        },
        controller=True,
    ),
    Module("set_fact", run_set_fact, None, controller=True),
)
