"""Engine flow against ansible-playbook: loops on includes, handlers, host errors, flush order.

Each test runs the real ansible-playbook and fleetkit on one small playbook and compares stdout.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.playbook._harness import (
    VOLATILE,
    ansible_env,
    ansible_tool,
    run_ansible,
    run_both,
    run_fleetkit,
)

INVENTORY = "h1\nh2\n[all:vars]\nansible_connection=local\n"


def _same(
    tmp_path: Path, playbook: str, *extra: str, files: dict[str, str] | None = None
) -> tuple[int, str]:
    a, f = run_both(tmp_path, playbook, INVENTORY, extra, files=files)
    assert f.stdout == a.stdout, f.stderr
    assert f.returncode == a.returncode
    return f.returncode, f.stdout


def test_loop_on_include_tasks_gives_each_item_its_vars(tmp_path: Path) -> None:
    rc, out = _same(
        tmp_path,
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - include_tasks: inner.yml\n      loop: [a, b, c]\n"
        "      loop_control: {extended: true, index_var: idx}\n"
        "      when: item != 'b' or inventory_hostname == 'h1'\n"
        "    - include_tasks: inner2.yml\n      loop: [x]\n"
        "      loop_control: {loop_var: v, label: 'lbl-{{ v }}'}\n"
        "    - include_tasks: inner2.yml\n      loop: []\n",
        files={
            "inner.yml": "- debug:\n    msg: '{{ item }} {{ idx }} {{ ansible_loop.index }}"
            " {{ ansible_loop.length }} {{ ansible_loop_var }}'\n",
            "inner2.yml": "- debug: msg='{{ v }}'\n",
        },
    )
    assert rc == 0
    assert "included: " in out and "=> (item=b)" in out and "(item=lbl-x)" in out
    assert '"msg": "c 2 3 3 item"' in out


def test_loop_on_include_role_templates_args_per_item(tmp_path: Path) -> None:
    rc, out = _same(
        tmp_path,
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - include_role:\n        name: '{{ item }}'\n      loop: [ra, rb, ra]\n",
        files={
            "roles/ra/tasks/main.yml": "- debug: msg='ra {{ item }}'\n",
            "roles/rb/tasks/main.yml": "- debug: msg='rb {{ item }}'\n",
        },
    )
    assert rc == 0
    assert out.count("TASK [ra : debug]") == 2


def test_loop_control_break_when_stops_after_the_item(tmp_path: Path) -> None:
    rc, out = _same(
        tmp_path,
        "- hosts: h1\n  gather_facts: false\n  tasks:\n"
        "    - debug: msg={{ item }}\n      loop: [1, 2, 3]\n      register: r\n"
        "      loop_control: {break_when: [item >= 2, r.item is defined]}\n"
        "    - debug: msg='{{ r.results | length }}'\n",
    )
    assert rc == 0
    assert out.count("(item=") == 2 and '"msg": 2' in out


def test_include_of_a_missing_file_or_role_fails_the_host_into_rescue(tmp_path: Path) -> None:
    rc, out = _same(
        tmp_path,
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - block:\n        - include_role: {name: '{{ item }}'}\n          loop: [a, b]\n"
        "      rescue:\n        - debug: msg=rescued-role\n"
        "    - block:\n        - include_tasks: missing.yml\n"
        "      rescue:\n        - debug: msg=rescued-file\n"
        "    - include_role: {name: nope}\n      ignore_errors: true\n"
        "    - debug: msg=never\n",
    )
    assert rc == 2
    assert "rescued-role" in out and "rescued-file" in out and "never" not in out


def test_clear_host_errors_in_always_and_rescue_of_an_outer_block(tmp_path: Path) -> None:
    rc, out = _same(
        tmp_path,
        "- hosts: all\n  gather_facts: false\n  vars:\n    data: {}\n  tasks:\n"
        "    - block:\n        - fail:\n          when: inventory_hostname == 'h1'\n"
        "      always:\n        - meta: clear_host_errors\n"
        "    - block:\n        - block:\n            - name: inner\n"
        "              debug: msg='{{ data.value }}'\n"
        "          always:\n            - debug: msg=inner-always\n"
        "      rescue:\n        - debug: msg='{{ ansible_failed_task.name }}'\n"
        "    - debug: msg=after\n",
    )
    assert rc == 0
    assert out.count('"msg": "after"') == 2
    assert out.count('"msg": "inner"') == 2


def test_vars_files_names_are_templated_per_host(tmp_path: Path) -> None:
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "h1.yml").write_text("which: one\n")
    (tmp_path / "host_vars" / "h2.yml").write_text("which: two\n")
    rc, out = _same(
        tmp_path,
        "- hosts: all\n  gather_facts: false\n  vars_files:\n"
        "    - [ 'vars/{{ which }}.yml', vars/default.yml ]\n"
        "    - 'vars/{{ nothere }}.yml'\n"
        "  tasks:\n    - debug: msg='{{ picked }}'\n",
        files={"vars/one.yml": "picked: one\n", "vars/default.yml": "picked: default\n"},
    )
    assert rc == 0
    assert '"msg": "one"' in out and '"msg": "default"' in out


def test_hosts_template_rendering_a_list_of_patterns(tmp_path: Path) -> None:
    rc, out = _same(
        tmp_path,
        "- hosts: '{{ targets }}'\n  gather_facts: false\n  tasks:\n"
        "    - debug: msg='on {{ inventory_hostname }}'\n",
        "-e",
        '{"targets": ["h2", "h1"]}',
    )
    assert rc == 0
    assert '"msg": "on h1"' in out and '"msg": "on h2"' in out


def test_templated_tags_filter_as_their_rendered_values(tmp_path: Path) -> None:
    pb = (
        "- hosts: all\n  gather_facts: false\n  vars:\n    t: tag1\n    many: [x, y]\n"
        "  tags: '{{ t }}'\n  tasks:\n    - debug: msg=play-tagged\n"
        "    - debug: msg=task-tagged\n      tags: '{{ many }}'\n"
    )
    rc, out = _same(tmp_path, pb, "--tags", "y")
    assert rc == 0 and "task-tagged" in out and "play-tagged" not in out
    rc, out = _same(tmp_path, pb, "--tags", "tag1")
    assert rc == 0 and "task-tagged" in out and "play-tagged" in out


def test_import_playbook_fqcn_and_its_vars_at_load_time(tmp_path: Path) -> None:
    rc, out = _same(
        tmp_path,
        "- ansible.builtin.import_playbook: inner.yml\n  vars:\n    rname: r1\n"
        "- ansible.legacy.import_playbook: '{{ \"inner2.yml\" }}'\n",
        files={
            "inner.yml": "- hosts: h1\n  gather_facts: false\n  tasks:\n"
            "    - import_role: {name: '{{ rname }}'}\n",
            "inner2.yml": "- hosts: h2\n  gather_facts: false\n  tasks:\n    - debug: msg=two\n",
            "roles/r1/tasks/main.yml": "- debug: msg=r1\n",
        },
    )
    assert rc == 0
    assert "TASK [r1 : debug]" in out and '"msg": "two"' in out


def test_templated_module_name_resolves_per_host(tmp_path: Path) -> None:
    rc, out = _same(
        tmp_path,
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - set_fact:\n        m: \"{{ 'debug' if inventory_hostname == 'h1' else 'ping' }}\"\n"
        "    - action:\n        module: '{{ m }}'\n      register: out\n"
        "    - name: named\n      action:\n        module: '{{ m }}'\n"
        "    - debug: msg=\"{{ 'msg' in out }} {{ 'ping' in out }}\"\n",
    )
    assert rc == 0
    assert '"msg": "True False"' in out and '"msg": "False True"' in out


def test_include_with_an_undefined_when_fails_and_ignore_errors_applies(tmp_path: Path) -> None:
    rc, out = _same(
        tmp_path,
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - include_tasks: inc.yml\n      ignore_errors: true\n      register: r\n"
        "      when:\n        - \"nope == 'yes'\"\n"
        "    - debug: msg='{{ r is failed }}'\n"
        "    - include_role: {name: r1}\n      when: nope\n",
        files={"inc.yml": "- debug: msg=inc\n", "roles/r1/tasks/main.yml": "- debug: msg=r1\n"},
    )
    assert rc == 2
    assert '"msg": true' in out and "...ignoring" in out


def test_any_errors_fatal_stops_every_host_when_an_include_fails(tmp_path: Path) -> None:
    rc, out = _same(
        tmp_path,
        "- hosts: all\n  gather_facts: false\n  any_errors_fatal: true\n  tasks:\n"
        "    - include_role: {name: nope}\n      when: inventory_hostname == 'h2'\n"
        "    - debug: msg=never\n",
    )
    assert rc == 2 and "never" not in out


HANDLER_INCLUDE_PB = """- hosts: all
  gather_facts: false
  tasks:
    - command: echo
      notify: [inc handler]
      tags: y
    - debug: msg=after
  handlers:
    - name: plain
      debug: msg=plain
      tags: x
    - name: inc handler
      include_tasks: inc.yml
      when: inventory_hostname == 'h1' or item is defined
      tags: x
    - name: listener
      debug: msg=listened
      listen: inc handler
"""


@pytest.mark.parametrize("tags", ["", "y"])
def test_include_tasks_as_a_handler_runs_its_tasks_as_handlers(tmp_path: Path, tags: str) -> None:
    # the included tasks (a top-level block's too, a nested include's) run at once as handlers
    # for the hosts that included them; "plain", notified by one of them, runs at the next
    # flush (the one after the empty post_tasks); tags never select handlers
    rc, out = _same(
        tmp_path,
        HANDLER_INCLUDE_PB,
        *(["--tags", tags] if tags else []),
        files={
            "inc.yml": "- name: included one\n  debug: msg=one\n"
            "- block:\n    - name: in block\n      debug: msg=blk\n"
            "- name: nested include\n  include_tasks: inc2.yml\n",
            "inc2.yml": "- name: included two\n  debug: msg=two\n  changed_when: true\n"
            "  notify: plain\n",
        },
    )
    assert rc == 0
    assert "RUNNING HANDLER [inc handler]" in out and "included: " in out
    assert out.index("RUNNING HANDLER [listener]") < out.index("RUNNING HANDLER [plain]")


def test_role_handler_include_finds_its_file_in_the_role_tasks_dir(tmp_path: Path) -> None:
    # setup_remote_tmp_dir's shape: the handler includes a file of tasks/, the tasks include
    # a file chosen by first_found among names relative to the task file's directory
    rc, out = _same(
        tmp_path,
        "- hosts: all\n  gather_facts: false\n  roles: [r]\n",
        files={
            "roles/r/tasks/main.yml": "- include_tasks: \"{{ lookup('first_found', files) }}\"\n"
            "  vars:\n    files: [nope.yml, default.yml]\n",
            "roles/r/tasks/default.yml": "- command: echo\n  notify: cleanup\n",
            "roles/r/tasks/cleanup.yml": "- debug: msg=cleaned\n",
            "roles/r/handlers/main.yml": "- name: cleanup\n  include_tasks: cleanup.yml\n",
        },
    )
    assert rc == 0
    assert "RUNNING HANDLER [r : debug]" in out


def test_handler_search_first_of_a_block_listen_and_templated_names(tmp_path: Path) -> None:
    # ansible searches the handler blocks from the last loaded, a block's handlers in order:
    # the first "restart" of the play's block wins, the play's block (loaded after the
    # roles') beats the role's for "both"; notify and handler names are templated; a role's
    # listener also hears "role : topic"
    rc, out = _same(
        tmp_path,
        "- hosts: all\n  gather_facts: false\n  vars:\n    which: restart\n"
        "    many: [n5, n6]\n"
        "  roles: [r]\n  tasks:\n"
        "    - command: echo\n      notify: ['{{ which }}', both, 'r : topic']\n"
        "    - command: echo\n      notify: '{{ many }}'\n"
        "  handlers:\n"
        "    - name: restart\n      debug: msg=first\n"
        "    - name: restart\n      debug: msg=second\n"
        "    - name: both\n      debug: msg=play-both\n"
        "    - name: '{{ which }}-x'\n      debug: msg=templated\n      listen: restart\n"
        "    - name: n5\n      debug: msg=n5\n"
        "    - debug: msg=n6\n      listen: n6\n",
        files={
            "roles/r/tasks/main.yml": "- debug: msg=role\n",
            "roles/r/handlers/main.yml": "- name: both\n  debug: msg=role-both\n"
            "- name: rl\n  debug: msg=role-listener\n  listen: topic\n",
        },
    )
    assert rc == 0
    assert '"msg": "first"' in out and '"msg": "second"' not in out
    assert '"msg": "play-both"' in out and '"msg": "role-both"' not in out
    assert '"msg": "templated"' in out and '"msg": "role-listener"' in out
    assert '"msg": "n5"' in out and '"msg": "n6"' in out


def test_missing_handler_is_a_warning_when_error_on_missing_handler_is_off(
    tmp_path: Path,
) -> None:
    (tmp_path / "ansible.cfg").write_text("[defaults]\nerror_on_missing_handler = false\n")
    rc, out = _same(
        tmp_path,
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - command: echo\n      notify: nope\n    - debug: msg=after\n",
    )
    assert rc == 0 and '"msg": "after"' in out


def test_meta_handlers_and_a_skipped_flush(tmp_path: Path) -> None:
    # a meta handler runs as meta (META: line at -vv); flush_handlers with a false when runs
    # no handler (they run at the end of the section)
    (tmp_path / "inventory.ini").write_text(INVENTORY)
    (tmp_path / "pb.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - command: echo\n      notify: [noop, h]\n"
        "    - meta: flush_handlers\n      when: inventory_hostname == 'h1'\n"
        "    - debug: msg=between\n"
        "  handlers:\n    - name: noop\n      meta: noop\n"
        "    - name: h\n      debug: msg=handled\n"
    )
    args = ["-i", "inventory.ini", "pb.yml", "-f", "1", "-vv"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)

    def body(text: str) -> str:  # from the play on (the -vv header names the executable)
        return VOLATILE.sub("", text[text.index("PLAY [") :])

    assert body(f.stdout) == body(a.stdout)
    assert f.returncode == a.returncode == 0
    out = body(f.stdout)
    assert out.count("META: noop") == 2
    assert out.index("RUNNING HANDLER [h]") < out.index("TASK [debug]")
    assert out.count('"msg": "handled"') == 2


def test_flush_handlers_as_a_handler_is_ansibles_error(tmp_path: Path) -> None:
    pb = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: echo\n      notify: f\n"
        "  handlers:\n    - name: f\n      meta: flush_handlers\n"
    )
    (tmp_path / "inventory.ini").write_text(INVENTORY)
    (tmp_path / "pb.yml").write_text(pb)
    args = ["-i", "inventory.ini", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert "flush_handlers cannot be used as a handler" in a.stderr
    assert "flush_handlers cannot be used as a handler" in f.stderr
    assert a.returncode == f.returncode == 1


def test_include_role_brings_the_handlers_of_the_roles_it_imports(tmp_path: Path) -> None:
    rc, out = _same(
        tmp_path,
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - include_role: {name: outer}\n",
        files={
            "roles/outer/tasks/main.yml": "- import_role: {name: inner}\n",
            "roles/inner/tasks/main.yml": "- command: echo\n  notify: inner handler\n",
            "roles/inner/handlers/main.yml": "- name: inner handler\n  debug: msg=inner\n",
        },
    )
    assert rc == 0 and "RUNNING HANDLER [inner : inner handler]" in out


@pytest.mark.parametrize("tags", [["--tags", "task_tag"], ["--skip-tags", "the_whole_play"]])
def test_ansible_debug_shows_the_implicit_flush_decisions(tmp_path: Path, tags: list[str]) -> None:
    # ANSIBLE_DEBUG: the implicit flush (tagged always and with the play's tags) says when it
    # runs the handlers; the rest of the debug stream is ansible's internals, not compared
    (tmp_path / "inventory.ini").write_text(INVENTORY)
    (tmp_path / "pb.yml").write_text(
        "- hosts: h1\n  gather_facts: false\n  tags: the_whole_play\n  tasks:\n"
        "    - command: echo\n      notify: h\n    - command: echo\n      notify: h1\n"
        "      tags: task_tag\n"
        "  handlers:\n    - name: h\n      debug: msg=handler_ran\n"
        "    - name: h1\n      debug: msg=handler1_ran\n"
    )
    args = ["-i", "inventory.ini", "pb.yml", *tags]
    env = {**ansible_env(), "ANSIBLE_DEBUG": "1"}
    exe = ansible_tool("ansible-playbook")
    a = subprocess.run([exe, *args], cwd=tmp_path, capture_output=True, text=True, env=env)
    f = run_fleetkit(["play", *args], tmp_path, env={"ANSIBLE_DEBUG": "1"})

    def lines(text: str) -> list[str]:
        # (ansible prints "No handler notifications" each time it peeks: not compared)
        keep = ("META: triggered running handlers", "_ran")
        found = [ln for ln in text.splitlines() if any(k in ln for k in keep)]
        return [ln.split(": ", 1)[-1].strip() for ln in found]

    assert lines(f.stdout + f.stderr) == lines(a.stdout + a.stderr)
    assert a.returncode == f.returncode == 0


def test_refresh_inventory_drops_the_hosts_gone_from_the_play(tmp_path: Path) -> None:
    # a host the refreshed inventory no longer has runs nothing more (not even always:); a
    # new one joins from the next play
    (tmp_path / "old.ini").write_text("one\ntwo\n[all:vars]\nansible_connection=local\n")
    (tmp_path / "new.ini").write_text("two\nthree\n[all:vars]\nansible_connection=local\n")
    (tmp_path / "inv.ini").symlink_to("old.ini")
    (tmp_path / "pb.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - block:\n"
        "        - file: src=new.ini dest=inv.ini state=link force=yes follow=false\n"
        "          delegate_to: localhost\n          run_once: true\n"
        "        - meta: refresh_inventory\n"
        "        - debug: msg={{ ansible_play_hosts }}\n"
        "      always:\n"
        "        - file: src=old.ini dest=inv.ini state=link force=yes follow=false\n"
        "          delegate_to: localhost\n          run_once: true\n"
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - debug: msg={{ ansible_play_hosts }}\n"
    )
    args = ["-i", "inv.ini", "pb.yml", "-f", "1"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert f.stdout == a.stdout, f.stderr
    assert f.returncode == a.returncode == 0
    assert "ok: [one]" not in f.stdout.split("TASK [debug]")[1]


def test_run_once_include_reaches_the_first_host_and_shares_its_facts(tmp_path: Path) -> None:
    # run_once on include_tasks: only the first host gets the tasks; a run_once task's facts
    # (apply: run_once) reach every host of the batch, even those that did not include
    rc, out = _same(
        tmp_path,
        "- hosts: all\n  gather_facts: false\n  vars:\n    lola: untouched\n  tasks:\n"
        "    - include_tasks:\n        file: inc.yml\n        apply: {run_once: true}\n"
        "      run_once: true\n"
        "    - debug: msg={{ lola }}\n"
        "- hosts: all\n  gather_facts: false\n  vars:\n    lola: untouched\n  tasks:\n"
        "    - include_tasks: inc2.yml\n      run_once: true\n"
        "    - debug: msg={{ lola2 | default('untouched') }}\n",
        files={"inc.yml": "- set_fact: {lola: wiseman}\n", "inc2.yml": "- set_fact: {lola2: w}\n"},
    )
    assert rc == 0
    assert out.count("inc.yml for h1\n") == 1 and out.count('"msg": "wiseman"') == 2


def test_delegated_task_sees_ansible_delegated_vars(tmp_path: Path) -> None:
    rc, out = _same(
        tmp_path,
        "- hosts: h1\n  gather_facts: false\n  tasks:\n"
        "    - debug:\n        msg: \"{{ ansible_delegated_vars['h2'].inventory_hostname }}"
        ' {{ ansible_delegated_vars is defined }}"\n      delegate_to: h2\n'
        "    - debug: msg={{ ansible_delegated_vars is defined }}\n",
    )
    assert rc == 0
    assert '"msg": "h1 True"' in out and '"msg": false' in out
