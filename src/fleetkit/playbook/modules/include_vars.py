"""``include_vars`` and ``validate_argument_spec`` (controller-side actions, as ansible's).

include_vars returns ``ansible_facts`` = the loaded variables and ``ansible_included_var_files``;
the engine stores them at include_vars precedence. The loader adds ``_ansible_task_dir`` and
``_ansible_role_path`` so relative names resolve as ansible's ``_find_needle('vars', ...)``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from fleetkit.playbook.errors import ModuleError, PlaybookSyntaxError
from fleetkit.playbook.modules import Module, ModuleContext
from fleetkit.playbook.yamlsrc import load_yaml_file

__all__ = ["MODULES"]

_DIR_ARGS = (
    "dir",
    "depth",
    "files_matching",
    "ignore_files",
    "extensions",
    "ignore_unknown_extensions",
)
_FILE_ARGS = ("file", "_raw_params")
_ALL_ARGS = ("name", "hash_behaviour")


def _candidates(name: str, args: dict[str, Any]) -> list[str]:
    if os.path.isabs(name):
        return [name]
    out: list[str] = []
    role = args.get("_ansible_role_path")
    task_dir = args.get("_ansible_task_dir")
    if role:
        out += [os.path.join(role, "vars", name), os.path.join(role, name)]
    if task_dir:
        out += [os.path.join(task_dir, "vars", name), os.path.join(task_dir, name)]
    out.append(os.path.abspath(name))
    return out


def _load(path: str) -> dict[str, Any]:
    try:
        data = load_yaml_file(path)
    except PlaybookSyntaxError as exc:
        raise ModuleError(str(exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ModuleError(f"{path} must be stored as a dictionary/hash")
    return dict(data)


def run_include_vars(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    user = {k: v for k, v in args.items() if not k.startswith("_ansible_")}
    dirs = files = 0
    for k in user:
        if k in _DIR_ARGS:
            dirs += 1
        elif k in _FILE_ARGS:
            files += 1
        elif k not in _ALL_ARGS:
            raise ModuleError(f"{k} is not a valid option in include_vars")
    if dirs and files:
        raise ModuleError("You are mixing file only and dir only arguments, these are incompatible")
    if user.get("hash_behaviour") not in (None, "replace"):
        raise ModuleError("include_vars hash_behaviour other than 'replace' is not supported")
    results: dict[str, Any] = {}
    included: list[str] = []
    if user.get("dir"):
        src = str(user["dir"])
        role = args.get("_ansible_role_path")
        if os.path.isabs(src):
            root = src
        elif role:
            first = src.split("/")[0]
            root = os.path.join(role, src) if first == "vars" else os.path.join(role, "vars", src)
            if first == "vars" and not os.path.exists(root):
                root = src
        else:
            root = os.path.join(str(args.get("_ansible_task_dir") or "."), src)
        if not os.path.exists(root):
            return {"failed": True, "message": f"{root} directory does not exist", "changed": False}
        if not os.path.isdir(root):
            return {"failed": True, "message": f"{root} is not a directory", "changed": False}
        depth = int(user.get("depth") or 0)
        matcher = re.compile(str(user["files_matching"])) if user.get("files_matching") else None
        ignore = user.get("ignore_files") or []
        if isinstance(ignore, str):
            ignore = ignore.split()
        exts = user.get("extensions", ["yaml", "yml", "json"])
        if isinstance(exts, str):
            exts = list(exts)
        ignore_unknown = bool(user.get("ignore_unknown_extensions", False))
        walked = sorted(os.walk(root, followlinks=True), key=lambda x: x[0])
        for cur, _dirs, names in walked:
            level = len(os.path.relpath(cur, root).split(os.sep)) if cur != root else 0
            if depth and level + 1 > depth:
                continue
            for fname in sorted(names):
                if fname in ignore or any(re.search(str(p), fname) for p in ignore):
                    continue
                ext = fname.rsplit(".", 1)[-1] if "." in fname else ""
                if ext not in exts:
                    if ignore_unknown:
                        continue
                    return {
                        "failed": True,
                        "changed": False,
                        "message": f"{os.path.join(cur, fname)} does not have a valid "
                        f"extension: {', '.join(exts)}",
                    }
                if matcher is not None and not matcher.search(fname):
                    continue
                path = os.path.join(cur, fname)
                results.update(_load(path))
                included.append(path)
    else:
        name = user.get("file") or user.get("_raw_params")
        if not name:
            raise ModuleError("No file or dir given to include_vars")
        name = str(name).rstrip("\n")
        cands = _candidates(name, args)
        found = next((c for c in cands if os.path.isfile(c)), None)
        if found is None:
            return {
                "failed": True,
                "changed": False,
                "message": f"Could not find or access '{name}'\nSearched in:\n\t"
                + "\n\t".join(cands),
            }
        results.update(_load(found))
        included.append(found)
    if user.get("name"):
        results = {str(user["name"]): results}
    return {
        "ansible_facts": results,
        "ansible_included_var_files": included,
        "changed": False,
    }


def run_validate_argument_spec(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    from ansible.module_utils.common.arg_spec import (
        ArgumentSpecValidator,
    )

    result: dict[str, Any] = {"validate_args_context": args.get("validate_args_context") or {}}
    spec = args.get("argument_spec")
    if spec is None:
        raise ModuleError(f'"argument_spec" arg is required in args: {args}')
    provided = args.get("provided_arguments") or {}
    if not isinstance(spec, dict):
        raise ModuleError(f"Incorrect type for argument_spec, expected dict and got {type(spec)}")
    if not isinstance(provided, dict):
        raise ModuleError(
            f"Incorrect type for provided_arguments, expected dict and got {type(provided)}"
        )
    from_vars: dict[str, Any] = {}
    for name in spec:
        if name in ctx.variables:
            assert ctx.evaluate is not None
            from_vars[name] = ctx.evaluate(name)
    outcome = ArgumentSpecValidator(spec).validate(
        {**from_vars, **provided}, validate_role_argument_spec=True
    )
    if outcome.error_messages:
        result.update(
            failed=True,
            msg="Validation of arguments failed:\n" + "\n".join(outcome.error_messages),
            argument_spec_data=spec,
            argument_errors=list(outcome.error_messages),
        )
        return result
    result.update(changed=False, msg="The arg spec validation passed")
    return result


MODULES = (
    Module("include_vars", run_include_vars, None, controller=True),
    Module("validate_argument_spec", run_validate_argument_spec, None, controller=True),
)
