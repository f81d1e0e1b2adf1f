"""ansible's callback plugins under fleetkit play (stdout_callback, callbacks_enabled, adjacent
callback_plugins/) and the default callback's options, each compared with ansible-playbook."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.playbook._harness import run_ansible, run_fleetkit

INVENTORY = "[g]\na\nb\n[all:vars]\nansible_connection=local\n"

PLAYBOOK = """
- name: the play
  hosts: all
  gather_facts: false
  tasks:
    - name: say
      debug: {msg: hi}
    - name: run
      command: echo hello
    - name: loop
      debug: {msg: "{{ item }}"}
      loop: [x, y]
    - name: only a
      debug: {msg: only}
      when: inventory_hostname == 'a'
"""

FAILING = """
- name: failing
  hosts: all
  gather_facts: false
  tasks:
    - name: ok one
      debug: {msg: fine}
    - name: breaks
      fail: {msg: boom}
      when: inventory_hostname == 'b'
    - name: skipped one
      debug: {msg: never}
      when: false
    - name: last
      command: echo done
"""

DRY_RUN = """
- name: common
  hosts: a
  gather_facts: false
  tasks:
    - name: cmd
      command: echo hi
    - name: wet
      command: echo hi
      check_mode: false
- name: forced
  hosts: a
  gather_facts: false
  check_mode: true
  tasks:
    - debug: {msg: x}
"""


def _both(
    tmp_path: Path, playbook: str, *extra: str
) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    (tmp_path / "inventory.ini").write_text(INVENTORY)
    (tmp_path / "playbook.yml").write_text(playbook)
    args = ["-i", "inventory.ini", "playbook.yml", "-f", "1", *extra]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    return (a.returncode, a.stdout, a.stderr), (f.returncode, f.stdout, f.stderr)


def _errlines(stderr: str) -> list[str]:
    # ansible's own import noise (cryptography deprecations) is not part of the output
    return [
        line
        for line in stderr.splitlines()
        if "ryptography" not in line and "[DEPRECATION" not in line and "Deprecation" not in line
    ]


@pytest.mark.parametrize("name", ["minimal", "oneline"])
def test_builtin_stdout_callback_prints_what_ansible_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("ANSIBLE_STDOUT_CALLBACK", name)
    monkeypatch.setenv("ANSIBLE_DEPRECATION_WARNINGS", "False")
    # no loop: fleetkit's loop items lack ansible's "failed": false (an engine gap)
    (acode, aout, _), (fcode, fout, ferr) = _both(tmp_path, PLAYBOOK.split("    - name: loop")[0])
    assert (fcode, fout) == (acode, aout), ferr
    assert "a | CHANGED | rc=0" in fout


def _junit(dirpath: Path) -> list[tuple[str, ...]]:
    cases: list[tuple[str, ...]] = []
    for f in sorted(dirpath.glob("*.xml")):
        root = ET.parse(f).getroot()
        for suite in root.iter("testsuite"):
            for case in suite.iter("testcase"):
                kinds = sorted(
                    f"{child.tag}:{child.get('message')}"
                    for child in case
                    if child.tag != "system-out"
                )
                cases.append(
                    (suite.get("name", ""), case.get("classname", ""), case.get("name", ""))
                    + tuple(kinds)
                )
            cases.append(
                (
                    "suite",
                    str(suite.get("tests")),
                    str(suite.get("failures")),
                    str(suite.get("errors")),
                    str(suite.get("skipped")),
                )
            )
    return cases


def test_junit_callback_writes_the_report_ansible_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", "junit")
    (tmp_path / "inventory.ini").write_text(INVENTORY)
    (tmp_path / "playbook.yml").write_text(FAILING + "    - include_tasks: inc.yml\n")
    (tmp_path / "inc.yml").write_text("- debug: {msg: inside}\n")
    args = ["-i", "inventory.ini", "playbook.yml", "-f", "1"]
    monkeypatch.setenv("JUNIT_OUTPUT_DIR", str(tmp_path / "ans"))
    a = run_ansible(args, tmp_path)
    monkeypatch.setenv("JUNIT_OUTPUT_DIR", str(tmp_path / "fk"))
    f = run_fleetkit(["play", *args], tmp_path)
    assert (f.returncode, f.stdout) == (a.returncode, a.stdout), f.stderr
    assert "Callback dispatch" not in f.stderr
    want, got = _junit(tmp_path / "ans"), _junit(tmp_path / "fk")
    assert want, "ansible wrote no junit report"
    # known gap: fleetkit sends no per-host result for an include task (ansible: one ok each)
    assert [c for c in got if "include_tasks" not in c[2] and c[0] != "suite"] == [
        c for c in want if "include_tasks" not in c[2] and c[0] != "suite"
    ]
    assert any("include_tasks" in c[2] for c in got)
    assert ("error:Task failed: Action failed: boom",) in [case[3:] for case in got]


CUSTOM = """
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "counting"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def v2_playbook_on_play_start(self, play):
        self._display.display("play %s" % play.get_name())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._display.display("task %s (%s)" % (task.name or task.action, task.action))

    def v2_runner_on_ok(self, result):
        self._display.display("ok %s %s %s" % (
            result.host.get_name(), result.task.get_name(), result.result.get("changed")))

    def v2_runner_item_on_ok(self, result):
        self._display.display("item %s %s" % (result.host.name, result.result.get("item")))

    def v2_runner_on_skipped(self, result):
        self._display.display("skip %s" % result._host.get_name())

    def v2_playbook_on_stats(self, stats):
        for h in sorted(stats.processed):
            self._display.display("%s %s" % (h, sorted(stats.summarize(h).items())))
"""


def test_custom_stdout_callback_beside_the_playbook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "callback_plugins").mkdir()
    (tmp_path / "callback_plugins" / "counting.py").write_text(CUSTOM)
    monkeypatch.setenv("ANSIBLE_STDOUT_CALLBACK", "counting")
    (acode, aout, _), (fcode, fout, ferr) = _both(tmp_path, PLAYBOOK)
    assert (fcode, fout) == (acode, aout), ferr
    assert "item a y" in fout and "skip b" in fout


def test_unknown_stdout_callback_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANSIBLE_STDOUT_CALLBACK", "no_such_callback")
    (tmp_path / "inventory.ini").write_text(INVENTORY)
    (tmp_path / "playbook.yml").write_text(PLAYBOOK)
    f = run_fleetkit(["play", "-i", "inventory.ini", "playbook.yml"], tmp_path)
    assert f.returncode != 0
    assert "Could not load 'no_such_callback' callback plugin." in f.stderr


@pytest.mark.parametrize("check", [False, True])
def test_check_mode_markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, check: bool) -> None:
    monkeypatch.setenv("ANSIBLE_CHECK_MODE_MARKERS", "1")
    extra = ["--check"] if check else []
    (acode, aout, _), (fcode, fout, ferr) = _both(tmp_path, DRY_RUN, *extra)
    assert (fcode, fout) == (acode, aout), ferr
    assert "[CHECK MODE]" in fout
    assert ("DRY RUN" in fout) is check


@pytest.mark.parametrize(
    "env",
    [
        {"ANSIBLE_DISPLAY_OK_HOSTS": "0"},
        {"ANSIBLE_DISPLAY_SKIPPED_HOSTS": "0"},
        {"ANSIBLE_DISPLAY_OK_HOSTS": "0", "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "0"},
        {"ANSIBLE_DISPLAY_FAILED_STDERR": "1"},
        {"ANSIBLE_SHOW_TASK_PATH_ON_FAILURE": "1"},
    ],
)
def test_default_callback_display_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    (acode, aout, aerr), (fcode, fout, ferr) = _both(tmp_path, FAILING)
    assert (fcode, fout) == (acode, aout), ferr
    assert _errlines(ferr) == _errlines(aerr)


@pytest.mark.parametrize(
    ("env", "verbose"),
    [
        ({"ANSIBLE_CALLBACK_RESULT_FORMAT": "yaml"}, False),
        ({"ANSIBLE_CALLBACK_RESULT_FORMAT": "yaml", "ANSIBLE_CALLBACK_FORMAT_PRETTY": "0"}, True),
        ({"ANSIBLE_CALLBACK_FORMAT_PRETTY": "1"}, False),
    ],
)
def test_result_format_yaml_and_pretty_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], verbose: bool
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    extra = ["-v"] if verbose else []
    # at -v, no command output (timestamps) and no literal `when: false`
    book = FAILING.split("    - name: skipped one")[0] if verbose else FAILING + PLAYBOOK
    (acode, aout, _), (fcode, fout, ferr) = _both(tmp_path, book, *extra)
    assert (fcode, fout) == (acode, aout), ferr


def test_show_per_host_start_as_ansible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_SHOW_PER_HOST_START", "1")
    (acode, aout, _), (fcode, fout, ferr) = _both(tmp_path, PLAYBOOK, "-l", "a")
    assert " [started TASK: say on a]" in fout
    assert (fcode, fout) == (acode, aout), ferr


RECORDER = """
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "recorder"

    def _say(self, text):
        self._display.display(text)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._say(f"task {task.get_name()}")

    def v2_playbook_on_handler_task_start(self, task):
        self._say(f"handler {task.get_name()}")

    def v2_runner_on_start(self, host, task):
        self._say(f"start {task} on {host}")

    def v2_playbook_on_notify(self, handler, host):
        self._say(f"notify {handler} for {host}")

    def v2_on_file_diff(self, result):
        diff = result._result.get("diff")
        keys = sorted(diff) if isinstance(diff, dict) else [sorted(d) for d in diff]
        self._say(f"diff {result._task.get_name()} {result._host} {keys}")

    def v2_runner_item_on_ok(self, result):
        self._say(f"item {result._host} {result._result.get('item')} {result.is_changed()}")

    def v2_runner_on_ok(self, result):
        self._say(f"ok {result._host} {result.is_changed()} {result._result.get('include')}")

    def v2_runner_item_on_skipped(self, result):
        self._say(f"skipped item {result._host} {result._result.get('item')}")

    def v2_playbook_on_include(self, included_file):
        self._say(f"included {included_file._filename.rsplit('/', 1)[-1]}")
"""

EVENTS = """
- hosts: a
  gather_facts: false
  tasks:
    - name: one file
      copy: {content: "one\\n", dest: "{{ out }}/one.txt"}
      notify: [restart]
    - name: files
      copy: {content: "{{ item }}\\n", dest: "{{ out }}/{{ item }}.txt"}
      loop: [x, y]
      notify: reload
    - name: no diff here
      copy: {content: "z\\n", dest: "{{ out }}/z.txt"}
      diff: false
    - include_tasks: inc.yml
    - include_tasks: "{{ item }}.yml"
      loop: [inc, skipped]
      when: item != 'skipped'
  handlers:
    - name: restart
      debug: {msg: restarting}
    - name: reload
      debug: {msg: reloading}
      notify: restart
"""


def test_plugins_get_start_notify_and_diff_events(tmp_path: Path) -> None:
    """v2_runner_on_start, v2_playbook_on_notify and v2_on_file_diff reach a plugin as ansible
    sends them (per host, per notified handler, per changed item before the item's result)."""
    (tmp_path / "callback_plugins").mkdir()
    (tmp_path / "callback_plugins" / "recorder.py").write_text(RECORDER)
    (tmp_path / "inventory.ini").write_text(INVENTORY)
    (tmp_path / "playbook.yml").write_text(EVENTS)
    (tmp_path / "inc.yml").write_text("- name: included\n  debug: {msg: inc}\n")
    outs = []
    for who in ("ansible", "fleetkit"):
        (tmp_path / who).mkdir()
        args = ["-i", "inventory.ini", "playbook.yml", "--diff", "-e", f"out={tmp_path / who}"]
        env = {"ANSIBLE_STDOUT_CALLBACK": "recorder"}
        if who == "ansible":
            p = run_ansible(args, tmp_path, env=env)
        else:
            p = run_fleetkit(["play", *args], tmp_path, env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        outs.append(p.stdout)
    assert "notify HANDLER: restart for a" in outs[1]
    assert "ok a False inc.yml" in outs[1] and "skipped item a skipped" in outs[1]
    assert "diff files a [['after', 'after_header', 'before']]" in outs[1]
    assert "diff no diff here a []" in outs[1]  # --diff sends it whatever the task's diff
    assert outs[1] == outs[0]


SET_STATS = """
- hosts: all
  gather_facts: false
  tasks:
    - set_stats: {data: {n: 1, d: {a: 1}, l: [1]}}
    - set_stats: {data: {n: 2, d: {b: 2}, l: [2]}}
    - set_stats: {data: {run: "{{ inventory_hostname }}"}, per_host: false}
    - set_stats: {data: {n: 5}, aggregate: false}
      when: inventory_hostname == 'b'
    - set_stats: {data: {looped: "{{ item }}"}}
      loop: [1, 2]
    - set_stats: {data: "not a dict"}
      ignore_errors: true
    - set_stats: {data: {ph: "{{ inventory_hostname }}"}, per_host: true}
    - set_stats: {data: {once: 1}, per_host: true}
      run_once: true
"""


def test_set_stats_aggregates_as_ansible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ansible's set_stats action: per host or for the run, aggregated (dicts merged, lists and
    numbers added, strings joined) or replaced, loop items, run_once, a bad ``data``."""
    monkeypatch.setenv("ANSIBLE_SHOW_CUSTOM_STATS", "1")
    (acode, aout, _), (fcode, fout, ferr) = _both(tmp_path, SET_STATS, "-v")
    assert '"looped": 6' in fout and "\tb: {" in fout
    assert (fcode, fout) == (acode, aout), ferr


def test_custom_stats_banner_from_stats() -> None:
    import io

    from fleetkit.playbook.callbacks import DefaultCallback
    from fleetkit.playbook.events import Stats

    out = io.StringIO()
    cb = DefaultCallback(out, io.StringIO(), color=False, options={"show_custom_stats": True})
    stats = Stats(custom={"a": {"x": 1}, "_run": {"y": [1, 2]}})
    stats.increment("ok", "a")
    cb.stats(stats)
    text = out.getvalue()
    assert "\nCUSTOM STATS: ****" in text
    # json.dumps(indent=1) with its newlines removed, as ansible's default callback prints it
    assert '\ta: { "x": 1}\n\n\tRUN: { "y": [  1,  2 ]}\n\n' in text


META = """
- hosts: all
  gather_facts: false
  tasks:
    - meta: end_host
      when: inventory_hostname == 'b'
    - meta: clear_facts
    - meta: noop
    - debug: {msg: still}
- hosts: all
  gather_facts: false
  tasks:
    - meta: end_play
"""


def test_meta_lines_at_vv(tmp_path: Path) -> None:
    (acode, aout, _), (fcode, fout, ferr) = _both(tmp_path, META, "-vv")
    assert fcode == acode, ferr

    def meta(out: str) -> list[str]:
        return [line for line in out.splitlines() if line.startswith("META: ")]

    assert meta(fout) == meta(aout)
    assert "META: ending play for b" in meta(fout)


DEBUG_LOOPS = """
- hosts: a
  gather_facts: false
  tasks:
    - name: debug loop
      debug: {msg: "debug-{{ item }}"}
      loop: [1, 2, 3, 4]
      failed_when: item == 2
      when: item != 4
      ignore_errors: true
    - name: no items
      debug: {msg: none}
      loop: []
    - name: an include
      include_tasks: inc.yml
"""


@pytest.mark.parametrize(
    "env",
    [{}, {"ANSIBLE_DISPLAY_OK_HOSTS": "0", "ANSIBLE_SHOW_TASK_PATH_ON_FAILURE": "1"}],
)
@pytest.mark.parametrize("verbose", [False, True])
def test_debug_loops_and_includes_as_ansible_shows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], verbose: bool
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "inc.yml").write_text("- debug: {msg: inside}\n")
    extra = ["-v"] if verbose else []
    (acode, aout, _), (fcode, fout, ferr) = _both(tmp_path, DEBUG_LOOPS, *extra)
    assert (fcode, fout) == (acode, aout), ferr
    assert 'fatal: [a]: FAILED! => {"msg": "One or more items failed"}' in fout


def test_host_pinned_shows_banners_with_results(tmp_path: Path) -> None:
    book = """
- hosts: all
  gather_facts: false
  strategy: host_pinned
  tasks:
    - command: echo one
    - command: echo two
"""
    (acode, aout, _), (fcode, fout, ferr) = _both(tmp_path, book)
    assert (fcode, fout) == (acode, aout), ferr


AGGREGATE = '''
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: tally
    type: aggregate
    short_description: counts results into a file
    options:
      out:
        description: where to write
        env:
          - name: TALLY_OUT
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "tally"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines = []

    def v2_playbook_on_start(self, playbook):
        self.lines.append("start %s" % os.path.basename(playbook._file_name))

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.lines.append("task %s %s" % (task.get_name(), task.get_path().rsplit(":", 1)[-1]))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self.lines.append("failed %s %s %s" % (result.host.name, ignore_errors, bool(result.exception)))

    def v2_runner_on_ok(self, result):
        self.lines.append("ok %s %s" % (result.host.name, result.result.get("changed")))

    def v2_runner_on_skipped(self, result):
        self.lines.append("skipped %s" % result.host.name)

    def v2_playbook_on_stats(self, stats):
        for h in sorted(stats.processed):
            self.lines.append("%s %s" % (h, sorted(stats.summarize(h).items())))
        with open(self.get_option("out"), "w") as fh:
            fh.write("\\n".join(self.lines) + "\\n")
'''


@pytest.mark.parametrize("enabled", [True, False])
def test_enabled_aggregate_callback_beside_the_playbook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    (tmp_path / "callback_plugins").mkdir()
    (tmp_path / "callback_plugins" / "tally.py").write_text(AGGREGATE)
    if enabled:
        monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", "tally")
    monkeypatch.setenv("TALLY_OUT", str(tmp_path / "ans.txt"))
    (tmp_path / "inventory.ini").write_text(INVENTORY)
    (tmp_path / "playbook.yml").write_text(FAILING)
    args = ["-i", "inventory.ini", "playbook.yml", "-f", "1"]
    a = run_ansible(args, tmp_path)
    monkeypatch.setenv("TALLY_OUT", str(tmp_path / "fk.txt"))
    f = run_fleetkit(["play", *args], tmp_path)
    assert (f.returncode, f.stdout) == (a.returncode, a.stdout), f.stderr
    if not enabled:
        assert not (tmp_path / "ans.txt").exists() and not (tmp_path / "fk.txt").exists()
        return
    want = (tmp_path / "ans.txt").read_text()
    assert (tmp_path / "fk.txt").read_text() == want
    assert "failed b None True" in want
