"""command/shell results as ansible's module reports them (invocation at -vvv, never in what
register stores) and no_log censoring of every loop item, skipped ones included."""

from __future__ import annotations

from pathlib import Path

from tests.playbook._harness import VOLATILE, run_ansible, run_fleetkit

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - shell: echo hi
    - command: echo hi
      args: {chdir: /tmp}
      register: r
    - debug: {msg: "{{ r.invocation is defined }}"}
    - ping:
      register: p
    - debug: var=p
    - shell: echo {{ item }}
      no_log: true
      loop: [SHOWN_NOT, SKIPPED_NOT]
      when: item != "SKIPPED_NOT"
"""


def test_command_invocation_and_censored_items_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    for extra in ([], ["-vvv"]):
        args = ["-i", "localhost,", "-c", "local", *extra, "pb.yml"]
        a = run_ansible(args, tmp_path)
        f = run_fleetkit(["play", *args], tmp_path)
        if not extra:
            assert VOLATILE.sub("", f.stdout) == VOLATILE.sub("", a.stdout), f.stderr
    # -vvv: the result lines (ansible's connection chatter aside) are the same
    results = [ln for ln in VOLATILE.sub("", a.stdout).splitlines() if ln.startswith("    ")]
    assert [
        ln for ln in VOLATILE.sub("", f.stdout).splitlines() if ln.startswith("    ")
    ] == results
    assert '"stdin_add_newline": true' in f.stdout and '"chdir": "/tmp"' in f.stdout
    assert "_NOT" not in f.stdout
    assert f.stdout.count("(item=(censored due to no_log))") == 2


def test_ansible_no_log_setting_is_the_keyword_default(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - debug:\n      no_log: true\n"
        "    - debug:\n      no_log: false\n    - debug:\n    - debug:\n"
        "      loop: '{{ range(3) | list }}'\n"
    )
    args = ["-i", "localhost,", "-c", "local", "-vvv", "pb.yml"]
    for value, hidden in (("0", 1), ("1", 5)):
        env = {"ANSIBLE_NO_LOG": value}
        a = run_ansible(args, tmp_path, env=env)
        f = run_fleetkit(["play", *args], tmp_path, env=env)
        assert a.stdout.count("the output has been hidden") == hidden
        assert f.stdout.count("the output has been hidden") == hidden, f.stdout


EDGES = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: no command
      command:
      args: {chdir: /}
      ignore_errors: true
    - name: a command twice
      command: echo testing
      args: {argv: [echo, testing]}
      ignore_errors: true
    - name: a chdir that does not exist
      command: echo hi
      args: {chdir: /nonexistent-fleetkit-dir}
      ignore_errors: true
    - name: check mode, creates not there
      command: "true"
      args: {creates: /nonexistent-fleetkit-file}
      check_mode: true
      register: would
    - name: check mode, creates there
      command: "true"
      args: {creates: /}
      check_mode: true
      register: would_not
    - name: check mode, nothing to guard it
      command: "true"
      check_mode: true
      register: skipped
    - name: creates relative to chdir
      command: "false"
      args: {chdir: /, creates: "et?"}
      register: relative
    - name: shell refuses a command-only option
      shell: echo hi
      args: {expand_argument_vars: false}
      ignore_errors: true
    - name: a program that does not exist, judged by failed_when
      command: commandthatdoesnotexist --would-be-awkward
      register: missing
      failed_when: missing.stdout != '' or missing.stderr != ''
    - debug: var=missing
    - debug:
        msg: >-
          {{ [would, would_not, skipped, relative]
             | map('dict2items') | map('rejectattr', 'key', 'eq', 'invocation')
             | map('items2dict') }}
"""


def test_command_argument_checks_chdir_and_check_mode_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(EDGES)
    args = ["-i", "localhost,", "-c", "local", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert VOLATILE.sub("", f.stdout) == VOLATILE.sub("", a.stdout), f.stderr
    assert "one of the following is required: _raw_params, cmd, argv" in f.stdout
    assert "parameters are mutually exclusive: _raw_params|cmd|argv" in f.stdout
    assert "Unable to change directory before execution: [Errno 2]" in f.stdout
    assert "Unsupported parameters for (shell) module: expand_argument_vars" in f.stdout
    assert f.returncode == a.returncode == 0


MULTILINE = r"""
- hosts: localhost
  gather_facts: false
  tasks:
    - shell: |
        echo this is a \
        "multiline echo" \
        "with a new line
        in quotes" \
        | cat
        echo "this is a second line"
      args:
        executable: /bin/sh
      register: r5
    - shell: |
        executable="/bin/sh"
        creates=/nonexistent-fleetkit-file
        echo "test"
      register: r6
    - shell: |
        cat <<EOF
        One
          Two
        EOF
      register: r7
    - debug: msg="{{ [r5.cmd, r5.stdout, r6.cmd, r6.stdout, r7.cmd, r7.stdout] }}"
"""


def test_multiline_free_form_commands_split_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(MULTILINE)
    args = ["-i", "localhost,", "-c", "local", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert VOLATILE.sub("", f.stdout) == VOLATILE.sub("", a.stdout), f.stderr
    assert '"echo \\"test\\"\\n"' in f.stdout  # the k=v lines are options, not the command
    assert f.returncode == a.returncode == 0


BACKGROUND = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: a child left running in the background keeps the output pipes open
      shell: sleep 60 & echo $! > child.pid
      timeout: 20
    - shell: kill $(cat child.pid)
"""


def test_a_background_child_does_not_hold_the_task_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(BACKGROUND)
    args = ["-i", "localhost,", "-c", "local", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert VOLATILE.sub("", f.stdout) == VOLATILE.sub("", a.stdout), f.stderr
    assert "Timed out" not in f.stdout
    assert f.returncode == a.returncode == 0
