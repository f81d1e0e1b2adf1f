"""ansible-core 2.19's default stdout callback, byte for byte where it matters: banners padded
with ``*`` to 80 columns, ``ok:``/``changed:``/``skipping:``/``fatal:`` lines, ``[ERROR]`` blocks
with the task's origin, ``...ignoring``, ``NO MORE HOSTS LEFT`` and the ``PLAY RECAP``."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import sys
import threading
from collections.abc import Mapping
from typing import Any, TextIO

from fleetkit.playbook.events import Stats, TaskResult, censor_result, clean_result, json_default
from fleetkit.playbook.messages import Message
from fleetkit.playbook.playbook import Play, Task

__all__ = ["DefaultCallback"]

_COLORS = {
    "ok": "0;32",
    "changed": "0;33",
    "skip": "0;36",
    "error": "0;31",
    "unreachable": "1;31",
    "warn": "1;35",
    "deprecate": "0;35",
    "debug": "0;90",
    "included": "0;36",
    "verbose": "0;34",
}
_DEBUG_KEYS = ("msg", "exception", "warnings", "deprecations")
# what ansible's callbacks hide from a debug result that has no msg (CallbackBase._hide_in_debug)
_HIDE_IN_DEBUG = (
    "changed",
    "failed",
    "skipped",
    "invocation",
    "skip_reason",
    "ansible_loop_var",
    "ansible_index_var",
    "ansible_loop",
)


def diff_text(difflist: Any) -> str:
    """A result's ``diff`` as ansible's callbacks print it (unified, 3 lines of context)."""
    out: list[str] = []
    for diff in difflist if isinstance(difflist, list) else [difflist]:
        if not isinstance(diff, dict):
            continue
        if "dst_binary" in diff:
            out.append("diff skipped: destination file appears to be binary\n")
        if "src_binary" in diff:
            out.append("diff skipped: source file appears to be binary\n")
        if "dst_larger" in diff:
            out.append(
                f"diff skipped: destination file size is greater than {diff['dst_larger']}\n"
            )
        if "src_larger" in diff:
            out.append(f"diff skipped: source file size is greater than {diff['src_larger']}\n")
        if "before" in diff and "after" in diff:
            sides = {}
            for key in ("before", "after"):
                value = diff[key]
                if isinstance(value, dict):
                    value = json.dumps(value, sort_keys=True, indent=4, separators=(",", ": "))
                    value += "\n"
                sides[key] = "" if value is None else str(value)
            before_header = (
                f"before: {diff['before_header']}" if "before_header" in diff else "before"
            )
            after_header = f"after: {diff['after_header']}" if "after_header" in diff else "after"
            before = sides["before"].splitlines(True)
            after = sides["after"].splitlines(True)
            if before and not before[-1].endswith("\n"):
                before[-1] += "\n\\ No newline at end of file\n"
            if after and not after[-1].endswith("\n"):
                after[-1] += "\n\\ No newline at end of file\n"
            lines = list(
                difflib.unified_diff(
                    before, after, fromfile=before_header, tofile=after_header, n=3
                )
            )
            out.extend(lines)
            if lines:
                out.append("\n")
        if "prepared" in diff:
            out.append(str(diff["prepared"]))
    return "".join(out)


def _flag(value: Any, default: bool) -> bool:
    # a keyword's value as ansible's callbacks see it: untemplated, so a template is truthy
    if value is None:
        return default
    if isinstance(value, str):
        return "{{" in value or value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


def _ansible_formatter(verbosity: int) -> Any:
    """ansible's default callback, for its result serializer (its options from the config)."""
    from fleetkit.playbook.plugins import _init

    _init()
    from ansible.plugins.loader import callback_loader
    from ansible.utils.display import Display

    Display().verbosity = verbosity
    plugin = callback_loader.get("ansible.builtin.default")
    plugin.set_options()
    return plugin


def _dump(result: dict[str, Any], indent: int | None) -> str:
    return json.dumps(
        result, indent=indent, ensure_ascii=False, sort_keys=True, default=json_default
    )


class DefaultCallback:
    def __init__(
        self,
        out: TextIO | None = None,
        err: TextIO | None = None,
        verbosity: int = 0,
        color: bool | None = None,
        check: bool = False,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.verbosity = verbosity
        if color is None:
            color = (
                hasattr(self.out, "isatty")
                and self.out.isatty()
                and not os.environ.get("NO_COLOR")
                and os.environ.get("ANSIBLE_NOCOLOR", "").lower() not in ("1", "true", "yes")
            )
        self.color = bool(color)
        self.columns = (shutil.get_terminal_size((80, 24)).columns if self.color else 80) - 1
        self.check = check
        opts = options or {}
        self.show_skipped = bool(opts.get("display_skipped_hosts", True))
        self.show_ok = bool(opts.get("display_ok_hosts", True))
        self.failed_stderr = bool(opts.get("display_failed_stderr", False))
        self.markers = bool(opts.get("check_mode_markers", False))
        self.path_on_failure = bool(opts.get("show_task_path_on_failure", False))
        self.custom_stats = bool(opts.get("show_custom_stats", False))
        self.per_host_start = bool(opts.get("show_per_host_start", False))
        self._check_tasks: set[int] = set()
        self._formatter: Any = None
        fmt = str(opts.get("callback_result_format", "json")).lower()
        if fmt != "json" or opts.get("callback_format_pretty") is not None:
            self._formatter = _ansible_formatter(verbosity)
        self._play_check = check
        self._current: Task | None = None
        self._interactive = bool(hasattr(self.out, "isatty") and self.out.isatty())
        self._lock = threading.RLock()
        self._last_banner: int | None = None
        self._free = False
        self._task_names: dict[int, tuple[str, str]] = {}
        self._errors: set[str] = set()
        self._lines: dict[str, list[str]] = {}
        self._warned: set[str] = set()
        self.deprecations = bool(opts.get("deprecation_warnings", True))

    # -- low level -------------------------------------------------------------------------

    def _c(self, text: str, color: str | None) -> str:
        if not self.color or color is None:
            return text
        return f"\033[{_COLORS[color]}m{text}\033[0m"

    def _display(self, text: str, color: str | None = None, stderr: bool = False) -> None:
        stream = self.err if stderr else self.out
        if stderr:
            self.out.flush()  # what was printed before stays before, in a merged log
        if color and self.color:
            text = "\n".join(self._c(line, color) for line in text.split("\n"))
        stream.write(text + "\n")
        if self._interactive or stderr:
            stream.flush()

    def _banner(self, msg: str, color: str | None = None) -> None:
        self.out.flush()
        msg = msg.strip()
        stars = max(3, self.columns - len(msg))
        self._display(f"\n{msg} {'*' * stars}", color)

    def _task_banner(self, task: Task) -> None:
        prefix, name = self._task_names.get(task.uid, ("TASK", task.display_name()))
        mark = " [CHECK MODE]" if self.markers and task.uid in self._check_tasks else ""
        self._banner(f"{prefix} [{name}]{mark}")
        if self.verbosity >= 2:
            self._task_path(task)
        self._last_banner = task.uid

    def _task_path(self, task: Task) -> None:
        if task.path:
            self._display(f"task path: {task.path}:{task.line}", "debug")

    def _ensure_banner(self, task: Task) -> None:
        if self._last_banner != task.uid:
            self._task_banner(task)

    def _source_lines(self, path: str) -> list[str]:
        lines = self._lines.get(path)
        if lines is None:
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    lines = fh.read().splitlines()
            except OSError:
                lines = []
            self._lines[path] = lines
        return lines

    def _origin(self, path: str, line: int, col: int) -> str:
        # the annotated source as ansible 2.19 renders it: two lines of context, lines cut to
        # 120 columns with '...', and the column marker flipped to the left near the edge
        text = f"Origin: {path}:{line}:{col}\n"
        lines = self._source_lines(path)
        if line < 1 or line > len(lines):
            return text
        width = len(str(line))
        max_len = 120 - width - 1
        usable = max_len
        text += "\n"
        for n in range(max(1, line - 2), line + 1):
            src = lines[n - 1].replace("\t", " ")
            if len(src) > max_len:
                src = src[: max_len - 3] + "..."
                usable = max_len - 3
            text += f"{str(n).rjust(width)}{' ' if src else ''}{src}\n"
        if col and usable >= col >= 1:
            marker = f"column {col}"
            if col - 1 + 2 + len(marker) > max_len:
                marker = f"{' ' * (col - 1 - len(marker) - 1)}{marker} ^"
            else:
                marker = f"{' ' * (col - 1)}^ {marker}"
            text += f"{' ' * width} {marker}\n"
        return text

    def _error_block(self, res: TaskResult) -> None:
        r = res.result
        if r.get("_fk_no_error_block"):
            # a failure ansible reports without an exception (an include that fails to load)
            return
        if res.status == "unreachable":
            text = str(r.get("msg", ""))
        elif r.get("_fk_error"):
            text = str(r["_fk_error"])
        else:
            action = res.controller or bool(r.get("_fk_action_failed"))
            kind = "Action failed" if action else "Module failed"
            msg = r.get("msg", "Unknown error.")
            text = (
                f"Task failed: {kind}: {msg}" if msg not in (None, "") else f"Task failed: {kind}."
            )
        task = res.task
        block = f"[ERROR]: {text}"
        chain = r.get("_fk_chain")
        if chain:
            block += "\n"
            for i, (msg, path, line, col) in enumerate(chain):
                if i:
                    block += "\n<<< caused by >>>\n\n"
                else:
                    block += "\n"
                block += f"{msg}\n"
                if path and line:
                    block += self._origin(path, line, col)
            if r.get("_fk_help"):
                block += f"\n{r['_fk_help']}\n"
        elif task.path and task.line and not task.implicit:
            block += "\n" + self._origin(task.path, task.line, task.col)
        if block in self._errors:
            return
        self._errors.add(block)
        self._display(block, "error", stderr=self.failed_stderr)

    def _label(self, res: TaskResult) -> str:
        label = res.host
        if res.delegated_to and res.delegated_to != res.host:
            label += f" -> {res.delegated_to}"
        return label

    def _verbose(self, result: dict[str, Any], level: int = 0) -> bool:
        result = censor_result(result)
        return (
            self.verbosity > level or result.get("_ansible_verbose_always") is True
        ) and result.get("_ansible_verbose_override", False) is False

    def _show(self, res: TaskResult, result: dict[str, Any]) -> str:
        # a censored result keeps no _ansible_verbose_always: ansible prints it on one line
        result = censor_result(result)
        shown = clean_result(result, self.verbosity)
        shown.pop("skipped", None)  # ansible strips it from what a callback sees
        if res.task.action == "debug" and "msg" in shown:
            shown = {k: v for k, v in shown.items() if k in _DEBUG_KEYS}
        elif res.task.action == "debug":
            # ansible's _hide_in_debug: what is left is the variable
            for key in _HIDE_IN_DEBUG:
                shown.pop(key, None)
        indent = 4 if (result.get("_ansible_verbose_always") or self.verbosity > 2) else None
        return self._dumps(shown, indent)

    def _dumps(self, shown: dict[str, Any], indent: int | None) -> str:
        if self._formatter is not None:
            # yaml / pretty_results: ansible's own serializer (CallbackBase._dump_results)
            from fleetkit.playbook.callbacks.shim import native

            text = str(self._formatter._dump_results(native(shown), indent=indent))
            # a dump always ends a line; ansible's Display does not double its newline
            return text.removesuffix("\n")
        return _dump(shown, indent)

    # -- events ----------------------------------------------------------------------------

    def playbook_start(self, path: str, plays: int = 0) -> None:
        with self._lock:
            if self.verbosity > 1:
                self._banner(f"PLAYBOOK: {os.path.basename(path)}")
                self._display(f"{plays} plays in {path}")
            if self.check and self.markers:
                self._banner("DRY RUN")

    def play_start(self, play: Play) -> None:
        with self._lock:
            # ansible's default callback: no banner up front for non-lockstep strategies
            strategy = str(play.strategy).removeprefix("ansible.builtin.")
            self._free = strategy in ("free", "host_pinned")
            name = play.name.strip()
            raw = play.kw.get("check_mode", play.keywords.get("check_mode"))
            self._play_check = _flag(raw, self.check)
            mark = " [CHECK MODE]" if self.markers and self._play_check else ""
            self._banner(f"PLAY [{name}]{mark}" if name else f"PLAY{mark}")
            self._last_banner = None

    def task_start(self, task: Task, name: str, handler: bool = False) -> None:
        with self._lock:
            self._task_names[task.uid] = ("RUNNING HANDLER" if handler else "TASK", name)
            self._current = task
            if _flag(task.kw.get("check_mode"), self._play_check):
                self._check_tasks.add(task.uid)
            if not self._free and self.show_skipped and self.show_ok:
                self._task_banner(task)

    def runner_start(self, host: str, task: Task) -> None:
        if not self.per_host_start:
            return
        with self._lock:
            prefix, name = self._task_names.get(task.uid, ("TASK", task.display_name()))
            kind = "HANDLER" if prefix == "RUNNING HANDLER" else "TASK"
            self._display(f" [started {kind}: {name} on {host}]", "ok")

    def notify(self, handler: Task, host: str) -> None:
        return None  # ansible's default callback prints nothing here

    def result(self, res: TaskResult) -> None:
        with self._lock:
            self._result(res)

    def _result(self, res: TaskResult) -> None:
        r = res.result
        label = self._label(res)
        looped = bool(res.items)
        if res.status == "skipped":
            if not self.show_skipped:
                return
            self._ensure_banner(res.task)
            self._result_messages(r)
            for status, item in res.items:
                self._item(res, status, item)
            msg = f"skipping: [{res.host}]"
            if self._verbose(r):
                if "results" in r and any(
                    k == "loop" or k.startswith("with_") for k in res.task.kw
                ):
                    r = {k: v for k, v in r.items() if k != "results"}  # items shown on their own
                msg += " => " + self._show(res, r)
            self._display(msg, "skip")
            return
        if res.status == "unreachable":
            self._ensure_banner(res.task)
            self._result_messages(r)
            if looped:
                for status, item in res.items:
                    self._item(res, status, item)
                if res.task.action == "debug":
                    # ansible's _clean_results drops a debug loop's results: the summary shows
                    self._display(f"fatal: [{label}]: FAILED! => {self._show(res, r)}", "error")
            else:
                self._error_block(res)
            self._display(
                f"fatal: [{label}]: UNREACHABLE! => {self._show(res, r)}",
                "unreachable",
                stderr=self.failed_stderr,
            )
            if res.ignored:
                self._display("...ignoring", "skip")
            return
        if res.status == "failed":
            self._ensure_banner(res.task)
            self._result_messages(r)
            if looped:
                for status, item in res.items:
                    self._item(res, status, item)
            else:
                self._error_block(res)
            # ansible cleans a debug result down to its msg before looking for loop results,
            # so a failed debug loop still gets its summary line
            if not looped or (res.task.action == "debug" and "msg" in r):
                if self.path_on_failure and self.verbosity < 2:
                    self._task_path(res.task)
                self._display(
                    f"fatal: [{label}]: FAILED! => {self._show(res, r)}",
                    "error",
                    stderr=self.failed_stderr,
                )
            if res.ignored:
                self._display("...ignoring", "skip")
            return
        if res.status != "changed" and not self.show_ok:
            return
        self._ensure_banner(res.task)
        if res.include:
            # ansible's default callback shows an include's skipped items only
            for status, item in res.items:
                if status == "skipped":
                    self._item(res, status, item)
            return
        if looped:
            # ansible shows what the task raised while looping before the items
            self._result_messages(r)
            for status, item in res.items:
                self._item(res, status, item)
            return
        if r.get("_ansible_show_diff") and r.get("diff") and r.get("changed"):
            text = diff_text(r["diff"])
            if text:
                # ansible's display adds no newline to text that already ends with one
                self._display(text[:-1] if text.endswith("\n") else text)
        self._result_messages(r)
        if r.get("failed"):
            # failed_when false over a failed result (until exhausted): ansible shows the error
            self._error_block(res)
        color = "changed" if res.status == "changed" else "ok"
        msg = f"{res.status}: [{label}]"
        if self._verbose(r):
            msg += " => " + self._show(res, r)
        self._display(msg, color)

    def _item(self, res: TaskResult, status: str, item: dict[str, Any]) -> None:
        label = self._label(res)
        if item.get("_ansible_no_log"):
            ilabel: Any = "(censored due to no_log)"
        else:
            ilabel = item.get("_ansible_item_label", item.get("item"))
        if status == "skipped":
            if not self.show_skipped:
                return
            self._ensure_banner(res.task)
            self._result_messages(item)
            msg = f"skipping: [{res.host}] => (item={ilabel}) "
            if self._verbose(item):
                msg += " => " + self._show(res, item)
            self._display(msg, "skip")
        elif status in ("failed", "unreachable"):
            self._result_messages(item)
            self._error_block(
                TaskResult(res.host, res.task, item, status, controller=res.controller)
            )
            self._display(
                f"failed: [{label}] (item={ilabel}) => {self._show(res, item)}",
                "error",
                stderr=self.failed_stderr,
            )
        else:
            if item.get("_ansible_show_diff") and item.get("diff") and item.get("changed"):
                # ansible sends each ok/changed item's diff before the item's own line
                text = diff_text(item["diff"])
                if text:
                    self._ensure_banner(res.task)
                    self._display(text[:-1] if text.endswith("\n") else text)
            if status != "changed" and not self.show_ok:
                return
            self._ensure_banner(res.task)
            self._result_messages(item)
            if item.get("failed"):
                self._error_block(
                    TaskResult(res.host, res.task, item, status, controller=res.controller)
                )
            msg = f"{status}: [{label}] => (item={ilabel})"
            if self._verbose(item):
                msg += " => " + self._show(res, item)
            self._display(msg, "changed" if status == "changed" else "ok")

    def retry(
        self, host: str, task: Task, name: str, attempts: int, retries: int, result: dict[str, Any]
    ) -> None:
        with self._lock:
            msg = f"FAILED - RETRYING: [{host}]: {name} ({retries - attempts} retries left)."
            if self.verbosity > 2:
                msg += "Result was: " + self._dumps(
                    clean_result(censor_result(result), self.verbosity), 4
                )
            self._display(msg, "debug")

    def include(self, path: str, hosts: list[str], item: dict[str, Any] | None = None) -> None:
        with self._lock:
            if self._current is not None:
                # ansible's include result shows the banner when hiding ok/skipped hosts
                self._ensure_banner(self._current)
            msg = f"included: {path} for {', '.join(hosts)}"
            if item is not None:
                # ansible's item label: the label, else ``item`` (not the loop_var)
                if item.get("_ansible_no_log"):
                    label: Any = "(censored due to no_log)"
                else:
                    label = item.get("_ansible_item_label", item.get("item"))
                if label:
                    msg += f" => (item={label})"
            self._display(msg, "included")

    def no_hosts_matched(self) -> None:
        with self._lock:
            self._display("skipping: no hosts matched", "skip")

    def no_hosts_remaining(self) -> None:
        with self._lock:
            self._banner("NO MORE HOSTS LEFT")

    def warning(self, msg: str) -> None:
        with self._lock:
            self._warn(msg)

    def _warn(self, msg: str) -> None:
        # ansible's Display shows a given warning once per run
        text = f"[WARNING]: {msg}"
        if text in self._warned:
            return
        self._warned.add(text)
        self._display(text, "warn", stderr=True)

    def _message_text(self, m: Message) -> str:
        """A warning/deprecation as ansible's event formatting renders it."""
        head = m.headline()
        if m.help_text and m.origin is None and "\n" not in head and "\n" not in m.help_text:
            return f"{head} {m.help_text}"
        parts = [head]
        if m.origin is not None:
            parts.append(self._origin(*m.origin).rstrip("\n"))
        if m.help_text:
            parts += ["", m.help_text]
        text = "\n".join(parts).strip()
        # a multi-line message is followed by a blank line
        return text + "\n" if "\n" in text else text

    def _result_messages(self, result: dict[str, Any]) -> None:
        """The warnings and deprecations a task (or item) raised, before its result line."""
        for m in result.get("_fk_messages") or ():
            if not isinstance(m, Message):
                continue
            if m.kind == "warning":
                self._warn(self._message_text(m))
                continue
            if not self.deprecations:
                continue
            self._warn(
                "Deprecation warnings can be disabled by setting "
                "`deprecation_warnings=False` in ansible.cfg."
            )
            text = f"[DEPRECATION WARNING]: {self._message_text(m)}"
            if text in self._warned:
                continue
            self._warned.add(text)
            self._display(text, "deprecate", stderr=True)

    def async_event(self, kind: str, host: str, jid: str, result: dict[str, Any]) -> None:
        """``ASYNC POLL``/``ASYNC OK``/``ASYNC FAILED`` lines of an async task."""
        with self._lock:
            if kind == "poll":
                started, finished = result.get("started", 1), result.get("finished", 0)
                text = f"ASYNC POLL on {host}: jid={jid} started={started} finished={finished}"
            else:
                text = f"ASYNC {kind.upper()} on {host}: jid={jid}"
            self._display(text, "debug")

    def verbose(self, msg: str, level: int) -> None:
        """A Display.v..vvvvvv line: shown from that verbosity on."""
        if self.verbosity >= level:
            with self._lock:
                self._display(msg, "verbose")

    def error(self, msg: str, origin: tuple[str, int, int] | None = None) -> None:
        """An ``[ERROR]:`` line on stderr (the run goes on), with its annotated origin."""
        block = f"[ERROR]: {msg}"
        if origin is not None:
            block += "\n" + self._origin(*origin)
        with self._lock:
            self._display(block, "error", stderr=True)

    def _custom_stats(self, custom: dict[str, dict[str, Any]]) -> None:
        self._banner("CUSTOM STATS: ")
        for key in sorted(custom):
            if key != "_run":
                self._display(f"\t{key}: {self._dumps(custom[key], 1).replace(chr(10), '')}")
        if "_run" in custom:
            self._display("")
            self._display(f"\tRUN: {self._dumps(custom['_run'], 1).replace(chr(10), '')}")
        self._display("")

    def stats(self, stats: Stats) -> None:
        with self._lock:
            self._banner("PLAY RECAP")
            for h in stats.hosts():
                t = stats.summarize(h)
                if self.color:
                    if t["failures"] or t["unreachable"]:
                        hc = self._c(h, "error").ljust(37)
                    elif t["changed"]:
                        hc = self._c(h, "changed").ljust(37)
                    else:
                        hc = self._c(h, "ok").ljust(37)
                else:
                    hc = h.ljust(26)
                parts = []
                for lead, key, color in (
                    ("ok", "ok", "ok"),
                    ("changed", "changed", "changed"),
                    ("unreachable", "unreachable", "unreachable"),
                    ("failed", "failures", "error"),
                    ("skipped", "skipped", "skip"),
                    ("rescued", "rescued", "ok"),
                    ("ignored", "ignored", "warn"),
                ):
                    s = f"{lead}={t[key]:<4}"
                    if t[key] and self.color:
                        s = self._c(s, color)
                    parts.append(s)
                self.out.write(f"{hc} : {' '.join(parts)}\n")
            self.out.write("\n")
            self.out.flush()
            if stats.custom and self.custom_stats:
                self._custom_stats(stats.custom)
            if self.check and self.markers:
                self._banner("DRY RUN")
