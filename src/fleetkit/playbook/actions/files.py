"""Controller-side file actions as ansible's action plugins do them, then ansible's own modules
on the host: ``copy`` (content, a file or a directory tree, remote_src; checksum first, so an
unchanged file costs one ``stat``), ``template`` (rendered on the controller with ansible's
template variables, then copied), ``fetch``, ``assemble``, ``script`` and
``wait_for_connection``."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import pwd
import re
import shlex
import shutil
import stat
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from jinja2 import FileSystemLoader
from jinja2 import TemplateError as JinjaTemplateError

from fleetkit.errors import FleetkitError
from fleetkit.playbook.connection import Unreachable
from fleetkit.playbook.errors import ModuleError
from fleetkit.playbook.modules import Module, ModuleContext
from fleetkit.playbook.modules.upstream import agent_for, run_module

__all__ = ["MODULES", "ActionFail", "Remote", "find_needle", "remote_stat", "copy_action"]

# ansible.plugins.action.copy's REAL_FILE_ARGS: what the file module accepts of copy's args
_FILE_ARGS = frozenset(
    {
        "mode", "owner", "group", "seuser", "serole", "selevel", "setype", "attributes",
        "unsafe_writes", "state", "path", "_original_basename", "recurse", "force", "_diff_peek",
        "src",
    }
)  # fmt: skip
_MAX_DIFF_BYTES = 104448


class ActionFail(Exception):
    """An action-level failure: the task fails with this message."""


def _bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("yes", "on", "1", "true", "y", "t")


def _sha1_file(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _search_paths(ctx: ModuleContext, dirname: str, needle: str) -> list[str]:
    # ansible's path stack (the role, then the task's directory) and the play's basedir last
    paths: list[str] = []
    role = ctx.variables.get("role_path")
    pb = str(ctx.variables.get("playbook_dir") or os.getcwd())
    bases = [str(role)] if role else []
    bases += [pb, pb]
    for base in bases:
        if needle.split("/")[0] != dirname:
            paths.append(os.path.join(base, dirname, needle))
        paths.append(os.path.join(base, needle))
    return paths


def find_needle(ctx: ModuleContext, dirname: str, needle: str) -> str:
    """A controller file as ansible's ``_find_needle`` finds it (role, then playbook dir)."""
    if needle.startswith(("~", "/")):
        path = os.path.expanduser(needle)
        if os.path.exists(path):
            return path
        paths: list[str] = []
    else:
        paths = _search_paths(ctx, dirname, needle)
        for p in paths:
            if os.path.exists(p):
                return p
    msg = f"Could not find or access '{needle}'"
    if paths:
        msg += "\nSearched in:\n\t" + "\n\t".join(paths)
    msg += (
        " on the Ansible Controller.\nIf you are using a module and expect the file to exist on "
        "the remote, see the remote_src option"
    )
    raise ActionFail(msg)


class Remote:
    """A task's remote temporary directory, created on first use and removed at the end."""

    def __init__(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        self.tmpdir: str | None = None

    def put(self, local: str, name: str, mode: int = 0o600) -> str:
        """Ship a controller file into the task's remote tmp dir; return its remote path."""
        sess = agent_for(self.ctx)
        if self.tmpdir is None:
            remote_tmp = str(self.ctx.variables.get("ansible_remote_tmp") or "~/.ansible/tmp")
            self.tmpdir = sess.mktemp(remote_tmp)
        path = f"{self.tmpdir}/{name}"
        with open(local, "rb") as fh:
            sess.write(path, fh.read(), mode)
        return path

    def cleanup(self) -> None:
        """Remove the remote tmp dir, if one was made."""
        if self.tmpdir is not None:
            agent_for(self.ctx).rmtree(self.tmpdir)
            self.tmpdir = None


def remote_stat(ctx: ModuleContext, path: str, follow: bool, checksum: bool) -> dict[str, Any]:
    """The real stat module's ``stat`` dict, as ansible's ``_execute_remote_stat`` returns it."""
    args = {
        "path": path,
        "follow": follow,
        "get_checksum": checksum,
        "checksum_algorithm": "sha1",
    }
    res = run_module(ctx, "ansible.legacy.stat", args, module_name="ansible.legacy.stat")
    if res.get("failed"):
        msg = res.get("module_stderr") or res.get("module_stdout") or res.get("msg")
        raise ActionFail(f"Failed to get information on remote file ({path}): {msg}")
    st: dict[str, Any] = res["stat"]
    if not st.get("exists"):
        st["checksum"] = "1"
    st.setdefault("checksum", "")
    return st


def _diff_data(ctx: ModuleContext, dest: str, source: str, content: bool) -> dict[str, Any]:
    diff: dict[str, Any] = {}
    peek = run_module(
        ctx,
        "ansible.legacy.file",
        {"path": dest, "_diff_peek": True},
        module_name="ansible.legacy.file",
    )
    if peek.get("failed"):
        return diff
    if peek.get("rc", 0) == 0:
        if peek.get("state") in (None, "absent"):
            diff["before"] = ""
        elif peek.get("appears_binary"):
            diff["dst_binary"] = 1
        elif peek.get("size") and peek["size"] > _MAX_DIFF_BYTES:
            diff["dst_larger"] = _MAX_DIFF_BYTES
        else:
            got = run_module(
                ctx, "ansible.legacy.slurp", {"path": dest}, module_name="ansible.legacy.slurp"
            )
            if "content" in got:
                diff["before_header"] = dest
                diff["before"] = base64.b64decode(got["content"]).decode("utf-8", "replace")
        size = os.stat(source).st_size
        if size > _MAX_DIFF_BYTES:
            diff["src_larger"] = _MAX_DIFF_BYTES
        else:
            with open(source, "rb") as fh:
                data = fh.read()
            if b"\0" in data:
                diff["src_binary"] = 1
            else:
                diff["after_header"] = dest if content else source
                diff["after"] = data.decode("utf-8", "replace")
    return diff


def _copy_file(
    ctx: ModuleContext,
    args: dict[str, Any],
    remote: Remote,
    source_full: str,
    source_rel: str,
    content: bool,
    dest: str,
    follow: bool,
) -> dict[str, Any] | None:
    force = _bool(args.get("force"), True)
    result: dict[str, Any] = {"diff": []}
    if not os.path.exists(source_full):
        return {"failed": True, "msg": f"could not find src={source_full}"}
    lmode = None
    if args.get("mode") == "preserve":
        lmode = f"0{stat.S_IMODE(os.stat(source_full).st_mode):03o}"
    dest_file = f"{dest.rstrip('/')}/{source_rel}" if dest.endswith("/") else dest
    st = remote_stat(ctx, dest_file, follow, force)
    if st.get("exists") and st.get("isdir"):
        if content:
            return {"failed": True, "msg": "can not use content with a dir as dest"}
        dest_file = f"{dest.rstrip('/')}/{source_rel}"
        st = remote_stat(ctx, dest_file, follow, force)
    if st.get("exists") and not force:
        return None
    local_checksum = _sha1_file(source_full)
    if local_checksum != st["checksum"]:
        if ctx.diff:
            result["diff"].append(_diff_data(ctx, dest_file, source_full, content))
        if ctx.check:
            result["changed"] = True
            return result
        suffix = os.path.splitext(dest_file)[1]
        tmp_src = remote.put(source_full, ".source" + suffix)
        new_args = {k: v for k, v in args.items() if k not in ("content", "decrypt")}
        new_args.update(src=tmp_src, dest=dest, _original_basename=source_rel, follow=follow)
        if not args.get("checksum"):
            new_args["checksum"] = local_checksum
        if lmode:
            new_args["mode"] = lmode
        ret = run_module(ctx, "ansible.legacy.copy", new_args, module_name="ansible.legacy.copy")
    else:
        if follow:
            nofollow = remote_stat(ctx, dest_file, False, False)
            if nofollow.get("islnk") and "lnk_source" in nofollow:
                dest = str(nofollow["lnk_source"])
        new_args = {k: v for k, v in args.items() if k in _FILE_ARGS}
        new_args.update(dest=dest, _original_basename=source_rel, recurse=False, state="file")
        new_args.pop("src", None)
        if lmode:
            new_args["mode"] = lmode
        ret = run_module(ctx, "ansible.legacy.file", new_args, module_name="ansible.legacy.file")
    if not ret.get("checksum"):
        ret["checksum"] = local_checksum
    result.update(ret)
    return result


def _walk(topdir: str, local_follow: bool) -> dict[str, list[tuple[str, str]]]:
    """Files, directories and symlinks under a source directory (rsync's trailing-slash rule)."""
    out: dict[str, list[tuple[str, str]]] = {"files": [], "directories": [], "symlinks": []}
    base = topdir if topdir.endswith("/") else os.path.dirname(topdir)
    offset = len(base.rstrip("/")) + 1

    def rec(d: str, seen: frozenset[tuple[int, int]]) -> None:
        for name in sorted(os.listdir(d)):
            full = os.path.join(d, name)
            rel = full[offset:]
            if os.path.islink(full) and not local_follow:
                out["symlinks"].append((os.readlink(full), rel))
            elif os.path.isdir(full):
                st = os.stat(full)
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    out["symlinks"].append((os.readlink(full), rel))
                    continue
                out["directories"].append((full, rel))
                rec(full, seen | {key})
            else:
                out["files"].append((full, rel))

    st = os.stat(topdir)
    rec(topdir, frozenset({(st.st_dev, st.st_ino)}))
    return out


def _ensure_invocation(ctx: ModuleContext, args: Mapping[str, Any], result: dict[str, Any]) -> None:
    if "invocation" not in result:
        if ctx.no_log:
            result["invocation"] = "CENSORED: no_log is set"
        else:
            inv: dict[str, Any] = dict(args)
            inv["module_args"] = dict(args)
            result["invocation"] = inv
    inv = result["invocation"]
    if isinstance(inv, dict):
        if "content" in inv:
            inv["content"] = "CENSORED: content is a no_log parameter"
        margs = inv.get("module_args")
        if isinstance(margs, dict) and margs.get("content") is not None:
            margs["content"] = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def copy_action(
    ctx: ModuleContext, args: dict[str, Any], source_override: str | None = None
) -> dict[str, Any]:
    """ansible's copy action: validate, transfer what differs, run the copy/file modules."""
    for internal in ("_original_basename", "_diff_peek"):
        if args.get(internal) is not None:
            return _failed(f'Invalid parameter specified: "{internal}"')
    source = source_override or args.get("src")
    content = args.get("content")
    dest = args.get("dest")
    remote_src = _bool(args.get("remote_src"), False)
    local_follow = _bool(args.get("local_follow"), True)
    result: dict[str, Any] = {}
    msg = None
    if not source and content is None:
        msg = "src (or content) is required"
    elif not dest:
        msg = "dest is required"
    elif source and content is not None:
        msg = "src and content are mutually exclusive"
    elif content is not None and str(dest).endswith("/"):
        msg = "can not use content with a dir as dest"
    if msg:
        result = {"failed": True, "msg": msg, "_fk_action_failed": True}
        _ensure_invocation(ctx, args, result)
        return result
    dest = str(dest)
    if remote_src and content is None:
        result = run_module(ctx, "ansible.legacy.copy", args, module_name=ctx.action or "copy")
        _ensure_invocation(ctx, args, result)
        return result
    content_tmp: str | None = None
    remote = Remote(ctx)
    try:
        if content is not None:
            data = json.dumps(content) if isinstance(content, (dict, list)) else str(content)
            fd, content_tmp = tempfile.mkstemp(prefix=".")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data.encode("utf-8", "surrogateescape"))
            source = content_tmp
        elif source_override is None:
            trailing = str(source).endswith("/")
            source = find_needle(ctx, "files", str(source))
            if trailing != source.endswith("/"):
                source = source[:-1] if source.endswith("/") else source + "/"
        source = str(source)
        if os.path.isdir(source):
            tree = _walk(source, local_follow)
            if not dest.endswith("/"):
                dest += "/"
        else:
            tree = {
                "files": [(source, os.path.basename(source))],
                "directories": [],
                "symlinks": [],
            }
        if dest.startswith("~"):
            dest = _expand_remote_user(ctx, dest)
        changed = False
        module_return: dict[str, Any] = {"changed": False}
        executed = False
        follow_default = _bool(args.get("follow"), False)
        for full, rel in tree["files"]:
            follow = False if tree["directories"] else follow_default
            ret = _copy_file(ctx, args, remote, full, rel, content is not None, dest, follow)
            if ret is None:
                continue
            if ret.get("failed"):
                result.update(ret)
                _ensure_invocation(ctx, args, result)
                return result
            module_return = ret
            if "diff" in result and not result["diff"]:
                del result["diff"]
            executed = True
            changed = changed or bool(ret.get("changed"))
        made = {os.path.dirname(rel) for _f, rel in tree["files"]}
        for _full, rel in tree["directories"]:
            if rel in made:
                continue
            dargs = {k: v for k, v in args.items() if k in _FILE_ARGS}
            dargs.update(
                path=os.path.join(dest, rel),
                state="directory",
                mode=args.get("directory_mode"),
                recurse=False,
            )
            dargs.pop("src", None)
            ret = run_module(ctx, "ansible.legacy.file", dargs, module_name="ansible.legacy.file")
            if ret.get("failed"):
                result.update(ret)
                _ensure_invocation(ctx, args, result)
                return result
            executed = True
            changed = changed or bool(ret.get("changed"))
        for target, rel in tree["symlinks"]:
            largs = {k: v for k, v in args.items() if k in _FILE_ARGS}
            largs.update(path=os.path.join(dest, rel), src=target, state="link", force=True)
            if tree["directories"]:
                largs["follow"] = False
            if largs.get("mode") == "preserve":
                largs.pop("mode")
            ret = run_module(ctx, "ansible.legacy.file", largs, module_name="ansible.legacy.file")
            executed = True
            if ret.get("failed"):
                result.update(ret)
                _ensure_invocation(ctx, args, result)
                return result
            changed = changed or bool(ret.get("changed"))
        if executed and len(tree["files"]) == 1:
            result.update(module_return)
            if "path" in result and "dest" not in result:
                result["dest"] = result["path"]
        else:
            result.update(dest=dest, src=source, changed=changed)
    except ActionFail as exc:
        msg = f"Unexpected AnsibleActionFail error: {exc}"
        result = {"failed": True, "msg": msg, "_fk_error": f"Task failed: {msg}"}
    finally:
        if content_tmp is not None and os.path.exists(content_tmp):
            os.unlink(content_tmp)
        remote.cleanup()
    _ensure_invocation(ctx, args, result)
    return result


def _expand_remote_user(ctx: ModuleContext, path: str) -> str:
    head = path.split("/")[0]
    if not re.fullmatch(r"~[A-Za-z0-9_.-]*", head):
        return path
    res = ctx.conn.run(["/bin/sh", "-c", f"echo {head}"], become=ctx.become)
    home = res.stdout.decode(errors="replace").strip()
    return home + path[len(head) :] if home and res.rc == 0 else path


def _failed(msg: str) -> dict[str, Any]:
    return {"failed": True, "changed": False, "msg": msg, "_fk_action_failed": True}


def run_copy(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """The ``copy`` task."""
    return copy_action(ctx, args)


# -- template -------------------------------------------------------------------------------

_TEMPLATE_ONLY = (
    "newline_sequence",
    "block_start_string",
    "block_end_string",
    "variable_start_string",
    "variable_end_string",
    "comment_start_string",
    "comment_end_string",
    "trim_blocks",
    "lstrip_blocks",
    "output_encoding",
)
_NEWLINES = ("\n", "\r", "\r\n")


def render_template(ctx: ModuleContext, path: str, args: Mapping[str, Any], dest: str) -> str:
    """Render a template file with ansible's template variables and the task's options."""
    from fleetkit.playbook.templar import _ENV as BASE_ENV
    from fleetkit.playbook.templar import Templar, VarsView

    newline = str(args.get("newline_sequence") or "\n")
    newline = newline.encode().decode("unicode_escape") if "\\" in newline else newline
    if newline not in _NEWLINES:
        raise ActionFail("newline_sequence needs to be one of: \n, \r or \r\n")
    overrides: dict[str, Any] = {
        "trim_blocks": _bool(args.get("trim_blocks"), True),
        "lstrip_blocks": _bool(args.get("lstrip_blocks"), False),
        "newline_sequence": newline,
        "keep_trailing_newline": True,
    }
    for key in (
        "block_start_string",
        "block_end_string",
        "variable_start_string",
        "variable_end_string",
        "comment_start_string",
        "comment_end_string",
    ):
        if args.get(key) is not None:
            overrides[key] = str(args[key])
    with open(path, "rb") as fh:
        source = fh.read().decode("utf-8")
    searchpath = [os.path.dirname(path)]
    role = ctx.variables.get("role_path")
    if role:
        searchpath += [os.path.join(str(role), "templates"), str(role)]
    pb = ctx.variables.get("playbook_dir")
    if pb:
        searchpath += [os.path.join(str(pb), "templates"), str(pb)]
    env = BASE_ENV.overlay(loader=FileSystemLoader(list(dict.fromkeys(searchpath))), **overrides)
    st = os.stat(path)
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    tvars = {
        "template_host": os.uname().nodename,
        "template_path": path,
        "template_mtime": datetime.datetime.fromtimestamp(st.st_mtime),
        "template_uid": owner,
        "template_run_date": datetime.datetime.now(),
        "template_destpath": dest,
        "template_fullpath": os.path.abspath(path),
    }
    managed = ctx.variables.get("ansible_managed")
    tvars["ansible_managed"] = "Ansible managed" if managed is None else managed
    view = ctx.variables
    layered = (
        view.with_layer(tvars) if isinstance(view, VarsView) else VarsView([tvars, dict(view)])
    )
    templar = Templar(layered)
    try:
        tmpl = env.from_string(source)
        # output nodes are native values (one ``{{ }}`` keeps its type): a file is their text
        text = "".join([str(n) for n in tmpl.root_render_func(templar._context(tmpl))])
    except FleetkitError as exc:
        raise ActionFail(str(exc)) from None
    except (JinjaTemplateError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ActionFail(f"Error rendering template: {exc}") from None
    if newline != "\n":
        text = text.replace("\n", newline)
    return text


def run_template(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """ansible's template action: render on the controller, then the copy action."""
    source = args.get("src")
    dest = args.get("dest")
    state = args.get("state")
    if state is not None:
        return _failed("'state' cannot be specified on a template")
    if source is None or dest is None:
        return _failed("src and dest are required")
    encoding = str(args.get("output_encoding") or "utf-8")
    tmpdir = tempfile.mkdtemp(prefix="fleetkit-local-")
    tmp = os.path.join(tmpdir, os.path.basename(str(source)))
    try:
        path = find_needle(ctx, "templates", str(source))
        text = render_template(ctx, path, args, str(dest))
        with open(tmp, "wb") as fh:
            fh.write(text.encode(encoding))
        new_args = {k: v for k, v in args.items() if k not in _TEMPLATE_ONLY}
        new_args["src"] = tmp
        new_args.setdefault("follow", False)
        new_args["_fk_basename"] = os.path.basename(str(source))
        result = _copy_rendered(ctx, new_args, tmp, os.path.basename(str(source)))
    except ActionFail as exc:
        return _failed(str(exc))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return result


def _copy_rendered(
    ctx: ModuleContext, args: dict[str, Any], local: str, basename: str
) -> dict[str, Any]:
    args = {k: v for k, v in args.items() if k != "_fk_basename"}
    remote = Remote(ctx)
    result: dict[str, Any] = {}
    try:
        dest = str(args["dest"])
        follow = _bool(args.get("follow"), False)
        ret = _copy_file(ctx, args, remote, local, basename, False, dest, follow)
        if ret is not None:
            if "diff" in ret and not ret["diff"]:
                del ret["diff"]
            result.update(ret)
            if "path" in result and "dest" not in result:
                result["dest"] = result["path"]
        else:
            result.update(dest=dest, changed=False)
    except ActionFail as exc:
        result = {"failed": True, "msg": str(exc)}
    finally:
        remote.cleanup()
    return result


# -- fetch, assemble, script, wait_for_connection ---------------------------------------------


def run_fetch(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """ansible's fetch action: slurp the remote file, store it under dest/<host>/<path>."""
    source = args.get("src")
    dest = args.get("dest")
    flat = _bool(args.get("flat"), False)
    fail_on_missing = _bool(args.get("fail_on_missing"), True)
    validate = _bool(args.get("validate_checksum"), True)
    if source is None or dest is None:
        return _failed("src and dest are required")
    source = str(source)
    st = remote_stat(ctx, source, True, True)
    remote_checksum = st.get("checksum")
    if not st.get("exists"):
        msg = "the remote file does not exist, not transferring, ignored"
        return {"changed": False, "msg": msg, "file": source, "failed": fail_on_missing}
    if st.get("isdir"):
        return {
            "failed": True,
            "changed": False,
            "msg": "remote file is a directory, fetch cannot work on directories",
            "file": source,
        }
    got = run_module(
        ctx, "ansible.legacy.slurp", {"src": source}, module_name="ansible.legacy.slurp"
    )
    if got.get("failed"):
        return {"failed": True, "changed": False, "msg": got.get("msg"), "file": source}
    data = base64.b64decode(got["content"])
    if flat:
        target = str(dest)
        if target.endswith("/"):
            target = os.path.join(target, os.path.basename(source))
    else:
        rel = source.lstrip("/")
        target = os.path.join(str(dest), ctx.host, rel)
    target = os.path.expanduser(target)
    local_checksum = _sha1_file(target) if os.path.exists(target) else None
    new_checksum = hashlib.sha1(data).hexdigest()
    if local_checksum != remote_checksum:
        if ctx.check:
            return {
                "changed": True,
                "md5sum": None,
                "dest": target,
                "remote_md5sum": None,
                "checksum": new_checksum,
                "remote_checksum": remote_checksum,
            }
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        with open(target, "wb") as fh:
            fh.write(data)
        if validate and new_checksum != remote_checksum:
            return {
                "failed": True,
                "msg": "checksum mismatch",
                "file": source,
                "dest": target,
                "remote_checksum": remote_checksum,
                "checksum": new_checksum,
            }
        return {
            "changed": True,
            "md5sum": hashlib.md5(data).hexdigest(),
            "dest": target,
            "remote_md5sum": None,
            "checksum": new_checksum,
            "remote_checksum": remote_checksum,
        }
    return {
        "changed": False,
        "md5sum": hashlib.md5(data).hexdigest(),
        "file": source,
        "dest": target,
        "checksum": local_checksum,
    }


def run_assemble(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """ansible's assemble action: remote_src (default) runs the module; else assemble locally."""
    if _bool(args.get("remote_src"), True):
        return run_module(
            ctx, "ansible.legacy.assemble", args, module_name=ctx.action or "assemble"
        )
    src = args.get("src")
    dest = args.get("dest")
    if src is None or dest is None:
        return _failed("src and dest are required")
    try:
        src_dir = find_needle(ctx, "files", str(src))
    except ActionFail as exc:
        return _failed(str(exc))
    if not os.path.isdir(src_dir):
        return _failed(f"Source ({src_dir}) is not a directory")
    regexp = re.compile(str(args["regexp"])) if args.get("regexp") else None
    delimiter = args.get("delimiter")
    ignore_hidden = _bool(args.get("ignore_hidden"), False)
    parts: list[bytes] = []
    for name in sorted(os.listdir(src_dir)):
        if regexp is not None and not regexp.search(name):
            continue
        full = os.path.join(src_dir, name)
        if not os.path.isfile(full) or (ignore_hidden and name.startswith(".")):
            continue
        with open(full, "rb") as fh:
            data = fh.read()
        if parts and delimiter:
            d = str(delimiter).encode().decode("unicode_escape").encode()
            parts.append(d if d.endswith(b"\n") else d + b"\n")
        parts.append(data)
    fd, tmp = tempfile.mkstemp(prefix=".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"".join(parts))
        cargs = {
            k: v
            for k, v in args.items()
            if k not in ("src", "regexp", "delimiter", "ignore_hidden", "remote_src", "decrypt")
        }
        return _copy_rendered(ctx, cargs, tmp, os.path.basename(str(src)))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def run_script(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """ansible's script action: ship the local script, run it (creates/removes honoured)."""
    raw = str(args.get("_raw_params") or args.get("cmd") or "").strip()
    if not raw:
        return _failed("script requires a command")
    creates = args.get("creates")
    removes = args.get("removes")
    if creates and remote_stat(ctx, str(creates), True, False).get("exists"):
        return {
            "changed": False,
            "skipped": True,
            "rc": 0,
            "msg": f"Did not run command since '{creates}' exists",
        }
    if removes and not remote_stat(ctx, str(removes), True, False).get("exists"):
        return {
            "changed": False,
            "skipped": True,
            "rc": 0,
            "msg": f"Did not run command since '{removes}' does not exist",
        }
    parts = shlex.split(raw)
    try:
        path = find_needle(ctx, "files", parts[0])
    except ActionFail as exc:
        return _failed(str(exc))
    if ctx.check:
        return {"changed": True, "msg": "check mode"}
    remote = Remote(ctx)
    try:
        rpath = remote.put(path, os.path.basename(path), 0o700)
        exe = args.get("executable")
        cmd = (f"{exe} " if exe else "") + shlex.quote(rpath)
        if len(parts) > 1:
            cmd += " " + " ".join(shlex.quote(p) for p in parts[1:])
        if args.get("chdir"):
            cmd = f"cd {shlex.quote(str(args['chdir']))} && {cmd}"
        res = ctx.conn.run(cmd, become=ctx.become, env=ctx.env)
    finally:
        remote.cleanup()
    out = res.stdout.decode("utf-8", "replace")
    err = res.stderr.decode("utf-8", "replace")
    result: dict[str, Any] = {
        "changed": True,
        "rc": res.rc,
        "stdout": out,
        "stdout_lines": out.splitlines(),
        "stderr": err,
        "stderr_lines": err.splitlines(),
    }
    if res.rc != 0:
        result["failed"] = True
        result["msg"] = "non-zero return code"
    return result


def run_wait_for_connection(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """ansible's wait_for_connection: retry the real ping module until it answers."""
    timeout = float(args.get("timeout") or 600)
    delay = float(args.get("delay") or 0)
    sleep = float(args.get("sleep") or 1)
    connect_timeout = float(args.get("connect_timeout") or 5)
    start = time.monotonic()
    if delay:
        time.sleep(delay)
    last = ""
    while True:
        try:
            res = run_module(
                ctx,
                "ansible.legacy.ping",
                {},
                module_name="ansible.legacy.ping",
                timeout_s=connect_timeout,
            )
            if res.get("ping") == "pong":
                return {"changed": False, "elapsed": int(time.monotonic() - start)}
            last = str(res.get("msg") or "ping module failed")
        except (Unreachable, OSError, ModuleError) as exc:
            last = str(exc)
        if time.monotonic() - start > timeout:
            return {
                "failed": True,
                "changed": False,
                "elapsed": int(time.monotonic() - start),
                "msg": f"timed out waiting for ping module test: {last}",
            }
        time.sleep(sleep)


MODULES = (
    Module("copy", run_copy, None),
    Module("template", run_template, None),
    Module("fetch", run_fetch, None),
    Module("assemble", run_assemble, None),
    Module("script", run_script, None),
    Module("wait_for_connection", run_wait_for_connection, None),
)
