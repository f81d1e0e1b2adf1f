"""Engine keywords, handlers and meta: differential runs against the real ansible-playbook.

Each test writes a small inventory + playbook, runs ansible-playbook (-f 1) and fleetkit play
on them and requires the same exit code and the same default-callback stdout.
"""

from __future__ import annotations

import difflib
import io
import os
import re
from pathlib import Path
from typing import Any

import pytest

from fleetkit.playbook.callbacks import DefaultCallback
from fleetkit.playbook.inventory import load_inventory
from fleetkit.playbook.options import RunOptions
from fleetkit.playbook.playbook import load_playbook
from fleetkit.playbook.runner import PlaybookRunner
from tests.playbook._harness import run_ansible, run_both, run_fleetkit

LOCAL = "[all:vars]\nansible_connection=local\n"
_VOLATILE = re.compile(r'"(delta|start|end)": "[^"]*"')


def _norm(text: str) -> str:
    return _VOLATILE.sub(r'"\1": X', text)


def _same(tmp_path: Path, inventory: str, playbook: str, *extra: str) -> str:
    """Run both tools; assert the same exit code and stdout; return the stdout."""
    a, f = run_both(tmp_path, playbook, inventory + LOCAL, extra, pb="playbook.yml", timeout=60)
    assert _norm(f.stdout) == _norm(a.stdout), f.stderr
    assert f.returncode == a.returncode, f.stderr
    return f.stdout


def _same_lib(
    tmp_path: Path,
    inventory: str,
    playbook: str,
    ansible_args: list[str],
    mutate: Any = None,
    fk_playbook: str | None = None,
    **opts: Any,
) -> tuple[str, str]:
    """As :func:`_same`, with fleetkit run as a library with RunOptions(**opts) (for options
    whose flags the CLI fills); returns (stdout, stderr)."""
    (tmp_path / "inventory.ini").write_text(inventory + LOCAL)
    (tmp_path / "playbook.yml").write_text(playbook)
    a = run_ansible(["-i", "inventory.ini", "playbook.yml", "-f", "1", *ansible_args], tmp_path)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        inv = load_inventory(["inventory.ini"])
        if fk_playbook is not None:
            (tmp_path / "fk.yml").write_text(fk_playbook)
        plays = load_playbook("fk.yml" if fk_playbook is not None else "playbook.yml")
        if mutate is not None:
            mutate(plays)
        run_opts = RunOptions(forks=1, playbook_path="playbook.yml", **opts)
        summary = PlaybookRunner(inv, plays, run_opts, DefaultCallback(out, err)).run()
    finally:
        os.chdir(cwd)
    assert _norm(out.getvalue()) == _norm(a.stdout), "\n".join(
        difflib.unified_diff(a.stdout.splitlines(), out.getvalue().splitlines(), lineterm="")
    )
    assert summary.exit_code == a.returncode
    return out.getvalue(), err.getvalue()


HANDLERS_PB = """
- hosts: all
  gather_facts: false
  force_handlers: "{{ fh | default(false) }}"
  pre_tasks:
    - command: /bin/true
      notify: h1
  tasks:
    - command: /bin/true
      notify: h2
    - fail: msg=boom
      when: inventory_hostname == 'b'
    - block:
        - fail: msg=inner
          when: inventory_hostname == 'a'
      rescue:
        - debug: msg="{{ ansible_failed_task.name }} {{ ansible_failed_result.msg }}"
  post_tasks:
    - debug: msg=post
      changed_when: true
      notify: h1
  handlers:
    - name: h1
      debug: msg=h1
    - name: h2
      debug: msg=h2
"""


@pytest.mark.parametrize("force", ["false", "true"])
def test_handlers_flush_after_each_section_and_force_handlers(tmp_path: Path, force: str) -> None:
    out = _same(tmp_path, "[g]\na\nb\n", HANDLERS_PB, "-e", f"fh={force}")
    # h1 runs after pre_tasks and again after post_tasks; b (failed) gets h2 only when forced
    assert out.count("RUNNING HANDLER [h1]") == 2
    assert ('ok: [b] => {\n    "msg": "h2"' in out) == (force == "true")
    assert '"msg": " inner"' in out


def test_templated_play_keywords(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        "[g]\na\nb\n[h]\nc\n",
        """
- hosts: "{{ target }}"
  gather_facts: "{{ gf }}"
  serial: "{{ ser }}"
  order: "{{ ord }}"
  vars:
    gf: false
    ser: 1
    ord: reverse_inventory
  tasks:
    - debug: msg="{{ inventory_hostname }} {{ ansible_play_batch }}"
""",
        "-e",
        "target=g",
    )
    assert out.count("PLAY [g]") == 2
    assert out.index('"msg": "b') < out.index('"msg": "a')


START_PB = """
- hosts: all
  gather_facts: false
  tasks:
    - name: one
      debug: msg=one
- hosts: all
  tasks:
    - name: two
      debug: msg=two
    - block:
        - name: three x
          debug: msg=three
        - name: four
          debug: msg=four
    - name: five
      debug: msg=five
- hosts: all
  gather_facts: false
  tasks:
    - name: six
      debug: msg=six
"""


def test_start_at_task_skips_to_the_first_match_then_runs_later_plays(tmp_path: Path) -> None:
    out, _ = _same_lib(
        tmp_path, "[g]\na\nb\n", START_PB, ["--start-at-task", "three*"], start_at_task="three*"
    )
    assert "TASK [two]" not in out and "TASK [six]" in out and "Gathering Facts" in out


def test_start_at_task_without_a_match_runs_nothing(tmp_path: Path) -> None:
    _, err = _same_lib(
        tmp_path, "[g]\na\nb\n", START_PB, ["--start-at-task", "nope"], start_at_task="nope"
    )
    assert '[ERROR]: No matching task "nope" found.' in err


def test_loop_control_extended_index_var_label_and_templated_loop_var(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        "[g]\na\n",
        """
- hosts: all
  gather_facts: false
  vars:
    lv: thing
  tasks:
    - debug:
        msg: "{{ thing }} {{ ansible_loop.index }}/{{ ansible_loop.length }}
          first={{ ansible_loop.first }} last={{ ansible_loop.last }}
          prev={{ ansible_loop.previtem | default('-') }}
          next={{ ansible_loop.nextitem | default('-') }} idx={{ i }} {{ ansible_index_var }}"
      loop: [x, y, z]
      loop_control:
        loop_var: "{{ lv }}"
        index_var: i
        extended: true
        label: "L-{{ thing }}"
    - command: echo {{ item }}
      with_items: [[1, 2], 3]
      register: r
    - debug: msg="{{ r.results | map(attribute='ansible_loop_var') | list }}"
""",
    )
    assert "y 2/3 first=False last=False prev=x next=z idx=1 i" in out


def test_meta_actions_per_host_once_and_their_conditions(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        "[g]\na\nb\nc\n",
        """
- hosts: all
  gather_facts: false
  tasks:
    - meta: end_host
      when: inventory_hostname == 'c'
    - fail: msg=x
      when: inventory_hostname == 'b'
    - meta: clear_host_errors
    - debug: msg=after
    - meta: noop
    - meta: reset_connection
    - meta: refresh_inventory
    - meta: end_batch
      when: inventory_hostname == 'zzz'
    - meta: end_play
      when: inventory_hostname == 'b'
    - debug: msg=never
- hosts: all
  gather_facts: false
  tasks:
    - debug: msg=second
""",
    )
    # clear_host_errors: b is back for the next play and the run exits 0
    assert 'ok: [b] => {\n    "msg": "second"' in out


def test_local_action_delegate_facts_timeout_throttle_no_log_items(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        "[g]\na\nb\n",
        """
- hosts: all
  gather_facts: false
  tasks:
    - local_action: command echo hi {{ inventory_hostname }}
      register: la
    - debug: msg="{{ la.stdout }}"
    - setup:
        gather_subset: [min]
        filter: ansible_hostname
      delegate_to: b
      delegate_facts: true
      run_once: true
    - debug: msg="{{ hostvars['b']['ansible_hostname'] is defined }}
        {{ ansible_hostname is defined }}"
    - command: sleep 3
      timeout: 1
      ignore_errors: true
    - command: echo {{ item }}
      loop: [1, 2]
      throttle: 1
      no_log: true
""",
    )
    assert "changed: [a -> localhost]" in out
    assert "Timed out after 1 second(s)." in out
    assert "(item=(censored due to no_log))" in out


def test_vars_prompt_without_a_terminal_and_async_poll(tmp_path: Path) -> None:
    (tmp_path / "inventory.ini").write_text("[g]\na\n" + LOCAL)
    (tmp_path / "playbook.yml").write_text(
        """
- hosts: all
  gather_facts: false
  vars_prompt:
    - name: pv
      default: dflt
      private: false
  tasks:
    - command: echo {{ pv }}
      async: 10
      poll: 1
      register: r
    - debug: msg="{{ r.finished }} {{ r.started }} {{ r.ansible_job_id is defined }} {{ r.stdout }}"
    - command: sleep 3
      async: 1
      poll: 1
      ignore_errors: true
"""
    )
    args = ["-i", "inventory.ini", "playbook.yml", "-f", "1"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path, timeout=60)

    def norm(text: str) -> str:
        text = re.sub(r"j\d+\.\d+", "JID", _norm(text))
        text = re.sub(r'"child_pid": \d+, ', "", text)
        # ansible races its poller against async_wrapper's own kill at the same deadline:
        # either message can win (the poller's under load), so both read as one here
        text = text.replace(
            "Action failed: async task did not complete within the requested time - 1s",
            "Module failed: Timeout exceeded",
        )
        return "\n".join(
            "fatal: [a]: FAILED! => (async timeout result)"
            if x.startswith("fatal: [a]: FAILED! =>") and "results_file" in x
            else x
            for x in text.splitlines()
            if not x.startswith("ASYNC POLL")
        )

    assert norm(f.stdout) == norm(a.stdout)
    assert f.returncode == a.returncode
    assert "Not prompting as we are not in interactive mode" in f.stderr
    assert "ASYNC OK on a: jid=" in f.stdout and "ASYNC FAILED on a: jid=" in f.stdout


STRATEGY_PB = """
- hosts: all
  gather_facts: false
  strategy: "{{ s }}"
  tasks:
    - debug: msg=one
    - fail: msg=x
      when: inventory_hostname == 'b'
    - debug: msg=two
      notify: h
      changed_when: true
  handlers:
    - name: h
      debug: msg=handler
"""


@pytest.mark.parametrize("strategy", ["host_pinned", "linear", "bogus"])
def test_templated_strategy_host_pinned_and_unknown(tmp_path: Path, strategy: str) -> None:
    out = _same(tmp_path, "[g]\na\nb\nc\n", STRATEGY_PB, "-e", f"s={strategy}")
    if strategy == "host_pinned":
        # with one fork a pinned host runs its whole play (handlers too) before the next
        assert out.index("RUNNING HANDLER") < out.index('ok: [b] => {\n    "msg": "one"')
    if strategy == "bogus":
        assert "TASK [" not in out


def test_include_role_runs_the_expansion_with_role_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine side of include_role, with a stand-in for roles.expand_include_role."""
    from fleetkit.playbook import roles
    from fleetkit.playbook.playbook import RoleRef, load_task_file

    role_dir = tmp_path / "roles" / "web"
    (role_dir / "tasks").mkdir(parents=True)
    (role_dir / "handlers").mkdir()
    (role_dir / "tasks" / "main.yml").write_text(
        '- debug: msg="{{ role_name }} {{ port }} {{ greeting }} {{ ansible_role_names }}"\n'
        "- command: /bin/true\n  notify: restart web\n"
    )
    (role_dir / "handlers" / "main.yml").write_text("- name: restart web\n  debug: msg=restarted\n")

    def expand(node: Any, args: Any, play: Any) -> roles.IncludedRole:
        ref = RoleRef(
            name="web",
            path=str(role_dir),
            defaults={"port": 80, "greeting": "hello"},
            params={k: v for k, v in args.items() if k != "name"},
        )
        tasks = load_task_file("main.yml", str(role_dir / "tasks"), {}, None)
        handlers = load_task_file("main.yml", str(role_dir / "handlers"), {}, None)
        for t in [*tasks, *handlers]:
            t.role = ref  # type: ignore[union-attr]
        for h in handlers:
            h.handler = True  # type: ignore[union-attr]
        return roles.IncludedRole(ref, tasks, handlers)  # type: ignore[arg-type]

    monkeypatch.setattr(roles, "expand_include_role", expand)
    pb = """
- hosts: all
  gather_facts: false
  tasks:
    - include_role:
        name: web
      vars:
        port: 8080
      when: inventory_hostname == 'a'
"""
    (tmp_path / "roles" / "web" / "defaults").mkdir()
    (tmp_path / "roles" / "web" / "defaults" / "main.yml").write_text("port: 80\ngreeting: hello\n")

    def mutate(plays: list[Any]) -> None:
        # today's loader has no include_role: build the node the loader helper will produce
        from fleetkit.playbook.playbook import IncludeRole

        node = IncludeRole(
            role_name="web",
            args={"name": "web"},
            base=str(tmp_path),
            vars={"port": 8080},
            when=["inventory_hostname == 'a'"],
        )
        node.path, node.line, node.col = str(tmp_path / "playbook.yml"), 5, 7
        plays[0].tasks = [node]
        plays[0].sections = [[node]]

    placeholder = pb.replace("include_role:\n        name: web", "debug:")
    out, _ = _same_lib(tmp_path, "[g]\na\nb\n", pb, [], mutate=mutate, fk_playbook=placeholder)
    assert "included: web for a" in out


def test_variable_precedence_levels_and_magic_variables(tmp_path: Path) -> None:
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "a.yml").write_text("v_hv: host_vars_a\nv_play: hv\n")
    (tmp_path / "vf.yml").write_text("vf: from_file\nv_task: vf\n")
    out = _same(
        tmp_path,
        "[g]\na\nb\n[g:vars]\nv_inv=inv_group\nv_play=inv\n",
        """
- hosts: all
  gather_facts: false
  vars:
    v_play: play
    v_task: play
    v_fact: play
    vf: play
    v_extra: play
  vars_files: [vf.yml]
  tasks:
    - set_fact:
        v_fact: set_fact
    - block:
        - debug:
            msg: "{{ v_inv }} {{ v_hv | default('-') }} {{ v_play }} {{ vf }} {{ v_task }}
              {{ v_fact }} {{ v_extra }} {{ blk }}"
          vars:
            v_task: task
            v_fact: task
            blk: task
      vars:
        blk: block
    - debug:
        msg: "{{ ansible_run_tags }} {{ ansible_skip_tags }} {{ ansible_check_mode }}
          {{ ansible_diff_mode }} {{ ansible_forks }} {{ playbook_dir | basename }}
          {{ inventory_dir | basename }} {{ inventory_file | basename }}
          {{ ansible_play_hosts_all }} {{ groups.g }} {{ group_names }}
          {{ inventory_hostname_short }} {{ ansible_version.major }}"
""",
        "-e",
        "v_extra=extra",
    )
    assert "inv_group host_vars_a play from_file task set_fact extra task" in out


def test_play_fact_keywords_reach_the_setup_module(tmp_path: Path) -> None:
    # gather_subset / gather_timeout / fact_path on a play are the implicit setup's arguments
    (tmp_path / "inventory.ini").write_text("[g]\na\n" + LOCAL)
    (tmp_path / "playbook.yml").write_text(
        """
- hosts: all
  gather_subset: ["!all", "!min", "distribution"]
  gather_timeout: 20
  fact_path: /nonexistent.d
  tasks:
    - debug: msg="{{ ansible_facts.keys() | sort | list }}"
"""
    )
    args = ["-i", "inventory.ini", "playbook.yml", "-f", "1"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path, timeout=120)
    assert _norm(f.stdout) == _norm(a.stdout)
    assert '"_ansible_facts_gathered"' in f.stdout and '"distribution"' in f.stdout
    assert '"kernel"' not in f.stdout
    assert f.returncode == a.returncode == 0


def test_fire_and_forget_async_and_async_status(tmp_path: Path) -> None:
    (tmp_path / "inventory.ini").write_text("[g]\na\n" + LOCAL)
    (tmp_path / "playbook.yml").write_text(
        """
- hosts: all
  gather_facts: false
  tasks:
    - command: sleep 1
      async: 30
      poll: 0
      register: job
    - debug: var=job
    - async_status:
        jid: "{{ job.ansible_job_id }}"
      register: st
      until: st.finished
      retries: 20
      delay: 1
    - debug: msg="{{ st.finished }} {{ st.rc }} {{ st.cmd }}"
    - async_status:
        jid: "{{ job.ansible_job_id }}"
        mode: cleanup
      register: cl
    - debug: var=cl
"""
    )
    args = ["-i", "inventory.ini", "playbook.yml", "-f", "1"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path, timeout=120)

    def norm(text: str) -> str:
        # how many polls a job takes depends on each tool's speed
        text = re.sub(r"j\d+\.\d+", "JID", _norm(text))
        return "\n".join(x for x in text.splitlines() if not x.startswith("FAILED - RETRYING"))

    assert norm(f.stdout) == norm(a.stdout)
    assert "\"msg\": \"True 0 ['sleep', '1']\"" in f.stdout
    assert f.returncode == a.returncode == 0
