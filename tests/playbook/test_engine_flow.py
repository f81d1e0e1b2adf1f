"""Engine flow against ansible-playbook: loops on includes, handlers, host errors, flush order.

Each test runs the real ansible-playbook and fleetkit on one small playbook and compares stdout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.playbook._harness import run_ansible, run_fleetkit

INVENTORY = "h1\nh2\n[all:vars]\nansible_connection=local\n"


def _same(
    tmp_path: Path, playbook: str, *extra: str, files: dict[str, str] | None = None
) -> tuple[int, str]:
    (tmp_path / "inventory.ini").write_text(INVENTORY)
    (tmp_path / "pb.yml").write_text(playbook)
    for name, text in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    args = ["-i", "inventory.ini", "pb.yml", "-f", "1", *extra]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
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
