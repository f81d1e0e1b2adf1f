"""Task arguments, actions and keywords: differential runs against the real ansible-playbook.

Each test writes a small inventory + playbook, runs ansible-playbook (-f 1) and fleetkit play
on them and requires the same exit code and the same default-callback stdout.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.playbook._harness import run_ansible, run_both, run_fleetkit

INVENTORY = "localhost ansible_connection=local\n"
_VOLATILE = re.compile(r'"(delta|start|end)": "[^"]*"')


def _norm(text: str) -> str:
    text = text.replace("No config file found; using defaults\n", "")
    return _VOLATILE.sub(r'"\1": X', text)


def _same(tmp_path: Path, playbook: str, *extra: str) -> str:
    """Run both tools; assert the same exit code and stdout; return the stdout."""
    a, f = run_both(tmp_path, playbook, INVENTORY, extra, pb="playbook.yml", timeout=60)
    assert _norm(f.stdout) == _norm(a.stdout), f.stderr
    assert f.returncode == a.returncode, f.stderr
    return f.stdout


def test_set_fact_templates_its_keys_and_validates_the_names(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  vars:
    a_key: my_key
  tasks:
    - set_fact:
        "{{ a_key }}": 1
        "k_{{ item }}": "{{ item }}"
        cacheable: "{{ 'yes' }}"
      loop: [x]
    - debug: var=my_key
    - debug: var=k_x
    - set_fact:
        "{{ 'bad key' }}": 1
      ignore_errors: true
""",
        "-v",
    )
    assert '"my_key": 1' in out
    assert "Invalid variable name 'bad key'." in out


def test_facts_set_by_a_loop_item_are_seen_by_the_next_items(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  tasks:
    - set_fact:
        dig_list: "{{ dig_list + [ item ] }}"
      loop: [two, three]
      vars:
        dig_list: [one]
    - debug: var=dig_list
""",
    )
    assert '"three"' in out


def test_an_undefined_loop_is_an_error_only_when_the_task_runs(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  tasks:
    - debug:
      with_items:
        - '{{ baz }}'
      when: false
    - debug:
      loop: '{{ baz }}'
      when: false
    - debug:
      loop: '{{ baz }}'
      ignore_errors: true
""",
    )
    assert "Task failed: 'baz' is undefined" in out


UNTIL_PB = """- hosts: localhost
  gather_facts: no
  vars:
    s: "{{ 'hu' + 'sh' }}"
  tasks:
    - shell: "echo {{ x }}"
      loop: [a]
      loop_control: {loop_var: x}
      register: r
      until: false
      retries: 1
      delay: 0
      ignore_errors: true
    - shell: "echo {{ s }}"
      register: r2
      until: r2.stdout == 'b'
      retries: 1
      delay: 0
      no_log: true
      ignore_errors: true
    - debug: msg="{{ s }} {{ item }}"
      loop: [s1, s2]
      no_log: true
"""


def test_until_exhausted_is_an_action_failure_and_labels_use_the_loop_var(tmp_path: Path) -> None:
    out = _same(tmp_path, UNTIL_PB)
    assert "failed: [localhost] (item=a)" in out
    assert "Task failed: Action failed." in out


def test_no_log_censors_retries_loop_items_and_json_events(tmp_path: Path) -> None:
    (tmp_path / "inventory.ini").write_text(INVENTORY)
    (tmp_path / "playbook.yml").write_text(UNTIL_PB)
    a = run_ansible(["-i", "inventory.ini", "playbook.yml", "-vvv"], tmp_path)
    assert "hush" not in a.stdout
    outs = {}
    for flag in ("-vvv", "-ojson"):
        f = run_fleetkit(["play", "-i", "inventory.ini", "playbook.yml", flag], tmp_path)
        assert "hush" not in f.stdout, flag
        assert "censored" in f.stdout
        outs[flag] = f.stdout
    # the retry line keeps what ansible keeps of a censored result
    assert '"retries": 2' in a.stdout
    assert '"retries": 2' in outs["-vvv"]


def test_attempts_is_visible_to_failed_when(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  tasks:
    - shell: 'true'
      register: r
      until: 1 == 0
      retries: 2
      delay: 0
      failed_when: r.attempts > 1
      ignore_errors: true
""",
    )
    assert '"failed_when_result": true' in out


def test_failed_when_false_wins_over_an_exhausted_until(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  tasks:
    - shell: 'true'
      register: r
      until: 1 == 0
      retries: 1
      delay: 0
      failed_when: r.attempts > 6
""",
    )
    assert "changed: [localhost]" in out


def test_arg_splat_raw_params_and_generator_filters(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  vars:
    a_var: one
    dargs: {msg: from vars}
  tasks:
    - assert: '{{ item }}'
      args:
        quiet: yes
      loop:
        - that: 1 == 1
        - that: a_var == "one"
    - assert: '{{ item }}'
      loop:
        - that: 1 == 2
      ignore_errors: true
    - debug:
      args: '{{ dargs }}'
    - debug: '{{ dargs }}'
      args:
        msg: explicit
    - debug: '{{ a_var }}'
      ignore_errors: true
    - debug: hello
      ignore_errors: true
    - action:
        module: ansible.builtin.debug
        args:
          msg: from action args
    - debug: msg="{{ [1,2,3] | select('odd') | length }} {{ ([1,2] | reject('odd'))[0] }}"
""",
    )
    assert '"msg": "from vars"' in out
    assert "does not support raw params" in out
    assert "TASK [ansible.builtin.debug]" in out


def test_arg_finalization_errors_and_default_task_names(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  tasks:
    - ping:
        data: "{{ nope }}"
      ignore_errors: true
    - debug: msg="{{ nope }}"
      ignore_errors: true
    - ansible.builtin.debug: msg=x
    - action: ansible.builtin.debug msg=y
""",
    )
    assert "Task failed: Finalization of task args for 'ansible.builtin.ping' failed." in out


def test_a_throttle_that_is_not_an_integer_aborts_the_run(tmp_path: Path) -> None:
    (tmp_path / "inventory.ini").write_text(INVENTORY)
    for value, detail in (
        ("{{ 'nope' }}", "invalid literal for int() with base 10: 'nope'"),
        ("{{ nope }}", "'nope' is undefined"),
    ):
        (tmp_path / "playbook.yml").write_text(
            f"- hosts: localhost\n  gather_facts: no\n  tasks:\n    - debug:\n"
            f'      throttle: "{value}"\n      ignore_errors: true\n    - debug:\n'
        )
        args = ["-i", "inventory.ini", "playbook.yml"]
        a = run_ansible(args, tmp_path)
        f = run_fleetkit(["play", *args], tmp_path)
        want = f"Failed to convert the throttle value to an integer: {detail}"
        assert want in a.stderr
        assert want in f.stderr
        assert f.returncode == a.returncode == 1
        assert "Hello world" not in f.stdout


def test_a_module_exception_is_reported_as_ansible_does(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  tasks:
    - ping: data=crash
      register: r
      ignore_errors: true
    - debug: var=r
""",
    )
    assert '"msg": "Task failed: Module failed: boom"' in out


def test_debug_var_refuses_an_untrusted_expression(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  vars:
    debug_me: hi mom
  tasks:
    - debug:
        var: !unsafe debug_me
      register: r
      ignore_errors: true
    - debug: var=r
    - debug: var=debug_me
""",
    )
    assert "Error while resolving `var` expression: Encountered untrusted" in out
    assert '"debug_me": "hi mom"' in out


def test_debug_var_errors_warnings_and_non_string_var(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  tasks:
    - debug:
        var: 5/0
      register: r
      ignore_errors: true
    - debug: var=r
    - debug:
        var: something_undefined
      register: r
    - debug: var=r
    - debug:
        var: {a: 1}
      ignore_errors: true
    - debug:
        msg: "{{ 5 / 0 | int }}"
      register: r
      ignore_errors: true
    - debug: var=r
""",
    )
    assert "Error rendering expression: division by zero" in out
    assert "is not a string and conversion is not allowed" in out


def test_debug_var_indirection_omit_and_loop_keys(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  vars:
    k1: v1
    trusted_varname: hi
  tasks:
    - debug:
        var: '{{ item }}'
      loop: [k1]
    - debug:
        var: '{{ "trusted_varname" }}'
      ignore_errors: true
    - debug:
        var: "{{ omit }}"
    - vars:
        indirect_omit: '{{ omit }}'
      debug:
        var: indirect_omit
      register: r
    - debug: var=r
""",
    )
    assert '"k1": "v1"' in out
    assert '"indirect_omit": "<<Omit>>"' in out


def test_boolean_keywords_that_are_not_booleans_fail_the_task(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  vars:
    s: "{{ 'hu' + 'sh' }}"
  tasks:
    - debug: msg="not important"
      diff: yes.
      ignore_errors: True
    - debug: msg=x
      check_mode: "maybe"
      ignore_errors: True
    - debug: msg="{{ s }}"
      no_log: "maybe"
      ignore_errors: True
    - debug: msg=x
      ignore_errors: "{{ 'maybe' }}"
    - debug: msg=x
      become: "maybe"
      ignore_errors: True
""",
    )
    assert "The value 'yes.' could not be converted to 'bool'." in out
    assert "hush" not in out


def test_play_user_alias_and_malformed_playbooks(tmp_path: Path) -> None:
    (tmp_path / "inventory.ini").write_text(INVENTORY)
    cases = {
        "- hosts: localhost\n  gather_facts: no\n  remote_user: a\n  user: b\n  tasks: []\n": (
            "both 'user' and 'remote_user' are set for this play."
        ),
        "[]\n": "A playbook must contain at least one play",
        "- hosts: []\n  tasks: []\n": "Hosts list cannot be empty. Please check your playbook",
        "- hosts: localhost\n  tasks: 123\n": (
            "A malformed block was encountered while loading tasks: 123 should be a list or None"
        ),
        "- hosts: localhost\n  roles:\n    - foo,bar\n": "Invalid old style role requirement: foo,bar",
        "- hosts: localhost\n  post_tasks: 123\n": (
            "A malformed block was encountered while loading post_tasks"
        ),
    }
    for text, want in cases.items():
        (tmp_path / "playbook.yml").write_text(text)
        args = ["-i", "inventory.ini", "playbook.yml"]
        a = run_ansible(args, tmp_path)
        f = run_fleetkit(["play", *args], tmp_path)
        assert want in a.stdout + a.stderr, text
        assert want in f.stderr, text
        assert f.returncode == a.returncode, text
    (tmp_path / "playbook.yml").write_text(
        "- hosts: localhost\n  gather_facts: no\n  user: nobody\n  tasks:\n"
        "    - debug: msg=worked\n"
    )
    _same(tmp_path, (tmp_path / "playbook.yml").read_text())


def test_environment_list_with_omitted_entries(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  tasks:
    - shell: echo "IAMHERE = $IAMHERE; NOTHERE = $NOTHERE; ANOTHER = $ANOTHER"
      environment:
        - NOTHERE: '{{ omit }}'
          IAMHERE: hello
        - '{{ omit }}'
        - ANOTHER: stillhere
      register: result
    - debug: var=result.stdout
""",
    )
    assert "IAMHERE = hello; NOTHERE = ; ANOTHER = stillhere" in out


def test_a_big_range_and_a_bad_port_are_clean_outcomes(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  tasks:
    - debug: msg="{{ range(100000000)|length }}"
      ignore_errors: true
    - debug: msg=after
""",
    )
    assert '"msg": 100000000' in out
    (tmp_path / "bad.ini").write_text(
        "h1 ansible_host=127.0.0.1 ansible_port=abc ansible_connection=ssh\n"
    )
    (tmp_path / "port.yml").write_text("- hosts: h1\n  gather_facts: no\n  tasks:\n    - ping:\n")
    args = ["-i", "bad.ini", "port.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    want = (
        'fatal: [h1]: FAILED! => {"changed": false, "msg": "Task failed: Error processing '
        "keyword 'port': The value 'abc' could not be converted to 'int'.\"}"
    )
    assert want in a.stdout
    assert want in f.stdout, f.stderr
    assert "Traceback" not in f.stderr and "internal error" not in f.stderr
    assert f.returncode == a.returncode


def test_lazy_ranges_behave_as_ansible_ranges(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  tasks:
    - debug:
        msg: "{{ range(3) | list }} {{ range(1,10,2) | last }} {{ 2 in range(3) }} {{ range(3) }}"
    - debug:
        msg: "{% for i in range(2) %}{{ i }}{% endfor %} {{ range(3) | reverse | list }}"
""",
    )
    assert "[0, 1, 2] 9 True range(0, 3)" in out


def test_a_failed_debug_loop_prints_its_summary(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  tasks:
    - debug:
        msg: "{{ nope }}"
      loop: [1]
      ignore_errors: true
    - debug: msg=x
      loop: [1]
      failed_when: true
      ignore_errors: true
    - fail: msg=x
      loop: [1]
      ignore_errors: true
""",
    )
    assert out.count('FAILED! => {"msg": "One or more items failed"}') == 2


def test_arg_finalization_failures_report_changed_false(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: no
  tasks:
    - assert:
        that: true
        fail_msg: "{{ nope }}"
      ignore_errors: true
    - fail:
        msg: "{{ nope }}"
      ignore_errors: true
    - set_fact:
        names: '{{ [{"name": 1}, {"other": 2}] | map(attribute="name") }}'
      ignore_errors: true
""",
    )
    assert out.count('FAILED! => {"changed": false, "msg": "Task failed: Finalization') == 3


def test_arg_finalization_chain_when_the_module_is_not_the_first_key(tmp_path: Path) -> None:
    out = _same(
        tmp_path,
        """- hosts: localhost
  gather_facts: false
  tasks:
    - name: undefined in msg
      debug: {msg: "{{ nope }}"}
      ignore_errors: true
""",
    )
    assert "\nFinalization of task args for 'ansible.builtin.debug' failed.\n" in out
